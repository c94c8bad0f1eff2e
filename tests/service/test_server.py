"""Connection hygiene of the real server on loopback: ``pose-serve``'s uvicorn configuration
(service/server.py) with the request guard (service/middleware.py). Most tests run it in a thread over fake
models; shutdown and memory run the real ``pose-serve`` process with YOLOv8n + MoveNet."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from core.settings import Settings
from service.app import create_app
from service.launcher import ServerProcess
from tests.fakes import ThreadedServer, fake_pipeline

SETTINGS = Settings(
    warmup=False, header_timeout_s=1.0, read_timeout_s=1.0, max_header_bytes=8192, max_connections=8,
    max_upload_bytes=1_000_000,
)  # fmt: skip


@pytest.fixture(scope="module")
def server():
    with ThreadedServer(create_app(SETTINGS, fake_pipeline()), SETTINGS) as srv:
        yield srv


def _connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=5)


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed the connection (recv returns b"" or the socket is reset)."""
    t0 = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:  # still open
        return float("inf")
    return time.monotonic() - t0


def _response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(v) for k, v in (h.split(b":", 1) for h in head.split(b"\r\n")[1:]) if k.lower() == b"content-length"), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, json.loads(body) if body else {}


def test_a_request_head_trickled_byte_by_byte_is_cut_off_at_the_header_timeout(server):
    sock = _connect(server)
    sock.sendall(b"POST /pose HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()

    def trickle():
        try:
            for _ in range(20):
                time.sleep(0.2)
                sock.sendall(b"X")
        except OSError:
            pass

    threading.Thread(target=trickle, daemon=True).start()
    elapsed = _closed_within(sock, 4.0)
    assert elapsed < 3.5 and time.monotonic() - t0 >= 0.9  # closed after ~1 s, though bytes kept coming
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_an_oversized_request_head_is_refused_with_json(server):
    # in one piece: the app's check (431)
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    status, body = _response(sock)
    assert status == 431 and body["error"] == "headers_too_large"
    # trickled, never complete: h11 stops buffering at the limit (400 from the protocol layer, JSON too)
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    try:
        for _ in range(40):
            sock.sendall(b"a" * 1000)
            time.sleep(0.005)
    except OSError:
        pass
    status, body = _response(sock)
    assert status == 400 and body["error"] == "bad_request"


def test_a_stalled_body_gets_408(server):
    sock = _connect(server)
    sock.sendall(
        b"POST /pose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n" + b"\xff" * 10
    )
    status, body = _response(sock)  # nothing more is sent
    assert status == 408 and body["error"] == "request_timeout"


@pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=xyz"])
def test_a_chunked_upload_past_the_limit_is_refused_while_streaming(server, content_type):
    """No Content-Length: the limit holds as bytes arrive; the server answers 413 long before 40 MB were sent."""
    sock = _connect(server)
    sock.sendall(
        f"POST /pose HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = [0]
    prefix = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        if "multipart" in content_type
        else b""
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b"\xff" * 65536)

    def pump():
        try:
            if prefix:
                sock.sendall(b"%x\r\n%s\r\n" % (len(prefix), prefix))
            while sent[0] < 40_000_000:
                sock.sendall(chunk)
                sent[0] += 65536
        except OSError:
            pass

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    status, body = _response(sock)
    sock.close()
    t.join(5)
    assert status == 413 and "limit" in body["message"]
    assert sent[0] < 20_000_000  # the server stopped reading near its 1 MB limit


def test_connections_beyond_the_cap_are_closed(server):
    """Against a server whose header timeout (60 s) is far beyond the generous 20 s wait, so what closes them is the
    cap, not the timeout, however loaded the machine."""
    import select

    slow = Settings(warmup=False, header_timeout_s=60.0, read_timeout_s=60.0, max_connections=SETTINGS.max_connections)
    with ThreadedServer(create_app(slow, fake_pipeline()), slow) as capped:
        socks = [_connect(capped) for _ in range(12)]
        try:
            closed: set[socket.socket] = set()
            end = time.monotonic() + 20.0
            while len(closed) < 12 - slow.max_connections and (left := end - time.monotonic()) > 0:
                readable, _, _ = select.select([s for s in socks if s not in closed], [], [], left)
                for s in readable:
                    try:
                        if not s.recv(65536):
                            closed.add(s)
                    except (ConnectionResetError, BrokenPipeError):
                        closed.add(s)
            assert len(closed) >= 12 - slow.max_connections
        finally:
            for s in socks:
                s.close()
    # once they are gone (the header timeout ends the server's side of the idle ones), new clients get in again
    for _ in range(50):
        try:
            if httpx.get(server.url + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise AssertionError("/healthz refused after the held connections closed")


@pytest.mark.slow
def test_sigterm_drains_and_exits_even_with_a_stalled_upload(yolo_onnx, movenet_card):
    args = ["--detector", str(yolo_onnx), "--pose", str(movenet_card), "--shutdown-timeout-s", "2",
            "--read-timeout-s", "60", "--header-timeout-s", "60"]  # fmt: skip
    with ServerProcess(args) as srv:
        srv.wait_ready()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        sock.sendall(b"POST /pose HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\nxx")
        time.sleep(0.3)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(20)
        assert time.monotonic() - t0 < 8  # 2 s of grace, not the 60 s read timeout
        sock.close()


def _huge_jpeg(w=7000, h=7000) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (40, 40, 40)).save(buf, format="JPEG", quality=10)
    return buf.getvalue()


def _rss_kib(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.slow
def test_concurrent_huge_images_stay_within_the_pixel_budget(yolo_onnx, movenet_card):
    """16 concurrent 7000x7000 JPEGs (49 Mpx, a few hundred KB each): with a 50 Mpx budget one decodes at a time,
    the others get 503 at once, and the server's peak RSS grows by about one image, not sixteen."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc to read the server's RSS")
    data = _huge_jpeg()
    args = ["--detector", str(yolo_onnx), "--pose", str(movenet_card), "--max-inflight-pixels", "50000000",
            "--max-upload-bytes", str(len(data) + 1)]  # fmt: skip
    with ServerProcess(args) as srv:
        srv.wait_ready()
        base = _rss_kib(srv.proc.pid, "VmRSS")

        def call(_):
            with httpx.Client(timeout=60) as c:
                return c.post(srv.url + "/pose", params={"boxes": "[[0, 0, 100, 100]]"}, content=data,
                              headers={"Content-Type": "image/jpeg"}).status_code  # fmt: skip

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(call, range(16)))
        peak = _rss_kib(srv.proc.pid, "VmHWM")
    assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 8
    grew_mib = (peak - base) / 1024
    print(f"\nRSS: {base / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB (+{grew_mib:.0f}); codes {sorted(codes)}")
    # one 49 Mpx RGB image is 140 MiB; Pillow + numpy + the crop hold about three copies at the peak
    assert grew_mib < 700, f"peak RSS grew by {grew_mib:.0f} MiB"
