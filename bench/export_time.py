"""Print pose-model export time and the verification verdict per zoo config (random weights, full size).

    python bench/export_time.py [--configs ipr_res50 ...] [--images ../shared/assets/coco-tiny] [--crops 8] [--out DIR]

Weights are random (no checkpoint download); the graph, its size and the export path are the real
ones. The verification runs on crops of real images (``--images``; synthetic crops if the folder is
absent). Freshly initialised heads give ~1e-6 logits (flat heatmaps, every keypoint at the crop centre),
so by default the final 1x1 conv is scaled to give logits of std ``--logit-std`` on those crops, like a
trained model's peaked heatmaps (0 keeps the raw init).
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import torch

from export.pose import crops_from_images, export_pose_model, synthetic_crops
from models.pose_model import build_pose_model, scale_head_logits
from models.zoo import ZOO


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=sorted(ZOO))
    p.add_argument("--images", default="../shared/assets/coco-tiny", help="images whose crops verify the export")
    p.add_argument("--crops", type=int, default=8)
    p.add_argument("--out", default=None)
    p.add_argument("--logit-std", type=float, default=2.0, help="scale head logits to this std (0: raw init)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = args.out or tempfile.mkdtemp(prefix="pose-export-bench-")
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(f"# logits scaled to std {args.logit_std}" if args.logit_std > 0 else "# raw MMPose init (flat heatmaps)")
    print(f"{'config':<20} {'export s':>9} {'verify s':>9} {'max |ort-torch| px':>19}  verdict")
    for name in args.configs:
        torch.manual_seed(0)
        model = build_pose_model(name)
        size = model.config.input_size
        if Path(args.images).is_dir():
            crops, what = crops_from_images([args.images], size, args.crops), f"crops of {args.images}"
        else:
            crops, what = synthetic_crops(size, args.crops), "synthetic crops"
        if args.logit_std > 0:
            scale_head_logits(model, crops[:2], args.logit_std)
        t0 = time.perf_counter()
        r = export_pose_model(model, out, crops, what)
        print(
            f"{name:<20} {r.export_seconds:9.1f} {r.verify_seconds:9.1f} {r.max_abs_diff_px:19.2e}  "
            f"{r.verdict.describe()}  (total {time.perf_counter() - t0:.1f} s, {len(crops)} {what})",
            flush=True,
        )


if __name__ == "__main__":
    main()
