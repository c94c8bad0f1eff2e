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

Importing this module needs neither onnxruntime, OpenCV nor torch. The blocking client lives here; the rest in private
modules re-exported here (import from ``poseserve.client``): ``_errors``, ``_retry``, ``_images`` (:func:`encode_image`),
``_requests`` (what both clients send), ``_video`` (NDJSON answers), ``_session`` (stream sessions), ``_async_client``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import httpx

from poseserve._async_client import AsyncPoseClient
from poseserve._errors import PoseAPIError, PoseClientError, PoseConnectionError, _api_error
from poseserve._images import encode_image as encode_image  # public: the bytes a client sends for an image
from poseserve._requests import _Base, _stream_query, _video_params, _video_source
from poseserve._retry import _RETRIED_TRANSPORT, Retry, _Attempts
from poseserve._session import AsyncPoseSession, PoseSession, _handshake_failure
from poseserve._video import AsyncPoseVideo, PoseVideo
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
        from websockets.exceptions import InvalidHandshake
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
            except (OSError, TimeoutError, asyncio.TimeoutError, InvalidHandshake) as exc:  # InvalidStatus too
                err, retry_after = _handshake_failure(exc, self.retry.statuses, attempts.n)
            time.sleep(attempts.next_wait(err, retry_after))
