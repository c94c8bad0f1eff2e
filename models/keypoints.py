"""The COCO-17 person keypoint schema: names, flip pairs, skeleton, OKS sigmas.

This is the one place the schema lives; training, export, the service and evaluation import it.
Values follow the COCO keypoint annotation format (``person_keypoints_*.json`` categories) and
MMPose's ``configs/_base_/datasets/coco.py`` (flip pairs, 0-based skeleton, sigmas).
Torch-free: numpy only.
"""

from __future__ import annotations

import numpy as np

#: Keypoint names in COCO order (index = position in the [K, 3] keypoint array).
COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

NUM_KEYPOINTS: int = len(COCO17_NAMES)

#: Left/right pairs swapped by a horizontal flip (0-based indices).
COCO17_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
)

#: Upper-body keypoints (nose .. wrists) and lower-body keypoints (hips .. ankles): MMPose's ``type='upper'`` /
#: ``type='lower'`` in ``configs/_base_/datasets/coco.py``, used by the half-body augmentation.
COCO17_UPPER_BODY_IDS: tuple[int, ...] = tuple(range(0, 11))
COCO17_LOWER_BODY_IDS: tuple[int, ...] = tuple(range(11, 17))

#: Limbs as 0-based index pairs (the COCO annotation file's 1-based ``skeleton`` minus one).
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

#: Per-keypoint OKS sigmas (COCO keypoint evaluation, cocoeval.py ``kpt_oks_sigmas``).
COCO17_SIGMAS: np.ndarray = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
        dtype=np.float64,
    )
    / 10.0
)
COCO17_SIGMAS.setflags(write=False)


def flip_indices(num_keypoints: int = NUM_KEYPOINTS, flip_pairs=COCO17_FLIP_PAIRS) -> np.ndarray:
    """Permutation that reorders keypoints of a horizontally flipped image.

    Args:
        num_keypoints: K, the number of keypoints.
        flip_pairs: pairs (i, j) of 0-based indices swapped by a flip.

    Returns:
        int64 array [K]; ``kpts_flipped[flip_indices()]`` puts left joints back on the left.

    Raises:
        ValueError: if a pair index is outside [0, K).
    """
    idx = np.arange(num_keypoints, dtype=np.int64)
    for i, j in flip_pairs:
        if not (0 <= i < num_keypoints and 0 <= j < num_keypoints):
            raise ValueError(f"flip pair ({i}, {j}) outside 0..{num_keypoints - 1}")
        idx[i], idx[j] = j, i
    return idx


def schema_dict() -> dict:
    """The schema as plain JSON-serialisable data (used by model cards and ``GET /v1/models``)."""
    return {
        "name": "coco17",
        "keypoint_names": list(COCO17_NAMES),
        "flip_pairs": [list(p) for p in COCO17_FLIP_PAIRS],
        "skeleton": [list(p) for p in COCO17_SKELETON],
        "sigmas": COCO17_SIGMAS.tolist(),
    }
