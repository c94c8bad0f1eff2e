"""The one JSON encoding of pose results, shared by the service and ``pose-predict`` so their answers never drift.

* :func:`person_dicts` / :func:`image_answer`: one image, the fields of ``POST /pose``'s answer
  (``service.schemas.PoseResponse.from_result`` validates this dict; ``pose-predict`` writes it as ``<stem>.json``);
* :func:`video_header`, :func:`frame_line`, :func:`summary_line`: the NDJSON lines of a video
  (``POST /pose/video``'s answer and ``pose-predict``'s ``<stem>.ndjson``): one header, one line per processed frame,
  one summary.

Rounding: pixels to 0.01, scores to 1e-5, times to 0.01 ms (stage timings) or 1e-4 s (frame times). Plain dicts
of Python numbers (``json.dumps`` takes them as they are); no pydantic, no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: encoding an image needs no stream (nor its tracking's scipy)
    from inference.pipeline import PosePipeline, PoseResult
    from inference.stream import FrameResult, PoseStream


def person_dicts(result: PoseResult, track_ids: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The people of a result by descending person score (ties: detection order).

    Args:
        result: the pipeline's result (bboxes [N, 4] xyxy, keypoints [N, K, 3], original-image pixels).
        track_ids: int [N] per person (a stream's), or None.

    Returns:
        ``[{"bbox": [x1, y1, x2, y2], "bbox_score", "keypoints": [[x, y, score]] * K, "score"}]``, each with
        ``"track_id"`` first when ``track_ids`` is given (absent otherwise).
    """
    order = np.argsort(-np.asarray(result.scores), kind="stable")
    persons = []
    for i in order:
        person: dict[str, Any] = {} if track_ids is None else {"track_id": int(track_ids[i])}
        person["bbox"] = [round(float(v), 2) for v in result.bboxes[i]]
        person["bbox_score"] = round(float(result.bbox_scores[i]), 5)
        person["keypoints"] = [[round(float(x), 2), round(float(y), 2), round(float(s), 5)]
                               for x, y, s in result.keypoints[i]]  # fmt: skip
        person["score"] = round(float(result.scores[i]), 5)
        persons.append(person)
    return persons


def image_answer(result: PoseResult, pose_name: str, keypoint_names: Sequence[str]) -> dict[str, Any]:
    """``POST /pose``'s answer for one image: ``width``, ``height`` (pixels, after EXIF orientation), ``persons``
    (:func:`person_dicts`), ``keypoint_names``, ``models`` (``detector``: None for caller boxes, ``pose``),
    ``timings_ms`` (per stage) and ``dropped_persons``."""
    return {
        "width": result.width,
        "height": result.height,
        "persons": person_dicts(result),
        "keypoint_names": list(keypoint_names),
        "models": {"detector": result.detector, "pose": pose_name},
        "timings_ms": {k: round(float(v), 2) for k, v in result.timings_ms.items()},
        "dropped_persons": int(result.dropped),
    }


def video_header(info, pipeline: PosePipeline) -> dict[str, Any]:
    """The first line of a video's answer.

    Args:
        info: the video's facts (``inference.video.VideoInfo``: ``width``, ``height`` pixels, ``fps``, ``frames``
            as declared by the container, None when unknown).
        pipeline: the models (``detector`` may be None).

    Returns:
        ``{"type": "video", "width", "height", "fps", "frames", "models": {"detector", "pose"}, "keypoint_names"}``.
    """
    fps = getattr(info, "fps", None)
    frames = getattr(info, "frames", None)
    return {
        "type": "video",
        "width": int(info.width),
        "height": int(info.height),
        "fps": None if fps is None else round(float(fps), 4),
        "frames": None if frames is None else int(frames),
        "models": {
            "detector": None if pipeline.detector is None else pipeline.detector.name,
            "pose": pipeline.pose.name,
        },
        "keypoint_names": list(pipeline.pose.card.keypoint_names),
    }


def frame_line(frame: FrameResult) -> dict[str, Any]:
    """One processed frame: ``{"type": "frame", "frame": index in the source, "time_s": presentation time (s),
    "persons": [...]}`` (:func:`person_dicts`, with ``track_id`` when the stream tracks)."""
    return {
        "type": "frame",
        "frame": int(frame.frame),
        "time_s": round(float(frame.time_s), 4),
        "persons": person_dicts(frame.result, frame.track_ids),
    }


def summary_line(stream: PoseStream, **extra: Any) -> dict[str, Any]:
    """The last line: ``{"type": "summary", **stream.summary(), **extra}`` (``extra``: what the caller adds, such as
    ``wall_s`` or ``interrupted``)."""
    return {"type": "summary", **stream.summary(), **extra}
