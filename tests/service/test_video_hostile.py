"""Hostile video and WebSocket input through the service, over fake models (fast): the hostile-video corpus of
``tests/videos.py`` and other hostile requests through ``POST /pose/video`` (in-process, FastAPI's TestClient), and
hostile ``/pose/stream`` clients: bad frames and control messages, oversized messages, a flood, a client that never
reads its replies, one that sends nothing, one that hangs up mid-frame (the cases that need real sockets against
``pose-serve``'s uvicorn configuration in a thread). Always a clear 4xx (or, once an NDJSON answer began, a last
``{"type": "error"}`` line), never a 500 or a hang, and every admission counter back to 0 after each case."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.testclient import WebSocketDenialResponse
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.uri import parse_uri

from core.settings import Settings
from service.app import create_app
from tests.fakes import FakeDetectorRuntime, ThreadedServer, fake_pipeline, wait_until
from tests.metrics import metric
from tests.service.test_hostile_inputs import _png_claiming
from tests.videos import (
    HOSTILE_LIMITS,
    RAISE_AT_OPEN,
    TRUNCATED_GOOD_FRAMES,
    encode_clip,
    hostile_videos,
    noise_frames,
    smooth_frames,
)

L = HOSTILE_LIMITS
MAX_UPLOAD = 200_000  # a stream frame's limit (max_upload_bytes); uvicorn's ws_max_size is 64 KiB above it
SETTINGS = Settings(
    warmup=False, max_upload_bytes=MAX_UPLOAD, stream_idle_timeout_s=1.0, header_timeout_s=1.0, read_timeout_s=1.0,
    video_max_bytes=L.max_bytes, video_max_pixels=L.max_pixels, video_max_frames=L.max_frames,
    video_max_duration_s=L.max_duration_s, video_max_decode_s=L.max_decode_s,
    video_containers=list(L.containers), video_codecs=list(L.codecs),
)  # fmt: skip
CORPUS = hostile_videos()
HOSTILE = {name: data for name, data, _ in CORPUS}
CLIP = encode_clip(noise_frames(8))  # a small valid clip: 8 frames of 64x48


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 60, 30)).save(buf, "JPEG")
    return buf.getvalue()


JPEG = _jpeg()


def _ready(c: TestClient) -> TestClient:
    wait_until(lambda: c.get("/readyz").status_code == 200, what="ready")
    return c


def _settled(app, timeout: float = 10.0) -> None:
    """Every admission counter back to 0 (the video worker thread or a stream's frame releases on its own)."""
    a = app.state.service.admission
    wait_until(lambda: (a.requests, a.streams, a.pixels, a.crops) == (0, 0, 0, 0), timeout, "counters back to 0")


@contextmanager
def _session(c: TestClient, url: str = "/pose/stream", **kw):
    """A TestClient WebSocket session that hangs up and lets the handler finish before the TestClient cancels its
    task on exit (a cancel landing in the handler's cleanup surfaces as a CancelledError in the TestClient)."""
    with c.websocket_connect(url, **kw) as ws:
        yield ws
        ws.close(1000)
        _settled(c.app)


@pytest.fixture(scope="module")
def client():
    app = create_app(SETTINGS, fake_pipeline())
    with TestClient(app) as c:
        yield _ready(c)


@pytest.fixture(scope="module")
def server():
    app = create_app(SETTINGS, fake_pipeline())
    with ThreadedServer(app, SETTINGS) as srv:
        srv.app = app
        yield srv


def _post(c, data: bytes, transport: str = "multipart", params: dict | None = None):
    if transport == "multipart":
        return c.post("/pose/video", files={"file": ("clip.mp4", data, "video/mp4")}, params=params)
    return c.post("/pose/video", content=data, headers={"Content-Type": "video/mp4"}, params=params)


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line]


def _assert_error_json(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "message"} and body["message"]
    assert code is None or body["error"] == code
    return body


def _assert_ndjson_ends_in_error(r, status: int, code: str) -> list[dict]:
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = _lines(r.text)
    assert lines[0]["type"] == "video"
    frames, last = lines[1:-1], lines[-1]
    assert all(f["type"] == "frame" for f in frames)  # no summary line
    assert [f["frame"] for f in frames] == sorted({f["frame"] for f in frames})
    assert set(last) == {"type", "status", "error", "message"} and last["message"]
    assert (last["type"], last["status"], last["error"]) == ("error", status, code)
    return frames


# -- 1. the hostile-video corpus through POST /pose/video ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["multipart", "raw"])
@pytest.mark.parametrize("name, data, error", CORPUS, ids=[c[0] for c in CORPUS])
def test_every_hostile_video_gets_its_4xx_or_a_last_error_line(client, name, data, error, transport):
    r = _post(client, data, transport)
    if name in RAISE_AT_OPEN:  # before any NDJSON line: the status of its class, JSON
        _assert_error_json(r, error.status, error.code)
    else:  # the header was fine: the good frames' lines, then the error as the last line
        frames = _assert_ndjson_ends_in_error(r, error.status, error.code)
        expected = {"truncated_after_header_mp4": TRUNCATED_GOOD_FRAMES, "mpegts_over_max_frames": L.max_frames}
        if name in expected:
            assert len(frames) == expected[name]
        else:  # the cut header decodes nothing; the corrupt middle follows good frames
            assert bool(frames) == (name == "corrupt_mdat_mp4")
    assert client.get("/healthz").status_code == 200
    _settled(client.app)


def test_the_corpus_covers_every_video_error_status():
    assert {e.status for _, _, e in CORPUS} == {400, 413, 415}
    assert {n for n, _, _ in CORPUS} - RAISE_AT_OPEN == {
        "truncated_after_header_mp4", "truncated_header_only_mp4", "corrupt_mdat_mp4", "mpegts_over_max_frames"
    }  # fmt: skip


@pytest.mark.parametrize(
    "name", ["random_bytes", "mkv_ffv1", "claims_16000x16000_mkv", "claims_3_days_mkv", "corrupt_mdat_mp4"]
)
def test_render_true_with_a_hostile_video_gets_the_same_4xx(client, name):
    """The MP4 answer starts only once the whole video is processed: errors raised mid-way are a 4xx too."""
    error = next(e for n, _, e in CORPUS if n == name)
    _assert_error_json(_post(client, HOSTILE[name], params={"render": "true"}), error.status, error.code)
    _settled(client.app)


# -- 2. other hostile HTTP requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "image/jpeg", "application/json", None])
def test_a_content_type_other_than_video_or_multipart_is_415(client, ctype):
    r = client.post("/pose/video", content=CLIP, headers={"Content-Type": ctype} if ctype else {})
    _assert_error_json(r, 415, "unsupported_media_type")
    _settled(client.app)


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"files": {"video": ("a.mp4", CLIP, "video/mp4")}}, 422, "invalid_parameter"),  # no field named file
        ({"data": {"file": "not a file"}, "files": {"x": ("x", b"x")}}, 422, "invalid_parameter"),
        ({"files": {"file": ("a.mp4", b"", "video/mp4")}}, 400, "undecodable_video"),  # an empty file
        ({"content": b"", "headers": {"Content-Type": "video/mp4"}}, 400, "undecodable_video"),  # an empty body
        ({"content": b"--x\r\ngarbage", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, 422, None),
        ({"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}}, 400, None),  # no boundary
    ],
    ids=[
        "multipart without file",
        "file as a text field",
        "empty file",
        "empty body",
        "broken multipart",
        "multipart without boundary",
    ],
)
def test_malformed_uploads_get_their_4xx(client, kwargs, status, code):
    _assert_error_json(client.post("/pose/video", **kwargs), status, code)
    _settled(client.app)


def test_a_body_over_video_max_bytes_is_413_declared_chunked_or_multipart(client):
    big = b"\x00" * (L.max_bytes + 1)
    _assert_error_json(_post(client, big, "raw"), 413, "payload_too_large")  # Content-Length declared
    _assert_error_json(_post(client, big, "multipart"), 413, "payload_too_large")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"\x00" * 65536

    r = client.post("/pose/video", content=chunks(), headers={"Content-Type": "video/mp4"})
    _assert_error_json(r, 413, "payload_too_large")
    _settled(client.app)


@pytest.mark.parametrize(
    "params",
    [
        {"frame_stride": "0"},
        {"frame_stride": "1001"},
        {"det_interval": "-1"},
        {"det_interval": "0"},
        {"max_frames": "abc"},
        {"max_frames": "0"},
        {"render": "maybe"},
        {"track": "2"},
        {"smooth": ""},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
def test_bad_query_values_are_422(client, params):
    _assert_error_json(_post(client, CLIP, params=params), 422, "invalid_parameter")
    _settled(client.app)


def test_api_keys_guard_video_and_streams():
    keyed = Settings(**{**SETTINGS.model_dump(), "api_keys": ["k1"]})
    app = create_app(keyed, fake_pipeline())
    with TestClient(app) as c:
        _ready(c)
        r = c.post("/pose/video", files={"file": ("a.mp4", CLIP, "video/mp4")})
        _assert_error_json(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = c.post("/pose/video", files={"file": ("a.mp4", CLIP, "video/mp4")}, headers={"X-API-Key": "nope"})
        _assert_error_json(r, 401, "unauthorized")
        r = c.post(
            "/pose/video", content=HOSTILE["random_bytes"], headers={"X-API-Key": "k1", "Content-Type": "video/mp4"}
        )
        _assert_error_json(r, 400, "undecodable_video")  # past the key: the video's own answer
        for url in ("/pose/stream", "/pose/stream?api_key=nope"):
            with pytest.raises(WebSocketDenialResponse) as info:
                with c.websocket_connect(url):
                    pass
            assert info.value.status_code == 401 and info.value.json()["error"] == "unauthorized"
        for url, headers in (("/pose/stream?api_key=k1", {}), ("/pose/stream", {"Authorization": "Bearer k1"})):
            with _session(c, url, headers=headers) as ws:
                ws.send_bytes(JPEG)
                assert ws.receive_json()["type"] == "frame"
        _settled(app)


def _raw_request(srv, head: bytes, body: bytes = b"", rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", srv.port))
    sock.sendall(head + body)
    return sock


def _responses(sock: socket.socket, count: int = 1) -> list[tuple[int, dict]]:
    """The next ``count`` JSON responses on the connection (fewer if the server closes it): (status, body)."""
    data, out = b"", []
    while len(out) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:]) if sep else {}
        length = int(fields.get(b"content-length", -1))
        if 0 <= length <= len(rest):
            out.append((int(head.split(b" ")[1]), json.loads(rest[:length])))
            data = rest[length:]
            continue
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            break
        data += chunk
    return out


def _head(length: int | None, ctype: str = "video/mp4", chunked: bool = False) -> bytes:
    size = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % length
    return b"POST /pose/video HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%s\r\n" % (ctype.encode(), size)


def test_declared_sizes_that_lie(server):
    # over the limit, declared: 413 at once, before any body byte
    t0 = time.monotonic()
    (status, body), *_ = _responses(_raw_request(server, _head(L.max_bytes + 70_000)))
    assert status == 413 and body["error"] == "payload_too_large" and time.monotonic() - t0 < 0.9
    # more declared than sent: the body stalls, 408 after read_timeout_s
    (status, body), *_ = _responses(_raw_request(server, _head(50_000), CLIP[:1000]))
    assert status == 408 and body["error"] == "request_timeout"
    # less declared than sent: the video is what was declared (cut: 400); the rest, a malformed next request, ends
    # the connection
    (status, body), *rest = _responses(_raw_request(server, _head(100), CLIP), 2)
    assert (status, body["error"]) == (400, "undecodable_video") and all(s == 400 for s, _ in rest)
    # chunked, no length, past the limit: 413 while it streams
    sock = _raw_request(server, _head(None, chunked=True))
    try:
        for _ in range(40):
            sock.sendall(b"%x\r\n%s\r\n" % (65536, b"\x00" * 65536))
    except OSError:
        pass
    (status, body), *_ = _responses(sock)
    assert status == 413 and body["error"] == "payload_too_large"
    assert httpx.get(server.url + "/healthz").status_code == 200
    _settled(server.app)


def test_max_streams_refuses_a_second_video_and_a_stream_while_one_video_is_held_open():
    """A video whose client reads its header line and then nothing more holds the one stream slot: a second video
    and a WebSocket handshake get 503 with Retry-After; when it hangs up, the slot comes back."""
    busy = Settings(**{**SETTINGS.model_dump(), "max_streams": 1})
    slow = FakeDetectorRuntime(delay=0.05)  # 50 ms a frame: the 250-frame clip takes over 12 s
    app = create_app(busy, fake_pipeline(detector_runtime=slow))
    clip = encode_clip(smooth_frames(250))
    with ThreadedServer(app, busy) as srv:
        with httpx.stream("POST", srv.url + "/pose/video", files={"file": ("c.mp4", clip, "video/mp4")}) as held:
            assert held.status_code == 200
            lines = held.iter_lines()  # kept: a dropped iterator closes the connection
            assert json.loads(next(lines))["type"] == "video"
            r = httpx.post(srv.url + "/pose/video", files={"file": ("c.mp4", CLIP, "video/mp4")})
            _assert_error_json(r, 503, "overloaded")
            assert int(r.headers["retry-after"]) >= 1
            with pytest.raises(InvalidStatus) as info:
                connect(srv.url.replace("http", "ws") + "/pose/stream")
            response = info.value.response
            assert response.status_code == 503 and json.loads(response.body)["error"] == "overloaded"
            assert int(response.headers["Retry-After"]) >= 1
        _settled(app)
        r = httpx.post(srv.url + "/pose/video", files={"file": ("c.mp4", CLIP, "video/mp4")}, params={"max_frames": 1})
        assert r.status_code == 200 and _lines(r.text)[-1]["type"] == "summary"


class _Crowd(FakeDetectorRuntime):
    """A detector finding 100 people in a 10 x 10 grid: each frame's line or reply is about 45 KB, so a client that
    reads nothing fills the socket buffers (about 3 MB on loopback) within a few dozen frames."""

    def run(self, feeds):
        boxes = [[64 * i + 4, 64 * j + 4, 64 * i + 60, 64 * j + 60, 0.9, 0] for i in range(10) for j in range(10)]
        return [np.array([boxes] * len(feeds["images"]), np.float32)]


@pytest.fixture(scope="module")
def crowd_server():
    app = create_app(SETTINGS, fake_pipeline(detector_runtime=_Crowd()))
    with ThreadedServer(app, SETTINGS) as srv:
        srv.app = app
        yield srv


def test_a_video_client_that_never_reads_is_dropped(crowd_server):
    """Once a line waits stream_idle_timeout_s to be sent, the answer ends and the slot comes back (before: held as
    long as the client kept the connection open, past any deadline)."""
    clip = encode_clip(smooth_frames(250, 128, 128))
    a = crowd_server.app.state.service.admission
    sock = _raw_request(crowd_server, _head(len(clip)), clip, rcvbuf=4096)
    try:
        wait_until(lambda: a.streams == 1, 5, "the video admitted")
        wait_until(lambda: a.streams == 0, 30, "the non-reading client dropped")
    finally:
        sock.close()
    _settled(crowd_server.app)


# -- 3. hostile WebSocket clients ------------------------------------------------------------------------------------


def _error_reply(ws, status: int, code: str) -> dict:
    msg = ws.receive_json()
    assert (msg["type"], msg["status"], msg["error"]) == ("error", status, code) and msg["message"], msg
    return msg


def _still_answers(ws) -> None:
    ws.send_bytes(JPEG)
    msg = ws.receive_json()
    assert msg["type"] == "frame" and msg["persons"], msg


@pytest.mark.parametrize(
    "frame, status, code",
    [
        (b"\x00garbage" * 50, 400, "undecodable_image"),
        (JPEG[: len(JPEG) // 2], 400, "undecodable_image"),
        (b"", 400, "undecodable_image"),
        (_png_claiming(16384, 16384), 413, "payload_too_large"),
        (_png_claiming(100_000, 30), 413, "payload_too_large"),
        (HOSTILE["gif_animation"], 415, "unsupported_media_type"),
        (CLIP, 400, "undecodable_image"),  # a video sent as a frame
    ],
    ids=["garbage", "truncated JPEG", "empty", "PNG claims 16384x16384", "PNG claims 100000x30", "GIF", "an MP4"],
)
def test_a_bad_frame_gets_an_error_reply_and_the_session_goes_on(client, frame, status, code):
    with _session(client) as ws:
        ws.send_text(json.dumps({"type": "frame", "id": "bad"}))
        ws.send_bytes(frame)
        assert _error_reply(ws, status, code)["id"] == "bad"
        _still_answers(ws)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        "42",
        '"frame"',
        "null",
        "{}",
        '{"type": "pause"}',
        '{"type": 7}',
        '{"type": "options", "det_interval": 0}',
        '{"type": "options", "det_interval": 1.5}',
        '{"type": "options", "track": "yes"}',
        '{"type": "options", "smooth": 1}',
        '{"type": "frame", "time_s": "now"}',
        '{"type": "frame", "time_s": NaN}',
        '{"type": "frame", "time_s": true}',
        '{"type": "frame", "id": {"a": 1}}',
        "[" * 100_000,
        '{"a": ' * 50_000,
        "\x00" * 1000,
    ],
)
def test_a_malformed_control_message_gets_an_error_reply_and_the_session_goes_on(client, text):
    with _session(client) as ws:
        ws.send_text(text)
        _error_reply(ws, 422, "invalid_parameter")
        _still_answers(ws)


def _ws_url(srv, query: str = "") -> str:
    return srv.url.replace("http://", "ws://") + "/pose/stream" + query


def test_a_frame_over_max_upload_bytes_is_413_and_over_ws_max_size_closes_1009(server):
    with connect(_ws_url(server), max_size=None) as ws:
        ws.send(b"\xff" * (MAX_UPLOAD + 1))  # within uvicorn's ws_max_size: the app's check answers
        err = json.loads(ws.recv(timeout=10))
        assert (err["type"], err["status"], err["error"]) == ("error", 413, "payload_too_large")
        ws.send(JPEG)
        assert json.loads(ws.recv(timeout=10))["type"] == "frame"
        ws.send(b"\xff" * (MAX_UPLOAD + 64 * 1024 + 1))  # past ws_max_size: the protocol closes the connection
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert httpx.get(server.url + "/healthz").status_code == 200
    _settled(server.app)


def test_a_flood_drops_frames_and_holds_at_most_one_waiting(server):
    """300 frames sent as fast as possible, nothing read meanwhile: every frame is answered or dropped (counted in
    the replies and the metric), and once the last frame arrived at most two replies follow (the frame being
    processed and the one waiting): the session held no queue."""
    before = metric(server.url, 'pose_video_frames_dropped_total{source="stream"}')
    replies = []
    with connect(_ws_url(server), max_size=None) as ws:
        for _ in range(300):
            ws.send(JPEG)
        try:
            while True:
                replies.append(json.loads(ws.recv(timeout=10)))
        except ConnectionClosed as exc:  # the idle timeout ends the session once the frames stop
            assert exc.rcvd is not None and exc.rcvd.code == 1000
    assert replies and all(r["type"] == "frame" for r in replies)
    last = replies[-1]
    assert last["received_frames"] == 300 and last["dropped_frames"] > 0
    assert len(replies) + last["dropped_frames"] == 300
    assert sum(r["received_frames"] == 300 for r in replies) <= 2
    assert [r["frame"] for r in replies] == sorted({r["frame"] for r in replies})
    assert metric(server.url, 'pose_video_frames_dropped_total{source="stream"}') - before == last["dropped_frames"]
    assert httpx.get(server.url + "/healthz").status_code == 200
    _settled(server.app)


def test_a_session_that_sends_nothing_is_closed_after_the_idle_timeout(server):
    with connect(_ws_url(server)) as ws:
        t0 = time.monotonic()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert 0.9 <= time.monotonic() - t0 < 5.0
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    _settled(server.app)
    # a few frames, then silence, the replies never read: closed after the idle timeout too
    raw = _RawWS(server)
    for _ in range(5):
        raw.send(JPEG)
    t0 = time.monotonic()
    try:
        _settled(server.app, timeout=5.0)
        assert time.monotonic() - t0 < 5.0
    finally:
        raw.sock.close()


def test_a_session_outlives_the_header_timeout(server):
    """The request-head timer (header_timeout_s, 1 s here) stops at the upgrade: it used to close every WebSocket
    session that long after it opened."""
    with connect(_ws_url(server)) as ws:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.8:
            ws.send(JPEG)
            assert json.loads(ws.recv(timeout=10))["type"] == "frame"
            time.sleep(0.2)
    _settled(server.app)


class _RawWS:
    """A WebSocket client on a plain socket (the handshake read, then never reading again)."""

    def __init__(self, srv, rcvbuf: int | None = None):
        self.sock = _raw_request(srv, b"", rcvbuf=rcvbuf)
        self.proto = ClientProtocol(parse_uri(_ws_url(srv)))
        self.proto.send_request(self.proto.connect())
        self.sock.sendall(b"".join(self.proto.data_to_send()))
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self.sock.recv(1)
        self.proto.receive_data(head)
        assert self.proto.events_received() and head.startswith(b"HTTP/1.1 101"), head

    def send(self, payload: bytes) -> None:
        self.proto.send_binary(payload)
        self.sock.sendall(b"".join(self.proto.data_to_send()))


def test_a_stream_client_that_never_reads_is_closed(crowd_server):
    """Frames keep coming, replies are never read: once a reply waits stream_idle_timeout_s to be sent, the session
    ends and its slots go back, while the client still sends (before: held for as long as it kept sending, or
    until it went away)."""
    a = crowd_server.app.state.service.admission
    image = _jpeg(640, 640)
    ws = _RawWS(crowd_server, rcvbuf=4096)
    sending = threading.Event()
    sending.set()

    def flood():
        try:
            while sending.is_set():
                ws.send(image)
                time.sleep(0.02)
        except OSError:  # the server stopped reading, or closed
            pass

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        wait_until(lambda: a.streams == 1, 5, "the session admitted")
        wait_until(lambda: a.streams == 0, 30, "the non-reading session closed")
        assert metric(crowd_server.url, "pose_active_streams") == 0
    finally:
        sending.clear()
        ws.sock.close()
        t.join(15)
    _settled(crowd_server.app)


def test_hanging_up_mid_frame_leaves_nothing_held(server):
    # frames sent, then the socket closed while they are processed
    with connect(_ws_url(server)) as ws:
        for _ in range(5):
            ws.send(JPEG)
    _settled(server.app)
    # half a WebSocket frame (header and part of the payload), then the TCP connection dropped
    raw = _RawWS(server)
    raw.proto.send_binary(JPEG)
    data = b"".join(raw.proto.data_to_send())
    raw.sock.sendall(data[: len(data) // 2])
    time.sleep(0.1)
    raw.sock.close()
    _settled(server.app)
    assert metric(server.url, "pose_active_streams") == 0
    assert httpx.get(server.url + "/healthz").status_code == 200


# -- 4. random damage to a valid clip --------------------------------------------------------------------------------


#: valid 8-frame clips to damage: MP4 with its index last and first, Matroska, MPEG-TS
BASES = [
    CLIP,
    encode_clip(noise_frames(8), faststart=True),
    encode_clip(noise_frames(8), container="matroska"),
    encode_clip(noise_frames(8), container="mpegts"),
]


@st.composite
def damaged_clips(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cut", "flip", "insert", "delete", "overwrite"]))
        i = draw(st.integers(0, len(data)))
        n = draw(st.integers(1, 4000))
        if op == "cut":
            del data[i:]
        elif op == "flip":
            data[i : i + n] = bytes(b ^ 0xFF for b in data[i : i + n])
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[i : i + n]
        else:
            data[i : i + n] = draw(st.binary(min_size=n, max_size=n))
    return bytes(data)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(damaged_clips(), st.sampled_from(["multipart", "raw"]))
def test_a_damaged_clip_never_gets_a_500(client, data, transport):
    r = _post(client, data, transport)
    if r.status_code != 200:
        assert 400 <= r.status_code < 500
        _assert_error_json(r, r.status_code)
    else:
        lines = _lines(r.text)
        assert lines[0]["type"] == "video" and all(x["type"] == "frame" for x in lines[1:-1])
        assert lines[-1]["type"] in ("summary", "error")
        if lines[-1]["type"] == "error":
            assert 400 <= lines[-1]["status"] < 500, lines[-1]
    _settled(client.app)
