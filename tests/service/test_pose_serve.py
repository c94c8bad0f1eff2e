"""``pose-serve``'s command line: fail fast before the port is bound (bad model paths, broken cards), exit statuses,
the grouped --help."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from core.errors import ModelLoadError
from core.settings import Settings
from inference.default_models import check_model_files
from service.launcher import REPO_ROOT, free_port


def _broken_card(kind: str, movenet_card, tmp_path):
    """(pose path, detector path or None, text expected on stderr) of one way to name a model that is not there."""
    from models.card import ModelCard

    if kind == "nonexistent pose":
        return "/nonexistent.json", None, "/nonexistent.json"
    if kind == "card is not JSON":
        bad = tmp_path / "broken.json"
        bad.write_text('{"name": "x", "input": {}')
        return str(bad), None, "not valid JSON"
    if kind == "card names a missing model file":
        card = ModelCard.load(movenet_card)
        card.model_file = str(tmp_path / "missing.onnx")
        return str(card.save(tmp_path / "card.json")), None, "missing.onnx"
    return str(movenet_card), str(tmp_path / "no_detector.onnx"), "no_detector.onnx"


KINDS = ["nonexistent pose", "card is not JSON", "card names a missing model file", "missing detector"]


@pytest.mark.parametrize("kind", KINDS)
def test_check_model_files_names_the_problem(kind, movenet_card, yolo_onnx, tmp_path):
    pose, detector, expected = _broken_card(kind, movenet_card, tmp_path)
    settings = Settings(pose_model=pose, detector_model=detector or yolo_onnx, cache_dir=tmp_path / "cache")
    with pytest.raises(ModelLoadError, match=expected):
        check_model_files(settings)


def test_check_model_files_accepts_good_models(movenet_card, yolo_onnx, tmp_path):
    check_model_files(Settings(pose_model=movenet_card, detector_model=yolo_onnx, cache_dir=tmp_path))
    check_model_files(Settings(pose_model=movenet_card, cache_dir=tmp_path))  # caller boxes only: no detector


@pytest.mark.parametrize("kind", KINDS)
def test_bad_model_paths_exit_1_before_the_port_is_bound(kind, movenet_card, yolo_onnx, tmp_path):
    """No server answering /healthz with /readyz 503 forever: the process ends at once, the reason on stderr, and
    nothing ever listened on the port (polled while the process ran)."""
    pose, detector, expected = _broken_card(kind, movenet_card, tmp_path)
    port = free_port()
    cmd = [sys.executable, "-m", "service.pose_serve", "--host", "127.0.0.1", "--port", str(port),
           "--cache-dir", str(tmp_path / "cache"), "--no-prepare-defaults", "--log-level", "info",
           "--pose", pose, "--detector", detector or str(yolo_onnx)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bound = False
    while proc.poll() is None and time.monotonic() - start < 60:
        with socket.socket() as s:
            bound = bound or s.connect_ex(("127.0.0.1", port)) == 0
        time.sleep(0.02)
    out, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, err
    assert elapsed < 20, f"took {elapsed:.1f} s"  # an import and a file check (a few seconds on a loaded machine)
    assert expected in err and "Traceback" not in err, err
    assert not bound and "Uvicorn running" not in err + out and "Started server process" not in err + out
