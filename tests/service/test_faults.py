"""A misbehaving pose model (issue 25): the fault-injection models of ``tests/faults.py`` served by a real
``pose-serve`` on 127.0.0.1 with the real YOLOv8n detector. Each fault stays with the request whose crops trigger it
(bright crops), innocent requests sharing its batch get their own answers, the server keeps answering after every
fault, and SIGTERM during a batch that never ends exits within the bound with JSON answers. The batcher's own
guarantees (a worker that survives faults, one that stops is reported) are checked in-process at the end."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.launcher import ServerProcess
from tests.fakes import wait_until
from tests.faults import BRIGHT, fault_pose_card

#: Batches wait 100 ms for others to join, so concurrent requests share them (the point of these tests).
ENV = {"POSE_MAX_BATCH_WAIT_MS": "100", "POSE_REQUEST_TIMEOUT_S": "10", "POSE_WARMUP_BATCH_SIZES": "one"}
BOX = [[100, 100, 200, 250]]  # its padded square crop (side 187.5 px) lies inside the 400 x 360 image
INNOCENTS = 12


def _jpeg(left: int, right: int | None = None, w: int = 400, h: int = 360) -> bytes:
    """A flat PNG of value ``left`` (its right half ``right`` when given): exact pixel values."""
    a = np.full((h, w, 3), left, np.uint8)
    if right is not None:
        a[:, w // 2 :] = right
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _post(url: str, data: bytes, boxes=BOX, timeout: float = 30.0) -> httpx.Response:
    params = {"boxes": str(boxes)} if boxes is not None else {}
    with httpx.Client(timeout=timeout) as c:
        return c.post(url + "/pose", params=params, content=data, headers={"Content-Type": "image/png"})


def _dark_coco(assets: Path) -> bytes:
    """A real photo, darkened so no crop of it is bright: the real detector's path for innocent requests."""
    a = np.asarray(Image.open(assets / "coco-tiny" / "000000196141.jpg").convert("RGB")) // 2
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG")
    return buf.getvalue()


def _metric(url: str, name: str, **labels) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            head, value = line.rsplit(" ", 1)
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


def _serve(yolo_onnx, tmp_path_factory, fault: str, **env):
    card = fault_pose_card(tmp_path_factory.mktemp(f"fault_{fault}"), fault)
    return ServerProcess(["--detector", str(yolo_onnx), "--pose", str(card)], env={**ENV, **env})


def _guilty_among_innocents(url: str, guilty: bytes, assets: Path, guilty_boxes=BOX):
    """The guilty request and INNOCENTS innocent ones (dark images of distinct values, two through the detector) at
    once. Returns (guilty response, innocent responses, each innocent's answer alone first)."""
    innocent = [_jpeg(30 + 5 * i) for i in range(INNOCENTS - 2)]
    alone = [_post(url, d) for d in innocent]
    assert all(r.status_code == 200 for r in alone), [r.text for r in alone]
    photo = _dark_coco(assets)
    with ThreadPoolExecutor(INNOCENTS + 1) as pool:
        g = pool.submit(_post, url, guilty, guilty_boxes)
        boxed = [pool.submit(_post, url, d) for d in innocent]
        detected = [pool.submit(_post, url, photo, None) for _ in range(2)]
        return g.result(), [f.result() for f in boxed + detected], alone


def _assert_innocents_fine(innocents, alone) -> None:
    codes = [r.status_code for r in innocents]
    assert codes == [200] * len(innocents), f"innocent requests failed: {codes} {[r.text for r in innocents]}"
    for r, a in zip(innocents, alone):  # each got its own answer, the one it gets alone
        assert r.json()["persons"] == a.json()["persons"]


def _still_serving(url: str) -> float:
    """/healthz, /readyz 200 and a healthy request answered; returns that request's seconds."""
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    assert httpx.get(url + "/readyz", timeout=5).status_code == 200
    t0 = time.monotonic()
    r = _post(url, _jpeg(70))
    assert r.status_code == 200, r.text
    took = time.monotonic() - t0
    print(f"\n{url}: a healthy request answered in {took:.2f} s after the fault")
    return took


def test_an_output_batch_axis_of_one_is_refused_and_its_batch_mates_are_retried(yolo_onnx, assets, tmp_path_factory):
    """Rows 1 and 2: a batch the model answers with one row fails its check (not a dead worker, not a broadcast
    answer); the requests of a failed batch are retried alone, where one crop is one row, and succeed."""
    with _serve(yolo_onnx, tmp_path_factory, "batch1") as srv:
        srv.wait_ready()
        url = srv.url
        two = _post(url, _jpeg(40, 120), boxes=[[40, 100, 140, 250], [260, 100, 360, 250]])
        assert two.status_code == 500, two.text  # today: 200 with the first person copied onto the second
        assert two.json()["error"] == "inference_failed" and "fault_batch1" in two.json()["message"]
        assert "batch-size check" in two.json()["message"]
        innocent = [_jpeg(30 + 5 * i) for i in range(INNOCENTS)]
        alone = [_post(url, d) for d in innocent]
        with ThreadPoolExecutor(INNOCENTS) as pool:
            together = list(pool.map(lambda d: _post(url, d), innocent))
        _assert_innocents_fine(together, alone)
        assert _still_serving(url) < 5
        assert _metric(url, "pose_inference_failures_total", model="fault_batch1", kind="shape") >= 1
        assert _metric(url, "pose_batcher_workers_stopped") == 0


def test_an_input_dependent_keypoint_count_fails_only_the_guilty_request(yolo_onnx, assets, tmp_path_factory):
    """Row 5: a bright crop makes the model answer 16 keypoints for the whole batch."""
    with _serve(yolo_onnx, tmp_path_factory, "k16") as srv:
        srv.wait_ready()
        guilty, innocents, alone = _guilty_among_innocents(srv.url, _jpeg(240), assets)
        assert guilty.status_code == 500 and "keypoint-count check" in guilty.json()["message"], guilty.text
        assert "fault_k16" in guilty.json()["message"]
        _assert_innocents_fine(innocents, alone)
        assert all(len(p["keypoints"]) == 17 for r in innocents for p in r.json()["persons"])
        assert _still_serving(srv.url) < 5
        assert _metric(srv.url, "pose_inference_failures_total", model="fault_k16", kind="shape") >= 1


def test_an_absurd_finite_output_is_a_range_error_for_the_guilty_request_only(yolo_onnx, assets, tmp_path_factory):
    """Row 7: 1e30 for a bright crop is an InferenceError naming the check, never keypoints at 1e32 px."""
    with _serve(yolo_onnx, tmp_path_factory, "huge") as srv:
        srv.wait_ready()
        guilty, innocents, alone = _guilty_among_innocents(srv.url, _jpeg(240), assets)
        assert guilty.status_code == 500 and "range check" in guilty.json()["message"], guilty.text
        _assert_innocents_fine(innocents, alone)
        assert _still_serving(srv.url) < 5
        assert _metric(srv.url, "pose_inference_failures_total", model="fault_huge", kind="range") >= 1


def test_a_person_with_nan_keypoints_is_dropped_and_flagged(yolo_onnx, assets, tmp_path_factory):
    """Row 6: one NaN person of two: the other is answered, the answer says one was dropped, a counter counts it."""
    with _serve(yolo_onnx, tmp_path_factory, "nan") as srv:
        srv.wait_ready()
        boxes = [[40, 100, 140, 250], [260, 100, 360, 250]]  # the left one in the bright half
        guilty, innocents, alone = _guilty_among_innocents(srv.url, _jpeg(240, 40), assets, boxes)
        assert guilty.status_code == 200, guilty.text  # today: 500 for the whole request
        body = guilty.json()
        assert body["dropped_persons"] == 1 and len(body["persons"]) == 1
        assert body["persons"][0]["bbox"] == [260.0, 100.0, 360.0, 250.0]
        assert np.isfinite(np.array(body["persons"][0]["keypoints"])).all()
        _assert_innocents_fine(innocents, alone)
        assert all(r.json()["dropped_persons"] == 0 for r in innocents)
        assert _still_serving(srv.url) < 5
        assert _metric(srv.url, "pose_dropped_persons_total", model="fault_nan") == 1
        assert _metric(srv.url, "pose_inference_failures_total", model="fault_nan", kind="non_finite") == 1


def test_a_call_past_the_inference_timeout_is_cancelled_and_repeated_timeouts_unready(
    yolo_onnx, assets, tmp_path_factory
):
    """Row 4: a bright crop makes the model spin forever; the watchdog cancels the call (RunOptions.terminate), the
    batch-mates are retried alone and answered, the guilty request gets 500 (timeout); a model that keeps timing
    out turns /readyz 503 until a call finishes in time."""
    env = {"POSE_INFERENCE_TIMEOUT_S": "1", "POSE_UNREADY_AFTER_TIMEOUTS": "2"}
    with _serve(yolo_onnx, tmp_path_factory, "slow", **env) as srv:
        srv.wait_ready()
        t0 = time.monotonic()
        guilty, innocents, alone = _guilty_among_innocents(srv.url, _jpeg(240), assets)
        took = time.monotonic() - t0
        assert guilty.status_code == 500 and "inference timeout" in guilty.json()["message"], guilty.text
        _assert_innocents_fine(innocents, alone)
        assert took < 9, f"the batch took {took:.1f} s: it was not cancelled"  # never ends unless cancelled
        assert _metric(srv.url, "pose_inference_failures_total", model="fault_slow", kind="timeout") >= 1
        assert _post(srv.url, _jpeg(240)).status_code == 500
        assert _post(srv.url, _jpeg(240)).status_code == 500
        r = httpx.get(srv.url + "/readyz", timeout=5)
        assert r.status_code == 503 and "inference timeout" in r.json()["message"]
        assert httpx.get(srv.url + "/healthz", timeout=5).status_code == 200
        assert _post(srv.url, _jpeg(70)).status_code == 200  # a call in time: ready again
        assert _still_serving(srv.url) < 5


def test_sigterm_during_a_batch_that_never_ends_exits_in_time_with_json_503(yolo_onnx, assets, tmp_path_factory):
    """Row 3: the running call is cancelled a second before the grace ends; its requests get JSON 503, nothing is
    logged as a traceback, the process exits within the shutdown timeout plus a margin of 3 s."""
    grace = 3
    env = {"POSE_INFERENCE_TIMEOUT_S": "0", "POSE_SHUTDOWN_TIMEOUT_S": str(grace), "POSE_REQUEST_TIMEOUT_S": "60"}
    with _serve(yolo_onnx, tmp_path_factory, "slow", **env) as srv:
        srv.wait_ready()
        data = [_jpeg(240)] + [_jpeg(30 + 5 * i) for i in range(5)]
        with ThreadPoolExecutor(len(data)) as pool:
            futures = [pool.submit(_post, srv.url, d) for d in data]
            wait_until(lambda: _metric(srv.url, "pose_inflight_crops") == len(data), 20, "all requests admitted")
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            code = srv.proc.wait(grace + 15)
            exit_s = time.monotonic() - t0
            answers = [f.result() for f in futures]
        out = srv.output()
    print(f"\nexit {exit_s:.1f} s after SIGTERM (grace {grace} s); answers {[r.status_code for r in answers]}")
    assert code in (0, -signal.SIGTERM), out  # uvicorn re-raises the SIGTERM it caught once it has shut down
    assert exit_s < grace + 3, f"exited {exit_s:.1f} s after SIGTERM"
    for r in answers:
        assert r.status_code == 503 and r.json()["error"] == "shutting_down", r.text
    assert "Traceback" not in out and "CancelledError" not in out, out


@pytest.mark.parametrize("broken", ["corrupt model file", "invalid card", "missing model"])
def test_a_model_that_cannot_load_ends_the_process_with_the_reason(yolo_onnx, tmp_path, broken):
    """Row 10: the reason on stderr and a non-zero exit, instead of a process that never serves behind a green
    /healthz (``--no-exit-on-load-failure`` keeps the old behaviour: tests/service/test_app_http.py). A card that does
    not parse or names a missing file fails the check before the port is bound (exit 1,
    tests/service/test_pose_serve.py); a model file the runtime cannot load fails at start-up (exit 3)."""
    card = fault_pose_card(tmp_path, "none")
    if broken == "corrupt model file":
        (tmp_path / "fault_none.onnx").write_bytes(b"\x08\x07 this is not a protobuf" * 10)
    elif broken == "invalid card":
        card.write_text('{"name": "x", "input": {}')
    else:
        (tmp_path / "fault_none.onnx").unlink()
    cmd = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning",
           "--detector", str(yolo_onnx), "--pose", str(card)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    loaded = broken == "corrupt model file"  # the others are caught before the runtime loads anything
    assert proc.returncode == (3 if loaded else 1), proc.stderr
    assert ("model loading failed" in proc.stderr) == loaded and "Traceback" not in proc.stderr
    expected = {"corrupt model file": "fault_none.onnx", "invalid card": "card", "missing model": "not found"}
    assert expected[broken] in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------------------------------
# The batcher's own guarantees, in-process


def test_a_fault_outside_the_model_call_reaches_its_requests_and_the_worker_goes_on():
    from inference.batcher import Batcher

    def predict(crops):
        return crops[:, :1, 0, 0].astype(np.float32)

    seen = []

    def on_batch(size):  # a bug in the bookkeeping after the model call, once
        seen.append(size)
        if len(seen) == 1:
            raise RuntimeError("bookkeeping bug")

    b = Batcher(predict, max_batch_size=8, max_wait_ms=1, on_batch=on_batch)
    with pytest.raises(RuntimeError, match="bookkeeping"):
        b.submit(np.zeros((2, 2, 2, 3), np.uint8)).result(5)
    out = b.submit(np.full((3, 2, 2, 3), 7, np.uint8)).result(5)
    assert out.shape == (3, 1) and np.all(out == 7)
    assert b.restarts == 1 and b.stopped is None
    b.close()


def test_a_stopped_worker_fails_healthz_readyz_and_new_requests():
    from fastapi.testclient import TestClient

    from core.settings import Settings
    from service.app import create_app
    from tests.fakes import fake_pipeline

    pipeline = fake_pipeline()
    with TestClient(create_app(Settings(warmup=False), pipeline)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, 10, "ready")

        def die(crops):
            raise SystemExit("simulated thread death")  # not an Exception: the loop cannot catch it

        pipeline.batcher.predict_fn = die
        r = client.post("/pose", params={"boxes": "[[0, 0, 50, 50]]"}, content=_jpeg(60),
                        headers={"Content-Type": "image/png"})  # fmt: skip
        assert r.status_code == 500 and r.json()["error"] == "inference_failed"
        wait_until(lambda: pipeline.batcher.stopped is not None, 5, "the worker stopped")
        h = client.get("/healthz")
        assert h.status_code == 503 and h.json()["error"] == "worker_stopped" and "SystemExit" in h.json()["message"]
        assert client.get("/readyz").status_code == 503
        assert "pose_batcher_workers_stopped 1.0" in client.get("/metrics").text
        r = client.post("/pose", params={"boxes": "[[0, 0, 50, 50]]"}, content=_jpeg(60),
                        headers={"Content-Type": "image/png"})  # fmt: skip
        assert r.status_code == 500 and "not running" in r.json()["message"]  # at once, not a 504 after the deadline


def test_bright_is_what_the_fault_models_say():
    assert 30 + 5 * INNOCENTS < BRIGHT < 240


# ------------------------------------------------------------------------------------------------------------------
# Disk and admission (rows 8 and 9): the threaded server of tests/fakes.py over fake models


def test_a_multipart_upload_over_1_mb_needs_no_temp_file(monkeypatch):
    """Row 8: Starlette spools file parts over 1 MB to a temporary file; with a full temp dir that was a 500. The
    upload is parsed in memory: no temporary file is opened (every one fails here, as with ENOSPC)."""
    import errno
    import tempfile

    from fastapi.testclient import TestClient

    from core.settings import Settings
    from service.app import create_app
    from tests.fakes import fake_pipeline

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", full)
    rng = np.random.default_rng(0)
    big = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(big, format="PNG")
    assert len(big.getvalue()) > 1_100_000
    with TestClient(create_app(Settings(warmup=False), fake_pipeline(max_upload_bytes=3_000_000))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, 10, "ready")
        r = client.post("/pose", files={"file": ("a.png", big.getvalue(), "image/png")},
                        params={"boxes": "[[0, 0, 100, 100]]"})  # fmt: skip
    assert r.status_code == 200, r.text


def test_connections_that_never_send_their_body_hold_no_admission_slot():
    """Row 9: more connections than request slots send ``Expect: 100-continue`` and a Content-Length, then nothing;
    a normal client is still admitted (they get 408 at the read timeout)."""
    import socket

    from core.settings import Settings
    from service.app import create_app
    from tests.fakes import ThreadedServer, fake_pipeline

    settings = Settings(warmup=False, max_inflight_requests=4, read_timeout_s=5.0, header_timeout_s=5.0)
    with ThreadedServer(create_app(settings, fake_pipeline()), settings) as srv:
        socks = []
        try:
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(b"POST /pose HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nExpect: 100-continue\r\n"
                          b"Content-Length: 1000000\r\n\r\n")  # fmt: skip
                socks.append(s)
            for s in socks:  # each was let through to the body (100 Continue): the app is waiting for it
                assert s.recv(64).startswith(b"HTTP/1.1 100")
            r = _post(srv.url, _jpeg(60), timeout=10)
            assert r.status_code == 200, r.text  # today: 503 overloaded for the whole read timeout
        finally:
            for s in socks:
                s.close()
