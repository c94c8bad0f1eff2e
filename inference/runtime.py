"""The onnxruntime runtime, the runtime factory :func:`create_runtime`, and the host facts thread counts come from.

The runtime interface (input / output specs, precision, ``on_gpu``, max batch, ``run``, ``cancel``, ``describe``,
``close``) is ``inference.runtime_base.Runtime``; :class:`OrtRuntime` here, ``inference.runtime_ov.OvRuntime`` and
``inference.runtime_trt.TrtRuntime`` implement it, and :func:`create_runtime` picks one from the settings, so the
TensorRT and OpenVINO runtimes are drop-in replacements for onnxruntime.

GPU execution providers get their options from :class:`Settings` (:func:`provider_options`), following
onnxruntime's docs (https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html and
TensorRT-ExecutionProvider.html): the CUDA EP's ``device_id``, ``cudnn_conv_algo_search`` (HEURISTIC by
default: EXHAUSTIVE, onnxruntime's default, benchmarks every convolution again for each new input shape, i.e.
each batch size the batcher produces, under live traffic), ``use_tf32`` (off by default: onnxruntime's
default TF32 math makes "float32" convolutions differ from the CPU's by far more than fp32 rounding, as
TensorRT's TF32 flag does), ``gpu_mem_limit`` and ``arena_extend_strategy``;
the TensorRT EP's ``device_id``, ``trt_engine_cache_enable`` / ``trt_engine_cache_path`` and
``trt_timing_cache_enable`` / ``trt_timing_cache_path`` (below ``Settings.cache.ort_tensorrt``, so engines
are built once, not at every start), ``trt_fp16_enable`` and explicit ``trt_profile_min/opt/max_shapes``
(batch 1 / ``trt_opt_batch_size`` / the caller's batch size; without them the EP rebuilds its engine
whenever a larger batch arrives). onnxruntime reports what it applied through
``InferenceSession.get_provider_options()``, which :meth:`OrtRuntime.describe` shows.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.errors import InferenceError, ModelLoadError, ProviderFallbackError
from core.settings import Settings
from inference.runtime_base import Runtime

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
#: Provider order used when none is requested: the best available first.
PREFERRED_PROVIDERS = (TENSORRT, CUDA, CPU)

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(uint16)": np.uint16,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(double)": np.float64,
    "tensor(bool)": np.bool_,
}


def _cgroup_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota (cores, fractional) of this process's cgroup and its ancestors, or None when unlimited.

    cgroup v2: ``cpu.max`` = ``"<quota> <period>"`` or ``"max <period>"`` in the process's folder (``0::<path>`` in
    ``/proc/self/cgroup``) and every parent up to ``cgroup_root``; the smallest limit holds. cgroup v1 (the ``cpu``
    controller): ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: none). Kernel docs: admin-guide/cgroup-v2.rst
    ("cpu.max"), scheduler/sched-bwc.rst.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    folders: list[Path] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, rel = parts
        rel_path = rel.lstrip("/")
        if hierarchy == "0" and controllers == "":  # v2 (unified)
            base = cgroup_root / "unified" if (cgroup_root / "unified" / "cgroup.controllers").exists() else cgroup_root
            folders += [base / rel_path, *(base / p for p in Path(rel_path).parents)]
        elif "cpu" in controllers.split(","):  # v1
            base = cgroup_root / controllers
            folders += [base / rel_path, *(base / p for p in Path(rel_path).parents)]
    limits = []
    for folder in dict.fromkeys(folders):
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            if quota != "max":
                limits.append(int(quota) / int(period))
            continue
        except (OSError, ValueError):
            pass
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
            if quota > 0 and period > 0:
                limits.append(quota / period)
        except (OSError, ValueError):
            pass
    return min(limits) if limits else None


def available_cores(
    affinity: set[int] | None = None,
    cgroup_root: str | Path = "/sys/fs/cgroup",
    proc_cgroup: str | Path = "/proc/self/cgroup",
) -> int:
    """CPU cores this process may use: its CPU affinity (``os.sched_getaffinity``), capped by its cgroup's CPU quota
    (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``; a fractional quota rounds up), at least 1.

    ``os.cpu_count()`` (what onnxruntime and OpenVINO size their thread pools by) counts every core of the machine,
    also in a container limited to two of them, so two models would each start more threads than there are cores.

    Args:
        affinity: the CPU set (default ``os.sched_getaffinity(0)``, or ``os.cpu_count()`` cores where unavailable).
        cgroup_root: where the cgroup file systems are mounted.
        proc_cgroup: the process's cgroup membership file.

    Returns:
        Cores, >= 1.
    """
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            affinity = set(range(os.cpu_count() or 1))
    cores = max(1, len(affinity))
    quota = _cgroup_quota(Path(cgroup_root), Path(proc_cgroup))
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return cores


def model_threads(settings: Settings) -> int:
    """Threads each model's runtime gets: ``settings.intra_op_threads``, or when 0 :func:`available_cores`.

    On the CPU the pipeline never runs the two models at once (``inference.pipeline.make_batchers``: the batchers share a
    gate), so each may use every available core without the two oversubscribing them."""
    return settings.intra_op_threads or available_cores()


def _shape_spec(name: str, shape: list[int]) -> str:
    return f"{name}:{'x'.join(str(d) for d in shape)}"


def trt_ep_profile(settings: Settings, batch_size: int) -> tuple[int, int, int]:
    """(min, opt, max) batch of the TensorRT EP's profile: 1, ``trt_opt_batch_size`` (at most max), ``batch_size``."""
    hi = max(1, int(batch_size))
    return 1, min(settings.trt_opt_batch_size, hi), hi


def provider_options(
    settings: Settings,
    providers: list[str],
    inputs: list[tuple[str, list[int | None]]] | None = None,
    batch_size: int = 1,
) -> dict[str, dict[str, str]]:
    """onnxruntime provider options for the GPU providers in ``providers`` (see the module docstring).

    Args:
        settings: ``device``, ``cudnn_conv_algo_search``, ``gpu_tf32``, ``gpu_mem_limit``, ``gpu_arena_extend_strategy``,
            ``trt_precision``, ``trt_opt_batch_size`` and ``cache.ort_tensorrt``.
        providers: the provider names the session gets (only CUDA and TensorRT get options).
        inputs: (name, shape) of the model's inputs, shape ints for fixed dims and None for dynamic ones;
            needed for the TensorRT EP's profile shapes (every dynamic axis must be axis 0).
        batch_size: the largest batch the caller runs (the profile's max).

    Returns:
        provider name -> {option: value as a string}.

    Raises:
        ModelLoadError: the TensorRT EP is asked for and an input has a dynamic axis besides batch.
    """
    opts: dict[str, dict[str, str]] = {}
    if CUDA in providers:
        cuda = {
            "device_id": str(settings.device),
            "cudnn_conv_algo_search": settings.cudnn_conv_algo_search,
            "arena_extend_strategy": settings.gpu_arena_extend_strategy,
            "use_tf32": "1" if settings.gpu_tf32 else "0",
        }
        if settings.gpu_mem_limit:
            cuda["gpu_mem_limit"] = str(settings.gpu_mem_limit)
        opts[CUDA] = cuda
    if TENSORRT in providers:
        cache = settings.cache.ort_tensorrt(ort.__version__, _tensorrt_version())
        trt = {
            "device_id": str(settings.device),
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
            "trt_fp16_enable": "False" if settings.trt_precision == "fp32" else "True",
        }
        dynamic = [(n, s) for n, s in (inputs or []) if any(d is None for d in s)]
        if dynamic:
            bad = [n for n, s in dynamic if any(d is None for d in s[1:])]
            if bad:
                raise ModelLoadError(f"TensorRT EP profiles need fixed axes besides batch; inputs {bad} have more")
            for key, b in zip(("min", "opt", "max"), trt_ep_profile(settings, batch_size)):
                trt[f"trt_profile_{key}_shapes"] = ",".join(_shape_spec(n, [b, *s[1:]]) for n, s in dynamic)
        opts[TENSORRT] = trt
    return opts


def _tensorrt_version() -> str:
    """The TensorRT Python package's version (importing it also loads libnvinfer, which the TensorRT EP
    then finds by soname when TensorRT came from pip), or ``unknown``."""
    try:
        import tensorrt
    except Exception:  # ImportError, or OSError when its libraries do not load
        return "unknown"
    return str(getattr(tensorrt, "__version__", "unknown"))


def fallback_reason(missing: list[str]) -> str:
    """Why onnxruntime did not activate the GPU providers ``missing``, in words (for :class:`ProviderFallbackError`).

    onnxruntime only logs why (to stderr, "Failed to load library libonnxruntime_providers_cuda.so with error: ...");
    the provider library is loaded again here (``ctypes.CDLL``: the dynamic loader's message names the first
    library it cannot find, e.g. ``libcublasLt.so.12``). When it loads, the provider started and failed (no GPU
    visible, a driver older than the CUDA runtime). Never raises."""
    from inference.cuda_stack import provider_load_error

    reasons = []
    for provider in missing:
        err = provider_load_error(provider)
        reasons.append(
            f"{provider}: {err}"
            if err
            else f"{provider}: its library loads, so the provider failed to start (no GPU visible to this process, "
            "or a driver older than the CUDA runtime: see `nvidia-smi` and onnxruntime's log above)"
        )
    return "; ".join(reasons) or "no reason known"


def probe_inputs(model_path: str | Path) -> list[tuple[str, list[int | None]]]:
    """(name, shape) of a model's inputs (None for dynamic dims), from a CPU session without graph optimisation.

    Raises:
        ModelLoadError: onnxruntime cannot load the file.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(model_path), sess_options=opts, providers=[CPU])
    except Exception as exc:
        raise ModelLoadError(f"onnxruntime cannot load {model_path}: {exc}") from exc
    return [(i.name, [d if isinstance(d, int) else None for d in i.shape]) for i in sess.get_inputs()]


def resolve_providers(requested: list[str] | None, available: list[str] | None = None) -> tuple[list[str], bool]:
    """Choose execution providers.

    Args:
        requested: provider names in priority order, or None for "best available"
            (CUDA before CPU; the TensorRT EP only when asked for by name).
        available: what onnxruntime offers (default ``ort.get_available_providers()``).

    Returns:
        (providers, explicit): the list to pass to the session, and whether the caller named them
        (explicit requests are checked against what the session really activated).

    Raises:
        ModelLoadError: a requested name is not an onnxruntime provider at all.
    """
    available = list(ort.get_available_providers() if available is None else available)
    if not requested:
        auto = [p for p in PREFERRED_PROVIDERS if p in available and p != TENSORRT]
        return (auto or [CPU]), False
    known = set(ort.get_all_providers())
    unknown = [p for p in requested if p not in known]
    if unknown:
        raise ModelLoadError(f"unknown execution provider(s) {unknown}; onnxruntime knows {sorted(known)}")
    return list(requested), True


class OrtRuntime(Runtime):
    """An onnxruntime ``InferenceSession`` with provider checks (the ``inference.runtime_base.Runtime`` interface).

    Args:
        model_path: the ``.onnx`` file.
        providers: execution providers in priority order, or None for the best available.
        allow_fallback: when False (default), a non-CPU provider that is not active in the created session
            (onnxruntime silently falls back to CPU when CUDA libraries, the driver or the GPU are missing) raises
            :class:`ProviderFallbackError` naming the reason (:func:`fallback_reason`): a provider named in
            ``providers``, and as well one chosen by default (``providers`` None: onnxruntime-gpu always lists the
            CUDA provider, so a pip ``serve-gpu`` install on a host without CUDA 12 + cuDNN 9 would serve on the
            CPU with only a warning).
        intra_op_threads: onnxruntime intra-op thread count (0 = library default; ``create_runtime`` passes
            :func:`model_threads`).
        intra_op_spinning: let the intra-op threads busy-wait for work between operators and runs
            (``session.intra_op.allow_spinning``, onnxruntime's default True). ``create_runtime`` passes the setting
            ``intra_op_spinning`` (default False): in the server the spin burns the cores that decode, crop and
            answer other requests (``bench/RESULTS.md``, "third pass").
        provider_options: provider name -> options for it (:func:`provider_options`); providers not named get none.
        batch_profile: (min, opt, max) batch of the TensorRT EP's explicit profile, when one was passed.

    Attributes (besides the interface's): ``session``, ``requested_providers``, ``provider_options`` (what
    onnxruntime applied). ``precision`` is fp16 when the TensorRT EP runs with ``trt_fp16_enable``, else fp32;
    ``on_gpu`` when the CUDA or TensorRT EP is active; ``tunes_per_shape`` when the CUDA EP is (cuDNN);
    ``batch_profile`` only when the TensorRT EP is active.

    Raises:
        ModelLoadError: the file is missing or onnxruntime cannot load it (bad provider options included).
        ProviderFallbackError: see ``allow_fallback``.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        providers: list[str] | None = None,
        allow_fallback: bool = False,
        intra_op_threads: int = 0,
        provider_options: dict[str, dict[str, str]] | None = None,
        batch_profile: tuple[int, int, int] | None = None,
        intra_op_spinning: bool = True,
    ) -> None:
        super().__init__(model_path)
        chosen, explicit = resolve_providers(providers)
        options = provider_options or {}
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if intra_op_spinning else "0")
        opts.log_severity_level = 3
        if CUDA in chosen or TENSORRT in chosen:
            from inference.cuda_stack import preload_pip_cuda_libraries

            preload_pip_cuda_libraries()
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), sess_options=opts, providers=[(p, options.get(p, {})) for p in chosen]
            )
        except Exception as exc:
            raise ModelLoadError(f"onnxruntime cannot load {self.model_path}: {exc}") from exc
        self.requested_providers = chosen
        self.active_providers: list[str] = list(self.session.get_providers())
        missing = [p for p in chosen if p != CPU and p not in self.active_providers]
        if missing and not allow_fallback:
            # named by the caller, or chosen by default because onnxruntime-gpu lists it (it always does, whether or
            # not CUDA, cuDNN and a GPU are there): either way a CPU session is not what was asked for
            how = "requested" if explicit else "chosen by default (onnxruntime-gpu is installed)"
            raise ProviderFallbackError(
                f"{self.model_path.name}: execution provider(s) {missing} {how} are not active "
                f"(active: {self.active_providers}); {fallback_reason(missing)}. Fix the CUDA stack "
                "(`python -m inference.cuda_stack --session`; install with `-c docker/constraints/serve-gpu.txt`, "
                "or `pip install 'onnxruntime-gpu[cuda,cudnn]'`: its CUDA / cuDNN wheels are preloaded), run on "
                "the CPU on purpose with POSE_PROVIDERS=CPUExecutionProvider, or accept the fallback with "
                "POSE_ALLOW_PROVIDER_FALLBACK=1"
            )
        if missing:
            log.warning(
                "%s: providers %s not active, running on %s", self.model_path.name, missing, self.active_providers
            )
        log.info("%s: onnxruntime providers %s", self.model_path.name, self.active_providers)
        self.batch_profile = batch_profile if TENSORRT in self.active_providers else None
        self.on_gpu = CUDA in self.active_providers or TENSORRT in self.active_providers
        self.tunes_per_shape = CUDA in self.active_providers
        trt_fp16 = str(self.provider_options.get(TENSORRT, {}).get("trt_fp16_enable", "")).lower() in ("1", "true")
        self.precision = "fp16" if TENSORRT in self.active_providers and trt_fp16 else "fp32"
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.input_shapes = [[d if isinstance(d, int) else None for d in i.shape] for i in inputs]
        self.input_dtypes = [np.dtype(_ORT_DTYPES.get(i.type, np.float32)) for i in inputs]
        outputs = self.session.get_outputs()
        self._runs: set[ort.RunOptions] = set()
        self._runs_lock = threading.Lock()
        self.output_names = [o.name for o in outputs]
        self.output_shapes = [[d if isinstance(d, int) else None for d in o.shape] for o in outputs]

    @property
    def provider_options(self) -> dict[str, dict[str, str]]:
        """What onnxruntime applied, per active provider (``InferenceSession.get_provider_options()``)."""
        return dict(self.session.get_provider_options())

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns the outputs in ``output_names`` order.

        Raises:
            InferenceError: bad feeds (``Runtime.check_feeds``), onnxruntime failed, or :meth:`cancel` stopped it.
        """
        feeds = self.check_feeds(feeds)
        options = ort.RunOptions()
        options.log_severity_level = 3  # a cancelled run is reported by the caller, not logged by onnxruntime
        with self._runs_lock:
            self._runs.add(options)
        try:
            return self.session.run(None, feeds, options)
        except Exception as exc:
            raise InferenceError(f"{self.model_path.name}: inference failed: {exc}") from exc
        finally:
            with self._runs_lock:
                self._runs.discard(options)

    def cancel(self) -> int:
        """Stop the calls of :meth:`run` in flight (``RunOptions.terminate``: onnxruntime checks it between nodes,
        also inside a ``Loop``'s body); each then raises ``InferenceError``. Returns how many were running."""
        with self._runs_lock:
            for options in self._runs:
                options.terminate = True
            return len(self._runs)

    def describe(self) -> dict:
        """Facts for ``/v1/models`` and logs: the interface's, the providers asked for and the options applied."""
        return {
            **super().describe(),
            "requested_providers": self.requested_providers,
            "provider_options": self.provider_options,
        }


def create_runtime(model_path: str | Path, settings: Settings, batch_size: int = 1) -> Runtime:
    """Open a model with the backend, providers, provider options, threads, device and engine cache the settings name.

    Args:
        model_path: ``.onnx`` (either backend), or a TensorRT engine file.
        settings: ``runtime``, ``providers``, ``allow_provider_fallback``, ``intra_op_threads`` (:func:`model_threads`),
            ``intra_op_spinning``
            and the GPU options of :func:`provider_options` (onnxruntime); ``device``, ``trt_precision`` and
            ``cache.engines`` (TensorRT); ``ov_device``, ``precision``, ``allow_unsupported_precision``,
            ``cache.openvino`` and ``cache.int8`` (OpenVINO: with ``precision`` int8 an fp32 model file is replaced
            by its quantisation from the cache, ``inference.runtime_ov.int8_model_path``).
        batch_size: the largest batch the caller will run (the pose model: ``max_batch_size``; the detector: 1):
            the TensorRT runtime prefers a cached engine whose profile covers it, the TensorRT EP builds its
            profile up to it.

    Returns:
        The runtime (``inference.runtime_base.Runtime``): the only way consumers open one.

    Raises:
        ModelLoadError: unknown backend, the model file is missing or unreadable, or the backend cannot load it.
        ProviderFallbackError: onnxruntime did not activate a provider the settings name (see :class:`OrtRuntime`).
    """
    if settings.runtime == "onnxruntime":
        chosen, _ = resolve_providers(settings.providers)
        inputs = probe_inputs(model_path) if TENSORRT in chosen and Path(model_path).is_file() else None
        options = provider_options(settings, chosen, inputs, batch_size)
        if TENSORRT in options:
            Path(options[TENSORRT]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        return OrtRuntime(
            model_path,
            settings.providers,
            settings.allow_provider_fallback,
            model_threads(settings),
            options,
            trt_ep_profile(settings, batch_size) if inputs and any(None in s for _, s in inputs) else None,
            intra_op_spinning=settings.intra_op_spinning,
        )
    if settings.runtime == "tensorrt":
        try:
            from inference.runtime_trt import TrtRuntime
        except ImportError as exc:
            raise ModelLoadError(f"the TensorRT runtime is not available: {exc}") from exc
        precision = None if settings.trt_precision == "auto" else settings.trt_precision
        return TrtRuntime(
            model_path,
            device=settings.device,
            cache=settings.cache,
            precision=precision,
            batch_size=batch_size,
        )
    if settings.runtime == "openvino":
        from inference.runtime_ov import OvRuntime, import_openvino, int8_model_path, is_quantized_ir

        import_openvino()
        path = Path(model_path)
        if settings.precision == "int8" and not is_quantized_ir(path):
            path = int8_model_path(path, settings.cache)
        return OvRuntime(
            path,
            device=settings.ov_device,
            precision=settings.precision,
            threads=model_threads(settings),
            cache_dir=settings.cache.openvino(settings.ov_device),
            allow_unsupported=settings.allow_unsupported_precision,
        )
    raise ModelLoadError(f"unknown runtime backend {settings.runtime!r}; use 'onnxruntime', 'tensorrt' or 'openvino'")
