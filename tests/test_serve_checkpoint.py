"""`pose-serve --pose CHECKPOINT.pth`: the checkpoint is exported once in a subprocess (the server never imports
torch) and cached by its SHA-256; failures are one clear error and leave no half-written cache entry. The
successful path (a trained checkpoint served over HTTP) is in tests/test_training_loop.py."""

from __future__ import annotations

import pytest

from core.errors import ModelLoadError
from core.settings import Settings
from service.defaults import is_checkpoint, resolve_pose_checkpoint


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
    assert not trained.exists() or not any(trained.iterdir())
