"""The runtime interface: what the detector, the pose estimator, the batchers and ``/v1/models`` see of a model.

Three runtimes implement it: onnxruntime (``inference.runtime.OrtRuntime``), OpenVINO
(``inference.runtime_ov.OvRuntime``) and TensorRT (``inference.runtime_trt.TrtRuntime``);
``inference.runtime.create_runtime`` is the one factory that picks one from the settings. Consumers read the
attributes below and never ask which backend they hold (no provider names, no ``getattr`` guards).

What is written once here: the model-file check every constructor starts with (:meth:`Runtime.__init__`), the
feed check every :meth:`Runtime.run` starts with (:meth:`Runtime.check_feeds`), the ``/v1/models`` facts every
runtime shares (:meth:`Runtime.describe`), and the defaults of a runtime that fixes no batch range, computes in
fp32 on the CPU and cannot stop a call in flight.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from core.errors import InferenceError, ModelLoadError


class Runtime(ABC):
    """A model opened for inference.

    Attributes (set by each runtime's constructor):
        backend: ``onnxruntime``, ``openvino`` or ``tensorrt`` (a class attribute).
        model_path: the file that runs (for TensorRT, the engine an ``.onnx`` path resolved to).
        input_names: the model's inputs, in its order.
        input_shapes: one list per input: ints for fixed dims, None for dynamic ones (axis 0 is the batch).
        input_dtypes: one ``numpy.dtype`` per input: what :meth:`run` must be fed.
        output_names, output_shapes: the same for the outputs (:meth:`run` returns them in this order).
        active_providers: what executes the model, for logs and ``/v1/models`` only (onnxruntime's active execution
            providers, ``["TensorRT"]``, ``["OpenVINO:<device>"]``); consumers branch on the attributes below instead.
        precision: what it computes in: one of :data:`core.precision.RUNTIME_PRECISIONS`.
        on_gpu: whether it computes on a GPU (then the pipeline lets the two models' calls overlap).
        batch_profile: (min, opt, max) of the batch axis when the engine fixes one (a TensorRT engine's or the
            onnxruntime TensorRT EP's optimisation profile), else None.
        tunes_per_shape: whether kernels are chosen per input shape on first use (onnxruntime's CUDA EP: cuDNN's
            algorithm search), so every batch size deserves a warm-up run.
    """

    backend: str = ""
    model_path: Path
    input_names: list[str]
    input_shapes: list[list[int | None]]
    input_dtypes: list[np.dtype]
    output_names: list[str]
    output_shapes: list[list[int | None]]
    active_providers: list[str]
    precision: str = "fp32"
    on_gpu: bool = False
    batch_profile: tuple[int, int, int] | None = None
    tunes_per_shape: bool = False

    def __init__(self, model_path: str | Path) -> None:
        """Check the model file and keep its path.

        Raises:
            ModelLoadError: the file is missing, not a regular file, or not readable by this process.
        """
        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        if not os.access(path, os.R_OK):
            raise ModelLoadError(f"model file not readable: {path}")
        self.model_path = path

    @property
    def max_batch_size(self) -> int | None:
        """The largest batch :meth:`run` takes (``batch_profile``'s max), or None: any batch (or the fixed one)."""
        return self.batch_profile[2] if self.batch_profile else None

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feeds of :meth:`run`, checked against the model's inputs.

        Args:
            feeds: input name -> array (anything ``numpy.asarray`` takes); names the model lacks are ignored.

        Returns:
            input name -> numpy array, for every input in ``input_names`` order.

        Raises:
            InferenceError: an input is missing, has another dtype than ``input_dtypes`` says, another rank or a
                fixed dim of another size than ``input_shapes`` says, or a batch above ``max_batch_size``.
        """
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InferenceError(
                f"{self.model_path.name}: missing input(s) {missing}; the model takes {self.input_names}"
            )
        checked = {}
        limit = self.max_batch_size
        for name, shape, dtype in zip(self.input_names, self.input_shapes, self.input_dtypes):
            arr = np.asarray(feeds[name])
            if arr.dtype != dtype:
                raise InferenceError(f"{self.model_path.name}: input {name!r} must be {dtype}, got {arr.dtype}")
            if arr.ndim != len(shape) or any(f is not None and f != s for f, s in zip(shape, arr.shape)):
                raise InferenceError(
                    f"{self.model_path.name}: input {name!r} has shape {list(arr.shape)}, the model takes {shape}"
                )
            if limit is not None and shape[0] is None and arr.shape[0] > limit:
                raise InferenceError(
                    f"{self.model_path.name}: input {name!r} has a batch of {arr.shape[0]}, outside the engine's "
                    f"profile (max batch {limit})"
                )
            checked[name] = arr
        return checked

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model once.

        Args:
            feeds: input name -> array of the input's dtype and shape (:meth:`check_feeds`).

        Returns:
            The outputs in ``output_names`` order: numpy arrays the caller owns, batch axis first.

        Raises:
            InferenceError: bad feeds (:meth:`check_feeds`), the backend failed, or :meth:`cancel` stopped the call.
        """

    def cancel(self) -> int:
        """Stop the calls of :meth:`run` in flight from another thread (the batchers' watchdog and shutdown); each
        then raises ``InferenceError``. Returns how many were stopped: always 0 for a runtime that cannot stop one
        (this default: such a call can only be abandoned)."""
        return 0

    def describe(self) -> dict:
        """JSON-able facts for ``/v1/models`` and logs: the keys every runtime has (file name only: no server paths
        in responses); each runtime adds its own."""
        return {
            "backend": self.backend,
            "model_file": self.model_path.name,
            "active_providers": self.active_providers,
            "inputs": dict(zip(self.input_names, self.input_shapes)),
            "outputs": dict(zip(self.output_names, self.output_shapes)),
            "precision": self.precision,
            "on_gpu": self.on_gpu,
            "max_batch_size": self.max_batch_size,
        }

    def close(self) -> None:  # noqa: B027 - a default, not abstract: most runtimes hold nothing beyond Python objects
        """Free what the runtime holds beyond Python objects (device memory, streams); this default has none."""
