"""SimCC / RTMPose decode parity with MMPose 1.3.2 (``SimCCLabel.decode``, ``get_simcc_maximum``, the flip test of
``RTMCCHead.predict`` / ``SimCCHead.predict``), against tests/data/mmpose/simcc.npz written by
tests/mmpose_golden/make_simcc_golden.py in MMPose's venv (the vectors are rebuilt here from their names by
``recipe.simcc_vectors``; only MMPose's answers are stored).

The decode is an argmax, a division by the split ratio and (flip test) a 0.5 average: float64 must agree exactly;
float32 runs are held to ``models.tolerance.PARITY_FP32`` in normalised units (crop px / input size) and print their
measured deviation (``pytest -s``: ``[parity] ...``). The card path (``ModelCard.decode``) is what the service runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import codecs
from models.card import InputSpec, ModelCard, OutputSpec
from models.keypoints import COCO17_NAMES, flip_indices
from models.tolerance import PARITY_FP32
from tests.golden import load_npz, recipe

GOLDEN = load_npz(Path(__file__).resolve().parents[1] / "data" / "mmpose" / "simcc.npz")
DECODE_CASES = ("random", "random_f64", "edge", "ratio1", "ratio3", "ties")
FLIP_CASES = ("flip", "flip_ties", "flip_f64")


def inputs(case: str) -> list[np.ndarray]:
    """The case's vectors as the generator built them: [x, y] or [x, y, x_flip, y_flip], [N, 17, W]."""
    if case == "edge":
        return [GOLDEN["edge_x"], GOLDEN["edge_y"]]
    n, levels, f64, *lengths = (int(v) for v in GOLDEN[f"{case}_inputs"])
    out = []
    for part, length in zip(("x", "y", "x_flip", "y_flip"), lengths):
        v = recipe.simcc_vectors(f"{case}/{part}", (n, 17, length), levels)
        out.append(v if f64 else v.astype(np.float32))
    return out


def check(what: str, ours: np.ndarray, theirs: np.ndarray, size, exact: bool) -> float:
    """Max deviation (normalised by ``size`` = (w, h) for coordinates, absolute when None), printed; float64 must be
    exactly equal, float32 within ``PARITY_FP32``."""
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs {theirs.shape}"
    diff = np.abs(ours.astype(np.float64) - theirs)
    dev = float((diff if size is None else diff / np.asarray(size, np.float64)).max())
    print(f"[parity] {what}: max deviation {dev:.3g}")
    if exact:
        np.testing.assert_array_equal(ours, theirs, err_msg=what)
    else:
        assert dev <= PARITY_FP32, f"{what}: max deviation {dev:.3g} > {PARITY_FP32:g}"
    return dev


def rtmpose_card(ratio: float = 2.0, size=(192, 256)) -> ModelCard:
    return ModelCard(
        name="rtmpose",
        model_file="end2end.onnx",
        input=InputSpec(name="input", width=size[0], height=size[1]),
        output=OutputSpec(name="simcc_x", y_name="simcc_y", kind="simcc", split_ratio=ratio),
        keypoints={"name": "coco17", "names": list(COCO17_NAMES)},
    )


def test_golden_rebuilds_the_generators_vectors():
    """The stored edge rows and the rebuilt recipe vectors have the shapes the generator recorded (a recipe change
    would show here first, not as an unexplained parity failure)."""
    x, y = inputs("random")
    assert x.shape == (4, 17, 384) and y.shape == (4, 17, 512) and x.dtype == np.float32
    assert inputs("random_f64")[0].dtype == np.float64
    assert np.isin(inputs("ties")[0], [0, 1, 2]).all()
    assert (x.max(axis=-1) > 0).all(), "the recipe's bumps make every random row's maximum positive"


@pytest.mark.parametrize("case", DECODE_CASES)
def test_simcc_label_decode_and_maximum_equal_mmpose(case):
    x, y = inputs(case)
    f64 = x.dtype == np.float64
    size = tuple(int(v) for v in GOLDEN[f"{case}_size"])
    ratio = float(GOLDEN[f"{case}_ratio"])
    locs, vals = codecs.get_simcc_maximum(x, y)
    check(f"get_simcc_maximum {case} locs", locs, GOLDEN[f"{case}_max_locs"], None, exact=True)
    check(f"get_simcc_maximum {case} vals", vals, GOLDEN[f"{case}_max_vals"], None, exact=f64)
    keypoints, scores = codecs.SimCCLabel(size, ratio).decode(x, y)
    check(f"SimCCLabel.decode {case} keypoints", keypoints, GOLDEN[f"{case}_keypoints"], size, exact=f64)
    check(f"SimCCLabel.decode {case} scores", scores, GOLDEN[f"{case}_scores"], None, exact=f64)
    assert keypoints.dtype == GOLDEN[f"{case}_keypoints"].dtype == np.float32  # MMPose's locations are float32
    # the card (the service's decode) gives the same numbers, scores as float32
    out = rtmpose_card(ratio, size).decode((x, y))
    np.testing.assert_array_equal(out[..., :2], keypoints)
    np.testing.assert_array_equal(out[..., 2], scores.astype(np.float32))


def test_edge_rows_cover_what_they_claim():
    """The edge case's MMPose answers show the rules the decode must follow (so the golden tests them)."""
    kp, sc = GOLDEN["edge_keypoints"][0], GOLDEN["edge_scores"][0]
    assert (kp[:3] == -0.5).all() and (sc[:3] <= 0).all()  # zero / negative / zero-x rows: -1 bin, / 2
    np.testing.assert_array_equal(kp[3], [0, 0])
    np.testing.assert_array_equal(kp[4], [191.5, 255.5])
    np.testing.assert_array_equal(kp[5], [5.0, 1.5])  # ties: the first index
    assert sc[4] == np.float32(0.6) and sc[10] == np.float32(0.1)  # the smaller of the two maxima


def test_vector_lengths_equal_mmpose_encode():
    for w, h, ratio, wx, wy in GOLDEN["sizes"]:
        assert codecs.SimCCLabel((int(w), int(h)), ratio).vector_sizes == (int(wx), int(wy)), (w, h, ratio)


@pytest.mark.parametrize("head", ["rtmcc", "simcc"])
@pytest.mark.parametrize("case", FLIP_CASES)
def test_flip_test_equals_mmpose_head_predict(case, head):
    """``ModelCard.decode(output, flipped)`` = ``RTMCCHead.predict`` / ``SimCCHead.predict`` with ``flip_test``."""
    x, y, xf, yf = inputs(case)
    f64 = x.dtype == np.float64
    out = rtmpose_card().decode((x, y), (xf, yf))
    check(f"flip test {case} {head} keypoints", out[..., :2], GOLDEN[f"{case}_{head}_keypoints"], (192, 256), f64)
    want_scores = GOLDEN[f"{case}_{head}_scores"]
    check(f"flip test {case} {head} scores", out[..., 2], want_scores.astype(np.float32), None, exact=f64)
    if f64:  # float64 vectors average in float64; the card's float32 scores are their rounding
        _, scores64 = codecs.SimCCLabel((192, 256), 2.0).decode(
            *(((a + b) * 0.5) for a, b in zip((x, y), codecs.flip_back_simcc(xf, yf, flip_indices())))
        )
        np.testing.assert_array_equal(scores64, want_scores)
