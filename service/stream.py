"""``GET /v1/pose/stream`` (alias ``/pose/stream``): a live pose session over a WebSocket.

The client sends encoded frames as binary messages (JPEG, PNG, WebP, BMP; at most ``max_upload_bytes`` each) and,
optionally, JSON text messages: ``{"type": "frame", "id": ..., "time_s": ...}`` names the next binary frame (its id
comes back in the reply; ``time_s`` is its capture time, the smoother's clock: without it, the time the server received
it) and ``{"type": "options", "track", "smooth", "det_interval"}`` restarts the session's tracks with new options (as
the query parameters of the same names do at connect). The server answers one JSON message per processed frame:
``{"type": "frame", "frame", "id", "time_s", "persons": [{"track_id", ...}], "dropped_frames", "latency_ms"}``, or
``{"type": "error", ...}`` for a frame that could not be processed (the session goes on).

Latest-frame semantics: a session holds at most one waiting frame. A frame that arrives while another waits replaces it
(the older one is dropped, counted in ``dropped_frames`` and ``pose_video_frames_dropped_total``), so however fast a
client sends, the latency stays about one frame's processing. Frames of concurrent sessions share the pipeline's
batchers; each frame's pixels and crops are admitted as a ``POST /pose`` image's are, and the session holds a request
slot and a stream slot (``max_streams``) while it is open. API keys apply as for ``POST /pose`` (headers; or the
``api_key`` query parameter, for browsers). A session that sends nothing for ``stream_idle_timeout_s``, or does not
read its replies for as long, is closed; closing the socket stops its work at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from core.errors import InvalidParameterError, NotReadyError, PayloadTooLargeError, PoseServiceError
from inference.context import RequestContext
from inference.encoding import error_line, frame_line
from inference.imageio import decode_image
from inference.stream import PoseStream, StreamOptions
from service.deps import check_api_key
from service.routes import error_response
from service.state import ServiceState

log = logging.getLogger("service")
router = APIRouter()

#: WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_AGAIN = 1000, 1001, 1008, 1013


@dataclass
class _Frame:
    seq: int
    data: bytes
    id: object
    time_s: float
    received: float


class LiveSession:
    """One WebSocket session: its waiting frame (at most one), counters, stream state and admitted request."""

    def __init__(self, ws: WebSocket, state: ServiceState, ctx: RequestContext, options: StreamOptions):
        self.ws, self.state, self.ctx = ws, state, ctx
        self.settings = state.settings
        self.stream = PoseStream(state.pipeline, options)
        self.new_options: StreamOptions | None = None
        self.waiting: _Frame | None = None
        self.ready = asyncio.Event()
        self.received = self.processed = self.dropped = 0
        self.t0 = time.monotonic()
        self.next_meta: dict = {}
        self.send_lock = asyncio.Lock()
        state.live_streams.add(self.stream)

    async def send(self, message: dict) -> None:
        """Send one JSON message; a client that does not read it within the idle timeout is closed."""
        async with self.send_lock:
            text = json.dumps(message, separators=(",", ":"))
            await asyncio.wait_for(self.ws.send_text(text), self.settings.stream_idle_timeout_s)

    async def error(self, exc: PoseServiceError, frame: _Frame | None = None) -> None:
        msg = error_line(exc)
        if frame is not None:
            msg.update(frame=frame.seq, id=frame.id)
        await self.send(msg)

    def control(self, text: str) -> None:
        """A JSON text message: the next frame's id / time, or new options.

        Raises:
            InvalidParameterError: not JSON, not an object, an unknown type or a bad option.
        """
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidParameterError(f"control message is not JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise InvalidParameterError('control message must be a JSON object with a "type"')
        kind = msg.get("type")
        if kind == "frame":
            t = msg.get("time_s")
            if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not t == t):
                raise InvalidParameterError("time_s must be a number (seconds)")
            if not isinstance(msg.get("id", None), (str, int, float, type(None))):
                raise InvalidParameterError("id must be a string or a number")
            self.next_meta = {"id": msg.get("id"), "time_s": t}
        elif kind == "options":
            self.new_options = _options(self.settings, msg.get("track"), msg.get("smooth"), msg.get("det_interval"))
        else:
            raise InvalidParameterError(f'unknown control message type {kind!r}: "frame" or "options"')

    def put(self, data: bytes) -> None:
        """A binary frame arrived: it becomes the waiting frame (a frame still waiting is dropped)."""
        meta, self.next_meta = self.next_meta, {}
        now = time.monotonic()
        t = meta.get("time_s")
        frame = _Frame(self.received, data, meta.get("id"), float(t) if t is not None else now - self.t0, now)
        self.received += 1
        if self.waiting is not None:
            self.dropped += 1
            self.state.video_frames_dropped.labels("stream").inc()
        self.waiting = frame
        self.ready.set()

    def process(self, frame: _Frame) -> dict:
        """Decode and process one frame (in the thread pool); its pixels and crops go back when done."""
        s, ctx = self.settings, self.ctx
        ctx.start_work()
        try:
            ctx.renew(s.request_timeout_s)
            t = time.perf_counter()
            image = decode_image(frame.data, s.max_upload_bytes, min(s.max_image_pixels, s.video_max_pixels),
                                 lambda w, h: ctx.reserve_pixels(w * h))  # fmt: skip
            self.state.video_decode.labels("stream").observe(time.perf_counter() - t)
            if self.new_options is not None:
                self.state.live_streams.discard(self.stream)
                self.stream = PoseStream(self.state.pipeline, self.new_options)
                self.state.live_streams.add(self.stream)
                self.new_options = None
            fr = self.stream.process(image, frame.time_s, frame.seq, ctx)
        finally:
            ctx.return_budget()
            ctx.release()
        self.processed += 1
        self.state.video_frames.labels("stream").inc()
        self.state.persons.inc(len(fr.result.scores))
        return fr

    async def process_loop(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            frame, self.waiting = self.waiting, None
            if frame is None:
                continue
            try:
                fr = await run_in_threadpool(self.process, frame)
            except Exception as exc:  # noqa: BLE001 - a frame's failure is that frame's answer; the session goes on
                if self.ctx.cancelled == "disconnected":
                    return
                if not isinstance(exc, PoseServiceError):
                    log.exception("stream frame %d failed", frame.seq)
                    exc = PoseServiceError(f"internal error: {type(exc).__name__}")
                elif exc.status >= 500:
                    log.error("stream frame %d: %s", frame.seq, exc)
                await self.error(exc, frame)
                continue
            line = frame_line(fr)
            line.update(id=frame.id, dropped_frames=self.dropped, received_frames=self.received,
                        latency_ms=round((time.monotonic() - frame.received) * 1000.0, 2))  # fmt: skip
            await self.send(line)

    async def receive_loop(self) -> None:
        limit = self.settings.max_upload_bytes
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.receive(), self.settings.stream_idle_timeout_s)
            except TimeoutError:
                await _close(self.ws, CLOSE_NORMAL, "idle: no message within the idle timeout", self.settings)
                return
            if msg["type"] == "websocket.disconnect":
                return
            data, text = msg.get("bytes"), msg.get("text")
            try:
                if data is not None:
                    if len(data) > limit:
                        raise PayloadTooLargeError(f"frame of {len(data)} bytes exceeds the limit of {limit} bytes")
                    self.put(data)
                elif text is not None:
                    self.control(text)
            except PoseServiceError as exc:
                await self.error(exc)

    def close(self) -> None:
        self.ctx.cancel("disconnected")
        self.state.live_streams.discard(self.stream)
        self.ctx.release()


def _options(settings, track, smooth, det_interval) -> StreamOptions:
    for name, v in (("track", track), ("smooth", smooth)):
        if v is not None and not isinstance(v, bool):
            raise InvalidParameterError(f"{name} must be true or false")
    if det_interval is not None and (not isinstance(det_interval, int) or isinstance(det_interval, bool)
                                     or not 1 <= det_interval <= 1000):  # fmt: skip
        raise InvalidParameterError("det_interval must be an integer from 1 to 1000")
    return StreamOptions.from_settings(settings, track=track, smooth=smooth, det_interval=det_interval)


async def _close(ws: WebSocket, code: int, reason: str, settings) -> None:
    """Close the session, waiting at most ``stream_idle_timeout_s`` for room to send the close frame: a client that
    reads nothing (its socket's buffers full) cannot hold the session, and its slots, open."""
    try:
        await asyncio.wait_for(ws.close(code, reason), settings.stream_idle_timeout_s)
    except TimeoutError:
        log.info("stream session: the close frame could not be sent (the client reads nothing)")


async def _refuse(ws: WebSocket, exc: PoseServiceError) -> None:
    """Refuse the handshake with the JSON error as an HTTP answer where the server supports it (uvicorn does), else
    close with a policy / try-again code naming the problem."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(error_response(exc))
    else:
        await ws.close(CLOSE_TRY_AGAIN if exc.status == 503 else CLOSE_POLICY, str(exc)[:120])


@router.websocket("/v1/pose/stream")
@router.websocket("/pose/stream")  # the unversioned alias
async def pose_stream(
    ws: WebSocket,
    track: Annotated[bool, Query()] = True,
    smooth: Annotated[bool, Query()] = True,
    det_interval: Annotated[int | None, Query(ge=1, le=1000)] = None,
    api_key: Annotated[str | None, Query()] = None,
):
    """A live session: binary frames in, one JSON message per processed frame out (module docstring)."""
    state: ServiceState = ws.app.state.service
    try:
        check_api_key(state, ws.headers, api_key)
        if state.error is not None:
            raise NotReadyError(f"models failed to load: {state.error}", retry_after_s=30)
        if not state.ready or state.pipeline is None:
            raise NotReadyError("models are loading; retry when GET /readyz answers 200")
        if state.pipeline.detector is None:
            raise InvalidParameterError("streams need a person detector; none is configured")
        options = _options(state.settings, track, smooth, det_interval)
        ctx = state.admission.admit_stream(float("inf"))
    except PoseServiceError as exc:
        if exc.status == 503:
            state.rejections.labels(getattr(exc, "reason", "not_ready")).inc()
        await _refuse(ws, exc)
        return
    session = LiveSession(ws, state, ctx, options)
    try:
        await ws.accept()
        worker = asyncio.ensure_future(session.process_loop())
        receiver = asyncio.ensure_future(session.receive_loop())
        try:
            done, _ = await asyncio.wait({worker, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if worker in done and isinstance(worker.exception(), TimeoutError):  # the client does not read its replies
                await _close(ws, CLOSE_POLICY, "replies not read within the idle timeout", state.settings)
        finally:
            receiver.cancel()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError) as exc:
        log.info("stream session ended: %s", type(exc).__name__)
    finally:
        session.close()
