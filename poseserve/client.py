"""An HTTP client for a running ``pose-serve``: the same :class:`~poseserve.results.Poses` as the in-process
:class:`poseserve.PoseEstimator`, over the network (``pip install 'poseserve[client]'``: httpx and websockets).

* :class:`PoseClient` (blocking) and :class:`AsyncPoseClient` (``asyncio``) wrap the HTTP API:
  ``POST /v1/pose`` (:meth:`PoseClient.pose`, also ``client(image)``; ``render=True`` for the JPEG),
  ``POST /v1/pose/video`` (:meth:`PoseClient.video`: an iterator over per-frame results as the NDJSON arrives),
  the ``/v1/pose/stream`` WebSocket (:meth:`PoseClient.stream`: a session, frames in, results out),
  ``GET /v1/models``, ``/healthz``, ``/readyz``.
* Images are a path or encoded bytes (sent as they are: the server applies EXIF orientation), a uint8 [H, W, 3]
  numpy array in BGR order (OpenCV's; ``rgb=True`` for RGB) or a PIL image (both sent as lossless PNG by default,
  ``image_format="jpeg"`` for smaller uploads; no EXIF travels with them).
* Errors are typed: :class:`PoseAPIError` (the server's answer: ``status``, ``code``, ``message``), and
  :class:`PoseConnectionError` (no answer: refused, reset, timed out).
* Retries (:class:`Retry`): a 503 (overloaded, loading, shutting down) and connection failures are retried with
  exponential back-off and jitter, never earlier than the server's ``Retry-After``, within a bounded number of
  attempts and a bounded total time; a 4xx is never retried. Every attempt re-sends the same bytes (estimating pose
  changes nothing on the server, so a repeated request is harmless).

Importing this module needs neither onnxruntime, OpenCV nor torch.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import httpx
import numpy as np

from poseserve.results import Poses

__all__ = [
    "AsyncPoseClient",
    "AsyncPoseSession",
    "AsyncPoseVideo",
    "PoseAPIError",
    "PoseClient",
    "PoseClientError",
    "PoseConnectionError",
    "PoseSession",
    "PoseVideo",
    "Retry",
]

log = logging.getLogger("poseserve.client")

#: Bytes read from a video file per chunk of the upload.
_CHUNK = 1 << 20
#: Transport failures retried: no answer came (refused, reset, closed early). A read timeout is not among them: the
#: server may still be working on the request, and sending it again would add load where there is already too much.
_RETRIED_TRANSPORT = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
                ".webm": "video/webm", ".avi": "video/x-msvideo"}  # fmt: skip


# --------------------------------------------------------------------------------------------------------- errors
class PoseClientError(Exception):
    """Base class of the client's errors."""


class PoseAPIError(PoseClientError):
    """The server answered an error: an HTTP status >= 400 (``{"error": code, "message": text}``), an ``error`` line
    of a video's NDJSON, or an ``error`` message of a stream session.

    Attributes:
        status: the HTTP status (for a video line or a stream message: the status the error would have had).
        code: the server's error code (``core/errors.py``: ``overloaded``, ``unauthorized``, ``invalid_parameter``,
            ``undecodable_image`` ...; ``http_error`` when the body was not the server's JSON, from a proxy say).
        message: the server's explanation.
        retry_after: the ``Retry-After`` header in seconds, None when absent.
        attempts: how many times the request was sent (retries included).
        frame: for a stream session's error, the index of the frame it answers (None otherwise).
        frame_id: the ``id`` that frame was sent with.
    """

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None,
                 attempts: int = 1, frame: int | None = None, frame_id: Any = None):  # fmt: skip
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = int(status), code, message
        self.retry_after, self.attempts = retry_after, attempts
        self.frame, self.frame_id = frame, frame_id

    @classmethod
    def from_json(cls, body: Mapping[str, Any], status: int | None = None, **kw: Any) -> PoseAPIError:
        """From the server's error JSON (``{"error", "message"}``, with ``"status"`` in stream lines)."""
        st = status if status is not None else int(body.get("status", 500))
        return cls(st, str(body.get("error", "http_error")), str(body.get("message", "")), **kw)


class PoseConnectionError(PoseClientError):
    """No answer from the server (connection refused or reset, connect / read timeout, closed mid-answer) after the
    retries the :class:`Retry` policy allows; ``__cause__`` is httpx's or websockets' exception.

    Attributes:
        attempts: how many times the request was sent.
    """

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_error(status: int, headers: Mapping[str, str], body: bytes, attempts: int = 1) -> PoseAPIError:
    retry_after = _retry_after(headers.get("retry-after"))
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        return PoseAPIError.from_json(data, status, retry_after=retry_after, attempts=attempts)
    text = body[:300].decode("utf-8", "replace").strip()
    return PoseAPIError(status, "http_error", text or f"HTTP {status}", retry_after=retry_after, attempts=attempts)


# --------------------------------------------------------------------------------------------------------- retries
@dataclass(frozen=True)
class Retry:
    """When and how long to wait before sending a request again.

    A request is retried on an HTTP status in ``statuses`` (503: overloaded, models loading, shutting down) and on
    a connection failure (refused, reset, connect timeout, closed before the answer), never on a 4xx or another
    status. Wait before attempt ``n + 1`` (seconds): ``d = min(max_backoff_s, backoff_s * 2 ** (n - 1))``, then
    ``max(Retry-After, d / 2) + uniform(0, d / 2)``: exponential back-off with jitter, never earlier than the
    server asked. The last error is raised when ``attempts`` were sent or the next wait would end after ``total_s``
    seconds from the first attempt. ``Retry(attempts=1)``: no retries.

    Attributes:
        attempts: most sends of one request (first one included), >= 1.
        backoff_s: the first back-off step (seconds).
        max_backoff_s: the largest back-off step (seconds).
        total_s: the time budget of all attempts and waits (seconds).
        statuses: HTTP statuses that are retried.
    """

    attempts: int = 5
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    total_s: float = 60.0
    statuses: frozenset[int] = frozenset({503})

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0 or self.total_s < 0:
            raise ValueError(f"invalid retry policy: {self}")

    def wait_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), given the server's ``Retry-After``."""
        d = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return max(retry_after or 0.0, d / 2) + random.uniform(0.0, d / 2)


class _Attempts:
    """The retry loop's bookkeeping, shared by the blocking and the async client."""

    def __init__(self, retry: Retry, what: str):
        self.retry, self.what = retry, what
        self.start = time.monotonic()
        self.n = 0

    def next_wait(self, error: PoseClientError, retry_after: float | None) -> float:
        """The wait before the next attempt; raises ``error`` when the policy allows no further attempt."""
        if self.n >= self.retry.attempts:
            raise error
        wait = self.retry.wait_s(self.n, retry_after)
        if time.monotonic() - self.start + wait > self.retry.total_s:
            raise error
        log.info("%s: %s; attempt %d in %.2f s", self.what, error, self.n + 1, wait)
        return wait


# ---------------------------------------------------------------------------------------------------------- inputs
def _to_pil(image: Any, rgb: bool):
    """A PIL RGB image of a numpy array (BGR unless ``rgb``) or a PIL image; None for other types.

    Raises:
        ValueError: an array that is not uint8 [H, W, 3].
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"an image array must be uint8 [H, W, 3] ({'RGB' if rgb else 'BGR'}), got {image.dtype} "
                f"{list(image.shape)}; convert grey or BGRA images with cv2.cvtColor first"
            )
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(image if rgb else image[..., ::-1]), "RGB")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with the client extra
        return None
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return None


def _encoded_size(data: bytes) -> tuple[int, int]:
    """Width and height of encoded image bytes after EXIF orientation, read from the header only (0, 0 when PIL
    cannot tell); what the server's answer is in pixels of."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - the server says what is wrong with the bytes
        return 0, 0
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def encode_image(image: Any, rgb: bool = False, image_format: str = "png") -> tuple[bytes, str, tuple[int, int]]:
    """The bytes sent for ``image``, their Content-Type and the image's (width, height) in pixels.

    Args:
        image: a path (``str`` / ``os.PathLike``) or encoded bytes (JPEG, PNG, WebP, BMP: sent unchanged), a uint8
            [H, W, 3] numpy array (BGR, OpenCV's order, unless ``rgb``) or a PIL image (converted to RGB).
        rgb: a numpy ``image`` is RGB.
        image_format: how arrays and PIL images are encoded: ``"png"`` (lossless: the server sees exactly these
            pixels) or ``"jpeg"`` (quality 95: smaller, slightly different pixels).

    Raises:
        OSError: a path that cannot be read.
        ValueError: an array that is not uint8 [H, W, 3], an unknown ``image_format``.
        TypeError: another type.
    """
    if isinstance(image, (str, os.PathLike)):
        image = Path(image).expanduser().read_bytes()
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return data, "application/octet-stream", _encoded_size(data)
    pil = _to_pil(image, rgb)
    if pil is None:
        raise TypeError(
            f"cannot send an image given as {type(image).__name__}: pass a path, bytes, a uint8 [H, W, 3] numpy "
            "array or a PIL image"
        )
    buf = io.BytesIO()
    if image_format == "png":
        pil.save(buf, format="PNG", compress_level=1)
        ctype = "image/png"
    elif image_format in ("jpeg", "jpg"):
        pil.save(buf, format="JPEG", quality=95)
        ctype = "image/jpeg"
    else:
        raise ValueError(f"image_format must be 'png' or 'jpeg', not {image_format!r}")
    return buf.getvalue(), ctype, pil.size


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


# --------------------------------------------------------------------------------------------------- blocking client
class PoseClient(_Base):
    """A blocking client of a ``pose-serve`` server (thread-safe: one connection pool, use it from many threads).

    Args:
        url: the server's base URL, e.g. ``"http://127.0.0.1:8000"`` (a path prefix, for an ingress, is kept).
        api_key: sent as ``Authorization: Bearer <key>`` (the server's ``api_keys``); None: no key.
        timeout: seconds for connecting, each read (for a video: between two lines), each write; or an
            ``httpx.Timeout``. The connect timeout is 5 s unless an ``httpx.Timeout`` says otherwise.
        retry: the :class:`Retry` policy (default: 5 attempts within 60 s); ``Retry(attempts=1)`` turns retries off.
        image_format: how numpy and PIL images are encoded: ``"png"`` (lossless, default) or ``"jpeg"``.
        headers: extra headers on every request.
        **httpx_kwargs: passed to ``httpx.Client`` (``verify``, ``transport``, ``limits`` ...).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float | httpx.Timeout = 60.0, retry: Retry | None = None, image_format: str = "png",
                 headers: Mapping[str, str] | None = None, **httpx_kwargs: Any):  # fmt: skip
        super().__init__(url, api_key, timeout, retry, image_format, headers)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout, **httpx_kwargs)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PoseClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, build: Callable[[], httpx.Request], stream: bool = False, what: str = "request") -> httpx.Response:
        """Send ``build()`` until it answers < 400, retrying as :attr:`retry` says.

        Raises:
            PoseAPIError: an error status (after retries for 503). PoseConnectionError: no answer (after retries).
        """
        attempts = _Attempts(self.retry, what)
        while True:
            attempts.n += 1
            try:
                resp = self._http.send(build(), stream=stream)
            except _RETRIED_TRANSPORT as exc:
                err: PoseClientError = PoseConnectionError(f"{what}: {type(exc).__name__}: {exc}", attempts.n)
                err.__cause__ = exc
                retry_after = None
            except httpx.TransportError as exc:
                raise PoseConnectionError(f"{what}: {type(exc).__name__}: {exc}", attempts.n) from exc
            else:
                if resp.status_code < 400:
                    return resp
                try:
                    body = resp.read()
                finally:
                    resp.close()
                err = _api_error(resp.status_code, resp.headers, body, attempts.n)
                if resp.status_code not in self.retry.statuses:
                    raise err
                retry_after = err.retry_after
            time.sleep(attempts.next_wait(err, retry_after))

    def _get_json(self, path: str) -> Any:
        return self._send(lambda: self._http.build_request("GET", path), what=f"GET {path}").json()

    # ---------------------------------------------------------------------------------------------- images
    @overload
    def pose(self, image: Any, bboxes: Any = ..., *, rgb: bool = ..., render: Literal[False] = ...) -> Poses: ...
    @overload
    def pose(self, image: Any, bboxes: Any = ..., *, rgb: bool = ..., render: Literal[True]) -> bytes: ...

    def pose(self, image: Any, bboxes: Any = None, *, rgb: bool = False, render: bool = False) -> Poses | bytes:
        """Pose of the people in one image (``POST /v1/pose``).

        Args:
            image: a path or encoded bytes (JPEG, PNG, WebP, BMP; sent unchanged, EXIF orientation applied by the
                server), a uint8 [H, W, 3] numpy array in BGR order (OpenCV's; ``rgb=True`` for RGB) or a PIL
                image (both encoded as ``image_format``: lossless PNG by default).
            bboxes: optional person boxes, [N, 4] xyxy in pixels of the image (after EXIF orientation): the
                detector is skipped and these are estimated.
            rgb: a numpy ``image`` is RGB.
            render: answer the server's drawing instead: the image with boxes and skeletons, as JPEG bytes
                (``cv2.imdecode`` or PIL read them).

        Returns:
            :class:`~poseserve.results.Poses` (pixels of the image as the server decoded it), or JPEG ``bytes``
            with ``render=True``.

        Raises:
            PoseAPIError: the server refused the request (400 undecodable image, 401 key, 413 too large,
                415, 422 bad boxes, 503 after the retries, 504 deadline ...).
            PoseConnectionError: no answer after the retries.
            OSError: a path that cannot be read. ValueError: an array that is not uint8 [H, W, 3], boxes not
                [N, 4]. TypeError: an unsupported ``image`` type.
        """
        files, form = self._pose_parts(image, bboxes, rgb)
        params = {"render": "true"} if render else None

        def build() -> httpx.Request:
            return self._http.build_request("POST", "/v1/pose", files=files, data=form, params=params)

        resp = self._send(build, what="POST /v1/pose")
        return resp.content if render else Poses.from_answer(resp.json())

    __call__ = pose

    # ----------------------------------------------------------------------------------------------- server
    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: the model cards, runtimes, keypoint schema (``["keypoints"]["keypoint_names"]``) and
        batching of the server.

        Raises:
            PoseAPIError: 401 (key), 503 (models not loaded, after the retries). PoseConnectionError: no answer.
        """
        models = self._get_json("/v1/models")
        self._keypoint_names = self._models_names(models)
        return models

    def health(self) -> bool:
        """``GET /healthz``: True while the process can serve, False on 503 (a batcher's worker stopped). Not
        retried.

        Raises:
            PoseAPIError: another error status. PoseConnectionError: no answer.
        """
        return self._probe("/healthz")

    def ready(self) -> bool:
        """``GET /readyz``: True once the models are loaded and warmed up, False on 503 (loading, failed, stopped).
        Not retried.

        Raises:
            PoseAPIError: another error status. PoseConnectionError: no answer.
        """
        return self._probe("/readyz")

    def _probe(self, path: str) -> bool:
        try:
            resp = self._http.get(path)
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 503:
            return False
        if resp.status_code >= 400:
            raise _api_error(resp.status_code, resp.headers, resp.content)
        return True

    def wait_ready(self, timeout_s: float = 120.0, interval_s: float = 0.5) -> None:
        """Poll ``/readyz`` (connection failures included: the server may still be starting) until it answers 200.

        Raises:
            TimeoutError: not ready within ``timeout_s`` seconds.
        """
        end = time.monotonic() + timeout_s
        while True:
            try:
                if self.ready():
                    return
            except PoseConnectionError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{self.url} not ready within {timeout_s:g} s")
            time.sleep(interval_s)

    # ------------------------------------------------------------------------------------------------ video
    def video(self, source: str | os.PathLike | bytes, *, track: bool = True, smooth: bool = True,
              det_interval: int | None = None, stride: int = 1, max_frames: int | None = None) -> PoseVideo:  # fmt: skip
        """Pose of every ``stride``-th frame of a video (``POST /v1/pose/video``), streamed as the server computes
        it.

        The upload is read from the file in chunks (a path) and sent again whole on a retry; retries happen only
        before the answer starts (503, connection failures). The answer is read line by line while iterating.

        Args:
            source: a video file path or its bytes (MP4, MOV, MKV, WebM; the server's ``video_*`` settings decide).
            track: stable ``track_id`` per person across frames.
            smooth: One-Euro smoothing of each track's keypoints and box.
            det_interval: the detector runs every N-th frame (None: the server's setting).
            stride: process every ``stride``-th frame (the server's ``frame_stride``).
            max_frames: stop after this many processed frames.

        Returns:
            :class:`PoseVideo`: iterate it for one :class:`~poseserve.results.Poses` per processed frame (``frame``,
            ``time_s``, people with ``track_id`` when tracking); ``header`` and, once iterated, ``summary``. Close
            it (or use ``with``) when stopping early.

        Raises:
            PoseAPIError: the server refused the video before streaming (400 undecodable, 401, 413, 415, 422, 503
                after the retries); while iterating, an ``error`` line.
            PoseConnectionError: no answer after the retries, or the answer broke off.
            OSError: a path that cannot be read. TypeError: neither a path nor bytes.
        """
        chunks, size, ctype = _video_source(source)
        params = _video_params(track, smooth, det_interval, stride, max_frames)
        headers = {"Content-Type": ctype, "Content-Length": str(size)}

        def build() -> httpx.Request:
            return self._http.build_request("POST", "/v1/pose/video", content=chunks(), headers=headers,
                                            params=params)  # fmt: skip

        resp = self._send(build, stream=True, what="POST /v1/pose/video")
        return PoseVideo(resp)

    # ----------------------------------------------------------------------------------------------- stream
    def stream(self, *, track: bool = True, smooth: bool = True, det_interval: int | None = None,
               open_timeout_s: float = 10.0, max_size: int | None = 16 << 20) -> PoseSession:  # fmt: skip
        """Open a live session (the ``/v1/pose/stream`` WebSocket): send frames, receive one result per processed
        frame. Use as a context manager.

        Args:
            track, smooth, det_interval: the session's options (as for :meth:`video`).
            open_timeout_s: seconds for the connection and handshake.
            max_size: largest message received (bytes).

        Returns:
            :class:`PoseSession`.

        Raises:
            PoseAPIError: the handshake was refused (401 key, 422 options, 503 after the retries).
            PoseConnectionError: no connection after the retries.
        """
        from websockets.exceptions import InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        names = self._keypoint_names if self._keypoint_names is not None else self._models_names(self.models())
        url = f"{self.ws_url}?{_stream_query(track, smooth, det_interval)}"
        attempts = _Attempts(self.retry, "stream")
        while True:
            attempts.n += 1
            try:
                # entered as a context manager (websockets >= 17 warns otherwise); PoseSession.close exits it
                ws = connect(url, additional_headers=self.headers, open_timeout=open_timeout_s,
                             max_size=max_size).__enter__()  # fmt: skip
                return PoseSession(ws, names, self.image_format)
            except InvalidStatus as exc:
                r = exc.response
                err: PoseClientError = _api_error(r.status_code, r.headers, r.body or b"", attempts.n)
                if r.status_code not in self.retry.statuses:
                    raise err from None
                retry_after = err.retry_after
            except (OSError, TimeoutError, asyncio.TimeoutError, InvalidHandshake) as exc:  # no (complete) answer
                err = PoseConnectionError(f"stream: {type(exc).__name__}: {exc}", attempts.n)
                err.__cause__ = exc
                retry_after = None
            time.sleep(attempts.next_wait(err, retry_after))


class _VideoLines:
    """Parsing of a video's NDJSON lines (the header, frames, summary, error), shared by both iterators."""

    def __init__(self):
        self.header: dict[str, Any] = {}
        self.summary: dict[str, Any] | None = None
        self.keypoint_names: tuple[str, ...] = ()

    def line(self, text: str) -> Poses | None:
        """A :class:`Poses` for a frame line, None for the header / summary.

        Raises:
            PoseAPIError: an error line. PoseConnectionError: a line that is not JSON (a broken answer).
        """
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise PoseConnectionError(f"video answer: a line is not JSON: {text[:80]!r}") from exc
        kind = obj.get("type")
        if kind == "frame":
            h = self.header
            return Poses.from_answer({**obj, "width": h.get("width", 0), "height": h.get("height", 0),
                                      "models": h.get("models") or {}}, self.keypoint_names)  # fmt: skip
        if kind == "video":
            self.header = obj
            self.keypoint_names = tuple(obj.get("keypoint_names") or ())
        elif kind == "summary":
            self.summary = obj
        elif kind == "error":
            raise PoseAPIError.from_json(obj)
        return None


class PoseVideo(_VideoLines):
    """The answer of :meth:`PoseClient.video`, read as it arrives: iterate for a :class:`~poseserve.results.Poses`
    per processed frame (once). Close it (or use ``with``) to stop early: the server then stops decoding.

    Attributes:
        header: the ``video`` line: ``width``, ``height`` (pixels), ``fps``, ``frames`` (declared), ``models``,
            ``keypoint_names``, ``options``; read on the first step of the iteration.
        summary: the ``summary`` line (``frames``, ``tracks``, ``detector_runs``, ``scene_cuts``, ``timings_ms``,
            ``fps`` ...) once the iteration is done; None before, or when the answer ended with an error.
    """

    def __init__(self, response: httpx.Response):
        super().__init__()
        self._response = response

    def __iter__(self) -> Iterator[Poses]:
        """Yields per-frame results.

        Raises:
            PoseAPIError: an ``error`` line (a frame that failed, the deadline). PoseConnectionError: the answer
                broke off or a read timed out.
        """
        try:
            for text in self._response.iter_lines():
                if text.strip():
                    poses = self.line(text)
                    if poses is not None:
                        yield poses
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"video answer: {type(exc).__name__}: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading (the server stops the video's work)."""
        self._response.close()

    def __enter__(self) -> PoseVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SessionState:
    """A stream session's bookkeeping shared by both session classes: the frames sent (their sizes, for the
    results' ``width`` / ``height``) and the parsing of replies."""

    def __init__(self, keypoint_names: tuple[str, ...], image_format: str):
        self.keypoint_names, self.image_format = keypoint_names, image_format
        self.sent = 0
        self.sizes: dict[int, tuple[int, int]] = {}
        self.last_reply: dict[str, Any] = {}

    def frame_messages(self, image: Any, frame_id: Any, time_s: float | None, rgb: bool) -> tuple[str | None, bytes]:
        data, _, size = encode_image(image, rgb, self.image_format)
        self.sizes[self.sent] = size
        self.sent += 1
        if frame_id is None and time_s is None:
            return None, data
        return json.dumps({"type": "frame", "id": frame_id, "time_s": time_s}), data

    def reply(self, text: str | bytes) -> Poses:
        msg = json.loads(text)
        frame = msg.get("frame")
        w, h = 0, 0
        if isinstance(frame, int):
            w, h = self.sizes.get(frame, (0, 0))
            for seq in [s for s in self.sizes if s <= frame]:  # replies come in order; earlier ones were dropped
                del self.sizes[seq]
        if msg.get("type") == "error":
            raise PoseAPIError.from_json(msg, frame=frame, frame_id=msg.get("id"))
        self.last_reply = msg
        return Poses.from_answer({**msg, "width": w, "height": h}, self.keypoint_names)


class PoseSession:
    """A live pose session over the ``/v1/pose/stream`` WebSocket (:meth:`PoseClient.stream`).

    ``session(frame)`` sends one frame and waits for its result (one frame in flight: no frame is dropped). To keep
    a camera's pace, :meth:`send` frames as they come and :meth:`recv` results as they are ready: the server keeps
    only the latest waiting frame (older ones are dropped, counted in ``dropped_frames``), so the latency stays about
    one frame's processing.

    Attributes:
        keypoint_names: the pose model's keypoint names (from ``GET /v1/models``).
        last_reply: the last frame message as JSON (``dropped_frames``, ``received_frames``, ``latency_ms``, ``id``).
    """

    def __init__(self, ws, keypoint_names: tuple[str, ...], image_format: str = "png"):
        self._ws = ws
        self._state = _SessionState(keypoint_names, image_format)

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self._state.keypoint_names

    @property
    def last_reply(self) -> dict[str, Any]:
        return self._state.last_reply

    def send(self, frame: Any, *, frame_id: str | int | None = None, time_s: float | None = None,
             rgb: bool = False) -> int:  # fmt: skip
        """Send one frame.

        Args:
            frame: as :meth:`PoseClient.pose`'s ``image``.
            frame_id: comes back in the reply (``last_reply["id"]``, :attr:`PoseAPIError.frame_id`).
            time_s: the frame's capture time in seconds (the smoother's clock); None: the server's arrival time.
            rgb: a numpy ``frame`` is RGB.

        Returns:
            The frame's index in the session (0-based; the result's ``frame``).

        Raises:
            PoseConnectionError: the session is closed. ValueError / TypeError / OSError: as :func:`encode_image`.
        """
        from websockets.exceptions import ConnectionClosed

        meta, data = self._state.frame_messages(frame, frame_id, time_s, rgb)
        try:
            if meta is not None:
                self._ws.send(meta)
            self._ws.send(data)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        return self._state.sent - 1

    def recv(self, timeout: float | None = None) -> Poses:
        """The next result (frames answer in the order sent; dropped frames get none).

        Raises:
            PoseAPIError: the server could not process a frame (``frame``, ``frame_id`` say which; the session goes
                on). PoseConnectionError: the session is closed. TimeoutError: nothing within ``timeout`` seconds.
        """
        from websockets.exceptions import ConnectionClosed

        try:
            text = self._ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        return self._state.reply(text)

    def __call__(self, frame: Any, time_s: float | None = None, *, rgb: bool = False,
                 timeout: float | None = 60.0) -> Poses:  # fmt: skip
        """Send ``frame`` and wait for its result (:meth:`send` then :meth:`recv`)."""
        self.send(frame, time_s=time_s, rgb=rgb)
        return self.recv(timeout)

    def close(self) -> None:
        """Close the session (the server stops its work at once)."""
        self._ws.close()

    def __enter__(self) -> PoseSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------------ async client
class AsyncPoseClient(_Base):
    """The ``asyncio`` twin of :class:`PoseClient`: the same arguments, methods and errors, awaited
    (``await client.pose(image)``, ``async for poses in await client.video(path)``, ``async with await
    client.stream() as session``). Use as an async context manager, or ``await close()``.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float | httpx.Timeout = 60.0, retry: Retry | None = None, image_format: str = "png",
                 headers: Mapping[str, str] | None = None, **httpx_kwargs: Any):  # fmt: skip
        super().__init__(url, api_key, timeout, retry, image_format, headers)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=self.timeout, **httpx_kwargs)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPoseClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _send(self, build: Callable[[], httpx.Request], stream: bool = False,
                    what: str = "request") -> httpx.Response:  # fmt: skip
        attempts = _Attempts(self.retry, what)
        while True:
            attempts.n += 1
            try:
                resp = await self._http.send(build(), stream=stream)
            except _RETRIED_TRANSPORT as exc:
                err: PoseClientError = PoseConnectionError(f"{what}: {type(exc).__name__}: {exc}", attempts.n)
                err.__cause__ = exc
                retry_after = None
            except httpx.TransportError as exc:
                raise PoseConnectionError(f"{what}: {type(exc).__name__}: {exc}", attempts.n) from exc
            else:
                if resp.status_code < 400:
                    return resp
                try:
                    body = await resp.aread()
                finally:
                    await resp.aclose()
                err = _api_error(resp.status_code, resp.headers, body, attempts.n)
                if resp.status_code not in self.retry.statuses:
                    raise err
                retry_after = err.retry_after
            await asyncio.sleep(attempts.next_wait(err, retry_after))

    async def _get_json(self, path: str) -> Any:
        return (await self._send(lambda: self._http.build_request("GET", path), what=f"GET {path}")).json()

    @overload
    async def pose(self, image: Any, bboxes: Any = ..., *, rgb: bool = ..., render: Literal[False] = ...) -> Poses: ...
    @overload
    async def pose(self, image: Any, bboxes: Any = ..., *, rgb: bool = ..., render: Literal[True]) -> bytes: ...

    async def pose(self, image: Any, bboxes: Any = None, *, rgb: bool = False, render: bool = False) -> Poses | bytes:
        """As :meth:`PoseClient.pose` (the image is encoded in a worker thread)."""
        files, form = await asyncio.to_thread(self._pose_parts, image, bboxes, rgb)
        params = {"render": "true"} if render else None

        def build() -> httpx.Request:
            return self._http.build_request("POST", "/v1/pose", files=files, data=form, params=params)

        resp = await self._send(build, what="POST /v1/pose")
        return resp.content if render else Poses.from_answer(resp.json())

    __call__ = pose

    async def models(self) -> dict[str, Any]:
        """As :meth:`PoseClient.models`."""
        models = await self._get_json("/v1/models")
        self._keypoint_names = self._models_names(models)
        return models

    async def health(self) -> bool:
        """As :meth:`PoseClient.health`."""
        return await self._probe("/healthz")

    async def ready(self) -> bool:
        """As :meth:`PoseClient.ready`."""
        return await self._probe("/readyz")

    async def _probe(self, path: str) -> bool:
        try:
            resp = await self._http.get(path)
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 503:
            return False
        if resp.status_code >= 400:
            raise _api_error(resp.status_code, resp.headers, resp.content)
        return True

    async def wait_ready(self, timeout_s: float = 120.0, interval_s: float = 0.5) -> None:
        """As :meth:`PoseClient.wait_ready`."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                if await self.ready():
                    return
            except PoseConnectionError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{self.url} not ready within {timeout_s:g} s")
            await asyncio.sleep(interval_s)

    async def video(self, source: str | os.PathLike | bytes, *, track: bool = True, smooth: bool = True,
                    det_interval: int | None = None, stride: int = 1,
                    max_frames: int | None = None) -> AsyncPoseVideo:  # fmt: skip
        """As :meth:`PoseClient.video`; returns an :class:`AsyncPoseVideo` (``async for``)."""
        chunks, size, ctype = _video_source(source)
        params = _video_params(track, smooth, det_interval, stride, max_frames)
        headers = {"Content-Type": ctype, "Content-Length": str(size)}

        async def achunks() -> AsyncIterator[bytes]:
            it = chunks()
            while (block := await asyncio.to_thread(next, it, None)) is not None:
                yield block

        def build() -> httpx.Request:
            return self._http.build_request("POST", "/v1/pose/video", content=achunks(), headers=headers,
                                            params=params)  # fmt: skip

        resp = await self._send(build, stream=True, what="POST /v1/pose/video")
        return AsyncPoseVideo(resp)

    async def stream(self, *, track: bool = True, smooth: bool = True, det_interval: int | None = None,
                     open_timeout_s: float = 10.0, max_size: int | None = 16 << 20) -> AsyncPoseSession:  # fmt: skip
        """As :meth:`PoseClient.stream`; returns an :class:`AsyncPoseSession`."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidStatus

        names = self._keypoint_names if self._keypoint_names is not None else self._models_names(await self.models())
        url = f"{self.ws_url}?{_stream_query(track, smooth, det_interval)}"
        attempts = _Attempts(self.retry, "stream")
        while True:
            attempts.n += 1
            try:
                ws = await connect(url, additional_headers=self.headers, open_timeout=open_timeout_s,
                                   max_size=max_size)  # fmt: skip
                return AsyncPoseSession(ws, names, self.image_format)
            except InvalidStatus as exc:
                r = exc.response
                err: PoseClientError = _api_error(r.status_code, r.headers, r.body or b"", attempts.n)
                if r.status_code not in self.retry.statuses:
                    raise err from None
                retry_after = err.retry_after
            except (OSError, TimeoutError, asyncio.TimeoutError, InvalidHandshake) as exc:  # no (complete) answer
                err = PoseConnectionError(f"stream: {type(exc).__name__}: {exc}", attempts.n)
                err.__cause__ = exc
                retry_after = None
            await asyncio.sleep(attempts.next_wait(err, retry_after))


class AsyncPoseVideo(_VideoLines):
    """The ``async for`` twin of :class:`PoseVideo` (``header``, ``summary``, ``await close()``,
    ``async with``)."""

    def __init__(self, response: httpx.Response):
        super().__init__()
        self._response = response

    async def __aiter__(self) -> AsyncIterator[Poses]:
        try:
            async for text in self._response.aiter_lines():
                if text.strip():
                    poses = self.line(text)
                    if poses is not None:
                        yield poses
        except httpx.TransportError as exc:
            raise PoseConnectionError(f"video answer: {type(exc).__name__}: {exc}") from exc
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop reading (the server stops the video's work)."""
        await self._response.aclose()

    async def __aenter__(self) -> AsyncPoseVideo:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncPoseSession:
    """The ``asyncio`` twin of :class:`PoseSession` (``await send``, ``await recv``, ``await session(frame)``,
    ``async with``)."""

    def __init__(self, ws, keypoint_names: tuple[str, ...], image_format: str = "png"):
        self._ws = ws
        self._state = _SessionState(keypoint_names, image_format)

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self._state.keypoint_names

    @property
    def last_reply(self) -> dict[str, Any]:
        return self._state.last_reply

    async def send(self, frame: Any, *, frame_id: str | int | None = None, time_s: float | None = None,
                   rgb: bool = False) -> int:  # fmt: skip
        """As :meth:`PoseSession.send`."""
        from websockets.exceptions import ConnectionClosed

        meta, data = await asyncio.to_thread(self._state.frame_messages, frame, frame_id, time_s, rgb)
        try:
            if meta is not None:
                await self._ws.send(meta)
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        return self._state.sent - 1

    async def recv(self, timeout: float | None = None) -> Poses:
        """As :meth:`PoseSession.recv`."""
        from websockets.exceptions import ConnectionClosed

        try:
            text = await asyncio.wait_for(self._ws.recv(), timeout)
        except ConnectionClosed as exc:
            raise PoseConnectionError(f"stream closed: {exc}") from exc
        except asyncio.TimeoutError:  # not yet TimeoutError on Python 3.10
            raise TimeoutError(f"no reply within {timeout} s") from None
        return self._state.reply(text)

    async def __call__(self, frame: Any, time_s: float | None = None, *, rgb: bool = False,
                       timeout: float | None = 60.0) -> Poses:  # fmt: skip
        """As :meth:`PoseSession.__call__`."""
        await self.send(frame, time_s=time_s, rgb=rgb)
        return await self.recv(timeout)

    async def close(self) -> None:
        """As :meth:`PoseSession.close`."""
        await self._ws.close()

    async def __aenter__(self) -> AsyncPoseSession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
