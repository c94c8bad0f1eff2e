"""Person scores (models/scoring.py): MMPose's bbox x mean keypoint score above 0.2."""

import numpy as np
import pytest

from models.scoring import person_scores


def test_mean_of_keypoints_above_the_threshold_times_the_box_score():
    kpt = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.15, 0.2, 0.0]])
    np.testing.assert_allclose(person_scores([0.5, 1.0], kpt), [0.5 * (0.9 + 0.5) / 2, 0.0])  # 0.2 is not above
    np.testing.assert_allclose(person_scores([1.0], [[0.3, 0.3]], kpt_score_thr=0.3), [0.0])
    assert person_scores(np.zeros(0), np.zeros((0, 17))).shape == (0,)


def test_shape_errors_are_named():
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        person_scores([1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="2 entries for 1"):
        person_scores([1.0, 1.0], [[0.5]])
