"""Default models: what ``pose-serve`` serves when started without model paths (torch-free).

The defaults are the Ultralytics ``yolo11n`` person detector and the ``ipr_res50_debias`` pose model
(MMPose's published Debias-IPR ResNet-50 checkpoint), exported by ``pose-export defaults`` into the
cache (:class:`service.settings.CacheLayout`: ``default_detector``, ``default_pose_card``).

When they are missing, :func:`resolve_default_models` runs the preparation in a subprocess
(``python -m export.cli defaults``, so torch never enters the server process) if the export extra is
installed and ``Settings.prepare_defaults`` is on; otherwise, or if preparation fails (e.g. no network),
it raises :class:`DefaultModelsMissing` whose message names the files it looked for and the command
that prepares them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from service.errors import ModelLoadError
from service.settings import CacheLayout, Settings

PREPARE_COMMAND = "pose-export defaults"


class DefaultModelsMissing(ModelLoadError):
    """The default models are not in the cache and could not be prepared."""


def defaults_present(cache: CacheLayout) -> bool:
    """Whether the default detector ONNX, pose card and the pose ONNX beside it all exist."""
    card = cache.default_pose_card
    return cache.default_detector.is_file() and card.is_file() and card.with_suffix(".onnx").is_file()


def export_extra_installed() -> bool:
    """Whether ``python -m export.cli`` can run here (torch and the export package importable), without importing them."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx", "export"))


def resolve_default_models(settings: Settings) -> tuple[Path, Path]:
    """The default detector ONNX and pose card, preparing them first if possible.

    Args:
        settings: ``cache_dir`` (where they live) and ``prepare_defaults`` (run ``python -m export.cli
            defaults --cache-dir ...`` in a subprocess when they are missing and the export extra is
            installed; its download / export progress goes to this process's stderr; the subprocess reads
            ``POSE_OFFLINE`` from the same environment).

    Returns:
        (detector ONNX path, pose model card JSON path).

    Raises:
        DefaultModelsMissing: the files are absent and could not be prepared; the message lists the
            paths looked for and the command that prepares them.
    """
    cache = settings.cache
    detector, card = cache.default_detector, cache.default_pose_card
    if defaults_present(cache):
        return detector, card
    why = ""
    if settings.prepare_defaults and export_extra_installed():
        print(f"default models missing in {cache.root}; preparing them ({PREPARE_COMMAND})", file=sys.stderr)
        cmd = [sys.executable, "-m", "export.cli", "defaults", "--cache-dir", str(cache.root)]
        rc = subprocess.run(cmd, check=False).returncode
        if rc == 0 and defaults_present(cache):
            return detector, card
        why = f"preparing them failed (`{' '.join(cmd)}` exited with {rc}; see its messages above). "
    elif settings.prepare_defaults:
        why = "the export extra (torch, onnx) is not installed, so they cannot be prepared here. "
    raise DefaultModelsMissing(
        f"default models not found: looked for\n  {detector}\n  {card} (and {card.with_suffix('.onnx').name} beside it)\n"
        f"{why}Prepare them with `{PREPARE_COMMAND} --cache-dir {cache.root}` (needs `pip install 'poseserve[export]'` "
        "and network access to GitHub and download.openmmlab.com), or pass --detector and --pose."
    )
