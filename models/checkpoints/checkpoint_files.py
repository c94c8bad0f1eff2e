"""Our checkpoint file format and safe reading of any torch checkpoint (MMPose's or ours): :data:`FORMAT`,
:func:`read_checkpoint` (``torch.load(weights_only=True)``, unknown pickled classes stubbed), :func:`extract_state_dict`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

#: Format tag of our checkpoint files.
FORMAT = "poseserve.pose_checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not match the model (the message says exactly why)."""


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


def json_safe(obj, depth: int = 0):
    """Reduce MMPose meta to JSON-able values (arrays -> lists, unknown objects -> str)."""
    if depth > 6:
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, depth + 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
