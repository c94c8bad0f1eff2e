"""The HTTP API in-process (FastAPI TestClient) over the real request flow with fake model runtimes:
parsing, the pipeline, the batcher, encoding and the error answers, in milliseconds per case. The full corpus
of malformed input is tests/service/test_hostile_inputs.py; overload, deadlines and security tests/service/test_overload.py."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.settings import Settings
from models.keypoints import COCO17_NAMES, MPII16
from service.app import create_app
from service.schemas import PoseResponse
from tests.fakes import DETECTED_BOX, FakePoseRuntime, fake_pipeline

MAX_BYTES = 3_000_000
MAX_PIXELS = 20_000_000
SETTINGS = Settings(max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS, max_boxes=200)


def _jpeg(w: int = 640, h: int = 480, color=(200, 80, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="JPEG")
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _ready(c: TestClient) -> TestClient:
    """Wait for the background model load (fakes: milliseconds); 503 ``not_ready`` until then."""
    for _ in range(200):
        r = c.get("/readyz")
        if r.status_code == 200 or r.json()["error"] == "model_not_loaded":
            return c
        assert r.json() == {"error": "not_ready", "message": "models are loading"}
        time.sleep(0.01)
    raise TimeoutError("the app did not load its models")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(SETTINGS, fake_pipeline(max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS))) as c:
        assert _ready(c).get("/readyz").status_code == 200
        yield c


def _assert_error(r, status: int, code: str, fragment: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and body["error"] == code
    assert fragment in body["message"], body["message"]


def test_multipart_upload_runs_the_detector_and_answers_in_image_pixels(client):
    r = client.post("/pose", files={"file": ("x.jpg", _jpeg(640, 480), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (640, 480)
    assert body["keypoint_names"] == list(COCO17_NAMES)
    assert body["models"] == {"detector": "fake_det", "pose": "fake_pose"}
    assert set(body["timings_ms"]) == {"decode", "detect", "crop", "pose", "total"}
    t = body["timings_ms"]
    assert t["total"] >= t["decode"] + t["detect"] + t["crop"] + t["pose"] - 0.05
    (person,) = body["persons"]  # the car is not a person
    # letterbox of 640x480: ratio 1, 80 px of padding on top
    x1, y1, x2, y2 = DETECTED_BOX
    assert person["bbox"] == [x1, y1 - 80, x2, y2 - 80] and person["bbox_score"] == 0.9
    k = np.array(person["keypoints"])
    assert k.shape == (17, 3) and (k[:, 2] == 1).all() and person["score"] == 0.9
    # keypoint k at y = k / 17 of the square crop around the box (MMPose padding 1.25)
    crop_side = 1.25 * max(x2 - x1, y2 - y1)
    top = (y1 - 80 + y2 - 80) / 2 - crop_side / 2
    np.testing.assert_allclose(k[:, 1], top + np.arange(17) / 17 * crop_side, atol=0.02)


def test_raw_body_with_caller_boxes_skips_the_detector(client):
    boxes = [[330.0, 80.0, 480.0, 420.0], [20.0, 50.0, 200.0, 400.0]]
    r = client.post(
        "/pose", params={"boxes": json.dumps(boxes)}, content=_jpeg(), headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["models"]["detector"] is None and "detect" not in body["timings_ms"]
    assert sorted(p["bbox"] for p in body["persons"]) == sorted(boxes)
    assert all(p["bbox_score"] == 1.0 for p in body["persons"])


@pytest.mark.parametrize("boxes", [None, "[]", "[[330, 80, 480, 420], [20, 50, 200, 400], [0, 0, 640, 480]]"])
def test_the_answer_is_exactly_the_documented_schema(client, boxes):
    """The route encodes ``image_answer``'s dict without validating it (``service.routes.pose_answer``): the JSON must
    be what ``PoseResponse`` documents, field for field (an extra, missing or coerced field would change the dump)."""
    params = {} if boxes is None else {"boxes": boxes}
    r = client.post("/v1/pose", params=params, content=_jpeg(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    assert PoseResponse.model_validate_json(r.content).model_dump(mode="json") == r.json()
    assert len(r.json()["persons"]) == (1 if boxes is None else len(json.loads(boxes)))


def test_multipart_form_boxes_and_a_single_box(client):
    r = client.post("/pose", files={"file": ("x.jpg", _jpeg(), "image/jpeg")}, data={"boxes": "[330, 80, 480, 420]"})
    assert r.status_code == 200 and [p["bbox"] for p in r.json()["persons"]] == [[330, 80, 480, 420]]
    r = client.post("/pose", params={"boxes": "[]"}, content=_jpeg(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["persons"] == []


def test_png_with_alpha_and_render(client):
    img = Image.new("RGBA", (320, 200), (10, 200, 10, 128))
    r = client.post("/pose", content=_png(img), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (320, 200)
    r = client.post("/pose", params={"render": "true"}, content=_png(img), headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (320, 200)


JPEG = {"Content-Type": "image/jpeg"}


def test_too_many_caller_boxes(client):
    boxes = [[0, 0, 10 + i, 10 + i] for i in range(201)]
    r = client.post("/pose", params={"boxes": json.dumps(boxes)}, content=_jpeg(), headers=JPEG)
    _assert_error(r, 422, "invalid_parameter", "201 boxes given, at most 200")


def test_models_endpoint_and_metrics(client):
    body = client.get("/v1/models").json()
    assert body["keypoints"]["keypoint_names"] == list(COCO17_NAMES) and len(body["keypoints"]["skeleton"]) == 19
    assert body["pose"]["card"]["name"] == "fake_pose" and body["pose"]["runtime"]["active_providers"] == [
        "FakeProvider"
    ]
    assert body["detector"]["name"] == "fake_det" and body["batching"]["max_batch_size"] == 32
    before = client.get("/metrics").text
    client.post("/pose", content=b"", headers=JPEG)
    assert client.post("/pose", content=_jpeg(), headers=JPEG).status_code == 200  # (not left to other tests' order)
    after = client.get("/metrics").text

    def count(text: str, status: str) -> float:
        line = next((x for x in text.splitlines() if x.startswith(f'pose_requests_total{{status="{status}"}}')), None)
        return float(line.split()[-1]) if line else 0.0

    assert count(after, "400") == count(before, "400") + 1
    assert count(after, "200") == count(before, "200") + 1

    def sample(text: str, name: str) -> float:
        return float(next(x for x in text.splitlines() if x.startswith(name + " ")).split()[-1])

    # the detected image went through the detector's batcher (the fake detector's batch is fixed at 1)
    assert sample(after, "pose_detector_batch_images_count") >= sample(before, "pose_detector_batch_images_count") + 1
    assert sample(after, "pose_queued_images") == 0
    assert body["detector"]["precision"] == body["pose"]["precision"] == "fp32"
    assert body["detector"]["batch_size"] == 1 and body["batching"]["detector_max_batch_size"] == 1


def test_an_unexpected_failure_is_a_json_500_and_the_server_survives():
    pipeline = fake_pipeline(fail=RuntimeError("kernel exploded"))
    with TestClient(create_app(Settings(warmup=False), pipeline), raise_server_exceptions=False) as c:
        _ready(c)
        r = c.post("/pose", params={"boxes": "[[0, 0, 50, 50]]"}, content=_jpeg(), headers=JPEG)
        _assert_error(r, 500, "internal_error", "RuntimeError")
        assert "kernel exploded" not in r.text  # internals stay in the log
        assert c.get("/healthz").status_code == 200


def test_models_that_fail_to_load_give_503_with_the_reason(tmp_path):
    settings = Settings(pose_model=tmp_path / "missing.json", detector_model=None)
    with TestClient(create_app(settings)) as c:
        _assert_error(_ready(c).get("/readyz"), 503, "model_not_loaded", "missing.json")
        assert c.get("/healthz").status_code == 200
        _assert_error(c.post("/pose", content=_jpeg(), headers=JPEG), 503, "not_ready", "failed to load")
        _assert_error(c.get("/v1/models"), 503, "not_ready", "failed to load")


def test_no_detector_means_boxes_are_required():
    with TestClient(create_app(SETTINGS, fake_pipeline(detector=False))) as c:
        _ready(c)
        _assert_error(c.post("/pose", content=_jpeg(), headers=JPEG), 422, "invalid_parameter", "no detector")
        r = c.post("/pose", params={"boxes": "[[0, 0, 50, 50]]"}, content=_jpeg(), headers=JPEG)
        assert r.status_code == 200 and len(r.json()["persons"]) == 1


def test_concurrent_requests_share_pose_batches():
    from concurrent.futures import ThreadPoolExecutor

    pipeline = fake_pipeline(delay=0.05)
    runtime: FakePoseRuntime = pipeline.pose.runtime
    with TestClient(create_app(Settings(warmup=False), pipeline)) as c:
        _ready(c)

        def call(i):
            return c.post(
                "/pose", params={"boxes": "[[0, 0, 50, 50], [10, 10, 90, 90]]"}, content=_jpeg(), headers=JPEG
            )

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(8)))
    assert all(r.status_code == 200 for r in results)
    assert sum(runtime.batch_sizes) == 16 and max(runtime.batch_sizes) > 2  # crops of several requests merged


def test_mpii_model_is_served_with_its_schema_and_skeleton():
    """A card with MPII's 16 keypoints (an RLE graph: x, y, score): named keypoints in the answer, MPII's schema on
    /v1/models, and the rendering draws MPII's limbs (COCO's skeleton indexes keypoint 16, which MPII lacks)."""
    pipeline = fake_pipeline(config="td-reg_res50_rle_mpii", k=16, scores=True)
    with TestClient(create_app(SETTINGS, pipeline)) as c:
        _ready(c)
        schema = c.get("/v1/models").json()["keypoints"]
        assert schema["name"] == "mpii16" and schema["keypoint_names"] == list(MPII16.names)
        assert schema["skeleton"] == [list(p) for p in MPII16.skeleton] and len(schema["flip_pairs"]) == 6
        r = c.post("/pose", content=_jpeg(), headers=JPEG)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["keypoint_names"] == list(MPII16.names)
        assert len(body["persons"]) == 1 and np.array(body["persons"][0]["keypoints"]).shape == (16, 3)
        assert np.allclose(np.array(body["persons"][0]["keypoints"])[:, 2], 0.8)  # the RLE score channel
        drawn = c.post("/pose", params={"render": "true"}, content=_jpeg(), headers=JPEG)
        assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"
        img = np.asarray(Image.open(io.BytesIO(drawn.content)))
        assert (np.abs(img.astype(int) - [200, 80, 40]).sum(-1) > 100).any()  # something was drawn
