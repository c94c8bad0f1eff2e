"""Training data: augmentation geometry (keypoints stay on their pixels, a flip swaps left and right), the COCO
top-down dataset on the real coco-tiny files, and bad data (missing / corrupt image, empty or broken annotation
file, a person without labelled keypoints) giving a clear error before training or being skipped as MMPose does."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from models.keypoints import COCO17_NAMES, flip_indices  # noqa: E402
from models.zoo import get_config  # noqa: E402
from training.data import CocoTopDown, DataError, EpochIndices, read_image_rgb  # noqa: E402
from training.transforms import AugmentConfig, AugmentDraws, apply_topdown, sample_draws  # noqa: E402

# 17 distinct marker colours (RGB), far apart so bilinear blending at a marker's centre cannot mimic another one
COLOURS = np.array([[(i * 97) % 256, (i * 53 + 80) % 256, (i * 181 + 30) % 256] for i in range(17)], dtype=np.uint8)
KEYPOINTS = np.array(
    [[160, 50], [168, 42], [152, 42], [178, 48], [142, 48], [190, 84], [130, 84], [204, 120], [116, 120],
     [212, 156], [108, 156], [178, 156], [142, 156], [182, 196], [138, 196], [184, 232], [136, 232]],
    dtype=np.float32,
)  # fmt: skip
BBOX = np.array([100.0, 30.0, 220.0, 245.0], dtype=np.float32)


def marker_image() -> np.ndarray:
    """uint8 RGB 320x280 grey image with a 9-pixel-radius disc of colour k at keypoint k."""
    img = np.full((280, 320, 3), 128, np.uint8)
    for (x, y), c in zip(KEYPOINTS.astype(int), COLOURS):
        cv2.circle(img, (int(x), int(y)), 9, tuple(int(v) for v in c), -1)
    return img


def test_augmented_keypoints_stay_on_their_pixels_and_flip_swaps_left_right():
    image = marker_image()
    visible = np.ones(17, np.float32)
    fidx = flip_indices()
    checked = flipped = rotated = halves = 0
    for seed in range(40):
        draws = sample_draws(np.random.RandomState(seed), visible, AugmentConfig())
        s = apply_topdown(image, BBOX, KEYPOINTS, visible, draws, (128, 128))
        flipped += draws.flip
        rotated += draws.rotation != 0
        halves += draws.half_body is not None
        for k in range(17):
            x, y = np.round(s.keypoints[k]).astype(int)
            if not (0 <= x < 128 and 0 <= y < 128):
                continue
            source = fidx[k] if draws.flip else k  # the image joint whose marker lies under keypoint k
            got = s.crop[y, x].astype(int)
            assert np.abs(got - COLOURS[source]).max() <= 12, (seed, k, got, COLOURS[source])
            checked += 1
            if draws.flip and source != k:  # a mirrored person's left joint is the image's right joint
                a, b = COCO17_NAMES[k], COCO17_NAMES[source]
                assert {a.split("_")[0], b.split("_")[0]} == {"left", "right"} and a.split("_")[1] == b.split("_")[1]
    assert flipped and rotated and halves and checked > 300


def test_flip_only_mirrors_crop_and_reorders_joints():
    image = marker_image()
    vis = np.ones(17, np.float32)
    vis[3] = 0  # left ear unlabelled
    plain = apply_topdown(image, BBOX, KEYPOINTS, vis, AugmentDraws(), (128, 128))
    mirrored = apply_topdown(image, BBOX, KEYPOINTS, vis, AugmentDraws(flip=True), (128, 128))
    fidx = flip_indices()
    # the box center is mirrored too (x -> W - 1 - x): crop column i shows what plain column 128 - i shows
    assert np.abs(mirrored.crop[:, 1:].astype(int) - plain.crop[:, 127:0:-1].astype(int)).max() <= 1
    np.testing.assert_allclose(mirrored.keypoints[:, 0], 128 - plain.keypoints[fidx, 0], atol=1e-3)
    np.testing.assert_allclose(mirrored.keypoints[:, 1], plain.keypoints[fidx, 1], atol=1e-3)
    assert mirrored.keypoints_visible[4] == 0 and mirrored.keypoints_visible[3] == 1  # right ear slot now unlabelled


def test_sample_draws_disabled_and_config_validation():
    d = sample_draws(np.random.RandomState(0), np.ones(17), AugmentConfig(enabled=False))
    assert (d.flip, d.half_body, d.scale, d.rotation, d.offset.tolist()) == (False, None, 1.0, 0.0, [0.0, 0.0])
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="scale_factor"):
        AugmentConfig(scale_factor=(1.5, 0.5))


# ------------------------------------------------------------------------------------------------ dataset


@pytest.fixture(scope="module")
def quick_model():
    return get_config("ipr_res50_debias").replace(name="t", backbone_depth=18, input_size=(128, 128))


def test_coco_tiny_train_and_val_items(coco_tiny, quick_model):
    ann = coco_tiny / "test_coco.json"
    ds = CocoTopDown(ann, coco_tiny, quick_model, train=True, augment=AugmentConfig(), seed=3)
    assert len(ds) == 12  # 14 people, 12 with labelled keypoints (assets README)
    item = ds[(2, 5)]
    assert item["inputs"].shape == (128, 128, 3) and item["inputs"].dtype == np.uint8
    assert item["keypoint_labels"].shape == (17, 2) and item["keypoint_weights"].shape == (17,)
    assert item["heatmaps"].shape == (17, 32, 32)
    sums = item["heatmaps"].sum(axis=(1, 2))
    np.testing.assert_allclose(sums[item["keypoint_weights"] > 0], 1.0, rtol=1e-5)
    # the same (epoch, index) gives the same sample; another epoch another one
    assert np.array_equal(ds[(2, 5)]["inputs"], item["inputs"])
    assert not np.array_equal(ds[(3, 5)]["inputs"], item["inputs"])
    val = CocoTopDown(ann, coco_tiny, quick_model, train=False)
    assert len(val) == 12 and set(val[0]) == {"inputs", "center", "scale", "image_id", "bbox_score", "index"}
    det = CocoTopDown(ann, coco_tiny, quick_model, train=False, det_file=coco_tiny / "test_coco_det_AP_H_56.json")
    assert len(det) == 118 and 0 < det[0]["bbox_score"] <= 1


def test_epoch_indices_skip_resumes_mid_epoch():
    from torch.utils.data import DistributedSampler

    s = EpochIndices(DistributedSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=1))
    s.set_epoch(4)
    full = list(s)
    s.set_epoch(4, skip=3)
    assert list(s) == full[3:] and len(s) == 7 and all(e == 4 for e, _ in full)


def _copy_tiny(coco_tiny, tmp_path, edit=None):
    d = tmp_path / "data"
    shutil.copytree(coco_tiny, d)
    ann = json.loads((d / "test_coco.json").read_text())
    if edit is not None:
        edit(ann, d)
    (d / "test_coco.json").write_text(json.dumps(ann))
    return d


def test_missing_image_is_named_before_training(coco_tiny, tmp_path, quick_model):
    d = _copy_tiny(coco_tiny, tmp_path, lambda ann, d: (d / "000000000785.jpg").unlink())
    with pytest.raises(DataError, match="000000000785.jpg"):
        CocoTopDown(d / "test_coco.json", d, quick_model)


def test_corrupt_image_is_named(coco_tiny, tmp_path, quick_model):
    d = _copy_tiny(coco_tiny, tmp_path, lambda ann, d: (d / "000000000785.jpg").write_bytes(b"\xff\xd8 not a jpeg"))
    ds = CocoTopDown(d / "test_coco.json", d, quick_model)
    bad = [i for i, inst in enumerate(ds.instances) if inst.file.name == "000000000785.jpg"]
    with pytest.raises(DataError, match="cannot decode image .*000000000785.jpg"):
        ds[bad[0]]
    with pytest.raises(DataError, match="image not found"):
        read_image_rgb(d / "nope.jpg")


def test_empty_and_broken_annotation_files(tmp_path, quick_model):
    (tmp_path / "empty.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(DataError, match="no person instances with labelled keypoints"):
        CocoTopDown(tmp_path / "empty.json", tmp_path, quick_model)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        CocoTopDown(tmp_path / "broken.json", tmp_path, quick_model)
    with pytest.raises(DataError, match="not found"):
        CocoTopDown(tmp_path / "missing.json", tmp_path, quick_model)


def test_person_without_labelled_keypoints_is_skipped(coco_tiny, tmp_path, quick_model):
    def blank_first(ann, d):
        first = next(a for a in ann["annotations"] if a.get("num_keypoints", 0) > 0)
        first["keypoints"] = [0] * 51
        first["num_keypoints"] = 0

    d = _copy_tiny(coco_tiny, tmp_path, blank_first)
    assert len(CocoTopDown(d / "test_coco.json", d, quick_model)) == 11
