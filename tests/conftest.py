"""Shared fixtures: locate the real assets (POSE_ASSETS_DIR, default ../shared/assets) or skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """The assets folder: $POSE_ASSETS_DIR, else ../shared/assets beside the repository."""
    env = os.environ.get("POSE_ASSETS_DIR")
    return Path(env) if env else (REPO_ROOT.parent / "shared" / "assets")


@pytest.fixture(scope="session")
def cpu_settings():
    """Settings from the environment on the CPU provider: ``POSE_INTRA_OP_THREADS`` reaches every onnxruntime
    session the numerics tests open (``.ci/run`` runs them again with one thread)."""
    from core.settings import Settings

    return Settings(providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def assets() -> Path:
    d = assets_dir()
    if not (d / "detector" / "yolov8n.onnx").is_file():
        pytest.skip(f"real test assets not found at {d} (set POSE_ASSETS_DIR)")
    return d


@pytest.fixture(scope="session")
def yolo_onnx(assets: Path) -> Path:
    return assets / "detector" / "yolov8n.onnx"


@pytest.fixture(scope="session")
def movenet_onnx(assets: Path) -> Path:
    p = assets / "pose" / "movenet_thunder.onnx"
    if not p.is_file():
        pytest.skip(f"MoveNet asset missing: {p}")
    return p


@pytest.fixture(scope="session")
def coco_tiny(assets: Path) -> Path:
    return assets / "coco-tiny"


@pytest.fixture(scope="session")
def coco_mini(assets: Path) -> Path:
    return assets / "coco-mini"


@pytest.fixture(scope="session")
def movenet_card(movenet_onnx: Path, tmp_path_factory) -> Path:
    """A model card for the MoveNet Thunder asset, written to a temp dir (assets stay read-only).

    MoveNet: input ``input:0`` int32 [1, 256, 256, 3] RGB 0..255; output ``Identity:0`` [1, 1, 17, 3]
    = y, x normalised to the crop, score.
    """
    from models.card import InputSpec, ModelCard, OutputSpec

    card = ModelCard(
        name="movenet_thunder",
        model_file=str(movenet_onnx),
        input=InputSpec(name="input:0", width=256, height=256, layout="NHWC", dtype="int32", color="RGB"),
        output=OutputSpec(name="Identity:0", kind="keypoints", coord_order="yx", coord_units="normalized"),
        source={"checkpoint": "Google MoveNet SinglePose Thunder v4 (shared test asset)"},
    )
    return card.save(tmp_path_factory.mktemp("cards") / "movenet_thunder.json")


@pytest.fixture(scope="session")
def pose_server(yolo_onnx, movenet_card):
    """One real ``pose-serve`` process (YOLOv8n + MoveNet) on 127.0.0.1 for the whole session (small limits)."""
    from service.launcher import ServerProcess

    env = {"POSE_MAX_UPLOAD_BYTES": "3000000", "POSE_MAX_IMAGE_PIXELS": "20000000"}
    with ServerProcess(["--detector", str(yolo_onnx), "--pose", str(movenet_card)], env=env) as srv:
        srv.wait_ready()
        yield srv


@pytest.fixture(scope="session")
def bikes_mp4() -> Path:
    """The real clip ``video/bikes.mp4`` (640x272, 25 fps, H.264, 250 frames), or skip."""
    p = assets_dir() / "video" / "bikes.mp4"
    if not p.is_file():
        pytest.skip(f"video asset missing: {p} (set POSE_ASSETS_DIR)")
    return p
