"""The lint rules (the :mod:`export.lint` docstring's table), one function each over :class:`GraphFacts`; each returns
its :class:`Finding` list."""

from __future__ import annotations

from export.lint.facts import GraphFacts
from export.lint.lint_report import Finding
from export.lint.table import SupportMatrix, type_name

_QUANTIZED = ("INT8", "INT4", "FP8")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def rule_checker(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``checker``: onnx's checker or strict shape inference rejects the model."""
    out = []
    if facts.checker_error is not None:
        out.append(Finding("checker", "error", f"onnx checker: {facts.checker_error}"))
    if facts.inference_error is not None:
        out.append(Finding("checker", "error", f"shape inference failed: {facts.inference_error}"))
    return out


def rule_opset(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``opset``: the default-domain opset is outside TensorRT 10's range."""
    lo, hi = matrix.opset_range
    if lo <= facts.opset <= hi:
        return []
    return [Finding("opset", "error", f"default-domain opset {facts.opset} is outside TensorRT 10's range {lo}..{hi}")]


def rule_dynamic_batch(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``dynamic-batch``: a graph input / output without a symbolic axis 0, or an input with another dynamic axis."""
    out = []
    for vi, kind in [*((v, "input") for v in facts.inputs), *((v, "output") for v in facts.outputs)]:
        dims = vi.type.tensor_type.shape.dim
        if not dims or dims[0].HasField("dim_value"):
            shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
            message = f"graph {kind} {vi.name!r} {shape} has no symbolic batch axis 0"
            out.append(Finding("dynamic-batch", "error", message, tensor=vi.name))
        elif kind == "input" and any(not d.HasField("dim_value") for d in dims[1:]):
            message = f"graph input {vi.name!r} has dynamic axes besides batch (engine profiles fix them)"
            out.append(Finding("dynamic-batch", "error", message, tensor=vi.name))
    return out


def rule_uint8(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``uint8``: a UINT8 tensor that is not a graph input read only by Casts nor a graph output written by a Cast."""
    out = []
    for tname, elem in sorted(facts.types.items()):
        if type_name(elem) != "UINT8":
            continue
        consumers = facts.consumers.get(tname, [])
        producer = facts.producers.get(tname)
        ok_in = tname in facts.graph_inputs and consumers and all(op == "Cast" for op in consumers)
        ok_out = tname in facts.graph_outputs and producer is not None and producer.op == "Cast"
        if ok_in or ok_out:
            continue
        where = (
            "graph input"
            if tname in facts.graph_inputs
            else "graph output"
            if tname in facts.graph_outputs
            else "intermediate"
        )
        message = (
            f"UINT8 {where} tensor {tname!r} is read by {consumers or 'nothing'}: TensorRT takes UINT8 only "
            "as a network input or output that feeds / comes from a Cast directly"
        )
        out.append(Finding("uint8", "error", message, tensor=tname))
    return out


def rule_dtype(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``dtype``: a quantized type outside Q/DQ nodes, a type TensorRT has not; DOUBLE is a warning."""
    out = []
    for tname, elem in sorted(facts.types.items()):
        tn = type_name(elem)
        if tn == "UINT8":
            continue  # rule_uint8
        if tn in _QUANTIZED:
            producer = facts.producers.get(tname)
            consumers = facts.consumers.get(tname, [])
            near_qdq = (producer is not None and producer.op in _QDQ_OPS) or (
                consumers and all(op in _QDQ_OPS for op in consumers)
            )
            if not near_qdq:
                message = (
                    f"{tn} tensor {tname!r} outside QuantizeLinear / DequantizeLinear "
                    "(TensorRT takes quantized types only through Q/DQ)"
                )
                out.append(Finding("dtype", "error", message, tensor=tname))
        elif tn == "DOUBLE":
            out.append(
                Finding("dtype", "warning", f"DOUBLE tensor {tname!r}: TensorRT casts it down to FLOAT", tensor=tname)
            )
        elif tn not in matrix.data_types:
            out.append(Finding("dtype", "error", f"{tn} tensor {tname!r}: TensorRT has no {tn} type", tensor=tname))
    return out


def rule_domain(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``domain``: a node outside the default ONNX domain (TensorRT would need a plugin)."""
    return [
        Finding(
            "domain",
            "error",
            f"node {n.label!r} is {n.node.domain}::{n.node.op}: not an ONNX operator (TensorRT would need a plugin)",
            node=n.label,
        )
        for n in facts.nodes
        if not n.onnx_domain
    ]


def rule_op_unsupported(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``op-unsupported``: an operator the table marks unsupported or does not list."""
    out = []
    for n in facts.nodes:
        if not n.onnx_domain or (n.row is not None and n.row["supported"]):
            continue
        why = "marked unsupported" if n.row else "not listed"
        message = f"node {n.label!r}: {n.node.op} is {why} in onnx-tensorrt's operator table"
        out.append(Finding("op-unsupported", "error", message, node=n.label))
    return out


def rule_untyped(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``untyped`` (warning): an operator's data tensor without an inferred type (its type cannot be checked)."""
    return [
        Finding(
            "untyped",
            "warning",
            f"node {n.label!r}: tensor {t.name!r} has no inferred type",
            node=n.label,
            tensor=t.name,
        )
        for n in facts.nodes
        if n.schema is not None
        for t in n.data
        if t.name not in facts.types
    ]


def rule_op_type(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``op-type``: a tensor bound to an operator's data type constraint of a type the operator's row lacks."""
    out = []
    for n in facts.nodes:
        if n.schema is None:
            continue
        for t in n.data:
            elem = facts.types.get(t.name)
            if elem is None:
                continue  # rule_untyped
            tn = type_name(elem)
            if tn == "DOUBLE":
                tn = "FP32"  # the parser casts DOUBLE down (a warning of the dtype rule)
            if tn not in n.row["types"]:
                message = (
                    f"node {n.label!r}: {n.node.op} does not take {tn} (tensor {t.name!r}); "
                    f"TensorRT's {n.node.op} takes {', '.join(n.row['types'])}"
                )
                out.append(Finding("op-type", "error", message, node=n.label, tensor=t.name))
    return out


def rule_constant_input(facts: GraphFacts, matrix: SupportMatrix) -> list[Finding]:
    """``constant-input``: an input the table says must be a constant that is computed at run time."""
    out = []
    for n in facts.nodes:
        if n.schema is None:
            continue
        formal_names = [p.name for p in n.schema.inputs]
        for input_name in matrix.constant_inputs(n.node.op):
            if input_name not in formal_names:
                continue  # an attribute (e.g. Hardmax's axis), not an input
            idx = formal_names.index(input_name)
            inputs = n.node.inputs
            if idx < len(inputs) and not inputs[idx].is_empty() and inputs[idx].name not in facts.constants:
                message = (
                    f"node {n.label!r}: {n.node.op} input {input_name!r} ({inputs[idx].name!r}) must be a "
                    "constant for TensorRT, but is computed at run time"
                )
                out.append(Finding("constant-input", "error", message, node=n.label, tensor=inputs[idx].name))
    return out


#: Every rule but ``dynamic-batch`` (which :func:`lint_onnx` runs when asked), in the module docstring's order.
RULES = (
    rule_checker,
    rule_opset,
    rule_domain,
    rule_uint8,
    rule_dtype,
    rule_op_unsupported,
    rule_op_type,
    rule_constant_input,
    rule_untyped,
)
