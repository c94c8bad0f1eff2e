"""Settings (core/settings.py, core/cli_options.py): the one reader of POSE_* variables, the cache layout, the CLI options
derived from the fields, and the README table generated from them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.cli_options import add_settings_options, settings_from_args, settings_table
from core.settings import Settings
from tests.conftest import REPO_ROOT


def test_readme_configuration_table_is_the_generated_one():
    readme = (REPO_ROOT / "README.md").read_text()
    m = re.search(r"<!-- settings-table -->\n(.*?)<!-- /settings-table -->", readme, re.S)
    assert m, "README.md lacks the <!-- settings-table --> block"
    assert m.group(1) == settings_table(), "README table differs: paste `python -m core.cli_options` into it"


def test_environment_then_options_then_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("POSE_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("POSE_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("POSE_CACHE_DIR", str(tmp_path))
    p = argparse.ArgumentParser()
    add_settings_options(p, ["max_batch_size", "flip_test", "runtime", "cache_dir", "pose_model"])
    env_only = settings_from_args(p.parse_args([]))
    assert env_only.max_batch_size == 8 and env_only.flip_test is False
    assert env_only.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert env_only.cache.engines == tmp_path / "engines"
    args = p.parse_args(["--max-batch-size", "4", "--flip-test", "--runtime", "tensorrt", "--pose", "m.json"])
    s = settings_from_args(args, max_batch_size=2)
    assert (s.max_batch_size, s.flip_test, s.runtime, s.pose_model) == (2, True, "tensorrt", Path("m.json"))
    assert settings_from_args(p.parse_args(["--no-flip-test"])).flip_test is False
    with pytest.raises(SystemExit):
        p.parse_args(["--runtime", "tflite"])  # choices come from the field's Literal


def test_invalid_values_are_rejected_with_the_field_name(monkeypatch):
    monkeypatch.setenv("POSE_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        Settings()
    monkeypatch.delenv("POSE_PORT")
    with pytest.raises(ValidationError, match="providers"):
        Settings(providers='["CPUExecutionProvider"')
    assert Settings(providers='["CPUExecutionProvider"]').providers == ["CPUExecutionProvider"]


def test_cache_layout_and_user_expansion():
    s = Settings(cache_dir="~/pose-cache")
    assert s.cache_dir == Path.home() / "pose-cache"
    c = s.cache
    assert (c.checkpoints, c.downloads, c.engines) == (c.root / "checkpoints", c.root / "downloads", c.root / "engines")
    assert c.default_detector == c.root / "detector" / "yolo11n.onnx"
    assert c.default_pose_card == c.root / "pose" / "ipr_res50_debias.json"


def test_no_other_module_reads_pose_environment_variables():
    """One owner: only core/settings.py reads POSE_* (tests read POSE_ASSETS_DIR, a test-only variable)."""
    offenders = []
    for path in sorted(REPO_ROOT.glob("*/*.py")):
        rel = path.relative_to(REPO_ROOT).as_posix()
        if rel.startswith(("tests/", ".venv/")) or rel == "core/settings.py":
            continue
        text = path.read_text()
        if re.search(r"""(environ\b[^\n]*|getenv\()["']POSE_""", text):
            offenders.append(rel)
    assert offenders == []


def test_field_groups_name_fields():
    """Every named group of ``core.settings`` holds fields only, each once; ``pose-serve`` takes them all."""
    from core import settings as mod

    groups = {n: v for n, v in vars(mod).items() if n.endswith("_FIELDS")}
    assert {"MODEL_FIELDS", "CACHE_FIELDS", "RUNTIME_FIELDS", "PIPELINE_FIELDS", "DETECTOR_FIELDS"} <= set(groups)
    for name, fields in groups.items():
        assert set(fields) <= set(Settings.model_fields), name
        assert len(set(fields)) == len(fields), name
    assert set(mod.SERVE_FIELDS) == set(Settings.model_fields)


def test_settings_options_in_titled_groups():
    p = argparse.ArgumentParser()
    add_settings_options(p, ("port", "host", "log_level"), [("server", ("host", "port"))])
    titles = {g.title: [a.dest for a in g._group_actions] for g in p._action_groups}
    assert titles["server"] == ["port", "host"]  # in the order of the names, not of the group
    assert [a.dest for a in p._action_groups[1]._group_actions] == ["help", "log_level"]  # ungrouped: the parser's
    args = p.parse_args(["--port", "9000", "--log-level", "debug"])
    s = settings_from_args(args)
    assert s.port == 9000 and s.log_level == "debug"
    with pytest.raises(ValueError, match="max_boxes"):
        add_settings_options(argparse.ArgumentParser(), ("port",), [("limits", ("max_boxes",))])


def test_root_path_is_a_prefix_without_trailing_slash(monkeypatch):
    """``root_path`` (a proxy's prefix) is empty or ``/a/b``; the environment and ``--root-path`` set it."""
    assert Settings().root_path == ""
    monkeypatch.setenv("POSE_ROOT_PATH", "/pose-api")
    assert Settings().root_path == "/pose-api"
    parser = argparse.ArgumentParser()
    add_settings_options(parser, ("root_path",))
    assert settings_from_args(parser.parse_args(["--root-path", "/a/b"])).root_path == "/a/b"
    for bad in ("pose-api", "/pose-api/", "/a b", "//x"):
        with pytest.raises(ValidationError):
            Settings(root_path=bad)
