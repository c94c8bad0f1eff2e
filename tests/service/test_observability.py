"""Operations basics on the real server over fake models: request ids (header in, header out, on every log line of
the request), the JSON log format, prometheus_client's default collectors and OpenTelemetry spans per stage."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.settings import Settings
from service.app import create_app
from service.observability import REQUEST_ID, configure_logging, request_id_for
from tests.fakes import ThreadedServer, fake_pipeline

SETTINGS = Settings(warmup=False)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 150)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(SETTINGS, fake_pipeline())) as c:
        yield c


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).level)
             for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}  # fmt: skip
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for n, (hs, prop, lvl) in saved.items():
        log = logging.getLogger(n)
        log.handlers[:] = hs
        log.propagate, log.level = prop, lvl


def test_a_valid_request_id_is_echoed_and_others_are_replaced(client):
    given = "edge-7f3a.42:req_1"
    for path in ("/healthz", "/v1/models", "/no/such/path"):
        assert client.get(path, headers={"X-Request-ID": given}).headers["x-request-id"] == given
    made = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    for bad in ("has space", "x" * 129, 'quote"d', ""):
        got = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert got != bad and re.fullmatch(r"[0-9a-f]{32}", got)
    # error answers carry it too (here a 413 raised by the request guard while reading the body)
    r = client.post("/v1/pose", content=b"x" * (SETTINGS.max_upload_bytes + 70_000),
                    headers={"X-Request-ID": given, "Content-Type": "image/jpeg"})  # fmt: skip
    assert r.status_code == 413 and r.headers["x-request-id"] == given


def test_request_id_parsing():
    assert request_id_for([(b"X-Request-Id", b" abc ")]) == "abc"
    assert request_id_for([(b"x-request-id", b"\xff\xfe")]) != "\xff\xfe"
    assert REQUEST_ID.get() == "-"  # outside any request


def test_json_log_lines_carry_the_request_id(capsys, restore_logging):
    configure_logging(SETTINGS.model_copy(update={"log_format": "json"}))
    with ThreadedServer(create_app(SETTINGS, fake_pipeline()), SETTINGS) as srv:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        r = httpx.post(srv.url + "/v1/pose", content=_jpeg(),
                       headers={"Content-Type": "image/jpeg", "X-Request-ID": "trace-me-1"}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        httpx.get(srv.url + "/healthz", headers={"X-Request-ID": "health-2"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = {rec["request_id"]: rec for rec in lines if rec.get("logger") == "uvicorn.access"}
    assert "POST /v1/pose" in access["trace-me-1"]["message"]
    assert "GET /healthz" in access["health-2"]["message"]
    assert {"time", "level", "logger", "message", "request_id"} <= set(access["trace-me-1"])


def test_text_log_lines_name_the_request_id(capsys, restore_logging):
    configure_logging(SETTINGS)
    logging.getLogger("poseserve.test").warning("outside")
    token = REQUEST_ID.set("inside-3")
    try:
        logging.getLogger("poseserve.test").warning("inside")
    finally:
        REQUEST_ID.reset(token)
    err = capsys.readouterr().err
    assert re.search(r"WARNING poseserve\.test \[-\]: outside", err)
    assert re.search(r"WARNING poseserve\.test \[inside-3\]: inside", err)


def test_default_process_platform_and_gc_metrics(client):
    text = client.get("/metrics").text
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
                 "python_gc_objects_collected_total", "pose_persons_total"):  # fmt: skip
        assert re.search(rf"^{name}", text, re.M), name
    # a labelled series has samples only once a request was counted (test order is random): its declaration
    assert "# TYPE pose_requests_total counter" in text


def test_otel_spans_per_request_and_stage():
    pytest.importorskip("opentelemetry.instrumentation.fastapi", reason="the otel extra is not installed")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(create_app(SETTINGS.model_copy(update={"otel_tracing": True}), fake_pipeline())) as c:
        r = c.post("/v1/pose", content=_jpeg(), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200
        c.get("/healthz")  # excluded: no span
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert [s.name for s in server] == ["POST /v1/pose"]
    stages = sorted((s for s in spans if s.name.startswith("pose.")), key=lambda s: s.start_time)
    assert [s.name for s in stages] == ["pose.decode", "pose.detect", "pose.crop", "pose.pose"]
    timings = r.json()["timings_ms"]
    for s in stages:
        assert s.parent is not None and s.context.trace_id == server[0].context.trace_id
        assert s.parent.span_id == server[0].context.span_id
        assert abs((s.end_time - s.start_time) / 1e6 - timings[s.name[5:]]) < 0.02  # the answer's rounding
    assert all(a.end_time == b.start_time for a, b in zip(stages, stages[1:]))
