"""`pose-export engine` and `pose-export lint` where the service runs: with the `tensorrt` extra only, no torch,
no Ultralytics (issue 21, defect 1). Each command runs in a subprocess whose import hook refuses torch,
torchvision, Ultralytics and NNCF, as in the GPU serving image; TensorRT is absent here, so `engine` must reach
the TensorRT import and say how to install it (the build itself needs a GPU: tests/export/test_tensorrt.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.graphs import tiny_pose_onnx

pytest.importorskip("onnx")
pytest.importorskip("onnx_graphsurgeon")

#: What the serve image with WITH_TENSORRT=1 lacks (pyproject: the tensorrt extra has no torch).
REFUSED = ("torch", "torchvision", "ultralytics", "nncf", "onnxscript")


def pose_export(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = (
        "import sys, importlib.abc\n"
        f"REFUSED = {REFUSED!r}\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in REFUSED: raise ImportError(f'No module named {name!r} (refused)')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from export.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in REFUSED)\n"
        "assert not bad, bad\n"
        "sys.exit(status)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, env=env
    )


def test_lint_runs_without_torch(tmp_path):
    good = tiny_pose_onnx(tmp_path / "good.onnx")
    r = pose_export("lint", str(good), "--json")
    assert r.returncode == 0, r.stderr
    (report,) = json.loads(r.stdout)
    assert report["ok"], report


def test_engine_runs_without_torch_up_to_tensorrt(tmp_path, yolo_onnx):
    """The pose model (card beside it) gets the crops' profile 1 / 8 / 32; the detector (no card) the images'
    profile up to POSE_DET_MAX_BATCH_SIZE. Without TensorRT the command fails in one line naming what to install,
    never 'install the export extra' (torch)."""
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: the engine would really be built (tests/export/test_tensorrt.py)")
    except ImportError:
        pass
    pose = tiny_pose_onnx(tmp_path / "pose.onnx")
    (tmp_path / "pose.json").write_text("{}")  # a card beside it marks a pose model; its content is not read here
    r = pose_export("engine", str(pose), "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "pose model pose.onnx: profile (1, 8, 32)" in r.stdout and "lint pose.onnx: TensorRT-ready" in r.stdout
    assert "TensorRT is not importable" in r.stderr and "WITH_TENSORRT=1" in r.stderr
    assert "export extra" not in r.stderr
    r = pose_export("engine", str(yolo_onnx), "--det-max-batch-size", "4", "--lint", "off")
    assert r.returncode == 1 and "detector yolov8n.onnx: profile (1, 4, 4)" in r.stdout, r.stdout + r.stderr


def test_the_torch_commands_name_their_extra_without_torch(tmp_path):
    r = pose_export("pose", "ipr_res50", "--out", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "pose-export pose:" in r.stderr and "pip install 'poseserve[export]'" in r.stderr


def test_the_tensorrt_extra_brings_the_lint_and_no_torch():
    """The lint's dependencies are in the tensorrt extra, torch is not (so the GPU serving image can build engines)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for r in extras["tensorrt"]}
    assert {"onnx", "onnx-graphsurgeon", "tensorrt-cu12", "cuda-python"} <= names
    assert not names & {"torch", "torchvision", "ultralytics"}


def test_pose_serve_builds_the_missing_engines_before_it_binds(tmp_path, yolo_onnx, movenet_card, capfd):
    """`pose-serve --runtime tensorrt` runs `pose-export engine --served` first (POSE_BUILD_ENGINES, on by default):
    the detector's profile is the images' (det_max_batch_size), the pose model's the crops'. Without TensorRT here it
    fails start-up naming the command to rerun and the setting that turns it off."""
    from core.errors import ModelLoadError
    from core.settings import Settings
    from inference.default_models import engine_command, prepare_engines

    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: the engines would really be built")
    except ImportError:
        pass
    settings = Settings(
        cache_dir=tmp_path, runtime="tensorrt", detector_model=yolo_onnx, pose_model=movenet_card, det_max_batch_size=2
    )
    cmd = engine_command(settings)
    assert cmd[3:6] == ["engine", "--served", "--lint"] and str(yolo_onnx) in cmd
    assert cmd[cmd.index("--pose") + 1].endswith("movenet_thunder.onnx")  # the card's model file
    assert not prepare_engines(settings.model_copy(update={"runtime": "onnxruntime"}))
    assert not prepare_engines(settings.model_copy(update={"build_engines": False}))
    with pytest.raises(ModelLoadError, match="POSE_BUILD_ENGINES=false") as err:
        prepare_engines(settings)
    assert "pose-export engine --served" in str(err.value)
    out = capfd.readouterr()
    assert "detector yolov8n.onnx: profile (1, 2, 2), fp16" in out.out
    assert "TensorRT is not importable" in out.err
