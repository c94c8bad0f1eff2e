"""What the MMPose parity tests share: the parameter recipe of tests/mmpose_golden/recipe.py (the same file the
golden generators import), filling a module from it, reading golden ``.npz`` files, and the deviation and report of
every family parity suite."""

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


def reldev(got, want) -> float:
    """max |got - want| / max(1, max |want|) in float64, the parity tests' deviation; NaN where both are NaN counts as
    equal (MSPN's Megvii goldens hold NaN where MMPose's decode gives it); a different shape or NaN pattern fails."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaNs differ"
    ok = ~np.isnan(want)
    if not ok.any():
        return 0.0
    return float(np.abs(got[ok] - want[ok]).max() / max(1.0, float(np.abs(want[ok]).max())))


def reporter(tag: str):
    """``report(what, dev, tol) -> dev`` for one parity suite: prints ``[<tag>] <what>: max deviation <dev>`` (read
    with ``pytest -s``) and asserts ``dev <= tol``."""

    def report(what: str, dev: float, tol: float) -> float:
        print(f"[{tag}] {what}: max deviation {dev:.3g}")
        assert dev <= tol, f"{what}: max deviation {dev:.3g} > {tol:g}"
        return dev

    return report
