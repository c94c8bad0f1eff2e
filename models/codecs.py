"""Keypoint codecs (numpy only, torch-free; the service imports this module).

* :class:`RegressionLabel` — the coordinate codec of the DeepPose and RLE configs: encode = normalised coordinates +
  keypoint weights; decode = normalised coordinates -> crop pixels. Follows ``mmpose/codecs/regression_label.py``.
  (RLE's score, ``mean(1 - sigma)``, is computed in the network's graph: ``models.heads.rle.RLEHead``.)
* :class:`IntegralRegressionLabel` — the integral-regression codec of the IPR / DSNT / Debias
  configs: encode = normalised coordinates + keypoint weights + an MSRA Gaussian heatmap normalised to
  sum 1; decode = normalised coordinates -> crop pixels with all scores 1.
  Follows ``mmpose/codecs/integral_regression_label.py`` and ``mmpose/codecs/regression_label.py``.
* :class:`MSRAHeatmap` — the SimpleBaseline heatmap codec: Gaussian targets (``sigma`` in heatmap
  pixels, peak 1) and the argmax decode with MMPose's quarter-pixel refinement.
  Follows ``mmpose/codecs/msra_heatmap.py``, ``mmpose/codecs/utils/gaussian_heatmap.py``
  (``generate_gaussian_heatmaps``), ``mmpose/codecs/utils/post_processing.py``
  (``get_heatmap_maximum``) and ``mmpose/codecs/utils/refinement.py`` (``refine_keypoints``).
* :class:`SimCCLabel` — the coordinate-classification codec of SimCC / RTMPose (decode only: the service's and the
  golden tests' side): per-axis argmax of the 1-D x and y vectors divided by the split ratio; score = the smaller of
  the two maxima. Follows ``mmpose/codecs/simcc_label.py`` (``use_dark=False``, ``decode_visibility=False``: RTMPose's
  configs) and ``mmpose/codecs/utils/post_processing.py`` (``get_simcc_maximum``).
* DARK (``MSRAHeatmap(unbiased=True)``) and UDP (``UDPHeatmap``) live in :mod:`models.codecs_dark_udp` (this
  module's size limit), with the dispatch on a card's ``output.codec``.
* Flip test: :func:`flip_back_heatmaps`, :func:`flip_back_keypoints` and :func:`flip_back_simcc` map the output of a
  horizontally flipped crop back (MMPose ``mmpose/models/utils/tta.py``). This is the one implementation: the service
  (``models.card.ModelCard.decode``) and the torch model (``TopdownPoseModel.predict_keypoints``) both
  call it; exported graphs contain the network only.

Conventions: ``input_size`` / ``heatmap_size`` are (w, h); keypoints are (x, y) in crop pixels
(MMPose: a pixel's index is its coordinate); normalised coordinates are crop pixels divided by
(w, h) of the input.
"""

from __future__ import annotations

import numpy as np


def _as_size(size, what: str) -> tuple[int, int]:
    try:
        w, h = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (w, h), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return w, h


def _check_keypoints(keypoints: np.ndarray, keypoints_visible: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    kp = np.asarray(keypoints)
    if kp.ndim != 3 or kp.shape[-1] != 2:
        raise ValueError(f"keypoints must be [N, K, 2] (x, y), got shape {list(kp.shape)}")
    if keypoints_visible is None:
        vis = np.ones(kp.shape[:2], dtype=np.float32)
    else:
        vis = np.asarray(keypoints_visible)
        if vis.shape != kp.shape[:2]:
            raise ValueError(f"keypoints_visible must be [N, K] = {list(kp.shape[:2])}, got {list(vis.shape)}")
    return kp, vis


def generate_gaussian_heatmaps(
    heatmap_size: tuple[int, int], keypoints: np.ndarray, keypoints_visible: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Gaussian heatmaps (peak 1) at the integer-rounded keypoints (MMPose MSRA target).

    The Gaussian is cut at 3 sigma and centred on ``int(x + 0.5), int(y + 0.5)``; where instances
    overlap, the maximum is kept. A keypoint whose 3-sigma window lies fully outside the map gets
    weight 0; invisible keypoints (visibility < 0.5) are skipped.

    Args:
        heatmap_size: (W, H).
        keypoints: float [N, K, 2] in heatmap pixels.
        keypoints_visible: float [N, K].
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        heatmaps float32 [K, H, W] and keypoint_weights [N, K] (a copy of the visibility, zeroed
        where the Gaussian is out of bounds).
    """
    n_inst, k_num, _ = keypoints.shape
    w, h = heatmap_size
    heatmaps = np.zeros((k_num, h, w), dtype=np.float32)
    keypoint_weights = keypoints_visible.copy()
    radius = sigma * 3
    gaussian_size = 2 * radius + 1
    x = np.arange(0, gaussian_size, 1, dtype=np.float32)
    y = x[:, None]
    x0 = y0 = gaussian_size // 2
    gaussian = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    for n in range(n_inst):
        for k in range(k_num):
            if keypoints_visible[n, k] < 0.5:
                continue
            mu = (keypoints[n, k] + 0.5).astype(np.int64)
            left, top = (mu - radius).astype(np.int64)
            right, bottom = (mu + radius + 1).astype(np.int64)
            if left >= w or top >= h or right < 0 or bottom < 0:
                keypoint_weights[n, k] = 0
                continue
            g_x1, g_x2 = max(0, -left), min(w, right) - left
            g_y1, g_y2 = max(0, -top), min(h, bottom) - top
            h_x1, h_x2 = max(0, left), min(w, right)
            h_y1, h_y2 = max(0, top), min(h, bottom)
            region = heatmaps[k, h_y1:h_y2, h_x1:h_x2]
            np.maximum(region, gaussian[g_y1:g_y2, g_x1:g_x2], out=region)
    return heatmaps, keypoint_weights


def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax location and value of each heatmap (MMPose ``get_heatmap_maximum``).

    Args:
        heatmaps: float [K, H, W] or [B, K, H, W].

    Returns:
        locs float32 [K, 2] / [B, K, 2] (x, y) in heatmap pixels, -1 where the maximum is <= 0;
        vals [K] / [B, K] the maxima (heatmap dtype).

    Raises:
        ValueError: not 3-D or 4-D.
    """
    hm = np.asarray(heatmaps)
    if hm.ndim not in (3, 4):
        raise ValueError(f"heatmaps must be [K, H, W] or [B, K, H, W], got shape {list(hm.shape)}")
    h, w = hm.shape[-2:]
    flat = hm.reshape(-1, h * w)
    y_locs, x_locs = np.unravel_index(np.argmax(flat, axis=1), shape=(h, w))
    locs = np.stack((x_locs, y_locs), axis=-1).astype(np.float32)
    vals = np.amax(flat, axis=1)
    locs[vals <= 0.0] = -1
    return locs.reshape(*hm.shape[:-2], 2), vals.reshape(hm.shape[:-2])


def refine_keypoints(keypoints: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Move each argmax 0.25 pixel towards the higher neighbour (MMPose ``refine_keypoints``).

    MMPose's bounds are kept exactly: the x step needs ``1 < x < W - 1 and 0 < y < H``, the y step
    ``1 < y < H - 1 and 0 < x < W`` (integer parts of the argmax).

    Args:
        keypoints: float32 [N, K, 2] argmax locations in heatmap pixels (modified in place).
        heatmaps: [K, H, W] (shared by the N instances, as in MMPose) or [N, K, H, W].

    Returns:
        ``keypoints`` (the same array).
    """
    hm = heatmaps if heatmaps.ndim == 4 else np.broadcast_to(heatmaps, (keypoints.shape[0], *heatmaps.shape))
    n_inst, k_num = keypoints.shape[:2]
    h, w = hm.shape[-2:]
    xi = keypoints[..., 0].astype(int)
    yi = keypoints[..., 1].astype(int)
    nn_, kk = np.meshgrid(np.arange(n_inst), np.arange(k_num), indexing="ij")
    ok_x = (1 < xi) & (xi < w - 1) & (0 < yi) & (yi < h)
    ok_y = (1 < yi) & (yi < h - 1) & (0 < xi) & (xi < w)
    xc, yc = np.clip(xi, 1, w - 2), np.clip(yi, 1, h - 2)
    ycx, xcy = np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)
    dx = np.where(ok_x, hm[nn_, kk, ycx, np.minimum(xc + 1, w - 1)] - hm[nn_, kk, ycx, xc - 1], 0.0)
    dy = np.where(ok_y, hm[nn_, kk, np.minimum(yc + 1, h - 1), xcy] - hm[nn_, kk, yc - 1, xcy], 0.0)
    keypoints += np.stack([np.sign(dx), np.sign(dy)], axis=-1).astype(np.float32) * np.float32(0.25)
    return keypoints


class MSRAHeatmap:
    """SimpleBaseline heatmap codec (MMPose ``MSRAHeatmap``, ``unbiased=False``).

    Args:
        input_size: (w, h) of the crop, e.g. (192, 256).
        heatmap_size: (W, H) of the heatmap, e.g. (48, 64).
        sigma: Gaussian sigma in heatmap pixels (2).
    """

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], sigma: float = 2.0):
        self.input_size = _as_size(input_size, "input_size")
        self.heatmap_size = _as_size(heatmap_size, "heatmap_size")
        self.sigma = float(sigma)
        self.scale_factor = (np.array(self.input_size) / self.heatmap_size).astype(np.float32)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Heatmap target for one instance.

        Args:
            keypoints: float [1, K, 2] in crop pixels.
            keypoints_visible: float [1, K] (default all 1).

        Returns:
            dict with ``heatmaps`` float32 [K, H, W] (peak 1) and ``keypoint_weights`` [1, K].

        Raises:
            ValueError: wrong shapes, or more than one instance (as MMPose).
        """
        kp, vis = _check_keypoints(keypoints, keypoints_visible)
        if kp.shape[0] != 1:
            raise ValueError(f"MSRAHeatmap encodes a single instance, got N={kp.shape[0]}")
        heatmaps, weights = generate_gaussian_heatmaps(self.heatmap_size, kp / self.scale_factor, vis, self.sigma)
        return {"heatmaps": heatmaps, "keypoint_weights": weights}

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Argmax + quarter-pixel refinement, scaled to crop pixels.

        Args:
            heatmaps: float [K, H, W] (one instance) or [B, K, H, W].

        Returns:
            keypoints float32 [1, K, 2] / [B, K, 2] in crop pixels, scores [1, K] / [B, K]
            (the heatmap maxima).
        """
        hm = np.asarray(heatmaps)
        if hm.ndim == 3:
            hm = hm[None]
        if hm.ndim != 4:
            raise ValueError(f"heatmaps must be [K, H, W] or [B, K, H, W], got shape {list(hm.shape)}")
        if (hm.shape[-1], hm.shape[-2]) != self.heatmap_size:
            raise ValueError(f"heatmaps are {hm.shape[-1]}x{hm.shape[-2]}, codec expects {self.heatmap_size}")
        keypoints, scores = get_heatmap_maximum(hm)
        keypoints = refine_keypoints(keypoints, hm)
        return keypoints * self.scale_factor, scores


class RegressionLabel:
    """Coordinate regression codec (MMPose ``RegressionLabel``).

    Args:
        input_size: (w, h) of the crop, e.g. (192, 256).
    """

    def __init__(self, input_size: tuple[int, int]):
        self.input_size = _as_size(input_size, "input_size")

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Training targets.

        Args:
            keypoints: float [N, K, 2] in crop pixels.
            keypoints_visible: float [N, K] (default all 1).

        Returns:
            dict with ``keypoint_labels`` float32 [N, K, 2] (crop pixels / (w, h)) and ``keypoint_weights`` float32
            [N, K]: 1 where visibility > 0.5 and the keypoint lies in [0, w - 1] x [0, h - 1], else 0.

        Raises:
            ValueError: wrong shapes.
        """
        kp, vis = _check_keypoints(keypoints, keypoints_visible)
        w, h = self.input_size
        valid = ((kp >= 0) & (kp <= [w - 1, h - 1])).all(axis=-1) & (vis > 0.5)
        labels = (kp / np.array([w, h])).astype(np.float32)
        return {"keypoint_labels": labels, "keypoint_weights": np.where(valid, 1.0, 0.0).astype(np.float32)}

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised coordinates [N, K, 2] -> (keypoints float32 [N, K, 2] crop pixels, scores float32 [N, K] all 1).
        See :func:`decode_integral`."""
        return decode_integral(encoded, self.input_size)


class IntegralRegressionLabel:
    """Integral-regression codec (MMPose ``IntegralRegressionLabel``, ``unbiased=False``).

    Args:
        input_size: (w, h) of the crop (256, 256).
        heatmap_size: (W, H) of the heatmap target (64, 64).
        sigma: Gaussian sigma in heatmap pixels (2).
        normalize: divide each heatmap target by its sum (so it is a distribution, DSNT / JS loss).
    """

    def __init__(
        self, input_size: tuple[int, int], heatmap_size: tuple[int, int], sigma: float = 2.0, normalize: bool = True
    ):
        self.input_size = _as_size(input_size, "input_size")
        self.heatmap_size = _as_size(heatmap_size, "heatmap_size")
        self.heatmap_codec = MSRAHeatmap(self.input_size, self.heatmap_size, sigma)
        self.label_codec = RegressionLabel(self.input_size)
        self.normalize = bool(normalize)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Training targets for one instance.

        Args:
            keypoints: float [1, K, 2] in crop pixels.
            keypoints_visible: float [1, K] (default all 1).

        Returns:
            dict with ``keypoint_labels`` float32 [1, K, 2] (crop pixels / (w, h)),
            ``keypoint_weights`` float32 [1, K] (1 where visibility > 0.5 and the keypoint lies in
            [0, w - 1] x [0, h - 1], else 0; MMPose ``RegressionLabel``) and ``heatmaps`` float32
            [K, H, W] (each sums to 1 when ``normalize``; all-zero maps stay zero).

        Raises:
            ValueError: wrong shapes or more than one instance.
        """
        kp, vis = _check_keypoints(keypoints, keypoints_visible)
        heatmaps = self.heatmap_codec.encode(kp, vis)["heatmaps"]
        labels = self.label_codec.encode(kp, vis)
        if self.normalize:
            heatmaps = heatmaps / (heatmaps.sum(axis=(-1, -2)).reshape(-1, 1, 1) + 1e-24)
        return {**labels, "heatmaps": heatmaps}

    def decode(self, encoded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised coordinates [N, K, 2] -> (keypoints float32 [N, K, 2] crop pixels, scores
        float32 [N, K] all 1). See :func:`decode_integral`."""
        return decode_integral(encoded, self.input_size)


def decode_integral(coords: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Integral head output -> crop pixels (MMPose ``RegressionLabel.decode``).

    Args:
        coords: float [N, K, 2] normalised (x / w, y / h).
        input_size: (w, h) of the crop.

    Returns:
        keypoints float32 [N, K, 2] in crop pixels, scores float32 [N, K] all ones (the integral
        models carry no confidence; COCO ranking uses the detector score).

    Raises:
        ValueError: not [N, K, 2].
    """
    c = np.asarray(coords)
    if c.ndim != 3 or c.shape[-1] != 2:
        raise ValueError(f"integral coordinates must be [N, K, 2], got shape {list(c.shape)}")
    w, h = _as_size(input_size, "input_size")
    keypoints = (c * np.array([w, h])).astype(np.float32)
    return keypoints, np.ones(c.shape[:2], dtype=np.float32)


def decode_heatmaps(heatmaps: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap head output [B, K, H, W] -> (keypoints float32 [B, K, 2] crop pixels, scores [B, K]),
    MMPose ``MSRAHeatmap.decode`` applied to each instance (argmax, quarter-pixel refinement towards the
    higher neighbour, scaling by input / heatmap size; score = the heatmap maximum; x = y = -1 before
    scaling where the maximum is <= 0).

    Raises:
        ValueError: not [B, K, H, W].
    """
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [B, K, H, W], got shape {list(hm.shape)}")
    codec = MSRAHeatmap(input_size, (hm.shape[-1], hm.shape[-2]))
    return codec.decode(hm)


def flip_back_heatmaps(heatmaps: np.ndarray, flip_index: np.ndarray, shift: bool = True) -> np.ndarray:
    """Heatmaps predicted on horizontally flipped crops -> the original crops (MMPose ``flip_heatmaps``,
    mode ``heatmap``, in ``mmpose/models/utils/tta.py``).

    Mirror along x, reorder joints by ``flip_index``, and when ``shift`` (MMPose ``shift_heatmap``) move
    every column one heatmap pixel right, keeping column 0.

    Args:
        heatmaps: float [B, K, H, W].
        flip_index: int [K] (:func:`models.keypoints.flip_indices`).
        shift: the one-pixel shift (True in ``td-hm_res50``).

    Returns:
        float [B, K, H, W], same dtype.
    """
    hm = np.asarray(heatmaps)[:, flip_index, :, ::-1]
    if shift:
        hm = np.concatenate([hm[..., :1], hm[..., :-1]], axis=-1)
    return np.ascontiguousarray(hm)


def flip_back_keypoints(
    keypoints: np.ndarray, flip_index: np.ndarray, input_width: int, shift: bool = True
) -> np.ndarray:
    """Keypoints predicted on horizontally flipped crops -> the original crops.

    ``x <- w - 1 - x`` (``shift``; a pixel's index is its coordinate, so pixel i mirrors to w - 1 - i) or
    ``x <- w - x``, y and scores unchanged, joints reordered by ``flip_index``. In normalised units this
    is MMPose's ``flip_coordinates`` (``x <- 1 - x - 1 / w`` with ``shift_coords``) for integral models.

    Args:
        keypoints: float [B, K, C >= 2]: x, y in crop pixels (then scores).
        flip_index: int [K].
        input_width: crop width w in pixels.
        shift: MMPose ``shift_coords`` (True in all three integral configs).

    Returns:
        float [B, K, C], same dtype.
    """
    out = np.array(np.asarray(keypoints)[:, flip_index], copy=True)
    out[..., 0] = (input_width - 1 if shift else input_width) - out[..., 0]
    return out


def get_simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax location and value of SimCC vectors (MMPose ``get_simcc_maximum``, ``apply_softmax=False``).

    The location is the first maximum of each axis (``np.argmax``: ties go to the lower index); the value is the
    smaller of the x and y maxima (MMPose 1.3.2 keeps ``max_val_y`` where ``max_val_x > max_val_y``; rtmlib's copy
    averages the two instead); where that value is <= 0 both coordinates become -1.

    Args:
        simcc_x: float [K, Wx] or [N, K, Wx] (x classification over ``w * split_ratio`` bins).
        simcc_y: float [K, Wy] or [N, K, Wy], the same leading shape.

    Returns:
        locs float32 [K, 2] / [N, K, 2] (x, y bin indices, -1 where the value is <= 0); vals [K] / [N, K] in the
        vectors' dtype.

    Raises:
        ValueError: not 2-D / 3-D, or the leading shapes differ.
    """
    sx, sy = np.asarray(simcc_x), np.asarray(simcc_y)
    if sx.ndim not in (2, 3) or sy.ndim != sx.ndim or sx.shape[:-1] != sy.shape[:-1]:
        raise ValueError(
            f"simcc_x / simcc_y must be [K, W] or [N, K, W] with the same N, K, got {list(sx.shape)} / {list(sy.shape)}"
        )
    lead = sx.shape[:-1]
    fx, fy = sx.reshape(-1, sx.shape[-1]), sy.reshape(-1, sy.shape[-1])
    locs = np.stack((np.argmax(fx, axis=1), np.argmax(fy, axis=1)), axis=-1).astype(np.float32)
    vals = np.minimum(np.amax(fx, axis=1), np.amax(fy, axis=1))
    locs[vals <= 0.0] = -1
    return locs.reshape(*lead, 2), vals.reshape(lead)


class SimCCLabel:
    """SimCC codec, decode side (MMPose ``SimCCLabel`` with ``use_dark=False``, ``decode_visibility=False``).

    Args:
        input_size: (w, h) of the crop, e.g. (192, 256) for RTMPose.
        split_ratio: bins per crop pixel (MMPose ``simcc_split_ratio``; 2.0 in RTMPose's configs), so the vectors
            are ``round(w * split_ratio)`` and ``round(h * split_ratio)`` long.

    Raises:
        ValueError: a non-positive size or split ratio.
    """

    def __init__(self, input_size: tuple[int, int], split_ratio: float = 2.0):
        self.input_size = _as_size(input_size, "input_size")
        self.split_ratio = float(split_ratio)
        if not self.split_ratio > 0:
            raise ValueError(f"split_ratio must be positive, got {split_ratio!r}")

    @property
    def vector_sizes(self) -> tuple[int, int]:
        """(Wx, Wy): lengths of the x and y vectors (MMPose ``np.around(w * simcc_split_ratio)``)."""
        w, h = self.input_size
        return int(np.around(w * self.split_ratio)), int(np.around(h * self.split_ratio))

    def decode(self, simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SimCC vectors -> crop pixels.

        Args:
            simcc_x: float [K, Wx] (one instance) or [N, K, Wx].
            simcc_y: float [K, Wy] or [N, K, Wy].

        Returns:
            keypoints float32 [1, K, 2] / [N, K, 2] in crop pixels (bin index / split ratio; -1 / split ratio where
            the score is <= 0, as MMPose), scores [1, K] / [N, K] (:func:`get_simcc_maximum`, the vectors' dtype).

        Raises:
            ValueError: shapes that are not [N, K, W], or vector lengths other than :attr:`vector_sizes`.
        """
        sx, sy = np.asarray(simcc_x), np.asarray(simcc_y)
        if sx.ndim == 2 and sy.ndim == 2:
            sx, sy = sx[None], sy[None]
        if sx.ndim != 3 or sy.ndim != 3:
            raise ValueError(f"simcc_x / simcc_y must be [N, K, W], got {list(sx.shape)} / {list(sy.shape)}")
        if (sx.shape[-1], sy.shape[-1]) != self.vector_sizes:
            raise ValueError(
                f"SimCC vectors are {sx.shape[-1]} (x) and {sy.shape[-1]} (y) long; a {self.input_size[0]}x"
                f"{self.input_size[1]} crop at split ratio {self.split_ratio:g} gives {self.vector_sizes}"
            )
        keypoints, scores = get_simcc_maximum(sx, sy)
        keypoints /= np.float32(self.split_ratio)
        return keypoints, scores


def flip_back_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, flip_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SimCC vectors predicted on horizontally flipped crops -> the original crops (MMPose ``flip_vectors`` in
    ``mmpose/models/utils/tta.py``, as ``RTMCCHead.predict`` / ``SimCCHead.predict`` use it).

    The x vectors are reversed (bin i -> bin Wx - 1 - i; no shift, unlike heatmaps) and both are reordered by
    ``flip_index``; the caller averages them with the unflipped vectors before the decode.

    Args:
        simcc_x: float [B, K, Wx]; simcc_y: float [B, K, Wy].
        flip_index: int [K] (:func:`models.keypoints.flip_indices`).

    Returns:
        (x float [B, K, Wx], y float [B, K, Wy]), same dtypes, contiguous.

    Raises:
        ValueError: not 3-D.
    """
    sx, sy = np.asarray(simcc_x), np.asarray(simcc_y)
    if sx.ndim != 3 or sy.ndim != 3:
        raise ValueError(f"simcc_x / simcc_y must be [B, K, W], got {list(sx.shape)} / {list(sy.shape)}")
    return np.ascontiguousarray(sx[:, flip_index, ::-1]), np.ascontiguousarray(sy[:, flip_index])
