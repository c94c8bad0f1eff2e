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
