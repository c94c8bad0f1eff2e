"""models/rtmdet.py against MMDet 3.3.0's own RTMDet-nano person (tests/data/mmdet_rtmdet/, written by
tests/mmpose_golden/make_rtmdet_golden.py in the MMPose venv): the same state-dict keys and shapes, and the head's
outputs with the same recipe weights (float64: 1e-6; float32: 1e-3, CPU-dependent rounding through ~30 layers).
Skips until the golden file has been made (it needs mmdet, which this project's environment does not have)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mmdet_rtmdet" / "rtmdet_nano_person.npz"
pytestmark = pytest.mark.skipif(not GOLDEN.is_file(), reason="RTMDet golden not made (tests/mmpose_golden/README.md)")


def _recipe():
    spec = importlib.util.spec_from_file_location(
        "recipe", Path(__file__).resolve().parents[1] / "mmpose_golden" / "recipe.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(GOLDEN))


@pytest.fixture(scope="module")
def model():
    from models.rtmdet import RTMDET_CONFIGS, RTMDet

    m = RTMDet(RTMDET_CONFIGS["rtmdet_nano_person"]).eval()
    recipe = _recipe()
    sd = m.state_dict()
    m.load_state_dict({k: torch.from_numpy(recipe.recipe_value(k, tuple(v.shape))) for k, v in sd.items()})
    return m


def test_state_dict_keys_and_shapes_are_mmdets(golden, model):
    ours = model.state_dict()
    assert list(ours) == list(golden["keys"])
    assert [list(v.shape) for v in ours.values()] == [json.loads(s) for s in golden["shapes"]]


@pytest.mark.parametrize(("dtype", "suffix", "tol"), [(torch.float64, "_f64", 1e-6), (torch.float32, "", 1e-3)])
def test_head_outputs_are_mmdets(golden, model, dtype, suffix, tol):
    m = model.to(dtype)
    with torch.no_grad():
        cls, reg = m.bbox_head(m.neck(m.backbone(torch.from_numpy(golden["x"]).to(dtype))))
    for level, (c, r) in enumerate(zip(cls, reg)):
        np.testing.assert_allclose(c.numpy(), golden[f"cls_{level}{suffix}"], rtol=tol, atol=tol)
        np.testing.assert_allclose(r.numpy(), golden[f"reg_{level}{suffix}"], rtol=tol, atol=tol * 32)


@pytest.mark.parametrize(("dtype", "suffix", "tol"), [(torch.float64, "_f64", 1e-6), (torch.float32, "", 1e-3)])
def test_decoded_candidates_are_mmdets(golden, model, dtype, suffix, tol):
    """``RTMDet.forward``: MMDet's priors (MlvlPointGenerator, offset 0), ``DistancePointBBoxCoder.decode`` and sigmoid,
    in MMDet's anchor order."""
    m = model.to(dtype)
    with torch.no_grad():
        boxes, scores = m(torch.from_numpy(golden["x"]).to(dtype))
    np.testing.assert_allclose(boxes.numpy(), golden[f"boxes{suffix}"], rtol=tol, atol=tol * 32)
    np.testing.assert_allclose(scores.numpy(), golden[f"scores{suffix}"], rtol=tol, atol=tol)
