"""Stand-ins for ``tensorrt`` (10.x Python API) and cuda-python's ``cuda.bindings.runtime``, for the machines
without a GPU: they let the real ``inference.runtime_trt.TrtRuntime`` and ``export.tensorrt.build_engine`` run.

Only the calls those modules make exist, with the documented return conventions (cuda-python: ``(err, value)``
tuples; ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``: bool;
``tensorrt.nptype``: ``TypeError`` for BF16 / FP8). "Device memory" is host memory (ctypes buffers), so copies
really move bytes; the fake engine computes each output as the per-sample mean of its first input, so a test
sees whether the right bytes went to the right addresses. The fake CUDA runtime keeps the current device per
thread, as CUDA does, and the fake context records the device each execution ran on.

A fake engine file is JSON: ``{"inputs": [...], "outputs": [...], "built_with": {...}}`` with each tensor's
``name``, ``dtype`` (a :class:`DataType` name), ``shape`` (-1 for dynamic) and, for dynamic inputs,
``profile`` [[min], [opt], [max]].
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
import types
from enum import Enum

import numpy as np

__version__ = "10.9.0.34"


# ---------------------------------------------------------------------------------------------------- tensorrt


class DataType(Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT8 = "int8"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    UINT8 = "uint8"
    BF16 = "bfloat16"
    FP8 = "fp8"


def nptype(dtype: DataType):
    """``tensorrt.nptype``: TypeError for types numpy lacks (as TensorRT 10's)."""
    if dtype in (DataType.BF16, DataType.FP8):
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return np.dtype(dtype.value).type


class TensorIOMode(Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class Logger:
    WARNING = 2

    def __init__(self, severity=WARNING):
        self.severity = severity


class BuilderFlag(Enum):
    FP16 = 0
    TF32 = 1
    VERSION_COMPATIBLE = 2


class MemoryPoolType(Enum):
    WORKSPACE = 0


_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 16: "BF16"}


class _NetworkTensor:
    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype


class Network:
    def __init__(self):
        self.inputs: list[_NetworkTensor] = []
        self.outputs: list[_NetworkTensor] = []

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]


class OnnxParser:
    """Reads the graph inputs / outputs of a real ONNX file into the network."""

    def __init__(self, network, logger):
        self.network, self.errors = network, []

    def parse_from_file(self, path):
        import onnx

        try:
            g = onnx.load(path).graph
        except Exception as exc:
            self.errors.append(f"cannot read {path}: {exc}")
            return False
        inits = {t.name for t in g.initializer}
        for vi, target in [*((v, self.network.inputs) for v in g.input if v.name not in inits),
                           *((v, self.network.outputs) for v in g.output)]:  # fmt: skip
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
            target.append(_NetworkTensor(vi.name, dims, _ONNX_TO_TRT[vi.type.tensor_type.elem_type]))
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]


class OptimizationProfile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, lo, opt, hi):
        self.shapes[name] = [list(lo), list(opt), list(hi)]


class BuilderConfig:
    """Starts with TF32 on, as TensorRT's does."""

    def __init__(self):
        self.flags = {BuilderFlag.TF32}
        self.pool_limits = {}
        self.profiles = []

    def set_memory_pool_limit(self, pool, size):
        self.pool_limits[pool] = size

    def set_flag(self, flag):
        self.flags.add(flag)

    def clear_flag(self, flag):
        self.flags.discard(flag)

    def get_flag(self, flag):
        return flag in self.flags

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes):
        return TimingCache(bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        self.timing_cache = cache
        return True

    def get_timing_cache(self):
        return getattr(self, "timing_cache", None)


class TimingCache:
    """TensorRT's ITimingCache: serialized timings; a build adds its own (here: one line per build)."""

    def __init__(self, data: bytes):
        self.data = data

    def serialize(self) -> bytes:
        return self.data


class Builder:
    def __init__(self, logger):
        self.logger = logger

    def create_network(self, flags=0):
        return Network()

    def create_builder_config(self):
        return BuilderConfig()

    def create_optimization_profile(self):
        return OptimizationProfile()

    def build_serialized_network(self, network, config):
        if getattr(config, "timing_cache", None) is not None:
            config.timing_cache.data += f"timings of {[t.name for t in network.inputs]}\n".encode()
        profile = config.profiles[0].shapes if config.profiles else {}
        engine = {
            "inputs": [
                {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "profile": profile.get(t.name)}
                for t in network.inputs
            ],
            "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in network.outputs],
            "built_with": {"flags": sorted(f.name for f in config.flags)},
        }
        return json.dumps(engine).encode()


class ExecutionContext:
    def __init__(self, engine):
        self.engine = engine
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.reject_addresses: set[str] = set()
        self.executed_on_devices: list[int] = []

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.tensor(name)["profile"] or [self.engine.tensor(name)["shape"]] * 3
        if any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, ptr):
        if name in self.reject_addresses:
            return False
        self.addresses[name] = int(ptr)
        return True

    def get_tensor_shape(self, name):
        t = self.engine.tensor(name)
        if t in self.engine.spec["outputs"]:
            batch = self.shapes[self.engine.spec["inputs"][0]["name"]][0]
            return (batch, *t["shape"][1:])
        return self.shapes[name]

    def execute_async_v3(self, stream_handle):
        self.executed_on_devices.append(_current_device())
        first = self.engine.spec["inputs"][0]
        shape = self.shapes[first["name"]]
        x = _read(self.addresses[first["name"]], shape, np.dtype(DataType[first["dtype"]].value))
        means = x.reshape(shape[0], -1).astype(np.float64).mean(axis=1)
        for t in self.engine.spec["outputs"]:
            out_shape = self.get_tensor_shape(t["name"])
            y = _read(self.addresses[t["name"]], out_shape, np.dtype(DataType[t["dtype"]].value))
            y[...] = means.reshape(-1, *[1] * (len(out_shape) - 1))
        return True


class Engine:
    def __init__(self, spec: dict):
        self.spec = spec
        self._all = spec["inputs"] + spec["outputs"]

    def tensor(self, name):
        return next(t for t in self._all if t["name"] == name)

    @property
    def num_io_tensors(self):
        return len(self._all)

    def get_tensor_name(self, i):
        return self._all[i]["name"]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if self.tensor(name) in self.spec["inputs"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return DataType[self.tensor(name)["dtype"]]

    def get_tensor_shape(self, name):
        return tuple(self.tensor(name)["shape"])

    def get_tensor_profile_shape(self, name, profile_index):
        return [tuple(s) for s in self.tensor(name)["profile"]]

    def create_execution_context(self):
        self.context = ExecutionContext(self)
        return self.context


class Runtime:
    def __init__(self, logger):
        self.logger = logger
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, data: bytes):
        try:
            engine = json.loads(data)
        except ValueError:
            return None  # what TensorRT returns for a foreign engine
        if "VERSION_COMPATIBLE" in engine.get("built_with", {}).get("flags", []) and not self.engine_host_code_allowed:
            return None  # TensorRT refuses a version-compatible plan's lean runtime unless host code is allowed
        return Engine(engine)


# ---------------------------------------------------------------------------------------------------- cuda-python


class cudaError_t(Enum):
    cudaSuccess = 0
    cudaErrorInvalidDevice = 101


class cudaMemcpyKind(Enum):
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


_OK = cudaError_t.cudaSuccess
_thread = threading.local()
DEVICE_COUNT = 2
device_memory: dict[int, ctypes.Array] = {}
pinned_memory: dict[int, ctypes.Array] = {}
copies: list[tuple[str, bool]] = []  # (kind, host side page-locked?) of every cudaMemcpyAsync


def _current_device() -> int:
    return getattr(_thread, "device", 0)


def _read(ptr: int, shape, dtype) -> np.ndarray:
    n = int(np.prod(shape)) * dtype.itemsize
    return np.frombuffer((ctypes.c_ubyte * n).from_address(ptr), dtype=dtype).reshape(shape)


def cudaSetDevice(device):
    if not 0 <= device < DEVICE_COUNT:
        return (cudaError_t.cudaErrorInvalidDevice,)
    _thread.device = device
    return (_OK,)


def cudaGetDeviceProperties(device):
    return _OK, types.SimpleNamespace(name=f"Fake GPU {device}".encode() + b"\0\0")


def cudaStreamCreate():
    return _OK, 7


def cudaStreamDestroy(stream):
    return (_OK,)


def cudaStreamSynchronize(stream):
    return (_OK,)


def _malloc(pool, size):
    buf = (ctypes.c_ubyte * size)()
    ptr = ctypes.addressof(buf)
    pool[ptr] = buf
    return _OK, ptr


def cudaMalloc(size):
    return _malloc(device_memory, size)


def cudaMallocHost(size):
    return _malloc(pinned_memory, size)


def cudaFree(ptr):
    device_memory.pop(ptr, None)
    return (_OK,)


def cudaFreeHost(ptr):
    pinned_memory.pop(ptr, None)
    return (_OK,)


def _inside(pool, ptr) -> bool:
    return any(base <= ptr < base + len(buf) for base, buf in pool.items())


def cudaMemcpyAsync(dst, src, count, kind, stream):
    host = src if kind == cudaMemcpyKind.cudaMemcpyHostToDevice else dst
    copies.append((kind.name, _inside(pinned_memory, host)))
    ctypes.memmove(dst, src, count)
    return (_OK,)


# ---------------------------------------------------------------------------------------------------- install


def install(monkeypatch) -> tuple[types.ModuleType, types.ModuleType]:
    """Put the fakes in ``sys.modules`` as ``tensorrt`` and ``cuda.bindings.runtime`` (undone by monkeypatch).

    Returns:
        (the fake tensorrt module, the fake cuda runtime module): this module for both.
    """
    me = sys.modules[__name__]
    cuda = types.ModuleType("cuda")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = me
    cuda.bindings = bindings
    monkeypatch.setitem(sys.modules, "tensorrt", me)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", me)
    copies.clear()
    return me, me


def write_engine(path, inputs: list[dict], outputs: list[dict]) -> str:
    """Write a fake engine file (see the module docstring) and return its path as str."""
    path.write_text(json.dumps({"inputs": inputs, "outputs": outputs, "built_with": {}}))
    return str(path)
