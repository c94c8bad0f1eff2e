"""What the MMPose parity tests share: the parameter recipe of tests/mmpose_golden/recipe.py (the same file the
golden generators import), filling a module from it, and reading golden ``.npz`` files."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch


def _load_recipe():
    spec = importlib.util.spec_from_file_location(
        "golden_recipe", Path(__file__).resolve().parent / "mmpose_golden" / "recipe.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: tests/mmpose_golden/recipe.py, loaded by path (as the generators load it in MMPose's venv).
recipe = _load_recipe()


@functools.cache
def _recipe_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor | None:
    v = recipe.recipe_value(key, shape)
    return None if v is None else torch.from_numpy(v)


def fill(module: torch.nn.Module, prefix: str = "") -> torch.nn.Module:
    """Set every parameter / buffer of ``module`` to the recipe's value for ``prefix + key`` (keys the recipe keeps
    stay as built); returns ``module`` in eval mode."""
    sd = module.state_dict()
    new = {}
    for k, v in sd.items():
        t = _recipe_tensor(prefix + k, tuple(v.shape))
        new[k] = v if t is None else t
    module.load_state_dict(new, strict=True)
    return module.eval()


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a golden ``.npz`` file, loaded."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
