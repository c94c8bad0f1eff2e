"""Test videos built in memory: :func:`encode_clip` (RGB frames -> an encoded clip) and :func:`hostile_videos`, the
corpus of hostile files with the error :func:`inference.video.open_video` plus a full decode must raise for each
(under :data:`HOSTILE_LIMITS`).

Everything is deterministic (``fflags=+bitexact``, one encoder thread, seeded noise) and small: each file is under
200 KB and the whole corpus builds in well under a second. No tests here.

Some files are muxed from hand-written H.264 (:func:`h264_sps`, :func:`h264_pps`, :func:`h264_idr`): a baseline SPS
can claim any frame size in a few bytes, which is how the "header claims 16000x16000" files stay tiny. Decoding such
a file without FFmpeg's ``max_pixels`` costs about 1.2 GB just to open it.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from core.errors import PayloadTooLargeError, UnsupportedMediaTypeError, VideoDecodeError
from core.settings import Settings
from inference.video import VideoLimits

#: Limits the hostile corpus is judged under: the default allow-lists of core/settings.py, test-sized numbers.
HOSTILE_LIMITS = VideoLimits(
    max_bytes=1_000_000,
    max_pixels=1920 * 1080,
    max_frames=300,
    max_duration_s=120.0,
    max_decode_s=20.0,
    containers=tuple(Settings.model_fields["video_containers"].default),
    codecs=tuple(Settings.model_fields["video_codecs"].default),
)

_MUX_OPTIONS = {"fflags": "+bitexact"}  # no random Matroska segment UID, no encoder version strings


def encode_clip(
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    container: str = "mp4",
    pix_fmt: str = "yuv420p",
    faststart: bool = False,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode RGB frames to a clip in memory, deterministically.

    Args:
        frames: uint8 [H, W, 3] RGB images, all of one size (even for yuv420p).
        fps: frame rate (frames/s); frame i has pts i in a 1/fps time base.
        codec: FFmpeg encoder (``libx264``, ``mpeg4``, ``mjpeg``, ``png``, ``ffv1``, ``rawvideo``, ...).
        container: FFmpeg muxer (``mp4``, ``matroska``, ``avi``, ``mpegts``, ``nut``, ``flv``, ...).
        pix_fmt: the encoder's pixel format.
        faststart: MP4 with its index (moov) before the frames (written through a temporary file).
        options: extra encoder options (libx264 defaults: ``preset=ultrafast``; every encoder: ``threads=1``).

    Returns:
        The file's bytes.
    """
    rate = Fraction(fps).limit_denominator(1001)
    tmpdir = tempfile.TemporaryDirectory() if faststart else None
    target = os.path.join(tmpdir.name, f"clip.{container}") if tmpdir else io.BytesIO()
    muxer = {**_MUX_OPTIONS, **({"movflags": "+faststart"} if faststart else {})}
    try:
        with av.open(target, "w", format=container, container_options=muxer) as out:
            stream = None
            for i, img in enumerate(frames):
                if stream is None:
                    stream = out.add_stream(codec, rate=rate)
                    stream.width, stream.height = img.shape[1], img.shape[0]
                    stream.pix_fmt = pix_fmt
                    opts = {"threads": "1", **({"preset": "ultrafast"} if codec == "libx264" else {})}
                    stream.codec_context.options = {**opts, **(options or {})}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, dtype=np.uint8), format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                out.mux(stream.encode(frame))
            if stream is None:
                raise ValueError("encode_clip needs at least one frame")
            out.mux(stream.encode(None))
        if tmpdir:
            with open(target, "rb") as f:
                return f.read()
        return target.getvalue()
    finally:
        if tmpdir:
            tmpdir.cleanup()


def noise_frames(n: int, width: int = 64, height: int = 48, seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of seeded RGB noise, shifted one pixel right per frame (hard to compress: ~1 KB a frame)."""
    base = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def smooth_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """``n`` frames of a smooth colour gradient moving one pixel right per frame."""
    x = np.arange(width + n)[None, :]
    y = np.arange(height)[:, None]
    img = np.stack(np.broadcast_arrays(x * 255 // (width + n), y * 255 // height, 128 + 0 * x * y), axis=-1)
    img = img.astype(np.uint8)
    return [np.ascontiguousarray(img[:, n - i : n - i + width]) for i in range(n)]


# -- hand-written H.264 ---------------------------------------------------------------------------------------------


class _Bits:
    """An RBSP bit writer (u(n), ue(v), se(v)) with the trailing bits and emulation prevention of a NAL unit."""

    def __init__(self):
        self.bits: list[int] = []

    def u(self, n: int, v: int) -> _Bits:
        self.bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, v: int) -> _Bits:
        v += 1
        return self.u(v.bit_length() - 1, 0).u(v.bit_length(), v)

    def se(self, v: int) -> _Bits:
        return self.ue(2 * v - 1 if v > 0 else -2 * v)

    def nal(self, header: int) -> bytes:
        bits = self.bits + [1]
        bits += [0] * (-len(bits) % 8)
        out, zeros = bytearray([header]), 0
        for i in range(0, len(bits), 8):
            b = int("".join(map(str, bits[i : i + 8])), 2)
            if zeros >= 2 and b <= 3:
                out.append(3)
                zeros = 0
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        return bytes(out)


def h264_sps(width: int, height: int) -> bytes:
    """A baseline-profile SPS NAL (no start code) for a ``width`` x ``height`` frame (multiples of 16)."""
    b = _Bits().u(8, 66).u(8, 0xC0).u(8, 62)  # profile 66, constraint_set0/1, level 6.2
    b.ue(0).ue(0).ue(2).ue(1).u(1, 0)  # sps id, log2_max_frame_num-4, poc type 2, 1 ref frame, no gaps
    b.ue(width // 16 - 1).ue(height // 16 - 1).u(1, 1).u(1, 1).u(1, 0).u(1, 0)  # frame_mbs_only, direct8x8, no crop/VUI
    return b.nal(0x67)


def h264_pps() -> bytes:
    """The PPS NAL matching :func:`h264_sps` (CAVLC, one slice group, QP 26)."""
    b = _Bits().ue(0).ue(0).u(1, 0).u(1, 0).ue(0).ue(0).ue(0).u(1, 0).u(2, 0)
    return b.se(0).se(0).se(0).u(1, 0).u(1, 0).u(1, 0).nal(0x68)


def h264_idr() -> bytes:
    """An IDR slice NAL (an I slice header and a few zero bits of macroblock data): decodes, with concealment."""
    b = _Bits().ue(0).ue(7).ue(0).u(4, 0).ue(0).u(1, 0).u(1, 0).se(0).u(64, 0)
    return b.nal(0x65)


def annexb(*nals: bytes) -> bytes:
    """NAL units with 4-byte start codes."""
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def mux_h264(
    container: str,
    width: int,
    height: int,
    pts: Iterable[int],
    time_base: Fraction = Fraction(1, 25),
    sps: bytes | None = None,
    mux_options: dict[str, str] | None = None,
) -> bytes:
    """Mux hand-written H.264 access units (SPS + PPS + IDR each) without encoding anything.

    Args:
        container: FFmpeg muxer.
        width, height: the size the container header states, and the SPS (unless ``sps`` is given).
        pts: one access unit per timestamp (in ``time_base``).
        sps: the SPS NAL to use instead of one for ``width`` x ``height``.
        mux_options: muxer options (``{"live": "1"}``: a Matroska file that declares no duration).
    """
    sps = sps or h264_sps(width, height)
    unit = annexb(sps, h264_pps(), h264_idr())
    # a template stream: PyAV muxes its packets without opening an encoder (no frame of that size is ever allocated)
    with av.open(io.BytesIO(annexb(h264_sps(64, 48), h264_pps(), h264_idr())), format="h264") as src:
        buf = io.BytesIO()
        with av.open(buf, "w", format=container, container_options={**_MUX_OPTIONS, **(mux_options or {})}) as out:
            st = out.add_stream_from_template(src.streams.video[0], opaque=True)
            st.codec_context.width, st.codec_context.height = width, height
            st.codec_context.extradata = annexb(sps, h264_pps())
            st.time_base = time_base
            for t in pts:
                p = av.Packet(unit)
                p.stream, p.pts, p.dts, p.time_base, p.is_keyframe = st, t, t, time_base, True
                out.mux(p)
    return buf.getvalue()


# -- other building blocks ------------------------------------------------------------------------------------------


def audio_clip(codec: str = "aac", container: str = "mp4", seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A mono 440 Hz tone: ``aac`` in ``mp4`` (an .m4a), or ``pcm_s16le`` in ``wav``."""
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    fmt = "s16" if codec.startswith("pcm_s16") else "fltp"
    samples = (x * 32767).astype(np.int16) if fmt == "s16" else x.astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container, container_options=_MUX_OPTIONS) as out:
        s = out.add_stream(codec, rate=rate)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None], format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return buf.getvalue()


def image_file(fmt: str, frames: list[np.ndarray]) -> bytes:
    """A PNG / JPEG of the first frame, or an animated GIF of all of them (Pillow)."""
    buf = io.BytesIO()
    imgs = [Image.fromarray(f) for f in frames]
    if fmt == "GIF":
        imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=40, loop=0)
    else:
        imgs[0].save(buf, fmt)
    return buf.getvalue()


def patch_avi_frame_count(data: bytes, frames: int) -> bytes:
    """An AVI whose main header (``avih`` dwTotalFrames) and first stream header (``strh`` dwLength) claim
    ``frames`` frames."""
    b = bytearray(data)
    avih, strh = b.find(b"avih"), b.find(b"strh")
    b[avih + 8 + 16 : avih + 8 + 20] = struct.pack("<I", frames)
    b[strh + 8 + 32 : strh + 8 + 36] = struct.pack("<I", frames)
    return bytes(b)


def xor_range(data: bytes, start: int, length: int) -> bytes:
    """``data`` with ``length`` bytes from ``start`` inverted."""
    b = bytearray(data)
    b[start : start + length] = bytes(x ^ 0xFF for x in b[start : start + length])
    return bytes(b)


# -- the hostile corpus ---------------------------------------------------------------------------------------------

#: Frames the file cut after its header decodes before the clear error (documented by the test).
TRUNCATED_GOOD_FRAMES = 23


def hostile_videos() -> list[tuple[str, bytes, type[Exception]]]:
    """Hostile files: ``(name, bytes, error class)`` that ``open_video(data, HOSTILE_LIMITS)`` followed by a full
    ``frames()`` iteration raises. Where in that sequence it raises is part of each case's name or note:

    - ``zero_length``: b"" -> VideoDecodeError at open ("empty body").
    - ``random_bytes``: 4 KB of seeded noise -> VideoDecodeError at open (no demuxer recognises it).
    - ``truncated_half_mp4``: the first half of an MP4 whose index (moov) is at the end -> VideoDecodeError at open.
    - ``truncated_after_header_mp4``: a faststart MP4 (index first) cut in the middle of its frames: the header is
      intact, so :data:`TRUNCATED_GOOD_FRAMES` good frames decode, then VideoDecodeError naming the frame index
      (FFmpeg hands over the cut packet, the decoder rejects it). Never a hang or a silent short read.
    - ``truncated_header_only_mp4``: a faststart MP4 cut 100 bytes into its frame data -> VideoDecodeError ("no frame
      of the video could be decoded").
    - ``corrupt_mdat_mp4``: 2000 bytes inverted in the middle of the frame data (several samples' NAL length prefixes
      break) -> some frames, then VideoDecodeError naming the frame. (A few flipped bytes inside one frame's slice
      data do not raise: the decoder conceals them, and the reader counts a corrupt frame.)
    - ``audio_only_m4a``: AAC in MP4 -> VideoDecodeError "no video stream".
    - ``audio_wav``: PCM in WAV -> UnsupportedMediaTypeError (the container: wav).
    - ``png_image``, ``jpeg_image``, ``gif_animation``: images posted as video -> UnsupportedMediaTypeError naming the
      accepted containers (FFmpeg reads them with its png_pipe / jpeg_pipe / gif demuxers).
    - ``flv_h264``, ``nut_mpeg4``: allowed codecs in containers outside the allow-list -> UnsupportedMediaTypeError.
    - ``mkv_ffv1``, ``mp4_png``, ``mkv_rawvideo``: allowed containers with codecs outside the allow-list ->
      UnsupportedMediaTypeError.
    - ``claims_16000x16000_mkv``, ``claims_16384x16000_mp4``, ``claims_16000x16000_ts``: a few hundred bytes of
      hand-written H.264 whose SPS (and container header) claim a huge frame -> PayloadTooLargeError at open, with no
      frame decoded (FFmpeg's probing would otherwise allocate over 1 GB).
    - ``claims_16384x16384_mkv``: the size the brief names; FFmpeg itself refuses any frame over about 268 Mpx
      ((w+128)*(h+128) >= INT_MAX/8), drops the size and reports 0x0 -> VideoDecodeError ("cannot read the frame
      size"), also before any frame is decoded.
    - ``claims_3_days_mkv``: three frames, the last at 3 days -> PayloadTooLargeError at open (declared duration).
    - ``claims_million_frames_avi``: an AVI whose headers claim 1,000,000 frames -> PayloadTooLargeError at open.
    - ``mpegts_over_max_frames``: MPEG-TS (no declared frame count) with max_frames + 20 frames ->
      PayloadTooLargeError while decoding, after ``max_frames`` good frames.
    """
    lim = HOSTILE_LIMITS
    assert lim.max_frames is not None
    noise = noise_frames(50)
    plain = encode_clip(noise)
    fast = encode_clip(noise, faststart=True)
    mdat = fast.find(b"mdat")
    smooth = smooth_frames(10)
    return [
        ("zero_length", b"", VideoDecodeError),
        ("random_bytes", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(), VideoDecodeError),
        ("truncated_half_mp4", plain[: len(plain) // 2], VideoDecodeError),
        ("truncated_after_header_mp4", fast[: len(fast) // 2], VideoDecodeError),
        ("truncated_header_only_mp4", fast[: mdat + 100], VideoDecodeError),
        ("corrupt_mdat_mp4", xor_range(fast, mdat + (len(fast) - mdat) // 2, 2000), VideoDecodeError),
        ("audio_only_m4a", audio_clip("aac", "mp4"), VideoDecodeError),
        ("audio_wav", audio_clip("pcm_s16le", "wav"), UnsupportedMediaTypeError),
        ("png_image", image_file("PNG", smooth), UnsupportedMediaTypeError),
        ("jpeg_image", image_file("JPEG", smooth), UnsupportedMediaTypeError),
        ("gif_animation", image_file("GIF", smooth[:3]), UnsupportedMediaTypeError),
        ("flv_h264", encode_clip(smooth, container="flv"), UnsupportedMediaTypeError),
        ("nut_mpeg4", encode_clip(smooth, codec="mpeg4", container="nut"), UnsupportedMediaTypeError),
        ("mkv_ffv1", encode_clip(smooth, codec="ffv1", container="matroska"), UnsupportedMediaTypeError),
        ("mp4_png", encode_clip(smooth[:3], codec="png", pix_fmt="rgb24"), UnsupportedMediaTypeError),
        ("mkv_rawvideo", encode_clip(smooth[:3], codec="rawvideo", container="matroska"), UnsupportedMediaTypeError),
        ("claims_16000x16000_mkv", mux_h264("matroska", 16000, 16000, range(3)), PayloadTooLargeError),
        ("claims_16384x16000_mp4", mux_h264("mp4", 16384, 16000, range(3)), PayloadTooLargeError),
        ("claims_16000x16000_ts", mux_h264("mpegts", 16000, 16000, range(30)), PayloadTooLargeError),
        ("claims_16384x16384_mkv", mux_h264("matroska", 16384, 16384, range(3)), VideoDecodeError),
        ("claims_3_days_mkv", mux_h264("matroska", 64, 48, [0, 1, 3 * 86400 * 25]), PayloadTooLargeError),
        (
            "claims_million_frames_avi",
            patch_avi_frame_count(encode_clip(smooth, codec="mpeg4", container="avi"), 1_000_000),
            PayloadTooLargeError,
        ),
        ("mpegts_over_max_frames", mux_h264("mpegts", 64, 48, range(lim.max_frames + 20)), PayloadTooLargeError),
    ]


#: Names of the hostile files that raise at open, before any frame is decoded.
RAISE_AT_OPEN = frozenset(
    {
        "zero_length",
        "random_bytes",
        "truncated_half_mp4",
        "audio_only_m4a",
        "audio_wav",
        "png_image",
        "jpeg_image",
        "gif_animation",
        "flv_h264",
        "nut_mpeg4",
        "mkv_ffv1",
        "mp4_png",
        "mkv_rawvideo",
        "claims_16000x16000_mkv",
        "claims_16384x16000_mp4",
        "claims_16000x16000_ts",
        "claims_16384x16384_mkv",
        "claims_3_days_mkv",
        "claims_million_frames_avi",
    }
)
