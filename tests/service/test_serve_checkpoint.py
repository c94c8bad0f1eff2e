"""`pose-serve --pose CHECKPOINT.pth`: the checkpoint is exported once in a subprocess (the server never imports
torch) and cached by its SHA-256; failures are one clear error and leave no half-written cache entry. The
successful path (a trained checkpoint served over HTTP) is in tests/training/test_loop.py."""

from __future__ import annotations

import pytest

from core.errors import ModelLoadError
from core.settings import Settings
from inference.default_models import is_checkpoint, resolve_pose_checkpoint


def test_checkpoint_suffixes():
    assert is_checkpoint("run/best.pth") and is_checkpoint("x.PT")
    assert not is_checkpoint("models/quick.json") and not is_checkpoint("models/quick.onnx")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match="pose checkpoint not found: .*nope.pth"):
        resolve_pose_checkpoint(tmp_path / "nope.pth", Settings(cache_dir=tmp_path))


def test_cache_layout_names_the_folder_by_hash(tmp_path):
    cache = Settings(cache_dir=tmp_path).cache
    assert cache.trained_pose("ab" * 32) == tmp_path / "trained" / ("ab" * 8)
    with pytest.raises(ValueError, match="SHA-256"):
        cache.trained_pose("../../etc")


def test_failed_export_is_one_error_and_leaves_no_cache_entry(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    settings = Settings(cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(ModelLoadError, match="exporting .*broken.pth failed .*pose-export pose"):
        resolve_pose_checkpoint(bad, settings)
    trained = tmp_path / "cache" / "trained"
    # this export fails before writing anything: the cleanup of a half-written one is the next test's
    assert not trained.exists() or not any(trained.iterdir())


@pytest.mark.parametrize("rc, files", [(1, ["half.onnx"]), (0, ["model.onnx"])], ids=["failed", "no-card"])
def test_a_half_written_export_is_removed(tmp_path, monkeypatch, rc, files):
    """An export that wrote part of its output and then failed (or exited 0 without a card): its temporary folder is
    removed and nothing appears under the hash's folder. A stand-in export command writes the partial output."""
    import sys

    import inference.default_models as defaults

    script = "import pathlib, sys; d = pathlib.Path(sys.argv[1]); d.mkdir(parents=True)\n"
    script += f"for f in {files!r}: (d / f).write_bytes(b'partial')\nsys.exit({rc})"

    def half_export(sub, settings):
        return [sys.executable, "-c", script, sub[sub.index("--out") + 1]]

    monkeypatch.setattr(defaults, "export_extra_installed", lambda: True)
    monkeypatch.setattr(defaults, "export_command", half_export)
    ckpt = tmp_path / "run.pth"
    ckpt.write_bytes(b"weights")
    settings = Settings(cache_dir=tmp_path / "cache", offline=True)
    with pytest.raises(ModelLoadError, match=f"(?s)exporting .*run.pth failed .*exited with {rc}\\)"):
        resolve_pose_checkpoint(ckpt, settings)
    trained = tmp_path / "cache" / "trained"
    assert trained.is_dir() and list(trained.iterdir()) == []  # the export ran (its folder's parent exists), then went
