"""The one JSON encoding of results: persons of an image, and the lines of a video answer (NDJSON).

``POST /pose`` (``service.schemas.PoseResponse``), ``POST /pose/video``, the ``/pose/stream`` WebSocket and
``pose-predict`` all encode through these functions, so their fields and rounding never drift apart: people by
descending person score, pixels rounded to 0.01, scores to 1e-5.
"""

from __future__ import annotations

import numpy as np

from inference.pipeline import PoseResult


def person_dicts(result: PoseResult, track_ids: np.ndarray | None = None) -> list[dict]:
    """The persons of a result, by descending person score.

    Args:
        result: a pipeline result (bboxes [N, 4] xyxy and keypoints [N, K, 3] in original-image pixels).
        track_ids: int [N] per person, or None (no ``track_id`` field).

    Returns:
        ``[{"track_id"?, "bbox": [x1, y1, x2, y2], "bbox_score", "keypoints": [[x, y, score], ...], "score"}]``.
    """
    order = np.argsort(-np.asarray(result.scores), kind="stable")
    persons = []
    for i in order:
        p = {} if track_ids is None else {"track_id": int(track_ids[i])}
        p["bbox"] = [round(float(v), 2) for v in result.bboxes[i]]
        p["bbox_score"] = round(float(result.bbox_scores[i]), 5)
        p["keypoints"] = [
            [round(float(x), 2), round(float(y), 2), round(float(s), 5)] for x, y, s in result.keypoints[i]
        ]
        p["score"] = round(float(result.scores[i]), 5)
        persons.append(p)
    return persons


def video_header(info, pipeline, options=None) -> dict:
    """The first line of a video answer: ``{"type": "video", "width", "height", "fps", "frames", "models", ...}``.

    Args:
        info: the source's ``inference.video.VideoInfo`` (frames None when the container does not say).
        pipeline: the ``PosePipeline`` (model names, keypoint names).
        options: the stream's ``inference.stream.StreamOptions`` (reported), or None.
    """
    line = {
        "type": "video",
        "width": info.width,
        "height": info.height,
        "fps": None if info.fps is None else round(float(info.fps), 3),
        "frames": info.frames,
        "models": {"detector": pipeline.detector.name if pipeline.detector else None, "pose": pipeline.pose.name},
        "keypoint_names": pipeline.pose.card.keypoint_names,
    }
    if options is not None:
        line["options"] = {"track": options.track, "smooth": options.smoothing, "det_interval": options.det_interval}
    return line


def frame_line(fr) -> dict:
    """A frame's line: ``{"type": "frame", "frame", "time_s", "persons": [...], "detected", "scene_cut"}``
    (``fr``: an ``inference.stream.FrameResult``; persons carry ``track_id`` when tracking is on)."""
    line = {
        "type": "frame",
        "frame": fr.frame,
        "time_s": round(fr.time_s, 6),
        "persons": person_dicts(fr.result, fr.track_ids),
    }
    line["detected"] = fr.detected
    line["scene_cut"] = fr.scene_cut
    if fr.result.dropped:
        line["dropped_persons"] = fr.result.dropped
    return line


def summary_line(stream, reader=None, elapsed_s: float | None = None) -> dict:
    """The last line: ``{"type": "summary", **stream.summary()}`` plus ``frames_decoded`` and decode time (from the
    ``inference.video.VideoReader``) and the wall time and frames/s of the whole video."""
    line = {"type": "summary", **stream.summary()}
    if reader is not None:
        line["frames_decoded"] = reader.frames_decoded
        line["timings_ms"]["decode"] = round(reader.decode_s * 1000.0, 3)
    if elapsed_s is not None:
        line["timings_ms"]["total"] = round(elapsed_s * 1000.0, 3)
        line["fps"] = round(line["frames"] / elapsed_s, 3) if elapsed_s > 0 else None
    return line
