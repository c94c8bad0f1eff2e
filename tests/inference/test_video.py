"""Video decode / encode (inference/video.py): the real clip, limits at open and while decoding, the hostile corpus of
tests/videos.py, random mutations (Hypothesis), a loopback http:// source, and the H.264 writer's round trip."""

from __future__ import annotations

import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import inference.video as video
from core.errors import PayloadTooLargeError, PoseServiceError, UnsupportedMediaTypeError, VideoDecodeError
from core.settings import Settings
from inference.video import VideoFrame, VideoInfo, VideoLimits, VideoWriter, open_video
from tests.videos import (
    HOSTILE_LIMITS,
    RAISE_AT_OPEN,
    TRUNCATED_GOOD_FRAMES,
    annexb,
    encode_clip,
    h264_idr,
    h264_pps,
    h264_sps,
    hostile_videos,
    mux_h264,
    noise_frames,
    smooth_frames,
    xor_range,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
VIDEO_ERRORS = (VideoDecodeError, UnsupportedMediaTypeError, PayloadTooLargeError)
BIKES = VideoInfo(width=640, height=272, fps=25.0, frames=250, duration_s=10.0, container="mp4", codec="h264")


def _decode_all(source, limits: VideoLimits | None = None, **kw) -> list[VideoFrame]:
    with open_video(source, limits) as reader:
        return list(reader.frames(**kw))


# -- the real clip --------------------------------------------------------------------------------------------------


def test_bikes_header_from_settings_limits(bikes_mp4):
    with open_video(bikes_mp4, VideoLimits.from_settings(Settings())) as reader:
        assert reader.info == BIKES
        assert reader.frames_decoded == 0


def test_bikes_every_frame_in_order(bikes_mp4):
    with open_video(bikes_mp4, HOSTILE_LIMITS) as reader:
        frames = list(reader.frames())
        assert reader.frames_decoded == 250 and reader.corrupt_frames == 0
        assert 0 < reader.decode_s < HOSTILE_LIMITS.max_decode_s
    assert [f.index for f in frames] == list(range(250))
    times = np.array([f.time_s for f in frames])
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    np.testing.assert_allclose(times, np.arange(250) * 0.04, atol=1e-9)
    img = frames[137].image
    assert img.shape == (272, 640, 3) and img.dtype == np.uint8
    assert img.flags.c_contiguous and img.flags.writeable
    assert 20 < img.mean() < 235  # a real picture, not a blank frame


def test_bikes_stride_max_frames_and_resume(bikes_mp4):
    frames = _decode_all(bikes_mp4, stride=5)
    assert [f.index for f in frames] == list(range(0, 250, 5))
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(0, 250, 5) * 0.04, atol=1e-9)
    with open_video(bikes_mp4) as reader:
        first = list(reader.frames(max_frames=7))
        assert [f.index for f in first] == list(range(7)) and reader.frames_decoded == 7  # nothing decoded ahead
        more = list(reader.frames(stride=2, max_frames=3))  # continues where it stopped
        assert [f.index for f in more] == [8, 10, 12]


def test_bikes_should_stop_stops_at_once(bikes_mp4):
    with open_video(bikes_mp4) as reader:
        assert list(reader.frames(should_stop=lambda: True)) == [] and reader.frames_decoded == 0
        got = []
        for f in reader.frames(should_stop=lambda: len(got) >= 2):
            got.append(f)
        assert len(got) == 2 and reader.frames_decoded == 2


def test_bikes_sources_path_str_fileobj_bytes(bikes_mp4):
    data = bikes_mp4.read_bytes()
    with open(bikes_mp4, "rb") as f:
        for source in (bikes_mp4, str(bikes_mp4), f, data):
            with open_video(source, HOSTILE_LIMITS) as reader:
                assert reader.info == BIKES
                assert len(list(reader.frames(max_frames=3))) == 3
        assert not f.closed  # a caller's file object stays open


def test_bikes_limits_at_open(bikes_mp4):
    small = {"max_bytes": 100_000}
    with open(bikes_mp4, "rb") as f:
        for source in (bikes_mp4, bikes_mp4.read_bytes(), f):
            with pytest.raises(PayloadTooLargeError, match="509868 bytes, the limit is 100000"):
                open_video(source, VideoLimits(**small))
    cases = [
        ({"max_pixels": 640 * 272 - 1}, PayloadTooLargeError, "640x272"),
        ({"max_frames": 249}, PayloadTooLargeError, "declares 250 frames"),
        ({"max_duration_s": 9.5}, PayloadTooLargeError, "declares 10.0 s"),
        ({"max_decode_s": 1e-9}, PayloadTooLargeError, "took over"),
        (
            {"containers": ("matroska", "webm")},
            UnsupportedMediaTypeError,
            r"'mov' \(QuickTime / MOV\) is not supported; send one of: matr",
        ),
        ({"codecs": ("hevc",)}, UnsupportedMediaTypeError, "'h264' is not supported; send one of: hevc"),
    ]
    for kw, cls, msg in cases:
        with pytest.raises(cls, match=msg):
            open_video(bikes_mp4, VideoLimits(**kw))
    with open_video(bikes_mp4, VideoLimits(max_pixels=640 * 272, max_frames=250, max_duration_s=10.0)) as reader:
        assert len(list(reader.frames())) == 250  # limits are inclusive


def test_decode_time_limit(bikes_mp4):
    """Decoding all of the clip takes well over 20 ms: the wall-time limit stops it (at open on a very slow host)."""
    n = 0
    with pytest.raises(PayloadTooLargeError, match="took over 0.02 s"):
        with open_video(bikes_mp4, VideoLimits(max_decode_s=0.02)) as reader:
            for _ in reader.frames():
                n += 1
    assert n < 250


# -- limits while decoding ------------------------------------------------------------------------------------------


def test_frame_size_checked_on_every_frame():
    """MPEG-TS concatenates: 10 frames of 64x48, then 10 of 128x96 (a new SPS mid-stream)."""
    data = encode_clip(smooth_frames(10), container="mpegts") + encode_clip(
        smooth_frames(10, 128, 96), container="mpegts"
    )
    frames = _decode_all(data, VideoLimits())
    assert [f.image.shape[:2] for f in frames] == [(48, 64)] * 10 + [(96, 128)] * 10
    with open_video(data, VideoLimits(max_pixels=64 * 48)) as reader:
        assert (reader.info.width, reader.info.height) == (64, 48)
        got = []
        with pytest.raises(PayloadTooLargeError, match="video frame 10 is 128x96 = 12288 pixels"):
            for f in reader.frames():
                got.append(f)
        assert len(got) == 10
        with pytest.raises(PayloadTooLargeError):  # the reader stays failed
            reader.frames()


def test_timestamps_checked_while_decoding():
    """A Matroska file written live declares no duration; its fourth frame is at 200 s."""
    data = mux_h264("matroska", 64, 48, [0, 1, 2, 200 * 25], mux_options={"live": "1"})
    with open_video(data, HOSTILE_LIMITS) as reader:
        assert reader.info.duration_s is None
        got = []
        with pytest.raises(PayloadTooLargeError, match="video frame 3 is at 200.0 s"):
            for f in reader.frames():
                got.append(f)
    assert [f.time_s for f in got] == [0.0, 0.04, 0.08]


def test_time_s_strictly_increasing_without_container_timestamps():
    """Raw H.264 (no container; allowed here with containers=None): time still starts at 0 and increases."""
    data = annexb(h264_sps(64, 48), h264_pps(), h264_idr()) * 5
    with open_video(data) as reader:
        assert reader.info.container == "h264"
        times = [f.time_s for f in reader.frames()]
    assert len(times) == 5 and times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:]))


def test_concealed_corruption_is_counted_not_raised():
    """A few bytes inverted inside one frame's slice data: FFmpeg conceals them; the frame is counted as corrupt."""
    clip = encode_clip(noise_frames(50), faststart=True)
    mdat = clip.find(b"mdat")
    bad = xor_range(clip, mdat + (len(clip) - mdat) // 2, 64)
    with open_video(bad, HOSTILE_LIMITS) as reader:
        assert len(list(reader.frames())) == 50
        assert reader.corrupt_frames >= 1


# -- hostile files --------------------------------------------------------------------------------------------------

HOSTILE = hostile_videos()


def test_hostile_corpus_is_small():
    assert len(HOSTILE) >= 20 and len({name for name, _, _ in HOSTILE}) == len(HOSTILE)
    assert all(len(data) < 200_000 for _, data, _ in HOSTILE)
    assert RAISE_AT_OPEN <= {name for name, _, _ in HOSTILE}


@pytest.mark.parametrize("name,data,error", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_video_raises_its_error(name, data, error, monkeypatch):
    decodes = []
    real = video.VideoReader._decoded

    def spy(self):
        decodes.append(1)
        return real(self)

    monkeypatch.setattr(video.VideoReader, "_decoded", spy)
    frames = []
    t = time.perf_counter()
    with pytest.raises(VIDEO_ERRORS) as caught:
        with open_video(data, HOSTILE_LIMITS) as reader:
            for f in reader.frames():
                frames.append(f)
    assert type(caught.value) is error, f"{name}: {caught.value!r}"
    assert str(caught.value) and time.perf_counter() - t < 15  # never a hang (generous: CI CPUs are shared)
    if name in RAISE_AT_OPEN:
        assert decodes == [] and frames == []  # refused on the header: no frame decoded
    if name == "truncated_after_header_mp4":
        assert len(frames) == TRUNCATED_GOOD_FRAMES
        assert f"at frame {TRUNCATED_GOOD_FRAMES}" in str(caught.value)
    if name == "mpegts_over_max_frames":
        assert len(frames) == HOSTILE_LIMITS.max_frames
    if error is UnsupportedMediaTypeError:
        accepted = HOSTILE_LIMITS.codecs if "codec" in str(caught.value) else HOSTILE_LIMITS.containers
        assert ", ".join(accepted) in str(caught.value)  # names what is accepted


_MEMORY_PROBE = """
import sys
from core.errors import PayloadTooLargeError
from inference.video import open_video
from tests.videos import HOSTILE_LIMITS, mux_h264
for container in ("matroska", "mpegts"):
    try:
        open_video(mux_h264(container, 16000, 16000, range(30)), HOSTILE_LIMITS)
    except PayloadTooLargeError:
        pass
    else:
        sys.exit("no PayloadTooLargeError")
# the peak of this process image: VmHWM (ru_maxrss would include the parent's peak: Linux records the old address
# space's high-water mark at exec, and the parent is pytest, holding real models by then)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(int(hwm[0].split()[1]) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc (VmHWM)")
def test_huge_frame_claims_keep_memory_small():
    """A few hundred bytes of H.264 claiming 16000x16000 frames: FFmpeg's probing alone would take ~1.2 GB; with the
    pixel limit handed to its decoders the whole process peaks far lower (a fresh interpreter, to measure the peak)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 400  # MB


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations_raise_only_video_errors(data):
    seed = data.draw(st.sampled_from(_MUTATION_SEEDS), label="seed clip")
    clip = bytearray(seed)
    for pos, value in data.draw(
        st.lists(st.tuples(st.integers(0, len(clip) - 1), st.integers(0, 255)), max_size=16), label="byte writes"
    ):
        clip[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(clip))), label="cut")
    if cut is not None:
        clip = clip[:cut]
    t = time.perf_counter()
    try:
        with open_video(bytes(clip), HOSTILE_LIMITS) as reader:
            for f in reader.frames():
                assert f.image.dtype == np.uint8 and f.image.ndim == 3
    except VIDEO_ERRORS as exc:
        assert str(exc)
    assert time.perf_counter() - t < 15


_MUTATION_SEEDS = [
    encode_clip(noise_frames(8, 32, 32)),
    encode_clip(noise_frames(8, 32, 32), faststart=True),
    encode_clip(smooth_frames(8, 32, 32), container="matroska"),
    encode_clip(smooth_frames(8, 32, 32), codec="mpeg4", container="avi"),
    encode_clip(smooth_frames(8, 32, 32), container="mpegts"),
]


# -- sources --------------------------------------------------------------------------------------------------------


def test_http_source_loopback():
    clip = encode_clip(smooth_frames(12))  # index at the end: FFmpeg reads through to it

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(clip)))
            self.end_headers()
            self.wfile.write(clip)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        with open_video(url, VideoLimits(open_timeout_s=5, containers=("mp4",))) as reader:
            assert (reader.info.width, reader.info.height, reader.info.container) == (64, 48, "mp4")
            frames = list(reader.frames())
        assert len(frames) == 12 and frames[11].time_s == pytest.approx(0.44)
    finally:
        server.shutdown()
        server.server_close()


def test_network_timeout_and_redacted_credentials():
    """A server that accepts and never answers: a VideoDecodeError after the timeout, the password not in it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://user:s3cret@127.0.0.1:{sock.getsockname()[1]}/x.mp4"
        t = time.perf_counter()
        with pytest.raises(VideoDecodeError, match="timed out") as caught:
            open_video(url, VideoLimits(open_timeout_s=0.3))
        assert time.perf_counter() - t < 5
    assert "s3cret" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_paths_are_files_never_ffmpeg_protocols(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_video(f"concat:{tmp_path / 'a.mp4'}|{tmp_path / 'b.mp4'}")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        open_video(empty)


def test_argument_errors(bikes_mp4):
    class Pipe(io.RawIOBase):
        def readable(self):
            return True

    with pytest.raises(ValueError, match="seekable"):
        open_video(Pipe())
    reader = open_video(bikes_mp4)
    with pytest.raises(ValueError, match="stride"):
        reader.frames(stride=0)  # checked at the call, not at the first next()
    reader.close()
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.frames()


def test_limits_from_settings():
    s = Settings(video_max_frames=7, video_containers="mp4,mov", video_codecs=["h264"])
    lim = VideoLimits.from_settings(s)
    assert lim.max_frames == 7 and lim.containers == ("mp4", "mov") and lim.codecs == ("h264",)
    assert (lim.max_bytes, lim.max_pixels) == (s.video_max_bytes, s.video_max_pixels)
    assert (lim.max_duration_s, lim.max_decode_s, lim.open_timeout_s) == (
        s.video_max_duration_s,
        s.video_max_decode_s,
        None,
    )


# -- writer ---------------------------------------------------------------------------------------------------------


def test_writer_round_trip_file_object():
    frames = smooth_frames(30, 96, 64)
    buf = io.BytesIO()
    with VideoWriter(buf, 96, 64, fps=25) as writer:
        for f in frames:
            writer.write(f)
        assert writer.frames_written == 30
    data = buf.getvalue()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: the index comes first
    with av.open(io.BytesIO(data)) as c:  # plain PyAV agrees
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt, s.width, s.height) == ("h264", "yuv420p", 96, 64)
        assert s.average_rate == 25 and sum(1 for _ in c.decode(s)) == 30
    with open_video(data, HOSTILE_LIMITS) as reader:
        assert (reader.info.frames, reader.info.fps, reader.info.container) == (30, 25.0, "mp4")
        back = list(reader.frames())
    assert len(back) == 30
    np.testing.assert_allclose([f.time_s for f in back], np.arange(30) / 25, atol=1e-9)
    diff = np.mean([np.abs(a.image.astype(int) - b.astype(int)).mean() for a, b in zip(back, frames)])
    assert diff < 3.0


def test_writer_odd_size_is_padded_and_fractional_rate(tmp_path):
    frames = [f[:47, :63] + 0 for f in smooth_frames(5, 64, 48)]
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 63, 47, fps=29.97, crf=18) as writer:
        assert (writer.width, writer.height) == (64, 48)
        for f in frames:
            writer.write(np.ascontiguousarray(f))
    with open_video(path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.frames) == (64, 48, 5)
        assert reader.info.fps == pytest.approx(30000 / 1001)
        back = list(reader.frames())
    assert len(back) == 5
    # the last row / column share their chroma samples with the black padding: compare inside them
    assert np.abs(back[0].image[:46, :62].astype(int) - frames[0][:46, :62]).mean() < 3.0
    assert back[0].image[47].mean() < 40 and back[0].image[:, 63].mean() < 40  # the padding is black


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", 0, 10, fps=25)
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", 10, 10, fps=0)
    writer = VideoWriter(tmp_path / "x.mp4", 32, 32, fps=10)
    with pytest.raises(ValueError, match=r"uint8 \[32, 32, 3\]"):
        writer.write(np.zeros((32, 32, 3), np.float32))
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(PoseServiceError):
        VideoWriter(tmp_path / "no-such-dir" / "x.mp4", 32, 32, fps=10).close()
    assert os.path.getsize(tmp_path / "x.mp4") > 0
