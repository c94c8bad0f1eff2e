"""One training epoch and one validation pass (plain PyTorch, read top to bottom; torchvision-reference style).

* :class:`TrainForward`: uint8 crops -> the outputs the losses need (MMPose ``head.forward`` in training:
  coordinates and softmax heatmaps of an integral head, computed in float32 from the logits as MMPose's autocast
  policy does; or a heatmap head's heatmaps). Wrapped in ``DistributedDataParallel`` when distributed.
* :class:`WarmupMultiStep`: MMPose's two chained schedulers in closed form (``LinearLR`` by iteration, mmengine's
  ``total_iters = end - begin - 1``; ``MultiStepLR`` by epoch), for ``torch.optim.lr_scheduler.LambdaLR``.
* :func:`train_one_epoch`: forward under autocast, the config's loss (``training.losses.pose_loss``), backward
  through the ``GradScaler``, optional gradient accumulation, the scheduler stepped per optimizer step.
* :func:`evaluate`: the model's ``predict_keypoints`` (the card's decode and flip test, as served) on validation
  crops, crop -> image pixels with ``models.geometry``, gathered to rank 0 and scored by
  ``evaluation.metric.CocoKeypointMetric`` (MMPose's CocoMetric).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from evaluation.metric import CocoKeypointMetric, scale_area
from models.geometry import keypoints_crop_to_image
from models.pose_model import TopdownPoseModel
from training.losses import pose_loss


class TrainForward(nn.Module):
    """uint8 RGB crops [B, h, w, 3] -> ``{"coords": [B, K, 2], "heatmaps": [B, K, H, W]}`` (integral head) or
    ``{"heatmaps": [B, K, H, W]}`` (heatmap head). The model's own ``preprocess`` normalises the crops."""

    def __init__(self, model: TopdownPoseModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, crops: Tensor) -> dict[str, Tensor]:
        m = self.model
        feats = m.backbone(m.preprocess(crops))
        if m.config.head_kind == "heatmap":
            return {"heatmaps": m.head(feats)}
        logits = m.head.logits(feats)
        with torch.autocast(logits.device.type, enabled=False):
            coords, heatmaps = m.head.integrate(logits.float())
        return {"coords": coords, "heatmaps": heatmaps}


@dataclass
class WarmupMultiStep:
    """Learning-rate factor at optimizer step ``it`` (MMPose's ``param_scheduler`` of every config here).

    ``warmup_factor + (1 - warmup_factor) * min(it, T - 1) / (T - 1)`` for T = ``warmup_iters`` (mmengine
    ``LinearLR`` with ``begin=0, end=T``: full lr from step T - 1 on), times ``gamma ** (milestones passed)`` for
    the epoch ``it // iters_per_epoch`` (``MultiStepLR``, ``by_epoch=True``).
    """

    iters_per_epoch: int
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    milestones: tuple[int, ...] = (170, 200)
    gamma: float = 0.1

    def __call__(self, it: int) -> float:
        warm = 1.0
        if self.warmup_iters > 1 and it < self.warmup_iters - 1:
            warm = self.warmup_factor + (1.0 - self.warmup_factor) * it / (self.warmup_iters - 1)
        epoch = it // max(1, self.iters_per_epoch)
        return warm * self.gamma ** bisect.bisect_right(sorted(self.milestones), epoch)


@dataclass
class TrainState:
    """Where training stands (saved in every checkpoint; restored on resume).

    Attributes:
        epoch: the epoch in progress (0-based; equals the number of finished epochs between epochs).
        iter_in_epoch: optimizer steps done in :attr:`epoch`.
        global_iter: optimizer steps done in total.
        best_ap, best_epoch: the best validation AP so far and the epoch (1-based) it was reached at.
        history: validation records.
    """

    epoch: int = 0
    iter_in_epoch: int = 0
    global_iter: int = 0
    best_ap: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)


def _reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(values, t.tolist()))


def train_one_epoch(
    forward: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    losses: tuple[str, ...],
    state: TrainState,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    accumulate: int = 1,
    log_interval: int = 50,
    log: Callable[[dict], None] | None = None,
    max_iters: int | None = None,
    progress=None,
) -> bool:
    """Train until the loader is exhausted (or ``state.global_iter`` reaches ``max_iters``).

    Args:
        forward: :class:`TrainForward` (or its ``DistributedDataParallel`` wrapper), in train mode here.
        loader: yields dicts from ``training.data.CocoTopDown`` (collated).
        optimizer, scheduler, scaler: Adam, ``LambdaLR(WarmupMultiStep)``, ``GradScaler`` (disabled off fp16).
        losses: the config's loss names.
        state: updated in place (``iter_in_epoch``, ``global_iter``).
        device: where the batch goes.
        amp_dtype: autocast dtype (float16 / bfloat16) or None for float32.
        accumulate: batches per optimizer step (losses divided accordingly; a short last group is divided by its size,
            as mmengine's ``accumulative_counts``).
        log_interval: optimizer steps between records (loss terms averaged over ranks).
        log: called with each record (rank 0 writes it).
        max_iters: stop after this many optimizer steps in total (returns True).
        progress: a tqdm bar to update per batch, or None.

    Returns:
        True if training must stop (``max_iters`` reached), else False.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the step and the terms are named).
    """
    forward.train()
    n_batches = len(loader)
    sums: dict[str, float] = {}
    count = 0
    t_data = time.perf_counter()
    data_time = compute_time = 0.0
    group_left = 0
    for b, batch in enumerate(loader):
        if group_left == 0:
            group_left = min(accumulate, n_batches - b)
            group_size = group_left
            optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        data_time += t0 - t_data
        inputs = batch["inputs"].to(device, non_blocking=True)
        targets = {
            k: batch[k].to(device, non_blocking=True)
            for k in ("keypoint_labels", "heatmaps", "keypoint_weights")
            if k in batch
        }
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            outputs = forward(inputs)
        loss, terms = pose_loss(losses, outputs, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss at epoch {state.epoch + 1} step {state.global_iter}: "
                + ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            )
        scaler.scale(loss / group_size).backward()
        group_left -= 1
        for k, v in {"loss": loss, **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{float(loss):.4g}", lr=f"{optimizer.param_groups[0]['lr']:.3g}", refresh=False)
        if group_left == 0:
            lr = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state.global_iter += 1
            state.iter_in_epoch += 1
            compute_time += time.perf_counter() - t0
            last = b == n_batches - 1
            stop = max_iters is not None and state.global_iter >= max_iters
            if log is not None and (state.global_iter % log_interval == 0 or last or stop):
                record = _reduce_mean({k: v / count for k, v in sums.items()}, device)
                log(
                    {
                        "mode": "train",
                        "epoch": state.epoch + 1,
                        "iter": state.global_iter,
                        "lr": lr,
                        **record,
                        "data_time": data_time / count,
                        "time": (data_time + compute_time) / count,
                    }
                )
                sums, count, data_time, compute_time = {}, 0, 0.0, 0.0
            if stop:
                return True
        t_data = time.perf_counter()
    return False


@torch.no_grad()
def predict_dataset(model: TopdownPoseModel, loader, device: torch.device, flip_test: bool) -> list[tuple]:
    """Keypoints in image pixels for every validation crop of ``loader``.

    Returns:
        list of ``(image_id, keypoints float32 [K, 3] (x, y, score), bbox_score, OKS area)`` in loader order.
    """
    model.eval()
    out = []
    size = model.config.input_size
    for batch in loader:
        kp = model.predict_keypoints(batch["inputs"].to(device), flip_test=flip_test)
        centers, scales = batch["center"].numpy(), batch["scale"].numpy()
        xy = keypoints_crop_to_image(kp[..., :2], centers, scales, size)
        full = np.concatenate([xy, kp[..., 2:]], axis=-1)
        areas = scale_area(scales)
        for i in range(len(full)):
            out.append((int(batch["image_id"][i]), full[i], float(batch["bbox_score"][i]), float(areas[i])))
    return out


def evaluate(
    model: TopdownPoseModel, loader, ann_file, device: torch.device, flip_test: bool
) -> dict[str, float] | None:
    """COCO keypoint AP of ``model`` on the validation crops (each rank predicts its share of ``loader``).

    Args:
        model: the bare model (not the DDP wrapper).
        loader: this rank's validation crops (``CocoTopDown(train=False)``).
        ann_file: the ground-truth COCO file.
        device: model device.
        flip_test: average with the mirrored crop (the config's test setting).

    Returns:
        On rank 0 the ten COCOeval stats (``AP``, ``AP50``, ... ``AR``), elsewhere None.
    """
    preds = predict_dataset(model, loader, device, flip_test)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, preds)
        if dist.get_rank() != 0:
            return None
        preds = [p for part in gathered for p in part]
    metric = CocoKeypointMetric(ann_file)
    by_image: dict[int, list] = {}
    for image_id, kp, score, area in preds:
        by_image.setdefault(image_id, []).append((kp, score, area))
    for image_id, items in by_image.items():
        metric.add(
            image_id,
            np.stack([k for k, _, _ in items]),
            np.array([s for _, s, _ in items]),
            np.array([a for _, _, a in items]),
        )
    result = metric.evaluate()
    return {k: (v if math.isfinite(v) else -1.0) for k, v in result.stats.items()}
