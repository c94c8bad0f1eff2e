"""Pose tracking for video and streams: stable track IDs across frames, boxes from keypoints, scene cuts.

* :class:`PoseTracker` gives each person of a frame a track ID. It follows the top-down pose tracking of MMPose 0.x
  (``mmpose/apis/inference_tracking.py``: ``get_track_id`` with ``_track_by_oks`` / ``_track_by_iou``): a
  detection continues the track whose last pose (OKS) or box (IoU) is most similar, if that similarity reaches a
  threshold, and starts a new track otherwise. Unlike MMPose, which matches the detections one after the other
  (greedy, in detection order), the assignment is global: ``scipy.optimize.linear_sum_assignment`` on the whole
  track x detection similarity matrix. Like MMDeploy's pose tracker
  (``csrc/mmdeploy/codebase/mmpose/pose_tracker/pose_tracker.cpp``, ``RemoveMissingTracks``: a track missing in
  more than ``track_max_missing`` frames ends), a track survives a few unmatched frames (occlusion, a missed
  detection) before it ends.
* :func:`bbox_from_keypoints` / :func:`bboxes_from_keypoints`: the box of a track on a frame where the detector
  does not run, from its previous keypoints (MMDeploy ``keypoints_to_bbox`` in ``pose_tracker/utils.cpp``, rtmlib
  ``pose_to_bbox`` in ``rtmlib/tools/solution/pose_tracker.py``).
* :class:`SceneCutDetector`: a hard cut in the video (new tracks, the detector runs), after PySceneDetect's
  ``ContentDetector`` (``scenedetect/detectors/content_detector.py``).

Coordinates are MMPose's: pixels of the original image, a pixel's index is its coordinate; boxes are xyxy,
keypoints [K, 3] = x, y, score. Torch-free: numpy, OpenCV, and scipy (``linear_sum_assignment``, from the ``video``
extra, imported by the first update that matches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from models.geometry import box_iou_matrix
from models.keypoints import COCO17_SIGMAS, oks_matrix

#: Box size from the keypoints' box, (x, y) factors about its centre. Measured: on the people of the shared
#: coco-mini / coco-tiny assets with the head, both ankles and >= 12 keypoints labelled, upright (18 of 25), the
#: YOLOv8n detector's box is 1.29 x wider and 1.19 x taller (medians) than the box of the labelled keypoints
#: (COCO's ground-truth boxes: 1.27 and 1.18). MMDeploy and rtmlib scale both sides by 1.25.
DEFAULT_BBOX_EXPANSION: tuple[float, float] = (1.3, 1.2)


def _as_keypoints(keypoints, n: int | None = None) -> np.ndarray:
    """float64 [N, K, 3], finite; ValueError otherwise."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] != 3 or (n is not None and len(kp) != n):
        want = "N" if n is None else str(n)
        raise ValueError(f"keypoints must have shape [{want}, K, 3] (x, y, score), got {list(kp.shape)}")
    if not np.isfinite(kp).all():
        raise ValueError("keypoints contain a non-finite value")
    return kp


def bboxes_from_keypoints(
    keypoints: np.ndarray,
    score_thr: float,
    image_size: tuple[int, int],
    *,
    min_keypoints: int | None = None,
    expansion: float | tuple[float, float] = DEFAULT_BBOX_EXPANSION,
) -> tuple[np.ndarray, np.ndarray]:
    """The boxes of N poses, for frames where the detector does not run (vectorised :func:`bbox_from_keypoints`).

    Per pose: the box of the keypoints whose score is >= ``score_thr``, scaled about its centre by ``expansion``
    (x and y factors), clipped to the image ``[0, w] x [0, h]`` (as the detector's boxes are). This is MMDeploy's
    ``keypoints_to_bbox`` (``csrc/mmdeploy/codebase/mmpose/pose_tracker/utils.cpp``: confident keypoints, at least
    ``ceil(K / 2)`` of them, scale 1.25, clip) and rtmlib's ``pose_to_bbox`` (all keypoints, scale 1.25), with
    factors measured against detector boxes (:data:`DEFAULT_BBOX_EXPANSION`): keypoints stop at the eyes and
    ankles, a person box takes in the top of the head and the feet.

    Args:
        keypoints: float [N, K, 3] (x, y, score), original-image pixels.
        score_thr: least score of a keypoint that counts (MMDeploy ``pose_kpt_thr``: 0.5).
        image_size: (w, h) of the image in pixels.
        min_keypoints: fewest confident keypoints for a box; None: ``ceil(K / 2)`` (MMDeploy's default).
        expansion: scale of the box about its centre, one factor or (x, y).

    Returns:
        (bboxes, valid): float64 [N, 4] xyxy in original-image pixels, and bool [N]. A pose with fewer than
        ``min_keypoints`` confident keypoints, or whose box is empty once clipped (a single point, off the image),
        is not valid; its row is 0.

    Raises:
        ValueError: keypoints not [N, K, 3] (K >= 1) or non-finite; an image size or an expansion that is not
            positive.
    """
    kp = _as_keypoints(keypoints)
    if kp.shape[1] == 0:
        raise ValueError("keypoints must have K >= 1")
    w, h = (float(v) for v in image_size)
    ex, ey = (float(expansion), float(expansion)) if np.isscalar(expansion) else (float(v) for v in expansion)
    if not (w > 0 and h > 0 and ex > 0 and ey > 0):
        raise ValueError(f"image_size {image_size} and expansion {expansion} must be positive")
    n, k = kp.shape[:2]
    need = (k + 1) // 2 if min_keypoints is None else int(min_keypoints)
    ok = kp[..., 2] >= score_thr  # [N, K]
    count = ok.sum(1)
    xy = kp[..., :2]
    lo = np.where(ok[..., None], xy, np.inf).min(1)  # [N, 2]
    hi = np.where(ok[..., None], xy, -np.inf).max(1)
    valid = count >= max(need, 1)
    lo, hi = np.where(valid[:, None], lo, 0.0), np.where(valid[:, None], hi, 0.0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * np.array([ex, ey])
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    boxes = np.clip(boxes, 0.0, np.array([w, h, w, h]))
    valid &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes[~valid] = 0.0
    return boxes, valid


def bbox_from_keypoints(
    keypoints: np.ndarray,
    score_thr: float,
    image_size: tuple[int, int],
    *,
    min_keypoints: int | None = None,
    expansion: float | tuple[float, float] = DEFAULT_BBOX_EXPANSION,
) -> np.ndarray | None:
    """The box of one pose, for a frame where the detector does not run (see :func:`bboxes_from_keypoints`).

    Args:
        keypoints: float [K, 3] (x, y, score), original-image pixels.
        score_thr: least score of a keypoint that counts.
        image_size: (w, h) of the image in pixels.
        min_keypoints: fewest confident keypoints; None: ``ceil(K / 2)``.
        expansion: scale of the confident keypoints' box about its centre, one factor or (x, y).

    Returns:
        float64 [4] xyxy clipped to the image, or None: too few confident keypoints, or an empty box.

    Raises:
        ValueError: keypoints not [K, 3] or non-finite; a non-positive image size or expansion.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f"keypoints must have shape [K, 3] (x, y, score), got {list(kp.shape)}")
    boxes, valid = bboxes_from_keypoints(
        kp[None], score_thr, image_size, min_keypoints=min_keypoints, expansion=expansion
    )
    return boxes[0] if valid[0] else None


#: Updates a missed track's position is extrapolated for at most (its velocity is a guess; after a long occlusion the
#: person is looked for near where they were last seen plus this many steps).
MAX_PREDICTED_STEPS = 3


@dataclass
class Track:
    """One live track of a :class:`PoseTracker`.

    Attributes:
        track_id: its ID (>= 1, unique within the tracker).
        bbox: float64 [4] xyxy, original-image pixels: the box of its last matched detection.
        keypoints: float64 [K, 3] (x, y, score) of its last matched detection.
        score: the person score of its last matched detection (NaN when none was given).
        missed: consecutive updates it went unmatched (0: matched by the last update).
        age: updates since it started, the first included.
        hits: updates that matched it, the first included.
        velocity: float64 [2], the box centre's motion per update (pixels; the mean of the last two matched steps:
            a constant-velocity model, SORT's Kalman state reduced to its mean; the box keeps its last size).
    """

    track_id: int
    bbox: np.ndarray
    keypoints: np.ndarray
    score: float
    missed: int = 0
    age: int = 1
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def predicted(self) -> tuple[np.ndarray, np.ndarray]:
        """Where the track should be at the next update: its last box and keypoints moved by ``velocity`` times
        the updates since it was last matched (at most :data:`MAX_PREDICTED_STEPS`). Returns (bbox [4],
        keypoints [K, 3])."""
        shift = self.velocity * min(self.missed + 1, MAX_PREDICTED_STEPS)
        kp = self.keypoints.copy()
        kp[:, :2] += shift
        return self.bbox + np.tile(shift, 2), kp

    def observe(self, bbox: np.ndarray, keypoints: np.ndarray, score: float) -> None:
        """Matched by an update: take the detection and update the velocity."""
        step = (_centre(bbox) - _centre(self.bbox)) / (self.missed + 1)
        self.velocity = step if self.hits == 1 else 0.5 * (self.velocity + step)
        self.bbox, self.keypoints, self.score = bbox.copy(), keypoints.copy(), float(score)
        self.missed, self.hits = 0, self.hits + 1


class PoseTracker:
    """Track IDs for the poses of one video or stream, frame by frame.

    Each :meth:`update` takes the poses of one frame and returns a track ID per pose. Similarity between a live
    track and a detection (``method``):

    * ``"oks"``: OKS of the track's last keypoints and the detection's (:func:`models.keypoints.oks_matrix`) over
      the keypoints with score >= ``kpt_score_thr`` in both, with the mean of the two box areas ``w * h`` as the
      OKS area (MMPose 0.x ``_get_area`` / ``_track_by_oks``). A pair with fewer than ``min_keypoints`` such
      keypoints falls back to the IoU of the boxes;
    * ``"iou"``: IoU of the track's last box and the detection's (MMPose 0.x ``_track_by_iou``).

    With ``oks`` the similarity is the larger of the two (OKS tells apart people whose boxes overlap; IoU keeps a
    small or blurred person, whose keypoints are few or noisy, on its track). A track is compared where it should
    be now: its last box and keypoints moved at its constant velocity (:meth:`Track.predicted`), so a person who
    moves on while missed for a frame or two is still matched (MMPose 0.x compared the last position only).

    The pairs are assigned globally (``scipy.optimize.linear_sum_assignment``, maximising the summed similarity
    over the pairs with similarity >= ``min_similarity``), persons with a score >= ``high_score`` first, then the
    others to the tracks left; the other pairs never match. A detection without a
    track starts a new one. A track unmatched in more than ``max_missed`` consecutive updates ends. IDs start at
    1 and only grow: an ended track's ID is never given again by this tracker (:meth:`reset` included).
    Deterministic: the same inputs give the same IDs.

    Args:
        method: ``"oks"`` or ``"iou"``.
        min_similarity: least similarity (OKS or IoU) that continues a track, in (0, 1].
        max_missed: consecutive unmatched updates a track survives (0: it ends at its first miss).
        sigmas: float [K] OKS sigmas; None: COCO-17 (:data:`models.keypoints.COCO17_SIGMAS`).
        kpt_score_thr: least keypoint score for a keypoint to count in the OKS.
        min_keypoints: fewest keypoints (confident in both poses) for OKS; fewer: the pair's box IoU.
        high_score: persons with at least this score are matched first, the others to the tracks left (ByteTrack's
            two-stage association, Zhang et al. 2022): a low-score box around part of a person already followed
            (a top-down model finds that person's keypoints in it too) cannot take the person's track.

    Attributes:
        lost_ids: int64 [L], live tracks the last :meth:`update` did not match (ascending; their ``missed`` is
            >= 1, 1 for the ones lost just now). A caller that skips the detector on some frames runs it on the
            next frame when this holds a track with ``missed == 1``.
        ended_ids: int64 [E], tracks ended by the last :meth:`update` or :meth:`reset` (ascending): state kept
            per track elsewhere (a smoother's) can be dropped.

    Raises:
        ValueError: an unknown method, or a parameter out of range.
    """

    def __init__(
        self,
        method: str = "oks",
        min_similarity: float = 0.3,
        max_missed: int = 30,
        sigmas: np.ndarray | None = None,
        kpt_score_thr: float = 0.3,
        min_keypoints: int = 3,
        high_score: float = 0.5,
    ) -> None:
        if method not in ("oks", "iou"):
            raise ValueError(f"track method must be 'oks' or 'iou', got {method!r}")
        if not 0.0 < min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in (0, 1], got {min_similarity}")
        if max_missed < 0 or min_keypoints < 1:
            raise ValueError(f"max_missed must be >= 0 and min_keypoints >= 1, got {max_missed}, {min_keypoints}")
        self.method = method
        self.min_similarity = float(min_similarity)
        self.max_missed = int(max_missed)
        self.sigmas = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1)
        self.kpt_score_thr = float(kpt_score_thr)
        self.min_keypoints = int(min_keypoints)
        self.high_score = float(high_score)
        self._tracks: dict[int, Track] = {}
        self._next_id = 1
        self.lost_ids = np.zeros(0, dtype=np.int64)
        self.ended_ids = np.zeros(0, dtype=np.int64)

    @property
    def tracks(self) -> list[Track]:
        """The live tracks, by ascending ID (the objects themselves: read, do not modify)."""
        return list(self._tracks.values())

    @property
    def next_id(self) -> int:
        """The ID the next new track gets."""
        return self._next_id

    def reset(self) -> None:
        """End every track (a scene cut): the next :meth:`update` starts new tracks, with new IDs, for everyone.

        ``ended_ids`` holds the tracks ended here; ``lost_ids`` is emptied.
        """
        self.ended_ids = np.fromiter(self._tracks, dtype=np.int64, count=len(self._tracks))
        self.lost_ids = np.zeros(0, dtype=np.int64)
        self._tracks.clear()

    def similarity(self, bboxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Similarity of every live track (rows, ascending ID) to every detection (columns).

        Args:
            bboxes: float [N, 4] xyxy, original-image pixels.
            keypoints: float [N, K, 3] (x, y, score).

        Returns:
            float64 [T, N] in [0, 1]: ``oks``: the larger of OKS (where enough keypoints are confident in both) and box
            IoU; ``iou``: IoU.
        """
        tracks = self.tracks
        predicted = [t.predicted() for t in tracks]
        t_boxes = np.array([b for b, _ in predicted]).reshape(-1, 4)
        iou = box_iou_matrix(t_boxes, bboxes)
        if self.method == "iou" or not tracks or not len(bboxes):
            return iou
        t_kpts = np.stack([k for _, k in predicted])
        oks, counts = oks_matrix(
            t_kpts, keypoints, _box_areas(t_boxes), _box_areas(bboxes), self.sigmas, self.kpt_score_thr
        )
        # the larger of OKS and IoU: OKS tells apart people whose boxes overlap; IoU keeps a small or blurred
        # person (few or noisy keypoints: OKS near 0 after a missed frame or two) on its track
        return np.maximum(np.where(counts >= self.min_keypoints, oks, iou), iou)

    def update(self, bboxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Assign the poses of the next frame to tracks.

        Args:
            bboxes: float [N, 4] xyxy in original-image pixels (N may be 0).
            keypoints: float [N, K, 3] (x, y, score), same pixels; K must match ``sigmas`` for ``"oks"`` and stay
                the same from frame to frame.
            scores: float [N] person scores (kept on the tracks), or None.

        Returns:
            int64 [N] track IDs (>= 1), distinct within the frame, in the order of the inputs.

        Raises:
            ValueError: shapes that do not match, or a non-finite value.
        """
        b = np.asarray(bboxes, dtype=np.float64)
        b = b.reshape(0, 4) if b.size == 0 else b
        if b.ndim != 2 or b.shape[1] != 4 or not np.isfinite(b).all():
            raise ValueError(f"bboxes must be finite, with shape [N, 4] (x1, y1, x2, y2), got {list(b.shape)}")
        n = len(b)
        k_expected = len(self.sigmas) if self.method == "oks" else None
        if self._tracks:
            k_expected = next(iter(self._tracks.values())).keypoints.shape[0]
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.size == 0 and n == 0:
            kp = kp.reshape(0, k_expected or 0, 3)
        kp = _as_keypoints(kp, n)
        if k_expected is not None and kp.shape[1] != k_expected:
            raise ValueError(f"keypoints must have K = {k_expected} (sigmas, or the tracks' K), got {kp.shape[1]}")
        sc = np.full(n, np.nan) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(sc) != n:
            raise ValueError(f"{n} boxes but {len(sc)} scores")

        tracks = self.tracks
        ids = np.zeros(n, dtype=np.int64)
        matched_tracks: set[int] = set()
        if tracks and n:
            from scipy.optimize import linear_sum_assignment  # the video extra's; only a tracker needs it

            sim = self.similarity(b, kp)
            high = ~(sc < self.high_score)  # NaN (no score given): high
            free_rows = list(range(len(tracks)))
            for cols_stage in (np.flatnonzero(high), np.flatnonzero(~high)):
                if not len(cols_stage) or not free_rows:
                    continue
                sub = sim[np.ix_(free_rows, cols_stage)]
                gain = np.where(sub >= self.min_similarity, sub, 0.0)
                rows, cols = linear_sum_assignment(gain, maximize=True)
                taken = set()
                for r, c in zip(rows.tolist(), cols.tolist()):
                    if sub[r, c] < self.min_similarity:
                        continue
                    t, col = tracks[free_rows[r]], int(cols_stage[c])
                    t.observe(b[col], kp[col], sc[col])
                    ids[col] = t.track_id
                    matched_tracks.add(t.track_id)
                    taken.add(free_rows[r])
                free_rows = [r for r in free_rows if r not in taken]

        lost, ended = [], []
        for t in tracks:
            t.age += 1
            if t.track_id in matched_tracks:
                continue
            t.missed += 1
            if t.missed > self.max_missed:
                ended.append(t.track_id)
                del self._tracks[t.track_id]
            else:
                lost.append(t.track_id)
        for c in np.flatnonzero(ids == 0).tolist():
            tid = self._next_id
            self._next_id += 1
            self._tracks[tid] = Track(tid, b[c].copy(), kp[c].copy(), float(sc[c]))
            ids[c] = tid
        self.lost_ids = np.asarray(lost, dtype=np.int64)
        self.ended_ids = np.asarray(ended, dtype=np.int64)
        return ids


def _centre(bbox: np.ndarray) -> np.ndarray:
    return 0.5 * (bbox[:2] + bbox[2:])


def _box_areas(bboxes: np.ndarray) -> np.ndarray:
    """float64 [N] ``w * h`` of xyxy boxes (pixels squared; negative sides count as 0)."""
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)


class SceneCutDetector:
    """Hard cuts in a video: a frame whose content differs much from the previous frame's starts a new scene.

    PySceneDetect's ``ContentDetector`` (``scenedetect/detectors/content_detector.py``, default weights 1, 1, 1, 0
    and threshold 27): the frame score is the mean over the H, S and V channels (OpenCV 8-bit HSV: H in 0..179,
    S and V in 0..255) of the mean absolute difference between this frame and the previous one; a score above
    ``threshold`` is a cut, unless the current scene is shorter than ``min_scene_len`` frames. Frames are first
    downscaled (``cv2.INTER_AREA``) to ``width`` pixels wide, which keeps the cost per frame small (measured on one
    CPU core: 0.3 ms for a 640x272 frame, 1.2 ms for 1920x1080, mostly the resize) and changes the scores little (measured on the shared ``video/bikes.mp4``: cut scores 35.8 to 59.3 and
    non-cut scores at most 19.7 at width 160, against 37.1 to 59.9 and 20.3 at full size).

    Args:
        threshold: least frame score (0..255 scale) of a cut. Default 27.0, PySceneDetect's: on bikes.mp4 (five
            cuts) it sits between the largest non-cut score, 19.7, and the smallest cut score, 35.8.
        min_scene_len: frames a scene lasts at least before another cut counts (PySceneDetect: 15); the first
            scene starts at the first frame.
        width: width in pixels frames are downscaled to (never up); the height keeps the aspect ratio.

    Attributes:
        last_score: the score of the last frame (NaN for the first frame, or one of another size).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(self, threshold: float = 27.0, min_scene_len: int = 15, width: int = 160) -> None:
        if threshold <= 0 or min_scene_len < 1 or width < 8:
            raise ValueError(
                f"threshold > 0, min_scene_len >= 1, width >= 8 needed, got {threshold}, {min_scene_len}, {width}"
            )
        self.threshold = float(threshold)
        self.min_scene_len = int(min_scene_len)
        self.width = int(width)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame: the next frame is a first frame (no cut)."""
        self._prev: np.ndarray | None = None
        self._scene_len = 0
        self.last_score = float("nan")

    def score(self, image: np.ndarray) -> float:
        """The content difference of ``image`` to the previous frame, then remember it (no cut decided).

        Args:
            image: uint8 [H, W, 3] RGB.

        Returns:
            The mean of the H, S, V mean absolute differences (0..255 scale); NaN for the first frame and for a
            frame of another size than the previous one.

        Raises:
            ValueError: not an [H, W, 3] uint8 image.
        """
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.shape[0] < 1 or img.shape[1] < 1:
            raise ValueError(f"image must be uint8 [H, W, 3] RGB, got {img.dtype} {list(img.shape)}")
        h, w = img.shape[:2]
        if w > self.width:
            img = cv2.resize(img, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV)
        prev, self._prev = self._prev, hsv
        if prev is None or prev.shape != hsv.shape:
            return float("nan")
        diff = cv2.absdiff(hsv, prev)
        return float(np.mean(cv2.mean(diff)[:3]))

    def update(self, image: np.ndarray) -> bool:
        """Whether ``image``, the next frame, starts a new scene.

        Args:
            image: uint8 [H, W, 3] RGB, the frames of one video in order.

        Returns:
            True when its score is above ``threshold`` and the current scene has lasted ``min_scene_len``
            frames; also True when the frame size changes. False for the first frame (after :meth:`reset` too).

        Raises:
            ValueError: not an [H, W, 3] uint8 image.
        """
        first = self._prev is None
        self.last_score = self.score(image)
        self._scene_len += 1
        if first:
            return False
        resized = np.isnan(self.last_score)
        if resized or (self.last_score > self.threshold and self._scene_len > self.min_scene_len):
            self._scene_len = 1
            return True
        return False
