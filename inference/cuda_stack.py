"""Is the installed CUDA stack one consistent set? Checked when the GPU image is built (no GPU needed).

    python -m inference.cuda_stack --cuda "$CUDA_VERSION" [--tensorrt]      # exit 1 and say why on a mismatch

onnxruntime-gpu's CUDA provider is a shared library that onnxruntime loads when a session asks for
``CUDAExecutionProvider``; when its CUDA libraries are missing or of another major version, onnxruntime
logs a warning and runs on the CPU, and the service (rightly) refuses to start: at the first start on a GPU,
not at build time. The checks here move that failure to ``docker build``:

* ``onnxruntime.capi.build_and_package_info``: the package is ``onnxruntime-gpu`` and its ``cuda_version``
  has the base image's CUDA major version, and a minor version no newer than the base's (a build against
  CUDA 12.8 may call what the 12.6 runtime libraries lack; NVIDIA's minor-version compatibility runs older
  builds on newer libraries, not the reverse). onnxruntime's docs: "ONNX Runtime built with CUDA 12.x is
  compatible with any CUDA 12.x version" of the runtime it was built against or newer
  (https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html#requirements).
* ``ldd`` on ``libonnxruntime_providers_cuda.so`` (and ``..._tensorrt.so`` plus TensorRT's ``libnvinfer``
  with ``--tensorrt``): every library resolves (cuBLAS / cuBLASLt / cuFFT / cuRAND / cudart of the right
  major, cuDNN 9, TensorRT 10), except ``libcuda.so.1``, the driver, which the NVIDIA container runtime
  mounts only when a container runs on a GPU.
* with ``--tensorrt``: the ``tensorrt-cu12`` distribution is 10.x and ``cuda-python`` is >= 12.6 and < 13
  (13.x removes ``cuda.cudart`` and links the CUDA 13 runtime, which CUDA 12 drivers reject). Versions are
  read from package metadata, not by importing, so the check does not depend on the build machine's driver.

Torch-free, onnxruntime needed; ``ldd`` from glibc.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Libraries that resolve only in a running GPU container (the driver, mounted by the NVIDIA runtime).
DRIVER_LIBRARIES = ("libcuda.so.1", "libnvidia-ml.so.1")


def parse_version(text: str) -> tuple[int, ...]:
    """``"12.6.3"`` -> ``(12, 6, 3)``; ``"12.6.2.post1"`` -> ``(12, 6, 2)``.

    Raises:
        ValueError: no leading number.
    """
    parts = re.findall(r"\d+", text.split("+")[0].split("post")[0])
    if not parts:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in parts)


def check_cuda_versions(package: str, ort_cuda: str | None, base_cuda: str | None) -> list[str]:
    """The onnxruntime build against the base image's CUDA (see the module docstring).

    Args:
        package: ``build_and_package_info.package_name`` (``onnxruntime-gpu`` expected).
        ort_cuda: ``build_and_package_info.cuda_version`` (None for CPU builds).
        base_cuda: the base image's CUDA version (``$CUDA_VERSION`` of NVIDIA's images, e.g. ``12.6.3``).

    Returns:
        Problems in words (empty: consistent).
    """
    if package != "onnxruntime-gpu" or not ort_cuda:
        return [
            f"onnxruntime package is {package!r} without a CUDA build: install onnxruntime-gpu (never together with onnxruntime)"
        ]
    if not base_cuda:
        return ["the base image's CUDA version is unknown: pass --cuda (NVIDIA's CUDA images set $CUDA_VERSION)"]
    ort_v, base_v = parse_version(ort_cuda), parse_version(base_cuda)
    if ort_v[0] != base_v[0]:
        return [
            f"onnxruntime-gpu is built for CUDA {ort_cuda}, the base image has CUDA {base_cuda}: its CUDA provider needs "
            f"the CUDA {ort_v[0]} libraries (e.g. libcublasLt.so.{ort_v[0]}) and would fall back to CPU; pin an "
            f"onnxruntime-gpu built for CUDA {base_v[0]} (docker/constraints/)"
        ]
    if ort_v[:2] > base_v[:2]:
        return [
            f"onnxruntime-gpu is built for CUDA {ort_cuda}, newer than the base image's CUDA {base_cuda}: use a base "
            f"image with CUDA >= {ort_v[0]}.{ort_v[1]} or an onnxruntime-gpu built for an older CUDA {base_v[0]}.x"
        ]
    return []


def check_package_versions(trt: str | None, cuda_python: str | None) -> list[str]:
    """TensorRT 10 and cuda-python 12.6..12.x (see the module docstring); None means not installed."""
    problems = []
    if trt is None:
        problems.append("TensorRT is not installed (tensorrt-cu12 10.x)")
    elif parse_version(trt)[0] != 10:
        problems.append(f"TensorRT {trt} installed; the engines and the runtime here are for TensorRT 10")
    if cuda_python is None:
        problems.append("cuda-python is not installed (>=12.6,<13)")
    elif not (12, 6) <= parse_version(cuda_python)[:2] < (13, 0):
        problems.append(
            f"cuda-python {cuda_python} installed; need >=12.6,<13 (13 removes cuda.cudart and needs a CUDA 13 driver)"
        )
    return problems


def unresolved_libraries(ldd_output: str) -> list[str]:
    """Libraries ``ldd`` reports ``not found``, except the driver's (:data:`DRIVER_LIBRARIES`)."""
    missing = [line.split("=>")[0].strip() for line in ldd_output.splitlines() if "not found" in line]
    return [m for m in missing if m not in DRIVER_LIBRARIES]


def _ldd(path: Path) -> list[str]:
    if not path.is_file():
        return [f"{path} does not exist"]
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=os.environ.copy())
    missing = unresolved_libraries(out.stdout + out.stderr)
    return [f"{path.name} needs {', '.join(missing)}, which the image lacks"] if missing else []


#: onnxruntime provider -> its shared library in ``onnxruntime/capi`` (loaded by onnxruntime when a session asks for it).
PROVIDER_LIBRARIES = {
    "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
    "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
}


def provider_load_error(provider: str, capi: Path | None = None) -> str | None:
    """Load an onnxruntime provider's library the way onnxruntime does (``libonnxruntime_providers_shared.so``
    first, globally, then the provider's), and return the dynamic loader's error, or None when it loads.

    Args:
        provider: ``CUDAExecutionProvider`` or ``TensorrtExecutionProvider`` (others: None).
        capi: the ``onnxruntime/capi`` folder (default: the installed onnxruntime's).

    Returns:
        The reason in words (e.g. ``libcublasLt.so.12: cannot open shared object file``; or that the installed
        onnxruntime has no such library, as the CPU package), or None. Never raises.
    """
    import ctypes

    name = PROVIDER_LIBRARIES.get(provider)
    if name is None:
        return None
    if capi is None:
        try:
            import onnxruntime

            capi = Path(onnxruntime.__file__).parent / "capi"
        except ImportError as exc:
            return f"onnxruntime is not importable ({exc})"
    path = capi / name
    if not path.is_file():
        return f"this onnxruntime has no {name} (the CPU package? install onnxruntime-gpu, never beside onnxruntime)"
    try:
        shared = capi / "libonnxruntime_providers_shared.so"
        if shared.is_file():
            ctypes.CDLL(str(shared), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(str(path))
    except OSError as exc:
        return f"{name} does not load: {exc}"
    return None


def preload_pip_cuda_libraries() -> bool:
    """When NVIDIA's CUDA / cuDNN wheels are installed (``pip install 'onnxruntime-gpu[cuda,cudnn]'``), load them with
    ``onnxruntime.preload_dlls(directory="")`` before a CUDA session starts, so that the provider finds them without
    ``LD_LIBRARY_PATH`` (onnxruntime >= 1.21; "Preload DLLs" in
    https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html; ``directory=""``: the nvidia site
    packages first, then the default search path, microsoft/onnxruntime#23744).

    Returns:
        True when it ran; False when no such wheel is installed or onnxruntime has no ``preload_dlls``. Never raises
        (a failure is logged: the session's own check then reports the missing library).
    """
    import logging

    if _dist_version("nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12") is None:
        return False
    try:
        import onnxruntime

        preload = getattr(onnxruntime, "preload_dlls", None)
        if preload is None:
            return False
        preload(directory="")
    except Exception as exc:  # best effort: the provider check says what is missing
        logging.getLogger(__name__).warning("onnxruntime.preload_dlls failed: %s", exc)
        return False
    return True


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@dataclass
class StackReport:
    """What :func:`check_stack` found: ``facts`` (versions, paths) and ``problems`` (empty: consistent)."""

    facts: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def check_stack(base_cuda: str | None, tensorrt: bool = False) -> StackReport:
    """Check the installed onnxruntime-gpu (and TensorRT / cuda-python with ``tensorrt``) against the base image.

    Args:
        base_cuda: the base image's CUDA version.
        tensorrt: also check TensorRT 10, cuda-python 12.6+ and the TensorRT provider's libraries.
    """
    import onnxruntime
    from onnxruntime.capi import build_and_package_info as info

    capi = Path(onnxruntime.__file__).parent / "capi"
    report = StackReport(
        facts={
            "onnxruntime": getattr(info, "__version__", onnxruntime.__version__),
            "package": getattr(info, "package_name", "onnxruntime"),
            "onnxruntime_cuda": getattr(info, "cuda_version", None),
            "base_cuda": base_cuda,
        }
    )
    report.problems += check_cuda_versions(report.facts["package"], report.facts["onnxruntime_cuda"], base_cuda)
    report.problems += _ldd(capi / "libonnxruntime_providers_cuda.so")
    if tensorrt:
        trt = _dist_version("tensorrt-cu12", "tensorrt_cu12", "tensorrt")
        cuda_python = _dist_version("cuda-python")
        report.facts.update({"tensorrt": trt, "cuda_python": cuda_python})
        report.problems += check_package_versions(trt, cuda_python)
        report.problems += _ldd(capi / "libonnxruntime_providers_tensorrt.so")
        libs = _dist_version("tensorrt-cu12-libs", "tensorrt_cu12_libs")
        if libs is not None:
            import importlib.util

            spec = importlib.util.find_spec("tensorrt_libs")
            if spec and spec.submodule_search_locations:
                report.problems += _ldd(Path(list(spec.submodule_search_locations)[0]) / "libnvinfer.so.10")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m inference.cuda_stack", description=__doc__.splitlines()[0])
    ap.add_argument("--cuda", default=None, help="the base image's CUDA version (default: $CUDA_VERSION)")
    ap.add_argument("--tensorrt", action="store_true", help="also check TensorRT 10 and cuda-python 12.6+")
    args = ap.parse_args(argv)
    report = check_stack(args.cuda or os.environ.get("CUDA_VERSION"), args.tensorrt)
    print("CUDA stack: " + ", ".join(f"{k}={v}" for k, v in report.facts.items()))
    for p in report.problems:
        print(f"CUDA stack mismatch: {p}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
