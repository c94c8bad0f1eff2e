"""Deprecated spellings of renamed settings (core.settings.DEPRECATED_NAMES): the old ``POSE_*`` variable and the old
option still set the new field, with one deprecation warning naming the new spelling; the new spelling wins."""

from __future__ import annotations

import argparse
import logging

import pytest

from core.cli_options import add_settings_options, settings_from_args
from core.settings import DEPRECATED_NAMES, DETECTOR_FIELDS, Settings


@pytest.fixture(autouse=True)
def _no_detector_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for name in ("POSE_DET_SCORE_THR", "POSE_DET_IOU_THR", "POSE_DET_SCORE_THRESHOLD", "POSE_DET_NMS_IOU"):
        monkeypatch.delenv(name, raising=False)


def _deprecations(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]


def test_mapping_names_fields():
    assert DEPRECATED_NAMES == {"det_score_threshold": "det_score_thr", "det_nms_iou": "det_iou_thr"}
    assert set(DEPRECATED_NAMES.values()) <= set(Settings.model_fields)
    assert not set(DEPRECATED_NAMES) & set(Settings.model_fields)


def test_old_environment_variable_sets_the_new_field_and_warns(monkeypatch, caplog):
    monkeypatch.setenv("POSE_DET_SCORE_THRESHOLD", "0.6")
    monkeypatch.setenv("POSE_DET_NMS_IOU", "0.3")
    with caplog.at_level(logging.WARNING):
        s = Settings()
    assert (s.det_score_thr, s.det_iou_thr) == (0.6, 0.3)
    assert _deprecations(caplog) == [
        "POSE_DET_SCORE_THRESHOLD is deprecated: use POSE_DET_SCORE_THR",
        "POSE_DET_NMS_IOU is deprecated: use POSE_DET_IOU_THR",
    ]


def test_old_variable_in_dotenv_file(tmp_path, caplog):
    (tmp_path / ".env").write_text("POSE_DET_NMS_IOU=0.35\n")
    with caplog.at_level(logging.WARNING):
        assert Settings().det_iou_thr == 0.35
    assert len(_deprecations(caplog)) == 1


def test_new_variable_wins_over_the_old(monkeypatch, caplog):
    monkeypatch.setenv("POSE_DET_SCORE_THRESHOLD", "0.6")
    monkeypatch.setenv("POSE_DET_SCORE_THR", "0.4")
    with caplog.at_level(logging.WARNING):
        assert Settings().det_score_thr == 0.4
    assert len(_deprecations(caplog)) == 1 and "ignored" in _deprecations(caplog)[0]


def test_keyword_arguments_and_copies_use_the_new_names(monkeypatch):
    monkeypatch.setenv("POSE_DET_SCORE_THRESHOLD", "0.6")
    assert Settings(det_score_thr=0.1).det_score_thr == 0.1  # arguments beat any variable
    s = Settings().model_copy(update={"det_iou_thr": 0.2})
    assert (s.det_score_thr, s.det_iou_thr) == (0.6, 0.2)
    assert Settings(_env_file=None).det_score_thr == 0.6


def test_old_option_works_through_settings_from_args_and_warns(caplog):
    p = argparse.ArgumentParser()
    add_settings_options(p, DETECTOR_FIELDS)
    with caplog.at_level(logging.WARNING):
        args = p.parse_args(["--det-score-threshold", "0.7", "--det-nms-iou", "0.5"])
    s = settings_from_args(args)
    assert (s.det_score_thr, s.det_iou_thr) == (0.7, 0.5)
    assert _deprecations(caplog) == [
        "--det-score-threshold is deprecated: use --det-score-thr",
        "--det-nms-iou is deprecated: use --det-iou-thr",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        s = settings_from_args(p.parse_args(["--det-score-thr", "0.3", "--det-iou-thr", "0.4"]))
    assert (s.det_score_thr, s.det_iou_thr) == (0.3, 0.4) and _deprecations(caplog) == []


def test_help_lists_the_new_options_and_marks_the_old(capsys):
    p = argparse.ArgumentParser(prog="pose-serve")
    add_settings_options(p, DETECTOR_FIELDS)
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--det-score-thr DET_SCORE_THR" in out and "--det-iou-thr DET_IOU_THR" in out
    assert "env POSE_DET_SCORE_THR" in out and "deprecated spelling: --det-score-threshold" in out
    assert "deprecated spelling: --det-nms-iou" in out
