"""Behaviour of the numpy codecs (parity with MMPose itself is in test_mmpose_parity.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models import codecs
from tests.conftest import REPO_ROOT


def test_codecs_module_is_torch_free():
    code = "import sys, models.codecs, models.zoo; bad = [m for m in sys.modules if m.split('.')[0] == 'torch']; assert not bad, bad; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _keypoints():
    kp = np.array(
        [[[10.0, 20.0], [128.0, 128.0], [255.0, 0.0], [256.0, 30.0], [-1.0, 50.0], [100.3, 61.7]]], np.float32
    )
    vis = np.array([[1, 1, 1, 1, 1, 0]], np.float32)
    return kp, vis


def test_integral_encode_labels_weights_and_normalised_heatmaps():
    codec = codecs.IntegralRegressionLabel((256, 256), (64, 64), sigma=2.0)
    kp, vis = _keypoints()
    enc = codec.encode(kp, vis)
    np.testing.assert_allclose(enc["keypoint_labels"], kp / 256.0)
    # inside [0, w-1] x [0, h-1] and visible -> 1; x = 256 or x = -1 or invisible -> 0
    assert enc["keypoint_weights"].tolist() == [[1, 1, 1, 0, 0, 0]]
    hm = enc["heatmaps"]
    assert hm.shape == (6, 64, 64) and hm.dtype == np.float32
    np.testing.assert_allclose(hm[:5].sum(axis=(1, 2)), 1.0, rtol=1e-5)  # partly-outside Gaussians too
    assert hm[5].sum() == 0  # invisible: empty map
    # the Gaussian peaks at int(kp / 4 + 0.5) in heatmap pixels
    peak = np.unravel_index(hm[1].argmax(), hm[1].shape)
    assert peak == (32, 32)


def test_integral_encode_without_normalisation_has_unit_peak():
    codec = codecs.IntegralRegressionLabel((256, 256), (64, 64), sigma=2.0, normalize=False)
    hm = codec.encode(np.array([[[128.0, 64.0]]], np.float32))["heatmaps"]
    assert hm.max() == pytest.approx(1.0)
    # 3-sigma cut: 13x13 support
    assert (hm[0] > 0).sum() == 13 * 13


def test_integral_round_trip_labels_to_pixels():
    codec = codecs.IntegralRegressionLabel((256, 192), (64, 48))
    kp = np.random.RandomState(0).uniform(0, 190, size=(1, 17, 2)).astype(np.float32)
    labels = codec.encode(kp)["keypoint_labels"]
    decoded, scores = codec.decode(labels)
    np.testing.assert_allclose(decoded, kp, atol=1e-4)
    assert decoded.dtype == np.float32 and (scores == 1).all() and scores.shape == (1, 17)


def test_msra_encode_decode_recovers_grid_keypoints():
    codec = codecs.MSRAHeatmap((192, 256), (48, 64), sigma=2.0)
    kp = np.array([[[40.0, 60.0], [100.0, 200.0], [8.0, 4.0]]], np.float32)  # multiples of 4: on the grid
    enc = codec.encode(kp)
    decoded, scores = codec.decode(enc["heatmaps"])
    # symmetric neighbours -> no refinement shift -> exact
    np.testing.assert_array_equal(decoded, kp)
    np.testing.assert_allclose(scores, 1.0)


def test_refine_moves_quarter_pixel_towards_higher_neighbour():
    hm = np.zeros((1, 8, 8), np.float32)
    hm[0, 4, 4] = 1.0
    hm[0, 4, 5] = 0.5  # right neighbour higher than left
    hm[0, 3, 4] = 0.25  # upper neighbour higher than lower
    kp, _ = codecs.get_heatmap_maximum(hm)
    refined = codecs.refine_keypoints(kp[None].copy(), hm)
    np.testing.assert_allclose(refined[0, 0], [4.25, 3.75])


def test_heatmap_maximum_marks_non_positive_maps():
    hm = -np.ones((2, 3, 4, 5), np.float32)
    hm[0, 1, 2, 3] = 2.0
    locs, vals = codecs.get_heatmap_maximum(hm)
    assert locs.shape == (2, 3, 2) and vals.shape == (2, 3)
    assert locs[0, 1].tolist() == [3.0, 2.0] and vals[0, 1] == 2.0
    assert (locs[1] == -1).all()


def test_decode_heatmaps_scales_the_argmax_to_crop_pixels():
    hm = np.zeros((2, 17, 64, 48), np.float32)
    hm[:, :, 10, 20] = 0.9
    kp, scores = codecs.decode_heatmaps(hm, (192, 256))
    assert kp.shape == (2, 17, 2) and scores.shape == (2, 17)
    np.testing.assert_allclose(kp[..., 0], 80.0)
    np.testing.assert_allclose(kp[..., 1], 40.0)
    np.testing.assert_allclose(scores, 0.9)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: codecs.IntegralRegressionLabel((256, 256), (64, 64)).encode(np.zeros((1, 17, 3))), r"\[N, K, 2\]"),
        (
            lambda: codecs.IntegralRegressionLabel((256, 256), (64, 64)).encode(np.zeros((1, 17, 2)), np.ones((1, 5))),
            "keypoints_visible",
        ),
        (lambda: codecs.MSRAHeatmap((192, 256), (48, 64)).encode(np.zeros((2, 17, 2))), "single instance"),
        (lambda: codecs.MSRAHeatmap((192, 256), (48, 64)).decode(np.zeros((17, 32, 32))), "codec expects"),
        (lambda: codecs.decode_integral(np.zeros((17, 2)), (256, 256)), r"\[N, K, 2\]"),
        (lambda: codecs.decode_heatmaps(np.zeros((17, 64, 48)), (192, 256)), r"\[B, K, H, W\]"),
        (lambda: codecs.get_heatmap_maximum(np.zeros((4, 4))), "heatmaps must be"),
        (lambda: codecs.IntegralRegressionLabel((256, 0), (64, 64)), "positive"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
