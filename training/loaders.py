"""The data of a training run: where the files are (``--data-root`` in MMPose's layout, or each path) and the train /
validation loaders (``training.data``'s datasets, a distributed sampler that can skip what a resumed epoch did)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from core.errors import UsageError
from training.configs import TrainConfig
from training.data import CocoTopDown, EpochIndices, MpiiTopDown, worker_init

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
            raise UsageError(f"give --data-root or --{k.replace('_', '-')}")
        out[k] = Path(v) if v is not None else root / rel
    return out


@dataclass
class Loaders:
    """The loaders of one process: the training set, its sampler (``set_epoch(epoch, skip)``) and loader; the
    validation set and this process's share of it (None with ``--no-val``)."""

    train_set: Dataset
    sampler: EpochIndices
    train: DataLoader
    val_set: Dataset | None = None
    val: DataLoader | None = None


def build_loaders(
    args: argparse.Namespace,
    cfg: TrainConfig,
    paths: dict[str, Path | None],
    rank: int,
    world: int,
    device: torch.device,
) -> Loaders:
    """Datasets and loaders of ``pose-train`` (options used: ``--seed``, ``--max-images``, ``--no-val``,
    ``--det-file``).

    Raises:
        DataError: unreadable annotations. ValueError: ``--det-file`` with an MPII config.
    """
    dataset = cfg.model.dataset or "coco"
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
    loaders = Loaders(
        train_set,
        sampler,
        DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=False, **loader_kw),
    )
    if args.no_val:
        return loaders
    if dataset == "mpii":
        if args.det_file:
            raise UsageError("MPII is validated on its annotations' boxes (no --det-file)")
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
    loaders.val_set = val_set
    loaders.val = DataLoader(Subset(val_set, range(rank, len(val_set), world)), batch_size=cfg.batch_size, **loader_kw)
    return loaders
