"""Building the HTTP client's requests, shared by :class:`~poseserve.client.PoseClient` and
:class:`~poseserve.client.AsyncPoseClient`: their common settings (:class:`_Base`: base URL, headers, retry policy,
image format), the form of ``POST /v1/pose``, the upload and parameters of ``POST /v1/pose/video`` and the query of
the ``/v1/pose/stream`` WebSocket.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from poseserve._images import encode_image
from poseserve._retry import Retry

#: Bytes read from a video file per chunk of the upload.
_CHUNK = 1 << 20
_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
                ".webm": "video/webm", ".avi": "video/x-msvideo"}  # fmt: skip


def _boxes_json(bboxes: Any) -> str | None:
    """Caller boxes as the ``boxes`` form field: JSON [[x1, y1, x2, y2], ...].

    Raises:
        ValueError: not [N, 4] numbers.
    """
    if bboxes is None:
        return None
    arr = np.asarray(bboxes, np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != 4 or (arr.ndim == 1 and arr.size != 4):
        raise ValueError(f"bboxes must be [N, 4] xyxy (image pixels), got shape {list(arr.shape)}")
    return json.dumps(arr.reshape(-1, 4).tolist())


def _video_source(source: Any) -> tuple[Callable[[], Iterator[bytes]], int, str]:
    """A re-openable chunk source for a video upload (every attempt reads it again), its size and Content-Type.

    Raises:
        OSError: a path that cannot be read. TypeError: neither a path nor bytes.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while block := f.read(_CHUNK):
                    yield block

        return chunks, size, _VIDEO_TYPES.get(path.suffix.lower(), "application/octet-stream")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return (lambda: iter([data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)])), len(data), "video/mp4"
    raise TypeError(f"a video is a path or bytes, not {type(source).__name__}")


def _flag(v: bool) -> str:
    return "true" if v else "false"


def _video_params(track, smooth, det_interval, stride, max_frames) -> dict[str, str]:
    params = {"track": _flag(track), "smooth": _flag(smooth), "frame_stride": str(int(stride))}
    if det_interval is not None:
        params["det_interval"] = str(int(det_interval))
    if max_frames is not None:
        params["max_frames"] = str(int(max_frames))
    return params


def _stream_query(track, smooth, det_interval) -> str:
    q = f"track={_flag(track)}&smooth={_flag(smooth)}"
    return q if det_interval is None else f"{q}&det_interval={int(det_interval)}"


# ------------------------------------------------------------------------------------------------ shared settings
class _Base:
    """What both clients share: the base URL, headers, retry policy and answer parsing."""

    def __init__(self, url: str, api_key: str | None, timeout: float | httpx.Timeout, retry: Retry | None,
                 image_format: str, headers: Mapping[str, str] | None):  # fmt: skip
        if image_format not in ("png", "jpeg", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', not {image_format!r}")
        self.url = url.rstrip("/")
        self.retry = retry if retry is not None else Retry()
        self.image_format = image_format
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout, connect=5.0)
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._keypoint_names: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL of ``/v1/pose/stream`` (``ws://`` for ``http://``, ``wss://`` for ``https://``)."""
        scheme, rest = self.url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/v1/pose/stream"

    def _pose_parts(self, image, bboxes, rgb) -> tuple[dict, dict]:
        data, ctype, _ = encode_image(image, rgb, self.image_format)
        form = {}
        boxes = _boxes_json(bboxes)
        if boxes is not None:
            form["boxes"] = boxes
        return {"file": ("image", data, ctype)}, form

    @staticmethod
    def _models_names(models: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple((models.get("keypoints") or {}).get("keypoint_names") or ())
