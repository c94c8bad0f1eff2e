"""Keypoint schemas: COCO-17 and MPII-16 person keypoints (names, flip pairs, skeleton, sigmas, body halves).

This is the one place the schemas live; training, export, the service and evaluation import them.

* COCO-17 follows the COCO keypoint annotation format (``person_keypoints_*.json`` categories) and MMPose's
  ``configs/_base_/datasets/coco.py`` (flip pairs, 0-based skeleton, sigmas, upper / lower body).
* MPII-16 follows MMPose's ``configs/_base_/datasets/mpii.py`` (``keypoint_info`` order, ``swap`` pairs,
  ``skeleton_info``, ``sigmas``, ``type='upper' / 'lower'``) and ``mmpose/datasets/datasets/body/mpii_dataset.py``.

:class:`KeypointSchema` bundles one schema; :data:`SCHEMAS` names them (``"coco17"``, ``"mpii16"``: the names model
cards and zoo configs use). The ``COCO17_*`` / ``MPII16_*`` constants are the same values.
Torch-free: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Keypoint names in COCO order (index = position in the [K, 3] keypoint array).
COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

NUM_KEYPOINTS: int = len(COCO17_NAMES)

#: Left/right pairs swapped by a horizontal flip (0-based indices).
COCO17_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
)

#: Upper-body keypoints (nose .. wrists) and lower-body keypoints (hips .. ankles): MMPose's ``type='upper'`` /
#: ``type='lower'`` in ``configs/_base_/datasets/coco.py``, used by the half-body augmentation.
COCO17_UPPER_BODY_IDS: tuple[int, ...] = tuple(range(0, 11))
COCO17_LOWER_BODY_IDS: tuple[int, ...] = tuple(range(11, 17))

#: Limbs as 0-based index pairs (the COCO annotation file's 1-based ``skeleton`` minus one).
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

#: Per-keypoint OKS sigmas (COCO keypoint evaluation, cocoeval.py ``kpt_oks_sigmas``).
COCO17_SIGMAS: np.ndarray = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
        dtype=np.float64,
    )
    / 10.0
)
COCO17_SIGMAS.setflags(write=False)


def flip_indices(num_keypoints: int = NUM_KEYPOINTS, flip_pairs=COCO17_FLIP_PAIRS) -> np.ndarray:
    """Permutation that reorders keypoints of a horizontally flipped image.

    Args:
        num_keypoints: K, the number of keypoints.
        flip_pairs: pairs (i, j) of 0-based indices swapped by a flip.

    Returns:
        int64 array [K]; ``kpts_flipped[flip_indices()]`` puts left joints back on the left.

    Raises:
        ValueError: if a pair index is outside [0, K).
    """
    idx = np.arange(num_keypoints, dtype=np.int64)
    for i, j in flip_pairs:
        if not (0 <= i < num_keypoints and 0 <= j < num_keypoints):
            raise ValueError(f"flip pair ({i}, {j}) outside 0..{num_keypoints - 1}")
        idx[i], idx[j] = j, i
    return idx


#: MPII keypoint names in MMPose's order (``configs/_base_/datasets/mpii.py``, ``keypoint_info``).
MPII16_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

#: MPII left/right pairs (MMPose ``swap``; pelvis, thorax, upper neck and head top map to themselves).
MPII16_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

#: MPII limbs as 0-based index pairs (MMPose ``skeleton_info``).
MPII16_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (8, 12),
    (12, 11),
    (11, 10),
    (8, 13),
    (13, 14),
    (14, 15),
)

#: MPII upper / lower body (MMPose ``type='upper'`` / ``'lower'``; pelvis counts as lower).
MPII16_UPPER_BODY_IDS: tuple[int, ...] = (7, 8, 9, 10, 11, 12, 13, 14, 15)
MPII16_LOWER_BODY_IDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)

#: MPII OKS-style sigmas as MMPose defines them ("adapted from COCO"; PCKh, the MPII metric, does not use them).
MPII16_SIGMAS: np.ndarray = np.array(
    [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062],
    dtype=np.float64,
)
MPII16_SIGMAS.setflags(write=False)


@dataclass(frozen=True)
class KeypointSchema:
    """One keypoint schema.

    Attributes:
        name: registry name (``"coco17"``, ``"mpii16"``), as written in model cards (``keypoints.name``).
        dataset: the data set it belongs to (``"coco"``, ``"mpii"``): which reader and metric evaluate it.
        names: K keypoint names, in array order.
        flip_pairs: 0-based (left, right) index pairs swapped by a horizontal flip.
        skeleton: 0-based limbs (drawing).
        sigmas: float64 [K] per-keypoint sigmas (COCO OKS; MMPose's values for MPII).
        upper_body_ids, lower_body_ids: keypoint groups of the half-body augmentation.
    """

    name: str
    dataset: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: np.ndarray
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]

    @property
    def num_keypoints(self) -> int:
        """K."""
        return len(self.names)

    def flip_index(self) -> np.ndarray:
        """int64 [K] left/right permutation (:func:`flip_indices`)."""
        return flip_indices(self.num_keypoints, self.flip_pairs)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable data (``GET /v1/models``)."""
        return {
            "name": self.name,
            "keypoint_names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": self.sigmas.tolist(),
        }


COCO17 = KeypointSchema(
    "coco17",
    "coco",
    COCO17_NAMES,
    COCO17_FLIP_PAIRS,
    COCO17_SKELETON,
    COCO17_SIGMAS,
    COCO17_UPPER_BODY_IDS,
    COCO17_LOWER_BODY_IDS,
)
MPII16 = KeypointSchema(
    "mpii16",
    "mpii",
    MPII16_NAMES,
    MPII16_FLIP_PAIRS,
    MPII16_SKELETON,
    MPII16_SIGMAS,
    MPII16_UPPER_BODY_IDS,
    MPII16_LOWER_BODY_IDS,
)

#: Schema name -> schema.
SCHEMAS: dict[str, KeypointSchema] = {s.name: s for s in (COCO17, MPII16)}


def get_schema(name: str) -> KeypointSchema:
    """The schema called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint schema {name!r}; known: {sorted(SCHEMAS)}") from None


def schema_for_names(names) -> KeypointSchema | None:
    """The schema whose keypoint names are exactly ``names`` (in order), or None."""
    names = tuple(names)
    return next((s for s in SCHEMAS.values() if s.names == names), None)


def oks_matrix(
    keypoints_a: np.ndarray,
    keypoints_b: np.ndarray,
    areas_a: np.ndarray,
    areas_b: np.ndarray,
    sigmas: np.ndarray | None = None,
    score_thr: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """OKS between every pose of one set and every pose of another (both predictions, e.g. a track and a detection).

    Follows ``oks_iou`` of MMPose (``mmpose/core/post_processing/nms.py`` in 0.x, ``evaluation/functional/nms.py``
    in 1.x), which pose tracking by OKS (``_track_by_oks`` in 0.x ``mmpose/apis/inference_tracking.py``) uses:
    ``mean_k exp(-d_k^2 / (2 * (2 sigma_k)^2 * ((a + b) / 2 + eps)))``. With ``score_thr`` the mean runs over the
    keypoints whose score is >= ``score_thr`` in both poses (MMPose's ``vis_thr``); a pair with no such keypoint
    has OKS 0.

    Args:
        keypoints_a: float [N, K, 3] (x, y, score), original-image pixels.
        keypoints_b: float [M, K, 3].
        areas_a: float [N] OKS areas (pixels squared; MMPose's tracking uses the box area w * h).
        areas_b: float [M].
        sigmas: float [K]; default :data:`COCO17_SIGMAS`.
        score_thr: least keypoint score (both poses) for a keypoint to count; None: all K count.

    Returns:
        (oks, counts): float64 [N, M] in [0, 1] and int64 [N, M], the number of keypoints each OKS averages.

    Raises:
        ValueError: shapes that do not match (K of the poses and of ``sigmas``, N / M of the areas).
    """
    sig = COCO17_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1)
    k = len(sig)
    a = np.asarray(keypoints_a, dtype=np.float64)
    b = np.asarray(keypoints_b, dtype=np.float64)
    a = a.reshape(0, k, 3) if a.size == 0 else a
    b = b.reshape(0, k, 3) if b.size == 0 else b
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != (k, 3) or b.shape[1:] != (k, 3):
        raise ValueError(f"keypoints must be [N, {k}, 3] (x, y, score), got {list(a.shape)} and {list(b.shape)}")
    area_a = np.asarray(areas_a, dtype=np.float64).reshape(-1)
    area_b = np.asarray(areas_b, dtype=np.float64).reshape(-1)
    if len(area_a) != len(a) or len(area_b) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} poses but {len(area_a)} and {len(area_b)} areas")
    sq = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # [N, M, K]
    scale = (area_a[:, None] + area_b[None, :]) / 2 + np.spacing(1)  # [N, M]
    sim = np.exp(-sq / ((2 * sig) ** 2)[None, None, :] / scale[:, :, None] / 2)
    if score_thr is None:
        return sim.mean(-1), np.full(sim.shape[:2], k, dtype=np.int64)
    used = (a[:, None, :, 2] >= score_thr) & (b[None, :, :, 2] >= score_thr)
    counts = used.sum(-1)
    total = np.where(used, sim, 0.0).sum(-1)
    return np.divide(total, counts, out=np.zeros(counts.shape), where=counts > 0), counts.astype(np.int64)
