"""Detector export through Ultralytics' own exporter (``yolov8n.yaml``: random weights, no download),
loaded by the service's PersonDetector. Skips where Ultralytics cannot be imported."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from export.detector import DetectorExportError, export_detector, import_ultralytics  # noqa: E402

pytestmark = pytest.mark.slow  # Ultralytics exports


@pytest.fixture(scope="module")
def ultralytics_available():
    try:
        import_ultralytics()
    except DetectorExportError as exc:
        pytest.skip(f"ultralytics is not importable here: {exc}")


@pytest.fixture(scope="module")
def exported_yolo(ultralytics_available, tmp_path_factory, coco_tiny):
    import cv2

    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(coco_tiny.glob("*.jpg"))[:2]]
    out = tmp_path_factory.mktemp("det") / "yolov8n.onnx"
    return export_detector("yolov8n.yaml", out, check_images=images), images


def test_yaml_export_has_the_standard_contract_with_dynamic_batch(exported_yolo):
    r, _ = exported_yolo
    assert r.max_abs_diff <= 1e-3 and r.num_classes == 80
    g = onnx.load(str(r.onnx_path)).graph
    assert [i.name for i in g.input] == ["images"]
    dims = g.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 640, 640]
    out_dims = g.output[0].type.tensor_type.shape.dim
    assert out_dims[0].dim_param and [d.dim_value for d in out_dims[1:]] == [84, 8400]


def test_exported_detector_passes_the_tensorrt_lint(exported_yolo):
    """Ultralytics' graph (Resize, Split, Range, Gather, shape arithmetic in INT64) is what TensorRT 10 parses."""
    from export.lint import lint_onnx

    r, _ = exported_yolo
    report = lint_onnx(r.onnx_path)
    assert report.ok and not report.warnings, report.describe()
    assert report.op_counts["Conv"] > 50 and "Resize" in report.op_counts and "UINT8" not in report.tensor_types


def test_exported_detector_loads_in_the_service_person_detector(exported_yolo):
    from inference.person_detector import PersonDetector
    from inference.runtime import OrtRuntime

    r, images = exported_yolo
    runtime = OrtRuntime(r.onnx_path, ["CPUExecutionProvider"])
    assert runtime.input_shapes[0] == [None, 3, 640, 640]
    det = PersonDetector(runtime, score_thr=0.0)
    assert det.input_size == 640 and det.fixed_batch is None and det.card.contract == "ultralytics"
    from models.detector_card import find_detector_card  # the card written beside the ONNX

    path, card = find_detector_card(r.onnx_path)
    assert r.card_path == path.with_suffix(".json") and card.contract == "ultralytics" and "AGPL-3.0" in card.licence
    assert card.input.name == "images" and card.input_size == (640, 640) and card.extra["num_classes"] == 80
    boxes, scores = det.detect(images[0])
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(scores)
    h, w = images[0].shape[:2]
    assert (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all() and (boxes >= 0).all()
    # dynamic batch: two letterboxed images in one call give what each gives alone
    x = np.concatenate([det.preprocess(im)[0] for im in images])
    both = runtime.run({"images": x})[0]
    one = runtime.run({"images": x[1:2]})[0]
    assert both.shape == (2, 84, 8400)
    np.testing.assert_allclose(both[1], one[0], atol=1e-3)


def test_missing_weights_file_is_a_clear_error(ultralytics_available, tmp_path):
    with pytest.raises(DetectorExportError, match="not found"):
        export_detector(tmp_path / "nope.pt", tmp_path / "x.onnx")


def test_importing_ultralytics_leaves_pillow_alone(ultralytics_available):
    """Ultralytics patches PIL.Image.open on import (pip-installing pi-heif on unknown bytes); we put it back."""
    from PIL import Image

    from core.errors import ImageDecodeError
    from inference.imageio import decode_image

    before = Image.open
    import_ultralytics()
    assert Image.open is before
    with pytest.raises(ImageDecodeError, match="cannot identify"):
        decode_image(b"definitely not an image")
