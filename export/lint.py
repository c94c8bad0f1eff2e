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
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: The vendored onnx-tensorrt support matrix (see the module docstring).
SUPPORT_MATRIX = Path(__file__).with_name("data") / "onnx_tensorrt_operators.json"
#: Lint modes of ``pose-export`` (``--lint``): fail on an error, only log, or skip the lint.
LINT_MODES = ("error", "warn", "off")

_QUANTIZED = ("INT8", "INT4", "FP8")
_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_CONSTANT_RULE = re.compile(r"`(\w+)`(?: input)? must be (?:an initializer|a constant tensor|a build-time constant)")


class GraphLintError(ValueError):
    """The graph has lint errors (raised by :func:`check_graph` in mode ``error``)."""


def type_name(elem_type: int) -> str:
    """The support table's name of an ONNX ``TensorProto`` element type (``FLOAT`` -> ``FP32``, FP8 variants -> ``FP8``)."""
    import onnx

    name = onnx.TensorProto.DataType.Name(elem_type)
    if name.startswith("FLOAT8"):
        return "FP8"
    return {"FLOAT": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16"}.get(name, name)


@dataclass(frozen=True)
class SupportMatrix:
    """onnx-tensorrt's operator table, as data.

    Attributes:
        operators: op type -> {"supported": bool, "types": [type names], "restrictions": text}.
        opset_range: (lowest, highest) default-domain opset the parser takes.
        data_types: type names TensorRT holds at all.
        source: where the table comes from (URL, branch, commit).
    """

    operators: dict
    opset_range: tuple[int, int]
    data_types: tuple[str, ...]
    source: dict

    def constant_inputs(self, op: str) -> tuple[str, ...]:
        """Input names the table says must be initializers / constants for ``op`` (parsed from its restrictions)."""
        return tuple(_CONSTANT_RULE.findall(self.operators.get(op, {}).get("restrictions", "")))


@functools.lru_cache(maxsize=1)
def load_support_matrix(path: str | Path = SUPPORT_MATRIX) -> SupportMatrix:
    """Read the vendored support table (cached).

    Raises:
        OSError, ValueError: the file is missing or not the expected JSON.
    """
    data = json.loads(Path(path).read_text())
    lo, hi = data["opset_range"]
    return SupportMatrix(data["operators"], (int(lo), int(hi)), tuple(data["data_types"]), data["source"])


@dataclass(frozen=True)
class Finding:
    """One lint finding.

    Attributes:
        rule: see the module docstring's table.
        severity: ``error`` (TensorRT will reject or mis-handle the graph) or ``warning``.
        message: what is wrong and where, in words.
        node: the node's name (or op type) when the finding is about a node.
        tensor: the tensor's name when the finding is about a tensor.
    """

    rule: str
    severity: str
    message: str
    node: str | None = None
    tensor: str | None = None

    def __str__(self) -> str:
        return f"[{self.severity} {self.rule}] {self.message}"


@dataclass
class LintReport:
    """What :func:`lint_onnx` found, and the graph's inventory.

    Attributes:
        model: the file linted (or ``<in-memory>``).
        opset: the default-domain opset.
        findings: every :class:`Finding`, errors first.
        op_counts: op type -> number of nodes (after inlining local functions).
        tensor_types: type name -> number of typed tensors (inputs, initializers, intermediates, outputs).
        op_types: op type -> sorted type names seen on its type-constrained inputs / outputs.
    """

    model: str
    opset: int
    findings: list[Finding] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)
    tensor_types: dict[str, int] = field(default_factory=dict)
    op_types: dict[str, list[str]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def rules(self) -> set[str]:
        """The rules that produced findings."""
        return {f.rule for f in self.findings}

    def describe(self) -> str:
        """A few lines: verdict, inventory, then every finding."""
        verdict = "TensorRT-ready" if self.ok else f"{len(self.errors)} error(s)"
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items()))
        types = ", ".join(f"{k} {v}" for k, v in sorted(self.tensor_types.items()))
        lines = [
            f"{self.model}: {verdict}, {len(self.warnings)} warning(s); opset {self.opset}",
            f"  ops: {ops}",
            f"  tensor types: {types}",
        ]
        lines += [f"  {f}" for f in self.findings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able form (``pose-export lint --json``)."""
        return {
            "model": self.model,
            "opset": self.opset,
            "ok": self.ok,
            "findings": [f.__dict__ for f in self.findings],
            "op_counts": self.op_counts,
            "tensor_types": self.tensor_types,
            "op_types": self.op_types,
        }


def _formal_types(schema, n_actual: int, formals) -> list[str]:
    """The formal ``type_str`` bound to each of ``n_actual`` actual inputs / outputs (variadic last formal repeats)."""
    out = []
    for i in range(n_actual):
        if i < len(formals):
            out.append(formals[i].type_str)
        elif formals and formals[-1].option == schema.FormalParameterOption.Variadic:
            out.append(formals[-1].type_str)
        else:
            out.append("")
    return out


def _data_constraint(schema, bound) -> str | None:
    """The type constraint of an op's data: that of its first input bound to a constraint with a choice of types
    (``T`` of Greater and Where, ``T1`` of Resize and Cast), else of its first such output (``T2`` of
    ConstantOfShape). The table's "Supported Types" column is about these tensors; indices, shapes, a Where's
    condition and a comparison's BOOL result have their own fixed types."""
    choice = {c.type_param_str for c in schema.type_constraints if len(c.allowed_type_strs) > 1}
    for tensor, type_str in bound:
        if not tensor.is_empty() and type_str in choice:
            return type_str
    return None


def lint_onnx(model_or_path, dynamic_batch: bool = True, matrix: SupportMatrix | None = None) -> LintReport:
    """Check an ONNX model against what TensorRT 10's ONNX parser accepts (see the module docstring's rules).

    Args:
        model_or_path: an ``onnx.ModelProto`` or the path of a ``.onnx`` file.
        dynamic_batch: require a symbolic batch axis 0 on every graph input and output (what our
            engines' optimisation profiles and Triton's dynamic batching need).
        matrix: the support table (default: the vendored onnx-tensorrt 10.1 table).

    Returns:
        :class:`LintReport` (``ok`` when there is no error).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not an ONNX model (checker failures of a readable model are findings instead).
    """
    import onnx
    import onnx_graphsurgeon as gs

    matrix = matrix or load_support_matrix()
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        try:
            model, name = onnx.load(str(path)), str(path)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ValueError(f"{path} is not an ONNX model: {exc}") from exc
    else:
        model, name = model_or_path, "<in-memory>"
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    report = LintReport(name, int(opset))
    add = report.findings.append

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx's ValidationError / InferenceError
        add(Finding("checker", "error", f"onnx checker: {str(exc).strip().splitlines()[0]}"))
    lo, hi = matrix.opset_range
    if not lo <= opset <= hi:
        add(Finding("opset", "error", f"default-domain opset {opset} is outside TensorRT 10's range {lo}..{hi}"))

    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        add(Finding("checker", "error", f"shape inference failed: {str(exc).strip().splitlines()[0]}"))
        inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types: dict[str, int] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    graph = gs.import_onnx(inferred)
    graph_inputs = {t.name for t in graph.inputs}
    graph_outputs = {t.name for t in graph.outputs}
    constants = {n for n, t in graph.tensors().items() if isinstance(t, gs.Constant)}
    constants |= {t.name for node in graph.nodes if node.op == "Constant" for t in node.outputs}

    # the batch axis
    if dynamic_batch:
        for vi, kind in [
            *((v, "input") for v in g.input if v.name in graph_inputs),
            *((v, "output") for v in g.output),
        ]:
            dims = vi.type.tensor_type.shape.dim
            if not dims or dims[0].HasField("dim_value"):
                shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
                add(
                    Finding(
                        "dynamic-batch",
                        "error",
                        f"graph {kind} {vi.name!r} {shape} has no symbolic batch axis 0",
                        tensor=vi.name,
                    )
                )
            elif kind == "input" and any(not d.HasField("dim_value") for d in dims[1:]):
                add(
                    Finding(
                        "dynamic-batch",
                        "error",
                        f"graph input {vi.name!r} has dynamic axes besides batch (engine profiles fix them)",
                        tensor=vi.name,
                    )
                )

    # tensor types: what TensorRT can hold at all, and UINT8 only at the network boundary through a Cast
    producers = {t.name: t.inputs[0] for t in graph.tensors().values() if t.inputs}
    for tname, elem in sorted(types.items()):
        tn = type_name(elem)
        report.tensor_types[tn] = report.tensor_types.get(tn, 0) + 1
        tensor = graph.tensors().get(tname)
        consumers = [n.op for n in tensor.outputs] if tensor is not None else []
        if tn == "UINT8":
            ok_in = tname in graph_inputs and consumers and all(op == "Cast" for op in consumers)
            producer = producers.get(tname)
            ok_out = tname in graph_outputs and producer is not None and producer.op == "Cast"
            if not (ok_in or ok_out):
                where = (
                    "graph input"
                    if tname in graph_inputs
                    else "graph output"
                    if tname in graph_outputs
                    else "intermediate"
                )
                add(
                    Finding(
                        "uint8",
                        "error",
                        f"UINT8 {where} tensor {tname!r} is read by {consumers or 'nothing'}: TensorRT takes UINT8 only "
                        "as a network input or output that feeds / comes from a Cast directly",
                        tensor=tname,
                    )
                )
        elif tn in _QUANTIZED:
            producer = producers.get(tname)
            near_qdq = (producer is not None and producer.op in _QDQ_OPS) or (
                consumers and all(op in _QDQ_OPS for op in consumers)
            )
            if not near_qdq:
                add(
                    Finding(
                        "dtype",
                        "error",
                        f"{tn} tensor {tname!r} outside QuantizeLinear / DequantizeLinear "
                        "(TensorRT takes quantized types only through Q/DQ)",
                        tensor=tname,
                    )
                )
        elif tn == "DOUBLE":
            add(Finding("dtype", "warning", f"DOUBLE tensor {tname!r}: TensorRT casts it down to FLOAT", tensor=tname))
        elif tn not in matrix.data_types:
            add(Finding("dtype", "error", f"{tn} tensor {tname!r}: TensorRT has no {tn} type", tensor=tname))

    # operators: supported, their data types, their constant inputs
    op_types: dict[str, set[str]] = {}
    for i, node in enumerate(graph.nodes):
        label = node.name or f"{node.op}#{i}"
        report.op_counts[node.op] = report.op_counts.get(node.op, 0) + 1
        if node.domain not in (None, "", "ai.onnx"):
            add(
                Finding(
                    "domain",
                    "error",
                    f"node {label!r} is {node.domain}::{node.op}: not an ONNX operator (TensorRT would need a plugin)",
                    node=label,
                )
            )
            continue
        row = matrix.operators.get(node.op)
        if row is None or not row["supported"]:
            why = "marked unsupported" if row else "not listed"
            add(
                Finding(
                    "op-unsupported",
                    "error",
                    f"node {label!r}: {node.op} is {why} in onnx-tensorrt's operator table",
                    node=label,
                )
            )
            continue
        try:
            schema = onnx.defs.get_schema(node.op, opset, "")
        except Exception:  # an op newer than the opset: the checker has said so
            continue
        bound = list(zip(node.inputs, _formal_types(schema, len(node.inputs), schema.inputs)))
        bound += list(zip(node.outputs, _formal_types(schema, len(node.outputs), schema.outputs)))
        data_constraint = _data_constraint(schema, bound)
        seen: set[str] = set()
        for tensor, type_str in bound:
            if tensor.is_empty() or type_str != data_constraint or tensor.name in seen:
                continue
            seen.add(tensor.name)
            elem = types.get(tensor.name)
            if elem is None:
                add(
                    Finding(
                        "untyped",
                        "warning",
                        f"node {label!r}: tensor {tensor.name!r} has no inferred type",
                        node=label,
                        tensor=tensor.name,
                    )
                )
                continue
            tn = type_name(elem)
            op_types.setdefault(node.op, set()).add(tn)
            if tn == "DOUBLE":
                tn = "FP32"  # the parser casts DOUBLE down (a warning of the dtype rule)
            if tn not in row["types"]:
                add(
                    Finding(
                        "op-type",
                        "error",
                        f"node {label!r}: {node.op} does not take {tn} (tensor {tensor.name!r}); "
                        f"TensorRT's {node.op} takes {', '.join(row['types'])}",
                        node=label,
                        tensor=tensor.name,
                    )
                )
        formal_names = [p.name for p in schema.inputs]
        for input_name in matrix.constant_inputs(node.op):
            if input_name not in formal_names:
                continue  # an attribute (e.g. Hardmax's axis), not an input
            idx = formal_names.index(input_name)
            if idx < len(node.inputs) and not node.inputs[idx].is_empty() and node.inputs[idx].name not in constants:
                add(
                    Finding(
                        "constant-input",
                        "error",
                        f"node {label!r}: {node.op} input {input_name!r} ({node.inputs[idx].name!r}) must be a "
                        "constant for TensorRT, but is computed at run time",
                        node=label,
                        tensor=node.inputs[idx].name,
                    )
                )
    report.op_types = {k: sorted(v) for k, v in sorted(op_types.items())}
    report.findings.sort(key=lambda f: (f.severity != "error", f.rule))
    return report


def check_graph(path: str | Path, mode: str = "error", dynamic_batch: bool = True) -> LintReport | None:
    """Lint an exported graph the way ``pose-export`` does after every export.

    Args:
        path: the ``.onnx`` file.
        mode: ``error`` (raise on errors), ``warn`` (log them), ``off`` (skip; returns None).
        dynamic_batch: see :func:`lint_onnx`.

    Returns:
        The :class:`LintReport` (None in mode ``off``).

    Raises:
        GraphLintError: mode ``error`` and the graph has lint errors (the message lists them).
        ValueError: unknown mode.
    """
    if mode not in LINT_MODES:
        raise ValueError(f"lint mode {mode!r} must be one of {list(LINT_MODES)}")
    if mode == "off":
        return None
    report = lint_onnx(path, dynamic_batch=dynamic_batch)
    if report.errors and mode == "error":
        raise GraphLintError(
            f"{path} would not build with TensorRT 10 (export lint; --lint warn to export anyway):\n"
            + "\n".join(f"  {f}" for f in report.errors)
        )
    for f in report.findings:
        log.warning("%s: %s", Path(path).name, f)
    return report


def inventory(reports: list[LintReport]) -> dict:
    """Op and type inventory over several reports: op -> count, type -> count, op -> types (for the README / logs)."""
    ops: Counter = Counter()
    tys: Counter = Counter()
    op_types: dict[str, set[str]] = {}
    for r in reports:
        ops.update(r.op_counts)
        tys.update(r.tensor_types)
        for k, v in r.op_types.items():
            op_types.setdefault(k, set()).update(v)
    return {
        "ops": dict(sorted(ops.items())),
        "types": dict(sorted(tys.items())),
        "op_types": {k: sorted(v) for k, v in sorted(op_types.items())},
    }
