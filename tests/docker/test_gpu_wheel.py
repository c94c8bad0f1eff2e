"""The pinned onnxruntime-gpu wheel, read without a GPU (issue 21, item 5): its ``build_and_package_info`` is a CUDA 12
build no newer than the base image's CUDA, and its providers' ``NEEDED`` sonames are CUDA 12 / cuDNN 9 / TensorRT 10
ones, with no ``RUNPATH`` (so the image must put TensorRT's pip libraries on ``LD_LIBRARY_PATH``, and pip installs
without system CUDA need ``onnxruntime.preload_dlls()``, which ``inference.cuda_stack`` calls).

The wheel (283 MB) is not downloaded here: ``.ci/run`` caches it in ``$POSE_WHEEL_CACHE`` (default
``~/.cache/poseserve/wheels``) once, online; without it the wheel test skips, saying how to fetch it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from inference.cuda_stack import check_cuda_versions, elf_dynamic, wheel_report
from tests.conftest import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def pinned(name: str) -> str:
    text = (REPO_ROOT / "docker" / "constraints" / "serve-gpu.txt").read_text()
    return re.search(rf"^{re.escape(name)}==(\S+)$", text, re.M).group(1)


def wheel_cache() -> Path:
    return Path(os.environ.get("POSE_WHEEL_CACHE", Path.home() / ".cache" / "poseserve" / "wheels"))


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) not installed: nothing to compare with")
def test_the_elf_reader_agrees_with_readelf():
    import onnxruntime

    libs = sorted((Path(onnxruntime.__file__).parent / "capi").glob("*.so*"))
    assert libs
    for lib in libs:
        out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True).stdout
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
        runpath = [p for m in re.findall(r"\(RUNPATH\)\s+Library runpath: \[([^\]]+)\]", out) for p in [m]]
        dyn = elf_dynamic(lib)
        assert dyn["needed"] == needed and dyn["runpath"] == runpath, lib.name


def test_the_pinned_onnxruntime_gpu_wheel_is_one_cuda_12_stack():
    version = pinned("onnxruntime-gpu")
    wheels = sorted(wheel_cache().glob(f"onnxruntime_gpu-{version}-cp312-*.whl"))
    if not wheels:
        pytest.skip(
            f"onnxruntime-gpu {version} wheel not cached in {wheel_cache()}: run .ci/run online once, or `pip download "
            f"--no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d {wheel_cache()} "
            f"onnxruntime-gpu=={version}`"
        )
    report = wheel_report(wheels[0])
    info = report["build_info"]
    assert info["package_name"] == "onnxruntime-gpu" and info["__version__"] == version
    base = re.search(r"nvidia/cuda:(\d+\.\d+\.\d+)-cudnn", DOCKERFILE).group(1)
    assert check_cuda_versions(info["package_name"], info["cuda_version"], base) == [], (info, base)
    assert report["problems"] == []
    cuda = report["providers"]["libonnxruntime_providers_cuda.so"]
    assert {"libcudart.so.12", "libcublasLt.so.12", "libcudnn.so.9"} <= set(cuda["needed"])
    trt = report["providers"]["libonnxruntime_providers_tensorrt.so"]
    trt_major = pinned("tensorrt-cu12").split(".")[0]
    assert f"libnvinfer.so.{trt_major}" in trt["needed"]
    # no RUNPATH: the loader's path must hold the libraries; the image puts the pip TensorRT libraries on it
    assert cuda["runpath"] == cuda["rpath"] == trt["runpath"] == trt["rpath"] == []
    assert re.search(r"^ENV LD_LIBRARY_PATH=\S*/site-packages/tensorrt_libs", DOCKERFILE, re.M)
