"""Person detector on the real YOLOv8n ONNX and on the NMS-ed output contract."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference.imageio import decode_image
from inference.person_detector import Letterbox, PersonDetector, letterbox, letterbox_batch, unletterbox_bboxes
from inference.runtime import OrtRuntime
from inference.runtime_base import Runtime


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[0], b[:, 0])
    y1 = np.maximum(a[1], b[:, 1])
    x2 = np.minimum(a[2], b[:, 2])
    y2 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_finds_every_annotated_person_in_coco_tiny(yolo_onnx, coco_tiny):
    det = PersonDetector(OrtRuntime(yolo_onnx), score_thr=0.25, iou_thr=0.45)
    gt = json.loads((coco_tiny / "test_coco.json").read_text())
    checked = 0
    for im in gt["images"]:
        image = decode_image((coco_tiny / im["file_name"]).read_bytes())
        boxes, scores = det.detect(image)
        assert boxes.dtype == np.float32 and boxes.shape[1] == 4 and np.all(np.diff(scores) <= 0)
        assert np.all(boxes[:, [0, 2]] <= im["width"]) and np.all(boxes[:, [1, 3]] <= im["height"])
        for ann in gt["annotations"]:
            if ann["image_id"] != im["id"] or ann["num_keypoints"] == 0 or ann["iscrowd"]:
                continue
            x, y, w, h = ann["bbox"]
            best = _iou(np.array([x, y, x + w, y + h]), boxes).max() if len(boxes) else 0.0
            assert best >= 0.7, f"{im['file_name']} annotation {ann['id']}: best IoU {best:.3f}"
            checked += 1
    assert checked == 12


def test_letterbox_round_trip_matches_ultralytics_padding():
    img = np.zeros((425, 640, 3), np.uint8)
    out, lb = letterbox(img, 640)
    assert out.shape == (640, 640, 3)
    assert lb.pad_x == 0 and lb.pad_y == 107 and lb.ratio == 1.0  # (640-425)/2 = 107.5: top 107, bottom 108
    assert out[0, 0].tolist() == [114, 114, 114]
    boxes = np.array([[10, 120, 200, 500]], np.float32)
    back = unletterbox_bboxes(boxes, lb, (425, 640))
    np.testing.assert_allclose(back, [[10, 13, 200, 393]])


def test_letterbox_batch_is_the_detector_input():
    a = np.full((425, 640, 3), 255, np.uint8)
    b = np.zeros((100, 50, 3), np.uint8)
    x, lbs = letterbox_batch([a, b], 640)
    assert x.shape == (2, 3, 640, 640) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, :, 320, 320].tolist() == [1.0, 1.0, 1.0]  # image pixels scaled to 0..1
    np.testing.assert_allclose(x[0, :, 0, 0], 114 / 255)  # padding
    assert (lbs[0].pad_y, lbs[1].ratio, lbs[1].pad_x) == (107, 6.4, 160)
    half, _ = letterbox_batch([a], 640, np.float16)
    assert half.dtype == np.float16


def _constant_model(path, output: np.ndarray):
    """An ONNX model taking `images` [1,3,640,640] and returning a constant `output0`."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(output.astype(np.float32)))
    # output0 = c + 0 * mean(images): keeps the input in the graph
    mean = helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0)
    zero = helper.make_node("Constant", [], ["z"], value=numpy_helper.from_array(np.array(0, np.float32)))
    mul = helper.make_node("Mul", ["m", "z"], ["mz"])
    add = helper.make_node("Add", ["c", "mz"], ["output0"])
    graph = helper.make_graph([const, mean, zero, mul, add], "g", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_nms_exported_output_is_accepted(tmp_path):
    dets = np.array(
        [
            [100, 150, 300, 500, 0.9, 0],  # person
            [320, 150, 400, 300, 0.8, 2],  # car: dropped
            [50, 100, 80, 200, 0.1, 0],  # below threshold
            [0, 0, 0, 0, 0.0, 0],  # padding row
        ],
        np.float32,
    )[None]
    det = PersonDetector(OrtRuntime(_constant_model(tmp_path / "nms.onnx", dets)), score_thr=0.25)
    boxes, scores = det.detect(np.zeros((425, 640, 3), np.uint8))
    assert boxes.shape == (1, 4)
    np.testing.assert_allclose(boxes[0], [100, 150 - 107, 300, 500 - 107])
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)


def test_raw_output_nms_and_person_class_only(tmp_path):
    n = 5
    pred = np.zeros((84, n), np.float32)
    # cx, cy, w, h; two heavily overlapping people, one separate person, one dog
    pred[:4, 0] = [200, 300, 100, 200]
    pred[:4, 1] = [205, 302, 100, 200]
    pred[:4, 2] = [500, 300, 80, 160]
    pred[:4, 3] = [400, 400, 50, 50]
    pred[4, :3] = [0.9, 0.8, 0.7]
    pred[4 + 16, 3] = 0.95  # dog
    det = PersonDetector(OrtRuntime(_constant_model(tmp_path / "raw.onnx", pred[None])), iou_thr=0.45)
    boxes, scores = det.detect(np.zeros((640, 640, 3), np.uint8))
    np.testing.assert_allclose(scores, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [150, 200, 250, 400])


@pytest.mark.parametrize("shape", [[1, 3, 640], [1, 640, 640, 3]])
def test_wrong_input_contract_is_rejected(tmp_path, shape):
    from core.errors import ModelLoadError

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    g = helper.make_graph([helper.make_node("Identity", ["images"], ["y"])], "g", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match="detector input"):
        PersonDetector(OrtRuntime(tmp_path / "m.onnx"))


def test_a_graph_of_no_known_contract_is_refused_naming_its_outputs(tmp_path):
    from core.errors import ModelLoadError

    path = _constant_model(tmp_path / "m.onnx", np.zeros((1, 10, 4), np.float32))
    model = onnx.load(path)
    model.graph.node[-1].output[0] = "scores"
    model.graph.output[0].name = "scores"
    onnx.save(model, path)
    with pytest.raises(ModelLoadError, match=r"cannot tell .* outputs scores \[1, 10, 4\]"):
        PersonDetector(OrtRuntime(path))


class _MMDeployRuntime(Runtime):
    """MMDeploy end2end outputs whose detection count N changes from call to call (NMS in the graph): dets
    [B, N, 5], labels int32 [B, N] (TensorRT's dtype); image i of a call gets N = 1 + (call number) detections."""

    input_names, input_shapes, input_dtypes = ["input"], [[None, 3, 320, 320]], [np.dtype(np.float32)]
    output_names, output_shapes = ["dets", "labels"], [[None, None, 5], [None, None]]
    active_providers = ["fake"]

    def __init__(self):
        self.calls = 0

    def run(self, feeds):
        self.calls += 1
        b, n = len(feeds["input"]), self.calls
        dets = np.tile(np.array([10, 20, 110, 220, 0.9], np.float32), (b, n, 1))
        dets[:, :, 4] -= 0.1 * np.arange(n)  # 0.9, 0.8: the second of the second call is a person too
        labels = np.zeros((b, n), np.int32)
        return [dets, labels]

    def describe(self):
        return {}


def test_mmdeploy_outputs_of_calls_with_different_counts_are_padded_to_one_batch():
    from models.detector_card import default_card

    det = PersonDetector(_MMDeployRuntime(), score_thr=0.0, max_batch_size=1, card=default_card("mmdeploy", 320))
    assert det.card.contract == "mmdeploy" and det.batch_size == 1
    images = [np.zeros((160, 320, 3), np.uint8)] * 2
    x = np.concatenate([det.preprocess(im)[0] for im in images])
    raw = det.infer(x)  # two calls: N = 1, then 2
    assert raw.shape == (2, 2, 6) and raw[0, 1, 5] == -1  # the added row is no class
    first, scores = det.postprocess(raw[0], Letterbox(0.5, 0, 0), (160, 320))
    np.testing.assert_allclose(first, [[20, 40, 220, 160]])  # /0.5, clipped to the 160-px height
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    assert len(det.postprocess(raw[1], Letterbox(0.5, 0, 0), (160, 320))[0]) == 2
