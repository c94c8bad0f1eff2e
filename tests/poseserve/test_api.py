"""The in-process Python API (``poseserve.PoseEstimator``) on the real models (YOLOv8n + MoveNet Thunder): the
README's three lines run, every input type gives the server's answer, BGR / RGB are told apart, results convert to
COCO and draw, videos and caller-fed sessions track, and bad input raises a named error."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidParameterError, ModelLoadError
from poseserve import PoseEstimator, Poses
from poseserve.results import Person

README = Path(__file__).resolve().parents[2] / "README.md"
IMAGE = "000000196141.jpg"  # four people


@pytest.fixture(scope="module")
def estimator(yolo_onnx, movenet_card):
    with PoseEstimator.from_pretrained(movenet_card, yolo_onnx, providers=["CPUExecutionProvider"]) as est:
        yield est


@pytest.fixture(scope="module")
def image_path(coco_tiny) -> Path:
    return coco_tiny / IMAGE


def test_the_readme_example_runs(yolo_onnx, movenet_card, image_path, monkeypatch):
    """The README's Python example, with the test models in place of the defaults (no network here)."""
    block = re.search(r"<!-- python-api -->\s*```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README has no <!-- python-api --> example"
    code = block.group(1)
    lines = [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) <= 3, lines
    monkeypatch.setenv("POSE_DETECTOR_MODEL", str(yolo_onnx))
    monkeypatch.setenv("POSE_POSE_MODEL", str(movenet_card))
    monkeypatch.setenv("POSE_PROVIDERS", "CPUExecutionProvider")
    code = code.replace('"person.jpg"', repr(str(image_path)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    people = scope["people"]
    assert isinstance(people, Poses) and len(people) >= 4
    assert people.keypoints.shape == (len(people), 17, 3) and people.bboxes.shape == (len(people), 4)


def test_answers_equal_the_servers(estimator, image_path, pose_server):
    """Same image, same models: the HTTP answer is the in-process one rounded (0.01 px, 1e-5 score)."""
    data = image_path.read_bytes()
    answer = httpx.post(pose_server.url + "/v1/pose", files={"file": (IMAGE, data, "image/jpeg")}, timeout=60)
    assert answer.status_code == 200, answer.text
    served = Poses.from_answer(answer.json())
    local = estimator(image_path)
    assert len(local) == len(served) >= 4
    assert (local.width, local.height) == (served.width, served.height)
    assert local.keypoint_names == served.keypoint_names
    np.testing.assert_allclose(local.bboxes, served.bboxes, atol=0.006)
    np.testing.assert_allclose(local.keypoints[..., :2], served.keypoints[..., :2], atol=0.006)
    np.testing.assert_allclose(local.scores, served.scores, atol=6e-6)
    assert local.models == served.models


def test_every_input_type_gives_the_same_people(estimator, image_path):
    data = image_path.read_bytes()
    bgr = cv2.imread(str(image_path))  # what a user of OpenCV has
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    reference = estimator(str(image_path))
    for given in (image_path, data, bytearray(data), bgr, Image.open(io.BytesIO(data))):
        out = estimator(given)
        np.testing.assert_array_equal(out.keypoints, reference.keypoints)
    np.testing.assert_array_equal(estimator(rgb, rgb=True).keypoints, reference.keypoints)
    # the colour order is honoured: the same RGB pixels read as BGR are another image to the models
    swapped = estimator(rgb)
    assert swapped.keypoints.shape != reference.keypoints.shape or not np.array_equal(
        swapped.keypoints, reference.keypoints
    )


def test_caller_boxes_skip_the_detector(estimator, image_path):
    found = estimator(image_path)
    given = estimator(image_path, bboxes=found.bboxes[:2])
    assert given.models["detector"] is None and len(given) == 2
    np.testing.assert_array_equal(given.bbox_scores, [1.0, 1.0])
    # the same boxes give the same keypoints as when the detector found them
    order = [int(np.argmin(np.abs(found.bboxes - b).sum(1))) for b in given.bboxes]
    np.testing.assert_allclose(given.keypoints[..., :2], found.keypoints[order][..., :2], atol=1e-3)


def test_people_come_typed_and_sorted(estimator, image_path):
    people = estimator(image_path)
    assert all(isinstance(p, Person) and p.track_id is None for p in people)
    assert list(people.scores) == sorted(people.scores, reverse=True)
    assert people.track_ids is None
    first = people[0]
    assert first.keypoints.shape == (17, 3) and first.bbox.shape == (4,)
    x1, y1, x2, y2 = first.bbox
    assert 0 <= x1 < x2 <= people.width and 0 <= y1 < y2 <= people.height
    assert {"decode", "detect", "crop", "pose", "total"} <= set(people.timings_ms)


def test_to_coco_loads_in_pycocotools(estimator, image_path, coco_tiny):
    from pycocotools.coco import COCO

    people = estimator(image_path)
    gt_file = coco_tiny / "test_coco.json"
    gt = json.loads(gt_file.read_text())
    image_id = next(im["id"] for im in gt["images"] if im["file_name"] == IMAGE)
    results = people.to_coco(image_id)
    assert len(results) == len(people) >= 4 and all(len(r["keypoints"]) == 51 for r in results)
    coco = COCO(str(gt_file))
    loaded = coco.loadRes(results)  # raises on a malformed result
    anns = loaded.loadAnns(loaded.getAnnIds(imgIds=[image_id]))
    np.testing.assert_allclose(np.array(anns[0]["keypoints"]).reshape(17, 3), people.keypoints[0], atol=6e-4)
    x, y, w, h = results[0]["bbox"]
    np.testing.assert_allclose([x, y, x + w, y + h], people.bboxes[0], rtol=1e-6)


def test_plot_draws_in_the_callers_colour_order(estimator, image_path):
    bgr = cv2.imread(str(image_path))
    people = estimator(bgr)
    drawn = people.plot(bgr)
    assert drawn.shape == bgr.shape and drawn.dtype == np.uint8
    assert (drawn != bgr).any(axis=2).mean() > 0.002  # boxes and limbs drawn
    assert not np.shares_memory(drawn, bgr)
    np.testing.assert_array_equal(people.plot(bgr[..., ::-1].copy(), rgb=True), drawn[..., ::-1])
    with pytest.raises(ValueError, match="image that was estimated"):
        people.plot(bgr[:100])


def test_video_frames_come_tracked(estimator, bikes_mp4):
    frames = list(estimator.video(bikes_mp4, max_frames=50, det_interval=1))
    assert [f.frame for f in frames] == list(range(50))
    assert all(f.time_s is not None for f in frames) and frames[-1].time_s > frames[0].time_s
    with_people = [f for f in frames if len(f)]
    assert with_people, "bikes.mp4 shows people from frame 30"
    assert all(f.track_ids is not None for f in with_people)


def test_a_session_keeps_track_ids_across_caller_frames(estimator, coco_tiny):
    """A person panned 3 px per frame in frames the caller feeds keeps one track id."""
    image = cv2.imread(str(coco_tiny / "000000000785.jpg"))
    session = estimator.session(smooth=False)
    ids = []
    for t in range(12):
        frame = np.full_like(image, 114)
        frame[:, 3 * t :] = image[:, : image.shape[1] - 3 * t]
        people = session(frame, time_s=t / 25)
        assert len(people) >= 1
        ids.append(people[0].track_id)
    assert len(set(ids)) == 1 and ids[0] is not None
    with pytest.raises(InvalidParameterError, match="earlier"):
        session(image, time_s=0.0)


def test_bad_input_raises_named_errors(estimator, tmp_path, yolo_onnx):
    with pytest.raises(InvalidParameterError, match=r"uint8 \[H, W, 3\]"):
        estimator(np.zeros((64, 64), np.uint8))
    with pytest.raises(InvalidParameterError, match="uint8"):
        estimator(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InvalidParameterError, match="cannot read an image from list"):
        estimator([1, 2, 3])
    with pytest.raises(OSError):
        estimator(tmp_path / "missing.jpg")
    with pytest.raises(InvalidParameterError):
        estimator(np.zeros((64, 64, 3), np.uint8), bboxes=[[10, 10, 5, 5]])
    with pytest.raises(InvalidParameterError, match="unknown stream option"):
        estimator.session(tracking=True)
    with pytest.raises(TypeError, match="flip_tset"):
        PoseEstimator.from_pretrained(tmp_path / "x.json", yolo_onnx, flip_tset=True)
    with pytest.raises(ModelLoadError, match="not found"):
        PoseEstimator.from_pretrained(tmp_path / "x.json", yolo_onnx)


def test_missing_defaults_name_the_command(tmp_path):
    with pytest.raises(ModelLoadError, match="pose-export defaults"):
        PoseEstimator.from_pretrained(cache_dir=tmp_path, prepare_defaults=False)
