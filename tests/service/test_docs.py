"""The docs and the OpenAPI schema (service/docs.py, the routes' declarations): Swagger UI and ReDoc from local files
only, the API-key security schemes (Swagger's "Authorize"), every answer typed with an example, ``root_path``, and the
versioned ``/v1`` paths with their unversioned aliases (same answers, same metrics, same body limits)."""

from __future__ import annotations

import io
import json
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.errors import public_facts
from core.settings import Settings
from service import docs
from service.app import create_app
from service.middleware import route_path
from tests.fakes import ThreadedServer, fake_pipeline

SETTINGS = Settings(max_upload_bytes=200_000, video_max_bytes=2_000_000)
BOXES = {"boxes": "[[10, 20, 200, 300]]"}


def _jpeg(w: int = 320, h: int = 240) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 80, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def _client(settings: Settings = SETTINGS, **kw) -> TestClient:
    return TestClient(create_app(settings, fake_pipeline(**kw)))


def _ready(c: TestClient) -> TestClient:
    for _ in range(500):
        if c.get("/readyz").status_code == 200:
            return c
        time.sleep(0.01)
    raise TimeoutError("the app did not load its models")


class _Refs(HTMLParser):
    """The URLs a page loads: ``<script src>`` and ``<link href>``."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href"):
            self.urls.append(a["href"])


def _refs(html: str) -> list[str]:
    p = _Refs()
    p.feed(html)
    return p.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_files(page):
    with _client() as c:
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "http://" not in r.text and "https://" not in r.text, "a page must not reach another host"
        urls = _refs(r.text)
        assert any(u.endswith(".js") for u in urls) and len(urls) >= 2, urls
        for url in urls:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc and url.startswith(docs.STATIC_URL + "/"), url
            asset = c.get(url)
            assert asset.status_code == 200, url
            kind = asset.headers["content-type"]
            expected = ("javascript",) if url.endswith(".js") else ("text/css", "image/")
            assert any(k in kind for k in expected), (url, kind)
        assert "/openapi.json" in r.text and c.get("/openapi.json").status_code == 200


def test_docs_enabled_false_turns_pages_files_and_schema_off():
    with _client(Settings(docs_enabled=False)) as c:
        for url in ("/docs", "/redoc", "/openapi.json", docs.STATIC_URL + "/swagger-ui.css"):
            assert c.get(url).status_code == 404, url


def test_without_the_files_the_pages_are_off_and_the_schema_stays(monkeypatch, caplog):
    monkeypatch.setattr(docs, "assets_dir", lambda: None)
    with _client() as c:
        assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
        assert c.get("/openapi.json").status_code == 200
    assert "fastapi-offline" in caplog.text


def test_root_path_prefixes_the_docs_schema_and_files():
    """pose-serve's uvicorn (``root_path``) behind a proxy that strips the prefix: the pages name their files and the
    schema under it, the schema's server is the prefix, and the image route is still counted."""
    settings = Settings(root_path="/pose-api", max_upload_bytes=200_000)
    app = create_app(settings, fake_pipeline())
    with ThreadedServer(app, settings) as srv:
        html = httpx.get(srv.url + "/docs").text
        assert "url: '/pose-api/openapi.json'" in html
        urls = _refs(html)
        assert urls and all(u.startswith("/pose-api" + docs.STATIC_URL + "/") for u in urls), urls
        for url in urls:  # what the proxy forwards: the path without the prefix
            assert httpx.get(srv.url + url.removeprefix("/pose-api")).status_code == 200, url
        assert httpx.get(srv.url + "/openapi.json").json()["servers"] == [{"url": "/pose-api"}]
        registry = app.state.service.registry
        before = registry.get_sample_value("pose_requests_total", {"status": "200"}) or 0
        r = httpx.post(srv.url + "/v1/pose", params=BOXES, content=_jpeg(), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        assert registry.get_sample_value("pose_requests_total", {"status": "200"}) == before + 1


def test_route_path_drops_the_root_path():
    assert route_path({"path": "/pose-api/v1/pose", "root_path": "/pose-api"}) == "/v1/pose"
    assert route_path({"path": "/pose-api", "root_path": "/pose-api"}) == "/"
    assert route_path({"path": "/pose-apix/pose", "root_path": "/pose-api"}) == "/pose-apix/pose"
    assert route_path({"path": "/v1/pose", "root_path": ""}) == "/v1/pose"


def test_openapi_declares_the_api_key_schemes_on_protected_operations():
    with _client() as c:
        schema = c.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["Bearer"] == {**schemes["Bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["APIKeyHeader"] == {**schemes["APIKeyHeader"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    protected = {("post", "/v1/pose"), ("post", "/v1/pose/video"), ("get", "/v1/models")}
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if (method, path) in protected:
                assert op["security"] == [{"Bearer": []}, {"APIKeyHeader": []}], (method, path)
            else:
                assert "security" not in op, (method, path)
    assert {p for _, p in protected} <= set(schema["paths"])


def test_authorize_style_keys_pass_and_wrong_ones_fail_as_before():
    with _client(Settings(api_keys=["first-key", "second-key"])) as c:
        _ready(c)
        good = (
            {"X-API-Key": "first-key"},
            {"Authorization": "Bearer second-key"},
            {"Authorization": "bearer  first-key "},
            {"Authorization": "Basic xyz", "X-API-Key": "second-key"},  # not a bearer: the header key counts
            {"Authorization": "Bearer first-key", "X-API-Key": "wrong"},  # the bearer token wins
        )
        bad = ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer wrong",
               "X-API-Key": "first-key"}, {"X-API-Key": "first-key2"})  # fmt: skip
        for headers in good:
            assert c.get("/v1/models", headers=headers).status_code == 200, headers
            r = c.post("/v1/pose", params=BOXES, content=_jpeg(), headers={**headers, "Content-Type": "image/jpeg"})
            assert r.status_code == 200, (headers, r.text)
        for headers in bad:
            for r in (c.get("/v1/models", headers=headers), c.post("/v1/pose", content=_jpeg(), headers=headers)):
                assert r.status_code == 401 and r.json()["error"] == "unauthorized", (headers, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/healthz").status_code == 200  # health needs no key


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else node


def test_every_answer_is_typed_with_an_example():
    with _client() as c:
        schema = c.get("/openapi.json").json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                where = (method, path, status)
                assert answer.get("content"), where
                for media, body in answer["content"].items():
                    assert body.get("schema"), (*where, media)
                    resolved = _resolve(schema, body["schema"])
                    assert "example" in body or "examples" in body or resolved.get("examples"), (*where, media)
    pose = schema["paths"]["/v1/pose"]["post"]["responses"]["200"]["content"]
    assert pose["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
    assert pose["application/json"]["schema"]["$ref"].endswith("/PoseResponse")
    for path, model in (
        ("/healthz", "HealthResponse"),
        ("/readyz", "HealthResponse"),
        ("/v1/models", "ModelsResponse"),
    ):
        assert schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/" + model)
    video = schema["paths"]["/v1/pose/video"]["post"]["responses"]["200"]["content"]
    assert set(video) == {"application/x-ndjson", "video/mp4"}
    assert set(schema["components"]["schemas"]["ModelsResponse"]["properties"]) == {
        "detector",
        "pose",
        "batching",
        "keypoints",
    }


@pytest.mark.parametrize("detector", [True, False])
def test_models_answer_is_the_pipeline_facts_unchanged(detector):
    with _client(detector=detector) as c:
        _ready(c)
        pipeline = c.app.state.service.pipeline
        r = c.get("/v1/models")
        assert r.status_code == 200
        expected = public_facts({**pipeline.describe(), "keypoints": pipeline.pose.card.schema_dict()})
        assert r.json() == json.loads(json.dumps(expected))  # nothing added, nothing left out


def test_v1_paths_and_aliases_answer_the_same_and_are_counted():
    with _client() as c:
        _ready(c)
        registry = c.app.state.service.registry
        before = registry.get_sample_value("pose_requests_total", {"status": "200"}) or 0
        answers = []
        for path in ("/v1/pose", "/pose"):
            r = c.post(path, params=BOXES, content=_jpeg(), headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 200, r.text
            answers.append({k: v for k, v in r.json().items() if k != "timings_ms"})
            r = c.post(
                path, params={**BOXES, "render": "true"}, content=_jpeg(), headers={"Content-Type": "image/jpeg"}
            )
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
        assert answers[0] == answers[1]
        assert registry.get_sample_value("pose_requests_total", {"status": "200"}) == before + 4
        paths = set(c.get("/openapi.json").json()["paths"])
        assert {"/v1/pose", "/v1/pose/video"} <= paths and not {"/pose", "/pose/video"} & paths  # aliases hidden


def test_v1_video_path_has_the_video_body_limit_as_its_alias():
    junk = b"\x00" * 300_000  # over max_upload_bytes (an image's limit), under video_max_bytes
    with _client() as c:
        _ready(c)
        r = c.post("/v1/pose", content=junk, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 413
        codes = []
        for path in ("/v1/pose/video", "/pose/video"):
            r = c.post(path, content=junk, headers={"Content-Type": "video/mp4"})
            assert r.status_code != 413, (path, r.text)
            codes.append((r.status_code, r.json()["error"]))
        assert codes[0] == codes[1]


def test_v1_stream_path_and_its_alias_serve_sessions():
    with _client() as c:
        _ready(c)
        for path in ("/v1/pose/stream", "/pose/stream"):
            with c.websocket_connect(path) as ws:
                ws.send_bytes(_jpeg())
                message = ws.receive_json()
                assert message["type"] == "frame", message
