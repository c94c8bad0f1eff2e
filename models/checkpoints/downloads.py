"""Verified downloads: ``torch.hub.download_url_to_file`` with the SHA-256 prefix checked, cached files re-hashed;
the zoo's published checkpoints (:func:`load_pretrained`) and the ImageNet backbone weights the configs start from
(:func:`imagenet_weights`: torchvision's ResNets, MMPose's HRNets).
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import torch

from core.hashing import sha256_file
from models.zoo import IMAGENET_RESNET, get_config
from models.zoo.families.hrnet import IMAGENET_HRNET


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


def imagenet_weights(
    depth: int, base_channels: int, cache_dir: str | os.PathLike, offline: bool = False, progress: bool = True
) -> Path:
    """Path of torchvision's ImageNet weights of a ResNet of ``depth`` in ``cache_dir``, downloaded by URL with its
    SHA-256 prefix checked (:data:`models.zoo.IMAGENET_RESNET`) if not cached.

    Raises:
        ValueError: no ImageNet weights for this depth / width.
        FileNotFoundError: offline or the download failed (the message names the URL and where to put the file).
        ChecksumError: wrong hash.
    """
    if depth not in IMAGENET_RESNET or base_channels != 64:
        raise ValueError(f"no ImageNet weights for ResNet-{depth} with base width {base_channels}")
    url, prefix = IMAGENET_RESNET[depth]
    return _imagenet_file(url, prefix, f"ResNet-{depth}", cache_dir, offline, progress)


def imagenet_hrnet_weights(
    width: int, cache_dir: str | os.PathLike, offline: bool = False, progress: bool = True
) -> Path:
    """Path of MMPose's ImageNet HRNet-W<width> weights (``models.zoo.families.hrnet.IMAGENET_HRNET``) in
    ``cache_dir``, downloaded by URL with its SHA-256 prefix checked if not cached.

    Raises:
        ValueError: no ImageNet weights for this width. FileNotFoundError, ChecksumError: as :func:`imagenet_weights`.
    """
    if width not in IMAGENET_HRNET:
        raise ValueError(f"no ImageNet weights for HRNet-W{width} (published: {sorted(IMAGENET_HRNET)})")
    url, prefix = IMAGENET_HRNET[width]
    return _imagenet_file(url, prefix, f"HRNet-W{width}", cache_dir, offline, progress)


def _imagenet_file(url: str, prefix: str, what: str, cache_dir, offline: bool, progress: bool) -> Path:
    dest = Path(cache_dir) / url.rsplit("/", 1)[-1]
    if dest.is_file():
        return verified_file(dest, prefix, url)
    where = f"Download\n  {url}\nand put it at\n  {dest}\n(its SHA-256 must start with {prefix})"
    if offline:
        raise FileNotFoundError(f"ImageNet {what} weights not cached and offline. {where}")
    try:
        return download(url, dest, prefix, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise FileNotFoundError(f"could not download the ImageNet weights ({e}). {where}") from e
