"""One training epoch and one validation pass (plain PyTorch, read top to bottom; torchvision-reference style).

* :class:`TrainForward`: uint8 crops and targets -> the config's loss (``training.losses.pose_loss``) of the outputs
  MMPose's ``head.forward`` gives in training: coordinates and softmax heatmaps of an integral head (computed in
  float32 from the logits, as MMPose's autocast policy does), a heatmap head's heatmaps, a DeepPose head's
  coordinates, or an RLE head's coordinates and sigma logits (its loss evaluates the head's flow). The loss is
  computed inside ``forward`` (in float32, autocast off), so that ``DistributedDataParallel``, which wraps it when
  distributed, sees every parameter the loss uses (RLE's flow).
* :class:`WarmupMultiStep`: MMPose's two chained schedulers in closed form (``LinearLR`` by iteration, mmengine's
  ``total_iters = end - begin - 1``; ``MultiStepLR`` by epoch), for ``torch.optim.lr_scheduler.LambdaLR``.
* :func:`train_one_epoch`: forward under autocast, the config's loss (``training.losses.pose_loss``), backward
  through the ``GradScaler``, optional gradient accumulation, the scheduler stepped per optimizer step.
* :func:`evaluate`: the model's ``predict_keypoints`` (the card's decode and flip test, as served) on validation
  crops, crop -> image pixels with ``models.geometry``, gathered to rank 0 and scored by
  ``evaluation.metric.CocoKeypointMetric`` (MMPose's CocoMetric) or, for MPII models, ``evaluation.mpii.mpii_pckh``
  (MMPose's MpiiPCKAccuracy).
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
from evaluation.mpii import mpii_pckh
from models.geometry import keypoints_crop_to_image
from models.pose_model import TopdownPoseModel
from training.losses import pose_loss


class TrainForward(nn.Module):
    """uint8 RGB crops [B, h, w, 3] and their targets -> (the config's loss, its terms).

    Args:
        model: the :class:`~models.pose_model.TopdownPoseModel`.
        losses: the config's loss names (``training.losses.LOSSES``).
    """

    def __init__(self, model: TopdownPoseModel, losses: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.losses = tuple(losses)

    def outputs(self, crops: Tensor) -> dict[str, Tensor]:
        """The head outputs the losses take: ``{"coords": [B, K, 2], "heatmaps": [B, K, H, W]}`` (integral head),
        ``{"heatmaps": [B, K, H, W]}`` (heatmap head), ``{"coords"}`` (regression head) or ``{"coords", "sigma"}``
        ([B, K, 2] each, sigma logits; RLE head): the head kind's ``train_forward`` (``models.heads``). The model's
        own ``preprocess`` normalises the crops."""
        m = self.model
        return m.kind.train_forward(m.head, m.backbone(m.preprocess(crops)))

    def forward(self, crops: Tensor, targets: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """(total loss, terms by name): :meth:`outputs` under the caller's autocast, the loss in float32."""
        outputs = self.outputs(crops)
        extra = self.model.kind.loss_kwargs(self.model.head)  # RLE: its flow
        with torch.autocast(crops.device.type, enabled=False):
            return pose_loss(self.losses, outputs, targets, **extra)


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
        best_ap, best_epoch: the best validation figure so far (COCO AP; MPII PCKh, ``loop.BEST_METRIC``) and the epoch
            (1-based) it was reached at.
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


def _forward_backward(
    forward: nn.Module,
    batch: dict,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler,
    group_size: int,
    state: TrainState,
) -> tuple[torch.Tensor, dict]:
    """Forward one batch under autocast and back-propagate its loss divided by its accumulation group's size.

    Returns:
        The loss and its terms.

    Raises:
        FloatingPointError: a non-finite loss (the step and the terms are named).
    """
    inputs = batch["inputs"].to(device, non_blocking=True)
    targets = {
        k: batch[k].to(device, non_blocking=True)
        for k in ("keypoint_labels", "heatmaps", "level_heatmaps", "keypoint_weights")
        if k in batch
    }
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        loss, terms = forward(inputs, targets)
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"non-finite loss at epoch {state.epoch + 1} step {state.global_iter}: "
            + ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
        )
    scaler.scale(loss / group_size).backward()
    return loss, terms


def _optimizer_step(optimizer, scheduler, scaler: torch.amp.GradScaler, state: TrainState) -> float:
    """One optimizer step (through the GradScaler), the schedule's step, the counters; returns the step's lr."""
    lr = optimizer.param_groups[0]["lr"]
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    state.global_iter += 1
    state.iter_in_epoch += 1
    return lr


def _train_record(
    state: TrainState, lr: float, sums: dict, count: int, data_time: float, compute_time: float, device
) -> dict:
    """The ``train`` log record: loss terms averaged over the batches since the last record and over ranks, times."""
    record = _reduce_mean({k: v / count for k, v in sums.items()}, device)
    return {
        "mode": "train",
        "epoch": state.epoch + 1,
        "iter": state.global_iter,
        "lr": lr,
        **record,
        "data_time": data_time / count,
        "time": (data_time + compute_time) / count,
    }


def train_one_epoch(
    forward: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
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
        loss, terms = _forward_backward(forward, batch, device, amp_dtype, scaler, group_size, state)
        group_left -= 1
        for k, v in {"loss": loss, **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{float(loss):.4g}", lr=f"{optimizer.param_groups[0]['lr']:.3g}", refresh=False)
        if group_left == 0:
            lr = _optimizer_step(optimizer, scheduler, scaler, state)
            compute_time += time.perf_counter() - t0
            last = b == n_batches - 1
            stop = max_iters is not None and state.global_iter >= max_iters
            if log is not None and (state.global_iter % log_interval == 0 or last or stop):
                log(_train_record(state, lr, sums, count, data_time, compute_time, device))
                sums, count, data_time, compute_time = {}, 0, 0.0, 0.0
            if stop:
                return True
        t_data = time.perf_counter()
    return False


@torch.no_grad()
def predict_dataset(model: TopdownPoseModel, loader, device: torch.device, flip_test: bool) -> list[tuple]:
    """Keypoints in image pixels for every validation crop of ``loader``.

    Returns:
        list of ``(index, image_id, keypoints float32 [K, 3] (x, y, score), bbox_score, OKS area)`` in loader order
        (``index``: the instance's position in the dataset).
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
            out.append(
                (
                    int(batch["index"][i]),
                    int(batch["image_id"][i]),
                    full[i],
                    float(batch["bbox_score"][i]),
                    float(areas[i]),
                )
            )
    return out


#: The validation figure that picks ``best.pth``, by data set (MMPose ``save_best``: ``coco/AP``, ``PCK``).
BEST_METRIC = {"coco": "AP", "mpii": "PCK"}


def evaluate(
    model: TopdownPoseModel, loader, dataset, device: torch.device, flip_test: bool, oks_nms: bool = True
) -> dict[str, float] | None:
    """Validation figures of ``model`` (each rank predicts its share of ``loader``): COCO keypoint AP
    (``evaluation.metric.CocoKeypointMetric``, MMPose's CocoMetric with the config's ``score_mode``) or MPII PCKh
    (``evaluation.mpii.mpii_pckh``, MMPose's MpiiPCKAccuracy).

    Args:
        model: the bare model (not the DDP wrapper).
        loader: this rank's validation crops.
        dataset: the whole validation set: ``training.data.CocoTopDown`` (its ``ann_file``) or
            ``training.data.MpiiTopDown`` (its ``mpii`` annotations: joints, visibility, head sizes).
        device: model device.
        flip_test: average with the mirrored crop (the config's test setting).
        oks_nms: OKS-NMS per image in COCO validation (the config's ``val_oks_nms``).

    Returns:
        On rank 0 the figures: COCOeval's ten stats (``AP``, ``AP50``, ... ``AR``) or MMPose's PCKh figures (``PCK``,
        ``PCK@0.1``, ``Head PCK``, ..., percent); elsewhere None. :data:`BEST_METRIC` names the one ``best.pth``
        follows.
    """
    preds = predict_dataset(model, loader, device, flip_test)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, preds)
        if dist.get_rank() != 0:
            return None
        preds = [p for part in gathered for p in part]
    if model.config.dataset == "mpii":
        by_index = {index: kp for index, _, kp, _, _ in preds}
        ann = [dataset.mpii[i] for i in sorted(by_index)]
        if any(a.head_size is None for a in ann):
            raise ValueError("MPII validation needs the head boxes (--val-headboxes mpii_gt_val.mat)")
        return mpii_pckh(
            np.stack([by_index[i][:, :2] for i in sorted(by_index)]),
            np.stack([a.keypoints for a in ann]),
            np.stack([a.visible for a in ann]),
            np.array([a.head_size for a in ann]),
        )
    metric = CocoKeypointMetric(dataset.ann_file, score_mode=model.config.score_mode, nms=oks_nms)
    by_image: dict[int, list] = {}
    for _, image_id, kp, score, area in preds:
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
