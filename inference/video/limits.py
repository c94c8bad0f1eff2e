"""The limits of a video source, the facts of its header, a decoded frame, and the text of PyAV errors."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

import av
import av.error
import numpy as np

#: URL schemes :func:`open_video` hands to FFmpeg's network protocols; any other string is a local path, opened by
#: Python (so FFmpeg never interprets a path as a protocol such as ``concat:`` or ``subfile:``).
NETWORK_SCHEMES: tuple[str, ...] = ("http://", "https://", "rtsp://", "rtsps://")
#: FFmpeg protocols a network source may use (its own, and what it nests: TLS, TCP, RTP over UDP).
_PROTOCOLS = {
    "http": "http,https,tcp,tls",
    "https": "http,https,tcp,tls",
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls,http,https",
    "rtsps": "rtsp,rtsps,rtp,srtp,udp,tcp,tls,http,https",
}
#: Decoder threads of one stream (the CPU is shared with model inference).
DECODE_THREADS = 2
#: Packets that may fail to decode before the first good frame (a stream cut mid-GOP, e.g. MPEG-TS or RTSP joined
#: between key frames, cannot decode until its next key frame); after the first good frame any failure is an error.
MAX_LEADING_ERRORS = 300
#: Frame interval assumed when a stream states no frame rate and a frame has no timestamp (seconds).
_DEFAULT_INTERVAL_S = 1 / 25


@dataclass(frozen=True)
class VideoLimits:
    """Limits of one video source; ``None`` disables a limit.

    Attributes:
        max_bytes: size of a file / bytes / file-object source, checked before FFmpeg reads it (network sources are
            not sized).
        max_pixels: width x height of a frame, checked on the stream header and on every decoded frame (a stream may
            change size mid-way); also FFmpeg's decoders' ``max_pixels``, so no larger frame is ever allocated.
        max_frames: the declared frame count (``stream.frames``) at open; the decoded count while decoding.
        max_duration_s: the declared duration (seconds) at open; the frame timestamps while decoding.
        max_decode_s: total wall time (seconds) spent inside FFmpeg for this reader: opening, demuxing, decoding and
            the conversion to RGB (not the time the consumer spends between frames; for a network source, waiting for
            its data counts: leave it None for a live stream).
        containers: accepted FFmpeg demuxer names; a container is accepted when any comma-separated part of its
            format name is listed (``"mov,mp4,m4a,3gp,3g2,mj2"`` matches ``"mp4"``).
        codecs: accepted decoder names (``stream.codec_context.name``, e.g. ``"h264"``).
        open_timeout_s: network sources: FFmpeg's I/O timeout (seconds without data while opening or reading).
    """

    max_bytes: int | None = None
    max_pixels: int | None = None
    max_frames: int | None = None
    max_duration_s: float | None = None
    max_decode_s: float | None = None
    containers: tuple[str, ...] | None = None
    codecs: tuple[str, ...] | None = None
    open_timeout_s: float | None = None

    @classmethod
    def from_settings(cls, settings) -> VideoLimits:
        """The limits of :class:`core.settings.Settings`' ``video_*`` fields (``open_timeout_s`` stays ``None``)."""
        return cls(
            max_bytes=settings.video_max_bytes,
            max_pixels=settings.video_max_pixels,
            max_frames=settings.video_max_frames,
            max_duration_s=settings.video_max_duration_s,
            max_decode_s=settings.video_max_decode_s,
            containers=tuple(settings.video_containers),
            codecs=tuple(settings.video_codecs),
        )


@dataclass(frozen=True)
class VideoInfo:
    """What the header says about the video stream.

    Attributes:
        width, height: frame size in pixels (of the first frames; a stream may change it later).
        fps: average frame rate (frames/s; ``stream.average_rate``, else FFmpeg's guess), ``None`` if unknown.
        frames: declared frame count, ``None`` when the container does not say.
        duration_s: declared duration (seconds; the stream's, else the container's), ``None`` if unknown.
        container: the first allow-listed name the container matched (``"mp4"``), else FFmpeg's format name.
        codec: FFmpeg decoder name (``"h264"``).
    """

    width: int
    height: int
    fps: float | None
    frames: int | None
    duration_s: float | None
    container: str
    codec: str


@dataclass
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based decode-order index in the stream; counts every decoded frame, also those skipped by ``stride``.
        time_s: presentation time (seconds) from the first frame (pts x time_base minus the first frame's), strictly
            increasing: a frame without a timestamp, or whose timestamp does not move forward (broken files), gets the
            previous time plus one frame interval (1 / fps; 1/25 s when the rate is unknown).
        image: uint8 [H, W, 3] RGB, C-contiguous, writeable, owned by the caller.
    """

    index: int
    time_s: float
    image: np.ndarray


def _redact(url: str) -> str:
    """``url`` without user information (``rtsp://user:pass@host/...`` -> ``rtsp://host/...``) for messages."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rsplit('@', 1)[-1]}{slash}{path}"


def _av_message(exc: BaseException, timeout_s: float | None = None) -> str:
    """A short description of a PyAV / FFmpeg error, without the file name PyAV appends."""
    if isinstance(exc, av.error.ExitError) and timeout_s is not None:  # PyAV's I/O timeout interrupts FFmpeg
        return f"no data within {timeout_s:g} s (timed out)"
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


def _size_of(fileobj: BinaryIO) -> int:
    pos = fileobj.tell()
    try:
        return fileobj.seek(0, io.SEEK_END) - pos
    finally:
        fileobj.seek(pos)
