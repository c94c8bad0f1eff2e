"""Default models: resolution from the cache, and an offline default start that fails helpfully."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.defaults import DefaultModelsMissing, default_model_paths, resolve_default_models


def test_present_defaults_are_resolved(tmp_path):
    det, card = default_model_paths(tmp_path)
    for p in (det, card, card.with_suffix(".onnx")):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert resolve_default_models(tmp_path, prepare=False) == (det, card)


def test_missing_defaults_name_the_files_and_the_command(tmp_path):
    det, card = default_model_paths(tmp_path)
    card.parent.mkdir(parents=True)
    card.write_text("{}")  # a card without its ONNX is not enough
    with pytest.raises(DefaultModelsMissing) as err:
        resolve_default_models(tmp_path, prepare=False)
    msg = str(err.value)
    assert "pose-export defaults" in msg and str(det) in msg and str(card) in msg


def test_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_CACHE_DIR", str(tmp_path))
    assert default_model_paths()[0] == tmp_path / "detector" / "yolo11n.onnx"


def _run(args, tmp_path, **env):
    full = {**os.environ, "POSE_CACHE_DIR": str(tmp_path / "cache"), "POSE_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=300)


def test_offline_default_start_fails_with_the_helpful_message_not_a_traceback(tmp_path):
    """`pose-serve` with no model paths, nothing cached and no network: it tries to prepare the defaults
    (a `python -m export.cli defaults` subprocess, which refuses to download under POSE_OFFLINE) and
    exits 2 with a message naming the command and the files it looked for."""
    pytest.importorskip("pydantic_settings")
    proc = _run(["-m", "service.cli"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    det, card = default_model_paths(tmp_path / "cache")
    assert "pose-export defaults" in proc.stderr and str(det) in proc.stderr and str(card) in proc.stderr
    # the preparation step said why each model could not be prepared
    assert "Ultralytics cannot be imported" in proc.stderr or "yolo11n.pt" in proc.stderr
    assert "055a7699_20220913.pth" in proc.stderr


def test_offline_prepare_command_fails_cleanly(tmp_path):
    pytest.importorskip("torch")
    proc = _run(["-m", "export.cli", "defaults"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "POSE_OFFLINE" in proc.stderr or "Ultralytics cannot be imported" in proc.stderr
    assert "ipr_res50_debias-8xb64-210e_coco-256x256-055a7699_20220913.pth" in proc.stderr  # both models tried
