"""The COCO keypoint metric against MMPose's own code (golden files), plus its edge cases.

Golden files in tests/data/mmpose_metric/ come from tests/mmpose_golden/make_metric_golden.py, which ran
MMPose 1.3.2's ``CocoMetric`` (xtcocotools COCOeval), ``oks_nms`` and ``oks_iou`` in a separate venv.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.metric import (
    STAT_NAMES,
    CocoKeypointMetric,
    coco_backend,
    load_coco,
    oks_iou,
    oks_nms,
    per_keypoint_breakdown,
    run_cocoeval,
    scale_area,
    write_results_json,
)
from models.geometry import bbox_to_center_scale
from models.keypoints import COCO17_SIGMAS
from models.scoring import person_scores

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_metric"
ANN = GOLDEN / "ann.json"

# MMPose's CocoMetric stat names -> ours
_MMPOSE_STATS = {
    "AP": "AP",
    "AP .5": "AP50",
    "AP .75": "AP75",
    "AP (M)": "AP_M",
    "AP (L)": "AP_L",
    "AR": "AR",
    "AR .5": "AR50",
    "AR .75": "AR75",
    "AR (M)": "AR_M",
    "AR (L)": "AR_L",
}


@pytest.fixture(scope="module")
def golden_inputs() -> dict:
    d = np.load(GOLDEN / "inputs.npz")
    return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def our_areas(golden_inputs) -> np.ndarray:
    """Areas from our geometry: padded (1.25), aspect-fixed scale of a 256x256 input."""
    _, scales = bbox_to_center_scale(golden_inputs["bbox_xyxy"], (256, 256))
    return scale_area(scales)


def _rescored(inputs: dict) -> np.ndarray:
    return person_scores(inputs["bbox_scores"], inputs["keypoints"][:, :, 2], mode="bbox_keypoint")


def test_area_is_mmpose_padded_square_scale(golden_inputs, our_areas):
    g = np.load(GOLDEN / "areas.npz")
    _, scales = bbox_to_center_scale(golden_inputs["bbox_xyxy"], (256, 256))
    np.testing.assert_allclose(scales, g["bbox_scales"], rtol=1e-6)
    np.testing.assert_allclose(our_areas, g["areas"], rtol=1e-6)
    # square crop: area = (1.25 * longer side) ** 2
    b = golden_inputs["bbox_xyxy"].astype(np.float64)
    longer = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    np.testing.assert_allclose(our_areas, (1.25 * longer) ** 2, rtol=1e-5)


def test_oks_iou_and_nms_equal_mmpose(golden_inputs, our_areas):
    golden = json.loads((GOLDEN / "nms.json").read_text())
    scores = _rescored(golden_inputs)
    kp = golden_inputs["keypoints"]
    total_removed = 0
    for entry in golden.values():
        idx = np.asarray(entry["indices"])
        ious = oks_iou(kp[idx[0]], kp[idx[1:]], our_areas[idx[0]], our_areas[idx[1:]])
        np.testing.assert_allclose(ious, entry["oks_first_vs_rest"], rtol=1e-5, atol=1e-7)
        keep = oks_nms(kp[idx], scores[idx], our_areas[idx], 0.9)
        assert idx[keep].tolist() == entry["keep"]
        total_removed += len(idx) - len(keep)
    assert total_removed > 0  # the golden set has near-duplicates, so the comparison exercised suppression


@pytest.mark.parametrize(
    "mode,nms",
    [("bbox_keypoint", True), ("bbox_keypoint", False), ("keypoint", True), ("keypoint", False), ("bbox_rle", True)],
)
def test_metric_equals_mmpose_cocometric(golden_inputs, our_areas, mode, nms, tmp_path):
    """MMPose's CocoMetric per score mode; ``bbox_rle`` (RLE's configs: bbox + mean + max keypoint score) comes from
    tests/mmpose_golden/make_zoo_golden.py, the others from make_metric_golden.py."""
    name = f"metric_{mode}_{'oks_nms' if nms else 'none'}.json"
    golden = json.loads(((GOLDEN.parent / "mmpose_zoo") if mode == "bbox_rle" else GOLDEN).joinpath(name).read_text())
    metric = CocoKeypointMetric(ANN, score_mode=mode, nms=nms)
    for img_id in np.unique(golden_inputs["img_id"]):
        sel = golden_inputs["img_id"] == img_id
        metric.add(int(img_id), golden_inputs["keypoints"][sel], golden_inputs["bbox_scores"][sel], our_areas[sel])
    results = metric.coco_results()

    # same records: MMPose's results file is sorted by image then kept order; compare per image as sets (scores are
    # compared at 1e-6 relative below: MMPose sums bbox_rle's three float32 terms in float32, we in float64)
    def key(r):
        return (r["image_id"], tuple(np.round(r["keypoints"], 3)))

    assert len(results) == len(golden["results"])
    assert sorted(map(key, results)) == sorted(map(key, golden["results"]))
    for ours, theirs in zip(
        sorted(results, key=lambda r: (r["image_id"], -r["score"])),
        sorted(golden["results"], key=lambda r: (r["image_id"], -r["score"])),
    ):
        np.testing.assert_allclose(ours["keypoints"], theirs["keypoints"], rtol=1e-6, atol=1e-4)
        assert ours["score"] == pytest.approx(theirs["score"], rel=1e-6)

    out = metric.evaluate(results)
    for theirs_name, ours_name in _MMPOSE_STATS.items():
        assert out.stats[ours_name] == pytest.approx(golden["stats"][theirs_name], abs=1e-9), ours_name
    assert out.backend in ("xtcocotools", "pycocotools")
    assert out.num_results == len(results)
    # results JSON round trip
    path = write_results_json(results, tmp_path / "r.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(results))


def test_both_backends_agree_when_installed(golden_inputs, our_areas):
    golden = json.loads((GOLDEN / "metric_bbox_keypoint_oks_nms.json").read_text())
    for backend in ("pycocotools", "xtcocotools"):
        try:
            coco_backend(backend)
        except ImportError:
            continue
        coco = load_coco(ANN, backend)
        stats, name, summary = run_cocoeval(coco, golden["results"], backend=backend)
        assert name == backend
        assert "Average Precision" in summary
        assert stats["AP"] == pytest.approx(golden["stats"]["AP"], abs=1e-9)


def test_two_pixel_shift_lowers_ap():
    golden = json.loads((GOLDEN / "metric_bbox_keypoint_oks_nms.json").read_text())
    coco = load_coco(ANN)
    base, _, _ = run_cocoeval(coco, golden["results"])
    shifted = []
    for r in golden["results"]:
        kp = np.asarray(r["keypoints"]).reshape(-1, 3)
        kp[:, :2] += 2.0
        shifted.append({**r, "keypoints": kp.reshape(-1).tolist()})
    moved, _, _ = run_cocoeval(coco, shifted)
    assert moved["AP"] < base["AP"] - 0.005


def test_oks_nms_removes_duplicates_keeps_distinct_people():
    rng = np.random.default_rng(0)
    person_a = np.column_stack([rng.uniform(100, 200, 17), rng.uniform(100, 300, 17), np.full(17, 0.9)])
    person_b = person_a + [250.0, 0.0, 0.0]
    dup1 = person_a + [0.5, -0.5, 0.0]
    dup2 = person_a + [1.0, 0.0, 0.0]
    kps = np.stack([dup1, person_a, person_b, dup2])
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    areas = np.full(4, 200.0**2)
    keep = oks_nms(kps, scores, areas, thr=0.9)
    assert keep.tolist() == [1, 2]  # best copy of A (score order), then B; both duplicates dropped
    # with a threshold above every OKS nothing is dropped
    assert sorted(oks_nms(kps, scores, areas, thr=1.0).tolist()) == [0, 1, 2, 3]
    assert oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0)).tolist() == []


def test_person_scores_rules():
    s = np.array([[0.1, 0.5, 0.9] + [0.0] * 14, [0.1] * 17])
    b = np.array([0.8, 0.9])
    got = person_scores(b, s, mode="bbox_keypoint")
    np.testing.assert_allclose(got, [0.8 * 0.7, 0.0])  # only 0.5 and 0.9 pass 0.2; none pass -> 0
    np.testing.assert_allclose(person_scores(None, s, mode="keypoint"), s.mean(axis=1))
    np.testing.assert_allclose(person_scores(b, s, mode="bbox_rle"), [0.8 + 1.5 / 17 + 0.9, 0.9 + 0.1 + 0.1])
    np.testing.assert_allclose(person_scores(b, s, mode="bbox"), b)
    with pytest.raises(ValueError, match="bbox_scores are required"):
        person_scores(None, s, mode="bbox_rle")
    with pytest.raises(ValueError, match="2 instances"):
        person_scores(np.ones(3), s)
    with pytest.raises(ValueError, match="score mode"):
        person_scores(b, s, mode="oks")
    with pytest.raises(ValueError, match="score_mode"):
        CocoKeypointMetric(ANN, score_mode="rle")


def test_bad_input_is_named():
    metric = CocoKeypointMetric(ANN)
    kp = np.zeros((1, 17, 3))
    with pytest.raises(ValueError, match="image id 999"):
        metric.add(999, kp, np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match=r"\[N, K, 3\]"):
        metric.add(100, np.zeros((1, 17, 2)), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="non-finite"):
        metric.add(100, np.full((1, 17, 3), np.nan), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="2 bbox scores"):
        metric.add(100, kp, np.ones(2), np.ones(1))
    with pytest.raises(ValueError, match="K=5"):
        metric.add(100, np.zeros((1, 5, 3)), np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="no keypoint results"):
        metric.evaluate()
    with pytest.raises(ValueError, match="not in the annotation file"):
        run_cocoeval(metric.coco, [{"image_id": 1, "category_id": 1, "keypoints": [0.0] * 51, "score": 1.0}])
    with pytest.raises(FileNotFoundError):
        CocoKeypointMetric(ANN.parent / "missing.json")
    with pytest.raises(ValueError, match="COCO backend"):
        coco_backend("detectron")


def test_per_keypoint_breakdown_perfect_and_shifted():
    coco = load_coco(ANN)
    anns = [a for a in coco.dataset["annotations"] if a["num_keypoints"] > 0]
    perfect = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": 1.0} for a in anns
    ]
    out = per_keypoint_breakdown(coco, perfect)
    labelled = np.sum([np.asarray(a["keypoints"]).reshape(17, 3)[:, 2] > 0 for a in anns], axis=0)
    assert out["count"] == labelled.tolist()
    np.testing.assert_allclose(out["oks"], 1.0)
    np.testing.assert_allclose(out["pck"], 1.0)
    # a 3-pixel shift: OKS drops most for the keypoints with the smallest sigma (eyes vs hips)
    shifted = [
        {**r, "keypoints": (np.asarray(r["keypoints"]) + np.tile([3.0, 0.0, 0.0], 17)).tolist()} for r in perfect
    ]
    out2 = per_keypoint_breakdown(coco, shifted)
    oks = np.asarray(out2["oks"])
    assert (oks < 1.0).all()
    assert oks[1] < oks[11]  # left eye (sigma 0.025) < left hip (sigma 0.107)
    assert np.argmin(COCO17_SIGMAS) in (1, 2)


def test_stat_names_order():
    assert STAT_NAMES[:3] == ("AP", "AP50", "AP75") and STAT_NAMES[5:7] == ("AR", "AR50")
