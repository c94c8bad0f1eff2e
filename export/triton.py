"""Optional Triton Inference Server model repository for the same ONNX files / engines.

Layout (Triton docs, "Model Repository" and "Model Configuration")::

    <repository>/<model name>/config.pbtxt
    <repository>/<model name>/1/model.onnx      (platform "onnxruntime_onnx")
    <repository>/<model name>/1/model.plan      (platform "tensorrt_plan")

``config.pbtxt`` declares ``max_batch_size`` > 0 (so Triton owns the batch axis and every input's
first axis must be the dynamic batch axis), the inputs and outputs without the batch axis, a
``dynamic_batching`` block (preferred batch sizes, max queue delay) and an ``instance_group``.
Inputs / outputs are read from the ONNX file, so the config always matches the exported graph.
For a pose model the model card JSON is copied beside ``config.pbtxt`` (Triton ignores it; a client
needs it for pre- and post-processing); for a TensorRT plan its build sidecar goes there too, as
``engine.json`` (precision, builder flags, profile, and ``loads_with``: the TensorRT release that built it, which
the Triton release must ship, or for a version-compatible plan the flag tritonserver needs; ``export.tensorrt``).

Every written ``config.pbtxt`` is parsed back into Triton's own ``inference.ModelConfig`` protobuf
(``model_config.proto``, shipped as ``tritonclient.grpc.model_config_pb2``) with
``google.protobuf.text_format`` when tritonclient is installed (the dev extra has it), so a field Triton
would reject fails here, not at server start. A plan's optimisation profile must reach ``max_batch_size``
(Triton forms batches up to it and the engine would reject larger ones): checked from the engine's sidecar.
Torch-free: needs ``onnx``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from core.cache import sidecar_path
from inference.runtime_trt import read_sidecar

log = logging.getLogger(__name__)

PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}

# ONNX TensorProto element type -> Triton data type
_TRITON_DTYPES = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
}


class TritonExportError(ValueError):
    """The model cannot be described for Triton (no dynamic batch axis, unknown dtype, bad arguments)."""


def _io_specs(onnx_path: Path) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs of an ONNX graph as dicts: name, Triton dtype, dims without batch (-1 = dynamic)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    init_names = {t.name for t in model.graph.initializer}

    def spec(v, where: str) -> dict:
        tt = v.type.tensor_type
        if tt.elem_type not in _TRITON_DTYPES:
            raise TritonExportError(
                f"{where} {v.name!r} of {onnx_path.name} has an ONNX dtype {tt.elem_type} Triton lacks"
            )
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if not dims or dims[0] not in (-1,):
            raise TritonExportError(
                f"{where} {v.name!r} of {onnx_path.name} has shape {dims}: its first axis must be a dynamic "
                "batch axis for Triton's dynamic batching (export with a dynamic batch axis)"
            )
        return {"name": v.name, "data_type": _TRITON_DTYPES[tt.elem_type], "dims": dims[1:]}

    inputs = [spec(v, "input") for v in model.graph.input if v.name not in init_names]
    outputs = [spec(v, "output") for v in model.graph.output]
    return inputs, outputs


def config_pbtxt(
    name: str,
    platform: str,
    inputs: list[dict],
    outputs: list[dict],
    max_batch_size: int,
    preferred_batch_sizes: list[int],
    max_queue_delay_us: int,
    instance_kind: str = "KIND_GPU",
    instance_count: int = 1,
) -> str:
    """The text of a Triton ``config.pbtxt`` (protobuf text format).

    Args:
        name: model name (must equal the folder name).
        platform: ``onnxruntime`` or ``tensorrt`` (mapped to ``onnxruntime_onnx`` / ``tensorrt_plan``).
        inputs, outputs: dicts with ``name``, ``data_type`` (``TYPE_FP32``, ...), ``dims`` (without batch).
        max_batch_size: largest batch Triton forms (for an engine: its profile's max).
        preferred_batch_sizes: batch sizes the dynamic batcher aims for (each <= max_batch_size).
        max_queue_delay_us: how long a request may wait for others to join its batch, microseconds.
        instance_kind: ``KIND_GPU`` or ``KIND_CPU``.
        instance_count: model instances per device.

    Raises:
        TritonExportError: unknown platform or inconsistent batch settings.
    """
    if platform not in PLATFORMS:
        raise TritonExportError(f"platform {platform!r} must be one of {sorted(PLATFORMS)}")
    if max_batch_size < 1:
        raise TritonExportError(f"max_batch_size must be >= 1, got {max_batch_size}")
    bad = [b for b in preferred_batch_sizes if not 1 <= b <= max_batch_size]
    if bad:
        raise TritonExportError(f"preferred batch sizes {bad} are outside 1..{max_batch_size}")
    if instance_kind not in ("KIND_GPU", "KIND_CPU"):
        raise TritonExportError(f"instance_kind must be KIND_GPU or KIND_CPU, got {instance_kind!r}")
    if platform == "tensorrt" and instance_kind != "KIND_GPU":
        raise TritonExportError("a TensorRT plan runs on KIND_GPU only")

    def block(tensors: list[dict]) -> str:
        items = []
        for t in tensors:
            dims = ", ".join(str(d) for d in t["dims"])
            items.append(f'  {{\n    name: "{t["name"]}"\n    data_type: {t["data_type"]}\n    dims: [ {dims} ]\n  }}')
        return ",\n".join(items)

    pref = ", ".join(str(b) for b in sorted(set(preferred_batch_sizes)))
    return (
        f'name: "{name}"\n'
        f'platform: "{PLATFORMS[platform][0]}"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{block(inputs)}\n]\n"
        f"output [\n{block(outputs)}\n]\n"
        "dynamic_batching {\n"
        f"  preferred_batch_size: [ {pref} ]\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        "}\n"
        f"instance_group [\n  {{\n    count: {instance_count}\n    kind: {instance_kind}\n  }}\n]\n"
    )


def parse_config(text: str):
    """Parse ``config.pbtxt`` text into Triton's ``ModelConfig`` protobuf (``tritonclient.grpc.model_config_pb2``).

    Returns:
        The ``ModelConfig`` message.

    Raises:
        ImportError: tritonclient (with its grpc extra) is not installed.
        TritonExportError: the text is not a valid ``ModelConfig`` (unknown field, wrong type, bad enum value).
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise TritonExportError(f"config.pbtxt is not a valid Triton ModelConfig: {exc}") from exc


def validate_config(text: str, name: str, platform: str, max_batch_size: int):
    """Parse ``text`` (:func:`parse_config`) and check what Triton checks at load time that we can see here.

    Returns:
        The ``ModelConfig``, or None when tritonclient is not installed (then only logged).

    Raises:
        TritonExportError: invalid text, or name / platform / max_batch_size / inputs / outputs not as written.
    """
    try:
        config = parse_config(text)
    except ImportError:
        log.info("tritonclient is not installed: config.pbtxt of %r written without protobuf validation", name)
        return None
    problems = []
    if config.name != name:
        problems.append(f"name {config.name!r} != folder {name!r}")
    if config.platform != PLATFORMS[platform][0]:
        problems.append(f"platform {config.platform!r}")
    if config.max_batch_size != max_batch_size or max_batch_size < 1:
        problems.append(f"max_batch_size {config.max_batch_size}")
    if not config.input or not config.output:
        problems.append("no inputs or no outputs")
    for t in [*config.input, *config.output]:
        if t.data_type == 0 or any(d < -1 or d == 0 for d in t.dims):  # TYPE_INVALID, bad dims
            problems.append(f"tensor {t.name!r}: data_type {t.data_type}, dims {list(t.dims)}")
    if problems:
        raise TritonExportError(f"config.pbtxt of {name!r} does not say what was meant: {'; '.join(problems)}")
    return config


def plan_max_batch(engine_path: str | Path) -> int:
    """The largest batch a TensorRT plan takes: its optimisation profile's max, from the engine's build sidecar.

    Raises:
        TritonExportError: the sidecar is missing (the engine was not built by ``pose-export engine``).
    """
    meta = read_sidecar(engine_path)
    if meta is None or "profile" not in meta:
        raise TritonExportError(
            f"{engine_path}: no build sidecar ({Path(engine_path).name}.json) to read the optimisation profile from; "
            "build the engine with `pose-export engine` so that the profile can be checked against max_batch_size"
        )
    return int(meta["profile"][2])


def write_triton_model(
    repository: str | Path,
    name: str,
    onnx_path: str | Path,
    platform: str = "onnxruntime",
    engine_path: str | Path | None = None,
    max_batch_size: int = 32,
    preferred_batch_sizes: list[int] | None = None,
    max_queue_delay_us: int = 2000,
    instance_kind: str = "KIND_GPU",
    card_path: str | Path | None = None,
    version: int = 1,
) -> Path:
    """Add one model to a Triton repository; returns the model folder.

    Args:
        repository: the repository root (created if needed).
        name: model name (folder name), e.g. ``pose`` or ``detector``.
        onnx_path: the exported ONNX (always read for the inputs / outputs; copied for onnxruntime).
        platform: ``onnxruntime`` or ``tensorrt``.
        engine_path: the TensorRT engine built from ``onnx_path`` (required for ``tensorrt``); its
            optimisation profile's max batch must be >= ``max_batch_size`` (:func:`plan_max_batch`).
        max_batch_size, preferred_batch_sizes, max_queue_delay_us, instance_kind: see :func:`config_pbtxt`
            (preferred sizes default to the powers of two up to ``max_batch_size``, at most 4 of them).
        card_path: the pose model card to copy beside ``config.pbtxt`` as ``card.json``.
        version: model version folder.

    Raises:
        TritonExportError: see :func:`config_pbtxt`, :func:`_io_specs` and :func:`validate_config`; a missing
            file; a plan whose profile max is below ``max_batch_size``.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise TritonExportError(f"ONNX file not found: {onnx_path}")
    if platform == "tensorrt":
        if engine_path is None or not Path(engine_path).is_file():
            raise TritonExportError(f"platform 'tensorrt' needs an existing engine file, got {engine_path}")
        plan_max = plan_max_batch(engine_path)
        if plan_max < max_batch_size:
            raise TritonExportError(
                f"{engine_path} runs batches of at most {plan_max} (its profile max) but max_batch_size is "
                f"{max_batch_size}: Triton would form batches the engine rejects; rebuild it with "
                f"`pose-export engine ... --batch 1 <opt> {max_batch_size}` or pass --max-batch-size {plan_max}"
            )
    if preferred_batch_sizes is None:
        pows = [b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b <= max_batch_size]
        preferred_batch_sizes = pows[-4:]
    inputs, outputs = _io_specs(onnx_path)
    text = config_pbtxt(
        name, platform, inputs, outputs, max_batch_size, preferred_batch_sizes, max_queue_delay_us, instance_kind
    )
    validate_config(text, name, platform, max_batch_size)
    folder = Path(repository) / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    src = Path(engine_path) if platform == "tensorrt" else onnx_path
    shutil.copyfile(src, folder / str(version) / PLATFORMS[platform][1])
    (folder / "config.pbtxt").write_text(text)
    if card_path is not None:
        shutil.copyfile(card_path, folder / "card.json")
    if platform == "tensorrt":
        shutil.copyfile(sidecar_path(engine_path), folder / "engine.json")
    return folder
