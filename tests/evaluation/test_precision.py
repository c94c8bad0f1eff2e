"""The reduced-precision gate's statistics (evaluation/precision.py) on known inputs: the bootstrap AP equals COCOeval,
identical runs agree exactly, sub-pixel noise passes, a decode-sized error and a lost tenth of the people fail.

Predictions here are made from the annotations (ground truth plus seeded noise of known size), so every figure is
the same on any machine; the served models' gate is in tests/export/test_quantize_gate.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.metric import coco_backend, load_coco, match_persons, run_cocoeval
from evaluation.precision import compare_runs, evaluate_images, resampled_ap, same_bbox_agreement
from models.tolerance import (
    METRIC_ABS,
    REDUCED_PRECISION_AGREEMENT_OKS,
    REDUCED_PRECISION_AP_DROP,
    REDUCED_PRECISION_OKS_DROP,
)

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_metric"


def _backends() -> list[str]:
    out = []
    for name in ("pycocotools", "xtcocotools"):
        try:
            coco_backend(name)
            out.append(name)
        except ImportError:
            pass
    return out


@pytest.mark.parametrize("backend", _backends())
def test_resampled_ap_is_cocoeval_ap(backend):
    golden = json.loads((GOLDEN / "metric_bbox_keypoint_oks_nms.json").read_text())
    coco = load_coco(GOLDEN / "ann.json", backend)
    stats, _, _ = run_cocoeval(coco, golden["results"], backend=backend)
    ev = evaluate_images(coco, golden["results"], coco.getImgIds(), backend=backend)
    assert abs(resampled_ap(ev) - stats["AP"]) <= METRIC_ABS
    assert 0.1 < stats["AP"] < 0.99  # a figure that can move


def test_a_repeated_image_counts_as_a_copy_of_it(tmp_path):
    """Resampling an image twice gives the AP of a data set holding two copies of it (COCOeval on the copies)."""
    golden = json.loads((GOLDEN / "metric_bbox_keypoint_oks_nms.json").read_text())
    data = json.loads((GOLDEN / "ann.json").read_text())
    coco = load_coco(GOLDEN / "ann.json")
    ids = sorted(coco.getImgIds())
    ev = evaluate_images(coco, golden["results"], ids)
    off = 10**6
    doubled = {
        **data,
        "images": data["images"] + [{**im, "id": im["id"] + off} for im in data["images"]],
        "annotations": data["annotations"]
        + [{**a, "id": a["id"] + off, "image_id": a["image_id"] + off} for a in data["annotations"]],
    }
    path = tmp_path / "doubled.json"
    path.write_text(json.dumps(doubled))
    coco2 = load_coco(path)
    results2 = golden["results"] + [{**r, "image_id": r["image_id"] + off} for r in golden["results"]]
    stats2, _, _ = run_cocoeval(coco2, results2)
    sample = np.concatenate([np.arange(len(ids)), np.arange(len(ids))])
    assert abs(resampled_ap(ev, sample) - stats2["AP"]) <= METRIC_ABS
    assert resampled_ap(ev, np.zeros(0, np.int64)) == -1.0


def _predictions(coco, rng, noise_px: float, drop: float = 0.0, shift=None):
    """COCO result records and same-box keypoints made from the annotations: every labelled keypoint plus Gaussian
    noise of ``noise_px`` x sqrt(area) / 100 pixels (unlabelled ones at the box centre), one record per person, a
    ``drop`` fraction of people left out (the reference's rows are kept for them in the same-box dict)."""
    records, per_image = [], {}
    for ann in coco.dataset["annotations"]:
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0:
            continue
        g = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        kp = np.where(g[:, 2:3] > 0, g, [x + w / 2, y + h / 2, 0])
        kp[:, :2] += rng.normal(0, noise_px * np.sqrt(ann["area"]) / 100, (17, 2))
        if shift is not None:
            kp[:, :2] += shift * np.sqrt(ann["area"]) / 100
        kp[:, 2] = 0.9
        per_image.setdefault(ann["image_id"], []).append(kp)
        if rng.random() >= drop:
            records.append(
                {"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 1.0}
            )
    return records, {i: np.stack(v) for i, v in per_image.items()}


@pytest.fixture(scope="module")
def mini(coco_mini):
    coco = load_coco(coco_mini / "annotations" / "person_keypoints_val2017.json")
    ref_records, ref_kp = _predictions(coco, np.random.default_rng(0), noise_px=4.0)
    return coco, ref_records, ref_kp


def test_identical_runs_agree_exactly_and_pass(mini):
    coco, records, kp = mini
    c = compare_runs(coco, records, records, coco.getImgIds(), precision="bf16", same_bboxes=(kp, kp), n_resamples=200)
    assert c.passed and not c.reasons
    assert c.agreement_oks == 1.0 and c.agreement_oks_ci == (1.0, 1.0)
    assert c.oks_delta == 0.0 and c.ap_delta == 0.0 and c.ap_delta_ci == (0.0, 0.0)
    assert c.persons == 68 and c.found_persons == int((match_persons(coco, records).oks >= 0.5).sum()) > 40


def _reduced(kp: dict, rng, noise_px: float, shift=None, coco=None, drop: float = 0.0):
    """The reference keypoints moved by noise (and a shift) of the given size in sqrt(area) / 100 units."""
    areas = {}
    for ann in coco.dataset["annotations"]:
        areas.setdefault(ann["image_id"], []).append(ann)
    out_kp, records = {}, []
    for image_id, ref in kp.items():
        anns = [a for a in areas[image_id] if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
        scale = np.sqrt(np.array([a["area"] for a in anns]))[:, None, None] / 100
        moved = ref.copy()
        moved[:, :, :2] += rng.normal(0, noise_px, ref[:, :, :2].shape) * scale
        if shift is not None:
            moved[:, :, :2] += np.asarray(shift) * scale
        out_kp[image_id] = moved
        for row in moved:
            if rng.random() >= drop:
                records.append(
                    {"image_id": image_id, "category_id": 1, "keypoints": row.ravel().tolist(), "score": 1.0}
                )
    return records, out_kp


def test_bf16_sized_noise_passes_and_decode_sized_error_fails(mini):
    """Noise of 0.2 % of the person's size (what bf16 moves a keypoint) passes every check; a systematic move of 3 %
    with 2 % noise (a quantised heatmap decode: whole cells of a 64-cell heatmap) fails the pose agreement and the
    OKS change."""
    coco, records, kp = mini
    rng = np.random.default_rng(1)
    ok_records, ok_kp = _reduced(kp, rng, 0.2, coco=coco)
    ok = compare_runs(coco, records, ok_records, coco.getImgIds(), precision="bf16", same_bboxes=(kp, ok_kp))
    assert ok.passed, ok.describe()
    assert ok.agreement_oks > 0.99 and abs(ok.oks_delta) < REDUCED_PRECISION_OKS_DROP / 2
    assert ok.ap_delta_ci[0] <= ok.ap_delta <= ok.ap_delta_ci[1]
    bad_records, bad_kp = _reduced(kp, rng, 2.0, shift=(3.0, 3.0), coco=coco)
    bad = compare_runs(coco, records, bad_records, coco.getImgIds(), precision="int8", same_bboxes=(kp, bad_kp))
    assert not bad.passed
    assert bad.agreement_oks < REDUCED_PRECISION_AGREEMENT_OKS
    assert any("agreement" in r for r in bad.reasons) and any("OKS change" in r for r in bad.reasons)
    assert bad.to_dict()["passed"] is False and "FAILED" in bad.describe()


def test_losing_people_fails_on_ap_and_oks_without_a_same_box_run(mini):
    """A run that loses a quarter of the people (a detector that stopped finding them) fails on the OKS change and
    the AP change's interval, with no same-box figure."""
    coco, records, kp = mini
    lost, _ = _reduced(kp, np.random.default_rng(2), 0.0, coco=coco, drop=0.25)
    c = compare_runs(coco, records, lost, coco.getImgIds(), precision="int8")
    assert c.agreement_oks is None and c.found_persons is None
    assert c.ap_delta_ci[1] < -REDUCED_PRECISION_AP_DROP
    assert not c.passed and any("AP change" in r for r in c.reasons)


def test_same_box_runs_must_share_their_boxes(mini):
    coco, _, kp = mini
    image_id = next(iter(kp))
    other = {**kp, image_id: kp[image_id][:0]}
    with pytest.raises(ValueError, match="other boxes"):
        same_bbox_agreement(coco, kp, other, coco.getImgIds())


def test_intervals_are_reproducible(mini):
    coco, records, kp = mini
    noisy, noisy_kp = _reduced(kp, np.random.default_rng(3), 1.0, coco=coco)
    a = compare_runs(coco, records, noisy, coco.getImgIds(), precision="bf16", same_bboxes=(kp, noisy_kp))
    b = compare_runs(coco, records, noisy, coco.getImgIds(), precision="bf16", same_bboxes=(kp, noisy_kp))
    assert a.to_dict() == b.to_dict()
    assert a.oks_delta_ci[0] < a.oks_delta_ci[1] and a.ap_delta_ci[0] < a.ap_delta_ci[1]
