"""OpenVINO runtime: an ONNX file (or an ``.xml`` / ``.bin`` IR) behind the interface ``inference.runtime_base.Runtime``.

Torch-free. ``openvino`` (the ``openvino`` extra) is imported when a runtime is opened, so this module imports
without it. OpenVINO API used (docs.openvino.ai, "Integrate OpenVINO with your application", "CPU Device",
"Model Caching Overview", "Query Device Properties", "Dynamic Shapes"):

* ``Core.read_model`` reads our exported ONNX directly (no conversion step) or an IR; a dynamic batch axis
  stays dynamic (``PartialShape``), and the CPU plugin runs every batch size the batcher forms.
* ``Core.compile_model(model, device, config)`` with ``INFERENCE_PRECISION_HINT`` (``ov::hint::inference_precision``:
  ``f32`` or ``bf16``; always set, because on a CPU with BF16 the CPU plugin's default *is* bf16, so fp32 must be
  asked for), ``PERFORMANCE_HINT`` ``LATENCY`` (one stream: a batch uses every thread) and ``INFERENCE_NUM_THREADS``
  (``inference.runtime.model_threads``: the cores available to the process).
* ``CACHE_DIR`` (``Core.set_property``): compiled blobs are kept in ``Settings.cache.openvino(device)`` and imported
  at the next start instead of compiled again (OpenVINO keys them by model, configuration and version).
* ``Core.get_property(device, "OPTIMIZATION_CAPABILITIES")``: ``BF16`` must be listed for ``bf16`` (else the CPU
  plugin would emulate it, slowly), ``INT8`` for ``int8``; on x86 CPUs int8 also wants VNNI (``/proc/cpuinfo``
  ``avx512_vnni`` / ``avx_vnni`` / ``amx_int8``): without it the CPU plugin's u8 x i8 products can saturate and lose
  accuracy (the "saturation (overflow) issue" of the CPU Device page). Either refusal can be overridden
  (``Settings.allow_unsupported_precision``).
* ``CompiledModel.get_property`` reports what the plugin applied (``INFERENCE_PRECISION_HINT``, ``EXECUTION_DEVICES``,
  ``INFERENCE_NUM_THREADS``), which :meth:`OvRuntime.describe` shows in ``/v1/models`` and the log.

int8 models are the NNCF quantisations ``pose-export quantize`` writes into ``Settings.cache.int8(<sha256 of the
fp32 model file>)``; an int8 model holds ``FakeQuantize`` operations, which is how :func:`is_quantized` tells one.
An int8 model is never run under another precision setting, and ``int8`` never runs an fp32 model: reduced
precision is never silent.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from core.cache import IR_SUFFIX
from core.errors import InferenceError, ModelLoadError
from core.hashing import sha256_file
from core.precision import OPENVINO_PRECISIONS
from inference.runtime_base import Runtime
from models.card import ModelCard, ModelCardError

log = logging.getLogger(__name__)

#: Settings.precision -> ``INFERENCE_PRECISION_HINT`` (int8 models compute their unquantised parts in f32).
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: CPU flags that give the CPU plugin's int8 kernels their u8 x i8 dot products without saturation.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
INSTALL_HINT = "install the openvino extra: pip install 'poseserve[openvino]'"


def import_openvino():
    """Import ``openvino`` or raise :class:`ModelLoadError` with the install hint."""
    try:
        import openvino
    except ImportError as exc:
        raise ModelLoadError(f"the OpenVINO runtime is not installed ({exc}); {INSTALL_HINT}") from exc
    return openvino


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (empty when unreadable: not Linux x86)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def check_precision(
    precision: str, device: str, capabilities: list[str], flags: set[str], allow_unsupported: bool = False
) -> str | None:
    """Whether ``device`` runs ``precision`` natively.

    Args:
        precision: ``fp32``, ``bf16`` or ``int8``.
        device: the OpenVINO device name (``CPU``, ``GPU``, ...).
        capabilities: the device's ``OPTIMIZATION_CAPABILITIES`` (``FP32``, ``BF16``, ``INT8``, ...).
        flags: the CPU's flags (:func:`cpu_flags`; only read for ``int8`` on ``CPU``).
        allow_unsupported: return the problem instead of raising.

    Returns:
        None when supported; the problem (one sentence) when not and ``allow_unsupported``.

    Raises:
        ModelLoadError: unknown precision, or an unsupported one without ``allow_unsupported`` (the message names the
            missing capability and the setting that overrides the refusal).
    """
    if precision not in OPENVINO_PRECISIONS:
        raise ModelLoadError(f"precision {precision!r} must be one of {list(OPENVINO_PRECISIONS)}")
    problem = None
    caps = {c.upper() for c in capabilities}
    if precision == "bf16" and "BF16" not in caps:
        problem = (
            f"OpenVINO device {device} has no native BF16 (OPTIMIZATION_CAPABILITIES {sorted(caps)}): bf16 would be "
            "emulated, slower than fp32"
        )
    elif precision == "int8" and "INT8" not in caps:
        problem = f"OpenVINO device {device} has no INT8 capability (OPTIMIZATION_CAPABILITIES {sorted(caps)})"
    elif precision == "int8" and device.upper().startswith("CPU") and flags and not flags & set(VNNI_FLAGS):
        problem = (
            f"this CPU has no VNNI ({'/'.join(VNNI_FLAGS)} not in its flags): OpenVINO's int8 kernels can saturate "
            "and lose accuracy, and gain little speed"
        )
    if problem and not allow_unsupported:
        raise ModelLoadError(f"{problem}; use POSE_PRECISION=fp32, or set POSE_ALLOW_UNSUPPORTED_PRECISION=1")
    return problem


def is_quantized(model) -> bool:
    """Whether an ``openvino.Model`` holds quantisation (``FakeQuantize`` operations: NNCF's int8 models)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def is_quantized_ir(path: str | Path) -> bool:
    """Whether a file is an OpenVINO IR ``.xml`` holding ``FakeQuantize`` layers (read as text; no OpenVINO needed)."""
    p = Path(path)
    try:
        return p.suffix == IR_SUFFIX and b'type="FakeQuantize"' in p.read_bytes()
    except OSError:
        return False


def int8_model_path(model_path: str | Path, cache) -> Path:
    """Where ``pose-export quantize`` put the int8 model of an fp32 model file: ``cache.int8(sha256)/<stem>.xml``.

    Args:
        model_path: the fp32 model file (ONNX or IR ``.xml``) as configured.
        cache: ``Settings.cache`` (a ``core.cache.CacheLayout``).

    Raises:
        ModelLoadError: the file is missing, or it has no int8 model in the cache (the message names the command).
    """
    path = Path(model_path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    target = cache.int8_model(path, sha256_file(path))
    if not target.is_file():
        raise ModelLoadError(
            f"POSE_PRECISION=int8: no int8 model of {path.name} in the cache ({target.parent}); make it with "
            "`pose-export quantize --pose CARD --detector DETECTOR.onnx --calib-ann ANN --calib-images DIR`"
        )
    return target


def resolve_card_precision(card: ModelCard, precision: str, cache) -> ModelCard:
    """The card to serve under ``precision``: the int8 card ``pose-export quantize`` wrote for ``int8``, else ``card``.

    Raises:
        ModelLoadError: ``int8`` and no int8 card in the cache; an int8 card under another precision (never silent);
            an unreadable int8 card.
    """
    if card.precision == "int8":
        if precision != "int8":
            raise ModelLoadError(
                f"card {card.name!r} is an int8 model; serve it with POSE_PRECISION=int8 (it is {precision})"
            )
        return card
    if precision != "int8":
        return card
    path = int8_model_path(card.model_path(), cache).with_suffix(".json")
    try:
        return ModelCard.load(path)
    except ModelCardError as exc:
        raise ModelLoadError(f"int8 card of {card.name!r}: {exc}") from exc


def _dims(partial_shape) -> list[int | None]:
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OvRuntime(Runtime):
    """An OpenVINO compiled model with the runtime interface (``inference.runtime_base.Runtime``).

    Args:
        model_path: ``.onnx`` or ``.xml`` (its ``.bin`` beside it).
        device: OpenVINO device (``CPU``).
        precision: ``fp32``, ``bf16`` or ``int8`` (an int8 model: one holding ``FakeQuantize``; see the module
            docstring for what each sets).
        threads: ``INFERENCE_NUM_THREADS`` (0: OpenVINO's default, every core of the machine).
        cache_dir: OpenVINO ``CACHE_DIR`` for compiled blobs (created), or None for no cache.
        allow_unsupported: run bf16 / int8 on a device without native support (:func:`check_precision`).

    Attributes (besides the interface's): ``device``, ``execution_devices``, ``inference_precision`` (what the plugin
        applied: ``f32`` / ``bf16``), ``quantized`` (bool), ``precision_problem``; ``active_providers`` is
        ``["OpenVINO:<execution device>", ...]``, ``precision`` the setting, ``on_gpu`` whether an execution device is
        a GPU, ``max_batch_size`` None (any batch).

    Raises:
        ModelLoadError: openvino missing, the file missing or unreadable, an unsupported precision (see
            :func:`check_precision`), an int8 model under fp32 / bf16 or an fp32 model under int8.
    """

    backend = "openvino"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "CPU",
        precision: str = "fp32",
        threads: int = 0,
        cache_dir: str | Path | None = None,
        allow_unsupported: bool = False,
    ) -> None:
        ov = import_openvino()
        super().__init__(model_path)
        if self.model_path.suffix == IR_SUFFIX and not self.model_path.with_suffix(".bin").is_file():
            raise ModelLoadError(f"OpenVINO IR {self.model_path.name} has no {self.model_path.stem}.bin beside it")
        self.device, self.precision, self.threads = device, precision, int(threads)
        core = ov.Core()
        try:
            caps = list(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
        except Exception as exc:  # unknown device
            raise ModelLoadError(
                f"OpenVINO device {device!r} is not available ({exc}); have {core.available_devices}"
            ) from exc
        self.precision_problem = check_precision(precision, device, caps, cpu_flags(), allow_unsupported)
        try:
            model = core.read_model(str(self.model_path))
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO cannot read {self.model_path}: {exc}") from exc
        self.quantized = is_quantized(model)
        if self.quantized and precision != "int8":
            raise ModelLoadError(f"{self.model_path.name} is an int8 model; serve it with POSE_PRECISION=int8")
        if precision == "int8" and not self.quantized:
            raise ModelLoadError(
                f"POSE_PRECISION=int8 needs a quantised model (pose-export quantize); {self.model_path.name} has no "
                "quantisation"
            )
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(self.cache_dir)})
        config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            self.compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise ModelLoadError(f"OpenVINO cannot compile {self.model_path.name} for {device}: {exc}") from exc
        applied = self.compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type: f32 / bf16
        self.inference_precision = str(getattr(applied, "get_type_name", lambda: applied)())
        self.execution_devices = list(self.compiled.get_property("EXECUTION_DEVICES"))
        self.applied_threads = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        self.device_name = str(core.get_property(device, "FULL_DEVICE_NAME"))
        self.active_providers = [f"OpenVINO:{d}" for d in self.execution_devices]
        self.on_gpu = any(d.upper().startswith("GPU") for d in self.execution_devices)
        self.input_names = [i.get_any_name() for i in model.inputs]
        self.input_shapes = [_dims(i.get_partial_shape()) for i in model.inputs]
        self.input_dtypes = [np.dtype(i.get_element_type().to_dtype()) for i in model.inputs]
        self.output_names = [o.get_any_name() for o in model.outputs]
        self.output_shapes = [_dims(o.get_partial_shape()) for o in model.outputs]
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()
        self._running = False
        log.info(
            "%s: OpenVINO %s on %s (%s), precision %s (inference precision %s%s), %d threads, cache %s",
            self.model_path.name,
            ov.__version__.split("-")[0],
            ",".join(self.execution_devices),
            self.device_name,
            precision,
            self.inference_precision,
            ", int8 quantised" if self.quantized else "",
            self.applied_threads,
            self.cache_dir,
        )
        if self.precision_problem:
            log.warning(
                "%s: %s (allowed by POSE_ALLOW_UNSUPPORTED_PRECISION)", self.model_path.name, self.precision_problem
            )

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; returns the outputs (numpy copies) in ``output_names`` order.

        Raises:
            InferenceError: bad feeds (``Runtime.check_feeds``), OpenVINO failed, or :meth:`cancel` stopped it.
        """
        feeds = self.check_feeds(feeds)
        try:
            with self._lock:  # one infer request: calls are serialised (the batchers make them one at a time anyway)
                self._running = True
                try:
                    result = self._request.infer(feeds)
                finally:
                    self._running = False
                return [np.array(result[o]) for o in self.compiled.outputs]
        except Exception as exc:
            raise InferenceError(f"{self.model_path.name}: inference failed: {exc}") from exc

    def cancel(self) -> int:
        """Stop the call of :meth:`run` in flight (``InferRequest.cancel``; it then raises ``InferenceError``).
        Returns 1 when one was running, else 0."""
        if not self._running:
            return 0
        self._request.cancel()
        return 1

    def describe(self) -> dict:
        """Facts for ``/v1/models`` and logs: the interface's (``precision``: the one asked for), device, the precision
        the plugin applied, threads, cache."""
        return {
            **super().describe(),
            "device": self.device,
            "device_name": self.device_name,
            "inference_precision": self.inference_precision,
            "quantized_int8": self.quantized,
            "precision_warning": self.precision_problem,
            "threads": self.applied_threads,
            "compiled_model_cache": self.cache_dir is not None,
        }
