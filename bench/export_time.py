"""Print pose-model export time and ONNX-vs-torch deviation per zoo config (random weights, full size).

    python bench/export_time.py [--configs ipr_res50 ...] [--flip-test] [--crops 8] [--out /tmp/pose-export-bench]

Weights are random (no checkpoint download); the graph, its size and the export path are the real
ones. Deviation is measured on real coco-tiny crops when the assets are present. Freshly initialised
heads give ~1e-6 logits (flat heatmaps, every keypoint at the crop centre), so by default the final
1x1 conv is scaled to give logits of std ``--logit-std`` on those crops, like a trained model's peaked
heatmaps (0 keeps the raw init).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time

import torch

from export.pose import export_pose_model, verification_crops
from models.pose_model import build_pose_model
from models.zoo import ZOO


def scale_logits(model, std: float) -> None:
    """Scale the head's final 1x1 conv so the logits on real crops have standard deviation ``std``."""
    crops, _ = verification_crops(model.config.input_size, 2)
    heatmap = model.config.head_kind == "heatmap"
    final = model.head.final_layer if heatmap else model.head.simplebaseline_head.final_layer
    with torch.no_grad():
        feats = model.backbone(model.preprocess(torch.from_numpy(crops)))
        logits = model.head(feats) if heatmap else model.head.logits(feats)
        final.weight.mul_(std / float(logits.std()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", default=sorted(ZOO))
    p.add_argument("--flip-test", action="store_true", help="also export with the flip test in the graph")
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
    print(f"# verification on {args.crops} crops: {verification_crops((256, 256), args.crops)[1]}")
    print(f"{'config':<20} {'flip':<5} {'export s':>9} {'verify s':>9} {'max |ort-torch| px':>19}  rule")
    for name in args.configs:
        for flip in [False, True] if args.flip_test else [False]:
            torch.manual_seed(0)
            model = build_pose_model(name)
            if args.logit_std > 0:
                scale_logits(model, args.logit_std)
            t0 = time.perf_counter()
            r = export_pose_model(
                model,
                out,
                name=f"{name}{'_flip' if flip else ''}",
                flip_test=flip,
                num_check_crops=args.crops,
                strict=False,  # measure and report; the rule that passed is printed
            )
            v = json.loads(r.card_path.read_text())["extra"]["verification"]
            noise = ""
            if "torch_fp32_vs_fp64_px" in v:
                noise = (
                    f"  [vs fp64: ort {v['onnxruntime_vs_fp64_px']:.2e}, torch fp32 {v['torch_fp32_vs_fp64_px']:.2e}]"
                )
            print(
                f"{name:<20} {str(flip):<5} {r.export_seconds:9.1f} {r.verify_seconds:9.1f} "
                f"{r.max_abs_diff_px:19.2e}  {v['passed']}{noise}  (total {time.perf_counter() - t0:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
