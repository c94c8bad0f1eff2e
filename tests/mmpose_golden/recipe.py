"""Deterministic parameter and input recipe shared by ``make_golden.py`` (MMPose venv) and the tests.

Numpy only (both environments import it by file path). Every tensor is a pure function of its
state-dict key name and shape, so the golden files store the recipe, the inputs and the outputs,
never the weights. ``np.random.RandomState`` (NumPy's legacy generator, whose stream is frozen by
NumPy's compatibility policy) is seeded with ``zlib.crc32(key)``.

Recipe by the key's last component (``leaf``) and rank:

* ``num_batches_tracked``: 0 (int64).
* ``linspace_x`` / ``linspace_y``: left as the model built them (MMPose's fixed grid); likewise RLE's RealNVP
  buffers ``loc``, ``cov`` (the prior) and ``mask`` (the coupling masks).
* ``running_mean``: uniform(-0.1, 0.1).  ``running_var``: uniform(0.5, 1.5).
* ``weight`` of rank 1 (BatchNorm gamma): uniform(0.5, 1.0).
* ``bias``: uniform(-0.1, 0.1).
* ``weight`` of rank 4 (conv / deconv): normal(0, 1) * gain / sqrt(prod(shape[1:])) with gain
  ``WEIGHT_GAIN`` (1.3; keeps activations of a 50-layer ReLU network O(1)), except the heads'
  ``final_layer.weight`` whose gain is ``FINAL_GAIN`` (16.0: the full models' logits then have a standard deviation of about 3, so
  with beta 1 the soft-argmax is neither uniform nor one-hot).
* ``weight`` of rank 2 (Linear: the DeepPose / RLE ``fc`` and RealNVP's layers): normal(0, 1) * ``WEIGHT_GAIN`` /
  sqrt(in_features).

Version 1 gained the last two rules (Linear weights, RealNVP buffers) with the regression zoo; they cover keys the
recipe used to reject, so every value it gave before is unchanged and the earlier golden files stay valid.
"""

from __future__ import annotations

import zlib

import numpy as np

RECIPE_VERSION = 1
WEIGHT_GAIN = 1.3
FINAL_GAIN = 16.0


def _rng(key: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(key.encode("utf-8")))


def recipe_value(key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The recipe's value for one state-dict entry (None: keep the model's own value)."""
    leaf = key.rsplit(".", 1)[-1]
    shape = tuple(int(s) for s in shape)
    if leaf == "num_batches_tracked":
        return np.zeros(shape, dtype=np.int64)
    if leaf in ("linspace_x", "linspace_y") or (".flow_model." in key and leaf in ("loc", "cov", "mask")):
        return None
    rng = _rng(key)
    if leaf == "running_mean":
        return rng.uniform(-0.1, 0.1, size=shape).astype(np.float32)
    if leaf == "running_var":
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    if leaf == "bias":
        return rng.uniform(-0.1, 0.1, size=shape).astype(np.float32)
    if leaf == "weight" and len(shape) == 1:
        return rng.uniform(0.5, 1.0, size=shape).astype(np.float32)
    if leaf == "weight" and len(shape) == 2:
        return (rng.standard_normal(size=shape) * (WEIGHT_GAIN / np.sqrt(shape[1]))).astype(np.float32)
    if leaf == "weight" and len(shape) == 4:
        gain = FINAL_GAIN if key.endswith("final_layer.weight") else WEIGHT_GAIN
        fan = int(np.prod(shape[1:]))
        return (rng.standard_normal(size=shape) * (gain / np.sqrt(fan))).astype(np.float32)
    raise ValueError(f"recipe has no rule for {key} {shape}")


def fill_state_dict(state_dict_shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Recipe values for every key that the recipe sets (keys it keeps are left out)."""
    out = {}
    for k, shape in state_dict_shapes.items():
        v = recipe_value(k, shape)
        if v is not None:
            out[k] = v
    return out


def recipe_array(name: str, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """A named standard-normal float32 input (e.g. head features), seeded by ``name``."""
    return (_rng(name).standard_normal(size=tuple(shape)) * scale).astype(np.float32)


def synthetic_image(height: int = 240, width: int = 320) -> np.ndarray:
    """uint8 RGB [H, W, 3] test image: flat-coloured 40-pixel tiles plus a few flat discs.

    Flat regions keep the stored crops compressible (bilinear warping only blends along edges)
    while still giving the network structure to respond to. Only used to *create* the golden;
    the golden stores the image itself.
    """
    palette = np.array(
        [[200, 30, 30], [30, 160, 60], [40, 40, 220], [230, 220, 40], [20, 20, 20], [240, 240, 240], [150, 60, 190]],
        dtype=np.int64,
    )
    yy, xx = np.mgrid[0:height, 0:width]
    tile = (xx // 40) * 3 + (yy // 40) * 5
    img = palette[tile % len(palette)]
    for cx, cy, rad, col in (
        (100, 90, 30, (250, 120, 40)),
        (200, 150, 45, (30, 220, 200)),
        (260, 60, 20, (90, 20, 140)),
    ):
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < rad**2] = col
    return img.astype(np.uint8)


def simcc_vectors(name: str, shape: tuple[int, ...], levels: int = 0) -> np.ndarray:
    """Named SimCC-like vectors [..., W] (float64), seeded by ``name``, computed with + - * / only (no ``np.exp``,
    whose last bit may differ between numpy builds), so both sides rebuild the same bits and store none of them.

    ``levels`` 0: uniform noise in [-0.05, 0.2) plus one parabolic bump per row (height 0.3..1.2, half-width 4..16
    bins, centre -5..W+5, so some maxima sit on a border); ``levels`` n > 0: integers 0..n-1 (many ties).
    Independent of :data:`RECIPE_VERSION`'s parameter rules (added with the SimCC goldens; no earlier value changes).
    """
    rng = _rng(name)
    shape = tuple(int(s) for s in shape)
    if levels:
        return rng.randint(0, levels, size=shape).astype(np.float64)
    length = shape[-1]
    centre = rng.uniform(-5, length + 5, size=(*shape[:-1], 1))
    half = rng.uniform(4, 16, size=(*shape[:-1], 1))
    height = rng.uniform(0.3, 1.2, size=(*shape[:-1], 1))
    bump = height * np.maximum(0.0, 1.0 - ((np.arange(length) - centre) / half) ** 2)
    return rng.uniform(-0.05, 0.2, size=shape) + bump
