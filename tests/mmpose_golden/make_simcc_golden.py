#!/usr/bin/env python3
"""Write the SimCC / RTMPose decode goldens (tests/data/mmpose/simcc.npz) with MMPose 1.3.2's own code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_simcc_golden.py   # a few seconds

No network and no weights. The vectors are not stored: both sides rebuild them from their names with
``recipe.simcc_vectors`` (numpy's frozen legacy ``RandomState`` seeded by the name; + - * / only), cast to float32
unless the case is float64. What is written (read by ``tests/models/test_mmpose_parity.py``):

* ``<case>_inputs``: (N, levels, float64?, Wx, Wy[, Wx, Wy]) of the recipe vectors ``<case>/x``, ``<case>/y``
  (``<case>/x_flip``, ``<case>/y_flip`` for the flip cases), shapes [N, 17, W].
* ``<case>_keypoints`` [N, K, 2], ``<case>_scores`` [N, K]: ``SimCCLabel(input_size, simcc_split_ratio=ratio,
  sigma=(4.9, 5.66), normalize=False).decode`` applied to each instance (as ``BaseHead.decode`` does: this codec has
  no batch decode); ``<case>_ratio``, ``<case>_size``: the split ratio and crop (w, h).
* ``<case>_max_locs`` [N, K, 2], ``<case>_max_vals`` [N, K]: ``get_simcc_maximum`` on the whole [N, K, W] batch.
* ``edge_x``, ``edge_y``: the hand-made rows of case ``edge`` (stored: mostly constant): all zero, negative, a zero
  x axis under a positive y axis, maxima at the first / last bin, ties of two and three bins, a tie at both borders,
  constant rows, tiny positive maxima, the centre bins, the y maximum as the score.
* ``sizes``: rows (w, h, ratio, Wx, Wy): the lengths of ``SimCCLabel.encode``'s x / y labels, i.e. MMPose's
  ``np.around(w * ratio)``, ``np.around(h * ratio)``, including sizes where ``w * ratio`` ends in .5.
* ``<flip case>_<head>_{keypoints,scores}``: the head's ``predict`` with ``test_cfg=dict(flip_test=True)`` on
  features ``[(x, y), (x_flip, y_flip)]``, ``<head>`` ``rtmcc`` (``RTMCCHead`` built from
  ``rtmpose-m_8xb256-420e_coco-256x192.py``'s ``model.head``) and ``simcc`` (``SimCCHead`` from
  ``simcc_res50_8xb64-210e_coco-256x192.py``'s; both 192x256, split ratio 2.0). The heads' networks are not run:
  ``forward`` is replaced on the instance by the identity, so ``predict`` receives the given vectors as the network's
  output and runs MMPose's own flip-back (``flip_vectors``: joints by COCO's ``flip_indices``, x reversed), the 0.5
  average and the decode.

Cases: ``random`` (N 4, 192x256, ratio 2.0), ``random_f64`` (float64), ``edge``, ``ratio1`` (ratio 1.0), ``ratio3``
(ratio 3.0, 48x64), ``ties`` (integers 0..2: many ties); flip cases ``flip``, ``flip_ties`` (the averages tie too),
``flip_f64``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from make_golden import GoldenWriter, install_import_shims, load_recipe, output_dir  # noqa: E402

RTMPOSE_CONFIG = "body_2d_keypoint/rtmpose/coco/rtmpose-m_8xb256-420e_coco-256x192.py"
SIMCC_CONFIG = "body_2d_keypoint/simcc/coco/simcc_res50_8xb64-210e_coco-256x192.py"
K = 17


def _edge_rows(wx: int, wy: int) -> tuple[np.ndarray, np.ndarray]:
    """[1, 12, Wx], [1, 12, Wy] hand-made rows (float32)."""
    x, y = np.full((1, 12, wx), 0.1, np.float32), np.full((1, 12, wy), 0.1, np.float32)
    x[0, 0], y[0, 0] = 0.0, 0.0  # all zero: score 0 -> -1
    x[0, 1], y[0, 1] = -0.3, -0.2  # negative
    x[0, 2], y[0, 2, 40] = 0.0, 0.9  # x all zero, y positive: min 0 -> -1
    x[0, 3, 0], y[0, 3, 0] = 0.7, 0.8  # first bins
    x[0, 4, wx - 1], y[0, 4, wy - 1] = 0.7, 0.6  # last bins
    x[0, 5, [10, 11]], y[0, 5, [3, 300]] = 0.5, 0.5  # ties of two: the first index
    x[0, 6, [7, 100, 380]], y[0, 6, [0, 511]] = 0.9, 0.4  # ties of three; a tie at both borders
    x[0, 7], y[0, 7] = 0.25, 0.25  # constant rows: every bin ties -> bin 0
    x[0, 8], y[0, 8] = -1.0, -1.0
    x[0, 8, 50], y[0, 8, 61] = 1e-7, 2e-7  # both maxima tiny and positive: kept, score 1e-7
    x[0, 9, 191], y[0, 9, 255] = 2.0, 2.0  # the centre bins of 192x256 at ratio 2 (95.5, 127.5 px)
    x[0, 10, 383], y[0, 10, 0] = 3.0, 0.05  # y's maximum (0.1 floor) is the score
    x[0, 11, 1], y[0, 11, 510] = 0.1000001, 0.1000001  # just above the floor
    return x, y


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose")
    install_import_shims()
    import mmpose
    import mmpose.codecs  # noqa: F401  (registers codecs)
    import mmpose.models  # noqa: F401  (registers models)
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.codecs import SimCCLabel
    from mmpose.codecs.utils import get_simcc_maximum
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample

    init_default_scope("mmpose")
    recipe = load_recipe()
    cfg_root = Path(mmpose.__file__).parent / ".mim" / "configs"
    flip_indices = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # COCO (checked against schema.json)
    arrays: dict[str, np.ndarray] = {}

    def vectors(name: str, n: int, lengths: tuple[int, ...], levels: int = 0, f64: bool = False) -> list[np.ndarray]:
        """The recipe's vectors ``<name>/x``, ``<name>/y`` (then ``x_flip``, ``y_flip``); their shapes are stored."""
        out = []
        for part, length in zip(("x", "y", "x_flip", "y_flip"), lengths):
            v = recipe.simcc_vectors(f"{name}/{part}", (n, K, length), levels)
            out.append(v if f64 else v.astype(np.float32))
        arrays[f"{name}_inputs"] = np.array([n, levels, int(f64), *lengths])
        return out

    def decode_case(name: str, x: np.ndarray, y: np.ndarray, size: tuple[int, int], ratio: float) -> None:
        codec = SimCCLabel(input_size=size, sigma=(4.9, 5.66), simcc_split_ratio=ratio, normalize=False)
        kpts, scores = zip(*(codec.decode(x[i], y[i]) for i in range(len(x))))
        locs, vals = get_simcc_maximum(x.copy(), y.copy())
        arrays.update({
            f"{name}_ratio": np.float64(ratio), f"{name}_size": np.array(size),
            f"{name}_keypoints": np.concatenate(kpts), f"{name}_scores": np.concatenate(scores),
            f"{name}_max_locs": locs, f"{name}_max_vals": vals,
        })  # fmt: skip

    decode_case("random", *vectors("random", 4, (384, 512)), (192, 256), 2.0)
    decode_case("random_f64", *vectors("random_f64", 4, (384, 512), f64=True), (192, 256), 2.0)
    edge_x, edge_y = _edge_rows(384, 512)
    arrays["edge_x"], arrays["edge_y"] = edge_x, edge_y
    decode_case("edge", edge_x, edge_y, (192, 256), 2.0)
    decode_case("ratio1", *vectors("ratio1", 2, (192, 256)), (192, 256), 1.0)
    decode_case("ratio3", *vectors("ratio3", 2, (144, 192)), (48, 64), 3.0)
    decode_case("ties", *vectors("ties", 3, (384, 512), levels=3), (192, 256), 2.0)

    sizes = []
    for w, h, ratio in ((192, 256, 2.0), (288, 384, 2.0), (191, 255, 1.5), (193, 257, 1.5), (192, 256, 2.5),
                        (5, 7, 0.5), (64, 48, 3.0)):  # fmt: skip
        enc = SimCCLabel(input_size=(w, h), sigma=(4.9, 5.66), simcc_split_ratio=ratio).encode(
            np.array([[[w / 2, h / 2]]], np.float32)
        )
        sizes.append((w, h, ratio, enc["keypoint_x_labels"].shape[-1], enc["keypoint_y_labels"].shape[-1]))
    arrays["sizes"] = np.array(sizes, np.float64)

    heads = {}
    for tag, rel in (("rtmcc", RTMPOSE_CONFIG), ("simcc", SIMCC_CONFIG)):
        head = MODELS.build(Config.fromfile(str(cfg_root / rel)).model.head).eval()
        head.forward = lambda feats: feats  # the network's output is the given vectors; predict runs as MMPose's
        assert tuple(head.decoder.input_size) == (192, 256) and head.decoder.simcc_split_ratio == 2.0
        assert not head.decoder.use_dark and not head.decoder.decode_visibility
        heads[tag] = head
    samples = [PoseDataSample(metainfo=dict(flip_indices=flip_indices)) for _ in range(4)]
    lengths = (384, 512, 384, 512)
    flip_inputs = {
        "flip": vectors("flip", 4, lengths),
        "flip_ties": vectors("flip_ties", 4, lengths, levels=3),
        "flip_f64": vectors("flip_f64", 4, lengths, f64=True),
    }
    for tag, head in heads.items():
        for case, inputs in flip_inputs.items():
            t = [torch.from_numpy(a.copy()) for a in inputs]
            with torch.no_grad():
                preds = head.predict([(t[0], t[1]), (t[2], t[3])], samples, test_cfg=dict(flip_test=True))
            arrays[f"{case}_{tag}_keypoints"] = np.concatenate([p.keypoints for p in preds])
            arrays[f"{case}_{tag}_scores"] = np.concatenate([p.keypoint_scores for p in preds])

    writer = GoldenWriter(out)
    writer.npz("simcc.npz", **arrays)
    writer.print_sizes()


if __name__ == "__main__":
    main()
