"""The detector card (models/detector_card.py): JSON round trip, validation, the contract told from output names and
shapes, and finding the card of a model path."""

from __future__ import annotations

import json

import pytest

from models.detector_card import (
    DetectorCard,
    DetectorCardError,
    default_card,
    detect_contract,
    find_detector_card,
)


def test_card_round_trips_through_json(tmp_path):
    card = default_card("mmdeploy", 320, name="rtmdet_nano_person", model_file="m.onnx", licence="Apache-2.0")
    path = card.save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data["card"] == "detector" and data["contract"] == "mmdeploy" and data["licence"] == "Apache-2.0"
    assert data["letterbox"] == {
        "placement": "top_left",
        "pad_value": 114,
        "resize": "keep_ratio",
        "rounding": "half_up",
    }
    assert data["input"]["color"] == "BGR" and data["input"]["std"] == [57.375, 57.12, 58.395]
    loaded = DetectorCard.load(path)
    assert loaded == card and loaded.model_path() == tmp_path / "m.onnx"


def test_contract_defaults_are_each_exporters():
    u, y, m = (default_card(c, 640) for c in ("ultralytics", "yolox", "mmdeploy"))
    assert (u.input.color, u.input.std, u.letterbox.placement, u.letterbox.rounding) == (
        "RGB",
        [255.0] * 3,
        "center",
        "round",
    )
    assert (y.input.color, y.input.mean, y.letterbox.placement, y.letterbox.rounding) == (
        "BGR",
        None,
        "top_left",
        "floor",
    )
    assert (y.yolox_decode, y.strides, y.yolox_anchor_count()) == ("grid", [8, 16, 32], 8400)
    assert m.yolox_decode is None and m.strides is None


@pytest.mark.parametrize(
    ("names", "shapes", "want"),
    [
        (["output0"], [[1, 84, 8400]], "ultralytics"),
        (["output0"], [[None, 300, 6]], "ultralytics"),
        (["output"], [[1, 8400, 85]], "yolox"),
        (["dets", "labels"], [[1, None, 5], [1, None]], "mmdeploy"),
        (["labels", "dets"], [[None, 100], [None, 100, 5]], "mmdeploy"),
    ],
)
def test_contract_is_told_from_output_names_and_shapes(names, shapes, want):
    assert detect_contract(names, shapes) == want


@pytest.mark.parametrize(
    ("names", "shapes"),
    [
        (["scores"], [[1, 10, 4]]),  # unknown name
        (["output"], [[1, 8400, 5]]),  # YOLOX name but no class score
        (["dets", "labels"], [[1, 100, 4], [1, 100]]),  # dets without a score
        (["boxes", "scores"], [[1, 100, 4], [1, 100, 80]]),  # another exporter's split outputs
    ],
)
def test_an_unknown_graph_is_an_error_naming_what_was_seen(names, shapes):
    with pytest.raises(DetectorCardError, match="cannot tell") as err:
        detect_contract(names, shapes)
    assert f"{names[0]} {shapes[0]}" in str(err.value) and "detector card" in str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("contract", "yolov5", "contract"),
        ("letterbox", {"placement": "bottom_right"}, "placement"),
        ("letterbox", {"pad_value": 300}, "pad_value"),
        ("input", {"name": None, "width": 640, "height": 640, "std": [1, 0, 1]}, "std"),
        ("input", {"name": None, "width": 0, "height": 640}, "size"),
        ("strides", [8, 16], "yolox"),  # strides on an ultralytics card
        ("person_class", -1, "person_class"),
        ("shape", [1], "shape"),  # unknown field
    ],
)
def test_invalid_fields_are_named(field, value, match):
    data = default_card("ultralytics", 640).to_dict()
    data[field] = value
    with pytest.raises(DetectorCardError, match=match):
        DetectorCard.from_dict(data)


def test_a_pose_card_is_not_a_detector_card(tmp_path):
    (tmp_path / "yolo.onnx").write_bytes(b"")
    (tmp_path / "yolo.json").write_text(json.dumps({"name": "pose", "model_file": "yolo.onnx", "input": {}}))
    with pytest.raises(DetectorCardError, match="not a detector card"):
        find_detector_card(tmp_path / "yolo.onnx")


def test_find_detector_card(tmp_path):
    model = tmp_path / "det.onnx"
    assert find_detector_card(model) == (model, None)  # no card: told from the graph later
    card = default_card("yolox", 416, model_file="det.onnx")
    card.save(tmp_path / "det.json")
    assert find_detector_card(model) == (model, card)
    assert find_detector_card(tmp_path / "det.json") == (model, card)
    with pytest.raises(DetectorCardError, match="not found"):
        find_detector_card(tmp_path / "missing.json")


def test_the_readmes_detector_cards_are_valid():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Detectors: Ultralytics, YOLOX, RTMDet") :]
    block = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    rtmdet = DetectorCard.from_dict(json.loads(block))
    assert rtmdet.contract == "mmdeploy" and rtmdet.input_size == (640, 640)
    inline = re.search(r"and a YOLOX-s from its official export \(COCO, raw head\): `(\{.*?\})`", section, re.S).group(
        1
    )
    yolox = DetectorCard.from_dict(json.loads(inline))
    assert yolox.contract == "yolox" and yolox.yolox_anchor_count() == 8400
