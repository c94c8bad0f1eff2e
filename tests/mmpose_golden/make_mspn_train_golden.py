#!/usr/bin/env python3
"""Write the MSPN / RSN training-loss golden file tests/data/mmpose_mspn/train_loss.npz with MMPose 1.3.2's own code.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (same import shims; see README.md):

    cd <repo root> && /work/mmpose-venv-simcc/bin/python tests/mmpose_golden/make_mspn_train_golden.py   # seconds

Read by ``tests/training/test_mspn_training.py``. Every input is rebuilt by the test from its recipe name (not stored);
all in float64:

* ``ohkm``: ``KeypointOHKMMSELoss(use_target_weight=True)`` (topk 8) of ``recipe_array("mspn_train/ohkm_pred")`` and
  squared ``ohkm_target`` [3, 17, 8, 6], weights ``ohkm_weights > -0.85`` [3, 17].
* ``loss_kpt_<S>x<U>``: ``MSPNHead.loss`` (``loss_kpt``) of a recipe-filled head in eval mode (BN on its filled
  statistics) with ``unit_channels`` 8, 17 keypoints, ``out_shape`` (16, 12), S stages of U units, the configs'
  ``level_indices`` and losses (``KeypointMSELoss(use_target_weight=True, loss_weight=0.25)`` on units 1..U-1 of a
  stage, ``KeypointOHKMMSELoss(use_target_weight=True)`` on its last unit): features
  ``recipe_array("mspn_train/feat_<S>x<U>_<s>_<u>", [2, 8, 4 * 2**u, 3 * 2**u])``, targets squared
  ``recipe_array("mspn_train/target_<S>x<U>", [2, L, 17, 16, 12])`` per level, weights
  ``recipe_array("mspn_train/weights_<S>x<U>", [2, 17]) > -0.85`` (equal at every level, as ``GenerateTarget``'s).

And ``train_evaluators.json``: each entry's ``val_evaluator`` (``CocoMetric`` with ``nms_mode='none'``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_golden import GoldenWriter, fill, install_import_shims, load_recipe, output_dir  # noqa: E402

#: (stages, units) -> level_indices, as MMPose's configs (4 units) and ``models.megvii_heatmap.megvii_levels``.
CASES = {(1, 4): [0, 1, 2, 3], (2, 2): [0, 1, 1, 2], (3, 4): [0, 1, 2, 3] * 2 + [1, 2, 3, 4]}


def evaluators() -> dict:
    """For each MSPN / RSN config (``models/zoo/families/mspn_rsn.py``), its ``val_evaluator`` as MMPose's ``Config``
    reads it (the ``ann_file`` left out)."""
    import mmpose
    from mmengine.config import Config

    sys.path.insert(0, str(HERE.parents[1]))
    from models.zoo.families.mspn_rsn import ENTRIES

    root = Path(mmpose.__file__).parent / ".mim"
    out = {}
    for e in ENTRIES:
        ev = dict(Config.fromfile(str(root / e.mmpose_config)).val_evaluator)
        ev.pop("ann_file", None)
        out[e.mmpose_config] = ev
    return out


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmpose_mspn")
    install_import_shims()
    import mmpose.models  # noqa: F401
    import torch
    from mmengine.structures import InstanceData, PixelData
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample

    recipe = load_recipe()
    writer = GoldenWriter(out)
    res = {}
    ohkm = MODELS.build(dict(type="KeypointOHKMMSELoss", use_target_weight=True))
    pred = torch.from_numpy(recipe.recipe_array("mspn_train/ohkm_pred", (3, 17, 8, 6)).astype(np.float64))
    target = torch.from_numpy(recipe.recipe_array("mspn_train/ohkm_target", (3, 17, 8, 6)).astype(np.float64) ** 2)
    weights = torch.from_numpy((recipe.recipe_array("mspn_train/ohkm_weights", (3, 17)) > -0.85).astype(np.float64))
    res["ohkm"] = ohkm(pred, target, weights).numpy()
    for (stages, units), levels in CASES.items():
        tag = f"{stages}x{units}"
        mse = dict(type="KeypointMSELoss", use_target_weight=True, loss_weight=0.25)
        loss = ([mse] * (units - 1) + [dict(type="KeypointOHKMMSELoss", use_target_weight=True)]) * stages
        head = MODELS.build(
            dict(
                type="MSPNHead",
                out_shape=(16, 12),
                unit_channels=8,
                out_channels=17,
                num_stages=stages,
                num_units=units,
                level_indices=levels,
                loss=loss,
            )
        )
        fill(head, recipe)
        head.double().eval()
        feats = [
            [
                torch.from_numpy(
                    recipe.recipe_array(f"mspn_train/feat_{tag}_{s}_{u}", (2, 8, 4 * 2**u, 3 * 2**u)).astype(np.float64)
                )
                for u in range(units)
            ]
            for s in range(stages)
        ]
        num_levels = max(levels) + 1
        tgt = recipe.recipe_array(f"mspn_train/target_{tag}", (2, num_levels, 17, 16, 12)).astype(np.float64) ** 2
        w = (recipe.recipe_array(f"mspn_train/weights_{tag}", (2, 17)) > -0.85).astype(np.float64)
        samples = []
        for i in range(2):
            s = PoseDataSample()
            s.gt_fields = [PixelData(heatmaps=torch.from_numpy(tgt[i, j])) for j in range(num_levels)]
            s.gt_instance_labels = InstanceData(
                keypoint_weights=torch.from_numpy(np.stack([w[i : i + 1]] * num_levels))  # [L, 1, K]
            )
            samples.append(s)
        with torch.no_grad():
            res[f"loss_kpt_{tag}"] = head.loss(feats, samples)["loss_kpt"].numpy()
        print(f"{tag}: loss_kpt {float(res[f'loss_kpt_{tag}']):.6g}")
    writer.npz("train_loss.npz", **res)
    writer.json("train_evaluators.json", evaluators())
    writer.print_sizes()


if __name__ == "__main__":
    main()
