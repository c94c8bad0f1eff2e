"""TensorRT runtime: a serialized engine behind the runtime interface ``inference.runtime_base.Runtime``.

Torch-free. TensorRT (``tensorrt``, 10.x) and CUDA memory management through NVIDIA's cuda-python
bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python < 12.6) are imported lazily,
the way TensorRT's own Python samples (``samples/python/common_runtime.py``) manage device memory,
so this module imports without them and the runtime raises a clear :class:`ModelLoadError` when
constructed on a machine that lacks them.

The engine file naming inside the engine folder (``Settings.cache.engines``) is ``core.cache.CacheLayout``'s,
shared with ``export/tensorrt.py``, which builds the engines; :func:`find_cached_engine` here finds a cached engine
for an ONNX file without importing the export package. Engines are not portable between GPUs or
TensorRT versions, so the cache is keyed by the GPU's name, the TensorRT version and the ONNX file's
SHA-256 (plus precision and batch profile)::

    <engines>/<gpu-name-slug>/trt-<version>/<onnx-stem>-<sha256[:16]>-<precision>-b<min>-<opt>-<max>.engine
    (and its sidecar ``<engine file>.json``: the full key, precision, builder flags, batch profile)

Threads and memory: a CUDA context's current device is per host thread, and ``run()`` is called from the
batcher and request threads, not the thread that loaded the engine, so ``run()`` selects the device
(``cudaSetDevice``) under the runtime's lock before it touches memory or the execution context. Host
copies go through page-locked buffers (``cudaMallocHost``): ``cudaMemcpyAsync`` from pageable memory is
staged and synchronous (CUDA C++ Programming Guide, "Page-Locked Host Memory"; TensorRT's
``samples/python/common_runtime.py`` allocates its host buffers the same way).

TensorRT 10 API used: ``Runtime.deserialize_cuda_engine``, ``ICudaEngine.num_io_tensors`` /
``get_tensor_name`` / ``get_tensor_mode`` / ``get_tensor_dtype`` / ``get_tensor_shape`` /
``get_tensor_profile_shape``, ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` (both return
False on failure; every return is checked) / ``get_tensor_shape`` / ``execute_async_v3``; ``tensorrt.nptype``
(raises ``TypeError`` for types numpy lacks: BF16, FP8, INT4). CUDA runtime API: ``cudaSetDevice``,
``cudaMalloc`` / ``cudaFree``, ``cudaMallocHost`` / ``cudaFreeHost``, ``cudaMemcpyAsync``,
``cudaStreamCreate`` / ``cudaStreamSynchronize``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import threading
from pathlib import Path

import numpy as np

from core.cache import CacheLayout, sidecar_path
from core.errors import InferenceError, ModelLoadError
from core.hashing import sha256_file
from inference.runtime_base import Runtime

log = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")

#: Install hint shown when TensorRT or cuda-python is missing.
INSTALL_HINT = (
    "install TensorRT 10 and cuda-python on a machine with an NVIDIA GPU: `pip install 'poseserve[serve-gpu,tensorrt]' "
    "-c docker/constraints/serve-gpu.txt --extra-index-url https://pypi.nvidia.com`, or in Docker the serve image "
    "built with WITH_TENSORRT=1 (`WITH_TENSORRT=1 docker compose -f docker/compose.yaml --profile gpu build`)"
)
#: How to build the engines the TensorRT runtime serves, where the server runs (said when none is cached).
ENGINE_HINT = (
    "build it with `pose-export engine {onnx}` (same POSE_CACHE_DIR / --cache-dir as the server; no torch needed, the "
    "tensorrt extra suffices), or with docker compose: `WITH_TENSORRT=1 docker compose -f docker/compose.yaml run --rm "
    "engines` (the served models' engines into the models volume; `pose-serve` also builds missing ones at start-up "
    "unless POSE_BUILD_ENGINES=false)"
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


def read_sidecar(engine_path: str | Path) -> dict | None:
    """The engine's sidecar (written by ``export.tensorrt.build_engine``: ``tensorrt_version``, ``gpu``,
    ``onnx_sha256``, ``precision``, ``tf32``, ``profile`` [min, opt, max], ...), or None when absent or unreadable."""
    try:
        return json.loads(sidecar_path(engine_path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def find_cached_engine(
    onnx_path: str | Path,
    gpu_name: str,
    trt_version: str,
    cache: CacheLayout,
    precision: str | None = None,
    batch_size: int = 1,
) -> Path | None:
    """The cached engine built from this ONNX file on this GPU with this TensorRT version that best serves
    batches of 1..``batch_size``.

    Args:
        onnx_path: the ONNX file the engine was built from (hashed to find it).
        gpu_name, trt_version: the current machine's (see :func:`current_gpu_name`).
        cache: the cache layout (``Settings.cache``; engines below ``cache.engine_folder``).
        precision: ``fp32`` / ``fp16``, or None for either (fp16 preferred).
        batch_size: the largest batch the caller will run (the service's ``max_batch_size``).

    Returns:
        The engine path, or None when none is cached. Engines whose profile covers 1..``batch_size`` come
        first (fp16 before fp32 when ``precision`` is None, then the newest); without one, the engine with
        the largest profile max (the caller then clamps its batches to it, see ``PoseEstimator``). Engines whose
        profile min is above 1 are skipped (a single crop could not run). The sidecar's full SHA-256 is checked.
    """
    sha = sha256_file(onnx_path)
    folder = cache.engine_folder(gpu_name, trt_version)
    if not folder.is_dir():
        return None
    found = []
    for p in folder.glob(cache.engine_glob(onnx_path, sha)):
        meta = read_sidecar(p)
        if meta is None or meta.get("onnx_sha256") != sha or (precision and meta.get("precision") != precision):
            continue
        lo, _, hi = (int(v) for v in meta.get("profile", [1, 1, 1]))
        if lo > 1:
            continue
        fp16 = meta.get("precision") == "fp16"
        mtime = p.stat().st_mtime
        # covering engines: fp16 first, then the newest; otherwise the largest max first
        found.append(((1, fp16, 0, mtime) if hi >= batch_size else (0, hi, fp16, mtime), hi, p))
    if not found:
        return None
    rank, hi, path = max(found)
    if not rank[0]:
        log.warning("no cached engine for %s covers batch %d; the largest has max batch %d", onnx_path, batch_size, hi)
    return path


def tensor_dtype(trt, trt_dtype, name: str) -> np.dtype:
    """The numpy dtype of an engine I/O tensor (``tensorrt.nptype``).

    Raises:
        ModelLoadError: naming the tensor, for types numpy lacks (BF16, FP8, INT4): such an engine's inputs and
            outputs cannot be fed or read from numpy; export it with float32 / float16 I/O instead.
    """
    try:
        return np.dtype(trt.nptype(trt_dtype))
    except (TypeError, KeyError) as exc:
        raise ModelLoadError(
            f"engine tensor {name!r} has TensorRT type {trt_dtype}, which has no numpy equivalent (BF16 / FP8 / INT4 "
            "inputs and outputs are not supported): build the engine from an ONNX file with float32 or float16 I/O"
        ) from exc


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


class TrtRuntime(Runtime):
    """A TensorRT engine with the runtime interface (``inference.runtime_base.Runtime``).

    Args:
        model_path: a serialized engine (``.engine`` / ``.plan`` / ``.trt``), or an ``.onnx`` file whose
            engine was built into the cache by ``pose-export engine`` (looked up by GPU name, TensorRT
            version and the ONNX file's SHA-256, see :func:`find_cached_engine`).
        device: CUDA device index; selected in the constructor and again in every :meth:`run`.
        cache: the cache layout for ``.onnx`` paths (``Settings.cache``: engines in ``cache.engines``); required for
            them.
        precision: preferred engine precision for ``.onnx`` paths (None: fp16 if cached, else fp32).
        batch_size: the largest batch the caller will run: a cached engine whose profile covers it is preferred.

    Attributes (besides the interface's): ``device``, ``gpu_name``, ``engine_meta`` (the sidecar, if any),
    ``profile_shapes`` (input name -> (min, opt, max) shapes); ``active_providers`` is ``["TensorRT"]``,
    ``precision`` the sidecar's (fp32 / fp16; fp32 for an engine without one), ``on_gpu`` True,
    ``batch_profile`` / ``max_batch_size`` the batch axis' range every dynamic input accepts.

    Raises:
        ModelLoadError: TensorRT or cuda-python is missing, the file is missing, no cached engine exists
            for an ``.onnx`` path (the message names the command that builds one), the engine cannot
            be deserialized (built for another GPU or TensorRT version), or an I/O tensor has a type numpy
            lacks (BF16, FP8; named in the message).
    """

    backend = "tensorrt"
    on_gpu = True

    def __init__(
        self,
        model_path: str | Path,
        device: int = 0,
        cache: CacheLayout | None = None,
        precision: str | None = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(model_path)
        path = self.model_path
        trt = import_tensorrt()
        cudart = import_cudart()
        self._trt, self._cudart = trt, cudart
        self.device = int(device)
        self._device_buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, capacity in bytes)
        self._host_buffers: dict[str, tuple[int, int]] = {}  # name -> (page-locked host pointer, capacity)
        self._stream = None
        try:
            cuda_check(cudart.cudaSetDevice(self.device))
        except InferenceError as exc:
            raise ModelLoadError(f"cannot use CUDA device {self.device}: {exc}") from exc
        self.gpu_name = current_gpu_name(self.device)
        if path.suffix.lower() == ".onnx":
            if cache is None:
                raise ModelLoadError(f"{path}: an .onnx path needs the engine cache folder (Settings.cache.engines)")
            engine_path = find_cached_engine(path, self.gpu_name, trt.__version__, cache, precision, batch_size)
            if engine_path is None:
                raise ModelLoadError(
                    f"no TensorRT engine cached for {path} on {self.gpu_name!r} with TensorRT {trt.__version__} "
                    f"(looked in {cache.engines}); " + ENGINE_HINT.format(onnx=path) + ", or pass an .engine file"
                )
            path = engine_path
        elif path.suffix.lower() not in ENGINE_SUFFIXES:
            raise ModelLoadError(f"{path}: the TensorRT runtime takes {list(ENGINE_SUFFIXES)} or .onnx files")
        self.model_path = path
        self.engine_meta = read_sidecar(path) or {}
        self.precision = self.engine_meta.get("precision") or "fp32"
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if self.engine_meta.get("version_compatible"):
            # a version-compatible plan embeds TensorRT's lean runtime, host code TensorRT runs only when allowed
            # (TensorRT developer guide, "Version Compatibility": IRuntime.engine_host_code_allowed)
            self._runtime.engine_host_code_allowed = True
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise ModelLoadError(
                f"TensorRT {trt.__version__} cannot deserialize {path}: engines only load on the GPU model and "
                f"TensorRT version they were built with (this is {self.gpu_name!r}); rebuild with `pose-export engine`"
            )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._dtypes = {n: tensor_dtype(trt, self.engine.get_tensor_dtype(n), n) for n in names}
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ModelLoadError(f"{path}: cannot create a TensorRT execution context (out of GPU memory?)")
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
        self._lock = threading.Lock()
        log.info("%s: TensorRT %s engine on %s (device %d)", path.name, trt.__version__, self.gpu_name, self.device)

    def _shape(self, name: str) -> list[int | None]:
        return [int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(name)]

    @property
    def batch_profile(self) -> tuple[int, int, int] | None:
        """(min, opt, max) of batch axis 0 that every dynamic input accepts; None for a fixed-shape engine."""
        if not self.profile_shapes:
            return None
        lo = max(p[0][0] for p in self.profile_shapes.values())
        hi = min(p[2][0] for p in self.profile_shapes.values())
        opt = min(max(p[1][0] for p in self.profile_shapes.values()), hi)
        return lo, opt, hi

    def _alloc(self, pool: dict, name: str, nbytes: int, malloc, free) -> int:
        ptr, cap = pool.get(name, (0, 0))
        if nbytes > cap:
            if ptr:
                cuda_check(free(ptr))
            cap = max(nbytes, 256)
            ptr = int(cuda_check(malloc(cap)))
            pool[name] = (ptr, cap)
        return ptr

    def _device_buffer(self, name: str, nbytes: int) -> int:
        return self._alloc(self._device_buffers, name, nbytes, self._cudart.cudaMalloc, self._cudart.cudaFree)

    def _host_buffer(self, name: str, nbytes: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """A numpy view of the page-locked host buffer of tensor ``name`` (grown as needed)."""
        ptr = self._alloc(self._host_buffers, name, nbytes, self._cudart.cudaMallocHost, self._cudart.cudaFreeHost)
        raw = (ctypes.c_ubyte * nbytes).from_address(ptr)
        return np.frombuffer(raw, dtype=dtype, count=math.prod(shape)).reshape(shape)

    def _bind(self, name: str, ptr: int) -> None:
        if not self.context.set_tensor_address(name, ptr):
            raise InferenceError(f"{self.model_path.name}: TensorRT rejected the device address of tensor {name!r}")

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``Runtime.check_feeds``, and every dim of a dynamic input within the engine's profile.

        Raises:
            InferenceError: see ``Runtime.check_feeds``; a shape outside the profile's min..max.
        """
        checked = super().check_feeds(feeds)
        for name, (lo, _, hi) in self.profile_shapes.items():
            shape = checked[name].shape
            if any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
                raise InferenceError(
                    f"input {name!r} shape {list(shape)} is outside the engine's profile {list(lo)}..{list(hi)}"
                )
        return checked

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the engine; returns the outputs in ``output_names`` order (host numpy arrays the caller owns).

        Safe from any thread: the device is selected and the buffers, context and stream are used under one lock.

        Raises:
            InferenceError: a feed is missing, has the wrong dtype or a shape outside the engine's
                optimisation profile (:meth:`check_feeds`), TensorRT rejected a shape or a tensor address, or
                TensorRT / CUDA failed.
        """
        feeds = self.check_feeds(feeds)
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            cuda_check(cudart.cudaSetDevice(self.device))  # CUDA's current device is per thread
            for name in self.input_names:
                arr = feeds[name]
                if not self.context.set_input_shape(name, tuple(arr.shape)):
                    raise InferenceError(f"TensorRT rejected shape {list(arr.shape)} for input {name!r}")
                host = self._host_buffer(name, arr.nbytes, arr.shape, arr.dtype)
                np.copyto(host, arr)
                ptr = self._device_buffer(name, arr.nbytes)
                cuda_check(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, arr.nbytes, h2d, self._stream))
                self._bind(name, ptr)
            hosts = []
            for name in self.output_names:
                shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise InferenceError(f"output {name!r} has an unresolved shape {list(shape)}")
                dtype = self._dtypes[name]
                nbytes = math.prod(shape) * dtype.itemsize
                self._bind(name, self._device_buffer(name, nbytes))
                hosts.append((name, self._host_buffer(name, nbytes, shape, dtype), nbytes))
            if not self.context.execute_async_v3(int(self._stream)):
                raise InferenceError(f"{self.model_path.name}: TensorRT execution failed")
            for name, host, nbytes in hosts:
                ptr = self._device_buffers[name][0]
                cuda_check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, nbytes, d2h, self._stream))
            cuda_check(cudart.cudaStreamSynchronize(self._stream))
            return [host.copy() for _, host, _ in hosts]  # the pinned buffers are reused by the next call

    def describe(self) -> dict:
        """Facts for ``/v1/models`` and logs: the interface's, the GPU, and the engine's profiles; ``precision`` and
        ``tf32`` are the engine sidecar's (None without one, as ``/v1/models`` always said)."""
        meta = self.engine_meta
        return {
            **super().describe(),
            "precision": meta.get("precision"),
            "gpu": self.gpu_name,
            "device": self.device,
            "tensorrt_version": self._trt.__version__,
            "tf32": meta.get("tf32"),
            "profiles": {k: [list(s) for s in v] for k, v in self.profile_shapes.items()},
            "batch_profile": list(self.batch_profile) if self.batch_profile else None,
        }

    def close(self) -> None:
        """Free device and page-locked host buffers and the CUDA stream (also done at garbage collection)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        if hasattr(self, "device"):
            cudart.cudaSetDevice(self.device)
        for ptr, _ in getattr(self, "_device_buffers", {}).values():
            cudart.cudaFree(ptr)
        for ptr, _ in getattr(self, "_host_buffers", {}).values():
            cudart.cudaFreeHost(ptr)
        self._device_buffers, self._host_buffers = {}, {}
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:  # pragma: no cover - GPU only
        try:
            self.close()
        except Exception:
            pass
