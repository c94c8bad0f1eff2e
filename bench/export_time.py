"""Print pose-model export time, the verification verdict and the TensorRT lint per zoo config (random weights).

    python bench/export_time.py [--configs ipr_res50 ...] [--images ../shared/assets/coco-tiny] [--crops 8] [--out DIR]
        [--width 64]    # ResNet stem width: 64 = the published size; 8 = the tests' small graphs (same operators)

Weights are random (no checkpoint download); the graph, its size and the export path are the real
ones. The verification runs on crops of real images (``--images``; synthetic crops if the folder is
absent). Freshly initialised heads give ~1e-6 logits (flat heatmaps, every keypoint at the crop centre),
so by default the final 1x1 conv is scaled to give logits of std ``--logit-std`` on those crops, like a
trained model's peaked heatmaps (0 keeps the raw init); regression / RLE heads get a tenth of it (their outputs are
normalised coordinates). Every graph is linted (``export.lint.lint_onnx``: will TensorRT 10 parse it?).
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import torch

from export.lint import lint_onnx
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
    p.add_argument("--width", type=int, default=64, help="ResNet stem width (64: published size; 8: test graphs)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = args.out or tempfile.mkdtemp(prefix="pose-export-bench-")
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(f"# logits scaled to std {args.logit_std}" if args.logit_std > 0 else "# raw MMPose init (flat heatmaps)")
    print(f"# ResNet stem width {args.width}")
    print(f"{'config':<32} {'export s':>9} {'verify s':>9} {'max |ort-torch| px':>19}  verdict; lint")
    for name in args.configs:
        torch.manual_seed(0)
        cfg = ZOO[name]
        if args.width != 64:
            cfg = cfg.replace(backbone_base_channels=args.width, deconv_out_channels=(32, 32, 32))
        model = build_pose_model(cfg)
        size = model.config.input_size
        if Path(args.images).is_dir():
            crops, what = crops_from_images([args.images], size, args.crops), f"crops of {args.images}"
        else:
            crops, what = synthetic_crops(size, args.crops), "synthetic crops"
        if args.logit_std > 0:
            coords = model.kind.raw_is_coordinates  # fc outputs coordinates: std in crop widths
            scale_head_logits(model, crops[:2], args.logit_std / 10 if coords else args.logit_std)
        t0 = time.perf_counter()
        r = export_pose_model(model, out, crops, what)
        report = lint_onnx(r.onnx_path)
        lint = "TensorRT-ready" if report.ok else f"{len(report.errors)} errors"
        lint += f", {len(report.warnings)} warnings, {sum(report.op_counts.values())} nodes"
        print(
            f"{name:<32} {r.export_seconds:9.1f} {r.verify_seconds:9.1f} {r.max_abs_diff_px:19.2e}  "
            f"{r.verdict.describe()}; lint {lint}  (total {time.perf_counter() - t0:.1f} s, {len(crops)} {what})",
            flush=True,
        )


if __name__ == "__main__":
    main()
