"""The build-time CUDA stack check (inference/cuda_stack.py): version rules, ldd parsing, and the real check on
this machine's CPU-only onnxruntime (which must fail: the GPU image may never be built with it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inference.cuda_stack import (
    check_cuda_versions,
    check_package_versions,
    check_stack,
    parse_version,
    unresolved_libraries,
)
from tests.conftest import REPO_ROOT


def test_onnxruntime_cuda_build_against_the_base_image():
    assert parse_version("12.6.3") == (12, 6, 3) and parse_version("12.6.2.post1") == (12, 6, 2)
    assert check_cuda_versions("onnxruntime-gpu", "12.2", "12.6.3") == []  # older minor on newer libraries: fine
    # the image: an unpinned onnxruntime-gpu built for CUDA 13 on a CUDA 12.6 base
    (p,) = check_cuda_versions("onnxruntime-gpu", "13.0", "12.6.3")
    assert "CUDA 13.0" in p and "libcublasLt.so.13" in p
    (p,) = check_cuda_versions("onnxruntime-gpu", "12.8", "12.6.3")
    assert "newer than the base image's CUDA 12.6.3" in p
    assert "onnxruntime-gpu" in check_cuda_versions("onnxruntime", None, "12.6.3")[0]
    assert "unknown" in check_cuda_versions("onnxruntime-gpu", "12.2", None)[0]


def test_tensorrt_and_cuda_python_versions():
    assert check_package_versions("10.9.0.34", "12.6.2.post1") == []
    assert check_package_versions("10.9.0.34", "12.9.7") == []
    assert "cuda.cudart" in check_package_versions("10.9.0.34", "13.0.0")[0]
    assert ">=12.6,<13" in check_package_versions("10.9.0.34", "12.5.0")[0]
    assert "TensorRT 11.0.0.114" in check_package_versions("11.0.0.114", "12.6.0")[0]
    assert len(check_package_versions(None, None)) == 2


def test_ldd_not_found_lines_except_the_driver():
    out = (
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibcublasLt.so.13 => not found\n"
        "\tlibcudnn.so.9 => /usr/lib/x86_64-linux-gnu/libcudnn.so.9 (0x00007f)\n"
        "\tlibcuda.so.1 => not found\n"
    )
    assert unresolved_libraries(out) == ["libcublasLt.so.13"]


def _installed_build() -> tuple[str, str | None]:
    """(package name, CUDA version or None) of the installed onnxruntime, as inference/cuda_stack.py reads them."""
    from onnxruntime.capi import build_and_package_info as info

    return getattr(info, "package_name", "onnxruntime"), getattr(info, "cuda_version", None) or None


def _cli(base_cuda: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inference.cuda_stack", "--cuda", base_cuda],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )


@pytest.mark.skipif(
    _installed_build()[1] is not None,
    reason="onnxruntime-gpu is installed: the CPU build's failure cannot be observed (the GPU test below runs)",
)
def test_the_check_fails_with_this_machines_cpu_onnxruntime():
    report = check_stack("12.6.3")
    assert report.facts["package"] == "onnxruntime" and report.facts["onnxruntime_cuda"] is None
    assert any("without a CUDA build" in p for p in report.problems)
    r = _cli("12.6.3")
    assert r.returncode == 1 and "CUDA stack mismatch" in r.stderr and "base_cuda=12.6.3" in r.stdout


@pytest.mark.skipif(
    _installed_build()[1] is None, reason="CPU onnxruntime installed: no CUDA build to check (the test above runs)"
)
def test_the_check_fails_when_this_machines_gpu_onnxruntime_meets_another_cuda_major():
    package, cuda = _installed_build()
    other = f"{parse_version(cuda)[0] + 1}.0.0"  # a base image of the next CUDA major: never a match
    report = check_stack(other)
    assert report.facts["package"] == package == "onnxruntime-gpu" and report.facts["onnxruntime_cuda"] == cuda
    assert any(f"built for CUDA {cuda}, the base image has CUDA {other}" in p for p in report.problems)
    r = _cli(other)
    assert r.returncode == 1 and "CUDA stack mismatch" in r.stderr and f"base_cuda={other}" in r.stdout
