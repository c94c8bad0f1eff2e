"""Inference runtimes behind one small interface; the onnxruntime one lives here.

A runtime exposes ``input_names``, ``input_shapes`` (ints for fixed dims, None for dynamic),
``input_dtypes`` (numpy dtypes), ``output_names``, ``active_providers`` and
``run(feeds) -> list[np.ndarray]``. The detector and the pose estimator only see this interface, so
the TensorRT runtime (``service/runtime_trt.py``) is a drop-in replacement chosen by settings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.errors import InferenceError, ModelLoadError, ProviderFallbackError
from service.settings import Settings

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
#: Provider order used when none is requested: the best available first.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU)

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(double)": np.float64,
    "tensor(bool)": np.bool_,
}


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
        auto = [p for p in PREFERRED_PROVIDERS if p in available and p != "TensorrtExecutionProvider"]
        return (auto or [CPU]), False
    known = set(ort.get_all_providers())
    unknown = [p for p in requested if p not in known]
    if unknown:
        raise ModelLoadError(f"unknown execution provider(s) {unknown}; onnxruntime knows {sorted(known)}")
    return list(requested), True


class OrtRuntime:
    """An onnxruntime ``InferenceSession`` with provider checks.

    Args:
        model_path: the ``.onnx`` file.
        providers: execution providers in priority order, or None for the best available.
        allow_fallback: when False (default), a requested non-CPU provider that is not active in
            the created session (onnxruntime silently falls back to CPU when CUDA libraries are
            missing) raises :class:`ProviderFallbackError`.
        intra_op_threads: onnxruntime intra-op thread count (0 = library default).

    Raises:
        ModelLoadError: the file is missing or onnxruntime cannot load it.
        ProviderFallbackError: see ``allow_fallback``.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        providers: list[str] | None = None,
        allow_fallback: bool = False,
        intra_op_threads: int = 0,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(f"model file not found: {self.model_path}")
        chosen, explicit = resolve_providers(providers)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=chosen)
        except Exception as exc:
            raise ModelLoadError(f"onnxruntime cannot load {self.model_path}: {exc}") from exc
        self.requested_providers = chosen
        self.active_providers: list[str] = list(self.session.get_providers())
        missing = [p for p in chosen if p != CPU and p not in self.active_providers]
        if missing and explicit and not allow_fallback:
            raise ProviderFallbackError(
                f"{self.model_path.name}: requested execution provider(s) {missing} are not active "
                f"(active: {self.active_providers}); install onnxruntime-gpu with matching CUDA/cuDNN, "
                "or set POSE_ALLOW_PROVIDER_FALLBACK=1 to accept CPU"
            )
        if missing:
            log.warning(
                "%s: providers %s not active, running on %s", self.model_path.name, missing, self.active_providers
            )
        log.info("%s: onnxruntime providers %s", self.model_path.name, self.active_providers)
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.input_shapes = [[d if isinstance(d, int) else None for d in i.shape] for i in inputs]
        self.input_dtypes = [np.dtype(_ORT_DTYPES.get(i.type, np.float32)) for i in inputs]
        outputs = self.session.get_outputs()
        self.output_names = [o.name for o in outputs]
        self.output_shapes = [[d if isinstance(d, int) else None for d in o.shape] for o in outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns the outputs in ``output_names`` order.

        Raises:
            InferenceError: onnxruntime rejected the feeds or failed.
        """
        try:
            return self.session.run(None, feeds)
        except Exception as exc:
            raise InferenceError(f"{self.model_path.name}: inference failed: {exc}") from exc

    def describe(self) -> dict:
        """Facts for ``/v1/models`` and logs."""
        return {
            "backend": self.backend,
            "model_file": self.model_path.name,  # no server paths in responses
            "requested_providers": self.requested_providers,
            "active_providers": self.active_providers,
            "inputs": dict(zip(self.input_names, self.input_shapes)),
            "outputs": dict(zip(self.output_names, self.output_shapes)),
        }


def create_runtime(model_path: str | Path, settings: Settings):
    """Open a model with the backend, providers, threads, device and engine cache the settings name.

    Args:
        model_path: ``.onnx`` (either backend), or a TensorRT engine file.
        settings: ``runtime``, ``providers``, ``allow_provider_fallback``, ``intra_op_threads`` (onnxruntime);
            ``device`` and ``cache.engines`` (TensorRT).

    Raises:
        ModelLoadError: unknown backend, or the backend cannot load the model.
    """
    if settings.runtime == "onnxruntime":
        return OrtRuntime(model_path, settings.providers, settings.allow_provider_fallback, settings.intra_op_threads)
    if settings.runtime == "tensorrt":
        try:
            from service.runtime_trt import TrtRuntime
        except ImportError as exc:
            raise ModelLoadError(f"the TensorRT runtime is not available: {exc}") from exc
        return TrtRuntime(model_path, device=settings.device, cache_root=settings.cache.engines)
    raise ModelLoadError(f"unknown runtime backend {settings.runtime!r}; use 'onnxruntime' or 'tensorrt'")
