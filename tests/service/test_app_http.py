"""The whole service over HTTP: a real ``pose-serve`` process on 127.0.0.1 with real YOLOv8n + MoveNet.

The error paths and the request flow are tested in-process (``test_routes.py``); these tests check what
only the real process shows: settings from the environment and the command line, real models behind the
batcher under concurrency, a 413 from the real upload limit, and a failed model load.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from models.keypoints import COCO17_NAMES
from service.launcher import ServerProcess


@pytest.fixture(scope="module")
def client(pose_server):
    with httpx.Client(base_url=pose_server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg(coco_tiny) -> bytes:
    return (coco_tiny / "000000196141.jpg").read_bytes()


def test_multipart_upload_returns_people_on_the_image(client, jpeg):
    r = client.post("/pose", files={"file": ("x.jpg", jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (640, 429)
    assert body["keypoint_names"] == list(COCO17_NAMES)
    assert body["models"] == {"detector": "yolov8n", "pose": "movenet_thunder"}
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


def test_limits_come_from_the_environment(client):
    r = client.post("/pose", content=b"\xff" * 3_100_000, headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413 and "3000000" in r.json()["message"]


def test_models_endpoint_reports_the_real_providers(client):
    body = client.get("/v1/models").json()
    assert body["pose"]["card"]["name"] == "movenet_thunder"
    assert "CPUExecutionProvider" in body["pose"]["runtime"]["active_providers"]
    assert "CPUExecutionProvider" in body["detector"]["runtime"]["active_providers"]


def test_concurrent_requests_get_the_same_answer_and_are_counted(client, pose_server, jpeg):
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
    line = next(x for x in metrics.splitlines() if x.startswith('pose_requests_total{status="200"}'))
    assert float(line.split()[-1]) >= 6


def test_failed_model_load_is_503_not_a_crash(yolo_onnx, movenet_card, tmp_path):
    """With ``--no-exit-on-load-failure`` (operators who prefer /readyz 503); by default the process exits:
    tests/service/test_faults.py."""
    from models.card import ModelCard

    card = ModelCard.load(movenet_card)
    card.model_file = str(tmp_path / "missing.onnx")
    bad = card.save(tmp_path / "bad_card.json")
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(bad), "--no-exit-on-load-failure"]) as srv:
        with pytest.raises(RuntimeError, match="missing.onnx"):
            srv.wait_ready()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/readyz").status_code == 503
            assert c.get("/healthz").status_code == 200
            r = c.post("/pose", content=b"x", headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 503 and r.json()["error"] == "not_ready"
