"""Temporal smoothing of tracked poses: the One-Euro filter, and one filter per track.

:class:`OneEuroFilter` is the "1€ filter" of Casiez, Roussel and Vogel, "1€ Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012: an exponential low-pass filter whose cutoff frequency
grows with the signal's (low-passed) speed, ``cutoff = min_cutoff + beta * |dx/dt|``, so that a still signal is
smoothed hard (little jitter) and a moving one little (little lag). MMPose 0.x smoothed tracked keypoints with it
(``mmpose/core/post_processing/one_euro_filter.py``, and ``Smoother`` with ``OneEuroFilter`` in
``mmpose/core/post_processing/temporal_filters``), as do MMDeploy's pose tracker
(``csrc/mmdeploy/codebase/mmpose/pose_tracker/smoothing_filter.cpp``) and rtmlib. Here the time step comes from the
frames' timestamps (seconds), so irregular frame spacing and dropped frames change the smoothing as they should,
and the parameters are in physical units: cutoffs in Hz, ``beta`` per (pixel / s) for a signal in pixels.

:class:`PoseSmoother` keeps one filter per track ID (:class:`inference.tracking.PoseTracker`) for the keypoints' x,
y and one for the box.

Defaults (:data:`DEFAULT_MIN_CUTOFF`, :data:`DEFAULT_BETA`, :data:`DEFAULT_D_CUTOFF`) were measured on keypoint-like
signals in pixels at 25 fps (``tests/inference/test_smoothing.py`` holds the bounds): Gaussian jitter of 1.5 px on a
still point, and constant pans of 50 to 600 px/s (a 300 px tall person walking crosses about 250 px/s).
Torch-free: numpy only.
"""

from __future__ import annotations

import numpy as np

#: Cutoff (Hz) of a still signal. With :data:`DEFAULT_BETA` and :data:`DEFAULT_D_CUTOFF`, measured at 25 fps: the
#: frame-to-frame jitter of a still keypoint (Gaussian, sigma 1.5 px) falls to 0.22 of the raw (0.17 to 0.33 for
#: sigma 0.5 to 5 px); a constant pan lags, in steady state, 1.5 / 1.9 / 2.3 / 2.5 / 2.8 px at 50 / 100 / 200 /
#: 300 / 600 px/s (0.74 / 0.48 / 0.29 / 0.21 / 0.12 frames), and at most 6.2 px in the first second of a 300 px/s
#: pan that starts from rest. The lag saturates near ``1 / (2 pi beta)`` px as the speed grows.
DEFAULT_MIN_CUTOFF: float = 1.0
#: Growth of the cutoff with speed (Hz per pixel/s).
DEFAULT_BETA: float = 0.05
#: Cutoff (Hz) of the speed estimate (the paper's advice: 1 Hz).
DEFAULT_D_CUTOFF: float = 1.0


def smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """The exponential smoothing factor of a first-order low-pass filter (Casiez et al. 2012, eq. 3-4).

    ``alpha = 1 / (1 + tau / dt)`` with ``tau = 1 / (2 pi cutoff)``.

    Args:
        cutoff: cutoff frequency in Hz (scalar or array), > 0.
        dt: time step in seconds, > 0.

    Returns:
        float64 alpha in (0, 1), the shape of ``cutoff``.
    """
    r = 2.0 * np.pi * np.asarray(cutoff, dtype=np.float64) * dt
    return r / (r + 1.0)


class OneEuroFilter:
    """The 1€ filter over an array of any shape, each element filtered on its own (Casiez, Roussel, Vogel, CHI 2012).

    Per element, at each call with value ``x`` at time ``t`` (``dt`` from the previous call):
    ``dx = (x - x_hat_prev) / dt``; ``dx_hat = lowpass(dx, smoothing_factor(d_cutoff, dt))``;
    ``cutoff = min_cutoff + beta * |dx_hat|``; ``x_hat = lowpass(x, smoothing_factor(cutoff, dt))``. The speed
    uses the previous filtered value, as the paper's reference implementation does.

    The first value of an element passes unchanged (its speed starts at 0). A NaN resets its element: the output
    is NaN there and the next finite value passes unchanged, as a first value (a keypoint that disappears does
    not poison the filter). The shape must stay the same from call to call.

    Args:
        min_cutoff: cutoff of a still signal, Hz (> 0): lower smooths more, and lags more.
        beta: growth of the cutoff with the speed, Hz per (unit / s) (>= 0; unit = pixels for keypoints): higher
            lags less when moving.
        d_cutoff: cutoff of the speed estimate, Hz (> 0).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(
        self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA, d_cutoff: float = DEFAULT_D_CUTOFF
    ) -> None:
        if not (min_cutoff > 0 and beta >= 0 and d_cutoff > 0):
            raise ValueError(f"min_cutoff > 0, beta >= 0, d_cutoff > 0 needed, got {min_cutoff}, {beta}, {d_cutoff}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next call is a first call."""
        self._x: np.ndarray | None = None  # last output (NaN: element not started)
        self._dx: np.ndarray | None = None  # last filtered speed
        self._t: float | None = None

    @property
    def last_time(self) -> float | None:
        """Time (s) of the last call, or None before the first."""
        return self._t

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter the next value.

        Args:
            x: float array, any shape (the same at every call), e.g. keypoint coordinates in pixels; NaN where a
                value is missing.
            t: its time in seconds (a frame's timestamp), greater than the previous call's.

        Returns:
            The filtered values: an array of ``x``'s shape, float64 (float32 for a float32 ``x``).

        Raises:
            ValueError: ``t`` not after the previous call's, not finite, or ``x`` of another shape.
        """
        xa = np.asarray(x)
        out_dtype = xa.dtype if xa.dtype in (np.float32, np.float64) else np.float64
        xv = xa.astype(np.float64)
        t = float(t)
        if not np.isfinite(t):
            raise ValueError(f"time must be finite, got {t}")
        if self._x is None:
            self._x, self._dx, self._t = xv.copy(), np.zeros_like(xv), t
            return xv.astype(out_dtype)
        if xv.shape != self._x.shape:
            raise ValueError(f"shape changed from {list(self._x.shape)} to {list(xv.shape)}; reset() first")
        dt = t - self._t
        if not dt > 0:
            raise ValueError(f"time must increase: {t} s after {self._t} s")
        started = ~np.isnan(self._x)
        with np.errstate(invalid="ignore"):
            dx = (xv - self._x) / dt
            dx_hat = self._dx + smoothing_factor(self.d_cutoff, dt) * (dx - self._dx)
            alpha = smoothing_factor(self.min_cutoff + self.beta * np.abs(dx_hat), dt)
            x_hat = self._x + alpha * (xv - self._x)
        # elements not started yet (first finite value) pass unchanged, with speed 0; NaN inputs give NaN
        x_hat = np.where(started, x_hat, xv)
        dx_hat = np.where(started & ~np.isnan(xv), dx_hat, 0.0)
        self._x, self._dx, self._t = x_hat, dx_hat, t
        return x_hat.astype(out_dtype)


class PoseSmoother:
    """One-Euro smoothing of tracked poses, one filter per track ID (keypoints' x, y; the box).

    A track's keypoint x, y are filtered by one :class:`OneEuroFilter` ([K, 2], pixels), its box by another, as
    centre and size (cx, cy, w, h: MMDeploy's ``SmoothingFilter`` filters the box centre and scale, so the box
    never turns inside out). Keypoint scores pass unchanged. A track ID seen for the first time starts fresh filters
    (its first pose passes unchanged); the state of an ID not seen for more than ``max_idle_s`` seconds is
    dropped (a track back after longer starts fresh), and :meth:`forget` drops IDs at once (a tracker's
    ``ended_ids``), so memory stays bounded by the live tracks.

    With ``kpt_score_thr`` set, a keypoint whose score is below it passes unsmoothed and restarts its filter (a
    NaN to :class:`OneEuroFilter`): a keypoint the model is unsure of does not drag the smoothed one. None (the
    default): every keypoint is smoothed.

    Args:
        min_cutoff, beta, d_cutoff: the filters' parameters (Hz, Hz per pixel/s, Hz).
        max_idle_s: seconds a track's state survives without being seen.
        kpt_score_thr: least keypoint score to be smoothed, or None.

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(
        self,
        min_cutoff: float = DEFAULT_MIN_CUTOFF,
        beta: float = DEFAULT_BETA,
        d_cutoff: float = DEFAULT_D_CUTOFF,
        max_idle_s: float = 2.0,
        kpt_score_thr: float | None = None,
    ) -> None:
        OneEuroFilter(min_cutoff, beta, d_cutoff)  # validates the parameters
        if not max_idle_s > 0:
            raise ValueError(f"max_idle_s must be > 0, got {max_idle_s}")
        self.params = (float(min_cutoff), float(beta), float(d_cutoff))
        self.max_idle_s = float(max_idle_s)
        self.kpt_score_thr = None if kpt_score_thr is None else float(kpt_score_thr)
        self._filters: dict[int, tuple[OneEuroFilter, OneEuroFilter]] = {}

    @property
    def track_ids(self) -> list[int]:
        """IDs with filter state, ascending."""
        return sorted(self._filters)

    def reset(self) -> None:
        """Drop every track's state."""
        self._filters.clear()

    def forget(self, track_ids) -> None:
        """Drop the state of these track IDs (unknown IDs are ignored)."""
        for tid in np.asarray(track_ids, dtype=np.int64).reshape(-1).tolist():
            self._filters.pop(tid, None)

    def __call__(
        self, track_ids: np.ndarray, bboxes: np.ndarray, keypoints: np.ndarray, t: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Smooth the poses of one frame.

        Args:
            track_ids: int [N] distinct track IDs.
            bboxes: float [N, 4] xyxy, original-image pixels.
            keypoints: float [N, K, 3] (x, y, score), same pixels.
            t: the frame's time in seconds, after the previous call's.

        Returns:
            (bboxes, keypoints): smoothed copies, float64 [N, 4] and [N, K, 3] (scores unchanged).

        Raises:
            ValueError: shapes that do not match, repeated IDs, non-finite values, or ``t`` not after the previous
                call's for a track.
        """
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        n = len(ids)
        b = np.array(bboxes, dtype=np.float64).reshape(n, 4) if n else np.zeros((0, 4))
        kp = np.array(keypoints, dtype=np.float64)
        if n == 0:
            return b, np.zeros((0, *kp.shape[1:]) if kp.ndim == 3 else (0, 0, 3))
        if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 3:
            raise ValueError(f"keypoints must have shape [{n}, K, 3], got {list(kp.shape)}")
        if len(np.unique(ids)) != n:
            raise ValueError(f"track IDs repeat in one frame: {ids.tolist()}")
        if not (np.isfinite(b).all() and np.isfinite(kp).all()):
            raise ValueError("boxes and keypoints must be finite")
        t = float(t)
        stale = [tid for tid in ids.tolist() if tid in self._filters and not t > self._filters[tid][0].last_time]
        if stale or not np.isfinite(t):
            raise ValueError(f"time {t} s is not after the previous call's for tracks {stale}")
        for tid in [i for i, (fb, _) in self._filters.items() if t - fb.last_time > self.max_idle_s]:
            del self._filters[tid]
        for i, tid in enumerate(ids.tolist()):
            if tid not in self._filters:
                self._filters[tid] = (OneEuroFilter(*self.params), OneEuroFilter(*self.params))
            f_box, f_kpt = self._filters[tid]
            cs = np.r_[(b[i, :2] + b[i, 2:]) / 2, b[i, 2:] - b[i, :2]]
            cs = f_box(cs, t)
            b[i] = np.r_[cs[:2] - cs[2:] / 2, cs[:2] + cs[2:] / 2]
            xy = kp[i, :, :2].copy()
            low = None if self.kpt_score_thr is None else kp[i, :, 2] < self.kpt_score_thr
            if low is not None:
                xy[low] = np.nan
            sm = f_kpt(xy, t)
            kp[i, :, :2] = sm if low is None else np.where(low[:, None], kp[i, :, :2], sm)
        return b, kp
