"""The one JSON encoding of pose results, shared by the service and ``pose-predict`` so their answers never drift.

* :func:`person_dicts` / :func:`image_answer`: one image, the fields of ``POST /pose``'s answer
  (``service.routes.pose_answer`` encodes this dict, ``service.schemas.PoseResponse`` documents it; ``pose-predict``
  writes it as ``<stem>.json``);
* :func:`video_header`, :func:`frame_line`, :func:`summary_line`: the NDJSON lines of a video
  (``POST /pose/video``'s answer and ``pose-predict``'s ``<stem>.ndjson``): one header, one line per processed frame,
  one summary.

Rounding: pixels to 0.01, scores to 1e-5, times to 0.01 ms (stage timings) or 1e-4 s (frame times). Plain dicts
of Python numbers (``json.dumps`` takes them as they are); no pydantic, no HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import PoseServiceError, public_message

if TYPE_CHECKING:  # annotations only: encoding an image needs no stream (nor its tracking's scipy)
    from inference.pipeline import PosePipeline, PoseResult
    from inference.stream import FrameResult, PoseStream


def person_order(scores: np.ndarray) -> np.ndarray:
    """int64 [N] indices of the people by descending person score, ties in detection order: the order of every
    answer (:func:`person_dicts`, ``poseserve.PoseEstimator``'s results)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def person_dicts(result: PoseResult, track_ids: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The people of a result by descending person score (ties: detection order).

    Args:
        result: the pipeline's result (bboxes [N, 4] xyxy, keypoints [N, K, 3], original-image pixels).
        track_ids: int [N] per person (a stream's), or None.

    Returns:
        ``[{"bbox": [x1, y1, x2, y2], "bbox_score", "keypoints": [[x, y, score]] * K, "score"}]``, each with
        ``"track_id"`` first when ``track_ids`` is given (absent otherwise).
    """
    scores = np.asarray(result.scores, np.float64)
    order = person_order(scores)
    # vectorised rounding (numpy's round half to even on x * 10**d; equal to Python's round() on these float32
    # values: tests/inference/test_encoding.py) and one tolist() per array: the answer of 32 people costs ~0.1 ms,
    # not the ~1.3 ms of a Python loop over 32 x 17 x 3 values
    kpts = np.asarray(result.keypoints, np.float64)[order]
    if kpts.ndim != 3:
        kpts = kpts.reshape(len(order), -1, 3)
    keypoints = np.concatenate([np.round(kpts[..., :2], 2), np.round(kpts[..., 2:], 5)], axis=-1).tolist()
    bboxes = np.round(np.asarray(result.bboxes, np.float64).reshape(-1, 4)[order], 2).tolist()
    bbox_scores = np.round(np.asarray(result.bbox_scores, np.float64)[order], 5).tolist()
    person_scores = np.round(scores[order], 5).tolist()
    tracks = None if track_ids is None else np.asarray(track_ids)[order].tolist()
    persons = []
    for n in range(len(order)):
        person: dict[str, Any] = {} if tracks is None else {"track_id": int(tracks[n])}
        person["bbox"] = bboxes[n]
        person["bbox_score"] = bbox_scores[n]
        person["keypoints"] = keypoints[n]
        person["score"] = person_scores[n]
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


def video_header(info, pipeline: PosePipeline, options=None) -> dict[str, Any]:
    """The first line of a video's answer.

    Args:
        info: the video's facts (``inference.video.VideoInfo``: ``width``, ``height`` pixels, ``fps``, ``frames``
            as declared by the container, None when unknown).
        pipeline: the models (``detector`` may be None).
        options: the stream's ``inference.stream.StreamOptions`` (reported as ``options``), or None.

    Returns:
        ``{"type": "video", "width", "height", "fps", "frames", "models": {"detector", "pose"}, "keypoint_names",
        "options"?: {"track", "smooth", "det_interval"}}``.
    """
    fps = getattr(info, "fps", None)
    frames = getattr(info, "frames", None)
    line = {
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
    if options is not None:
        line["options"] = {"track": options.track, "smooth": options.smoothing, "det_interval": options.det_interval}
    return line


def frame_line(frame: FrameResult) -> dict[str, Any]:
    """One processed frame: ``{"type": "frame", "frame": index in the source, "time_s": presentation time (s),
    "persons": [...], "detected": the detector ran on it, "scene_cut": it starts a scene}`` (:func:`person_dicts`,
    with ``track_id`` when the stream tracks; ``dropped_persons`` when the pose model gave NaN for some)."""
    line = {
        "type": "frame",
        "frame": int(frame.frame),
        "time_s": round(float(frame.time_s), 4),
        "persons": person_dicts(frame.result, frame.track_ids),
        "detected": bool(frame.detected),
        "scene_cut": bool(frame.scene_cut),
    }
    if frame.result.dropped:
        line["dropped_persons"] = int(frame.result.dropped)
    return line


def summary_line(stream: PoseStream, reader=None, elapsed_s: float | None = None, **extra: Any) -> dict[str, Any]:
    """The last line: ``{"type": "summary", **stream.summary(), **extra}``; with the ``inference.video.VideoReader``,
    ``frames_decoded`` and the decode time (``timings_ms.decode``); with ``elapsed_s``, the wall time
    (``timings_ms.total``) and ``fps`` (processed frames per wall second). ``extra``: what the caller adds, such as
    ``wall_s`` or ``interrupted``."""
    line = {"type": "summary", **stream.summary()}
    if reader is not None:
        line["frames_decoded"] = int(reader.frames_decoded)
        line["timings_ms"]["decode"] = round(float(reader.decode_s) * 1000.0, 3)
    if elapsed_s is not None:
        line["timings_ms"]["total"] = round(elapsed_s * 1000.0, 3)
        line["fps"] = round(line["frames"] / elapsed_s, 3) if elapsed_s > 0 else None
    line.update(extra)
    return line


def error_line(exc: BaseException) -> dict[str, Any]:
    """An error as a line / message of a stream: ``{"type": "error", "status", "error", "message"}`` (the
    :class:`~core.errors.PoseServiceError`'s status and code, server paths cut from the message; anything else is a
    500 ``internal_error`` naming only the exception's type)."""
    if isinstance(exc, PoseServiceError):
        return {"type": "error", "status": exc.status, "error": exc.code, "message": public_message(str(exc))}
    return {
        "type": "error",
        "status": 500,
        "error": "internal_error",
        "message": f"internal error: {type(exc).__name__}",
    }


def ndjson_line(obj: dict[str, Any]) -> str:
    """One NDJSON line: compact JSON and a newline."""
    return json.dumps(obj, separators=(",", ":")) + "\n"
