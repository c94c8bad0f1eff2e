"""The one precision vocabulary: every precision name list in poseserve is :data:`PRECISIONS` or a subset of it.

Spellings are fp32 / fp16 / bf16 / int8 everywhere (settings, CLI choices, model cards, cache paths, ``/v1/models``);
backend-specific strings (OpenVINO's ``f32`` inference-precision hint) stay inside the runtime that maps to them.
"""

#: Every precision a model can run in; the subsets below are taken from it, in this order.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def _subset(*names: str) -> tuple[str, ...]:
    """The names of :data:`PRECISIONS` that are in ``names``, in :data:`PRECISIONS` order (a typo raises)."""
    unknown = set(names) - set(PRECISIONS)
    if unknown:
        raise ValueError(f"not a precision: {sorted(unknown)}")
    return tuple(p for p in PRECISIONS if p in names)


#: What a runtime may compute in (``Runtime.precision``): all of them.
RUNTIME_PRECISIONS = PRECISIONS
#: OpenVINO runtime: fp16 is not offered (the CPU plugin has no fp16 hint; GPUs are served by onnxruntime/TensorRT).
OPENVINO_PRECISIONS = _subset("fp32", "bf16", "int8")
#: ``Settings.precision`` (POSE_PRECISION) and ``pose-eval --compare-precision``: what the OpenVINO runtime takes.
SETTINGS_PRECISIONS = OPENVINO_PRECISIONS
#: TensorRT engines built and cached (int8 engines are not built yet, bf16 is not offered by the builder here).
ENGINE_PRECISIONS = _subset("fp32", "fp16")
#: Weight precision of a model file (model card): fp32, or int8 once quantised; bf16 is a runtime setting.
CARD_PRECISIONS = _subset("fp32", "int8")
#: Mixed-precision autocast dtypes of training (int8 is not a training dtype, fp32 is "off").
AMP_PRECISIONS = _subset("fp16", "bf16")
