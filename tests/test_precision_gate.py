"""Reduced precision on CPU judged by AP on trained models (models/tolerance.py): the served pipeline with YOLOv8n and
MoveNet Thunder on coco-mini at bf16 and at int8 (``pose-export quantize``) against fp32, and both served over HTTP
with their precision stated in ``/v1/models``. Skips with the reason on a CPU without BF16 / VNNI."""

from __future__ import annotations

import json
import time

import pytest

from models.card import ModelCard
from models.tolerance import BF16_AP_GATE, INT8_AP_GATE
from service.settings import Settings

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")
pytestmark = pytest.mark.slow


def _capabilities() -> list[str]:
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _require(precision: str) -> None:
    from service.errors import ModelLoadError
    from service.runtime_ov import check_precision, cpu_flags

    try:
        check_precision(precision, "CPU", _capabilities(), cpu_flags())
    except ModelLoadError as exc:
        pytest.skip(f"{precision} not native on this CPU: {exc}")


@pytest.fixture(scope="module")
def ov_settings(tmp_path_factory, movenet_card, yolo_onnx):
    return Settings(
        runtime="openvino",
        pose_model=movenet_card,
        detector_model=yolo_onnx,
        cache_dir=tmp_path_factory.mktemp("ov-gate-cache"),
    )


@pytest.fixture(scope="module")
def quantized(ov_settings, coco_mini):
    """``pose-export quantize`` on coco-mini: calibration on the 80 images without annotations, AP on the 79 with."""
    _require("int8")
    from export.cli import main

    ann = coco_mini / "annotations" / "person_keypoints_val2017.json"
    images = coco_mini / "val2017"
    argv = ["quantize", "--pose", str(ov_settings.pose_model), "--detector", str(ov_settings.detector_model)]
    argv += ["--cache-dir", str(ov_settings.cache_dir), "--calib-images", str(images)]
    argv += ["--eval-ann", str(ann), "--eval-images", str(images)]
    assert main(argv) == 0
    from service.runtime_ov import int8_model_path

    card_path = int8_model_path(ModelCard.load(ov_settings.pose_model).model_path(), ov_settings.cache)
    return ModelCard.load(card_path.with_suffix(".json"))


def test_int8_ap_gate_and_the_card_records_calibration_and_ap(quantized, coco_mini):
    assert quantized.precision == "int8"
    q = quantized.extra["quantization"]
    cal = q["calibration"]
    assert cal["detector_images"] == 80 and cal["pose_crops"] > 100
    ann = json.loads((coco_mini / "annotations" / "person_keypoints_val2017.json").read_text())
    assert not set(cal["image_files"]) & {im["file_name"] for im in ann["images"]}  # disjoint from the evaluation
    ap = q["ap"]
    print(f"int8 gate: AP fp32 {ap['fp32']:.4f}, int8 {ap['int8']:.4f}, delta {ap['delta']:+.4f}")
    assert ap["fp32"] > 0.35  # the models really ran (fp32 AP of this pipeline on coco-mini: 0.42)
    assert abs(ap["delta"]) <= INT8_AP_GATE, f"AP(int8) - AP(fp32) = {ap['delta']:+.4f}"


def test_bf16_ap_gate_from_pose_eval(ov_settings, coco_mini, tmp_path, capsys):
    _require("bf16")
    from evaluation.job import main

    ann = coco_mini / "annotations" / "person_keypoints_val2017.json"
    argv = ["--ann", str(ann), "--images", str(coco_mini / "val2017"), "--boxes", "detector"]
    argv += ["--pose", str(ov_settings.pose_model), "--detector", str(ov_settings.detector_model)]
    argv += ["--runtime", "openvino", "--precision", "fp32", "--compare-precision", "bf16"]
    argv += ["--cache-dir", str(ov_settings.cache_dir), "--out-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    comparison = metrics["precision_comparison"]
    delta = comparison["bf16"]["AP_delta"]
    assert f"AP(bf16) - AP(fp32) = {delta:+.4f}" in out
    assert comparison["fp32"]["AP"] == metrics["stats"]["AP"] > 0.35
    print(f"bf16 gate: AP fp32 {comparison['fp32']['AP']:.4f}, bf16 {comparison['bf16']['AP']:.4f}, delta {delta:+.4f}")
    assert abs(delta) <= BF16_AP_GATE, f"AP(bf16) - AP(fp32) = {delta:+.4f}"


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_serves_and_says_so(precision, ov_settings, coco_tiny, request):
    _require(precision)
    if precision == "int8":
        request.getfixturevalue("quantized")
    from fastapi.testclient import TestClient

    from service.app import create_app

    app = create_app(ov_settings.model_copy(update={"precision": precision, "warmup": False}))
    with TestClient(app) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        data = (coco_tiny / "000000196141.jpg").read_bytes()
        r = client.post("/pose", content=data, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        assert len(r.json()["persons"]) >= 2
        models = client.get("/v1/models").json()
    for model in ("detector", "pose"):
        assert models[model]["precision"] == precision
        assert models[model]["runtime"]["backend"] == "openvino"
        assert models[model]["runtime"]["inference_precision"] == ("bf16" if precision == "bf16" else "f32")
        assert models[model]["runtime"]["quantized_int8"] == (precision == "int8")
    assert models["pose"]["card"]["precision"] == ("int8" if precision == "int8" else "fp32")
    if precision == "int8":
        assert models["pose"]["card"]["extra"]["quantization"]["ap"]["delta"] is not None
