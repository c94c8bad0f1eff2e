"""Write the images' constraints files: every Python package of every image, pinned (a lock per image).

    python docker/constraints/compile.py            # needs network (PyPI), no GPU; rewrites docker/constraints/*.txt
    python docker/constraints/compile.py --check    # one CUDA major per GPU install, by pip's resolver (.ci/run)

Each image installs with ``pip install -c docker/constraints/<image>.txt``, so a rebuild gets the same
packages. The CUDA stack is pinned here, in :data:`STACK`, as one consistent set (README "GPU"): NVIDIA's
CUDA 12.6.3 + cuDNN 9 base image, onnxruntime-gpu 1.22.0 (built with CUDA 12.2 and cuDNN 9; its TensorRT
EP with TensorRT 10.9: https://onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html),
tensorrt-cu12 10.9.0.34, cuda-python 12.9.7 (a metapackage since 12.8: cuda-bindings 12.9.7, named too, so that
no CUDA 13 cuda-bindings can join it). The same onnxruntime version serves on CPU and verifies exports, so every
image computes with the same kernels' release.

The second CUDA runtime: tensorrt-cu12-libs requires ``nvidia-cuda-runtime-cu12`` without a version, so an
unpinned install takes the newest 12.x cudart beside the base image's 12.6 one. It is pinned here
(:data:`SECOND_RUNTIME`: the base image's CUDA 12.6.3 release of it) and kept in the GPU locks, the only
``nvidia-*`` wheel that is.

Resolution: ``pip install --dry-run --report`` for CPython 3.12 on manylinux x86_64 (the images' Python:
Ubuntu 24.04's and python:3.12-slim), with the extras read from pyproject.toml. TensorRT's libraries come from
NVIDIA's index (pypi.nvidia.com: PyPI has only a stub), so its three distributions are pinned by hand. The
export image's torch / torchvision are the CPU builds from PyTorch's CPU index (pinned by hand as ``+cpu``);
the CUDA packages PyPI's torch would pull are left out. Ultralytics is installed with ``--no-deps``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: The one CUDA stack (and the onnxruntime release every image uses).
STACK = {
    "onnxruntime-gpu": "1.22.0",
    "onnxruntime": "1.22.0",
    "tensorrt-cu12": "10.9.0.34",
    "tensorrt-cu12-libs": "10.9.0.34",
    "tensorrt-cu12-bindings": "10.9.0.34",
    "cuda-python": "12.9.7",
    "cuda-bindings": "12.9.7",
    "nvidia-cuda-runtime-cu12": "12.6.77",
    "torch": "2.13.0",
    "torchvision": "0.28.0",
    "ultralytics": "8.4.190",
}
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
PLATFORM += [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
#: The CUDA runtime wheel tensorrt-cu12-libs pulls (unversioned in its metadata): pinned to the base image's release.
SECOND_RUNTIME = "nvidia-cuda-runtime-cu12"
#: packages pinned by hand (not resolvable from PyPI for the target) and what never goes in a lock
BY_HAND = {"tensorrt-cu12", "tensorrt-cu12-libs", "torch", "torchvision", "ultralytics", SECOND_RUNTIME}
DROP_PREFIXES = ("nvidia-", "triton", "tensorrt-cu12-libs")
#: Requires-Dist of the torch 2.13.0+cpu wheel (PyTorch's CPU index): resolved instead of torch itself
TORCH_CPU_REQUIRES = [
    "filelock",
    "typing-extensions>=4.10.0",
    "setuptools>=77.0.3",
    "sympy>=1.13.3",
    "networkx>=2.5.1",
    "jinja2",
    "fsspec>=0.8.5",
]
#: export-extra packages that require torch: resolved without their dependencies (torch is pinned by hand)
NEEDS_TORCH = ("ultralytics-thop",)


def extras() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = dict(data["optional-dependencies"])
    out["base"] = data["dependencies"]
    return out


def _pin(req: str) -> str:
    """Replace a requirement's version range by the STACK pin when the stack pins that package."""
    name = req.split("[")[0].split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip().lower()
    return f"{req.split('>')[0].split('<')[0].split('=')[0].strip()}=={STACK[name]}" if name in STACK else req


def resolve(requirements: list[str], no_deps: bool = False, quiet: bool = False) -> dict[str, str]:
    if not requirements:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
               str(report), "--target", str(Path(tmp) / "t"), *PLATFORM, *requirements]  # fmt: skip
        if no_deps:
            cmd.append("--no-deps")
        subprocess.run(cmd, check=True, capture_output=quiet)
        items = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in items}


def image_requirements(ex: dict[str, list[str]]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """image -> (requirements to resolve, pins added by hand). The serving images (and eval, built on the GPU one)
    install the video extra with serve / serve-gpu; export does not."""
    serve_gpu = ex["base"] + ex["serve-gpu"] + ex["video"]
    trt = [r for r in ex["tensorrt"] if not r.startswith("tensorrt-cu12")] + ["tensorrt-cu12-bindings"]
    export = ex["base"] + ex["serve"] + [r for r in ex["export"] if not r.startswith(("torch", *NEEDS_TORCH))]
    hand_trt = {k: STACK[k] for k in ("tensorrt-cu12", "tensorrt-cu12-libs", SECOND_RUNTIME)}
    cpu_torch = {"torch": STACK["torch"] + "+cpu", "torchvision": STACK["torchvision"] + "+cpu"}
    return {
        "serve-gpu": (serve_gpu + trt, hand_trt),
        "serve-cpu": (ex["base"] + ex["serve"] + ex["video"], {}),
        "eval": (serve_gpu + trt + ex["eval"], hand_trt),
        "export": (export + TORCH_CPU_REQUIRES, {**cpu_torch, "ultralytics": STACK["ultralytics"]}),
    }


def write(image: str, pins: dict[str, str]) -> Path:
    path = HERE / f"{image}.txt"
    lines = [
        f"# {image} image: every Python package, pinned. Generated by docker/constraints/compile.py; do not edit.",
        '# The CUDA stack (README "GPU"): CUDA 12.6.3 + cuDNN 9 base, onnxruntime-gpu 1.22.0 (CUDA 12.2 build),',
        "# tensorrt-cu12 10.9.0.34 (+ nvidia-cuda-runtime-cu12 12.6.77, the CUDA runtime its libs wheel pulls),",
        "# cuda-python / cuda-bindings 12.9.7.",
    ]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


#: What PyPI's torch (the export extra's range) requires of cuda-bindings: its wheel's Requires-Dist (2.13.0).
TORCH_CUDA_BINDINGS = "cuda-bindings>=13.0.3,<14"


def _cuda_major(name: str, version: str) -> int | None:
    """The CUDA major of a distribution, from its name (``*-cu12``) or, for cuda-python / cuda-bindings /
    cuda-toolkit, its version (as ``inference.cuda_stack`` reads installed ones)."""
    import re

    m = re.search(r"-cu(\d+)(?:-|$)", name)
    if m:
        return int(m.group(1))
    return int(version.split(".")[0]) if name in ("cuda-bindings", "cuda-python", "cuda-toolkit") else None


def check() -> int:
    """``--check``: pip's resolver proves one CUDA stack per GPU install, for the images' target. 1) The serve-gpu image's
    extras (serve-gpu, video, tensorrt but TensorRT's own wheels, which come from pypi.nvidia.com) resolve with
    docker/constraints/serve-gpu.txt to CUDA 12 distributions only. 2) The tensorrt extra's cuda-python / cuda-bindings
    beside what PyPI's torch requires (:data:`TORCH_CUDA_BINDINGS`) is refused (ResolutionImpossible). Returns the exit
    status: 0, 1 on a violation; 0 with a warning when no package index answers (CI offline)."""
    ex = extras()
    trt = [r for r in ex["tensorrt"] if not r.startswith("tensorrt-")]
    reqs = ex["base"] + ex["serve-gpu"] + ex["video"] + trt
    try:
        resolved = resolve([*reqs, "-c", str(HERE / "serve-gpu.txt")])
    except subprocess.CalledProcessError:
        try:
            resolve(["cuda-bindings>=12.8,<13"], no_deps=True, quiet=True)
        except subprocess.CalledProcessError:
            print("compile.py --check: no package index reachable; not checked", file=sys.stderr)
            return 0
        print("compile.py --check: the serve-gpu image's extras do not resolve with serve-gpu.txt", file=sys.stderr)
        return 1
    majors = {n: _cuda_major(n, v) for n, v in resolved.items() if _cuda_major(n, v) is not None}
    if set(majors.values()) != {12}:
        print(f"compile.py --check: the serve-gpu extras resolve to CUDA majors {majors}", file=sys.stderr)
        return 1
    print(f"serve-gpu extras: one CUDA major (12): {sorted(majors)}")
    cuda_python = [r for r in ex["tensorrt"] if r.startswith(("cuda-python", "cuda-bindings"))]
    try:
        resolve([*cuda_python, TORCH_CUDA_BINDINGS], quiet=True)
    except subprocess.CalledProcessError:
        print(f"tensorrt extra + {TORCH_CUDA_BINDINGS} (PyPI's torch): refused by pip, as it must be")
        return 0
    print(f"compile.py --check: pip installs the tensorrt extra beside {TORCH_CUDA_BINDINGS}", file=sys.stderr)
    return 1


def main() -> None:
    if "--check" in sys.argv[1:]:
        sys.exit(check())
    ex = extras()
    for image, (reqs, by_hand) in image_requirements(ex).items():
        resolved = resolve([_pin(r) for r in reqs])
        if image == "export":
            resolved.update(resolve([r for r in ex["export"] if r.startswith(NEEDS_TORCH)], no_deps=True))
        pins = {k: v for k, v in resolved.items() if not k.startswith(DROP_PREFIXES) and k not in BY_HAND}
        pins.update(by_hand)
        print(f"{write(image, pins).relative_to(ROOT)}: {len(pins)} packages")


if __name__ == "__main__":
    main()
