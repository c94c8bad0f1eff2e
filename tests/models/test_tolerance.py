"""The tolerance policy (models/tolerance.py): the export rule accepts fp32 noise and rejects real errors."""

import numpy as np
import pytest

from models.tolerance import assert_close, judge_export, max_abs_diff


def test_within_the_pixel_bound_passes_without_a_float64_run():
    ref = np.zeros((2, 17, 3))

    def never():
        raise AssertionError("the float64 run is only needed above the bound")

    v = judge_export(ref + 0.04, ref, never)
    assert v.passed and v.rule == "within tolerance" and v.max_abs_diff == pytest.approx(0.04)


def test_above_the_bound_only_the_fp32_envelope_passes():
    ref = np.zeros((1, 17, 3))
    # torch fp32 is 0.05 px from float64, the export 0.06 px from torch and 0.01 px from float64: noise
    v = judge_export(ref + 0.06, ref, ref + 0.05)
    assert v.passed and v.rule == "within fp32 noise"
    assert (v.exported_vs_fp64, v.torch_fp32_vs_fp64) == pytest.approx((0.01, 0.05))
    # a 0.5 px shift while torch fp32 is 0.001 px from float64: an export error
    v = judge_export(ref + 0.5, ref, ref + 0.001)
    assert not v.passed and v.rule == "rejected"
    assert "0.5" in v.describe() and "torch fp32 0.001" in v.describe()
    # a wrong flip (x mirrored) is pixels off
    kp = np.random.default_rng(0).uniform(0, 255, (1, 17, 3))
    flipped = kp.copy()
    flipped[..., 0] = 255 - flipped[..., 0]
    assert not judge_export(flipped, kp, kp).passed
    # no float64 reference above the bound: rejected
    assert not judge_export(ref + 1, ref).passed


def test_non_finite_and_mismatched_shapes_are_errors():
    ref = np.zeros((1, 17, 3))
    with pytest.raises(ValueError, match="non-finite"):
        judge_export(ref + np.nan, ref)
    with pytest.raises(ValueError, match="shapes differ"):
        max_abs_diff(ref, ref[:, :5])


def test_assert_close_names_what_failed():
    assert assert_close([1.0, 2.0], [1.0, 2.01], 0.02) == pytest.approx(0.01)
    with pytest.raises(AssertionError, match=r"keypoints: max deviation 0\.1 > 0\.05"):
        assert_close([0.0], [0.1], 0.05, "keypoints")


def test_live_ap_tolerance_is_threshold_steps_of_one_person():
    from models.tolerance import LIVE_AP_STEPS, live_ap_tolerance

    assert live_ap_tolerance(12) == pytest.approx(LIVE_AP_STEPS / 120)
    assert live_ap_tolerance(68) < live_ap_tolerance(12)
    with pytest.raises(ValueError, match="persons"):
        live_ap_tolerance(0)
