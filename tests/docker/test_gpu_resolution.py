"""One CUDA major per GPU install, proved by pip's resolver (issue 21, items 2 and 5): ``pip install --dry-run`` of
the GPU extra sets against their constraints, for the images' target (CPython 3.12, manylinux x86_64), as
docker/constraints/compile.py resolves them. Needs a package index, so the tests run only with POSE_PIP_INDEX_TESTS=1
(no network at test time otherwise); .ci/run runs the same check as `python docker/constraints/compile.py --check`.

* serve-gpu + video + tensorrt (TensorRT's own wheels come from pypi.nvidia.com: left out, pinned by hand) resolves
  with docker/constraints/serve-gpu.txt to distributions of CUDA 12 only;
* PyPI's torch 2.13 requires ``cuda-bindings>=13.0.3,<14`` (its Requires-Dist; docker/constraints/compile.py installs
  the CPU torch instead): with the tensorrt extra's cuda-python / cuda-bindings the resolver must refuse, so an
  ``export`` + ``tensorrt`` install can never mix CUDA 12 and 13 files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from inference.cuda_stack import _cuda_major_of
from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("POSE_PIP_INDEX_TESTS") != "1",
        reason="needs a package index: set POSE_PIP_INDEX_TESTS=1 (.ci/run runs docker/constraints/compile.py --check)",
    ),
]

_spec = importlib.util.spec_from_file_location("compile_locks", REPO_ROOT / "docker" / "constraints" / "compile.py")
try:
    compile_locks = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(compile_locks)
except ModuleNotFoundError as exc:  # tomllib: Python 3.11+
    pytest.skip(f"docker/constraints/compile.py needs {exc.name}", allow_module_level=True)

#: What PyPI's torch 2.13.0 requires of cuda-bindings (its wheel's Requires-Dist, read with pip's --report).
TORCH_213_CUDA_BINDINGS = "cuda-bindings>=13.0.3,<14"


def dry_run(tmp_path, requirements: list[str], constraints: str | None = None) -> subprocess.CompletedProcess:
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
           str(report), "--target", str(tmp_path / "t"), *compile_locks.PLATFORM]  # fmt: skip
    if constraints:
        cmd += ["-c", str(REPO_ROOT / "docker" / "constraints" / constraints)]
    return subprocess.run([*cmd, *requirements], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def index_reachable(tmp_path_factory):
    r = dry_run(tmp_path_factory.mktemp("probe"), ["cuda-bindings>=12.8,<13"])
    if r.returncode != 0:
        pytest.skip(f"no package index reachable (pip: {r.stderr.strip().splitlines()[-1:]})")


def test_the_gpu_image_set_resolves_to_cuda_12_only(tmp_path, index_reachable):
    ex = compile_locks.extras()
    reqs = ex["base"] + ex["serve-gpu"] + ex["video"] + [r for r in ex["tensorrt"] if not r.startswith("tensorrt-")]
    r = dry_run(tmp_path, reqs, "serve-gpu.txt")
    assert r.returncode == 0, r.stderr[-3000:]
    installed = {
        i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
        for i in json.loads((tmp_path / "report.json").read_text())["install"]
    }
    majors = {n: _cuda_major_of(n, v) for n, v in installed.items() if _cuda_major_of(n, v) is not None}
    assert set(majors.values()) == {12}, majors
    assert installed["onnxruntime-gpu"].startswith("1.22.") and "onnxruntime" not in installed


def test_pypi_torch_cannot_join_the_tensorrt_extra(tmp_path, index_reachable):
    ex = compile_locks.extras()
    cuda_python = [r for r in ex["tensorrt"] if r.startswith(("cuda-python", "cuda-bindings"))]
    assert len(cuda_python) == 2
    r = dry_run(tmp_path, [*cuda_python, TORCH_213_CUDA_BINDINGS])
    assert r.returncode != 0 and "ResolutionImpossible" in r.stderr + r.stdout, r.stderr[-2000:]
    assert "cuda-bindings" in r.stderr
    # and that is what PyPI's torch pinned by the export image requires (its metadata, no download of the wheel's body
    # where the index serves PEP 658 metadata)
    torch = compile_locks.STACK["torch"]
    r = dry_run(tmp_path, [f"torch=={torch}", "--no-deps"])
    assert r.returncode == 0, r.stderr[-2000:]
    (item,) = json.loads((tmp_path / "report.json").read_text())["install"]
    requires = [q.replace(" ", "") for q in item["metadata"].get("requires_dist", []) if q.startswith("cuda-bindings")]
    assert any(q.startswith(("cuda-bindings<14,>=13", "cuda-bindings>=13")) for q in requires), requires
