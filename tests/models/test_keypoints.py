import numpy as np
import pytest

from models.keypoints import (
    COCO17,
    COCO17_FLIP_PAIRS,
    COCO17_NAMES,
    COCO17_SIGMAS,
    COCO17_SKELETON,
    flip_indices,
)


def test_schema_sizes_and_ranges():
    assert len(COCO17_NAMES) == 17 and len(set(COCO17_NAMES)) == 17
    assert COCO17_SIGMAS.shape == (17,) and np.all(COCO17_SIGMAS > 0)
    for a, b in COCO17_SKELETON:
        assert 0 <= a < 17 and 0 <= b < 17 and a != b


def test_flip_pairs_swap_left_and_right_names():
    for i, j in COCO17_FLIP_PAIRS:
        assert COCO17_NAMES[i].startswith("left_") and COCO17_NAMES[j] == "right_" + COCO17_NAMES[i][5:]


def test_flip_indices_is_an_involution():
    idx = flip_indices()
    assert sorted(idx.tolist()) == list(range(17))
    assert np.array_equal(idx[idx], np.arange(17))
    assert idx[0] == 0 and idx[5] == 6


def test_schema_skeleton_matches_coco_annotation_skeleton(coco_tiny):
    import json

    cat = json.loads((coco_tiny / "test_coco.json").read_text())["categories"][0]
    assert cat["keypoints"] == list(COCO17_NAMES)
    assert sorted(tuple(sorted((a - 1, b - 1))) for a, b in cat["skeleton"]) == sorted(
        tuple(sorted(p)) for p in COCO17.to_dict()["skeleton"]
    )


def test_oks_matrix_equals_mmpose_oks_iou_and_counts_confident_keypoints():
    from evaluation.oks import oks_iou
    from models.keypoints import oks_matrix

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 300, (3, 17, 2)), rng.uniform(0, 1, (3, 17, 1))], axis=2)
    b = np.concatenate([a[[1, 0, 2, 0]][..., :2] + rng.normal(0, 8, (4, 17, 2)), rng.uniform(0, 1, (4, 17, 1))], 2)
    area_a, area_b = rng.uniform(1e4, 5e4, 3), rng.uniform(1e4, 5e4, 4)
    oks, n = oks_matrix(a, b, area_a, area_b)
    assert oks.shape == (3, 4) and (n == 17).all()
    for i in range(3):
        np.testing.assert_allclose(oks[i], oks_iou(a[i], b, area_a[i], area_b), rtol=1e-6)
    oks_thr, n_thr = oks_matrix(a, b, area_a, area_b, COCO17_SIGMAS, score_thr=0.5)
    both = (a[:, None, :, 2] >= 0.5) & (b[None, :, :, 2] >= 0.5)
    np.testing.assert_array_equal(n_thr, both.sum(-1))
    i, j = 1, 2
    d2 = ((a[i, :, :2] - b[j, :, :2]) ** 2).sum(-1)
    sim = np.exp(-d2 / (2 * COCO17_SIGMAS) ** 2 / ((area_a[i] + area_b[j]) / 2) / 2)
    assert oks_thr[i, j] == pytest.approx(sim[both[i, j]].mean())
    none = a.copy()
    none[..., 2] = 0
    assert (oks_matrix(none, b, area_a, area_b, score_thr=0.5)[0] == 0).all()
    assert oks_matrix(np.zeros((0, 17, 3)), b, [], area_b)[0].shape == (0, 4)
    with pytest.raises(ValueError):
        oks_matrix(a[:, :16], b, area_a, area_b)
