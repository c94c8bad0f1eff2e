"""The heatmaps and keypoints of the DARK / UDP codec goldens, rebuilt by name on both sides (``make_codec_golden.py``
in MMPose's venv, ``tests/models/test_codecs_dark_udp.py`` here), so the golden files store none of them.

numpy only, + - * / and ``max`` (no ``np.exp``, whose last bit may differ between numpy builds); numpy's frozen legacy
``RandomState`` seeded with ``crc32(name)``.
"""

from __future__ import annotations

import zlib

import numpy as np

#: Names of the hand-made maps of :func:`edge_heatmaps`, in order.
EDGE_CASES: tuple[str, ...] = (
    "all_zero",
    "constant",
    "negative",
    "corner_top_left",
    "corner_bottom_right",
    "left_border",
    "x_is_1",
    "x_is_w_minus_2",
    "y_is_1",
    "y_is_h_minus_2",
    "delta",
    "tie",
    "fractional_bump",
    "tiny_positive",
)


def _rng(name: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF)


def _bump(h: int, w: int, cx: float, cy: float, half: float, height: float) -> np.ndarray:
    """A smooth bump ``height * max(0, 1 - d^2 / half^2)^2`` centred on (cx, cy), float64 [h, w]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.maximum(0.0, 1.0 - ((xx - cx) ** 2 + (yy - cy) ** 2) / (half * half))
    return height * t * t


def random_heatmaps(name: str, shape: tuple[int, int, int, int]) -> np.ndarray:
    """float64 [N, K, H, W]: uniform noise in [-0.02, 0.05) plus one bump per map (height 0.2..1.1, half-width
    2..8 px, centre -3..W+3 / -3..H+3, so some maxima sit on a border)."""
    n, k, h, w = (int(s) for s in shape)
    rng = _rng(name)
    out = rng.uniform(-0.02, 0.05, size=(n, k, h, w))
    cx = rng.uniform(-3, w + 3, size=(n, k))
    cy = rng.uniform(-3, h + 3, size=(n, k))
    half = rng.uniform(2, 8, size=(n, k))
    height = rng.uniform(0.2, 1.1, size=(n, k))
    for i in range(n):
        for j in range(k):
            out[i, j] += _bump(h, w, cx[i, j], cy[i, j], half[i, j], height[i, j])
    return out


def edge_heatmaps(h: int, w: int) -> np.ndarray:
    """float64 [1, len(EDGE_CASES), H, W]: the hand-made maps named by :data:`EDGE_CASES`."""
    maps = np.zeros((len(EDGE_CASES), h, w))
    m = dict(zip(EDGE_CASES, range(len(EDGE_CASES))))
    maps[m["constant"]] = 0.3
    maps[m["negative"]] = -0.5
    maps[m["negative"], h // 2, w // 3] = -0.1
    maps[m["corner_top_left"]] = _bump(h, w, 0.0, 0.0, 4.0, 0.9)
    maps[m["corner_bottom_right"]] = _bump(h, w, w - 1.0, h - 1.0, 4.0, 0.9)
    maps[m["left_border"]] = _bump(h, w, 0.0, h / 2 + 0.3, 5.0, 0.8)
    maps[m["x_is_1"]] = _bump(h, w, 1.2, h / 2, 5.0, 0.8)
    maps[m["x_is_w_minus_2"]] = _bump(h, w, w - 2.1, h / 3, 5.0, 0.8)
    maps[m["y_is_1"]] = _bump(h, w, w / 2, 1.1, 5.0, 0.8)
    maps[m["y_is_h_minus_2"]] = _bump(h, w, w / 3, h - 2.2, 5.0, 0.8)
    maps[m["delta"], h // 2, w // 2] = 1.0
    maps[m["tie"]] = _bump(h, w, w / 4, h / 4, 3.0, 0.7) + _bump(h, w, 3 * w / 4, 3 * h / 4, 3.0, 0.7)
    maps[m["fractional_bump"]] = _bump(h, w, w / 2 + 0.37, h / 2 - 0.21, 6.0, 1.0)
    maps[m["tiny_positive"]] = _bump(h, w, w / 3 + 0.5, h / 2, 6.0, 1e-6)
    return maps[None]


def encode_keypoints(input_size: tuple[int, int], k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """float32 [1, k, 2] crop-pixel keypoints and [1, k] visibility for the encode cases: a fractional interior
    point, the crop's corners (0, 0) and (w - 1, h - 1), one just outside the crop, one far outside (weight 0), one
    invisible; k > 6 adds random interior points."""
    w, h = input_size
    rng = _rng(f"encode/{w}x{h}")
    kp = [[w * 0.4 + 0.37, h * 0.55 - 0.21], [0.0, 0.0], [w - 1.0, h - 1.0], [-6.0, h * 0.5], [w * 3.0, h * 0.5]]
    kp.append([w * 0.5, h * 0.5])
    kp += rng.uniform(0, [w - 1, h - 1], size=(max(0, k - 6), 2)).tolist()
    vis = np.ones((1, k), np.float32)
    vis[0, 5] = 0.0
    return np.array([kp[:k]], np.float32), vis
