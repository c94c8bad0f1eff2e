"""Load MMPose ``.pth`` checkpoints and our own, save ours; strict key checking with clear errors.

Two layouts are read:

* MMPose / mmengine (``mmengine.runner.checkpoint.save_checkpoint``, published via
  ``tools/misc/publish_model.py``): a dict with ``state_dict`` (keys ``backbone.*`` / ``head.*``)
  and ``meta`` (mmengine / mmpose versions, dataset meta, ...). MMPose 0.x files (``keypoint_head.*``; RLE's
  ``keypoint_head.loss.*``), which MMPose 1.3.2's metafiles still publish, are renamed as MMPose 1.x renames them
  on load (:func:`mmpose_v1_keys`). The file does not say which
  inference config (beta, debias) it belongs to; :func:`load_pose_checkpoint` finds the zoo entry by
  the SHA-256 prefix in the file name or of the file content, or takes ``config=`` from the caller.
* Ours (:data:`FORMAT`): ``{"format": FORMAT, "config": PoseModelConfig.to_dict(),
  "state_dict": ..., "meta": {...}}`` as written by :func:`save_pose_checkpoint`.

Files are read with ``torch.load(weights_only=True)`` (no arbitrary pickles); the numpy types that
MMPose's ``meta`` may contain are allow-listed.
"""

from __future__ import annotations

import os
import re
import urllib.error
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.hashing import sha256_file
from models.pose_model import TopdownPoseModel, build_pose_model
from models.zoo import IMAGENET_RESNET, ZOO, PoseModelConfig, get_config

#: Format tag of our checkpoint files.
FORMAT = "poseserve.pose_checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not match the model (the message says exactly why)."""


class ChecksumError(RuntimeError):
    """A downloaded or cached file's SHA-256 does not start with the expected prefix."""


def download(url: str, dest: str | os.PathLike, sha256_prefix: str | None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with ``torch.hub.download_url_to_file`` (temporary file beside ``dest``,
    renamed only after the SHA-256 prefix matches; tqdm progress bar on stderr).

    Args:
        url: http(s) or file URL.
        dest: final path (parent folders are created).
        sha256_prefix: expected leading hex digits of the SHA-256 (a full digest works too); None: no check.
        progress: show the progress bar.

    Returns:
        ``dest``.

    Raises:
        ChecksumError: the hash does not match (nothing is left at ``dest``).
        urllib.error.URLError / OSError: the download failed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=sha256_prefix, progress=progress)
    except RuntimeError as exc:
        if "invalid hash value" in str(exc):
            raise ChecksumError(f"SHA-256 of {url} does not start with {sha256_prefix}: {exc}") from exc
        raise
    return dest


def verified_file(path: str | os.PathLike, sha256_prefix: str | None, url: str = "") -> Path:
    """``path`` after checking that its SHA-256 starts with ``sha256_prefix`` (a cached download).

    Raises:
        ChecksumError: a mismatch (the file is never silently replaced; the message says to delete it).
    """
    digest = sha256_file(path)
    if sha256_prefix and not digest.startswith(sha256_prefix):
        raise ChecksumError(
            f"{path} has SHA-256 {digest}, expected it to start with {sha256_prefix}; delete it and download {url} again"
        )
    return Path(path)


def load_pretrained(name: str, cache_dir: str | os.PathLike, progress: bool = True, offline: bool = False) -> Path:
    """Path of the published checkpoint of zoo entry ``name`` in ``cache_dir``, downloading it if needed.

    A file already in the cache is re-hashed and used if its SHA-256 matches.

    Args:
        name: zoo name (see :data:`models.zoo.ZOO`).
        cache_dir: the checkpoint folder (``Settings.cache.checkpoints``).
        progress: progress bar while downloading.
        offline: never download; a missing file raises FileNotFoundError.

    Returns:
        Path to the verified ``.pth`` file (``cache_dir / <file name from the URL>``).

    Raises:
        KeyError: unknown name.
        ValueError: the entry has no published checkpoint.
        ChecksumError: the cached or downloaded file has the wrong hash.
        FileNotFoundError: offline, or the download failed (e.g. no network); the message names the URL
            and the exact path where to put a manually downloaded file.
    """
    cfg = get_config(name)
    if not cfg.checkpoint_url:
        raise ValueError(f"zoo entry {name!r} has no published checkpoint")
    dest = Path(cache_dir) / cfg.checkpoint_filename
    if dest.is_file():
        return verified_file(dest, cfg.sha256_prefix, cfg.checkpoint_url)
    where = (
        f"Download\n  {cfg.checkpoint_url}\non a machine with network access and put it at\n  {dest}\n"
        f"(its SHA-256 must start with {cfg.sha256_prefix})"
    )
    if offline:
        raise FileNotFoundError(f"the {name!r} checkpoint is not cached and downloads are off (offline). {where}")
    try:
        return download(cfg.checkpoint_url, dest, cfg.sha256_prefix, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise FileNotFoundError(f"could not download the {name!r} checkpoint ({e}). {where}") from e


def _numpy_safe_globals() -> list:
    """numpy objects that may appear in MMPose ``meta`` (dataset sigmas, flip indices, seeds)."""
    items: list = [np.ndarray, np.dtype]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    items += [_reconstruct, scalar]
    for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType", "UInt8DType"):
        dt = getattr(np.dtypes, name, None) if hasattr(np, "dtypes") else None
        if dt is not None:
            items.append(dt)
    return items


class OpaqueObject:
    """Inert stand-in for a class pickled in a checkpoint's metadata that is not on the allow-list
    (e.g. mmengine's ``HistoryBuffer`` in a ``message_hub``). It runs none of that class's code: it
    only keeps the constructor arguments and the pickled state for inspection."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<opaque {self.qualname}>"


_NEVER_STUB = ("torch", "numpy", "builtins", "collections", "__builtin__", "_codecs")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file safely (``torch.load(weights_only=True)``) onto the CPU.

    numpy arrays / scalars are allow-listed. Other classes the pickle names (typically mmengine objects
    in MMPose's ``meta``), as listed by ``torch.serialization.get_unsafe_globals_in_checkpoint``, are
    replaced by inert :class:`OpaqueObject` stand-ins, so no code from the file runs; classes of torch /
    numpy / builtins are never stubbed.

    Returns:
        The top-level dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a readable torch checkpoint or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    allowed = _numpy_safe_globals()
    try:
        with torch.serialization.safe_globals(allowed):
            unknown = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        refused = [name for name in unknown if name.split(".")[0] in _NEVER_STUB]
        if refused:
            raise CheckpointError(f"cannot read {path}: it pickles objects that are not weights: {refused[:5]}")
        for name in unknown:
            stub = type("Opaque_" + name.replace(".", "_"), (OpaqueObject,), {"qualname": name})
            allowed.append((stub, name))
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # torch raises UnpicklingError / RuntimeError / EOFError ...
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {type(e).__name__}: {e}") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, expected a dict checkpoint")
    return dict(obj)


def extract_state_dict(ckpt: Mapping) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint dict: ``ckpt["state_dict"]`` (MMPose / ours), ``ckpt["model"]``,
    or ``ckpt`` itself if all its values are tensors; a leading ``module.`` (DDP) is stripped.

    Raises:
        CheckpointError: no state dict found.
    """
    if "state_dict" in ckpt:
        sd = ckpt["state_dict"]
    elif "model" in ckpt and isinstance(ckpt["model"], Mapping):
        sd = ckpt["model"]
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        raise CheckpointError(f"no state dict in checkpoint (top-level keys: {sorted(ckpt)[:10]})")
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint 'state_dict' is a {type(sd).__name__}, expected a dict")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"state dict entries that are not tensors: {bad[:10]}")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}


def mmpose_v1_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MMPose 0.x checkpoint keys -> MMPose 1.x keys, as MMPose 1.3.2's load hooks rename them.

    * ``BasePoseEstimator._load_state_dict_pre_hook`` (``mmpose/models/pose_estimators/base.py``): drops
      ``data_preprocessor.mean`` / ``.std`` and renames ``keypoint_head`` -> ``head`` (0.x ``TopdownHeatmapSimpleHead``
      and ``DeepposeRegressionHead`` keep their layer names: ``deconv_layers``, ``final_layer``, ``fc``);
    * ``RLEHead._load_state_dict_pre_hook`` (``mmpose/models/heads/regression_heads/rle_head.py``):
      ``head.loss.*`` (0.x's ``RLELoss`` with its flow) -> ``head.loss_module.*``.

    1.x keys pass unchanged, so the function applies to any MMPose file.
    """
    out = {}
    for k, v in state_dict.items():
        if k in ("data_preprocessor.mean", "data_preprocessor.std"):
            continue
        k = k.replace("keypoint_head", "head")
        if k.startswith("head.loss."):
            k = "head.loss_module." + k[len("head.loss.") :]
        out[k] = v
    return out


def imagenet_to_backbone_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ResNet keys -> our backbone's: ``conv1.weight`` -> ``backbone.conv1.weight`` etc.; the
    classifier ``fc.*`` is dropped (MMPose loads ``torchvision://resnet50`` into the backbone the same way and
    reports ``fc`` as unexpected)."""
    return {"backbone." + k: v for k, v in state_dict.items() if not k.startswith("fc.")}


def load_imagenet_backbone(
    model: TopdownPoseModel, cache_dir: str | os.PathLike, offline: bool = False, progress: bool = True
) -> Path:
    """Initialise ``model.backbone`` with torchvision's ImageNet weights of its depth (MMPose
    ``init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')``), downloaded by URL with its
    SHA-256 prefix checked (:data:`models.zoo.IMAGENET_RESNET`) into ``cache_dir``.

    Args:
        model: a :class:`TopdownPoseModel` with ``backbone_base_channels`` 64 (the torchvision widths).
        cache_dir: the checkpoint folder (``Settings.cache.checkpoints``).
        offline: never download (a missing file raises FileNotFoundError naming the URL and the path).
        progress: download progress bar.

    Returns:
        The weights file used.

    Raises:
        ValueError: no ImageNet weights for this depth / width.
        FileNotFoundError: offline or the download failed (the message names the URL and where to put the file).
        ChecksumError: wrong hash. CheckpointError: the file's keys / shapes do not fit the backbone.
    """
    cfg = model.config
    if cfg.backbone_depth not in IMAGENET_RESNET or cfg.backbone_base_channels != 64:
        raise ValueError(
            f"no ImageNet weights for ResNet-{cfg.backbone_depth} with base width {cfg.backbone_base_channels}"
        )
    url, prefix = IMAGENET_RESNET[cfg.backbone_depth]
    dest = Path(cache_dir) / url.rsplit("/", 1)[-1]
    if dest.is_file():
        verified_file(dest, prefix, url)
    else:
        where = f"Download\n  {url}\nand put it at\n  {dest}\n(its SHA-256 must start with {prefix})"
        if offline:
            raise FileNotFoundError(f"ImageNet ResNet-{cfg.backbone_depth} weights not cached and offline. {where}")
        try:
            download(url, dest, prefix, progress=progress)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise FileNotFoundError(f"could not download the ImageNet weights ({e}). {where}") from e
    _load_backbone(model, imagenet_to_backbone_keys(extract_state_dict(read_checkpoint(dest))), dest)
    return dest


def _load_backbone(model: TopdownPoseModel, state_dict: Mapping[str, torch.Tensor], source: Path) -> None:
    """Strictly load the ``backbone.*`` entries of ``state_dict`` (all of them, nothing else) into ``model.backbone``.

    Raises:
        CheckpointError: keys / shapes that do not fit (``source`` named).
    """
    holder = nn.Module()
    holder.backbone = model.backbone
    try:
        check_state_dict(holder, state_dict)
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    model.backbone.load_state_dict({k[len("backbone.") :]: v for k, v in state_dict.items()}, strict=True)


def load_backbone_weights(model: TopdownPoseModel, path: str | os.PathLike) -> Path:
    """Initialise ``model.backbone`` from the ``backbone.*`` weights of a pose checkpoint (MMPose's or ours), as
    MMPose's ``init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...)`` does; the head is left as it is.

    Args:
        model: a :class:`TopdownPoseModel`.
        path: the checkpoint file.

    Returns:
        ``path``.

    Raises:
        FileNotFoundError: no such file. CheckpointError: unreadable, or its backbone keys / shapes do not fit.
    """
    path = Path(path)
    sd = mmpose_v1_keys(extract_state_dict(read_checkpoint(path)))
    _load_backbone(model, {k: v for k, v in sd.items() if k.startswith("backbone.")}, path)
    return path


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], max_listed: int = 20) -> None:
    """Strict comparison of ``state_dict`` with ``model.state_dict()``.

    Raises:
        CheckpointError: listing (up to ``max_listed`` each) the missing keys, the unexpected keys and
            the keys whose shapes differ (with both shapes).
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [
        f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or misshaped):
        return

    def fmt(title: str, items: list[str]) -> str:
        more = f" ... and {len(items) - max_listed} more" if len(items) > max_listed else ""
        return f"  {title} ({len(items)}): " + ", ".join(items[:max_listed]) + more

    parts = [fmt(t, i) for t, i in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if i]
    raise CheckpointError("state dict does not match the model:\n" + "\n".join(parts))


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """:func:`check_state_dict`, then ``model.load_state_dict(strict=True)``; returns ``model``."""
    check_state_dict(model, state_dict)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def config_for_mmpose_file(path: str | os.PathLike, digest: str | None = None) -> PoseModelConfig:
    """The zoo entry an MMPose checkpoint file belongs to: the entry whose SHA-256 prefix starts the file's digest,
    else the one whose prefix is the 8 hex digits in the file name (``...-<sha8>[_<date>].pth``, OpenMMLab's
    ``publish_model`` convention).

    Args:
        path: the file.
        digest: its hex SHA-256 (computed when None).

    Raises:
        CheckpointError: neither matches an entry (the message lists the entries).
    """
    path = Path(path)
    digest = sha256_file(path) if digest is None else digest
    for cfg in ZOO.values():
        if cfg.sha256_prefix and digest.startswith(cfg.sha256_prefix):
            return cfg
    m = re.search(r"-([0-9a-f]{8})(?:_\d{8})?\.pth$", path.name)
    if m:
        for cfg in ZOO.values():
            if cfg.sha256_prefix == m.group(1):
                return cfg
    raise CheckpointError(
        f"cannot tell which model config {path.name} belongs to (its SHA-256 {digest[:8]}... matches no zoo "
        f"entry); pass config= one of {sorted(ZOO)} or a PoseModelConfig"
    )


def _json_safe(obj, depth: int = 0):
    """Reduce MMPose meta to JSON-able values (arrays -> lists, unknown objects -> str)."""
    if depth > 6:
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def load_pose_checkpoint(
    path_or_zoo_name: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    config: str | PoseModelConfig | dict | None = None,
    offline: bool = False,
) -> tuple[TopdownPoseModel, dict]:
    """Build the right model and load a checkpoint into it with strict key checking.

    Args:
        path_or_zoo_name: a zoo name (the published MMPose checkpoint is taken from / downloaded into
            ``cache_dir``, see :func:`load_pretrained`) or a path to an MMPose ``.pth`` or to one of ours.
        cache_dir: checkpoint folder for zoo names (``Settings.cache.checkpoints``); required for them.
        offline: never download a zoo checkpoint.
        config: override the config (zoo name, :class:`PoseModelConfig` or dict). Needed for an MMPose
            file that the zoo does not know (its name and hash match no entry).

    Returns:
        ``(model, metadata)``: the model in eval mode, and a JSON-able dict with ``format``
        (``"mmpose"`` or ``"poseserve"``), ``config`` (the config dict), ``config_name``,
        ``checkpoint`` (file path), ``sha256`` (of the file), ``published`` (zoo AP/AR, may be empty) and
        ``meta`` (the file's own metadata).

    Raises:
        FileNotFoundError: no such file / download impossible (the message says where to put it).
        CheckpointError: unreadable file, unknown config, or keys / shapes that do not match.
    """
    name = os.fspath(path_or_zoo_name)
    if name in ZOO and not Path(name).is_file():
        if cache_dir is None:
            raise ValueError(f"zoo name {name!r} needs cache_dir (the checkpoint folder, Settings().cache.checkpoints)")
        path = load_pretrained(name, cache_dir, offline=offline)
        if config is None:
            config = name
    else:
        path = Path(name)
    ckpt = read_checkpoint(path)
    digest = sha256_file(path)

    if ckpt.get("format") == FORMAT:
        fmt = "poseserve"
        if config is None:
            try:
                cfg = PoseModelConfig.from_dict(ckpt["config"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: invalid stored config: {e}") from e
        meta = ckpt.get("meta", {})
    else:
        fmt = "mmpose"
        cfg = None if config is not None else config_for_mmpose_file(path, digest)
        meta = ckpt.get("meta", {})
    if config is not None:
        cfg = get_config(config) if isinstance(config, str) else config
        if isinstance(cfg, dict):
            cfg = PoseModelConfig.from_dict(cfg)

    model = build_pose_model(cfg)
    state_dict = extract_state_dict(ckpt)
    converted = None
    if fmt == "mmpose":
        renamed = mmpose_v1_keys(state_dict)
        if list(renamed) != list(state_dict):
            converted = "MMPose 0.x keys renamed as MMPose 1.x does (keypoint_head -> head, loss -> loss_module)"
        state_dict = renamed
    # keys written for another head (an integral model initialised from a td-hm checkpoint, as MMPose does)
    state_dict, remapped = model.kind.remap_state_dict(state_dict, model)
    converted = "; ".join(x for x in (converted, remapped) if x) or None
    try:
        load_state_dict_strict(model, state_dict)
    except CheckpointError as e:
        raise CheckpointError(f"{path} (config {cfg.name!r}): {e}") from None
    metadata = {
        "format": fmt,
        "config_name": cfg.name,
        "config": cfg.to_dict(),
        "checkpoint": str(path),
        "sha256": digest,
        "published": dict(cfg.published),
        "meta": _json_safe(meta),
    }
    if converted:
        metadata["converted"] = converted
    return model.eval(), metadata


def save_pose_checkpoint(
    path: str | os.PathLike, model: TopdownPoseModel, meta: Mapping | None = None, extra: Mapping | None = None
) -> Path:
    """Write our checkpoint format: config + state dict + metadata (JSON-able ``meta``, e.g. epoch, AP).

    Args:
        path: the file (parent folders are created). Written to ``<path>.tmp`` first and renamed, so an
            interrupted save never leaves a truncated checkpoint.
        model: the model (its ``config`` and weights; tensors are copied to the CPU).
        meta: JSON-able metadata (training: ``config_name``, ``epoch``, ``AP`` ...).
        extra: more top-level entries in MMPose's checkpoint layout (training state: ``optimizer``,
            ``param_schedulers``, ``scaler``, ``train_state``); plain tensors / numbers / containers only, so the
            file still loads with ``weights_only=True``.

    Returns:
        The path written. The file loads back with :func:`load_pose_checkpoint` (no config needed).

    Raises:
        ValueError: an ``extra`` key that clashes with the format's own keys.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": _json_safe(dict(meta or {})),
    }
    clash = sorted(set(extra or {}) & set(payload))
    if clash:
        raise ValueError(f"extra checkpoint entries clash with the format's keys: {clash}")
    payload.update(extra or {})
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path
