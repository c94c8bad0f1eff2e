"""The three detector output contracts (ultralytics, yolox, mmdeploy) on tiny torch detectors exported at random
weights (tests/detector_graphs.py): each contract's preprocessing against a numpy re-statement of its exporter's
own (Ultralytics ``LetterBox``, YOLOX ``preproc``, MMDet ``Resize(keep_ratio)`` + ``Pad``), the ONNX output against
torch on that input, and the decode (YOLOX's grid decode done by the torch head's own ``decode_outputs``, score
threshold, greedy NMS, person class, boxes mapped back through each letterbox) against an independent computation,
batch > 1, empty results, contract auto-detection and the card."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.errors import ModelLoadError
from inference.person_detector import PersonDetector
from inference.runtime import OrtRuntime
from models.detector_card import RTMDET_MEAN, RTMDET_STD, DetectorCardError, default_card

pytestmark = pytest.mark.slow  # exports four torch models (about 20 s)

torch = pytest.importorskip("torch")
graphs = pytest.importorskip("tests.detector_graphs")

SIZE = 64
#: (H, W): downscaled wide / tall (sizes that round, floor and round half up differently) and an upscaled small one
IMAGE_HW = [(50, 90), (70, 37), (12, 20)]
SCORE_THR, IOU_THR = 0.2, 0.15
LEVELS = [(SIZE // s, SIZE // s) for s in graphs.STRIDES]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """contract -> (ONNX path, torch module); ``yolox_decoded``: the same YOLOX weights exported with the decode."""
    out = tmp_path_factory.mktemp("detectors")
    torch.manual_seed(0)
    yolox = graphs.TinyYOLOX()
    decoded = graphs.TinyYOLOX(decode=True)
    decoded.load_state_dict(yolox.state_dict())
    models = {
        "ultralytics": (graphs.TinyUltralytics(), "images", ["output0"]),
        "yolox": (yolox, "images", ["output"]),
        "yolox_decoded": (decoded, "images", ["output"]),
        "mmdeploy": (graphs.TinyRTMDet(iou_thr=0.5), "input", ["dets", "labels"]),
    }
    return {k: (graphs.export(m, out / f"{k}.onnx", i, o, SIZE), m.eval()) for k, (m, i, o) in models.items()}


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in IMAGE_HW]


def reference_input(image: np.ndarray, contract: str) -> tuple[np.ndarray, float, tuple[int, int]]:
    """float32 [3, S, S], ratio, (pad_x, pad_y): each exporter's preprocessing re-stated with numpy / OpenCV."""
    h, w = image.shape[:2]
    r = min(SIZE / h, SIZE / w)
    canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
    if contract == "ultralytics":  # ultralytics/data/augment.py LetterBox: round, centred, RGB / 255
        nw, nh = int(round(w * r)), int(round(h * r))
        left, top = int(round((SIZE - nw) / 2 - 0.1)), int(round((SIZE - nh) / 2 - 0.1))
        canvas[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return canvas.transpose(2, 0, 1).astype(np.float32) / 255, r, (left, top)
    bgr = np.ascontiguousarray(image[..., ::-1])
    if contract == "yolox":  # yolox/data/data_augment.py preproc: int(w * r), top-left, BGR 0..255
        nw, nh = int(w * r), int(h * r)
        canvas[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return canvas.transpose(2, 0, 1).astype(np.float32), r, (0, 0)
    # MMDet Resize(keep_ratio) (mmcv rescale_size: int(w * r + 0.5)), Pad to the bottom-right with 114, BGR normalised
    nw, nh = int(w * r + 0.5), int(h * r + 0.5)
    canvas[:nh, :nw] = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = (canvas.astype(np.float32) - np.float32(RTMDET_MEAN)) / np.float32(RTMDET_STD)
    return x.transpose(2, 0, 1), r, (0, 0)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Greedy NMS, highest score first; a box goes when its IoU with a kept one exceeds ``iou_thr``."""
    order, keep = list(np.argsort(-scores, kind="stable")), []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i = order.pop(0)
        keep.append(i)
        rest = np.array(order, dtype=int)
        if len(rest) == 0:
            break
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.clip(rb - lt, 0, None).prod(1)
        iou = inter / (area[i] + area[rest] - inter)
        order = [j for j, o in zip(rest, iou) if o <= iou_thr]
    return np.array(keep, dtype=int)


def reference_boxes(raw, contract, r, pad, hw, person=0, decoded=False, score_thr=SCORE_THR):
    """(boxes [N, 4] original pixels, scores [N]) from one image's raw ONNX output(s), independently of the service:
    YOLOX's grid decode by the torch head's ``decode_outputs``, NMS by :func:`_nms`."""
    if contract == "mmdeploy":
        dets, labels = raw
        keep = (labels == person) & (dets[:, 4] >= score_thr)
        xyxy, scores = dets[keep, :4], dets[keep, 4]
    else:
        if contract == "yolox":
            p = torch.from_numpy(raw[None])
            if not decoded:
                feats = [torch.zeros(1, 1, h, w) for h, w in LEVELS]
                p = graphs.TinyYOLOX.decode_outputs(p, feats)
            p = p[0].numpy()
            cxcywh, scores = p[:, :4], p[:, 4] * p[:, 5 + person]
        else:
            cxcywh, scores = raw[:4].T, raw[4 + person]
        keep = scores >= score_thr
        cxcywh, scores = cxcywh[keep], scores[keep]
        xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
        k = _nms(xyxy, scores, IOU_THR)
        xyxy, scores = xyxy[k], scores[k]
    b = (xyxy - np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)) / r
    b = np.clip(b, 0, [hw[1], hw[0], hw[1], hw[0]])
    valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, scores = b[valid], scores[valid]
    order = np.argsort(-scores, kind="stable")
    return b[order], scores[order]


def _detector(path, **kw) -> PersonDetector:
    return PersonDetector(OrtRuntime(path, ["CPUExecutionProvider"]), score_thr=SCORE_THR, iou_thr=IOU_THR, **kw)


def _raw_items(det: PersonDetector, x: np.ndarray) -> list:
    """Each image's raw outputs straight from the runtime (not through ``infer``)."""
    outs = det.runtime.run({det.input_name: x})
    if det.card.contract == "mmdeploy":
        return [(outs[0][i], outs[1][i]) for i in range(len(x))]
    return [outs[0][i] for i in range(len(x))]


CONTRACTS = ["ultralytics", "yolox", "mmdeploy"]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contract_is_told_from_the_graph_and_its_preprocessing_is_the_exporters(exported, contract):
    det = _detector(exported[contract][0])
    assert det.card.contract == contract and det.input_wh == (SIZE, SIZE)
    assert det.batch_size == 1 and det.fixed_batch is None
    for image in _images():
        x, lb = det.preprocess(image)
        want, r, pad = reference_input(image, contract)
        assert x.shape == (1, 3, SIZE, SIZE) and x.dtype == np.float32
        np.testing.assert_allclose(x[0], want, rtol=0, atol=1e-5)
        assert lb.ratio == pytest.approx(r) and (lb.pad_x, lb.pad_y) == pad


@pytest.mark.parametrize("contract", CONTRACTS)
def test_onnx_output_is_the_torch_models_on_the_reference_input(exported, contract):
    path, model = exported[contract]
    det = _detector(path)
    ref = np.stack([reference_input(im, contract)[0] for im in _images()])
    with torch.no_grad():
        want = model(torch.from_numpy(ref))
    want = [t.numpy() for t in (want if isinstance(want, tuple) else (want,))]
    got = det.runtime.run({det.input_name: np.concatenate([det.preprocess(im)[0] for im in _images()])})
    assert [g.dtype for g in got] == ([np.float32, np.int64] if contract == "mmdeploy" else [np.float32])
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("contract", CONTRACTS)
@pytest.mark.parametrize("person", [0, 1])
def test_batched_decode_matches_an_independent_decode(exported, contract, person):
    card = default_card(contract, SIZE, person_class=person)
    det = _detector(exported[contract][0], card=card, max_batch_size=2)  # 3 images: calls of 2 and 1
    images = _images()
    x = np.concatenate([det.preprocess(im)[0] for im in images])
    raw = det.infer(x)
    assert len(raw) == 3
    found = 0
    for image, item, one in zip(images, raw, _raw_items(det, x)):
        _, r, pad = reference_input(image, contract)
        want_b, want_s = reference_boxes(one, contract, r, pad, image.shape[:2], person)
        lb = det.preprocess(image)[1]
        got_b, got_s = det.postprocess(item, lb, image.shape[:2])
        assert got_b.dtype == np.float32 and got_s.dtype == np.float32 and got_b.shape == (len(got_s), 4)
        assert len(got_b) == len(want_b), (image.shape, got_s, want_s)
        np.testing.assert_allclose(got_b, want_b, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(got_s, want_s, rtol=1e-6)
        assert np.all(got_b >= 0) and np.all(got_b[:, [0, 2]] <= image.shape[1])
        alone_b, alone_s = det.detect(image)  # batch of one: the same answer
        np.testing.assert_allclose(alone_b, got_b, atol=1e-4)
        found += len(got_b)
    assert found >= 3  # the check above compared real boxes


def test_other_classes_and_nms_are_not_served_as_people(exported):
    """The person filter and the NMS change the answer (so the decode test above could fail): class 1's boxes differ
    from class 0's, and without NMS there would be more boxes."""
    image = _images()[0]
    for contract in ("ultralytics", "yolox"):
        a = _detector(exported[contract][0]).detect(image)[0]
        b = _detector(exported[contract][0], card=default_card(contract, SIZE, person_class=1)).detect(image)[0]
        assert len(a) and len(b) and (len(a) != len(b) or not np.allclose(a, b))
        no_nms = PersonDetector(OrtRuntime(exported[contract][0]), score_thr=SCORE_THR, iou_thr=1.0).detect(image)[0]
        assert len(no_nms) > len(a)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_no_person_above_the_threshold_is_an_empty_answer(exported, contract):
    det = PersonDetector(OrtRuntime(exported[contract][0]), score_thr=0.9999)
    boxes, scores = det.detect(_images()[0])
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    assert boxes.dtype == np.float32 and scores.dtype == np.float32


def test_yolox_decoded_in_graph_is_served_by_its_card(exported):
    """``--decode_in_inference`` exports decode in the graph: the card says so (``yolox_decode: none``) and the boxes
    are those of the raw export decoded here."""
    raw = _detector(exported["yolox"][0])
    decoded = _detector(exported["yolox_decoded"][0], card=default_card("yolox", SIZE, yolox_decode="none"))
    for image in _images():
        a, sa = raw.detect(image)
        b, sb = decoded.detect(image)
        assert len(a) == len(b) and len(a) > 0
        np.testing.assert_allclose(b, a, atol=1e-3)
        np.testing.assert_allclose(sb, sa, rtol=1e-5)


def test_a_card_that_does_not_fit_the_graph_is_refused(exported):
    with pytest.raises(ModelLoadError, match="does not fit the graph"):
        _detector(exported["yolox"][0], card=default_card("yolox", 320))
    with pytest.raises(ModelLoadError, match="84 anchors"):
        _detector(exported["yolox"][0], card=default_card("yolox", SIZE, strides=[8, 16]))
    with pytest.raises(ModelLoadError, match="dets"):
        _detector(exported["yolox"][0], card=default_card("mmdeploy", SIZE))
    with pytest.raises(DetectorCardError, match="yolox_decode"):
        default_card("yolox", SIZE, yolox_decode="sigmoid")


def test_pipeline_serves_a_detector_named_by_its_card(exported, movenet_card, cpu_settings, tmp_path):
    """``POSE_DETECTOR_MODEL`` may be the card JSON (its model_file beside it), or the model with ``<stem>.json``."""
    from inference.pipeline import PosePipeline

    onnx = tmp_path / "rtmdet_tiny.onnx"
    onnx.write_bytes(exported["mmdeploy"][0].read_bytes())
    card = default_card("mmdeploy", SIZE, name="rtmdet_tiny", model_file=onnx.name, licence="Apache-2.0")
    card_path = card.save(tmp_path / "rtmdet_tiny.json")
    for given in (card_path, onnx):
        settings = cpu_settings.model_copy(update={"detector_model": given, "pose_model": movenet_card})
        pipe = PosePipeline.from_settings(settings, batching=False)
        assert pipe.detector.card == card and pipe.detector.name == "rtmdet_tiny"
        assert pipe.describe()["detector"]["contract"] == "mmdeploy"
