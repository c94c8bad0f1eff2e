"""Video decoding and encoding with PyAV (FFmpeg), with limits checked before and while decoding.

Decoding mirrors :mod:`inference.imageio`: :func:`open_video` reads the container header and the video stream's
parameters, checks the byte size, the container and codec allow-lists, the frame size, the declared frame count and
the declared duration, and only then does :meth:`VideoReader.frames` decode, one frame at a time, checking each
decoded frame's size, the decoded count, the frame timestamps and the wall time spent decoding. Every failure is one of
three errors of :mod:`core.errors` (no PyAV / FFmpeg exception escapes):

- :class:`~core.errors.VideoDecodeError` (400): empty, not a container FFmpeg can read, truncated, corrupt, no video
  stream (audio only), an unreadable frame size, a decode failure after some good frames (naming the frame index), a
  network source that cannot be reached in time;
- :class:`~core.errors.UnsupportedMediaTypeError` (415): a container (an image such as PNG, JPEG or GIF, a WAV, an FLV
  ...) or a codec outside the allow-lists, naming the accepted ones;
- :class:`~core.errors.PayloadTooLargeError` (413): bytes, frame size, frame count, duration or decode wall time over
  its limit.

Memory: FFmpeg already decodes a few frames while opening a file (``avformat_find_stream_info``), before any header
check could run; the pixel limit is therefore also handed to FFmpeg's decoders (the ``max_pixels`` codec option), which
then refuse to allocate a larger frame, both while opening and while decoding. A tiny H.264 file whose SPS says
16000x16000 costs about 1.2 GB to open without it and under 100 MB with it.

Modules: :mod:`inference.video.limits` (the limits, the header facts, a decoded frame, error messages),
:mod:`inference.video.reader` (:func:`open_video`, :class:`VideoReader`), :mod:`inference.video.writer`
(:class:`VideoWriter`: the annotated output, H.264 in an MP4 with its index first, one output frame per written frame).
"""

from inference.video.limits import NETWORK_SCHEMES, VideoFrame, VideoInfo, VideoLimits
from inference.video.reader import VideoReader, open_video
from inference.video.writer import VideoWriter

__all__ = ["NETWORK_SCHEMES", "VideoFrame", "VideoInfo", "VideoLimits", "VideoReader", "VideoWriter", "open_video"]
