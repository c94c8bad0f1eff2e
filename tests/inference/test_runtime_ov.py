"""The OpenVINO runtime (inference/runtime_ov.py): fp32 against onnxruntime, IR input, dynamic batch, the compiled-model
cache, precision refusals, int8 resolution, and the cores the thread counts come from (inference/runtime.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.errors import ModelLoadError
from core.hashing import sha256_file
from core.settings import Settings
from inference.runtime import available_cores, create_runtime
from inference.runtime_ov import check_precision, int8_model_path, is_quantized_ir, resolve_card_precision
from models.card import ModelCard
from models.tolerance import EXPORT_TOLERANCE_PX, assert_close
from tests.graphs import tiny_pose_onnx

ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")


@pytest.fixture(scope="module")
def ov_settings(tmp_path_factory, cpu_settings):
    """OpenVINO fp32 with the test session's thread setting and a private cache folder."""
    return cpu_settings.model_copy(
        update={"runtime": "openvino", "cache_dir": tmp_path_factory.mktemp("ov-cache"), "providers": None}
    )


@pytest.fixture(scope="module")
def tiny_crops(coco_tiny):
    from export.pose import crops_from_images

    return crops_from_images([coco_tiny], (256, 256), 4)


def test_fp32_pose_keypoints_match_onnxruntime_within_the_export_tolerance(
    movenet_card, tiny_crops, ov_settings, cpu_settings
):
    card = ModelCard.load(movenet_card)
    ov_rt = create_runtime(card.model_path(), ov_settings)
    ort_rt = create_runtime(card.model_path(), cpu_settings)
    assert ov_rt.input_names == ort_rt.input_names and ov_rt.output_names == ort_rt.output_names
    assert ov_rt.input_dtypes == ort_rt.input_dtypes and ov_rt.input_shapes == ort_rt.input_shapes
    for crop in tiny_crops:  # MoveNet's batch is fixed at 1
        feeds = {card.input.name: card.input.prepare(crop[None])}
        got, want = card.decode(ov_rt.run(feeds)[0]), card.decode(ort_rt.run(feeds)[0])
        assert_close(got, want, EXPORT_TOLERANCE_PX, "OpenVINO fp32 vs onnxruntime keypoints (crop px)")
    facts = ov_rt.describe()
    assert facts["backend"] == "openvino" and facts["precision"] == "fp32" and facts["inference_precision"] == "f32"
    assert facts["device"] == "CPU" and facts["active_providers"] == ["OpenVINO:CPU"] and facts["threads"] >= 1


def test_fp32_detector_boxes_match_onnxruntime(yolo_onnx, coco_tiny, ov_settings, cpu_settings):
    from inference.imageio import decode_image
    from inference.person_detector import PersonDetector

    image = decode_image((coco_tiny / "000000196141.jpg").read_bytes())
    got = PersonDetector(create_runtime(yolo_onnx, ov_settings)).detect(image)
    want = PersonDetector(create_runtime(yolo_onnx, cpu_settings)).detect(image)
    assert len(want[0]) >= 2 and got[0].shape == want[0].shape
    assert_close(got[0], want[0], EXPORT_TOLERANCE_PX, "OpenVINO fp32 vs onnxruntime detector boxes (px)")
    assert_close(got[1], want[1], 1e-3, "detector scores")


def test_dynamic_batch_ir_input_and_compiled_model_cache(tmp_path, ov_settings):
    onnx_path = tiny_pose_onnx(tmp_path / "tiny.onnx", w=8, h=8)
    rt = create_runtime(onnx_path, ov_settings)
    assert rt.input_shapes == [[None, 8, 8, 3]] and rt.max_batch_size is None
    crops = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    for n in (1, 5, 3):  # every batch size the batcher forms, on one compiled model
        out = rt.run({"crops": crops[:n]})[0]
        np.testing.assert_allclose(out[:, 0, 0], crops[:n].reshape(n, -1).mean(axis=1), rtol=1e-5)
    assert list(ov_settings.cache.openvino("CPU").glob("*.blob")), "no compiled blob in the cache folder"
    # an IR (.xml + .bin) is accepted as well
    xml = tmp_path / "tiny.xml"
    ov.save_model(ov.Core().read_model(str(onnx_path)), str(xml))
    ir = create_runtime(xml, ov_settings)
    np.testing.assert_array_equal(ir.run({"crops": crops})[0], rt.run({"crops": crops})[0])
    xml.with_suffix(".bin").unlink()
    with pytest.raises(ModelLoadError, match=r"tiny\.bin"):
        create_runtime(xml, ov_settings)


def test_precision_refusals_name_the_missing_capability_and_the_override():
    with pytest.raises(ModelLoadError, match="no native BF16.*POSE_ALLOW_UNSUPPORTED_PRECISION"):
        check_precision("bf16", "CPU", ["FP32", "INT8"], {"avx512f"})
    assert "BF16" in check_precision("bf16", "CPU", ["FP32"], set(), allow_unsupported=True)
    assert check_precision("bf16", "CPU", ["FP32", "BF16"], set()) is None
    with pytest.raises(ModelLoadError, match="no VNNI"):
        check_precision("int8", "CPU", ["FP32", "INT8"], {"avx2", "avx512f"})
    assert check_precision("int8", "CPU", ["INT8"], {"avx512_vnni"}) is None
    with pytest.raises(ModelLoadError, match="no INT8"):
        check_precision("int8", "GPU", ["FP32"], set())
    with pytest.raises(ModelLoadError, match="must be one of"):
        check_precision("fp8", "CPU", ["FP32"], set())


def test_reduced_precision_needs_the_openvino_runtime():
    with pytest.raises(ValueError, match="needs runtime openvino"):
        Settings(precision="bf16")
    assert Settings(runtime="openvino", precision="int8").precision == "int8"


def test_int8_is_never_silent(tmp_path, movenet_card, ov_settings):
    card = ModelCard.load(movenet_card)
    settings = ov_settings.model_copy(update={"cache_dir": tmp_path, "precision": "int8"})
    # no quantised model in the cache: the error names the command that makes one
    with pytest.raises(ModelLoadError, match="pose-export quantize"):
        int8_model_path(card.model_path(), settings.cache)
    with pytest.raises(ModelLoadError, match="pose-export quantize"):
        create_runtime(card.model_path(), settings)
    # an int8 card is refused under fp32, and an fp32 card is replaced by its int8 card under int8
    int8_dir = settings.cache.int8(sha256_file(card.model_path()))
    int8_dir.mkdir(parents=True)
    int8_card = ModelCard.from_dict({**card.to_dict(), "model_file": "movenet_thunder.xml", "precision": "int8"})
    int8_card.save(int8_dir / "movenet_thunder.json")
    (int8_dir / "movenet_thunder.xml").write_text("<net/>")
    assert resolve_card_precision(card, "int8", settings.cache).precision == "int8"
    with pytest.raises(ModelLoadError, match="POSE_PRECISION=int8"):
        resolve_card_precision(int8_card, "fp32", settings.cache)
    assert resolve_card_precision(card, "bf16", settings.cache) is card
    # an unquantised model opened as int8 (an IR without FakeQuantize) is refused by the runtime itself
    xml = tmp_path / "plain.xml"
    ov.save_model(ov.Core().read_model(str(card.model_path())), str(xml))
    assert not is_quantized_ir(xml)
    from inference.runtime_ov import OvRuntime

    with pytest.raises(ModelLoadError, match="needs a quantised model"):
        OvRuntime(xml, precision="int8", allow_unsupported=True)


def _cgroup(tmp_path, proc: str, files: dict[str, str]):
    root = tmp_path / "cg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "proc").write_text(proc)
    return root, tmp_path / "proc"


def test_available_cores_follow_affinity_and_the_cgroup_quota(tmp_path):
    eight = set(range(8))
    root, proc = _cgroup(
        tmp_path / "a", "0::/pod/app\n", {"pod/cpu.max": "150000 100000\n", "pod/app/cpu.max": "max 100000\n"}
    )
    assert available_cores(eight, root, proc) == 2  # 1.5 cores of quota in a parent -> 2 threads
    root, proc = _cgroup(tmp_path / "b", "0::/\n", {"cpu.max": "max 100000\n"})
    assert available_cores({0, 3}, root, proc) == 2 and available_cores(eight, root, proc) == 8
    root, proc = _cgroup(
        tmp_path / "c",
        "4:cpu,cpuacct:/job\n",
        {"cpu,cpuacct/job/cpu.cfs_quota_us": "100000", "cpu,cpuacct/job/cpu.cfs_period_us": "100000"},
    )
    assert available_cores(eight, root, proc) == 1  # cgroup v1
    root, proc = _cgroup(tmp_path / "d", "0::/x\n", {"x/cpu.max": "20000 100000\n"})
    assert available_cores(eight, root, proc) == 1  # a fifth of a core is still one thread
    assert 1 <= available_cores() <= (os.cpu_count() or 1)


def test_model_threads_reach_both_runtimes(yolo_onnx, ov_settings):
    settings = ov_settings.model_copy(update={"intra_op_threads": 1})
    assert create_runtime(yolo_onnx, settings).describe()["threads"] == 1
    ort_rt = create_runtime(yolo_onnx, Settings(intra_op_threads=0))
    assert ort_rt.session.get_session_options().intra_op_num_threads == available_cores()
