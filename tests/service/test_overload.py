"""Admission control, deadlines, disconnects and health under load, in-process over the real request flow with
a deliberately slow fake pose model (tests/fakes.py)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.settings import Settings
from service.app import create_app
from tests.fakes import FakePoseRuntime, fake_pipeline, wait_until

JPEG = {"Content-Type": "image/jpeg"}
BOXES = {"boxes": "[[0, 0, 50, 50], [10, 10, 90, 90]]"}


def _jpeg(w=320, h=240) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def _client(settings: Settings, **fake) -> tuple[TestClient, FakePoseRuntime]:
    pipeline = fake_pipeline(**fake)
    client = TestClient(create_app(settings.model_copy(update={"warmup": False}), pipeline))
    return client, pipeline.pose.runtime


def _ready(c: TestClient) -> None:
    for _ in range(200):
        if c.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)
    raise TimeoutError


def _metric(c: TestClient, name: str) -> float:
    text = c.get("/metrics").text
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(name) and not x.startswith("#"))


def test_beyond_capacity_requests_get_503_with_retry_after_before_admitted_ones_finish():
    client, runtime = _client(Settings(max_inflight_requests=2, retry_after_s=2), delay=1.0)
    with client as c:
        _ready(c)
        t0 = time.perf_counter()

        def call(_):
            r = c.post("/pose", params=BOXES, content=_jpeg(), headers=JPEG)
            return r, time.perf_counter() - t0

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(8)))
        ok = [t for r, t in answers if r.status_code == 200]
        busy = [(r, t) for r, t in answers if r.status_code == 503]
        assert len(ok) >= 2 and len(busy) >= 3 and len(ok) + len(busy) == 8
        for r, _ in busy:
            assert r.json()["error"] == "overloaded" and r.headers["retry-after"] == "2"
        assert max(t for _, t in busy) < min(ok)  # refused at once, before the admitted work finished
        assert _metric(c, 'pose_rejections_total{reason="requests"}') == len(busy)
        assert _metric(c, "pose_inflight_requests") == 0  # everything returned


def test_a_request_past_its_deadline_gets_504_and_its_queued_crops_never_run():
    client, runtime = _client(Settings(request_timeout_s=0.3), delay=1.0)
    with client as c:
        _ready(c)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.post, "/pose", params={"boxes": "[[0, 0, 50, 50]]"}, content=_jpeg(), headers=JPEG)
            wait_until(lambda: runtime.batch_sizes)  # the first request's crop is in the model for 1 s
            second = pool.submit(c.post, "/pose", params={"boxes": "[[5, 5, 60, 60]] "}, content=_jpeg(), headers=JPEG)
            r1, r2 = first.result(), second.result()
        assert (r1.status_code, r2.status_code) == (504, 504)
        assert r2.json()["error"] == "deadline_exceeded"
        time.sleep(1.2)  # the batch in flight ends; the second request's crop was dropped, not run
        assert runtime.batch_sizes == [1]
        assert _metric(c, "pose_deadline_expired_total") == 2
        assert _metric(c, "pose_inflight_requests") == 0 and _metric(c, "pose_inflight_pixels") == 0


def _drive_asgi(
    app, body_chunks: list[bytes], headers: list[tuple[bytes, bytes]], query: bytes, complete: bool = True
) -> list[dict]:
    """One POST /pose straight into the ASGI app: ``body_chunks`` arrive (the whole body when ``complete``, else
    more was announced), then the client is gone (uvicorn's ``http.disconnect`` for a lost connection). Returns
    the messages the app sent."""
    sent: list[dict] = []
    messages = [
        {"type": "http.request", "body": chunk, "more_body": not complete or i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/pose", "raw_path": b"/pose", "root_path": "", "query_string": query, "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2), "state": {},
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_that_disconnects_costs_no_further_inference():
    """The body arrives, then the client goes away while a slow batch runs."""
    settings = Settings(warmup=False)
    pipeline = fake_pipeline(delay=1.0)
    app = create_app(settings, pipeline)
    state = app.state.service
    state.load()
    runtime = pipeline.pose.runtime
    blocker = threading.Thread(target=pipeline.predict, args=(np.zeros((64, 64, 3), np.uint8), [[0, 0, 9, 9]]))
    blocker.start()
    wait_until(lambda: runtime.batch_sizes)  # the model is busy for 1 s
    body = _jpeg()
    headers = [(b"content-type", b"image/jpeg"), (b"content-length", str(len(body)).encode())]
    sent = _drive_asgi(app, [body], headers, b"boxes=[[1,1,40,40]]")
    blocker.join()
    time.sleep(0.1)
    assert sent[0]["status"] == 499  # counted, never seen by the gone client
    assert runtime.batch_sizes == [1]  # only the blocker's crop ran
    assert pipeline.batcher.dropped_crops == 1
    from prometheus_client import generate_latest

    text = generate_latest(state.registry).decode()
    assert "pose_client_disconnects_total 1.0" in text and 'pose_requests_total{status="499"} 1.0' in text
    assert state.admission.requests == 0


@pytest.mark.parametrize("multipart", [False, True], ids=["raw-body", "multipart"])
def test_a_client_that_disconnects_during_the_upload_is_a_disconnect_not_a_500(multipart, caplog):
    app = create_app(Settings(warmup=False), fake_pipeline())
    state = app.state.service
    state.load()
    body = _jpeg()
    if multipart:
        ctype = b"multipart/form-data; boundary=xyz"
        body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n' + body
    else:
        ctype = b"image/jpeg"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body) + 1000).encode())]
    with caplog.at_level("INFO"):
        sent = _drive_asgi(app, [body[: len(body) // 2]], headers, b"", complete=False)  # half, then gone
    assert sent[0]["status"] == 499
    from prometheus_client import generate_latest

    text = generate_latest(state.registry).decode()
    assert "pose_client_disconnects_total 1.0" in text and 'pose_requests_total{status="500"}' not in text
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
    assert state.admission.requests == 0


def test_health_and_readiness_answer_while_inference_is_saturated():
    client, _ = _client(Settings(max_inflight_requests=4), delay=1.0)
    with client as c:
        _ready(c)
        with ThreadPoolExecutor(8) as pool:
            busy = [pool.submit(c.post, "/pose", params=BOXES, content=_jpeg(), headers=JPEG) for _ in range(4)]
            time.sleep(0.2)  # all four admitted requests wait on a 1 s model call
            for path in ("/healthz", "/readyz", "/metrics"):
                t0 = time.perf_counter()
                assert c.get(path).status_code == 200
                assert time.perf_counter() - t0 < 0.5, f"{path} waited behind inference"
            assert all(f.result().status_code == 200 for f in busy)


def test_503_while_loading_carries_retry_after(tmp_path):
    with TestClient(create_app(Settings(pose_model=tmp_path / "missing.json"))) as c:
        for _ in range(200):
            r = c.get("/readyz")
            if r.json()["error"] == "model_not_loaded":
                break
            assert r.headers["retry-after"] == "5"
            time.sleep(0.01)
        r = c.post("/pose", content=_jpeg(), headers=JPEG)
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        assert str(tmp_path) not in r.text and "missing.json" in r.text  # no server paths in answers


def test_api_keys_cors_docs_and_the_render_bound(tmp_path):
    keyfile = tmp_path / "keys"
    keyfile.write_text("# one per line\nsecond-key\n")
    settings = Settings(
        api_keys="first-key", api_keys_file=keyfile, cors_allow_origins=["https://app.example"],
        docs_enabled=False, max_render_pixels=10_000,
    )  # fmt: skip
    client, _ = _client(settings)
    with client as c:
        _ready(c)
        r = c.post("/pose", params=BOXES, content=_jpeg(), headers=JPEG)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthorized"
        assert c.post("/pose", params=BOXES, content=_jpeg(), headers={**JPEG, "X-API-Key": "wrong"}).status_code == 401
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer second-key"}).status_code == 200
        r = c.post("/pose", params={**BOXES, "render": "true"}, content=_jpeg(640, 480),
                   headers={**JPEG, "X-API-Key": "first-key", "Origin": "https://app.example"})  # fmt: skip
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
        w, h = Image.open(io.BytesIO(r.content)).size
        assert w * h <= 10_000 and abs(w / h - 640 / 480) < 0.05
        r = c.options("/pose", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
        assert c.get("/healthz").status_code == 200  # health stays open
        assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404


def test_models_endpoint_shows_no_server_paths(movenet_card, tmp_path):
    """Cards written by ``pose-export`` name the checkpoint and verification images by path; none reaches a client."""
    import json

    from inference.pipeline import PosePipeline

    card = json.loads(movenet_card.read_text())
    card["source"] = {"checkpoint": str(tmp_path / "ckpts" / "best.pth"), "sha256": "ab" * 32}
    card["extra"] = {"verification": {"crops": f"2 crops of {tmp_path}/img/a.jpg, {tmp_path}/img/b.jpg"}}
    (tmp_path / "movenet.json").write_text(json.dumps(card))
    settings = Settings(pose_model=tmp_path / "movenet.json", providers=["CPUExecutionProvider"], warmup=False)
    with TestClient(create_app(settings, PosePipeline.from_settings(settings))) as c:
        _ready(c)
        body = c.get("/v1/models").json()
    text = json.dumps(body)
    assert "movenet_thunder.onnx" in text and str(movenet_card.parent) not in text and "/shared/" not in text
    assert str(tmp_path) not in text and "/ckpts/" not in text and "/img/" not in text
    assert body["pose"]["card"]["source"]["checkpoint"] == "best.pth"
    assert body["pose"]["card"]["extra"]["verification"]["crops"] == "2 crops of a.jpg, b.jpg"


@pytest.mark.parametrize("settings", [dict(max_inflight_pixels=10, max_image_pixels=100)])
def test_a_pixel_budget_below_the_largest_image_is_refused(settings):
    with pytest.raises(ValueError, match="max_inflight_pixels"):
        Settings(**settings)
