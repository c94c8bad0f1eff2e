"""``POST /v1/pose/video`` (alias ``/pose/video``): a video upload in, pose per frame with track IDs out, streamed as NDJSON (or an annotated MP4).

admit -> spool -> probe -> stream: the request takes a request slot and a stream slot (``Admission.admit_stream``) when
its body starts arriving; the body (multipart field ``file`` or a raw ``video/*`` body) is spooled to a temporary file
as it arrives (never whole in memory; bounded by ``video_max_bytes``); the container and stream headers are checked
(``inference.video.open_video``: container / codec allow-lists, resolution, declared frames and duration) before any
frame is decoded, so a hostile file gets its 4xx before the answer starts. Then one worker thread per video decodes
and processes its frames in order (``inference.stream.PoseStream`` over the shared pipeline: frames of concurrent
videos and streams meet in its batchers) and hands each frame's line to the response through a queue of
``stream_frames_in_flight`` lines: a client that reads slowly slows its own decoding, nothing piles up. A client that
goes away or a passed deadline stops the decoding at the next frame; one that stops reading (a line waits
``stream_idle_timeout_s`` to be sent) is dropped. An error once streaming began is a last ``{"type": "error"}`` line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect

from core.errors import (
    ClientDisconnectedError,
    InvalidParameterError,
    OverloadedError,
    PayloadTooLargeError,
    PoseServiceError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
    VideoDecodeError,
)
from inference.context import RequestContext
from inference.encoding import error_line, frame_line, ndjson_line, summary_line, video_header
from inference.render import render_poses
from inference.stream import PoseStream, StreamOptions
from inference.video import VideoLimits, VideoReader, VideoWriter, open_video
from service.deps import APIKeyDep, PipelineDep, SettingsDep, StateDep
from service.parsing import check_declared_size
from service.routes import body_started, run_watched
from service.schemas import ErrorResponse
from service.state import ServiceState

log = logging.getLogger("service")
router = APIRouter()

#: Content-Types accepted for a raw video body (besides multipart/form-data).
VIDEO_CONTENT_TYPES = ("video/", "application/octet-stream")
#: In-memory part of a spooled upload; beyond it the body goes to a temporary file.
SPOOL_MEMORY_BYTES = 1 << 20
_END = object()


async def spool_upload(request: Request, max_bytes: int):
    """The video of a request, spooled as it arrives: a multipart field ``file`` or a raw ``video/*`` body.

    Returns:
        A binary file object positioned at 0 (``SpooledTemporaryFile``: memory up to 1 MiB, then a temporary file);
        the caller closes it.

    Raises:
        UnsupportedMediaTypeError: another Content-Type. PayloadTooLargeError: over ``max_bytes``.
        InvalidParameterError: multipart without a ``file`` field. VideoDecodeError: a malformed multipart body.
        ClientDisconnectedError: the client went away during the upload.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if ctype == "multipart/form-data":
            parser = MultiPartParser(request.headers, request.stream(), max_files=1, max_fields=16)
            parser.spool_max_size = SPOOL_MEMORY_BYTES
            try:
                form = await parser.parse()
            except (PoseServiceError, ClientDisconnect):
                raise
            except Exception as exc:  # MultiPartException, starlette's HTTPException, the parser's ValueErrors
                raise VideoDecodeError(f"malformed multipart body: {getattr(exc, 'message', exc)}") from exc
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                await form.close()
                raise InvalidParameterError("multipart body has no file field named 'file'")
            if upload.size is not None and upload.size > max_bytes:
                await form.close()
                raise PayloadTooLargeError(f"uploaded video exceeds the limit of {max_bytes} bytes")
            upload.file.seek(0)
            return upload.file
        if any(ctype.startswith(t) for t in VIDEO_CONTENT_TYPES):
            f = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
            size = 0
            try:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLargeError(f"request body exceeds the video limit of {max_bytes} bytes")
                    f.write(chunk)
            except BaseException:
                f.close()
                raise
            f.seek(0)
            return f
    except ClientDisconnect:
        raise ClientDisconnectedError("the client disconnected during the upload") from None
    except OSError as exc:  # the temporary directory is full or unwritable: the server's problem, not the upload's
        raise OverloadedError(f"cannot spool the upload: {exc.strerror or exc}", "disk") from None
    raise UnsupportedMediaTypeError(
        f"Content-Type {ctype or '(none)'} is not accepted: send multipart/form-data (field 'file') or a video/* body"
    )


class VideoJob:
    """One video being processed: its spooled upload, reader, stream and admitted request, and the worker thread that
    decodes and processes its frames. Closes everything it holds once (:meth:`close`)."""

    def __init__(self, state: ServiceState, ctx: RequestContext, upload, reader: VideoReader, stream: PoseStream):
        self.state, self.ctx, self.upload, self.reader, self.stream = state, ctx, upload, reader, stream
        self._closed = False
        self._lock = threading.Lock()

    def frames(self, stride: int, max_frames: int | None):
        """Decode and process the frames in order: yields ``(VideoFrame, FrameResult)``."""
        ctx, reader, state = self.ctx, self.reader, self.state

        def stop() -> bool:
            return ctx.cancelled is not None or ctx.remaining_s < 0

        decoded_s = reader.decode_s
        for frame in reader.frames(stride=stride, max_frames=max_frames, should_stop=stop):
            state.video_decode.labels("video").observe(reader.decode_s - decoded_s)
            decoded_s = reader.decode_s
            fr = self.stream.process(frame.image, frame.time_s, frame.index, ctx)
            state.video_frames.labels("video").inc()
            state.persons.inc(len(fr.result.scores))
            yield frame, fr
        ctx.check()  # stopped by a deadline or a disconnect: say so

    def close(self) -> None:
        """Close the reader and the spooled upload, forget the stream (the worker's hold on the request is released by
        whoever took it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.state.live_streams.discard(self.stream)
        for f in (self.reader.close, self.upload.close):
            try:
                f()
            except Exception:  # noqa: BLE001 - closing must not mask the answer
                log.debug("closing a video job", exc_info=True)


def _line(obj: dict) -> bytes:
    return ndjson_line(obj).encode()


def _run_lines(job: VideoJob, stride: int, max_frames: int | None, emit: Callable[[object], bool]) -> None:
    """The worker thread of an NDJSON answer: every frame's line, then the summary (or an error line)."""
    t0 = time.perf_counter()
    try:
        for _, fr in job.frames(stride, max_frames):
            if not emit(frame_line(fr)):
                return
        emit(summary_line(job.stream, job.reader, time.perf_counter() - t0))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the answer's last line
        if not isinstance(exc, PoseServiceError) or exc.status >= 500:
            log.error(
                "POST /pose/video failed while streaming: %s", exc, exc_info=not isinstance(exc, PoseServiceError)
            )
        emit(error_line(exc))
    finally:
        job.close()
        job.ctx.release()  # the worker's hold (taken in _ndjson)
        emit(_END)


class _NDJSONResponse(StreamingResponse):
    """A streamed answer that runs ``on_close`` once the response ends, however it ends (the client may be gone
    before the first line, when the body generator never starts). A line that cannot be sent within
    ``send_timeout_s`` (the client reads nothing, its socket's buffers are full) ends it."""

    def __init__(self, content, on_close: Callable[[], None], send_timeout_s: float, **kw):
        super().__init__(content, **kw)
        self.on_close = on_close
        self.send_timeout_s = send_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        async def send_in_time(message) -> None:
            await asyncio.wait_for(send(message), self.send_timeout_s)

        try:
            await super().__call__(scope, receive, send_in_time)
        except TimeoutError:
            log.info("POST /pose/video: the client read nothing for %g s; answer dropped", self.send_timeout_s)
        finally:
            self.on_close()


def _ndjson(job: VideoJob, stride: int, max_frames: int | None, in_flight: int, header: dict) -> StreamingResponse:
    """The streamed answer: the header line, then the worker's lines through a queue of ``in_flight`` lines."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue = asyncio.Queue()
    room = threading.Semaphore(in_flight)
    gone = threading.Event()
    finished = threading.Event()
    closed = threading.Lock()

    def emit(item) -> bool:
        while not room.acquire(timeout=0.1):
            if gone.is_set():
                return False
        if gone.is_set():
            return False
        loop.call_soon_threadsafe(lines.put_nowait, item)
        return True

    async def body() -> AsyncIterator[bytes]:
        yield _line(header)
        while True:
            item = await lines.get()
            room.release()
            if item is _END:
                finished.set()
                return
            yield _line(item)

    def on_close() -> None:
        if not closed.acquire(blocking=False):
            return
        if not finished.is_set():  # the client went away (or the server stops): stop decoding now
            job.ctx.cancel("disconnected")
            gone.set()
            job.state.disconnects.inc()
        job.ctx.release()  # the handler's hold

    job.ctx.start_work()
    threading.Thread(target=_run_lines, args=(job, stride, max_frames, emit), name="video-job", daemon=True).start()
    idle_s = job.state.settings.stream_idle_timeout_s
    return _NDJSONResponse(
        body(), on_close, idle_s, media_type="application/x-ndjson", headers={"X-Accel-Buffering": "no"}
    )


def _render(job: VideoJob, stride: int, max_frames: int | None, path: str, names, skeleton, thr: float) -> int:
    """Process every frame and write the annotated MP4 to ``path``; returns the frames written."""
    info = job.reader.info
    fps = (info.fps or 25.0) / stride
    with VideoWriter(path, info.width, info.height, fps) as writer:
        for frame, fr in job.frames(stride, max_frames):
            r = fr.result
            writer.write(render_poses(frame.image, r.bboxes, r.keypoints, kpt_score_thr=thr, skeleton=skeleton,
                                      keypoint_names=names, track_ids=fr.track_ids))  # fmt: skip
        return writer.frames_written


async def _rendered_mp4(job: VideoJob, request: Request, stride: int, max_frames: int | None, pipeline) -> FileResponse:
    """Process the whole video into an annotated MP4 (a temporary file answered as ``video/mp4``)."""
    fd, path = tempfile.mkstemp(suffix=".mp4", prefix="pose-render-")
    os.close(fd)
    schema = pipeline.pose.card.schema
    skeleton = schema.skeleton if schema is not None else ()
    names = pipeline.pose.card.keypoint_names

    def work() -> int:
        try:
            return _render(job, stride, max_frames, path, names, skeleton, 0.3)
        finally:
            job.close()

    try:
        await run_watched(request, job.ctx, work)  # the worker's hold on the request, the deadline, a disconnect
    except BaseException:
        os.unlink(path)
        raise
    finally:
        job.ctx.release()  # the handler's hold
    return FileResponse(path, media_type="video/mp4", filename="pose.mp4", background=BackgroundTask(os.unlink, path))


VIDEO_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary", "description": "MP4, MOV, MKV, WebM"}},
            }
        },
        **{ct: {"schema": {"type": "string", "format": "binary"}} for ct in ("video/mp4", "application/octet-stream")},
    },
}


_NDJSON_EXAMPLE = (
    '{"type":"video","width":1280,"height":720,"fps":30.0,"frames":300,"models":{},"keypoint_names":[],"options":{}}\n'
    '{"type":"frame","frame":0,"time_s":0.0,"persons":[{"track_id":1,"bbox":[10,20,200,400],"bbox_score":0.9,'
    '"keypoints":[[50.0,60.0,0.9]],"score":0.6}],"detected":true,"scene_cut":false}\n'
    '{"type":"summary","frames":300,"tracks":1,"detector_runs":300}\n'
)
_VIDEO_ROUTE = {
    "responses": {
        200: {
            "description": "NDJSON lines as they are computed, or with `render=true` an annotated MP4",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}, "example": _NDJSON_EXAMPLE},
                "video/mp4": {"schema": {"type": "string", "format": "binary"}, "example": "(MP4 bytes)"},
            },
        },
        **{code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 415, 422, 503, 504)},
    },
    "response_class": StreamingResponse,
    "dependencies": [APIKeyDep],
    "openapi_extra": {"requestBody": VIDEO_REQUEST_BODY},
}


@router.post("/v1/pose/video", **_VIDEO_ROUTE)
@router.post("/pose/video", include_in_schema=False, **_VIDEO_ROUTE)  # the unversioned alias
async def pose_video(
    request: Request,
    pipeline: PipelineDep,
    settings: SettingsDep,
    state: StateDep,
    track: Annotated[bool, Query(description="stable track_id per person across frames")] = True,
    smooth: Annotated[bool, Query(description="One-Euro smoothing of each track's keypoints and box")] = True,
    det_interval: Annotated[
        int | None, Query(ge=1, le=1000, description="the detector runs every N-th frame (default: the setting)")
    ] = None,
    frame_stride: Annotated[int, Query(ge=1, le=1000, description="process every N-th frame")] = 1,
    max_frames: Annotated[int | None, Query(ge=1, description="stop after this many processed frames")] = None,
    render: Annotated[bool, Query(description="answer an annotated MP4 instead of NDJSON")] = False,
):
    """Video in (multipart field ``file`` or a raw ``video/*`` body); NDJSON out as it is computed: a ``video`` line,
    a ``frame`` line per processed frame (persons with ``track_id``), a ``summary`` line (or an ``error`` line)."""
    check_declared_size(request, settings.video_max_bytes)
    if pipeline.detector is None:
        raise InvalidParameterError("video needs a person detector; none is configured")
    request = await body_started(request)
    ctx = state.admission.admit_stream(settings.video_timeout_s)
    upload = reader = None
    try:
        try:
            upload = await asyncio.wait_for(spool_upload(request, settings.video_max_bytes), ctx.remaining_s)
        except TimeoutError:
            raise RequestTimeoutError("the video did not arrive within the request deadline") from None
        reader = await run_in_threadpool(open_video, upload, VideoLimits.from_settings(settings))
        info = reader.info
        ctx.reserve_pixels(info.width * info.height * (settings.stream_frames_in_flight + int(render)))
        options = StreamOptions.from_settings(settings, track=track, smooth=smooth, det_interval=det_interval)
    except BaseException:
        for f in (reader, upload):
            if f is not None:
                f.close()
        ctx.release()
        raise
    stream = PoseStream(pipeline, options)
    state.live_streams.add(stream)
    job = VideoJob(state, ctx, upload, reader, stream)
    if render:
        return await _rendered_mp4(job, request, frame_stride, max_frames, pipeline)
    header = video_header(info, pipeline, options)
    return _ndjson(job, frame_stride, max_frames, settings.stream_frames_in_flight, header)
