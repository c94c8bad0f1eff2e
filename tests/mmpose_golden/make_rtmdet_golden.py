#!/usr/bin/env python3
"""Write the RTMDet-nano person golden file into tests/data/mmdet_rtmdet/ with MMDet 3.3.0's own modules.

Run in the SEPARATE MMPose virtual environment of ``make_golden.py`` (it has mmdet 3.3.0 and mmcv-lite; same import
shims; see README.md):

    cd <repo root> && /work/mmpose-venv/bin/python tests/mmpose_golden/make_rtmdet_golden.py   # seconds

The model is MMDet's ``RTMDet`` built from the config MMPose ships for its person detector
(``projects/rtmpose/rtmdet/person/rtmdet_nano_320-8xb32_coco-person.py``: not in the mmpose wheel, so its model
overrides are restated below on top of the wheel's ``rtmdet/rtmdet_l_8xb32-300e_coco.py``), every
parameter filled by ``recipe.py`` from its key. What is written (read by ``tests/models/test_rtmdet_parity.py``):

* ``versions.json``: mmdet / mmengine / mmcv / torch / numpy versions, recipe version.
* ``rtmdet_nano_person.npz``: ``keys`` (every state-dict key, in order) and ``shapes``; a named input
  ``x`` [2, 3, 128, 160] (``recipe_array``); the head's raw outputs per level (``cls_<l>``: class logits,
  ``reg_<l>``: distances times the stride, as ``RTMDetSepBNHead.forward`` returns them) in float32 and float64
  (``_f64``); ``boxes`` / ``scores``: every anchor decoded by the head's ``prior_generator.grid_priors`` and
  ``bbox_coder.decode`` (``distance2bbox``, no clamp) and the sigmoid, concatenated level by level, as
  ``predict_by_feat`` has them before its score filter and NMS.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_golden import GoldenWriter, fill, install_import_shims, load_recipe, output_dir  # noqa: E402

#: MMPose's projects/rtmpose/rtmdet/person/rtmdet_nano_320-8xb32_coco-person.py, model part.
PERSON_NANO = """
_base_ = '{base}'
model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=0.25, use_depthwise=True),
    neck=dict(in_channels=[64, 128, 256], out_channels=64, num_csp_blocks=1, use_depthwise=True),
    bbox_head=dict(in_channels=64, feat_channels=64, share_conv=False, exp_on_reg=False, use_depthwise=True,
                   num_classes=1),
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))
"""


def main() -> None:
    out = output_dir(__doc__.split("\n")[0], "mmdet_rtmdet")
    install_import_shims()
    import mmcv
    import mmdet
    import mmdet.models  # noqa: F401  (registers models)
    import mmengine
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    recipe = load_recipe()
    init_default_scope("mmdet")
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "rtmdet_nano_320-8xb32_coco-person.py"
        base = Path(mmdet.__file__).parent / ".mim" / "configs" / "rtmdet" / "rtmdet_l_8xb32-300e_coco.py"
        cfg_path.write_text(PERSON_NANO.replace("{base}", str(base)))  # by path: mmengine's mmdet:: needs pkg_resources
        cfg = Config.fromfile(str(cfg_path))
    cfg.model.backbone.norm_cfg = dict(type="BN")  # SyncBN without a process group: the same BatchNorm in eval mode
    cfg.model.neck.norm_cfg = dict(type="BN")
    cfg.model.bbox_head.norm_cfg = dict(type="BN")
    model = MODELS.build(cfg.model).eval()
    fill(model, recipe)
    sd = model.state_dict()
    x = recipe.recipe_array("rtmdet_input", (2, 3, 128, 160))
    arrays = {
        "keys": np.array(list(sd)),
        "shapes": np.array([json.dumps(list(v.shape)) for v in sd.values()]),
        "x": x,
    }
    for dtype, suffix in ((torch.float32, ""), (torch.float64, "_f64")):
        m = model.to(dtype)
        with torch.no_grad():
            cls, reg = m.bbox_head(m.neck(m.backbone(torch.from_numpy(x).to(dtype))))
        for level, (c, r) in enumerate(zip(cls, reg)):
            arrays[f"cls_{level}{suffix}"] = c.numpy()
            arrays[f"reg_{level}{suffix}"] = r.numpy()
        # the decode of RTMDetHead.predict_by_feat before its score filter: MMDet's priors and bbox coder
        head = m.bbox_head
        priors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls], dtype=dtype, device="cpu")
        boxes = [
            head.bbox_coder.decode(p[None].expand(len(x), -1, -1), r.permute(0, 2, 3, 1).reshape(len(x), -1, 4))
            for p, r in zip(priors, reg)
        ]
        scores = [c.permute(0, 2, 3, 1).reshape(len(x), -1, c.shape[1]).sigmoid() for c in cls]
        arrays[f"boxes{suffix}"] = torch.cat(boxes, 1).numpy()
        arrays[f"scores{suffix}"] = torch.cat(scores, 1).numpy()
    w = GoldenWriter(out)
    w.npz("rtmdet_nano_person.npz", **arrays)
    w.json(
        "versions.json",
        {
            "mmdet": mmdet.__version__,
            "mmengine": mmengine.__version__,
            "mmcv": mmcv.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "recipe": recipe.RECIPE_VERSION,
        },
    )
    w.print_sizes()


if __name__ == "__main__":
    main()
