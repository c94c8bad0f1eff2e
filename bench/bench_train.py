"""Training throughput of a full config (default ``ipr_res50_debias``: ResNet-50, 256x256): images per second of one
optimizer step (forward, the config's loss, backward, Adam) on random crops, in float32 and under autocast (bf16 on
the CPU; fp16 + GradScaler on CUDA when there is a GPU), and the epoch time that gives for COCO train2017
(149,813 person instances) on one device.

    python bench/bench_train.py [--config ipr_res50_debias] [--batch 16] [--steps 5] [--threads N] [--device cpu]

The model, loss and step are the loop's own (``training.loop.TrainForward``: the forward and the config's loss);
data loading is left out (crops are random uint8; the DataLoader workers decode and warp in parallel).
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
from models.heads import head_kind  # noqa: E402
from models.pose_model import TopdownPoseModel  # noqa: E402
from training.configs import CONFIGS, get_train_config  # noqa: E402
from training.loop import TrainForward  # noqa: E402

COCO_TRAIN_PERSONS = 149_813


def targets_for(cfg, batch: int) -> dict:
    k = cfg.model.num_keypoints
    w, h = cfg.model.heatmap_size
    hm = torch.rand(batch, k, h, w)
    out = {"heatmaps": hm / hm.sum(dim=(2, 3), keepdim=True), "keypoint_weights": torch.ones(batch, k)}
    if "coords" in head_kind(cfg.model.head_kind).train_outputs:
        out["keypoint_labels"] = torch.rand(batch, k, 2)
    return out


def bench(cfg, batch: int, steps: int, device: torch.device, amp: torch.dtype | None) -> float:
    """Median images / s over ``steps`` optimizer steps (after one warm-up step)."""
    torch.manual_seed(0)
    model = TopdownPoseModel(cfg.model).to(device).train()
    fwd = TrainForward(model, cfg.losses)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    w, h = cfg.model.input_size
    crops = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8, device=device)
    tgt = {k: v.to(device) for k, v in targets_for(cfg, batch).items()}
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss, _ = fwd(crops, tgt)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="ipr_res50_debias", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = get_train_config(args.config)
    modes: list[tuple[str, torch.dtype | None]] = [("fp32", None)]
    if device.type == "cuda":
        modes.append(("fp16 autocast + GradScaler", torch.float16))
    else:
        modes.append(("bf16 autocast", torch.bfloat16))
    w, h = cfg.model.input_size
    cpu = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(
        f"{cfg.name}: ResNet-{cfg.model.backbone_depth} {w}x{h}, batch {args.batch}, {args.steps} steps, "
        f"{device.type} ({cpu}), torch {torch.__version__}"
    )
    print(f"{'precision':28s} {'images/s':>9s} {'COCO train2017 epoch (149,813 persons)':>40s}")
    for name, dtype in modes:
        ips = bench(cfg, args.batch, args.steps, device, dtype)
        hours = COCO_TRAIN_PERSONS / ips / 3600
        print(f"{name:28s} {ips:9.2f} {hours:31.1f} h / epoch ({hours * 210 / 24:.0f} days for 210 epochs)")


if __name__ == "__main__":
    main()
