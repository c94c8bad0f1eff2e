"""TensorRT runtime: a serialized engine behind the same interface as ``service.runtime.OrtRuntime``.

Torch-free. TensorRT (``tensorrt``, 10.x) and CUDA memory management through NVIDIA's cuda-python
bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python < 12.6) are imported lazily,
the way TensorRT's own Python samples (``samples/python/common_runtime.py``) manage device memory,
so this module imports without them and the runtime raises a clear :class:`ModelLoadError` when
constructed on a machine that lacks them.

The engine file naming inside the engine folder (``Settings.cache.engines``; shared with
``export/tensorrt.py``, which builds the engines) lives here so that the service can find a cached engine
for an ONNX file without importing the export package. Engines are not portable between GPUs or
TensorRT versions, so the cache is keyed by the GPU's name, the TensorRT version and the ONNX file's
SHA-256 (plus precision and batch profile)::

    <engines>/<gpu-name-slug>/trt-<version>/<onnx-stem>-<sha256[:16]>-<precision>-b<min>-<opt>-<max>.engine
    (and a .json sidecar with the full key)

TensorRT 10 API used: ``Runtime.deserialize_cuda_engine``, ``ICudaEngine.num_io_tensors`` /
``get_tensor_name`` / ``get_tensor_mode`` / ``get_tensor_dtype`` / ``get_tensor_shape`` /
``get_tensor_profile_shape``, ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` /
``get_tensor_shape`` / ``execute_async_v3``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

import numpy as np

from models.zoo import sha256_file
from service.errors import InferenceError, ModelLoadError

log = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
PRECISIONS = ("fp32", "fp16")

#: Install hint shown when TensorRT or cuda-python is missing.
INSTALL_HINT = (
    "install TensorRT 10 and cuda-python on a machine with an NVIDIA GPU "
    "(`pip install tensorrt-cu12 cuda-python`, or use an NVIDIA TensorRT container)"
)


def import_tensorrt():
    """Import ``tensorrt`` or raise :class:`ModelLoadError` with the install hint."""
    try:
        import tensorrt as trt
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ModelLoadError(f"TensorRT is not importable ({exc}); {INSTALL_HINT}") from exc
    return trt


def import_cudart():
    """Import cuda-python's CUDA runtime bindings (new or old module path) or raise :class:`ModelLoadError`."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise ModelLoadError(f"cuda-python is not importable ({exc}); {INSTALL_HINT}") from exc
    return cudart


def cuda_check(result):
    """Unpack a cuda-python call result ``(err, *values)``; raise :class:`InferenceError` on a CUDA error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    code = err.value if hasattr(err, "value") else int(err)
    if code != 0:
        raise InferenceError(f"CUDA error {err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


# ----------------------------------------------------------------------------------------------------
# Engine cache layout (torch-free, TensorRT-free: usable where neither is installed)


def slug(text: str) -> str:
    """A file-name-safe form of a GPU name or version: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    s = re.sub(r"[^a-z0-9.]+", "-", text.strip().lower()).strip("-")
    return s or "unknown"


def check_profile(profile: tuple[int, int, int]) -> tuple[int, int, int]:
    """Validate a (min, opt, max) batch profile.

    Raises:
        ValueError: not three integers with 1 <= min <= opt <= max.
    """
    try:
        lo, opt, hi = (int(v) for v in profile)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"batch profile must be three integers (min, opt, max), got {profile!r}") from exc
    if not 1 <= lo <= opt <= hi:
        raise ValueError(f"batch profile must satisfy 1 <= min <= opt <= max, got min={lo} opt={opt} max={hi}")
    return lo, opt, hi


def engine_cache_path(
    cache_root: str | Path,
    onnx_path: str | Path,
    onnx_sha256: str,
    precision: str,
    profile: tuple[int, int, int],
    gpu_name: str,
    trt_version: str,
) -> Path:
    """Where the engine for this (GPU, TensorRT version, ONNX file, precision, batch profile) lives.

    Raises:
        ValueError: unknown precision or invalid profile.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} must be one of {list(PRECISIONS)} (int8 is not supported yet)")
    lo, opt, hi = check_profile(profile)
    stem = Path(onnx_path).stem
    name = f"{stem}-{onnx_sha256[:16]}-{precision}-b{lo}-{opt}-{hi}.engine"
    return Path(cache_root) / slug(gpu_name) / f"trt-{slug(trt_version)}" / name


def find_cached_engine(
    onnx_path: str | Path,
    gpu_name: str,
    trt_version: str,
    cache_root: str | Path,
    precision: str | None = None,
    min_max_batch: int = 1,
) -> Path | None:
    """The newest cached engine built from this ONNX file on this GPU with this TensorRT version.

    Args:
        onnx_path: the ONNX file the engine was built from (hashed to find it).
        gpu_name, trt_version: the current machine's (see :func:`current_gpu_name`).
        cache_root: the engine folder (``Settings.cache.engines``).
        precision: ``fp32`` / ``fp16``, or None for either (fp16 preferred).
        min_max_batch: only engines whose profile allows at least this batch size.

    Returns:
        The engine path, or None when none is cached. The sidecar's full SHA-256 is checked.
    """
    root = Path(cache_root)
    sha = sha256_file(onnx_path)
    folder = root / slug(gpu_name) / f"trt-{slug(trt_version)}"
    if not folder.is_dir():
        return None
    found = []
    for p in folder.glob(f"{Path(onnx_path).stem}-{sha[:16]}-*.engine"):
        meta_path = p.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("onnx_sha256") != sha or (precision and meta.get("precision") != precision):
            continue
        if int(meta.get("profile", [1, 1, 1])[2]) < min_max_batch:
            continue
        found.append((meta.get("precision") == "fp16", p.stat().st_mtime, p))
    return max(found)[2] if found else None


def current_gpu_name(device: int = 0) -> str:
    """The CUDA device's name (``cudaGetDeviceProperties``) — part of the engine cache key.

    Raises:
        ModelLoadError: cuda-python is missing or no CUDA device is usable.
    """
    cudart = import_cudart()
    try:
        props = cuda_check(cudart.cudaGetDeviceProperties(device))
    except InferenceError as exc:
        raise ModelLoadError(f"no usable CUDA device {device}: {exc}") from exc
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    return str(name)


# ----------------------------------------------------------------------------------------------------
# The runtime


class TrtRuntime:
    """A TensorRT engine with the ``OrtRuntime`` interface.

    Args:
        model_path: a serialized engine (``.engine`` / ``.plan`` / ``.trt``), or an ``.onnx`` file whose
            engine was built into the cache by ``pose-export engine`` (looked up by GPU name, TensorRT
            version and the ONNX file's SHA-256).
        device: CUDA device index.
        cache_root: engine folder for ``.onnx`` paths (``Settings.cache.engines``); required for them.
        precision: preferred engine precision for ``.onnx`` paths (None: fp16 if cached, else fp32).

    Attributes (as ``OrtRuntime``): ``input_names``, ``input_shapes`` / ``output_shapes`` (ints for fixed
    dims, None for dynamic ones), ``input_dtypes`` (numpy dtypes), ``output_names``,
    ``active_providers`` (``["TensorRT"]``), ``profile_shapes`` (input name -> (min, opt, max) shapes).

    Raises:
        ModelLoadError: TensorRT or cuda-python is missing, the file is missing, no cached engine exists
            for an ``.onnx`` path (the message names the command that builds one), or the engine cannot
            be deserialized (built for another GPU or TensorRT version).
    """

    backend = "tensorrt"

    def __init__(
        self,
        model_path: str | Path,
        device: int = 0,
        cache_root: str | Path | None = None,
        precision: str | None = None,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        trt = import_tensorrt()
        cudart = import_cudart()
        self._trt, self._cudart = trt, cudart
        self.device = int(device)
        cuda_check(cudart.cudaSetDevice(self.device))
        self.gpu_name = current_gpu_name(self.device)
        if path.suffix.lower() == ".onnx":
            if cache_root is None:
                raise ModelLoadError(f"{path}: an .onnx path needs the engine cache folder (Settings.cache.engines)")
            engine_path = find_cached_engine(path, self.gpu_name, trt.__version__, cache_root, precision)
            if engine_path is None:
                raise ModelLoadError(
                    f"no TensorRT engine cached for {path} on {self.gpu_name!r} with TensorRT {trt.__version__} "
                    f"(looked in {cache_root}); build one with `pose-export engine {path} --precision fp16` "
                    "(same POSE_CACHE_DIR / --cache-dir as the server) or pass an .engine file"
                )
            path = engine_path
        elif path.suffix.lower() not in ENGINE_SUFFIXES:
            raise ModelLoadError(f"{path}: the TensorRT runtime takes {list(ENGINE_SUFFIXES)} or .onnx files")
        self.model_path = path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(
                f"TensorRT {trt.__version__} cannot deserialize {path}: engines only load on the GPU model and "
                f"TensorRT version they were built with (this is {self.gpu_name!r}); rebuild with `pose-export engine`"
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ModelLoadError(f"{path}: cannot create a TensorRT execution context (out of GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self.input_dtypes = [self._dtypes[n] for n in self.input_names]
        self.input_shapes = [self._shape(n) for n in self.input_names]
        self.output_shapes = [self._shape(n) for n in self.output_names]
        self.profile_shapes = {
            n: tuple(tuple(int(d) for d in s) for s in self.engine.get_tensor_profile_shape(n, 0))
            for n in self.input_names
            if -1 in tuple(self.engine.get_tensor_shape(n))
        }
        self.active_providers = ["TensorRT"]
        self.requested_providers = ["TensorRT"]
        self._stream = cuda_check(cudart.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self._lock = threading.Lock()
        log.info("%s: TensorRT %s engine on %s", path.name, trt.__version__, self.gpu_name)

    def _shape(self, name: str) -> list[int | None]:
        return [int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(name)]

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if nbytes > cap:
            if ptr:
                cuda_check(self._cudart.cudaFree(ptr))
            cap = max(nbytes, 256)
            ptr = int(cuda_check(self._cudart.cudaMalloc(cap)))
            self._buffers[name] = (ptr, cap)
        return ptr

    def _check_feed(self, name: str, arr: np.ndarray) -> np.ndarray:
        want = self._dtypes[name]
        if arr.dtype != want:
            raise InferenceError(f"input {name!r} must be {want}, got {arr.dtype}")
        fixed = self.input_shapes[self.input_names.index(name)]
        if arr.ndim != len(fixed) or any(f is not None and f != s for f, s in zip(fixed, arr.shape)):
            raise InferenceError(f"input {name!r} has shape {list(arr.shape)}, the engine takes {fixed}")
        if name in self.profile_shapes:
            lo, _, hi = self.profile_shapes[name]
            if any(s < a or s > b for s, a, b in zip(arr.shape, lo, hi)):
                raise InferenceError(
                    f"input {name!r} shape {list(arr.shape)} is outside the engine's profile {list(lo)}..{list(hi)}"
                )
        return np.ascontiguousarray(arr)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the engine; returns the outputs in ``output_names`` order (host numpy arrays).

        Raises:
            InferenceError: a feed is missing, has the wrong dtype or a shape outside the engine's
                optimisation profile, or TensorRT / CUDA failed.
        """
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InferenceError(f"missing input(s) {missing}; the engine takes {self.input_names}")
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            hosts = {}
            for name in self.input_names:
                arr = self._check_feed(name, np.asarray(feeds[name]))
                hosts[name] = arr  # keep alive until the copy is done
                if not self.context.set_input_shape(name, tuple(arr.shape)):
                    raise InferenceError(f"TensorRT rejected shape {list(arr.shape)} for input {name!r}")
                ptr = self._buffer(name, arr.nbytes)
                cuda_check(cudart.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes, h2d, self._stream))
                self.context.set_tensor_address(name, ptr)
            outputs = []
            for name in self.output_names:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise InferenceError(f"output {name!r} has an unresolved shape {list(shape)}")
                out = np.empty(shape, dtype=self._dtypes[name])
                self.context.set_tensor_address(name, self._buffer(name, out.nbytes))
                outputs.append(out)
            if not self.context.execute_async_v3(int(self._stream)):
                raise InferenceError(f"{self.model_path.name}: TensorRT execution failed")
            for name, out in zip(self.output_names, outputs):
                ptr = self._buffers[name][0]
                cuda_check(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self._stream))
            cuda_check(cudart.cudaStreamSynchronize(self._stream))
        return outputs

    def describe(self) -> dict:
        """Facts for ``/v1/models`` and logs."""
        return {
            "backend": self.backend,
            "model_file": self.model_path.name,  # no server paths in responses
            "gpu": self.gpu_name,
            "tensorrt_version": self._trt.__version__,
            "active_providers": self.active_providers,
            "inputs": dict(zip(self.input_names, self.input_shapes)),
            "outputs": dict(zip(self.output_names, self.output_shapes)),
            "profiles": {k: [list(s) for s in v] for k, v in self.profile_shapes.items()},
        }

    def close(self) -> None:
        """Free device buffers and the CUDA stream (also done at garbage collection)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr, _ in getattr(self, "_buffers", {}).values():
            cudart.cudaFree(ptr)
        self._buffers = {}
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:  # pragma: no cover - GPU only
        try:
            self.close()
        except Exception:
            pass
