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
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal, overload

import httpx

from poseserve._errors import PoseAPIError, PoseClientError, PoseConnectionError, _api_error
from poseserve._images import encode_image
from poseserve._requests import _Base, _stream_query, _video_params, _video_source
from poseserve._retry import _RETRIED_TRANSPORT, Retry, _Attempts
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
