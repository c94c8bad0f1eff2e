"""The build-time CUDA stack check (inference/cuda_stack.py): version rules, ldd parsing, and the real check on
this machine's CPU-only onnxruntime (which must fail: the GPU image may never be built with it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inference.cuda_stack import (
    bindings_version,
    check_cuda_versions,
    check_distributions,
    check_loaded_libraries,
    check_package_versions,
    check_session,
    check_stack,
    loaded_cuda_libraries,
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
    # the files of cuda.bindings say 13 while cuda-python's metadata says 12: PyPI's torch overwrote them
    (p,) = check_package_versions("10.9.0.34", "12.6.2.post1", "13.0.3")
    assert "cuda/bindings files are version 13.0.3" in p and "CPU index" in p


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


#: ``cuda/bindings/_version.py`` as the real wheels write it (read from cuda_bindings-12.9.7 and -13.0.3, cp312).
VERSION_12 = "from __future__ import annotations\n__version__ = version = '12.9.7'\n__version_tuple__ = (12, 9, 7)\n"
VERSION_13 = '# SPDX-License-Identifier: LicenseRef-NVIDIA-SOFTWARE-LICENSE\n\n__version__ = "13.0.3"\n'


def _dist(site, name: str, version: str, files: list[str] = ()) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def test_the_cuda_bindings_version_is_read_from_its_files(tmp_path):
    """Issue 21, defect 3: what runs is the files' version, not cuda-python's metadata."""
    assert bindings_version([str(tmp_path)]) is None
    folder = tmp_path / "cuda" / "bindings"
    folder.mkdir(parents=True)
    (folder / "_version.py").write_text(VERSION_12)
    assert bindings_version([str(tmp_path)]) == "12.9.7"
    (folder / "_version.py").write_text(VERSION_13)
    assert bindings_version([str(tmp_path / "none"), str(tmp_path)]) == "13.0.3"


def test_a_cuda_12_and_13_mix_in_one_install_is_found(tmp_path):
    """Issue 21, defect 3: `pip install .[export,tensorrt]` with PyPI's torch 2.13 (cuda-bindings 13, CUDA 13 wheels)
    beside cuda-python 12.6.2.post1 (which wrote cuda/bindings itself). Distributions are fake dist-info folders: their
    metadata is all the check reads."""
    import importlib.metadata as md

    site = tmp_path / "site"
    _dist(site, "cuda-python", "12.6.2.post1", ["cuda/bindings/_version.py", "cuda/bindings/runtime.pyx"])
    _dist(site, "cuda-bindings", "13.0.3", ["cuda/bindings/_version.py"])
    _dist(site, "nvidia-cudnn-cu13", "9.20.0.48")
    _dist(site, "tensorrt-cu12", "10.9.0.34")
    _dist(site, "numpy", "2.4.6")
    facts, problems = check_distributions(md.distributions(path=[str(site)]))
    assert set(facts["cuda_majors"]) == {12, 13} and "nvidia-cudnn-cu13 9.20.0.48" in facts["cuda_majors"][13]
    majors, owners = problems
    assert "more than one CUDA major" in majors and "download.pytorch.org/whl/cpu" in majors
    assert "cuda-bindings 13.0.3 and cuda-python 12.6.2.post1 both install cuda/bindings" in owners
    # the images' set: one major, one owner (cuda-python 12.8+ is a metapackage)
    good = tmp_path / "good"
    _dist(good, "cuda-python", "12.9.7")
    _dist(good, "cuda-bindings", "12.9.7", ["cuda/bindings/_version.py"])
    _dist(good, "nvidia-cuda-runtime-cu12", "12.6.77")
    _dist(good, "tensorrt-cu12", "10.9.0.34")
    assert check_distributions(md.distributions(path=[str(good)]))[1] == []


MAPS = """\
7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/libcudnn.so.9.1.0
7f01-7f02 r--p 00001000 08:01 1 /usr/lib/x86_64-linux-gnu/libcudnn.so.9.1.0
7f02-7f03 r-xp 00000000 08:01 2 /venv/site-packages/nvidia/cuda_runtime/lib/libcudart.so.12
7f03-7f04 r-xp 00000000 08:01 3 /usr/local/cuda/lib64/libcudart.so.12.6.77
7f04-7f05 r-xp 00000000 08:01 4 /venv/site-packages/nvidia/cublas/lib/libcublasLt.so.13
7f05-7f06 r-xp 00000000 08:01 5 /venv/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so
7f06-7f07 rw-p 00000000 00:00 0
"""


def test_the_libraries_a_session_loaded_are_checked():
    """Issue 21, defect 3: /proc/self/maps after a CUDA session (a captured-format sample: no GPU here)."""
    loaded = loaded_cuda_libraries(MAPS)
    assert loaded["libcudnn"] == ["/usr/lib/x86_64-linux-gnu/libcudnn.so.9.1.0"]
    assert len(loaded["libcudart"]) == 2 and "libonnxruntime_providers_cuda" not in str(loaded.keys())
    problems = check_loaded_libraries(loaded, "12.2")
    assert any("libcudart is loaded twice" in p for p in problems)
    assert any("libcublasLt of CUDA [13]" in p for p in problems)
    assert check_loaded_libraries({"libcudnn": ["/x/libcudnn.so.8.9.7"]}, "12.2")[0].startswith("cuDNN [8]")
    assert check_loaded_libraries(loaded_cuda_libraries(MAPS.splitlines()[0] + "\n"), "12.2") == []


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_the_session_check_on_this_machine():
    """On a GPU with onnxruntime-gpu it must pass (the GPU check runs it); here, without one, it reports the CUDA
    provider's fallback with the reason."""
    report = check_session()
    if _installed_build()[1] is None:
        assert report.facts["active_providers"] == ["CPUExecutionProvider"]
        assert any("CUDA provider did not start" in p for p in report.problems)
    else:  # pragma: no cover - GPU machines
        assert report.problems == [], report.problems
        assert "libcudnn" in report.facts["loaded"]
