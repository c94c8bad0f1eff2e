"""``pose-train``: train a pose model with MMPose's recipe; checkpoints go straight to ``pose-export pose``.

    pose-train quick --data-root coco/ --work-dir work/quick                        # one process (CPU or GPU)
    torchrun --nproc_per_node 8 -m training.train ipr_res50_debias --data-root coco/ --work-dir work/debias
    pose-train ipr_res50 ... --resume                                              # continue from work/last.pth
    pose-train td-reg_res50_rle_mpii --data-root mpii/ --work-dir work/rle_mpii      # MPII (PCKh validation)

Read top to bottom: parse options -> set up the process (torchrun / DDP, device, seeds, threads) -> datasets and
loaders (``training.data``) -> model and its initialisation (``models.checkpoints``) -> Adam, the warm-up +
multi-step schedule, GradScaler -> resume -> for each epoch: ``loop.train_one_epoch``, ``loop.evaluate`` every
``val_interval`` epochs, checkpoints. Only rank 0 writes (checkpoints, ``log.jsonl``, TensorBoard, progress bars).

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
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from core.cli_options import add_settings_options, settings_from_args
from core.settings import CACHE_FIELDS, LOG_FIELDS, Settings
from models.checkpoints import (
    CheckpointError,
    ChecksumError,
    load_backbone_weights,
    load_imagenet_backbone,
    load_pose_checkpoint,
    load_pretrained,
    load_state_dict_strict,
    read_checkpoint,
    save_pose_checkpoint,
)
from models.pose_model import TopdownPoseModel
from training.configs import CONFIGS, INIT_IMAGENET, TrainConfig, get_train_config
from training.data import CocoTopDown, DataError, EpochIndices, MpiiTopDown, worker_init
from training.loop import BEST_METRIC, TrainForward, TrainState, WarmupMultiStep, evaluate, train_one_epoch
from training.transforms import AugmentConfig

log = logging.getLogger("pose-train")

#: Settings fields pose-train takes.
_SETTINGS = (*CACHE_FIELDS, *LOG_FIELDS)
AMP_MODES = ("auto", "off", "fp16", "bf16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pose-train", description="Train a top-down pose model (MMPose's recipe).")
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


#: Files below ``--data-root`` by data set (MMPose's ``data/coco`` and ``data/mpii`` layouts).
DATA_LAYOUT = {
    "coco": {
        "train_ann": "annotations/person_keypoints_train2017.json",
        "train_images": "train2017",
        "val_ann": "annotations/person_keypoints_val2017.json",
        "val_images": "val2017",
    },
    "mpii": {
        "train_ann": "annotations/mpii_train.json",
        "train_images": "images",
        "val_ann": "annotations/mpii_val.json",
        "val_images": "images",
        "val_headboxes": "annotations/mpii_gt_val.mat",
    },
}


def data_paths(args: argparse.Namespace, dataset: str = "coco") -> dict[str, Path | None]:
    """Annotation / image paths from ``--data-root`` (MMPose's layout of ``dataset``: :data:`DATA_LAYOUT`) and the
    per-path options.

    Raises:
        ValueError: a path is neither given nor derivable from ``--data-root``.
    """
    root = Path(args.data_root) if args.data_root else None
    out: dict[str, Path | None] = {}
    for k, rel in DATA_LAYOUT[dataset].items():
        v = getattr(args, k)
        if v is None and root is None:
            if k.startswith("val") and args.no_val:
                out[k] = None
                continue
            raise ValueError(f"give --data-root or --{k.replace('_', '-')}")
        out[k] = Path(v) if v is not None else root / rel
    return out


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
            raise ValueError("--amp fp16 needs CUDA; use --amp bf16 on the CPU")
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
# checkpoints


def save(
    path: Path, model: TopdownPoseModel, cfg: TrainConfig, state: TrainState, value: float | None, full: dict | None
) -> None:
    """Write a checkpoint; ``meta`` names the validation figure by its metric (``AP``: COCO, ``PCK``: MPII)."""
    metric = BEST_METRIC[cfg.model.dataset or "coco"]
    meta = {
        "config_name": cfg.name,
        "epoch": state.epoch,
        "iter": state.global_iter,
        metric: value,
        f"best_{metric}": state.best_ap if state.best_ap >= 0 else None,
        "train_config": cfg.to_dict(),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    save_pose_checkpoint(path, model, meta, extra=full)


def training_state(optimizer, scheduler, scaler, state: TrainState, world: int, batch: int, accumulate: int) -> dict:
    """What ``--resume`` restores, in MMPose's checkpoint keys (``optimizer``, ``param_schedulers``) plus the
    GradScaler, the position (epoch, step in the epoch: the sampler skips what was done) and torch's RNG state."""
    return {
        "optimizer": optimizer.state_dict(),
        "param_schedulers": [scheduler.state_dict()],
        "scaler": scaler.state_dict(),
        "train_state": {
            "epoch": state.epoch,
            "iter_in_epoch": state.iter_in_epoch,
            "global_iter": state.global_iter,
            "best_ap": state.best_ap,
            "best_epoch": state.best_epoch,
            "history": state.history,
            "world_size": world,
            "batch_size": batch,
            "accumulate": accumulate,
        },
        "torch_rng": torch.get_rng_state(),
    }


# --------------------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    """``pose-train``: exit status 0, or 2 with a one-line message for a failure it understands."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    try:
        settings = settings_from_args(args)
        return run(args, settings)
    except (DataError, CheckpointError, ChecksumError, FileNotFoundError, ValueError, FloatingPointError) as exc:
        print(f"pose-train: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # --threads is per run (main() may be called in-process, e.g. by tests)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The training run of ``pose-train`` (see the module docstring); returns 0.

    Raises:
        DataError, CheckpointError, ChecksumError, FileNotFoundError, ValueError: bad data, paths, options or weights
            (``main`` prints them as one line); FloatingPointError: the loss diverged.
    """
    cfg = build_config(args)
    dataset = cfg.model.dataset or "coco"
    paths = data_paths(args, dataset)
    rank, world, _, device = setup_distributed(args.device)
    main_proc = rank == 0
    logging.basicConfig(
        level=settings.log_level.upper() if main_proc else "WARNING",
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    torch.backends.cudnn.benchmark = False  # MMPose env_cfg cudnn_benchmark=False
    work = Path(args.work_dir)
    if main_proc:
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    amp_dtype = amp_dtype_for(args.amp, device)
    if args.accumulate < 1:
        raise ValueError("--accumulate must be >= 1")

    # data
    data_cls = MpiiTopDown if dataset == "mpii" else CocoTopDown
    train_set = data_cls(
        paths["train_ann"],
        paths["train_images"],
        cfg.model,
        train=True,
        augment=cfg.augment,
        seed=args.seed,
        max_images=args.max_images,
    )
    sampler = EpochIndices(DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=args.seed))
    loader_kw = dict(num_workers=cfg.workers, worker_init_fn=worker_init, pin_memory=device.type == "cuda")
    if cfg.workers > 0:
        loader_kw["persistent_workers"] = True
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=False, **loader_kw)
    val_loader = None
    if not args.no_val:
        if dataset == "mpii":
            if args.det_file:
                raise ValueError("MPII is validated on its annotations' boxes (no --det-file)")
            val_set = MpiiTopDown(
                paths["val_ann"],
                paths["val_images"],
                cfg.model,
                train=False,
                headbox_file=paths["val_headboxes"],
                max_images=args.max_images,
            )
        else:
            val_set = CocoTopDown(
                paths["val_ann"],
                paths["val_images"],
                cfg.model,
                train=False,
                det_file=args.det_file,
                max_images=args.max_images,
            )
        val_loader = DataLoader(
            Subset(val_set, range(rank, len(val_set), world)), batch_size=cfg.batch_size, **loader_kw
        )

    # model
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
    iters_per_epoch = math.ceil(len(train_loader) / args.accumulate)
    schedule = WarmupMultiStep(iters_per_epoch, cfg.warmup_iters, cfg.warmup_factor, cfg.milestones, cfg.gamma)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    state = TrainState()

    if args.resume:
        path = work / "last.pth" if args.resume == "auto" else Path(args.resume)
        ckpt = read_checkpoint(path)
        if "train_state" not in ckpt:
            raise CheckpointError(f"{path} holds no training state (optimizer, schedule): cannot resume from it")
        ts = ckpt["train_state"]
        if (ts["world_size"], ts["batch_size"], ts["accumulate"]) != (world, cfg.batch_size, args.accumulate):
            raise ValueError(
                f"{path} was written by {ts['world_size']} processes x batch {ts['batch_size']} x accumulate "
                f"{ts['accumulate']}; resuming needs the same (got {world} x {cfg.batch_size} x {args.accumulate})"
            )
        load_state_dict_strict(model, ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["param_schedulers"][0])
        scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = TrainState(
            ts["epoch"], ts["iter_in_epoch"], ts["global_iter"], ts["best_ap"], ts["best_epoch"], list(ts["history"])
        )
        how = f"resumed from {path} at epoch {state.epoch + 1}, step {state.global_iter}"

    writer = None
    if main_proc and args.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ValueError(f"--tensorboard needs the tensorboard package ({exc})") from None
        writer = SummaryWriter(str(work / "tensorboard"))
    log_file = (work / "log.jsonl").open("a") if main_proc else None

    def write_log(record: dict) -> None:
        if log_file is None:
            return
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if writer is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "iter"):
                    writer.add_scalar(f"{record['mode']}/{k}", v, record["iter"])

    log.info(
        "%s: %d train instances, %d processes x batch %d x accumulate %d, lr %.3g, %d steps/epoch, amp %s, %s, device %s",
        cfg.name,
        len(train_set),
        world,
        cfg.batch_size,
        args.accumulate,
        lr,
        iters_per_epoch,
        amp_dtype or "off",
        how,
        device,
    )
    write_log(
        {
            "mode": "start",
            "iter": state.global_iter,
            "config": cfg.name,
            "instances": len(train_set),
            "world_size": world,
            "total_batch": total_batch,
            "lr": lr,
            "init": how,
            "amp": str(amp_dtype),
        }
    )

    stopped = False
    try:
        while state.epoch < cfg.epochs and not stopped:
            skip = state.iter_in_epoch * args.accumulate * cfg.batch_size
            sampler.set_epoch(state.epoch, skip)
            bar = None
            if main_proc and not args.no_progress:
                from tqdm import tqdm

                bar = tqdm(
                    total=len(train_loader),
                    desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
                    unit="batch",
                    file=sys.stderr,
                    leave=False,
                )
            try:
                stopped = train_one_epoch(
                    forward,
                    train_loader,
                    optimizer,
                    scheduler,
                    scaler,
                    state,
                    device,
                    amp_dtype,
                    args.accumulate,
                    cfg.log_interval,
                    write_log,
                    args.max_iters,
                    bar,
                )
            finally:
                if bar is not None:
                    bar.close()
            if stopped and state.iter_in_epoch < iters_per_epoch:
                if main_proc:  # mid-epoch stop: last.pth keeps the position in the epoch
                    full = training_state(optimizer, scheduler, scaler, state, world, cfg.batch_size, args.accumulate)
                    save(work / "last.pth", model, cfg, state, None, full)
                break
            state.epoch += 1
            state.iter_in_epoch = 0
            if world > 1:  # MMPose SyncBuffersHook: average BatchNorm statistics at the end of each epoch
                for buf in model.buffers():
                    if buf.is_floating_point():
                        dist.all_reduce(buf)
                        buf /= world
            ap = None
            if val_loader is not None and (state.epoch % cfg.val_interval == 0 or state.epoch == cfg.epochs):
                stats = evaluate(model, val_loader, val_set, device, cfg.model.flip_test and not args.no_flip_test)
                if main_proc:
                    ap = stats[BEST_METRIC[dataset]]
                    record = {"mode": "val", "epoch": state.epoch, "iter": state.global_iter, **stats}
                    state.history.append(record)
                    write_log(record)
                    log.info("epoch %d: %s", state.epoch, ", ".join(f"{k} {v:.4f}" for k, v in list(stats.items())[:6]))
                    if ap > state.best_ap:
                        state.best_ap, state.best_epoch = ap, state.epoch
                        save(work / "best.pth", model, cfg, state, ap, None)
            last_epoch = state.epoch == cfg.epochs or stopped
            if main_proc and (state.epoch % cfg.checkpoint_interval == 0 or last_epoch):
                full = training_state(optimizer, scheduler, scaler, state, world, cfg.batch_size, args.accumulate)
                save(work / "last.pth", model, cfg, state, ap, full)
                if state.epoch % cfg.checkpoint_interval == 0:
                    save(work / f"epoch_{state.epoch}.pth", model, cfg, state, ap, None)
    finally:
        if log_file is not None:
            log_file.close()
        if writer is not None:
            writer.close()
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
