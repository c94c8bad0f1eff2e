"""PyTorch forward latency of the zoo pose models (random weights; architecture cost only).

    python bench/bench_pose_models.py [--models ipr_res50_debias td-hm_res50] [--batch 1 8] [--threads N] [--device cpu]

Prints median milliseconds per batch and per crop, without and with flip test (two passes).
Figures, not assertions: this is never part of the test pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.pose_model import build_pose_model  # noqa: E402
from models.zoo import ZOO  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=sorted(ZOO), choices=sorted(ZOO))
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    print(f"{'model':18s} {'batch':>5s} {'ms/batch':>10s} {'ms/crop':>9s} {'flip ms/batch':>14s} {'flip ms/crop':>13s}")
    for name in args.models:
        model = build_pose_model(name).to(args.device)
        w, h = model.config.input_size
        for b in args.batch:
            x = torch.randn(b, 3, h, w, device=args.device)

            def run(flip: bool, x=x, model=model):
                with torch.no_grad():  # flip test = the crops and their mirror images in one batch
                    model(torch.cat([x, x.flip(-1)]) if flip else x)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

            single = median_ms(lambda: run(False), args.repeats)
            flip = median_ms(lambda: run(True), args.repeats)
            print(f"{name:18s} {b:5d} {single:10.1f} {single / b:9.1f} {flip:14.1f} {flip / b:13.1f}")


if __name__ == "__main__":
    main()
