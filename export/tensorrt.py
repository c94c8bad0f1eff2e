"""ONNX -> TensorRT engine with the TensorRT 10 Python API, and an engine cache.

Build (TensorRT 10 developer guide, "The Python API" / "Working with Dynamic Shapes"):
``Builder(logger)`` -> ``create_network(0)`` (explicit batch is the only mode in TensorRT 10) ->
``OnnxParser.parse_from_file`` -> ``BuilderConfig`` (workspace pool limit, ``BuilderFlag.FP16`` for
fp16) -> one optimisation profile whose batch axis runs min / opt / max and whose other axes are the
ONNX file's fixed sizes -> ``build_serialized_network`` -> bytes written to the ``.engine`` file, and a
JSON sidecar beside it (``core.cache.sidecar_path``: TensorRT version, GPU, ONNX SHA-256,
precision, builder flags, profile) that the runtime, ``find_cached_engine`` and the Triton writer read.

Precision: TensorRT enables TF32 for float32 layers by default on Ampere and later ("Reduced Precision",
``BuilderFlag.TF32``: tensor-core matmuls / convolutions with a 10-bit mantissa), so a default "fp32"
engine differs from onnxruntime's float32 by far more than fp32 rounding. An ``fp32`` engine here clears
``BuilderFlag.TF32``; ``fp16`` sets ``BuilderFlag.FP16`` and keeps TF32 for the layers left in float32.
The sidecar records both flags as built.

int8: TODO. TensorRT 10 deprecates implicit (calibrator) int8 in favour of explicit quantization
(Q/DQ nodes in the ONNX graph, e.g. from NVIDIA ModelOpt); an int8 path would quantize the ONNX
with a calibration set of real crops first and build with ``BuilderFlag.INT8``. Not implemented.

Versions (TensorRT developer guide, "Version Compatibility",
https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/advanced.html): by default an engine loads
only with the TensorRT release that built it (10.9.0.34 in the images), so a Triton ``tensorrt_plan`` repository
loads only in the Triton release that ships that TensorRT. ``EngineSpec(version_compatible=True)`` (``pose-export
engine --version-compatible``) sets ``BuilderFlag.VERSION_COMPATIBLE``: the plan then carries TensorRT's lean runtime
and loads with that release or any later 10.x ("version-compatible engines can be slower"; the runtime must allow
the embedded host code: ``IRuntime.engine_host_code_allowed``, which ``TrtRuntime`` sets for such plans, and Triton
``--backend-config=tensorrt,version-compatible=true``). It is off by default: engines built where they are served
need no compatibility, and it may cost speed. The sidecar says which case holds (``version_compatible``,
``loads_with``).

Engines are not portable between GPU models or TensorRT versions: :class:`EngineCache` keys them
by GPU name, TensorRT version and the ONNX file's SHA-256 (plus precision and profile); the layout
is defined in ``inference/runtime_trt.py`` so the service can find engines without importing export.

This module is torch-free; it needs ``tensorrt`` (and cuda-python for the GPU name) only when an
engine is built. Where TensorRT is missing every entry point raises :class:`EngineBuildError`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from core.cache import CacheLayout, check_profile, sidecar_path
from core.errors import ModelLoadError
from core.hashing import sha256_file
from core.precision import ENGINE_PRECISIONS
from inference.runtime_trt import current_gpu_name, import_tensorrt, read_sidecar

log = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    """TensorRT is missing, cannot parse the ONNX file, or failed to build an engine."""


def _tensorrt():
    try:
        return import_tensorrt()
    except ModelLoadError as exc:
        raise EngineBuildError(str(exc)) from exc


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is built with.

    Attributes:
        precision: ``fp32`` or ``fp16`` (fp16 lets TensorRT pick half-precision kernels; inputs and
            outputs keep the ONNX file's dtypes).
        profile: (min, opt, max) batch size of the optimisation profile; TensorRT tunes kernels for
            ``opt`` and accepts any batch in [min, max].
        workspace_gib: builder workspace memory pool limit in GiB.
        version_compatible: build with ``BuilderFlag.VERSION_COMPATIBLE`` (loads with later TensorRT 10.x releases
            too, see the module docstring); off by default.
    """

    precision: str = "fp16"
    profile: tuple[int, int, int] = (1, 8, 32)
    workspace_gib: float = 4.0
    version_compatible: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            raise ValueError(f"precision {self.precision!r} must be one of {list(ENGINE_PRECISIONS)} (int8: not yet)")
        object.__setattr__(self, "profile", check_profile(self.profile))
        if self.workspace_gib <= 0:
            raise ValueError(f"workspace_gib must be > 0, got {self.workspace_gib}")


def _add_batch_profile(builder, config, network, spec: EngineSpec, onnx_path: Path) -> bool:
    """Give a dynamic batch axis 0 the spec's (min, opt, max) profile; True when some input has one.

    Raises:
        EngineBuildError: an input with a dynamic axis besides batch, or a fixed batch outside the profile.
    """
    lo, opt, hi = spec.profile
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape[1:]):
            raise EngineBuildError(
                f"input {tensor.name!r} of {onnx_path.name} has dynamic axes besides batch {list(shape)}; "
                "export it with fixed spatial sizes"
            )
        if shape[0] < 0:
            dynamic = True
            rest = shape[1:]
            profile.set_shape(tensor.name, (lo, *rest), (opt, *rest), (hi, *rest))
        elif not lo <= shape[0] <= hi:
            raise EngineBuildError(
                f"input {tensor.name!r} of {onnx_path.name} has a fixed batch of {shape[0]}, outside the profile "
                f"{spec.profile}; export the ONNX with a dynamic batch axis"
            )
    if dynamic:
        config.add_optimization_profile(profile)
    return dynamic


def _load_timing_cache(config, path: Path | None):
    """Give the builder config TensorRT's timing cache from ``path`` (empty when absent): kernel timings measured by
    an earlier build on this GPU and TensorRT version are reused instead of measured again (TensorRT developer guide,
    "Timing Cache": ``IBuilderConfig.create_timing_cache`` / ``set_timing_cache``). Returns whether it held data."""
    if path is None or not hasattr(config, "create_timing_cache"):
        return False
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):  # ignore_mismatch False: a cache of another device is refused
        log.warning("TensorRT refused the timing cache %s; building without it", path)
        return False
    return bool(data)


def _save_timing_cache(config, path: Path | None) -> None:
    """Write the builder's timing cache (the loaded one plus this build's timings) back to ``path``."""
    if path is None or not hasattr(config, "get_timing_cache"):
        return
    cache = config.get_timing_cache()
    if cache is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(memoryview(cache.serialize()))
    os.replace(tmp, path)


def _set_builder_flags(trt, config, spec: EngineSpec) -> None:
    """Set the builder flags of the spec: ``FP16`` for fp16, ``TF32`` cleared for fp32 (on by default: an fp32 engine
    must compute in float32), ``VERSION_COMPATIBLE`` when asked for.

    Raises:
        EngineBuildError: this TensorRT has no such flag (``FP16``: a strongly typed only release;
            ``VERSION_COMPATIBLE``: before 8.6).
    """
    if spec.precision == "fp16":
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineBuildError(
                f"TensorRT {trt.__version__} has no BuilderFlag.FP16 (strongly typed only): export an fp16 ONNX instead"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: an fp32 engine must compute in float32
    if spec.version_compatible:
        if not hasattr(trt.BuilderFlag, "VERSION_COMPATIBLE"):
            raise EngineBuildError(f"TensorRT {trt.__version__} has no BuilderFlag.VERSION_COMPATIBLE (8.6+ has)")
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)


def _write_engine(engine_path: Path, serialized) -> None:
    """Write a serialized engine to ``engine_path`` (parent folders created) through a temporary file, atomically."""
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_suffix(engine_path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(serialized))
    os.replace(tmp, engine_path)


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    spec: EngineSpec = EngineSpec(),
    device: int = 0,
    timing_cache: str | Path | None = None,
) -> Path:
    """Build a TensorRT engine from an ONNX file and write it with its sidecar (``<engine>.json``).

    Args:
        onnx_path: ONNX model whose inputs have a dynamic (or fixed) batch axis 0 and fixed other axes.
        engine_path: where the serialized engine goes (parent folders are created).
        spec: precision, batch profile, workspace.
        device: CUDA device whose name the sidecar records.
        timing_cache: TensorRT's timing cache file, read before and written after the build (None: none; the
            :class:`EngineCache` keeps one per GPU and TensorRT version). The sidecar says whether it held timings.

    Returns:
        ``engine_path``.

    Raises:
        EngineBuildError: TensorRT missing, ONNX parse errors (all parser messages are included), an
            input with a dynamic axis other than batch, a fixed batch outside the profile, or a failed build.
    """
    trt = _tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise EngineBuildError(f"ONNX file not found: {onnx_path}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(spec.workspace_gib * (1 << 30)))
    _set_builder_flags(trt, config, spec)
    timing_cache = Path(timing_cache) if timing_cache is not None else None
    timing_reused = _load_timing_cache(config, timing_cache)
    dynamic = _add_batch_profile(builder, config, network, spec, onnx_path)
    flags = {
        name.lower(): bool(config.get_flag(getattr(trt.BuilderFlag, name)))
        for name in ("FP16", "TF32", "VERSION_COMPATIBLE")
        if hasattr(trt.BuilderFlag, name)
    }
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} ({spec})")
    _save_timing_cache(config, timing_cache)
    _write_engine(engine_path, serialized)
    try:
        gpu = current_gpu_name(device)
    except ModelLoadError:
        gpu = "unknown"
    meta = {
        "gpu": gpu,
        "tensorrt_version": trt.__version__,
        "onnx": str(onnx_path.resolve()),
        "onnx_sha256": sha256_file(onnx_path),
        "precision": spec.precision,
        **flags,
        "profile": list(spec.profile) if dynamic else [int(network.get_input(0).shape[0])] * 3,
        "workspace_gib": spec.workspace_gib,
        "build_seconds": round(time.perf_counter() - t0, 2),
        "loads_with": loads_with(trt.__version__, flags.get("version_compatible", False)),
        "timing_cache": str(timing_cache) if timing_cache is not None else None,
        "timing_cache_reused": timing_reused,
    }
    sidecar_path(engine_path).write_text(json.dumps(meta, indent=2) + "\n")
    log.info("built %s in %.1f s (%s, flags %s)", engine_path, meta["build_seconds"], spec, flags)
    return engine_path


def loads_with(trt_version: str, version_compatible: bool) -> str:
    """Which TensorRT (and Triton) releases load an engine built with ``trt_version``, in words (the sidecar's
    ``loads_with``, copied into a Triton repository as ``engine.json``)."""
    major = trt_version.split(".")[0]
    if version_compatible:
        return (
            f"TensorRT >= {trt_version}, < {int(major) + 1} on the same GPU model (version-compatible plan: the runtime "
            "must allow its host code; Triton: start tritonserver with --backend-config=tensorrt,version-compatible=true)"
        )
    return (
        f"TensorRT {trt_version} exactly, on the same GPU model (Triton: the release whose TensorRT is {trt_version}, "
        "per NVIDIA's Frameworks Support Matrix; rebuild with --version-compatible for later 10.x releases)"
    )


class EngineCache:
    """Engines keyed by GPU name, TensorRT version and ONNX SHA-256 (plus precision and profile).

    Args:
        cache: the cache layout (``Settings.cache``: engines below ``cache.engines``, named by
            ``CacheLayout.engine_path``).
        device: CUDA device whose name keys the cache.
    """

    def __init__(self, cache: CacheLayout, device: int = 0) -> None:
        self.cache = cache
        self.device = device

    def _key(self, onnx_path: str | Path) -> tuple[str, str, str]:
        """(GPU name, TensorRT version, ONNX SHA-256): what an engine is valid for."""
        trt = _tensorrt()
        try:
            gpu = current_gpu_name(self.device)
        except ModelLoadError as exc:
            raise EngineBuildError(str(exc)) from exc
        return gpu, trt.__version__, sha256_file(onnx_path)

    def get_or_build(self, onnx_path: str | Path, spec: EngineSpec = EngineSpec(), rebuild: bool = False) -> Path:
        """Return the cached engine for ``onnx_path``, building it first when absent (or when ``rebuild``).

        The engine's sidecar (:func:`build_engine`) records the full key (GPU, TensorRT version, ONNX SHA-256),
        precision, builder flags, profile and the build time in seconds.

        Raises:
            EngineBuildError: as :func:`build_engine`.
        """
        gpu, version, sha = self._key(onnx_path)
        path = self.cache.engine_path(onnx_path, sha, spec.precision, spec.profile, gpu, version)
        if spec.version_compatible:  # its own file: it may be slower than the default engine
            path = path.with_name(path.name.replace(".engine", "-vc.engine"))
        if path.is_file() and read_sidecar(path) is not None and not rebuild:
            log.info("engine cache hit: %s", path)
            return path
        return build_engine(onnx_path, path, spec, self.device, timing_cache=path.parent / "timing.cache")


def compare_engine_to_onnx(engine_path: str | Path, onnx_path: str | Path, feeds: dict, device: int = 0) -> list[float]:
    """Run the same feeds through the engine (on CUDA device ``device``) and through onnxruntime (CPU); max
    |difference| per output.

    Use it on a GPU after a build (``pose-export engine --check``) to see what fp16 costs.

    Raises:
        EngineBuildError / ModelLoadError: TensorRT, cuda-python or onnxruntime missing.
    """
    import numpy as np

    from inference.runtime import OrtRuntime
    from inference.runtime_trt import TrtRuntime

    trt_out = TrtRuntime(engine_path, device).run(feeds)
    ort_out = OrtRuntime(onnx_path, ["CPUExecutionProvider"]).run(feeds)
    return [float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) for a, b in zip(trt_out, ort_out)]
