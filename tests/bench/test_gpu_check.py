"""bench/gpu_check.py (issue 21, item 6): its CPU dry run writes one JSON per step and a summary, skips what needs a
GPU or TensorRT with the reason, and a step that runs past its time limit is recorded as a timeout, its process group
ended, without losing the steps after it. .ci/run runs the whole dry run as well."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytest.importorskip("onnx")
pytest.importorskip("httpx")


def gpu_check(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/gpu_check.py", *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_dry_run_writes_a_json_per_step(tmp_path, assets):
    r = gpu_check("--dry-run", "--assets", str(assets), "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["facts", "ort_cuda", "trt_build", "trt_runtime", "ort_trt_ep", "http"]
    assert {summary[s]["status"] for s in ("facts", "ort_cuda", "http")} == {"ok"}
    for step in ("trt_build", "trt_runtime", "ort_trt_ep"):
        assert summary[step]["status"] == "skip" and summary[step]["reason"]
    facts = json.loads((tmp_path / "facts.json").read_text())["results"]
    assert "onnxruntime" in facts["facts"] and "problems" in facts["session"]
    ort = json.loads((tmp_path / "ort_cuda.json").read_text())["results"]["dry_run_pose"]
    assert ort["b1"]["max_px_vs_cpu"] == 0.0 and ort["b2"]["max_px_vs_cpu"] == 0.0  # the CPU against itself
    http = json.loads((tmp_path / "http.json").read_text())["results"]["cpu"]
    assert http["images"] == 4 and http["images_per_s"] > 0 and http["active_providers"] == ["CPUExecutionProvider"]


def test_a_step_past_its_limit_is_a_timeout_and_the_next_steps_still_run(tmp_path, assets):
    onnx_dir = tmp_path / "onnx"
    assert gpu_check("--dry-run", "--assets", str(assets), "--out", str(tmp_path), "--steps", "facts").returncode == 0
    r = gpu_check("--dry-run", "--out", str(tmp_path), "--onnx-dir", str(tmp_path / "onnx"),
                  "--steps", "http", "trt_build", "--budget-scale", "0.005")  # fmt: skip
    assert onnx_dir.is_dir() and r.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["http"]["status"] in ("timeout", "fail") and summary["trt_build"]["status"] == "skip"
    assert "FAILED: http" in r.stdout


def test_quick_needs_the_onnx_folder(tmp_path):
    r = gpu_check("--quick", "--out", str(tmp_path))
    assert r.returncode == 2 and "--prepare" in r.stderr
