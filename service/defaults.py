"""Default models: where ``pose-serve`` looks when started without model paths (torch-free).

The defaults are the Ultralytics ``yolo11n`` person detector and the ``ipr_res50_debias`` pose model
(MMPose's published Debias-IPR ResNet-50 checkpoint), exported by ``pose-export defaults`` into the
cache directory (``$POSE_CACHE_DIR``, default ``~/.cache/poseserve``)::

    <cache>/detector/yolo11n.onnx
    <cache>/pose/ipr_res50_debias.onnx + ipr_res50_debias.json (the model card)

When they are missing, :func:`resolve_default_models` runs the preparation in a subprocess
(``python -m export.cli defaults``, so torch never enters the server process) if the export extra is
installed; otherwise, or if preparation fails (e.g. no network), it raises :class:`DefaultModelsMissing`
whose message names the files it looked for and the command that prepares them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from models.zoo import cache_root
from service.errors import ModelLoadError

DEFAULT_DETECTOR = "yolo11n"
DEFAULT_POSE = "ipr_res50_debias"
PREPARE_COMMAND = "pose-export defaults"


class DefaultModelsMissing(ModelLoadError):
    """The default models are not in the cache and could not be prepared."""


def default_cache_dir() -> Path:
    """``$POSE_CACHE_DIR``, else ``~/.cache/poseserve`` (:func:`models.zoo.cache_root`)."""
    return cache_root()


def default_model_paths(cache_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(detector ONNX, pose card JSON) paths of the defaults inside ``cache_dir`` (they may not exist)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache / "detector" / f"{DEFAULT_DETECTOR}.onnx", cache / "pose" / f"{DEFAULT_POSE}.json"


def _present(detector: Path, card: Path) -> bool:
    return detector.is_file() and card.is_file() and card.with_suffix(".onnx").is_file()


def export_extra_installed() -> bool:
    """Whether ``python -m export.cli`` can run here (torch and the export package importable), without importing them."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx", "export"))


def resolve_default_models(cache_dir: str | Path | None = None, prepare: bool | None = None) -> tuple[Path, Path]:
    """The default detector ONNX and pose card, preparing them first if possible.

    Args:
        cache_dir: the cache directory (default :func:`default_cache_dir`).
        prepare: run ``python -m export.cli defaults`` in a subprocess when the files are missing and
            the export extra is installed (its download / export progress goes to this process's
            stderr). None: yes unless ``POSE_PREPARE_DEFAULTS=0``.

    Returns:
        (detector ONNX path, pose model card JSON path).

    Raises:
        DefaultModelsMissing: the files are absent and could not be prepared; the message lists the
            paths looked for and the command that prepares them.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    detector, card = default_model_paths(cache)
    if _present(detector, card):
        return detector, card
    if prepare is None:
        prepare = os.environ.get("POSE_PREPARE_DEFAULTS", "1") != "0"
    why = ""
    if prepare and export_extra_installed():
        print(f"default models missing in {cache}; preparing them ({PREPARE_COMMAND})", file=sys.stderr)
        cmd = [sys.executable, "-m", "export.cli", "defaults", "--cache-dir", str(cache)]
        rc = subprocess.run(cmd, check=False).returncode
        if rc == 0 and _present(detector, card):
            return detector, card
        why = f"preparing them failed (`{' '.join(cmd)}` exited with {rc}; see its messages above). "
    elif prepare:
        why = "the export extra (torch, onnx) is not installed, so they cannot be prepared here. "
    raise DefaultModelsMissing(
        f"default models not found: looked for\n  {detector}\n  {card} (and {card.with_suffix('.onnx').name} beside it)\n"
        f"{why}Prepare them with `{PREPARE_COMMAND} --cache-dir {cache}` (needs `pip install 'poseserve[export]'` "
        "and network access to GitHub and download.openmmlab.com), or pass --detector and --pose."
    )
