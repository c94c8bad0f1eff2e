"""Default models: resolution from the cache, and an offline default start that fails helpfully."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.settings import Settings
from inference.default_models import DefaultModelsMissing, resolve_default_models


def test_present_defaults_are_resolved(tmp_path):
    s = Settings(cache_dir=tmp_path, prepare_defaults=False)
    det, card = s.cache.default_detector, s.cache.default_pose_card
    for p in (det, card, card.with_suffix(".onnx")):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert resolve_default_models(s) == (det, card)


def test_missing_defaults_name_the_files_and_the_command(tmp_path):
    s = Settings(cache_dir=tmp_path, prepare_defaults=False)
    card = s.cache.default_pose_card
    card.parent.mkdir(parents=True)
    card.write_text("{}")  # a card without its ONNX is not enough
    with pytest.raises(DefaultModelsMissing) as err:
        resolve_default_models(s)
    msg = str(err.value)
    assert "pose-export defaults" in msg and str(s.cache.default_detector) in msg and str(card) in msg


def test_pose_serve_flags_reach_the_export_subprocess(tmp_path, monkeypatch):
    """``pose-serve --offline --intra-op-threads 1`` prepares the defaults offline with one thread: the flags travel
    as flags (the environment says otherwise here)."""
    import inference.default_models as defaults
    from export.cli import main as export_main  # the subprocess's parser reads the command line

    calls = []
    monkeypatch.setenv("POSE_OFFLINE", "0")
    monkeypatch.setattr(defaults, "export_extra_installed", lambda: True)
    monkeypatch.setattr(
        defaults.subprocess, "run", lambda cmd, check: calls.append(cmd) or subprocess.CompletedProcess(cmd, 3)
    )
    s = Settings(cache_dir=tmp_path, offline=True, intra_op_threads=1)
    with pytest.raises(DefaultModelsMissing, match="exited with 3"):
        resolve_default_models(s)
    (cmd,) = calls
    assert cmd[1:4] == ["-m", "export.cli", "defaults"]
    seen = {}
    monkeypatch.setattr("export.defaults.prepare_defaults", lambda settings, force: seen.update(s=settings) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export_main(cmd[3:])
    assert seen["s"].offline is True and seen["s"].intra_op_threads == 1 and seen["s"].cache_dir == tmp_path


def _run(args, tmp_path, **env):
    full = {**os.environ, "POSE_CACHE_DIR": str(tmp_path / "cache"), "POSE_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=300)


def _detector_offline_message(cache) -> str:
    """What the detector step says offline: Ultralytics is missing (checked first), else the yolo11n.pt download is
    refused. Which one depends on this machine's install, so it is probed in a subprocess as the export runs."""
    probe = subprocess.run(
        [sys.executable, "-c", "from export.detector import import_ultralytics; import_ultralytics()"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if probe.returncode != 0:
        return "Ultralytics cannot be imported"
    return f"POSE_OFFLINE is set and {cache.downloads / 'yolo11n.pt'} is missing"


@pytest.mark.slow
def test_offline_default_start_fails_with_the_helpful_message_not_a_traceback(tmp_path):
    """`pose-serve` with no model paths, nothing cached and no network: it tries to prepare the defaults
    (a `python -m export.cli defaults` subprocess, which refuses to download under POSE_OFFLINE) and
    exits 1 (a failure, not a usage error) with a message naming the command and the files it looked for."""
    proc = _run(["-m", "service.pose_serve"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    cache = Settings(cache_dir=tmp_path / "cache").cache
    assert "pose-export defaults" in proc.stderr
    assert str(cache.default_detector) in proc.stderr and str(cache.default_pose_card) in proc.stderr
    # the preparation step said why each model could not be prepared
    assert _detector_offline_message(cache) in proc.stderr
    assert "055a7699_20220913.pth" in proc.stderr


@pytest.mark.slow
def test_offline_prepare_command_fails_cleanly(tmp_path):
    pytest.importorskip("torch")
    proc = _run(["-m", "export.cli", "defaults"], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert _detector_offline_message(Settings(cache_dir=tmp_path / "cache").cache) in proc.stderr
    assert "offline" in proc.stderr  # the pose checkpoint is not downloaded either
    assert "ipr_res50_debias-8xb64-210e_coco-256x256-055a7699_20220913.pth" in proc.stderr  # both models tried
