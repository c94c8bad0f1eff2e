"""Decoding: :func:`open_video` checks the header, :class:`VideoReader` decodes frame by frame with the limits
(see :mod:`inference.video`)."""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO

import av
import av.error
import numpy as np

from core.errors import PayloadTooLargeError, PoseServiceError, UnsupportedMediaTypeError, VideoDecodeError
from inference.video.limits import (
    _DEFAULT_INTERVAL_S,
    _PROTOCOLS,
    DECODE_THREADS,
    MAX_LEADING_ERRORS,
    NETWORK_SCHEMES,
    VideoFrame,
    VideoInfo,
    VideoLimits,
    _av_message,
    _redact,
    _size_of,
)


class VideoReader:
    """A video opened by :func:`open_video`; a context manager (``close`` on exit). Not thread-safe.

    Attributes:
        info: the header's facts (:class:`VideoInfo`), checked against the limits.
        limits: the limits in force.
        frames_decoded: frames decoded so far (all of them, also those skipped by ``stride``).
        corrupt_frames: decoded frames FFmpeg flagged as damaged (error concealment); they are still yielded.
        decode_s: wall seconds spent inside FFmpeg so far (opening included): what ``limits.max_decode_s`` bounds.
    """

    def __init__(self, container, stream, info: VideoInfo, limits: VideoLimits, decode_s: float, owned_file=None):
        self.info = info
        self.limits = limits
        self.frames_decoded = 0
        self.corrupt_frames = 0
        self.decode_s = decode_s
        self._container = container
        self._stream = stream
        self._file = owned_file
        self._av_frames: Iterator | None = None
        self._packets: Iterator | None = None
        self._error: BaseException | None = None  # raised again by a later frames() call
        self._t0: float | None = None  # pts time of the first frame
        self._last_time = -math.inf
        self._closed = False

    # -- decoding -------------------------------------------------------------------------------------------------

    def frames(
        self,
        stride: int = 1,
        max_frames: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[VideoFrame]:
        """Decode the video, yielding every ``stride``-th frame (those with ``index % stride == 0``).

        Frames are decoded one at a time and only the yielded ones are converted to RGB; the reader holds no frame
        beyond the current one. Calling ``frames`` again continues where the previous iteration stopped; after an
        error, it raises that error again. The arguments are checked at the call, the limits while iterating.

        Args:
            stride: yield one frame in ``stride`` (>= 1); the others are decoded (and checked) but not converted.
            max_frames: stop after yielding this many frames (None: to the end).
            should_stop: called before each frame is decoded; the iteration ends (no error) when it returns True.

        Yields:
            :class:`VideoFrame` (``image`` uint8 [H, W, 3] RGB).

        Raises:
            PayloadTooLargeError: a frame over ``max_pixels``, more decoded frames than ``max_frames``, a timestamp past
                ``max_duration_s``, or ``max_decode_s`` of decoding.
            VideoDecodeError: a read or decode failure (naming the frame index), or no frame decodable at all.
            ValueError: a bad ``stride`` / ``max_frames``, or a closed reader.
        """
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        if self._closed:
            raise ValueError("the video reader is closed")
        if self._error is not None:
            raise self._error
        if self._av_frames is None:
            self._av_frames = self._decoded()
        return self._iter_frames(stride, max_frames, should_stop)

    def _iter_frames(
        self, stride: int, max_frames: int | None, should_stop: Callable[[], bool] | None
    ) -> Iterator[VideoFrame]:
        assert self._av_frames is not None
        yielded = 0
        while max_frames is None or yielded < max_frames:
            if should_stop is not None and should_stop():
                return
            self._check_decode_time()
            t = time.perf_counter()
            try:
                frame = next(self._av_frames, None)
                if frame is None:
                    return
                index = self.frames_decoded - 1
                time_s = self._frame_time(frame, index)
                image = self._to_rgb(frame, index) if index % stride == 0 else None
            except PoseServiceError as exc:
                self._error = exc
                raise
            finally:
                self.decode_s += time.perf_counter() - t
            if image is not None:
                yielded += 1
                yield VideoFrame(index=index, time_s=time_s, image=image)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decoded PyAV frames, each checked (size, count); read and decode errors mapped to our errors."""
        lim = self.limits
        packets = self._container.demux(self._stream)
        self._packets = packets
        failed = 0
        while True:
            try:
                packet = next(packets, None)
            except Exception as exc:  # av.error.*: a demuxer failure (truncated, corrupt, I/O timeout)
                raise self._read_error(exc, "cannot read the video") from exc
            if packet is None:
                break
            try:
                decoded = packet.decode()
            except Exception as exc:
                cc = self._stream.codec_context
                if lim.max_pixels is not None and cc.width * cc.height > lim.max_pixels:
                    raise PayloadTooLargeError(
                        f"video frame {self.frames_decoded} is {cc.width}x{cc.height} = {cc.width * cc.height} pixels, "
                        f"the limit is {lim.max_pixels} pixels"
                    ) from exc
                if self.frames_decoded == 0 and failed < MAX_LEADING_ERRORS:
                    failed += 1  # a stream joined between key frames decodes from its next key frame
                    continue
                raise self._read_error(exc, "cannot decode the video") from exc
            for frame in decoded:
                self.frames_decoded += 1
                self._check_frame(frame)
                yield frame
        if self.frames_decoded == 0:
            what = f"packets that failed to decode: {failed}" if failed else "the video stream holds no frame"
            raise VideoDecodeError(f"no frame of the video could be decoded ({what}): corrupt or truncated video")

    def _read_error(self, exc: BaseException, what: str) -> VideoDecodeError:
        n = self.frames_decoded
        where = f"at frame {n} (after {n} good frames)" if n else "before its first frame"
        why = _av_message(exc, self.limits.open_timeout_s)
        return VideoDecodeError(f"{what} {where}: {why}; the video is corrupt or truncated")

    def _check_frame(self, frame: av.VideoFrame) -> None:
        lim, index = self.limits, self.frames_decoded - 1
        if lim.max_frames is not None and self.frames_decoded > lim.max_frames:
            raise PayloadTooLargeError(f"the video has more than {lim.max_frames} frames (the limit)")
        w, h = frame.width, frame.height
        if lim.max_pixels is not None and w * h > lim.max_pixels:
            raise PayloadTooLargeError(
                f"video frame {index} is {w}x{h} = {w * h} pixels, the limit is {lim.max_pixels} pixels"
            )
        if frame.is_corrupt:
            self.corrupt_frames += 1

    def _frame_time(self, frame: av.VideoFrame, index: int) -> float:
        interval = 1.0 / self.info.fps if self.info.fps else _DEFAULT_INTERVAL_S
        t = None
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base)
            if self._t0 is None:
                self._t0 = t
            t -= self._t0
        if t is None:
            t = index * interval if self._last_time == -math.inf else self._last_time + interval
        if t <= self._last_time:
            t = self._last_time + interval
        self._last_time = t
        lim = self.limits
        if lim.max_duration_s is not None and t > lim.max_duration_s:
            raise PayloadTooLargeError(
                f"video frame {index} is at {t:.1f} s, past the duration limit of {lim.max_duration_s:g} s"
            )
        return t

    def _to_rgb(self, frame: av.VideoFrame, index: int) -> np.ndarray:
        try:
            image = frame.to_ndarray(format="rgb24")
        except Exception as exc:  # a pixel format swscale cannot convert
            raise VideoDecodeError(f"cannot convert video frame {index} to RGB: {_av_message(exc)}") from exc
        if not (image.flags.c_contiguous and image.flags.writeable):
            image = np.array(image, dtype=np.uint8, order="C")
        return image

    def _check_decode_time(self) -> None:
        lim = self.limits
        if lim.max_decode_s is not None and self.decode_s > lim.max_decode_s:
            raise PayloadTooLargeError(
                f"decoding the video took over {lim.max_decode_s:g} s (the limit) after {self.frames_decoded} frames"
            )

    # -- lifetime -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the container (and the file :func:`open_video` opened); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._av_frames is not None:
                self._av_frames.close()
            if self._packets is not None:
                self._packets.close()
            self._container.close()
        except Exception:  # closing a broken container must not mask the caller's error
            pass
        finally:
            if self._file is not None:
                self._file.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _accepted_container(fmt, containers: tuple[str, ...] | None) -> str:
    """The first name of ``containers`` that FFmpeg's format ``fmt`` matches (its format name when no allow-list)."""
    parts = fmt.name.split(",")
    if containers is None:
        return fmt.name
    for name in containers:
        if name in parts:
            return name
    raise UnsupportedMediaTypeError(
        f"video container {parts[0]!r} ({fmt.long_name}) is not supported; send one of: {', '.join(containers)}"
    )


def _video_stream(container):
    """The main video stream (cover art / attached pictures are not video), or None."""
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        return None
    best = container.streams.best("video")
    return best if best in streams else streams[0]


def _header_info(container, stream, limits: VideoLimits, container_name: str) -> VideoInfo:
    """The stream's facts, checked against the limits (no frame is decoded here)."""
    cc = stream.codec_context
    # the codec's name ("av1"), and the decoder FFmpeg picked for it ("libdav1d"): either may be listed
    names = {cc.codec.canonical_name, cc.name} if cc is not None else set()
    codec = cc.codec.canonical_name if cc is not None else "unknown"
    if cc is None or (limits.codecs is not None and not names & set(limits.codecs)):
        accepted = f"; send one of: {', '.join(limits.codecs)}" if limits.codecs is not None else ""
        raise UnsupportedMediaTypeError(
            f"video codec {codec!r} is not supported (no decoder){accepted}"
            if cc is None
            else f"video codec {codec!r} is not supported{accepted}"
        )
    w, h = stream.width, stream.height
    if w <= 0 or h <= 0:
        over = f", or its frames are over the limit of {limits.max_pixels} pixels" if limits.max_pixels else ""
        raise VideoDecodeError(
            f"cannot read the frame size of the video stream ({codec}): its first packets are corrupt{over}"
        )
    if limits.max_pixels is not None and w * h > limits.max_pixels:
        raise PayloadTooLargeError(
            f"video frames are {w}x{h} = {w * h} pixels, the limit is {limits.max_pixels} pixels"
        )
    frames = stream.frames or None
    if limits.max_frames is not None and frames is not None and frames > limits.max_frames:
        raise PayloadTooLargeError(f"the video declares {frames} frames, the limit is {limits.max_frames}")
    duration_s = None
    if stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration:
        duration_s = container.duration / av.time_base
    if limits.max_duration_s is not None and duration_s is not None and duration_s > limits.max_duration_s:
        raise PayloadTooLargeError(
            f"the video declares {duration_s:.1f} s, the duration limit is {limits.max_duration_s:g} s"
        )
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate and rate > 0 else None
    return VideoInfo(
        width=w, height=h, fps=fps, frames=frames, duration_s=duration_s, container=container_name, codec=codec
    )


def open_video(source: str | os.PathLike | BinaryIO | bytes, limits: VideoLimits | None = None) -> VideoReader:
    """Open a video and check its header against ``limits`` before any frame is decoded by us.

    Args:
        source: a local path (``str`` or ``PathLike``, opened by Python), an ``http(s)://`` or ``rtsp(s)://`` URL
            (FFmpeg's network protocols, ``limits.open_timeout_s`` as I/O timeout), a seekable binary file object
            (read from its current position; it stays open: the caller owns it), or ``bytes``.
        limits: the limits (None: none).

    Returns:
        A :class:`VideoReader` (close it, or use it as a context manager).

    Raises:
        VideoDecodeError: empty; not a container FFmpeg can read; no video stream (audio only); unreadable frame
            size; a network source that cannot be opened in time.
        UnsupportedMediaTypeError: the container (an image, a GIF, a WAV, ...) or the codec is not in the allow-list.
        PayloadTooLargeError: bytes over ``max_bytes``; frame size, declared frame count or declared duration over
            their limits; ``max_decode_s`` spent opening.
        OSError: a local path that cannot be opened (missing, a directory, no permission).
        ValueError: a file object that is not seekable.
    """
    limits = limits or VideoLimits()
    owned = None
    kwargs: dict = {}
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = len(source)
        target = io.BytesIO(source)
        label = "the data as a video"
    elif isinstance(source, str) and source.lower().startswith(NETWORK_SCHEMES):
        size = None
        target = source
        label = f"the video at {_redact(source)}"
        kwargs["options"] = {"protocol_whitelist": _PROTOCOLS[source.split(":", 1)[0].lower()]}
        if limits.open_timeout_s is not None:
            kwargs["timeout"] = limits.open_timeout_s
    elif isinstance(source, (str, os.PathLike)):
        owned = target = open(source, "rb")  # closed by the reader, or below on failure
        size = os.fstat(owned.fileno()).st_size
        label = "the file as a video"
    else:
        if not (hasattr(source, "seekable") and source.seekable()):
            raise ValueError("open_video needs a seekable binary file object")
        size = _size_of(source)
        target = source
        label = "the file as a video"
    try:
        if size == 0:
            raise VideoDecodeError("empty body: no video bytes received")
        if size is not None and limits.max_bytes is not None and size > limits.max_bytes:
            raise PayloadTooLargeError(f"video is {size} bytes, the limit is {limits.max_bytes} bytes")
        options = kwargs.setdefault("options", {})
        if limits.max_pixels is not None:
            options["max_pixels"] = str(limits.max_pixels)  # FFmpeg's decoders refuse larger frames while probing
        t = time.perf_counter()
        try:
            container = av.open(target, "r", **kwargs)
        except Exception as exc:  # av.error.*: not a container FFmpeg knows, truncated header, network failure
            why = _av_message(exc, limits.open_timeout_s)
            raise VideoDecodeError(f"cannot open {label}: {why} (not a video, or corrupt or truncated)") from exc
        decode_s = time.perf_counter() - t
        try:
            reader = _checked_reader(container, limits, decode_s, owned)
        except BaseException:
            container.close()
            raise
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    return reader


def _checked_reader(container, limits: VideoLimits, decode_s: float, owned) -> VideoReader:
    container_name = _accepted_container(container.format, limits.containers)
    stream = _video_stream(container)
    if stream is None:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(f"no video stream in the file (streams: {', '.join(kinds)})")
    info = _header_info(container, stream, limits, container_name)
    cc = stream.codec_context
    cc.thread_type = "AUTO"
    cc.thread_count = DECODE_THREADS
    if limits.max_pixels is not None:
        cc.options = {**(cc.options or {}), "max_pixels": str(limits.max_pixels)}
    reader = VideoReader(container, stream, info, limits, decode_s, owned)
    reader._check_decode_time()
    return reader
