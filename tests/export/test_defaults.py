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


# --------------------------------------------------------------------------------------------------
# POSE_DEFAULT_DETECTOR=rtmdet-nano: the published MMDeploy ONNX, checked and carded (a stand-in zip here: no network)

#: The MMDeploy SDK preprocessing of MMPose's RTMDet-nano person export (its pipeline.json, abridged).
SDK_PIPELINE = {
    "pipeline": {
        "tasks": [
            {
                "type": "Task",
                "module": "Transform",
                "transforms": [
                    {"type": "LoadImageFromFile"},
                    {"type": "Resize", "size": [320, 320], "keep_ratio": True},
                    {"type": "Pad", "size": [320, 320], "pad_val": {"img": [114, 114, 114]}},
                    {
                        "type": "Normalize",
                        "mean": [103.53, 116.28, 123.675],
                        "std": [57.375, 57.12, 58.395],
                        "to_rgb": False,
                    },
                ],
            },
            {"type": "Task", "module": "Net", "input_map": {"img": "input"}},
        ]
    }
}


def _end2end_onnx() -> bytes:
    """An MMDeploy-shaped ONNX: input ``input`` [1, 3, 320, 320], outputs ``dets`` [1, 2, 5] (one person, one row of
    another class) and ``labels`` int64 [1, 2], constant (plus 0 x the input's mean)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    dets = np.array([[[10, 20, 110, 220, 0.9], [0, 0, 50, 50, 0.8]]], np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
        helper.make_node("Constant", [], ["z"], value=numpy_helper.from_array(np.array(0, np.float32))),
        helper.make_node("Mul", ["m", "z"], ["mz"]),
        helper.make_node("Constant", [], ["d"], value=numpy_helper.from_array(dets)),
        helper.make_node("Add", ["d", "mz"], ["dets"]),
        helper.make_node("Constant", [], ["labels"], value=numpy_helper.from_array(np.array([[0, 3]], np.int64))),
    ]
    graph = helper.make_graph(
        nodes,
        "end2end",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 320, 320])],
        [
            helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 2, 5]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def _sdk_zip(cache, onnx_bytes: bytes, pipeline=SDK_PIPELINE):
    import json
    import zipfile

    from export.defaults import RTMDET_NANO_URL

    path = cache.downloads / RTMDET_NANO_URL.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("20230831/rtmdet_nano/end2end.onnx", onnx_bytes)
        zf.writestr("20230831/rtmdet_nano/pipeline.json", json.dumps(pipeline))
    return path


def test_rtmdet_nano_default_is_the_checked_onnx_with_its_card_and_serves(tmp_path):
    import hashlib

    import numpy as np

    from export.defaults import fetch_rtmdet_nano
    from inference.person_detector import PersonDetector
    from inference.runtime import OrtRuntime
    from models.detector_card import find_detector_card

    s = Settings(cache_dir=tmp_path, default_detector="rtmdet-nano", prepare_defaults=False, offline=True)
    data = _end2end_onnx()
    _sdk_zip(s.cache, data)
    onnx_path, card_path = fetch_rtmdet_nano(s.cache, offline=True, sha256=hashlib.sha256(data).hexdigest())
    assert onnx_path == s.cache.detector("rtmdet-nano") and onnx_path.read_bytes() == data
    path, card = find_detector_card(onnx_path)
    assert card.path == card_path and card.contract == "mmdeploy" and card.licence == "Apache-2.0"
    assert card.input_size == (320, 320) and card.input.color == "BGR" and card.letterbox.placement == "top_left"
    # resolved as the default detector once the pose model is there too
    pose = s.cache.default_pose_card
    pose.parent.mkdir(parents=True)
    pose.write_text("{}")
    pose.with_suffix(".onnx").write_bytes(b"x")
    assert resolve_default_models(s) == (onnx_path, pose)
    # and served: a 640x480 image is scaled by 0.5 with the padding below it; the other class is dropped
    det = PersonDetector(OrtRuntime(path), card=card)
    boxes, scores = det.detect(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[20, 40, 220, 440]])
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)


def test_rtmdet_nano_with_another_hash_or_preprocessing_is_refused(tmp_path):
    import copy
    import hashlib

    from export.defaults import RTMDET_NANO_ONNX_SHA256, DefaultsError, fetch_rtmdet_nano

    cache = Settings(cache_dir=tmp_path).cache
    data = _end2end_onnx()
    _sdk_zip(cache, data)
    with pytest.raises(DefaultsError, match=f"expected {RTMDET_NANO_ONNX_SHA256}"):
        fetch_rtmdet_nano(cache, offline=True)
    rgb = copy.deepcopy(SDK_PIPELINE)
    rgb["pipeline"]["tasks"][0]["transforms"][3]["to_rgb"] = True
    _sdk_zip(cache, data, rgb)
    with pytest.raises(DefaultsError, match="disagrees with the detector card: Normalize"):
        fetch_rtmdet_nano(cache, offline=True, sha256=hashlib.sha256(data).hexdigest())
    assert not cache.detector("rtmdet-nano").exists()


def test_rtmdet_nano_offline_and_missing_names_the_url_and_the_place(tmp_path):
    from export.defaults import RTMDET_NANO_URL, DefaultsError, prepare_defaults

    s = Settings(cache_dir=tmp_path, default_detector="rtmdet-nano", offline=True)
    with pytest.raises(DefaultsError, match="rtmdet-nano: POSE_OFFLINE is set") as err:
        prepare_defaults(s, progress=False)
    assert RTMDET_NANO_URL in str(err.value) and str(s.cache.downloads) in str(err.value)


def test_the_default_detector_setting_reaches_the_export_subprocess(tmp_path):
    from core.cli_options import export_command
    from export.cli import parse_args

    s = Settings(cache_dir=tmp_path, default_detector="rtmdet-nano")
    cmd = export_command(["defaults"], s)
    args = parse_args(cmd[3:])
    assert args.default_detector == "rtmdet-nano"
    with pytest.raises(DefaultModelsMissing) as err:
        resolve_default_models(s.model_copy(update={"prepare_defaults": False}))
    assert str(s.cache.detector("rtmdet-nano")) in str(err.value)


def test_pose_export_defaults_prepares_the_chosen_detector(tmp_path, monkeypatch, capsys):
    """``pose-export defaults --default-detector rtmdet-nano`` offline with the zip in the cache (a stand-in whose hash
    is the pinned one here) and the pose model present: the detector and its card are written, exit 0."""
    import hashlib

    import export.defaults as defaults
    from export.cli import main as export_main
    from tests.graphs import tiny_pose_onnx

    s = Settings(cache_dir=tmp_path)
    data = _end2end_onnx()
    _sdk_zip(s.cache, data)
    monkeypatch.setattr(defaults, "RTMDET_NANO_ONNX_SHA256", hashlib.sha256(data).hexdigest())
    pose = s.cache.default_pose_card
    pose.parent.mkdir(parents=True)
    pose.write_text("{}")
    tiny_pose_onnx(pose.with_suffix(".onnx"))
    argv = ["defaults", "--cache-dir", str(tmp_path), "--offline", "--default-detector", "rtmdet-nano"]
    assert export_main(argv) == 0, capsys.readouterr().err
    det = s.cache.detector("rtmdet-nano")
    assert det.read_bytes() == data and det.with_suffix(".json").is_file()
    assert f"detector: {det}" in capsys.readouterr().out
