"""The DARK and UDP heatmap codecs (numpy + OpenCV, torch-free; the service imports this module).

* :class:`DarkHeatmap` — MMPose ``MSRAHeatmap(unbiased=True)`` (DarkPose, Zhang et al. CVPR 2020): Gaussian targets
  centred on the float keypoint (:func:`generate_unbiased_gaussian_heatmaps`) and the decode that refines each argmax
  by a Newton step on the log of the blurred heatmap (:func:`gaussian_blur`, :func:`refine_keypoints_dark`).
* :class:`UDPHeatmap` — MMPose ``UDPHeatmap`` with ``heatmap_type='gaussian'`` (Huang et al. CVPR 2020): a crop pixel
  maps to ``x * (W - 1) / (w - 1)`` heatmap pixels (:func:`generate_udp_gaussian_heatmaps`), the decode refines with
  :func:`refine_keypoints_dark_udp` and scales by ``w / (W - 1)``. Its crop is ``models.geometry.get_udp_warp_matrix``
  (MMPose ``TopdownAffine(use_udp=True)``); its flip test does not shift the heatmaps (``shift_heatmap=False``).
* :func:`decode_heatmaps_with` — the heatmap decode of a card's ``output.codec`` (``msra``, ``dark``, ``udp``).

OpenCV is imported by the blur only (``models.card`` imports this module).

Follows ``mmpose/codecs/msra_heatmap.py``, ``mmpose/codecs/udp_heatmap.py``, ``mmpose/codecs/utils/gaussian_heatmap.py``,
``mmpose/codecs/utils/post_processing.py`` (``gaussian_blur``) and ``mmpose/codecs/utils/refinement.py``, including
their dtypes (the blur runs in float32 whatever the heatmaps' dtype) and their edge cases (an all-zero map gives NaN
coordinates in UDP's refinement, as in MMPose). Conventions as :mod:`models.codecs`: sizes are (w, h); keypoints are
(x, y) in crop pixels.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from models.codecs import MSRAHeatmap, _as_size, _check_keypoints, get_heatmap_maximum

#: The heatmap codecs a card's ``output.codec`` names (``models.card.OutputSpec``); ``msra`` is MMPose's default.
HEATMAP_CODECS: tuple[str, ...] = ("msra", "dark", "udp", "megvii")
#: MMPose's default blur kernel of the DARK / UDP decode (``blur_kernel_size``; sigma 2 targets).
DEFAULT_BLUR_KERNEL: int = 11


def generate_unbiased_gaussian_heatmaps(
    heatmap_size: tuple[int, int], keypoints: np.ndarray, keypoints_visible: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """DarkPose targets: a Gaussian (peak 1) on the whole map centred on the float keypoint (MMPose
    ``generate_unbiased_gaussian_heatmaps``); overlapping instances keep the maximum.

    A keypoint whose 3-sigma window lies fully outside the map gets weight 0; invisible ones (< 0.5) are skipped.

    Args:
        heatmap_size: (W, H).
        keypoints: float [N, K, 2] in heatmap pixels.
        keypoints_visible: float [N, K].
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        heatmaps float32 [K, H, W] and keypoint_weights [N, K] (a copy of the visibility, zeroed out of bounds).
    """
    n_inst, k_num, _ = keypoints.shape
    w, h = heatmap_size
    heatmaps = np.zeros((k_num, h, w), dtype=np.float32)
    keypoint_weights = keypoints_visible.copy()
    radius = sigma * 3
    x = np.arange(0, w, 1, dtype=np.float32)
    y = np.arange(0, h, 1, dtype=np.float32)[:, None]
    for n, k in product(range(n_inst), range(k_num)):
        if keypoints_visible[n, k] < 0.5:
            continue
        mu = keypoints[n, k]
        left, top = mu - radius
        right, bottom = mu + radius + 1
        if left >= w or top >= h or right < 0 or bottom < 0:
            keypoint_weights[n, k] = 0
            continue
        gaussian = np.exp(-((x - mu[0]) ** 2 + (y - mu[1]) ** 2) / (2 * sigma**2))
        np.maximum(gaussian, heatmaps[k], out=heatmaps[k])
    return heatmaps, keypoint_weights


def generate_udp_gaussian_heatmaps(
    heatmap_size: tuple[int, int], keypoints: np.ndarray, keypoints_visible: np.ndarray, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """UDP targets: a 3-sigma Gaussian patch (peak 1 at the float keypoint) placed at the rounded keypoint (MMPose
    ``generate_udp_gaussian_heatmaps``); overlapping instances keep the maximum.

    Args / Returns: as :func:`generate_unbiased_gaussian_heatmaps` (keypoints in heatmap pixels, UDP's scale).
    """
    n_inst, k_num, _ = keypoints.shape
    w, h = heatmap_size
    heatmaps = np.zeros((k_num, h, w), dtype=np.float32)
    keypoint_weights = keypoints_visible.copy()
    radius = sigma * 3
    gaussian_size = 2 * radius + 1
    x = np.arange(0, gaussian_size, 1, dtype=np.float32)
    y = x[:, None]
    for n, k in product(range(n_inst), range(k_num)):
        if keypoints_visible[n, k] < 0.5:
            continue
        mu = (keypoints[n, k] + 0.5).astype(np.int64)
        left, top = (mu - radius).astype(np.int64)
        right, bottom = (mu + radius + 1).astype(np.int64)
        if left >= w or top >= h or right < 0 or bottom < 0:
            keypoint_weights[n, k] = 0
            continue
        mu_ac = keypoints[n, k]
        x0 = y0 = gaussian_size // 2
        x0 += mu_ac[0] - mu[0]
        y0 += mu_ac[1] - mu[1]
        gaussian = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
        g_x1, g_x2 = max(0, -left), min(w, right) - left
        g_y1, g_y2 = max(0, -top), min(h, bottom) - top
        region = heatmaps[k, max(0, top) : min(h, bottom), max(0, left) : min(w, right)]
        np.maximum(region, gaussian[g_y1:g_y2, g_x1:g_x2], out=region)
    return heatmaps, keypoint_weights


def gaussian_blur(heatmaps: np.ndarray, kernel: int = DEFAULT_BLUR_KERNEL) -> np.ndarray:
    """Blur each heatmap with an OpenCV Gaussian (zero border) and rescale it to its old maximum, in place (MMPose
    ``gaussian_blur``).

    The blur runs in float32 (MMPose's padded buffer) whatever the heatmaps' dtype; a map whose blurred maximum is 0
    becomes NaN (0 / 0), as in MMPose.

    Args:
        heatmaps: float [K, H, W] (modified in place).
        kernel: odd kernel size (11 for sigma 2 targets, 17 for sigma 3).

    Returns:
        ``heatmaps`` (the same array).

    Raises:
        ValueError: an even kernel size.
    """
    import cv2  # here, not at import: the card (and what imports it) needs no OpenCV until a DARK / UDP decode

    if kernel % 2 != 1:
        raise ValueError(f"blur kernel size must be odd, got {kernel}")
    border = (kernel - 1) // 2
    k_num, h, w = heatmaps.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(k_num):
            origin_max = np.max(heatmaps[k])
            dr = np.zeros((h + 2 * border, w + 2 * border), dtype=np.float32)
            dr[border:-border, border:-border] = heatmaps[k].copy()
            dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
            heatmaps[k] = dr[border:-border, border:-border].copy()
            heatmaps[k] *= origin_max / np.max(heatmaps[k])
    return heatmaps


def refine_keypoints_dark(keypoints: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """DarkPose refinement (MMPose ``refine_keypoints_dark``): blur (:func:`gaussian_blur`), log, then one Newton step
    ``-H^-1 d`` from the argmax where ``1 < x < W - 2 and 1 < y < H - 2`` and the Hessian is invertible.

    Args:
        keypoints: float32 [N, K, 2] argmax locations in heatmap pixels (modified in place).
        heatmaps: float [K, H, W] (modified in place: blurred, log).
        blur_kernel_size: odd.

    Returns:
        ``keypoints`` (the same array).
    """
    n_inst, k_num = keypoints.shape[:2]
    h, w = heatmaps.shape[1:]
    hm = gaussian_blur(heatmaps, blur_kernel_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.maximum(hm, 1e-10, out=hm)
        np.log(hm, out=hm)
    for n, k in product(range(n_inst), range(k_num)):
        x, y = keypoints[n, k, :2].astype(int)
        if 1 < x < w - 2 and 1 < y < h - 2:
            dx = 0.5 * (hm[k, y, x + 1] - hm[k, y, x - 1])
            dy = 0.5 * (hm[k, y + 1, x] - hm[k, y - 1, x])
            dxx = 0.25 * (hm[k, y, x + 2] - 2 * hm[k, y, x] + hm[k, y, x - 2])
            dxy = 0.25 * (hm[k, y + 1, x + 1] - hm[k, y - 1, x + 1] - hm[k, y + 1, x - 1] + hm[k, y - 1, x - 1])
            dyy = 0.25 * (hm[k, y + 2, x] - 2 * hm[k, y, x] + hm[k, y - 2, x])
            derivative = np.array([[dx], [dy]])
            hessian = np.array([[dxx, dxy], [dxy, dyy]])
            if dxx * dyy - dxy**2 != 0:
                offset = -np.linalg.inv(hessian) @ derivative
                keypoints[n, k, :2] += np.squeeze(np.array(offset.T), axis=0)
    return keypoints


def refine_keypoints_dark_udp(keypoints: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """UDP's DARK refinement (MMPose ``refine_keypoints_dark_udp``): blur, clip to [1e-3, 50], log, edge-pad by one
    pixel, then a Newton step with ``(H + eps I)^-1`` (float32 eps) at every keypoint, border ones included.

    MMPose's flat indexing is kept exactly: a keypoint of -1 (maximum <= 0) reads the padded map at its
    corner (a negative flat index wraps around, as numpy does there).

    Args:
        keypoints: float32 [N, K, 2] argmax locations in heatmap pixels (modified in place).
        heatmaps: float [K, H, W] (modified in place).
        blur_kernel_size: odd.

    Returns:
        ``keypoints`` (the same array).
    """
    n_inst, k_num = keypoints.shape[:2]
    h, w = heatmaps.shape[1:]
    hm = gaussian_blur(heatmaps, blur_kernel_size)
    np.clip(hm, 1e-3, 50.0, out=hm)
    np.log(hm, out=hm)
    pad = np.pad(hm, ((0, 0), (1, 1), (1, 1)), mode="edge").flatten()
    with np.errstate(invalid="ignore"):
        for n in range(n_inst):
            index = keypoints[n, :, 0] + 1 + (keypoints[n, :, 1] + 1) * (w + 2)
            index += (w + 2) * (h + 2) * np.arange(0, k_num)
            index = index.astype(int).reshape(-1, 1)
            i_, ix1, iy1, ix1y1 = pad[index], pad[index + 1], pad[index + w + 2], pad[index + w + 3]
            ix1_y1_, ix1_, iy1_ = pad[index - w - 3], pad[index - 1], pad[index - 2 - w]
            dx = 0.5 * (ix1 - ix1_)
            dy = 0.5 * (iy1 - iy1_)
            derivative = np.concatenate([dx, dy], axis=1).reshape(k_num, 2, 1)
            dxx = ix1 - 2 * i_ + ix1_
            dyy = iy1 - 2 * i_ + iy1_
            dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)
            hessian = np.concatenate([dxx, dxy, dxy, dyy], axis=1).reshape(k_num, 2, 2)
            hessian = np.linalg.inv(hessian + np.finfo(np.float32).eps * np.eye(2))
            keypoints[n] -= np.einsum("imn,ink->imk", hessian, derivative).squeeze()
    return keypoints


def _decode_input(heatmaps: np.ndarray, heatmap_size: tuple[int, int]) -> np.ndarray:
    hm = np.asarray(heatmaps)
    if hm.ndim == 3:
        hm = hm[None]
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [K, H, W] or [B, K, H, W], got shape {list(hm.shape)}")
    if (hm.shape[-1], hm.shape[-2]) != heatmap_size:
        raise ValueError(f"heatmaps are {hm.shape[-1]}x{hm.shape[-2]}, codec expects {heatmap_size}")
    return hm


class DarkHeatmap(MSRAHeatmap):
    """DarkPose heatmap codec (MMPose ``MSRAHeatmap(unbiased=True)``).

    Args:
        input_size: (w, h) of the crop, e.g. (192, 256).
        heatmap_size: (W, H) of the heatmap, e.g. (48, 64).
        sigma: Gaussian sigma in heatmap pixels (2; 3 at 384x288).
        blur_kernel_size: odd blur kernel of the decode (MMPose default 11; 17 in ``td-hm_res152_dark`` 384x288).
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        blur_kernel_size: int = DEFAULT_BLUR_KERNEL,
    ):
        super().__init__(input_size, heatmap_size, sigma)
        self.blur_kernel_size = int(blur_kernel_size)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Unbiased heatmap target for one instance: keypoints float [1, K, 2] crop pixels, visibility [1, K] ->
        dict ``heatmaps`` float32 [K, H, W] (peak <= 1), ``keypoint_weights`` [1, K].

        Raises:
            ValueError: wrong shapes or more than one instance.
        """
        kp, vis = _check_keypoints(keypoints, keypoints_visible)
        if kp.shape[0] != 1:
            raise ValueError(f"DarkHeatmap encodes a single instance, got N={kp.shape[0]}")
        heatmaps, weights = generate_unbiased_gaussian_heatmaps(
            self.heatmap_size, kp / self.scale_factor, vis, self.sigma
        )
        return {"heatmaps": heatmaps, "keypoint_weights": weights}

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Argmax + DARK refinement of each instance, scaled to crop pixels.

        Args:
            heatmaps: float [K, H, W] or [B, K, H, W] (not modified).

        Returns:
            keypoints float32 [B, K, 2] in crop pixels, scores [B, K] (the maxima of the unblurred maps).
        """
        hm = _decode_input(heatmaps, self.heatmap_size)
        out_kp, out_sc = [], []
        for one in hm:
            one = one.copy()
            keypoints, scores = get_heatmap_maximum(one)
            keypoints = refine_keypoints_dark(keypoints[None], one, self.blur_kernel_size)
            out_kp.append(keypoints * self.scale_factor)
            out_sc.append(scores[None])
        return np.concatenate(out_kp).astype(np.float32), np.concatenate(out_sc)


class UDPHeatmap:
    """UDP heatmap codec (MMPose ``UDPHeatmap``, ``heatmap_type='gaussian'``).

    Args:
        input_size: (w, h) of the crop.
        heatmap_size: (W, H) of the heatmap (both sides > 1).
        sigma: Gaussian sigma in heatmap pixels.
        blur_kernel_size: odd blur kernel of the decode (11).
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        blur_kernel_size: int = DEFAULT_BLUR_KERNEL,
    ):
        self.input_size = _as_size(input_size, "input_size")
        self.heatmap_size = _as_size(heatmap_size, "heatmap_size")
        if min(self.heatmap_size) < 2:
            raise ValueError(f"UDP needs heatmaps of at least 2x2, got {self.heatmap_size}")
        self.sigma = float(sigma)
        self.blur_kernel_size = int(blur_kernel_size)
        self.scale_factor = ((np.array(self.input_size) - 1) / (np.array(self.heatmap_size) - 1)).astype(np.float32)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """UDP heatmap target for one instance (keypoints float [1, K, 2] crop pixels; visibility [1, K]) -> dict
        ``heatmaps`` float32 [K, H, W], ``keypoint_weights`` [1, K].

        Raises:
            ValueError: wrong shapes or more than one instance.
        """
        kp, vis = _check_keypoints(keypoints, keypoints_visible)
        if kp.shape[0] != 1:
            raise ValueError(f"UDPHeatmap encodes a single instance, got N={kp.shape[0]}")
        heatmaps, weights = generate_udp_gaussian_heatmaps(self.heatmap_size, kp / self.scale_factor, vis, self.sigma)
        return {"heatmaps": heatmaps, "keypoint_weights": weights}

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Argmax + UDP's DARK refinement of each instance, then ``x / (W - 1) * w`` (likewise y): crop pixels as
        MMPose's ``TopdownPoseEstimator`` maps them back (``x / w * scale + center - scale / 2``).

        Args:
            heatmaps: float [K, H, W] or [B, K, H, W] (not modified).

        Returns:
            keypoints float32 [B, K, 2] in crop pixels (NaN where a map is all zero, as MMPose), scores [B, K].
        """
        hm = _decode_input(heatmaps, self.heatmap_size)
        w, h = self.heatmap_size
        out_kp, out_sc = [], []
        for one in hm:
            one = one.copy()
            keypoints, scores = get_heatmap_maximum(one)
            keypoints = refine_keypoints_dark_udp(keypoints[None], one, self.blur_kernel_size)
            out_kp.append(keypoints / [w - 1, h - 1] * np.array(self.input_size))
            out_sc.append(scores[None])
        return np.concatenate(out_kp).astype(np.float32), np.concatenate(out_sc)


def heatmap_codec(
    codec: str,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    sigma: float = 2.0,
    blur_kernel_size: int = DEFAULT_BLUR_KERNEL,
):
    """The codec object called ``codec`` (:data:`HEATMAP_CODECS`).

    Raises:
        ValueError: an unknown name.
    """
    if codec == "msra":
        return MSRAHeatmap(input_size, heatmap_size, sigma)
    if codec == "dark":
        return DarkHeatmap(input_size, heatmap_size, sigma, blur_kernel_size)
    if codec == "udp":
        return UDPHeatmap(input_size, heatmap_size, sigma, blur_kernel_size)
    raise ValueError(f"unknown heatmap codec {codec!r}; known: {list(HEATMAP_CODECS)}")


def decode_heatmaps_with(
    codec: str, heatmaps: np.ndarray, input_size: tuple[int, int], blur_kernel_size: int = DEFAULT_BLUR_KERNEL
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap head output [B, K, H, W] -> (keypoints float32 [B, K, 2] crop pixels, scores [B, K]) with the codec
    called ``codec`` (``msra``: ``models.codecs.decode_heatmaps``; ``dark``, ``udp``: this module's codecs; ``megvii``:
    ``models.megvii_heatmap.decode_megvii_heatmaps``).

    Raises:
        ValueError: not [B, K, H, W], or an unknown codec.
    """
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [B, K, H, W], got shape {list(hm.shape)}")
    if codec == "megvii":  # MSPN / RSN: its own blur (kernel 5) and shift
        from models.megvii_heatmap import decode_megvii_heatmaps

        return decode_megvii_heatmaps(hm, input_size)
    return heatmap_codec(codec, input_size, (hm.shape[-1], hm.shape[-2]), 2.0, blur_kernel_size).decode(hm)
