"""``pose-train``: train a pose model with MMPose's recipe; checkpoints go straight to ``pose-export pose``.

    pose-train quick --data-root coco/ --work-dir work/quick                        # one process (CPU or GPU)
    torchrun --nproc_per_node 8 -m training.train ipr_res50_debias --data-root coco/ --work-dir work/debias
    pose-train ipr_res50 ... --resume                                              # continue from work/last.pth
    pose-train td-reg_res50_rle_mpii --data-root mpii/ --work-dir work/rle_mpii      # MPII (PCKh validation)

Read top to bottom (:func:`run`): parse options -> set up the process (torchrun / DDP, device, seeds, threads) ->
datasets and loaders (``training.loaders``) -> model and its initialisation (``models.checkpoints``) -> Adam, the
warm-up + multi-step schedule, GradScaler -> resume (``training.resume``) -> :func:`fit`, for each epoch:
``loop.train_one_epoch``, ``loop.evaluate`` every ``val_interval`` epochs, checkpoints (``training.resume.save``).
Only rank 0 writes (checkpoints, ``log.jsonl`` and TensorBoard via ``training.run_log``, progress bars).

Files in ``--work-dir``: ``last.pth`` (weights + optimizer / scheduler / scaler / sampler state, for ``--resume``;
written every ``checkpoint_interval`` epochs, at the end and when ``--max-iters`` stops the run),
``best.pth`` (the best validation AP, or PCKh for MPII configs), ``epoch_<N>.pth`` (every ``checkpoint_interval`` epochs), ``log.jsonl``
(one JSON record per log interval and per validation), ``config.json``. Every ``.pth`` is our checkpoint format
(``models.checkpoints.save_pose_checkpoint``; MMPose's layout: ``state_dict``, ``meta`` with the config name, epoch
and AP / PCK, ``optimizer``, ``param_schedulers``) and loads with ``pose-export pose`` / ``load_pose_checkpoint``.

Settings-like options (``--cache-dir``, ``--offline``, ``--log-level``) come from ``core.settings.Settings``;
the hyper-parameters are the config's (``training.configs``), overridable on the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pydantic import ValidationError
from torch import nn

from core.cli_options import add_settings_options, add_version_option, settings_from_args
from core.errors import UsageError
from core.precision import AMP_PRECISIONS
from core.settings import CACHE_FIELDS, LOG_FIELDS, Settings
from models.checkpoints import (
    CheckpointError,
    ChecksumError,
    load_backbone_weights,
    load_imagenet_backbone,
    load_pose_checkpoint,
    load_pretrained,
    load_state_dict_strict,
)
from models.pose_model import TopdownPoseModel
from training.configs import CONFIGS, INIT_IMAGENET, TrainConfig, get_train_config
from training.data import DataError
from training.loaders import Loaders, build_loaders, data_paths
from training.loop import BEST_METRIC, TrainForward, TrainState, WarmupMultiStep, evaluate, train_one_epoch
from training.resume import resume, save, training_state
from training.run_log import RunLog
from training.transforms import AugmentConfig

log = logging.getLogger("pose-train")

#: Settings fields pose-train takes.
_SETTINGS = (*CACHE_FIELDS, *LOG_FIELDS)
AMP_MODES = ("auto", "off", *AMP_PRECISIONS)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pose-train", description="Train a top-down pose model (MMPose's recipe).")
    add_version_option(p)
    p.add_argument("config", choices=sorted(CONFIGS), help="training config (training/configs.py)")
    d = p.add_argument_group(
        "data (MMPose's layout below --data-root, or each path; COCO or MPII by the config's keypoints)"
    )
    d.add_argument(
        "--data-root", help="COCO root (annotations/, train2017/, val2017/) or MPII root (annotations/, images/)"
    )
    d.add_argument("--train-ann", help="default <root>/annotations/person_keypoints_train2017.json | mpii_train.json")
    d.add_argument("--train-images", help="default <root>/train2017 | <root>/images")
    d.add_argument("--val-ann", help="default <root>/annotations/person_keypoints_val2017.json | mpii_val.json")
    d.add_argument("--val-images", help="default <root>/val2017 | <root>/images")
    d.add_argument("--val-headboxes", help="MPII: head boxes of --val-ann (default <root>/annotations/mpii_gt_val.mat)")
    d.add_argument(
        "--det-file", help="validation boxes (COCO_val2017_detections_AP_H_56_person.json); default: ground truth"
    )
    d.add_argument("--max-images", type=int, help="only the first N images of each annotation file")
    d.add_argument("--no-val", action="store_true", help="no validation (best.pth is not written)")
    d.add_argument("--no-flip-test", action="store_true", help="validate without the config's flip test")
    h = p.add_argument_group("overrides of the config")
    h.add_argument("--epochs", type=int)
    h.add_argument("--batch-size", type=int, help="images per process (GPU)")
    h.add_argument("--lr", type=float, help="learning rate at the config's base batch size")
    h.add_argument("--no-scale-lr", action="store_true", help="use --lr / the config's lr as is (no linear scaling)")
    h.add_argument("--workers", type=int, help="DataLoader workers per process")
    h.add_argument("--val-interval", type=int)
    h.add_argument("--checkpoint-interval", type=int, help="write last.pth and epoch_<N>.pth every N epochs")
    h.add_argument("--warmup-iters", type=int)
    h.add_argument("--milestones", type=int, nargs="*", help="MultiStepLR epochs (none: constant lr after warm-up)")
    h.add_argument("--no-augment", action="store_true", help="no RandomFlip / RandomHalfBody / RandomBBoxTransform")
    h.add_argument(
        "--init",
        help="initial weights: zoo name or .pth (heatmap checkpoints are renamed into integral heads), "
        "'imagenet', or 'none'; default: the config's",
    )
    h.add_argument(
        "--load-from", help="fine-tune from this checkpoint (zoo name, MMPose .pth or ours) (all its weights)"
    )
    r = p.add_argument_group("run")
    r.add_argument("--work-dir", required=True, help="checkpoints and logs go here")
    r.add_argument("--resume", nargs="?", const="auto", help="resume from <work-dir>/last.pth (or the given file)")
    r.add_argument("--max-iters", type=int, help="stop after this many optimizer steps in total (last.pth is written)")
    r.add_argument("--accumulate", type=int, default=1, help="batches per optimizer step (gradient accumulation)")
    r.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="auto",
        help="mixed precision: auto = fp16 + GradScaler on CUDA, bf16 on CPUs that support it",
    )
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    r.add_argument("--threads", type=int, default=0, help="torch intra-op threads per process (0: torch default)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--tensorboard", action="store_true", help="also write TensorBoard scalars (needs tensorboard)")
    r.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    add_settings_options(p, _SETTINGS)
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The named config with the command-line overrides applied."""
    cfg = get_train_config(args.config)
    changes = {
        k: getattr(args, k)
        for k in ("epochs", "batch_size", "lr", "workers", "val_interval", "checkpoint_interval", "warmup_iters")
        if getattr(args, k) is not None
    }
    if args.milestones is not None:
        changes["milestones"] = tuple(args.milestones)
    if args.no_augment:
        changes["augment"] = AugmentConfig(enabled=False)
    init = args.load_from or args.init
    if init is not None:
        changes["init"] = None if init == "none" else init
    if (
        args.load_from
    ):  # fine-tuning starts from all the weights (a -pretrained config's --init keeps its backbone rule)
        changes["init_backbone_only"] = False
    return cfg.replace(**changes)


# --------------------------------------------------------------------------------------------------
# process set-up


def setup_distributed(device_opt: str) -> tuple[int, int, int, torch.device]:
    """(rank, world size, local rank, device): torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` when set (NCCL
    on CUDA, gloo on CPU; multi-node through torchrun's rendezvous), else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_opt == "auto" else device_opt == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but CUDA is not available")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, local, device


def amp_dtype_for(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: fp16 on CUDA, bf16 on CPUs with native bf16 (AVX-512 BF16 or AMX) for ``auto``.

    Raises:
        ValueError: fp16 asked for on the CPU.
    """
    if mode == "off":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise UsageError("--amp fp16 needs CUDA; use --amp bf16 on the CPU")
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16
    cpu_bf16 = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return torch.bfloat16 if cpu_bf16 else None


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (the model's initialisation; augmentation has its own per-sample seeds)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def initialise(model: TopdownPoseModel, init: str | None, settings: Settings, backbone_only: bool = False) -> str:
    """Load the initial weights named by ``init`` into ``model`` (see :class:`training.configs.TrainConfig`): all of
    them, or with ``backbone_only`` the ``backbone.*`` weights of a zoo checkpoint or file.

    Returns:
        A description for the log.

    Raises:
        FileNotFoundError, CheckpointError, ChecksumError: the weights cannot be had or do not fit.
    """
    if init is None:
        return "random initialisation"
    cache = settings.cache.checkpoints
    if init == INIT_IMAGENET:
        path = load_imagenet_backbone(model, cache, offline=settings.offline)
        return f"ImageNet backbone {path}"
    if backbone_only:
        path = Path(init) if Path(init).is_file() else load_pretrained(init, cache, offline=settings.offline)
        return f"backbone of {load_backbone_weights(model, path)}"
    loaded, meta = load_pose_checkpoint(init, cache_dir=cache, config=model.config, offline=settings.offline)
    load_state_dict_strict(model, loaded.state_dict())
    return f"{meta['format']} checkpoint {meta['checkpoint']}" + (
        f" ({meta['converted']})" if "converted" in meta else ""
    )


# --------------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    """``pose-train``: exit status 0; 2 with a one-line message for a usage error (an invalid setting, a missing or
    contradictory option, a resume with another batch layout); 1 with one for a failure it understands (data, a
    checkpoint that cannot be found or read, a diverging loss)."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    try:
        settings = settings_from_args(args)
        return run(args, settings)
    except (DataError, CheckpointError, ChecksumError, FileNotFoundError, ValueError, FloatingPointError) as exc:
        print(f"pose-train: {exc}", file=sys.stderr)
        # pydantic's ValidationError (a ValueError): an invalid setting, a usage error as argparse's
        return 2 if isinstance(exc, (UsageError, ValidationError)) else 1
    finally:
        torch.set_num_threads(threads)  # --threads is per run (main() may be called in-process, e.g. by tests)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class TrainRun:
    """The parts of one training run that the epoch loop (:func:`fit`) drives."""

    cfg: TrainConfig
    args: argparse.Namespace
    work: Path
    model: TopdownPoseModel
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    state: TrainState
    loaders: Loaders
    device: torch.device
    amp_dtype: torch.dtype | None
    world: int
    main_proc: bool
    iters_per_epoch: int
    log: RunLog

    def save_last(self, ap: float | None) -> None:
        """``last.pth``: the weights and everything ``--resume`` needs."""
        full = training_state(
            self.optimizer,
            self.scheduler,
            self.scaler,
            self.state,
            self.world,
            self.cfg.batch_size,
            self.args.accumulate,
        )
        save(self.work / "last.pth", self.model, self.cfg, self.state, ap, full)


def _train_epoch(r: TrainRun) -> bool:
    """One epoch (the rest of it when resumed mid-epoch) with its progress bar; True when ``--max-iters`` stopped it."""
    cfg, args, state = r.cfg, r.args, r.state
    skip = state.iter_in_epoch * args.accumulate * cfg.batch_size
    r.loaders.sampler.set_epoch(state.epoch, skip)
    bar = None
    if r.main_proc and not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(r.loaders.train),
            desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
            unit="batch",
            file=sys.stderr,
            leave=False,
        )
    try:
        return train_one_epoch(
            r.forward,
            r.loaders.train,
            r.optimizer,
            r.scheduler,
            r.scaler,
            state,
            r.device,
            r.amp_dtype,
            args.accumulate,
            cfg.log_interval,
            r.log.write,
            args.max_iters,
            bar,
        )
    finally:
        if bar is not None:
            bar.close()


def _validate(r: TrainRun) -> float | None:
    """Validate when the epoch is due (``val_interval``, the last epoch); log, keep ``best.pth``; the figure on rank 0."""
    cfg, state = r.cfg, r.state
    if r.loaders.val is None or not (state.epoch % cfg.val_interval == 0 or state.epoch == cfg.epochs):
        return None
    flip = cfg.model.flip_test and not r.args.no_flip_test
    stats = evaluate(r.model, r.loaders.val, r.loaders.val_set, r.device, flip, oks_nms=cfg.val_oks_nms)
    if not r.main_proc:
        return None
    ap = stats[BEST_METRIC[cfg.model.dataset or "coco"]]
    record = {"mode": "val", "epoch": state.epoch, "iter": state.global_iter, **stats}
    state.history.append(record)
    r.log.write(record)
    log.info("epoch %d: %s", state.epoch, ", ".join(f"{k} {v:.4f}" for k, v in list(stats.items())[:6]))
    if ap > state.best_ap:
        state.best_ap, state.best_epoch = ap, state.epoch
        save(r.work / "best.pth", r.model, cfg, state, ap, None)
    return ap


def fit(r: TrainRun) -> None:
    """The epoch loop: train, average BatchNorm statistics across processes, validate, write checkpoints; a
    ``--max-iters`` stop mid-epoch writes ``last.pth`` with the position in the epoch."""
    cfg, state = r.cfg, r.state
    stopped = False
    while state.epoch < cfg.epochs and not stopped:
        stopped = _train_epoch(r)
        if stopped and state.iter_in_epoch < r.iters_per_epoch:
            if r.main_proc:  # mid-epoch stop: last.pth keeps the position in the epoch
                r.save_last(None)
            break
        state.epoch += 1
        state.iter_in_epoch = 0
        if r.world > 1:  # MMPose SyncBuffersHook: average BatchNorm statistics at the end of each epoch
            for buf in r.model.buffers():
                if buf.is_floating_point():
                    dist.all_reduce(buf)
                    buf /= r.world
        ap = _validate(r)
        last_epoch = state.epoch == cfg.epochs or stopped
        if r.main_proc and (state.epoch % cfg.checkpoint_interval == 0 or last_epoch):
            r.save_last(ap)
            if state.epoch % cfg.checkpoint_interval == 0:
                save(r.work / f"epoch_{state.epoch}.pth", r.model, cfg, state, ap, None)


def _log_start(r: TrainRun, lr: float, how: str) -> None:
    total_batch = r.cfg.batch_size * r.world * r.args.accumulate
    log.info(
        "%s: %d train instances, %d processes x batch %d x accumulate %d, lr %.3g, %d steps/epoch, amp %s, %s, device %s",
        r.cfg.name,
        len(r.loaders.train_set),
        r.world,
        r.cfg.batch_size,
        r.args.accumulate,
        lr,
        r.iters_per_epoch,
        r.amp_dtype or "off",
        how,
        r.device,
    )
    r.log.write(
        {
            "mode": "start",
            "iter": r.state.global_iter,
            "config": r.cfg.name,
            "instances": len(r.loaders.train_set),
            "world_size": r.world,
            "total_batch": total_batch,
            "lr": lr,
            "init": how,
            "amp": str(r.amp_dtype),
        }
    )


def _set_up_process(args: argparse.Namespace, settings: Settings, cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """torchrun / DDP, logging, threads, seeds, the work folder with ``config.json``: (rank, world size, device)."""
    rank, world, _, device = setup_distributed(args.device)
    logging.basicConfig(
        level=settings.log_level.upper() if rank == 0 else "WARNING",
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    torch.backends.cudnn.benchmark = False  # MMPose env_cfg cudnn_benchmark=False
    if rank == 0:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    return rank, world, device


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The training run of ``pose-train`` (see the module docstring); returns 0.

    Raises:
        DataError, CheckpointError, ChecksumError, FileNotFoundError, ValueError: bad data, paths, options or weights
            (``main`` prints them as one line); FloatingPointError: the loss diverged.
    """
    cfg = build_config(args)
    dataset = cfg.model.dataset or "coco"
    paths = data_paths(args, dataset)
    rank, world, device = _set_up_process(args, settings, cfg)
    main_proc, work = rank == 0, Path(args.work_dir)
    amp_dtype = amp_dtype_for(args.amp, device)
    if args.accumulate < 1:
        raise UsageError("--accumulate must be >= 1")
    loaders = build_loaders(args, cfg, paths, rank, world, device)

    model = TopdownPoseModel(cfg.model)
    how = initialise(model, cfg.init, settings, cfg.init_backbone_only)
    model.to(device)
    forward: nn.Module = TrainForward(model, cfg.losses)
    if world > 1:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None
        )

    # optimisation: Adam, linear scaling rule, warm-up + multi-step
    total_batch = cfg.batch_size * world * args.accumulate
    lr = cfg.lr if args.no_scale_lr else cfg.lr * total_batch / cfg.base_batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    iters_per_epoch = math.ceil(len(loaders.train) / args.accumulate)
    schedule = WarmupMultiStep(iters_per_epoch, cfg.warmup_iters, cfg.warmup_factor, cfg.milestones, cfg.gamma)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    state = TrainState()
    if args.resume:
        path = work / "last.pth" if args.resume == "auto" else Path(args.resume)
        state = resume(path, model, optimizer, scheduler, scaler, world, cfg.batch_size, args.accumulate)
        how = f"resumed from {path} at epoch {state.epoch + 1}, step {state.global_iter}"

    run_log = RunLog(work, main_proc, args.tensorboard)
    parts = TrainRun(
        cfg, args, work, model, forward, optimizer, scheduler, scaler, state, loaders, device, amp_dtype, world,
        main_proc, iters_per_epoch, run_log,
    )  # fmt: skip
    try:
        _log_start(parts, lr, how)
        fit(parts)
    finally:
        run_log.close()
    if main_proc:
        best = (
            f"best {BEST_METRIC[dataset]} {state.best_ap:.4f} at epoch {state.best_epoch} ({work / 'best.pth'})"
            if state.best_ap >= 0
            else "no validation"
        )
        print(
            f"pose-train {cfg.name}: {state.global_iter} steps, epoch {state.epoch}; {best}; last: {work / 'last.pth'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
