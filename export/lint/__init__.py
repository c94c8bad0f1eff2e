"""Will TensorRT 10 parse this ONNX graph? A lint that answers on a CPU, without TensorRT.

TensorRT's ONNX parser (onnx-tensorrt) documents what it accepts in ``docs/operators.md``
(https://github.com/onnx/onnx-tensorrt/blob/10.1-GA/docs/operators.md, Apache-2.0): the operators it
imports, the data types each of them takes, restrictions such as "`axes` must be an initializer", the
opset range (9 to 20 for TensorRT 10.0) and the data-type notes ("UINT8 is only supported as network
input or output tensor type"; INT8 / INT4 / FP8 only through QuantizeLinear / DequantizeLinear; DOUBLE
is cast down). That table is vendored as data (``export/data/onnx_tensorrt_operators.json``, its source
branch and commit recorded in the file) and every exported graph is checked against it:

=================  ===========================================================================================
rule               finding
=================  ===========================================================================================
``checker``        ``onnx.checker.check_model(full_check=True)`` rejects the model
``opset``          the default-domain opset is outside TensorRT 10's range
``domain``         a node outside the default ONNX domain (TensorRT would need a plugin)
``dynamic-batch``  a graph input / output whose axis 0 is not symbolic, or an input with another dynamic axis
``uint8``          a UINT8 tensor that is not a graph input feeding only ``Cast`` nodes (or a graph output made
                   by a ``Cast``): TensorRT holds no UINT8 intermediate tensor (NVIDIA/TensorRT#3985)
``dtype``          a tensor type TensorRT cannot hold (INT16, UINT32, STRING, ...) or a quantized type (INT8,
                   INT4, FP8) outside Q/DQ nodes; DOUBLE is a warning (TensorRT casts it to FLOAT)
``op-unsupported`` an operator the table marks unsupported, or does not list
``op-type``        a tensor bound to an operator's type constraint (``T``, ``T1``, ...; the operator's data,
                   not fixed-type inputs such as Reshape's int64 ``shape``) of a type the operator's row lacks,
                   e.g. BOOL into ``Add``, INT64 into ``Conv``, UINT8 into ``Transpose`` (DOUBLE is checked as
                   FP32: the parser casts it down)
``constant-input`` an input the row says must be an initializer / a constant tensor / a build-time constant
                   (``axes`` of Squeeze, Reduce*, Slice, Pad; ``axis`` of CumSum; ``depth`` of OneHot) that is
                   computed at run time
``untyped``        (warning) shape inference left a tensor without a type: its type could not be checked
=================  ===========================================================================================

Types of intermediate tensors come from ONNX shape inference (``onnx.shape_inference.infer_shapes``,
strict, with data propagation); producers, consumers and constants come from NVIDIA's
onnx-graphsurgeon (``gs.import_onnx``). Local functions are inlined first (``onnx.inliner``), as the
parser expands them. NVIDIA's polygraphy has no TensorRT-free check of these rules (``polygraphy inspect
capability`` needs TensorRT; ``polygraphy check lint`` runs every node in onnxruntime, which the export
verification already does for the whole graph), so it is not used here.

What this cannot see: kernel availability for a particular GPU, and restrictions that depend on values
(Resize modes, TopK's K < 3840); ``pose-export engine`` on a GPU is the final word.

Torch-free; needs ``onnx`` and ``onnx-graphsurgeon`` (the export extra).

Modules: :mod:`~export.lint.table` (the support matrix), :mod:`~export.lint.facts` (the graph facts, gathered once),
:mod:`~export.lint.rules` (one function per rule), :mod:`~export.lint.lint_report`, :mod:`~export.lint.check`
(:func:`lint_onnx`, :func:`check_graph`); this package re-exports their public names.
"""

from __future__ import annotations

from export.lint.check import LINT_MODES, GraphLintError, check_graph, inventory, lint_onnx
from export.lint.facts import GraphFacts, NodeFacts, graph_facts
from export.lint.lint_report import Finding, LintReport
from export.lint.rules import RULES
from export.lint.table import SUPPORT_MATRIX, SupportMatrix, load_support_matrix, type_name

__all__ = [
    "LINT_MODES",
    "RULES",
    "SUPPORT_MATRIX",
    "Finding",
    "GraphFacts",
    "GraphLintError",
    "LintReport",
    "NodeFacts",
    "SupportMatrix",
    "check_graph",
    "graph_facts",
    "inventory",
    "lint_onnx",
    "load_support_matrix",
    "type_name",
]
