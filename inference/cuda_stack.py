"""Is the installed CUDA stack one consistent set? Checked when the GPU image is built (no GPU needed).

    python -m inference.cuda_stack --cuda "$CUDA_VERSION" [--tensorrt]      # exit 1 and say why on a mismatch
    python -m inference.cuda_stack --session [--json]                        # on a GPU: what a CUDA session loaded

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

* one CUDA major per install (:func:`check_distributions`, from the installed distributions' metadata and files):
  PyPI's torch 2.13 requires ``cuda-bindings>=13.0.3`` and CUDA 13 wheels (``nvidia-cudnn-cu13``,
  ``cuda-toolkit==13.0.3``); a CUDA 12 ``cuda-python`` beside it writes the same ``cuda/bindings/*`` files, so the
  package metadata says 12 while the files are 13. Two distributions owning ``cuda/bindings/_version.py``, or
  distributions of two CUDA majors (``*-cu12`` / ``*-cu13``, ``cuda-bindings``, ``cuda-toolkit``,
  onnxruntime-gpu's build, ``tensorrt-cu12``), fail the check; the ``cuda.bindings`` version is read from its files
  (``cuda/bindings/_version.py``), not its metadata.

With ``--session`` (on a GPU machine) it also starts an onnxruntime CUDA session on a one-convolution model, runs it
and reads which CUDA libraries the process really loaded (``/proc/self/maps``: ``libcudart``, ``libcublas``,
``libcublasLt``, ``libcudnn``, ``libnvinfer``, their paths and majors; :func:`loaded_cuda_libraries`): a CUDA
provider that did not start, two copies of one library, a cuDNN other than 9, or a CUDA library of another major
than onnxruntime's build fail it.

Torch-free, onnxruntime needed; ``ldd`` from glibc.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# what the files say: re-exported, the names stay importable from here
from inference.cuda_files import _LIB_RE, bindings_version, elf_dynamic, loaded_cuda_libraries
from inference.cuda_files import CUDA_LIBRARIES as CUDA_LIBRARIES

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


def check_package_versions(trt: str | None, cuda_python: str | None, bindings: str | None = None) -> list[str]:
    """TensorRT 10, cuda-python 12.6..12.x and, when given, the ``cuda.bindings`` files' version ``bindings``
    (:func:`bindings_version`) 12.x (see the module docstring); None means not installed."""
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
    if bindings is not None and parse_version(bindings)[0] != 12:
        problems.append(
            f"the cuda/bindings files are version {bindings} (cuda-python's metadata says {cuda_python}): a CUDA 13 "
            "cuda-bindings (PyPI's torch requires one) overwrote them; install torch from the CPU index (README: GPU)"
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


@functools.lru_cache(maxsize=1)  # once per process: the libraries stay loaded
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


def _cuda_major_of(name: str, version: str) -> int | None:
    """The CUDA major a distribution is built for, from its name (``*-cu12``) or, for CUDA's own Python packages
    (``cuda-bindings``, ``cuda-python``, ``cuda-toolkit``), its version; None when it says nothing."""
    m = re.search(r"-cu(\d+)(?:-|$)", name)
    if m:
        return int(m.group(1))
    if name in ("cuda-bindings", "cuda-python", "cuda-toolkit"):
        try:
            return parse_version(version)[0]
        except ValueError:
            return None
    return None


def check_distributions(dists=None) -> tuple[dict, list[str]]:
    """One CUDA major per install (see the module docstring).

    Args:
        dists: ``importlib.metadata.Distribution`` objects (default: every installed one).

    Returns:
        (facts, problems): facts = ``cuda_majors`` {major: [distributions]}, ``cuda_bindings_owners``.
    """
    dists = list(importlib.metadata.distributions() if dists is None else dists)
    majors: dict[int, list[str]] = {}
    owners = []
    for d in dists:
        name = (d.metadata["Name"] or "").lower().replace("_", "-")
        major = _cuda_major_of(name, d.version or "")
        if major is not None:
            majors.setdefault(major, []).append(f"{name} {d.version}")
        if any(str(f).replace("\\", "/") == "cuda/bindings/_version.py" for f in (d.files or ())):
            owners.append(f"{name} {d.version}")
    problems = []
    if len(majors) > 1:
        listed = "; ".join(f"CUDA {k}: {', '.join(sorted(v))}" for k, v in sorted(majors.items()))
        problems.append(
            f"distributions of more than one CUDA major are installed ({listed}): one install, one CUDA stack. The "
            "usual cause is PyPI's torch (CUDA 13) beside the tensorrt extra: install torch from "
            "https://download.pytorch.org/whl/cpu first (README: GPU), or export in the export image"
        )
    if len(owners) > 1:
        problems.append(
            f"{' and '.join(sorted(owners))} both install cuda/bindings: the files are whichever came last "
            f"(now {bindings_version()}); uninstall both and install one"
        )
    return {"cuda_majors": {k: sorted(v) for k, v in sorted(majors.items())}, "cuda_bindings_owners": owners}, problems


def check_loaded_libraries(loaded: dict[str, list[str]], ort_cuda: str | None) -> list[str]:
    """Problems with the loaded CUDA libraries (:func:`loaded_cuda_libraries`): two files of one library, a cuDNN
    other than 9, or cudart / cuBLAS of another major than onnxruntime's CUDA build ``ort_cuda``."""
    problems = []
    want = parse_version(ort_cuda)[0] if ort_cuda else None
    for lib, paths in sorted(loaded.items()):
        majors = sorted({int(_LIB_RE.search(p).group(2)) for p in paths})
        if len(paths) > 1:
            problems.append(f"{lib} is loaded twice: {paths}")
        if lib == "libcudnn" and majors != [9]:
            problems.append(f"cuDNN {majors} is loaded; onnxruntime-gpu >= 1.19 needs cuDNN 9 ({paths})")
        if lib in ("libcudart", "libcublas", "libcublasLt") and want is not None and majors != [want]:
            problems.append(f"{lib} of CUDA {majors} is loaded; onnxruntime-gpu is built for CUDA {ort_cuda} ({paths})")
    return problems


#: A one-convolution ONNX model (x float32 [1, 1, 4, 4] -> Conv 1x1 -> y), serialized: ``--session`` runs it on the
#: CUDA provider so that cuBLAS / cuDNN load, without onnx installed.
PROBE_MODEL_B64 = (
    "CAgSADpnCg8KAXgKAXcSAXkiBENvbnYSBXByb2JlKhMIAQgBCAEIARABQgF3SgQAAIA/WhsKAXgSFgoUCAESEAoCCAEKAggBCgIIBAoCCARiGwoBeRIW"
    "ChQIARIQCgIIAQoCCAEKAggECgIIBEIECgAQEQ=="
)


def check_session(device: int = 0, maps_path: str = "/proc/self/maps") -> StackReport:
    """Start an onnxruntime session on the CUDA provider (:data:`PROBE_MODEL_B64`), run it, and check what loaded
    (:func:`check_loaded_libraries`) and the ``cuda.bindings`` files. Needs a GPU; on a machine without one it reports
    the provider's fallback (with :func:`provider_load_error`'s reason) as a problem."""
    import base64

    import numpy as np
    import onnxruntime
    from onnxruntime.capi import build_and_package_info as info

    preloaded = preload_pip_cuda_libraries()
    ort_cuda = getattr(info, "cuda_version", None) or None
    report = StackReport(facts={"onnxruntime": onnxruntime.__version__, "onnxruntime_cuda": ort_cuda})
    report.facts["preload_dlls"] = preloaded
    report.facts["cuda_bindings_files"] = bindings_version()
    cuda = "CUDAExecutionProvider"
    opts = onnxruntime.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = onnxruntime.InferenceSession(
            base64.b64decode(PROBE_MODEL_B64),
            opts,
            providers=[(cuda, {"device_id": str(device)}), "CPUExecutionProvider"],
        )
        sess.run(None, {"x": np.ones((1, 1, 4, 4), np.float32)})
        active = sess.get_providers()
    except Exception as exc:  # the provider's options or the run failed
        report.problems.append(f"the CUDA session failed: {exc}")
        active = []
    report.facts["active_providers"] = active
    if active and cuda not in active:
        report.problems.append(f"the CUDA provider did not start: {provider_load_error(cuda) or 'it loads; no GPU?'}")
    try:
        maps = Path(maps_path).read_text()
    except OSError:
        maps = ""
    loaded = loaded_cuda_libraries(maps)
    report.facts["loaded"] = loaded
    report.problems += check_loaded_libraries(loaded, ort_cuda)
    bindings = report.facts["cuda_bindings_files"]
    if bindings is not None and parse_version(bindings)[0] != 12:
        report.problems.append(f"cuda.bindings {bindings} (its files) is loaded; TensorRT 10 for CUDA 12 needs 12.x")
    return report


#: The sonames' majors a CUDA 12 + cuDNN 9 + TensorRT 10 build of onnxruntime's providers may need (CUDA 12's cuFFT is
#: libcufft.so.11, cuRAND libcurand.so.10).
CUDA12_SONAME_MAJORS = {
    "libcublas": 12,
    "libcublasLt": 12,
    "libcudart": 12,
    "libnvrtc": 12,
    "libcufft": 11,
    "libcurand": 10,
    "libcudnn": 9,
    "libnvinfer": 10,
    "libnvinfer_plugin": 10,
    "libnvonnxparser": 10,
}


def wheel_report(wheel: str | Path) -> dict:
    """What an onnxruntime-gpu wheel is built against, read from the wheel without installing it (no GPU needed):
    ``build_and_package_info`` (``package_name``, ``__version__``, ``cuda_version``) and, per provider library,
    :func:`elf_dynamic` (``NEEDED`` / ``RUNPATH``) plus ``problems``: a CUDA / cuDNN / TensorRT soname whose major is
    not :data:`CUDA12_SONAME_MAJORS`'.

    Raises:
        KeyError: the wheel has no ``onnxruntime/capi/build_and_package_info.py``.
    """
    import shutil
    import tempfile
    import zipfile

    report: dict = {"wheel": Path(wheel).name, "providers": {}, "problems": []}
    with zipfile.ZipFile(wheel) as z:
        text = z.read("onnxruntime/capi/build_and_package_info.py").decode()
        report["build_info"] = dict(re.findall(r"^(\w+) = '([^']*)'", text, re.M))
        with tempfile.TemporaryDirectory() as tmp:
            for name in (*PROVIDER_LIBRARIES.values(), "libonnxruntime_providers_shared.so"):
                member = f"onnxruntime/capi/{name}"
                if member not in z.namelist():
                    continue
                target = Path(tmp) / name
                with z.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
                dyn = elf_dynamic(target)
                target.unlink()
                report["providers"][name] = dyn
                for soname in dyn["needed"]:
                    m = re.match(r"(lib[\w]+?)\.so\.(\d+)$", soname)
                    if m and m.group(1) in CUDA12_SONAME_MAJORS and int(m.group(2)) != CUDA12_SONAME_MAJORS[m.group(1)]:
                        report["problems"].append(
                            f"{name} needs {soname}; CUDA 12 / cuDNN 9 / TensorRT 10 has "
                            f"{m.group(1)}.so.{CUDA12_SONAME_MAJORS[m.group(1)]}"
                        )
    return report


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
    dist_facts, dist_problems = check_distributions()
    report.facts.update(dist_facts)
    report.problems += dist_problems
    report.problems += _ldd(capi / "libonnxruntime_providers_cuda.so")
    if tensorrt:
        trt = _dist_version("tensorrt-cu12", "tensorrt_cu12", "tensorrt")
        cuda_python = _dist_version("cuda-python")
        bindings = bindings_version()
        report.facts.update({"tensorrt": trt, "cuda_python": cuda_python, "cuda_bindings_files": bindings})
        report.problems += check_package_versions(trt, cuda_python, bindings)
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
    ap.add_argument(
        "--session",
        action="store_true",
        help="on a GPU: start a CUDA session and check the libraries really loaded (/proc/self/maps)",
    )
    ap.add_argument("--device", type=int, default=0, help="CUDA device of --session")
    ap.add_argument("--json", action="store_true", help="print the facts and problems as one JSON object")
    args = ap.parse_args(argv)
    base = args.cuda or os.environ.get("CUDA_VERSION")
    reports = []
    if base or not args.session:
        reports.append(check_stack(base, args.tensorrt))
    if args.session:
        reports.append(check_session(args.device))
    facts = {k: v for r in reports for k, v in r.facts.items()}
    problems = [p for r in reports for p in r.problems]
    if args.json:
        import json

        print(json.dumps({"facts": facts, "problems": problems}, indent=2, default=str))
    else:
        print("CUDA stack: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    for p in problems:
        print(f"CUDA stack mismatch: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
