"""One-Euro smoothing: the filter's properties (first value, constants, irregular time steps, NaN, vectorised), the
measured jitter / lag of the defaults, and the per-track PoseSmoother."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inference.smoothing import (
    DEFAULT_BETA,
    DEFAULT_D_CUTOFF,
    DEFAULT_MIN_CUTOFF,
    OneEuroFilter,
    PoseSmoother,
    smoothing_factor,
)

FPS = 25.0


def _run(f: OneEuroFilter, signal: np.ndarray, fps: float = FPS) -> np.ndarray:
    return np.stack([f(x, i / fps) for i, x in enumerate(signal)])


# ------------------------------------------------------------------------------------------------ OneEuroFilter


def test_first_value_passes_and_a_constant_stays_constant():
    f = OneEuroFilter()
    x = np.array([[10.0, -3.5], [1e4, 0.0]])
    np.testing.assert_array_equal(f(x, 0.0), x)
    for i in range(1, 20):
        np.testing.assert_array_equal(f(x, i / FPS), x)


def test_one_step_follows_the_paper():
    """Casiez et al. 2012: speed from the previous filtered value, low-passed at d_cutoff; cutoff from its size."""
    f = OneEuroFilter(min_cutoff=1.0, beta=0.1, d_cutoff=2.0)
    f(np.array([0.0]), 1.0)
    dt = 0.04
    out = f(np.array([10.0]), 1.0 + dt)
    dx_hat = smoothing_factor(2.0, dt) * (10.0 / dt)
    alpha = 1.0 / (1.0 + 1.0 / (2 * np.pi * (1.0 + 0.1 * dx_hat) * dt))  # 1 / (1 + tau / T_e)
    assert out[0] == pytest.approx(alpha * 10.0)


def test_time_step_comes_from_the_timestamps():
    """A dropped frame (dt twice as long) moves the output further towards the input, as the real dt says."""
    steady, dropped = OneEuroFilter(), OneEuroFilter()
    for f in (steady, dropped):
        f(np.array([0.0]), 0.0)
    a = steady(np.array([20.0]), 0.04)[0]
    b = dropped(np.array([20.0]), 0.08)[0]
    assert 0 < a < b < 20
    # only differences of time matter; an irregular sequence is filtered the same at any time origin
    times = np.cumsum([0.0, 0.04, 0.033, 0.09, 0.04, 0.2, 0.01])
    xs = np.random.default_rng(0).normal(0, 5, (len(times), 3))
    f1, f2 = OneEuroFilter(), OneEuroFilter()
    for t, x in zip(times, xs):
        np.testing.assert_allclose(f1(x, t), f2(x, t + 1000.0), rtol=1e-9, atol=1e-9)


def test_time_must_increase_and_the_shape_stay():
    f = OneEuroFilter()
    f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="increase"):
        f(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(4), 2.0)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)
    f.reset()
    np.testing.assert_array_equal(f(np.ones(4), 0.5), np.ones(4))  # a first call again


def test_nan_resets_its_element_only():
    rng = np.random.default_rng(1)
    xs = rng.normal(100, 3, (12, 4))
    ref = _run(OneEuroFilter(), xs)
    holey = xs.copy()
    holey[5, 1] = np.nan
    out = _run(OneEuroFilter(), holey)
    np.testing.assert_allclose(out[:, [0, 2, 3]], ref[:, [0, 2, 3]])  # the other elements are unaffected
    np.testing.assert_allclose(out[:5, 1], ref[:5, 1])
    assert np.isnan(out[5, 1])
    assert out[6, 1] == xs[6, 1]  # back as a first value
    restarted = _run(OneEuroFilter(), xs[6:, 1:2])[:, 0]
    np.testing.assert_allclose(out[6:, 1], restarted)  # and filtered from there like a fresh filter


def test_vectorised_equals_elementwise():
    rng = np.random.default_rng(2)
    xs = np.cumsum(rng.normal(0, 4, (30, 2, 3)), axis=0)
    together = _run(OneEuroFilter(0.7, 0.08, 1.5), xs)
    for i in range(2):
        for j in range(3):
            alone = _run(OneEuroFilter(0.7, 0.08, 1.5), xs[:, i, j])
            np.testing.assert_allclose(together[:, i, j], alone, rtol=1e-12)


def test_dtype_float32_is_kept():
    f = OneEuroFilter()
    assert f(np.zeros(2, np.float32), 0.0).dtype == np.float32
    assert f(np.ones(2, np.float32), 0.04).dtype == np.float32
    assert OneEuroFilter()(np.zeros(2, np.int64), 0.0).dtype == np.float64


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(2, 15), elements=st.floats(-1e4, 1e4)),
    st.lists(st.floats(1e-3, 1.0), min_size=14, max_size=14),
)
def test_each_output_lies_between_the_previous_output_and_the_input(xs, steps):
    """A low-pass step is a convex combination: no overshoot, whatever the values and time steps."""
    f = OneEuroFilter()
    prev = f(np.array([xs[0]]), 0.0)[0]
    t = 0.0
    for x, dt in zip(xs[1:], steps):
        t += dt
        out = f(np.array([x]), t)[0]
        assert min(prev, x) - 1e-9 <= out <= max(prev, x) + 1e-9
        prev = out


# ----------------------------------------------------------------------- the defaults, measured (see the module)


def test_defaults_match_the_settings():
    from core.settings import Settings

    s = Settings()
    assert (s.smooth_min_cutoff, s.smooth_beta, s.smooth_d_cutoff) == (
        DEFAULT_MIN_CUTOFF,
        DEFAULT_BETA,
        DEFAULT_D_CUTOFF,
    )


def test_defaults_cut_the_jitter_of_a_still_keypoint_by_more_than_half():
    """Gaussian jitter, sigma 1.5 px, 25 fps, 400 independent coordinates for 20 s: measured ratio 0.22."""
    raw = np.random.default_rng(3).normal(0.0, 1.5, (500, 400)) + 200.0
    smooth = _run(OneEuroFilter(), raw)
    ratio = np.std(np.diff(smooth[50:], axis=0)) / np.std(np.diff(raw[50:], axis=0))
    assert ratio < 0.5
    assert 0.15 < ratio < 0.3  # the measured figure, so a change of the defaults is seen


@pytest.mark.parametrize(("speed", "measured"), [(50, 1.49), (100, 1.90), (200, 2.30), (300, 2.50), (600, 2.77)])
def test_defaults_lag_a_constant_pan_by_less_than_three_pixels(speed, measured):
    """Steady-state lag (px) of a pan at ``speed`` px/s, 25 fps: measured 1.5 to 2.8 px (0.7 to 0.1 frames)."""
    t = np.arange(200) / FPS
    truth = speed * t
    smooth = _run(OneEuroFilter(), truth[:, None])[:, 0]
    lag = truth[-50:] - smooth[-50:]
    assert np.ptp(lag) < 0.01 and lag[-1] == pytest.approx(measured, abs=0.02)
    assert 0 < lag[-1] < 3.0 and lag[-1] / (speed / FPS) < 0.8  # under a frame's motion


# ------------------------------------------------------------------------------------------------ PoseSmoother


def _pose(x: float, k: int = 5, score: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    box = np.array([x, 10.0, x + 50.0, 110.0])
    kp = np.stack([x + np.arange(k) * 10.0, np.linspace(20, 100, k), np.full(k, score)], axis=1)
    return box, kp


def test_a_new_track_starts_fresh_and_scores_pass_unchanged():
    sm = PoseSmoother()
    b, k = _pose(0.0)
    ob, ok = sm([7], b[None], k[None], 0.0)
    np.testing.assert_allclose(ob[0], b)
    np.testing.assert_array_equal(ok[0], k)
    b2, k2 = _pose(10.0, score=0.5)
    b3, k3 = _pose(500.0)
    ob, ok = sm([7, 8], np.stack([b2, b3]), np.stack([k2, k3]), 0.04)
    assert 0 < ok[0, 0, 0] < 10 and ok[0, 0, 2] == 0.5  # track 7 smoothed, its scores untouched
    np.testing.assert_array_equal(ok[1], k3)  # track 8 is new: unchanged
    np.testing.assert_allclose(ob[1], b3)
    assert sm.track_ids == [7, 8]


def test_tracks_are_smoothed_independently_of_each_other():
    rng = np.random.default_rng(4)
    alone, together = PoseSmoother(), PoseSmoother()
    for i in range(10):
        b, k = _pose(3.0 * i)
        b, k = b + rng.normal(0, 1, 4), k + np.c_[rng.normal(0, 1, (5, 2)), np.zeros(5)]
        other_b, other_k = _pose(300.0 + rng.normal(0, 5))
        a = alone([1], b[None], k[None], i / FPS)
        ids = [2, 1] if i % 2 else [1, 2]
        bb, kk = (
            (np.stack([other_b, b]), np.stack([other_k, k]))
            if i % 2
            else (np.stack([b, other_b]), np.stack([k, other_k]))
        )
        t = together(ids, bb, kk, i / FPS)
        j = ids.index(1)
        np.testing.assert_allclose(t[0][j], a[0][0])
        np.testing.assert_allclose(t[1][j], a[1][0])


def test_the_box_is_smoothed_as_centre_and_size_and_stays_a_box():
    sm = PoseSmoother()
    _, k = _pose(0.0)
    boxes = [[0, 0, 100, 200], [90, 0, 92, 2], [0, 150, 300, 152], [10, 10, 11, 400]]
    for i, box in enumerate(boxes):
        ob, _ = sm([1], np.array([box], float), k[None], i / FPS)
        assert ob[0, 2] > ob[0, 0] and ob[0, 3] > ob[0, 1]


def test_forget_reset_and_idle_tracks_drop_state():
    sm = PoseSmoother(max_idle_s=1.0)
    b, k = _pose(0.0)
    sm([1, 2, 3], np.stack([b] * 3), np.stack([k] * 3), 0.0)
    sm.forget(np.array([2, 99]))
    assert sm.track_ids == [1, 3]
    sm([1], b[None], k[None], 0.5)
    b2, k2 = _pose(40.0)
    sm([1], b2[None], k2[None], 1.2)  # track 3 unseen for 1.2 s > 1 s: dropped
    assert sm.track_ids == [1]
    out = sm([3], b2[None], k2[None], 1.3)  # back: starts fresh
    np.testing.assert_array_equal(out[1][0], k2)
    sm.reset()
    assert sm.track_ids == []


def test_low_score_keypoints_pass_unsmoothed_with_a_threshold():
    sm = PoseSmoother(kpt_score_thr=0.3)
    b, k = _pose(0.0)
    sm([1], b[None], k[None], 0.0)
    b2, k2 = _pose(20.0)
    k2[1, 2] = 0.1
    _, out = sm([1], b2[None], k2[None], 0.04)
    np.testing.assert_array_equal(out[0, 1], k2[1])  # unsure: raw
    assert 0 < out[0, 0, 0] < 20  # sure: smoothed
    b3, k3 = _pose(30.0)
    _, out = sm([1], b3[None], k3[None], 0.08)
    assert out[0, 1, 0] == k3[1, 0]  # its filter restarted: the first value passes


def test_pose_smoother_checks_its_inputs():
    sm = PoseSmoother()
    b, k = _pose(0.0)
    with pytest.raises(ValueError, match="repeat"):
        sm([1, 1], np.stack([b, b]), np.stack([k, k]), 0.0)
    with pytest.raises(ValueError, match="keypoints"):
        sm([1], b[None], k, 0.0)
    sm([1], b[None], k[None], 0.0)
    with pytest.raises(ValueError, match="after"):
        sm([1], b[None], k[None], 0.0)
    ob, ok = sm([], np.zeros((0, 4)), np.zeros((0, 5, 3)), 1.0)
    assert ob.shape == (0, 4) and ok.shape == (0, 5, 3)
