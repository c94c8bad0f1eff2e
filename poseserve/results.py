"""Typed pose results for Python callers: what :class:`poseserve.PoseEstimator` (in process) and
:class:`poseserve.client.PoseClient` (over HTTP) both return, so code written against one runs against the other.

One image (or one video frame) is a :class:`Poses`: a sequence of :class:`Person` with the arrays stacked for
vectorised use (``.keypoints`` [N, K, 3], ``.bboxes`` [N, 4]), ``.to_coco()`` (COCO results format, what
``pose-eval`` and pycocotools' ``COCO.loadRes`` read) and ``.plot()`` (the service's drawing, as an image in the
caller's colour order). The JSON answer of ``POST /v1/pose`` (and each ``frame`` line of a video) converts with
:meth:`Poses.from_answer`.

Coordinates follow MMPose's convention (pixel index = coordinate) in pixels of the image as decoded (EXIF
orientation applied); boxes are xyxy; keypoints are x, y, score.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Person", "Poses"]


@dataclass(frozen=True)
class Person:
    """One person.

    Attributes:
        bbox: float32 [4] x1, y1, x2, y2 (image pixels).
        bbox_score: the detector's score (1.0 for a box the caller gave).
        keypoints: float32 [K, 3]: x, y (image pixels), score.
        score: the person score (``models.scoring.person_scores``; by default MMPose's: the box score times the
            mean of the keypoint scores above 0.2).
        track_id: the person's track in a video or stream (stable across frames while tracking holds), else None.
    """

    bbox: np.ndarray
    bbox_score: float
    keypoints: np.ndarray
    score: float
    track_id: int | None = None


@dataclass(frozen=True)
class Poses(Sequence[Person]):
    """The people of one image or frame, by descending person score.

    Attributes:
        persons: the :class:`Person` list.
        width, height: the image's size in pixels (after EXIF orientation).
        keypoint_names: the K keypoint names of the pose model's schema (COCO-17 for the default models).
        frame: the frame index in a video or stream (0-based, in decoding order), None for an image.
        time_s: the frame's presentation time in seconds, None for an image or when unknown.
        models: ``{"detector": name or None (caller boxes), "pose": name}``.
        timings_ms: per-stage wall time of the answer (``decode``, ``detect``, ``crop``, ``pose``, ``total``).
    """

    persons: tuple[Person, ...]
    width: int
    height: int
    keypoint_names: tuple[str, ...]
    frame: int | None = None
    time_s: float | None = None
    models: Mapping[str, str | None] = field(default_factory=dict)
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    # Sequence[Person]
    def __len__(self) -> int:
        return len(self.persons)

    def __getitem__(self, i):  # type: ignore[override]
        return self.persons[i]

    def __iter__(self) -> Iterator[Person]:
        return iter(self.persons)

    def __repr__(self) -> str:
        where = "" if self.frame is None else f" frame={self.frame}"
        return f"Poses({len(self)} persons, {self.width}x{self.height}{where})"

    @property
    def num_keypoints(self) -> int:
        """K."""
        return len(self.keypoint_names)

    @property
    def keypoints(self) -> np.ndarray:
        """float32 [N, K, 3]: x, y (image pixels), score; [0, K, 3] when nobody was found."""
        if not self.persons:
            return np.zeros((0, self.num_keypoints, 3), np.float32)
        return np.stack([p.keypoints for p in self.persons]).astype(np.float32, copy=False)

    @property
    def bboxes(self) -> np.ndarray:
        """float32 [N, 4] xyxy (image pixels)."""
        return np.array([p.bbox for p in self.persons], np.float32).reshape(-1, 4)

    @property
    def bbox_scores(self) -> np.ndarray:
        """float32 [N]."""
        return np.array([p.bbox_score for p in self.persons], np.float32)

    @property
    def scores(self) -> np.ndarray:
        """float32 [N] person scores."""
        return np.array([p.score for p in self.persons], np.float32)

    @property
    def track_ids(self) -> np.ndarray | None:
        """int64 [N] track ids, or None when the people carry none (an image, or tracking off)."""
        if not self.persons or any(p.track_id is None for p in self.persons):
            return None
        return np.array([p.track_id for p in self.persons], np.int64)

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results (``COCO.loadRes`` / ``pose-eval --results``): one dict per person,
        ``{"image_id", "category_id", "keypoints": [x1, y1, s1, ...] (3K floats), "score", "bbox": [x, y, w, h]}``
        (``bbox`` is xywh, COCO's convention; ``score`` the person score)."""
        out = []
        for p in self.persons:
            x1, y1, x2, y2 = (float(v) for v in p.bbox)
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_id),
                    "keypoints": [round(float(v), 3) for v in np.asarray(p.keypoints, np.float64).reshape(-1)],
                    "score": float(p.score),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )
        return out

    def plot(self, image: np.ndarray | None = None, rgb: bool = False, kpt_score_thr: float = 0.3) -> np.ndarray:
        """Draw boxes, limbs, joints (and track ids) as the service's ``render=true`` does
        (``inference.render.render_poses``).

        Args:
            image: uint8 [H, W, 3] in the caller's order (BGR, OpenCV's, unless ``rgb``) of the same size as the
                image that was estimated; None: a black canvas of ``height`` x ``width``.
            rgb: ``image`` is RGB (and the result is returned RGB); default BGR in, BGR out.
            kpt_score_thr: joints and limbs with a lower score are not drawn.

        Returns:
            uint8 [H, W, 3], a new array in the input's colour order.

        Raises:
            ValueError: ``image`` is not uint8 [H, W, 3] of the result's size.
        """
        from inference.render import render_poses  # OpenCV; the client needs it only to plot
        from models.keypoints import COCO17_SKELETON, schema_for_names

        if image is None:
            canvas = np.zeros((self.height, self.width, 3), np.uint8)
        else:
            canvas = np.asarray(image)
            if canvas.dtype != np.uint8 or canvas.ndim != 3 or canvas.shape[2] != 3:
                raise ValueError(f"plot needs a uint8 [H, W, 3] image, got {canvas.dtype} {canvas.shape}")
            if canvas.shape[:2] != (self.height, self.width):
                raise ValueError(
                    f"plot needs the image that was estimated ({self.width}x{self.height}), "
                    f"got {canvas.shape[1]}x{canvas.shape[0]}"
                )
            if not rgb:
                canvas = canvas[..., ::-1]
        schema = schema_for_names(self.keypoint_names)
        skeleton = schema.skeleton if schema is not None else (COCO17_SKELETON if self.num_keypoints == 17 else ())
        out = render_poses(canvas, self.bboxes, self.keypoints, kpt_score_thr=kpt_score_thr, skeleton=skeleton,
                           keypoint_names=list(self.keypoint_names), track_ids=self.track_ids)  # fmt: skip
        return out if rgb or image is None else np.ascontiguousarray(out[..., ::-1])

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any], keypoint_names: Sequence[str] | None = None) -> Poses:
        """From the service's JSON: ``POST /v1/pose``'s answer, or a ``frame`` line of ``POST /v1/pose/video``
        (``persons``, ``frame``, ``time_s``; the names and size then come from the ``video`` header line:
        pass ``keypoint_names`` and the header's ``width`` / ``height`` are taken from ``answer`` when present).

        Raises:
            ValueError: the answer has no ``persons`` list, or a person's arrays have the wrong shape.
        """
        persons_json = answer.get("persons")
        if not isinstance(persons_json, list):
            raise ValueError(f"not a pose answer (no 'persons' list): keys {sorted(answer)}")
        names = tuple(answer.get("keypoint_names") or keypoint_names or ())
        persons = []
        for i, p in enumerate(persons_json):
            kpts = np.asarray(p["keypoints"], np.float32)
            bbox = np.asarray(p["bbox"], np.float32)
            if bbox.shape != (4,) or kpts.ndim != 2 or kpts.shape[1] != 3 or (names and len(kpts) != len(names)):
                raise ValueError(f"person {i}: bbox {bbox.shape} / keypoints {kpts.shape} do not fit [4] / [K, 3]")
            track = p.get("track_id")
            persons.append(Person(bbox, float(p["bbox_score"]), kpts, float(p["score"]),
                                  None if track is None else int(track)))  # fmt: skip
        if not names and persons:
            names = tuple(f"keypoint_{k}" for k in range(len(persons[0].keypoints)))
        return cls(
            tuple(persons),
            int(answer.get("width", 0)),
            int(answer.get("height", 0)),
            names,
            frame=answer.get("frame"),
            time_s=answer.get("time_s"),
            models=dict(answer.get("models") or {}),
            timings_ms=dict(answer.get("timings_ms") or {}),
        )
