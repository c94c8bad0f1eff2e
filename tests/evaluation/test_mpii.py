"""MPII: the annotation reader and PCKh against MMPose's own code (tests/data/mmpose_zoo, make_zoo_golden.py), PCKh on
hand-made answers, and ``pose-eval --dataset mpii`` end to end on an MPII-format file made from coco-tiny."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.mpii import (
    EXCLUDED_JOINTS,
    MpiiDataError,
    mpii_pckh,
    pck_accuracy,
    read_headboxes,
    read_mpii,
    zoo_columns,
)
from models import geometry
from models.keypoints import MPII16
from models.tolerance import UINT8_LEVELS, assert_close

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmpose_zoo"
scipy_io = pytest.importorskip("scipy.io")
#: MPII center / scale from the file and MMPose's, both float32: equal; through the box corners, float32 rounding.
GEOMETRY_PX = 1e-4


@pytest.fixture(scope="module")
def golden_instances():
    return read_mpii(GOLDEN / "mpii_val.json", GOLDEN / "mpii_gt_val.mat")


def test_reader_equals_mmpose_mpii_dataset(golden_instances):
    g = np.load(GOLDEN / "mpii_dataset.npz")
    inst = golden_instances
    assert [i.image_id for i in inst] == g["img_id"].tolist() and [i.index for i in inst] == list(range(len(inst)))
    for field, key in (
        ("center", "bbox_center"),
        ("scale", "bbox_scale"),
        ("bbox", "bbox"),
        ("keypoints", "keypoints"),
    ):
        assert np.array_equal(np.stack([getattr(i, field) for i in inst]), g[key].reshape(len(inst), *g[key].shape[1:]))
    assert np.array_equal(np.stack([i.visible for i in inst]), g["keypoints_visible"].reshape(len(inst), 16))
    np.testing.assert_array_equal([i.head_size for i in inst], g["head_size"].reshape(-1))
    # the -1 center (no 15-pixel shift) and the zero head box are among them
    assert (np.stack([i.center for i in inst]) == -2).all(axis=1).any() and min(i.head_size for i in inst) == 0.0


def test_served_geometry_gives_mmposes_mpii_crops(golden_instances):
    """The pipeline's boxes (annotation corners, padded 1.25, aspect-fixed) give MMPose's val-pipeline crops."""
    g = np.load(GOLDEN / "mpii_dataset.npz")
    image = np.load(GOLDEN / "pipeline.npz")["image_rgb"]
    centers, scales = geometry.bbox_to_center_scale(np.stack([i.bbox for i in golden_instances]), (256, 256))
    assert_close(centers, g["input_center"], GEOMETRY_PX, "center")
    assert_close(scales, g["input_scale"], GEOMETRY_PX, "scale")
    crops = geometry.crop_batch(image, centers, scales, (256, 256))
    dev = assert_close(crops, g["crops_rgb"], UINT8_LEVELS, "crops")
    print(f"[mpii] crops vs MMPose: max {dev:.0f} levels; centers {np.abs(centers - g['input_center']).max():.2g} px")


def test_pckh_equals_mmpose_mpii_pck_accuracy(golden_instances):
    g = json.loads((GOLDEN / "mpii_pckh.json").read_text())
    inst = golden_instances
    ours = mpii_pckh(
        np.array(g["predictions"], np.float32),
        np.stack([i.keypoints for i in inst]),
        np.stack([i.visible for i in inst]),
        np.array([i.head_size for i in inst]),
    )
    assert set(ours) == set(g["metrics"])
    dev = max(abs(ours[k] - v) for k, v in g["metrics"].items())
    print(f"[mpii] PCKh vs MMPose MpiiPCKAccuracy: max deviation {dev:.3g} (percent)")
    assert dev <= 1e-9
    assert 0 < g["metrics"]["PCK@0.1"] < g["metrics"]["PCK"] < 100  # not a degenerate answer


def _hand_made(offsets: np.ndarray, visible: np.ndarray, head: float = 30.0):
    """Two people: predictions at ``offsets`` x head size from the (1-based) joints, in random directions."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(50, 300, size=(len(offsets), 16, 2)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi, size=offsets.shape)
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    pred = gt - 1.0 + offsets[..., None] * head * direction  # 0-based image pixels
    return pred, gt, visible, np.full(len(offsets), head)


def test_pckh_known_answers():
    """All joints at 0.3 head sizes (right at 0.5, wrong at 0.1) but the head tops at 0.05 (right at both) and the
    first person's ankles at 0.7 (wrong at both); one wrist not annotated; pelvis and thorax wrong but left out. The
    second person's right knee sits at 0.49 head sizes along the diagonal, where the 1-based convention (+1 on the
    predictions) decides: without it, it is 0.537 away."""
    idx = {n: i for i, n in enumerate(MPII16.names)}
    off = np.full((2, 16), 0.3)
    off[:, idx["head_top"]] = 0.05
    off[0, [idx["left_ankle"], idx["right_ankle"]]] = 0.7
    off[:, list(EXCLUDED_JOINTS)] = 5.0
    vis = np.ones((2, 16))
    vis[1, idx["left_wrist"]] = 0
    pred, gt, vis, head = _hand_made(off, vis)
    diag = np.array([1.0, 1.0]) / np.sqrt(2.0)
    pred[1, idx["right_knee"]] = gt[1, idx["right_knee"]] - 1.0 - 0.49 * 30.0 * diag  # right (0.537 without the +1)
    stats = mpii_pckh(pred, gt, vis, head)
    counted = 2 * 14 - 1  # pelvis and thorax left out, one wrist not annotated
    wrong_05 = 2  # the first person's ankles
    right_01 = 2  # the head tops
    assert stats["PCK"] == pytest.approx(100 * (counted - wrong_05) / counted, abs=1e-9)
    assert stats["PCK@0.1"] == pytest.approx(100 * right_01 / counted, abs=1e-5)  # MMPose's float32 table
    assert stats["Head PCK"] == 100 and stats["Ankle PCK"] == 50 and stats["Knee PCK"] == 100
    assert stats["Wrist PCK"] == 100 and stats["Shoulder PCK"] == 100
    assert zoo_columns(stats) == {"Mean": stats["PCK"] / 100, "Mean@0.1": stats["PCK@0.1"] / 100}
    # without the +1 (predictions one pixel up-left) the 0.49 knee is wrong: one joint of 27 less
    shifted = mpii_pckh(pred - 1.0, gt, vis, head)
    assert shifted["Knee PCK"] == 75 and shifted["PCK"] == pytest.approx(100 * (counted - wrong_05 - 1) / counted)


def test_pck_accuracy_rules():
    pred = np.zeros((2, 3, 2))
    gt = np.zeros((2, 3, 2))
    gt[:, :, 0] = [[1.0, 4.0, 9.0], [1.0, 4.0, 9.0]]
    mask = np.array([[True, True, True], [True, False, False]])
    acc, avg, cnt = pck_accuracy(pred, gt, mask, 0.5, np.array([[10.0, 10.0], [0.0, 0.0]]))
    # instance 1 has a zero norm: left out; keypoints 0 and 1 of instance 0 are within 5 px
    assert acc.tolist() == [1.0, 1.0, 0.0] and avg == pytest.approx(2 / 3) and cnt == 3
    acc, _, cnt = pck_accuracy(pred, gt, np.zeros((2, 3), bool), 0.5, np.ones((2, 2)))
    assert acc.tolist() == [-1, -1, -1] and cnt == 0
    with pytest.raises(ValueError, match="must be"):
        pck_accuracy(pred, gt[:1], mask, 0.5, np.ones((2, 2)))


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_mpii(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MpiiDataError, match="not valid JSON"):
        read_mpii(tmp_path / "bad.json")
    (tmp_path / "dict.json").write_text("{}")
    with pytest.raises(MpiiDataError, match="JSON list"):
        read_mpii(tmp_path / "dict.json")
    (tmp_path / "short.json").write_text(
        json.dumps([{"image": "1.jpg", "center": [1, 2], "scale": 1, "joints": [[0, 0]]}])
    )
    with pytest.raises(MpiiDataError, match="annotation 0"):
        read_mpii(tmp_path / "short.json")
    anns = json.loads((GOLDEN / "mpii_val.json").read_text())
    (tmp_path / "two.json").write_text(json.dumps(anns[:2]))
    with pytest.raises(MpiiDataError, match="5 head boxes for the 2 annotations"):
        read_mpii(tmp_path / "two.json", GOLDEN / "mpii_gt_val.mat")
    (tmp_path / "heads.json").write_text("[]")
    with pytest.raises(MpiiDataError, match=r"\.mat"):
        read_headboxes(tmp_path / "heads.json")
    scipy_io.savemat(str(tmp_path / "wrong.mat"), {"headboxes_src": np.zeros((3, 2, 2))})
    with pytest.raises(MpiiDataError, match=r"\[2, 2, N\]"):
        read_headboxes(tmp_path / "wrong.mat")
    with pytest.raises(ValueError, match=r"\[N, 16, 2\]"):
        mpii_pckh(np.zeros((1, 17, 2)), np.zeros((1, 17, 2)), np.ones((1, 17)), np.ones(1))


# ------------------------------------------------------------------ pose-eval --dataset mpii, end to end

OFFSETS = (0.05, 0.3, 0.7)  # head sizes: right at 0.1 and 0.5 / right at 0.5 only / wrong at both


@pytest.mark.slow
def test_pose_eval_mpii_prints_the_seed_table_with_known_pckh(coco_tiny, tmp_path, capsys, cpu_settings):
    """An MPII-format file on coco-tiny's people whose joints are the model's own predictions moved by known multiples
    of the head size: ``pose-eval --dataset mpii`` must print MMPose's MPII columns with exactly the PCKh those
    offsets give. The test's predictions come from the torch model on crops cut with MMPose's MPII geometry written
    out here (1-based center, +15 px per scale unit, 200-px units, padding 1.25), not from the reader."""
    torch = pytest.importorskip("torch")
    from evaluation.job import main
    from export.pose import export_pose_model
    from models.pose_model import build_pose_model, scale_head_logits
    from models.zoo import get_config

    coco = json.loads((coco_tiny / "test_coco.json").read_text())
    people = [a for a in coco["annotations"] if a.get("num_keypoints", 0) >= 8][:6]
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    cfg = get_config("td-reg_res50_rle_mpii").replace(backbone_base_channels=8)
    torch.manual_seed(0)
    model = build_pose_model(cfg)
    boxes = np.array(
        [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in people],
        np.float32,
    )
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    s = side / 200.0  # MPII scale units
    from inference.imageio import decode_image

    images = {a["image_id"]: decode_image((coco_tiny / files[a["image_id"]]).read_bytes()) for a in people}
    crops = np.stack(
        [
            geometry.crop_image(images[a["image_id"]], c, np.array([1.25 * w * 200] * 2, np.float32), (256, 256))
            for a, c, w in zip(people, centers, s)
        ]
    )
    scale_head_logits(model, crops, 0.2)
    r = export_pose_model(model, tmp_path / "model", crops[:2], "2 coco-tiny crops")
    pred = model.predict_keypoints(crops, flip_test=True)[..., :2]
    sq = np.stack([np.full(2, 1.25 * w * 200, np.float32) for w in s])
    pred = geometry.keypoints_crop_to_image(pred, centers, sq, (256, 256))
    rng = np.random.default_rng(1)
    offsets = rng.choice(OFFSETS, size=(len(people), 16))
    visible = (rng.uniform(size=(len(people), 16)) > 0.15).astype(int)
    head = rng.uniform(30, 60, size=len(people))
    angle = rng.uniform(0, 2 * np.pi, size=(len(people), 16))
    gt = pred + 1.0 + offsets[..., None] * head[:, None, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    anns = [
        {
            "image": files[a["image_id"]],
            "center": [float(c[0] + 1), float(c[1] + 1 - 15 * w)],
            "scale": float(w),
            "joints": g.tolist(),
            "joints_vis": v.tolist(),
        }
        for a, c, w, g, v in zip(people, centers, s, gt, visible)
    ]
    (tmp_path / "mpii.json").write_text(json.dumps(anns))
    diag = head / 0.6  # head size = 0.6 x the head-box diagonal
    boxes_mat = np.zeros((2, 2, len(people)))
    boxes_mat[1, 0], boxes_mat[1, 1] = diag * 0.6, diag * 0.8
    scipy_io.savemat(str(tmp_path / "heads.mat"), {"headboxes_src": boxes_mat})

    out = tmp_path / "out"
    argv = [
        "--ann",
        str(tmp_path / "mpii.json"),
        "--headboxes",
        str(tmp_path / "heads.mat"),
        "--images",
        str(coco_tiny),
    ]
    argv += [
        "--pose",
        str(r.card_path),
        "--flip-test",
        "--out-dir",
        str(out),
        "--no-progress",
        "--intra-op-threads",
        "1",
    ]
    assert main(argv) == 0  # --dataset auto: the card says MPII
    printed = capsys.readouterr().out
    assert "| Arch | Input Size | Mean | Mean@0.1 |" in printed and f"| {cfg.name} | 256x256 |" in printed
    counted = visible.astype(bool) & ~np.isin(np.arange(16), EXCLUDED_JOINTS)[None]
    want = {0.5: (offsets < 0.5)[counted].mean(), 0.1: (offsets < 0.1)[counted].mean()}
    metrics = json.loads((out / "metrics.json").read_text())
    print(
        f"\n[mpii] pose-eval: Mean {metrics['stats']['Mean']:.4f} (known {want[0.5]:.4f}), "
        f"Mean@0.1 {metrics['stats']['Mean@0.1']:.4f} (known {want[0.1]:.4f})"
    )
    assert metrics["stats"]["Mean"] == pytest.approx(want[0.5], abs=1e-9)
    assert metrics["stats"]["Mean@0.1"] == pytest.approx(want[0.1], abs=1e-6)
    assert metrics["settings"]["flip_test"] == "service" and metrics["settings"]["persons"] == len(people)
    assert f"{want[0.5]:.3f}" in printed and (out / "pckh_table.md").read_text().startswith("| Arch |")
    records = json.loads((out / "results.mpii.json").read_text())
    assert [x["index"] for x in records] == list(range(len(people))) and len(records[0]["keypoints"]) == 48
    # MPII needs its head boxes
    assert main([*argv[:2], *argv[4:], "--dataset", "mpii"]) == 2
    assert "--headboxes" in capsys.readouterr().err
