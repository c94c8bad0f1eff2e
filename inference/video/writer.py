"""Encoding the annotated output: :class:`VideoWriter` (H.264 in an MP4, see :mod:`inference.video`)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from fractions import Fraction
from typing import BinaryIO

import av
import av.error
import numpy as np

from core.errors import PoseServiceError
from inference.video.limits import DECODE_THREADS, _av_message


def _frame_rate(fps: float) -> Fraction:
    """``fps`` as a fraction: NTSC rates (29.97, 59.94, 23.976 and their exact values) as n*1000/1001, others with a
    denominator up to 1001."""
    n = round(fps * 1.001)
    if n > 0 and abs(fps - n / 1.001) < 0.005 and abs(fps - n) > 0.005:
        return Fraction(n * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Annotated-output writer: H.264 (libx264, yuv420p, BT.601 limited range) in an MP4 with its index first
    (``faststart``), readable by standard players and by PyAV.

    Odd widths / heights are padded to even by one black column / row at the right / bottom (yuv420p needs even
    sizes). Every written frame is one output frame at the constant rate ``fps`` (none dropped or duplicated: reading
    the file back gives exactly ``frames_written`` frames). A file-object ``dest`` is written through a temporary file
    (faststart rewrites the file's start), copied into ``dest`` at :meth:`close`.

    Args:
        dest: output path, or a binary file object (written from its current position, left open).
        width, height: size of the images given to :meth:`write` (pixels, >= 1).
        fps: frame rate (frames/s, > 0; 29.97 is stored as 30000/1001).
        crf: libx264 constant rate factor (0 lossless .. 51; 23 is libx264's default).

    Attributes:
        frames_written: frames written so far.
        width, height: the output size (padded to even).

    Raises:
        ValueError: a bad size, rate or crf.
        PoseServiceError: (500) FFmpeg cannot create or write the file.
    """

    def __init__(self, dest: str | os.PathLike | BinaryIO, width: int, height: int, fps: float, crf: int = 23):
        if width < 1 or height < 1:
            raise ValueError(f"video size must be positive, got {width}x{height}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        self.frames_written = 0
        self._in_size = (width, height)
        self.width, self.height = width + width % 2, height + height % 2
        self._dest = dest
        self._tmpdir = None
        self._closed = False
        path = dest
        if not isinstance(dest, (str, os.PathLike)):
            self._tmpdir = tempfile.mkdtemp(prefix="pose-video-")
            path = os.path.join(self._tmpdir, "out.mp4")
        self._rate = _frame_rate(fps)
        try:
            self._container = av.open(os.fspath(path), "w", format="mp4", container_options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=self._rate)
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            cc = stream.codec_context
            cc.time_base = 1 / self._rate
            cc.color_range = 1  # MPEG (limited) range, what the RGB -> yuv420p conversion produces
            cc.colorspace = cc.color_primaries = cc.color_trc = 6  # SMPTE 170M (BT.601), swscale's default matrix
            cc.thread_count = DECODE_THREADS
            cc.options = {"crf": str(crf), "preset": "veryfast"}
            self._stream = stream
            self._container.start_encoding()  # opens the encoder and the file now: errors surface here
        except Exception as exc:
            self._cleanup()
            raise PoseServiceError(f"cannot create the output video: {_av_message(exc)}") from exc

    def write(self, image: np.ndarray) -> None:
        """Append one frame.

        Args:
            image: uint8 [height, width, 3] RGB, of the size given to the constructor.

        Raises:
            ValueError: wrong shape / dtype, or a closed writer.
            PoseServiceError: (500) encoding failed.
        """
        if self._closed:
            raise ValueError("the video writer is closed")
        w, h = self._in_size
        if image.dtype != np.uint8 or image.shape != (h, w, 3):
            raise ValueError(f"expected uint8 [{h}, {w}, 3] RGB, got {image.dtype} {list(image.shape)}")
        if (w, h) != (self.width, self.height):
            padded = np.zeros((self.height, self.width, 3), np.uint8)
            padded[:h, :w] = image
            image = padded
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self._rate
        try:
            self._container.mux(self._stream.encode(frame))
        except Exception as exc:
            raise PoseServiceError(f"cannot encode output frame {self.frames_written}: {_av_message(exc)}") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the file (and copy it into a file-object ``dest``); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            if self._tmpdir is not None:
                with open(os.path.join(self._tmpdir, "out.mp4"), "rb") as f:
                    shutil.copyfileobj(f, self._dest)
        except Exception as exc:
            raise PoseServiceError(f"cannot finish the output video: {_av_message(exc)}") from exc
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
