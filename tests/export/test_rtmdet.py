"""RTMDet export (export/rtmdet.py): the end2end graph writes MMDeploy's layout with its card, is served by the
person detector, and keeps the boxes an independent greedy NMS keeps; checkpoints load strictly and by hash."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.rtmdet import RTMDetExportError, export_rtmdet, load_rtmdet_checkpoint  # noqa: E402
from models.rtmdet import RTMDET_CONFIGS, RTMDet, randomize  # noqa: E402

pytestmark = pytest.mark.slow  # one export (about 10 s)
NANO = RTMDET_CONFIGS["rtmdet_nano_person"]
PRE_TOP_K = 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_rtmdet("rtmdet_nano_person", tmp_path_factory.mktemp("rtmdet"), pre_top_k=PRE_TOP_K)


def _greedy(boxes, scores, iou_thr):
    keep, order = [], list(range(len(boxes)))
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order:
        i = order.pop(0)
        keep.append(i)
        lt = np.maximum(boxes[i, :2], boxes[order, :2])
        rb = np.minimum(boxes[i, 2:], boxes[order, 2:])
        inter = np.clip(rb - lt, 0, None).prod(-1)
        iou = inter / np.maximum(area[i] + area[order] - inter, 1e-6)
        order = [j for j, o in zip(order, iou) if o <= iou_thr]
    return np.array(keep, int)


def test_export_writes_mmdeploys_layout_and_a_card(exported):
    from inference.runtime import OrtRuntime
    from models.detector_card import find_detector_card

    assert exported.max_abs_diff <= 1e-3
    rt = OrtRuntime(exported.onnx_path, ["CPUExecutionProvider"])
    assert rt.input_names == ["input"] and rt.input_shapes[0] == [None, 3, 320, 320]
    assert rt.output_names == ["dets", "labels"]
    dets, labels = rt.run({"input": np.zeros((2, 3, 320, 320), np.float32)})
    assert dets.shape == (2, PRE_TOP_K, 5) and dets.dtype == np.float32 and labels.dtype == np.int64
    _, card = find_detector_card(exported.onnx_path)
    assert card.contract == "mmdeploy" and card.licence == "Apache-2.0" and card.input.name == "input"
    assert card.source["checkpoint"] is None and card.source["detections_agree"] >= 0.9
    assert card.extra["published"]["person_ap"] == 40.3


def test_served_boxes_are_an_independent_nms_of_the_network(exported):
    from inference.person_detector import PersonDetector
    from inference.runtime import OrtRuntime
    from models.detector_card import find_detector_card

    path, card = find_detector_card(exported.onnx_path)
    det = PersonDetector(OrtRuntime(path, ["CPUExecutionProvider"]), score_thr=0.3, card=card)
    image = np.random.default_rng(5).integers(0, 256, (240, 400, 3), dtype=np.uint8)
    got_b, got_s = det.detect(image)
    x, lb = det.preprocess(image)
    model = randomize(RTMDet(NANO), 0).eval()  # the export's weights
    with torch.no_grad():
        boxes, scores = (t[0].numpy() for t in model(torch.from_numpy(x)))
    s = scores[:, 0]
    top = np.argsort(-s, kind="stable")[:PRE_TOP_K]
    top = top[s[top] > 0.05]  # the config's score_thr
    kept = top[_greedy(boxes[top], s[top], 0.6)]
    kept = kept[s[kept] >= 0.3]
    want = np.clip((boxes[kept] - [lb.pad_x, lb.pad_y] * 2) / lb.ratio, 0, [400, 240, 400, 240])
    valid = (want[:, 2] > want[:, 0]) & (want[:, 3] > want[:, 1])
    assert len(got_b) == valid.sum() > 0
    np.testing.assert_allclose(got_b, want[valid], atol=1e-2)
    np.testing.assert_allclose(got_s, s[kept][valid], rtol=1e-4)


def test_checkpoints_load_strictly_and_are_checked_by_their_hash(tmp_path):
    model = randomize(RTMDet(NANO), 3)
    ckpt = tmp_path / "rtmdet.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"epoch": 100}}, ckpt)
    fresh = RTMDet(NANO)
    load_rtmdet_checkpoint(fresh, ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("bbox_head.rtm_reg.2")}
    torch.save({"state_dict": partial}, tmp_path / "partial.pth")
    with pytest.raises(RTMDetExportError, match="rtm_reg.2"):
        load_rtmdet_checkpoint(RTMDet(NANO), tmp_path / "partial.pth")
    with pytest.raises(RTMDetExportError, match="starts with 05d8511e"):
        export_rtmdet("rtmdet_nano_person", tmp_path / "out", checkpoint=ckpt)
    with pytest.raises(RTMDetExportError, match="unknown RTMDet config"):
        export_rtmdet("rtmdet_huge", tmp_path / "out")


def test_an_onnx_copied_without_its_json_keeps_its_card(exported, tmp_path):
    from inference.person_detector import load_detector_card
    from models.detector_card import DetectorCard

    alone = tmp_path / "copy.onnx"
    alone.write_bytes(exported.onnx_path.read_bytes())
    path, card = load_detector_card(alone)
    assert path == alone and card is not None and card.model_path() == alone.resolve()
    beside = DetectorCard.load(exported.card_path)
    assert (card.contract, card.input, card.letterbox, card.licence) == (
        beside.contract,
        beside.input,
        beside.letterbox,
        beside.licence,
    )
