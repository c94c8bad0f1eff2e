"""The whole service over HTTP: a real uvicorn process on 127.0.0.1, real YOLOv8n + MoveNet models."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from models.keypoints import COCO17_NAMES
from tests.conftest import MAX_BYTES
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def client(pose_server):
    with httpx.Client(base_url=pose_server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg(coco_tiny) -> bytes:
    return (coco_tiny / "000000196141.jpg").read_bytes()


def _assert_alive(client, jpeg):
    assert client.get("/healthz").status_code == 200
    r = client.post("/pose", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["persons"]


def test_multipart_upload_returns_people_on_the_image(client, jpeg):
    r = client.post("/pose", files={"file": ("x.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (640, 429)
    assert body["keypoint_names"] == list(COCO17_NAMES)
    assert body["models"] == {"detector": "yolov8n", "pose": "movenet_thunder"}
    assert set(body["timings_ms"]) >= {"decode", "detect", "crop", "pose", "total"}
    persons = body["persons"]
    assert len(persons) >= 4
    scores = [p["score"] for p in persons]
    assert scores == sorted(scores, reverse=True)
    for p in persons:
        k = np.array(p["keypoints"])
        assert k.shape == (17, 3)
        x1, y1, x2, y2 = p["bbox"]
        confident = k[k[:, 2] > 0.3]
        # confident keypoints lie inside the (padded) person box
        pad_w, pad_h = 0.25 * (x2 - x1), 0.25 * (y2 - y1)
        assert np.all((confident[:, 0] > x1 - pad_w) & (confident[:, 0] < x2 + pad_w))
        assert np.all((confident[:, 1] > y1 - pad_h) & (confident[:, 1] < y2 + pad_h))


def test_raw_body_with_caller_boxes_skips_the_detector(client, jpeg):
    boxes = [[330.0, 80.0, 480.0, 420.0], [20.0, 50.0, 200.0, 400.0]]
    r = client.post("/pose", params={"boxes": json.dumps(boxes)}, content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["models"]["detector"] is None and "detect" not in body["timings_ms"]
    assert sorted(p["bbox"] for p in body["persons"]) == sorted(boxes)
    assert all(p["bbox_score"] == 1.0 for p in body["persons"])


def test_multipart_form_boxes(client, jpeg):
    r = client.post("/pose", files={"file": ("x.jpg", jpeg, "image/jpeg")}, data={"boxes": "[330, 80, 480, 420]"})
    assert r.status_code == 200 and len(r.json()["persons"]) == 1


def test_png_and_render(client, coco_tiny):
    img = Image.open(coco_tiny / "000000000785.jpg")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    r = client.post("/pose", content=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and len(r.json()["persons"]) == 1
    r = client.post("/pose", params={"render": "true"}, content=buf.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == img.size


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (6000, 6000)).save(buf, format="PNG")
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    "status, kwargs, fragment",
    [
        (400, {"content": b"definitely not an image", "headers": {"Content-Type": "image/jpeg"}}, "cannot identify"),
        (400, {"content": b"", "headers": {"Content-Type": "image/jpeg"}}, "empty"),
        (413, {"content": b"\xff" * (MAX_BYTES + 100_000), "headers": {"Content-Type": "image/jpeg"}}, "limit"),
        (413, {"content": _bomb(), "headers": {"Content-Type": "image/png"}}, "pixels"),
        (415, {"content": b"hello", "headers": {"Content-Type": "text/plain"}}, "text/plain"),
        (415, {"content": _gif(), "headers": {"Content-Type": "image/png"}}, "GIF"),
        (
            422,
            {"params": {"boxes": "[[1, 2, 3]]"}, "content": b"x", "headers": {"Content-Type": "image/jpeg"}},
            "boxes",
        ),
        (422, {"params": {"boxes": "not json"}, "content": b"x", "headers": {"Content-Type": "image/jpeg"}}, "JSON"),
        (
            422,
            {"params": {"boxes": "[[50, 50, 10, 10]]"}, "content": b"x", "headers": {"Content-Type": "image/jpeg"}},
            "empty",
        ),
        (422, {"params": {"render": "maybe"}, "content": b"x", "headers": {"Content-Type": "image/jpeg"}}, "render"),
        (422, {"files": {"image": ("x.jpg", b"abc", "image/jpeg")}}, "'file'"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_answering(client, jpeg, status, kwargs, fragment):
    r = client.post("/pose", **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and fragment in body["message"]
    _assert_alive(client, jpeg)


def test_too_many_caller_boxes(client, jpeg):
    boxes = [[0, 0, 10 + i, 10 + i] for i in range(201)]
    r = client.post("/pose", params={"boxes": json.dumps(boxes)}, content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 422 and "at most 200" in r.json()["message"]


def test_models_endpoint_reports_cards_schema_and_providers(client):
    body = client.get("/v1/models").json()
    assert body["keypoints"]["keypoint_names"] == list(COCO17_NAMES)
    assert len(body["keypoints"]["skeleton"]) == 19
    assert body["pose"]["card"]["name"] == "movenet_thunder"
    assert "CPUExecutionProvider" in body["pose"]["runtime"]["active_providers"]
    assert "CPUExecutionProvider" in body["detector"]["runtime"]["active_providers"]


def test_concurrent_requests_and_metrics(client, pose_server, jpeg):
    def call(_):
        with httpx.Client(base_url=pose_server.url, timeout=120) as c:
            return c.post("/pose", content=jpeg, headers={"Content-Type": "image/jpeg"})

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(6)))
    assert all(r.status_code == 200 for r in results)
    first = results[0].json()["persons"]
    for r in results[1:]:  # same image, same answer, whichever batch it rode in
        np.testing.assert_allclose(
            [p["keypoints"] for p in r.json()["persons"]], [p["keypoints"] for p in first], atol=0.02
        )
    metrics = client.get("/metrics").text
    assert 'pose_requests_total{status="200"}' in metrics


def test_failed_model_load_is_503_not_a_crash(yolo_onnx, movenet_card, tmp_path):
    from models.card import ModelCard

    card = ModelCard.load(movenet_card)
    card.model_file = str(tmp_path / "missing.onnx")
    bad = card.save(tmp_path / "bad_card.json")
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(bad)]) as srv:
        srv.wait_listening()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(100):
                r = c.get("/readyz")
                if r.json().get("error") == "model_not_loaded":
                    break
                time.sleep(0.1)
            assert r.status_code == 503 and "missing.onnx" in r.json()["message"]
            assert c.get("/healthz").status_code == 200
            r = c.post("/pose", content=b"x", headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 503 and r.json()["error"] == "not_ready"
