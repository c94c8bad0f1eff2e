"""The "Megvii" heatmap codec of MSPN / RSN (CPN's): numpy and OpenCV, torch-free (the service decodes with it).

Follows ``mmpose/codecs/megvii_heatmap.py`` and ``gaussian_blur`` of ``mmpose/codecs/utils/post_processing.py``
(MMPose 1.3.2). It lives beside :mod:`models.codecs` (whose other heatmap codecs it shares the conventions of:
``input_size`` / ``heatmap_size`` are (w, h), keypoints (x, y) in crop pixels) rather than in it, which is at the
production-file size limit.

* :class:`MegviiHeatmap` encode: per visible keypoint, a one-hot heatmap at ``int(keypoint / scale)`` blurred by
  ``cv2.GaussianBlur(kernel_size)`` and scaled to a peak of 255 (a keypoint off the heatmap gets weight 0).
* decode (:func:`decode_megvii_heatmaps`, the card's ``codec == "megvii"``): each heatmap blurred with the codec's
  kernel in float32 (zero padding of (kernel - 1) / 2, ``cv2.GaussianBlur``, rescaled to the original maximum),
  argmax, then, for a maximum strictly inside the border band (1 < x < W - 1 and 1 < y < H - 1), a shift of
  ``sign(gradient) * 0.25 + 0.5`` heatmap pixels per axis (MMPose adds the half pixel only there); score =
  maximum / 255 + 0.5; keypoints scaled by input / heatmap size.

The MSPN / RSN configs train each unit with its own kernel (``kernel_sizes = [11, 9, 7, 5]``, with 15 first for the
multi-stage ones) and decode with the last, 5 (:data:`MEGVII_DECODE_KERNEL`).
"""

from __future__ import annotations

import numpy as np

#: The decoder's kernel in every MSPN / RSN config (``decoder=codec[-1]``, ``kernel_size=5``).
MEGVII_DECODE_KERNEL = 5


def _size(size, what: str) -> tuple[int, int]:
    w, h = (int(s) for s in size)
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} must be positive (w, h), got {tuple(size)}")
    return w, h


def gaussian_blur(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """MMPose ``gaussian_blur``: each [H, W] map blurred in float32 with zero padding, rescaled to its maximum.

    Args:
        heatmaps: float [K, H, W] (modified in place and returned, as MMPose).
        kernel: odd kernel size.

    Raises:
        ValueError: an even kernel.
    """
    import cv2  # OpenCV is imported only where blurred: models.codecs' users need not have it loaded

    if kernel % 2 != 1:
        raise ValueError(f"the blur kernel must be odd, got {kernel}")
    border = (kernel - 1) // 2
    _, h, w = heatmaps.shape
    for k in range(heatmaps.shape[0]):
        origin_max = np.max(heatmaps[k])
        dr = np.zeros((h + 2 * border, w + 2 * border), dtype=np.float32)
        dr[border:-border, border:-border] = heatmaps[k]
        dr = cv2.GaussianBlur(dr, (kernel, kernel), 0)
        heatmaps[k] = dr[border:-border, border:-border]
        heatmaps[k] *= origin_max / np.max(heatmaps[k])
    return heatmaps


class MegviiHeatmap:
    """MMPose ``MegviiHeatmap``.

    Args:
        input_size: (w, h) of the crop, e.g. (192, 256).
        heatmap_size: (W, H) of the heatmap, e.g. (48, 64).
        kernel_size: the Gaussian kernel (odd).
    """

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], kernel_size: int):
        self.input_size = _size(input_size, "input_size")
        self.heatmap_size = _size(heatmap_size, "heatmap_size")
        self.kernel_size = int(kernel_size)
        self.scale_factor = (np.array(self.input_size) / self.heatmap_size).astype(np.float32)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Targets of one instance: ``heatmaps`` float32 [K, H, W] (peak 255), ``keypoint_weights`` [1, K].

        Args:
            keypoints: float [1, K, 2] in crop pixels.
            keypoints_visible: float [1, K] (default all 1).

        Raises:
            ValueError: not a single instance [1, K, 2].
        """
        import cv2

        kp = np.asarray(keypoints)
        if kp.ndim != 3 or kp.shape[0] != 1 or kp.shape[2] < 2:
            raise ValueError(f"MegviiHeatmap encodes one instance [1, K, 2], got {list(kp.shape)}")
        vis = np.ones(kp.shape[:2], np.float32) if keypoints_visible is None else np.asarray(keypoints_visible)
        w, h = self.heatmap_size
        heatmaps = np.zeros((kp.shape[1], h, w), dtype=np.float32)
        weights = vis.copy()
        for k in range(kp.shape[1]):
            if vis[0, k] < 0.5:
                continue
            kx, ky = (kp[0, k, :2] / self.scale_factor).astype(np.int64)
            if kx < 0 or kx >= w or ky < 0 or ky >= h:
                weights[0, k] = 0
                continue
            heatmaps[k, ky, kx] = 1.0
            heatmaps[k] = cv2.GaussianBlur(heatmaps[k], (self.kernel_size, self.kernel_size), 0)
            heatmaps[k] = heatmaps[k] / heatmaps[k, ky, kx] * 255.0
        return {"heatmaps": heatmaps, "keypoint_weights": weights}

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One instance: heatmaps float [K, H, W] -> (keypoints float32 [1, K, 2] crop pixels, scores [1, K]).

        Raises:
            ValueError: not [K, H, W] of the codec's heatmap size.
        """
        hm = np.array(heatmaps, copy=True)
        if hm.ndim != 3 or (hm.shape[2], hm.shape[1]) != self.heatmap_size:
            raise ValueError(f"heatmaps must be [K, {self.heatmap_size[1]}, {self.heatmap_size[0]}], got {hm.shape}")
        hm = gaussian_blur(hm, self.kernel_size)
        k, h, w = hm.shape
        flat = hm.reshape(k, -1)
        idx = np.argmax(flat, axis=1)
        scores = np.amax(flat, axis=1)
        keypoints = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
        keypoints[scores <= 0.0] = -1
        for j in range(k):
            px, py = int(keypoints[j, 0]), int(keypoints[j, 1])
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([hm[j, py, px + 1] - hm[j, py, px - 1], hm[j, py + 1, px] - hm[j, py - 1, px]])
                keypoints[j] += np.sign(diff) * 0.25 + 0.5
        scores = scores / 255.0 + 0.5
        return keypoints[None] * self.scale_factor, scores[None]


#: The training kernels of MMPose's MSPN / RSN configs, widest first: ``[15, 11, 9, 7, 5]`` (multi-stage) or the last
#: four (one stage); :func:`megvii_levels` takes the last ``num_units`` (+1 with several stages).
MEGVII_TRAIN_KERNELS = (15, 11, 9, 7, 5)


def megvii_levels(num_stages: int, num_units: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(kernel sizes of the target levels, target level of each of the ``num_stages * num_units`` predictions).

    MMPose's configs (4 units): one stage ``kernel_sizes = [11, 9, 7, 5]``, ``level_indices = [0, 1, 2, 3]``; S > 1
    stages ``[15, 11, 9, 7, 5]`` and ``[0, 1, 2, 3] * (S - 1) + [1, 2, 3, 4]`` (the last stage trains one kernel
    finer). Fewer units (small test models) take the finest kernels the same way.

    Raises:
        ValueError: no stages / units, or more units than the kernels allow (4).
    """
    if num_stages < 1 or not 1 <= num_units <= len(MEGVII_TRAIN_KERNELS) - 1:
        raise ValueError(f"Megvii training targets need 1+ stages and 1-4 units, got {num_stages} x {num_units}")
    levels = num_units + (num_stages > 1)
    kernels = MEGVII_TRAIN_KERNELS[-levels:]
    if num_stages == 1:
        return kernels, tuple(range(num_units))
    return kernels, tuple(range(num_units)) * (num_stages - 1) + tuple(range(1, num_units + 1))


class MultiLevelMegviiHeatmap:
    """MMPose ``GenerateTarget(multilevel=True, encoder=[MegviiHeatmap(kernel_size=k) for k in kernel_sizes])``.

    Args:
        input_size, heatmap_size: (w, h) as :class:`MegviiHeatmap`.
        kernel_sizes: one kernel per level (odd), widest first.
    """

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], kernel_sizes) -> None:
        if not kernel_sizes:
            raise ValueError("MultiLevelMegviiHeatmap needs at least one kernel size")
        self.levels = tuple(MegviiHeatmap(input_size, heatmap_size, k) for k in kernel_sizes)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """Targets of one instance: ``level_heatmaps`` float32 [L, K, H, W] (one per kernel), ``heatmaps`` the last
        level [K, H, W], ``keypoint_weights`` [1, K] (the same at every level: they depend only on where the keypoint
        falls; MMPose stacks L equal copies).

        Raises:
            ValueError: not a single instance [1, K, 2].
        """
        encoded = [c.encode(keypoints, keypoints_visible) for c in self.levels]
        levels = np.stack([e["heatmaps"] for e in encoded])
        return {"level_heatmaps": levels, "heatmaps": levels[-1], "keypoint_weights": encoded[-1]["keypoint_weights"]}


def decode_megvii_heatmaps(
    heatmaps: np.ndarray, input_size: tuple[int, int], kernel_size: int = MEGVII_DECODE_KERNEL
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps [B, K, H, W] -> (keypoints float32 [B, K, 2] crop pixels, scores [B, K]): :meth:`MegviiHeatmap.decode`
    per instance (as MMPose's ``BaseHead.decode``), the card's decode of ``codec == "megvii"``.

    Raises:
        ValueError: not [B, K, H, W].
    """
    hm = np.asarray(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be [B, K, H, W], got shape {list(hm.shape)}")
    codec = MegviiHeatmap(input_size, (hm.shape[-1], hm.shape[-2]), kernel_size)
    if len(hm) == 0:
        return np.zeros((0, hm.shape[1], 2), np.float32), np.zeros((0, hm.shape[1]), hm.dtype)
    pairs = [codec.decode(x) for x in hm]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


__all__ = [
    "MEGVII_DECODE_KERNEL",
    "MEGVII_TRAIN_KERNELS",
    "MegviiHeatmap",
    "MultiLevelMegviiHeatmap",
    "decode_megvii_heatmaps",
    "gaussian_blur",
    "megvii_levels",
]
