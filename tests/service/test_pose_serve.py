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


def test_help_is_grouped_and_lists_every_option(capsys, monkeypatch):
    from collections import Counter

    from core.cli_options import _deprecated_flags, _flag
    from service.pose_serve import SERVE_GROUPS, parse_args

    monkeypatch.setenv("COLUMNS", "200")
    grouped = Counter(f for _, fields in SERVE_GROUPS for f in fields)
    assert set(grouped) == set(Settings.model_fields) and max(grouped.values()) == 1  # each field in one section
    with pytest.raises(SystemExit) as stop:
        parse_args(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    titles = [title for title, _ in SERVE_GROUPS]
    assert titles == ["models", "runtime", "batching and pipeline", "detector", "video and streams",
                      "limits and admission", "security", "server", "GPU"]  # fmt: skip
    positions = [out.index(f"\n{title}:\n") for title in titles]
    assert positions == sorted(positions)
    sections = dict(zip(titles, [out[a:b] for a, b in zip(positions, [*positions[1:], len(out)])]))
    for title, fields in SERVE_GROUPS:
        for name in fields:
            for flag in [_flag(name), *_deprecated_flags(name)]:
                assert f"  {flag}" in sections[title] or f", {flag}" in sections[title], (title, flag)
