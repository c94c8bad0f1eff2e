import numpy as np

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
