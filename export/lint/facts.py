"""The graph facts every lint rule reads, gathered once per model (:func:`graph_facts`): checker and shape-inference
verdicts, tensor types, producers / consumers, constants, and each node with its table row, schema and data tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.lint.table import SupportMatrix


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


def in_onnx_domain(node) -> bool:
    """An onnx-graphsurgeon node of the default ONNX domain (``""`` / ``"ai.onnx"``)."""
    return node.domain in (None, "", "ai.onnx")


@dataclass(frozen=True)
class NodeFacts:
    """One node of the graph as the operator rules see it.

    Attributes:
        label: the node's name, or ``<op>#<index>``.
        node: the onnx-graphsurgeon node.
        row: its row of the support table (None: not listed).
        schema: its ONNX schema at the model's opset (None: outside the default domain, not supported by the table,
            or unknown at this opset; such nodes get no type / constant-input checks).
        data: the distinct non-empty tensors bound to the op's data type constraint (:func:`_data_constraint`).
    """

    label: str
    node: Any
    row: dict | None
    schema: Any
    data: tuple

    @property
    def onnx_domain(self) -> bool:
        """The node is an ONNX operator (default domain), not a custom one TensorRT would need a plugin for."""
        return in_onnx_domain(self.node)


@dataclass(frozen=True)
class GraphFacts:
    """What the lint rules need to know about a graph, gathered once (:func:`graph_facts`).

    Attributes:
        name: the file linted (or ``<in-memory>``).
        opset: the default-domain opset.
        checker_error: ``onnx.checker``'s complaint (first line), None when it accepts the model.
        inference_error: strict shape inference's complaint (first line), None when it succeeded.
        inputs, outputs: the graph's input (non-initializer) and output ``ValueInfoProto`` after shape inference.
        types: tensor name -> ONNX element type (inputs, initializers, intermediates, outputs with a known type).
        graph_inputs, graph_outputs: their names.
        constants: names of initializers and ``Constant`` outputs.
        producers: tensor name -> the node that writes it.
        consumers: tensor name -> op types of the nodes that read it.
        nodes: every node in graph order (:class:`NodeFacts`), after inlining local functions.
    """

    name: str
    opset: int
    checker_error: str | None
    inference_error: str | None
    inputs: tuple
    outputs: tuple
    types: dict[str, int]
    graph_inputs: frozenset[str]
    graph_outputs: frozenset[str]
    constants: frozenset[str]
    producers: dict
    consumers: dict[str, list[str]]
    nodes: tuple[NodeFacts, ...]


def _read_model(model_or_path):
    """``(model, name)`` of an ``onnx.ModelProto`` or a ``.onnx`` path (FileNotFoundError / ValueError as
    :func:`lint_onnx` documents)."""
    import onnx

    if not isinstance(model_or_path, (str, Path)):
        return model_or_path, "<in-memory>"
    path = Path(model_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path)), str(path)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not an ONNX model: {exc}") from exc


def _node_facts(graph, opset: int, matrix: SupportMatrix) -> tuple[NodeFacts, ...]:
    import onnx

    out = []
    for i, node in enumerate(graph.nodes):
        label = node.name or f"{node.op}#{i}"
        row = matrix.operators.get(node.op)
        schema, data = None, []
        if in_onnx_domain(node) and row is not None and row["supported"]:
            try:
                schema = onnx.defs.get_schema(node.op, opset, "")
            except Exception:  # an op newer than the opset: the checker has said so
                schema = None
        if schema is not None:
            bound = list(zip(node.inputs, _formal_types(schema, len(node.inputs), schema.inputs)))
            bound += list(zip(node.outputs, _formal_types(schema, len(node.outputs), schema.outputs)))
            data_constraint = _data_constraint(schema, bound)
            seen: set[str] = set()
            for tensor, type_str in bound:
                if tensor.is_empty() or type_str != data_constraint or tensor.name in seen:
                    continue
                seen.add(tensor.name)
                data.append(tensor)
        out.append(NodeFacts(label, node, row, schema, tuple(data)))
    return tuple(out)


def graph_facts(model_or_path, matrix: SupportMatrix) -> GraphFacts:
    """Read, check, inline and shape-infer a model once, and gather what every rule needs.

    Raises:
        FileNotFoundError, ValueError: as :func:`lint_onnx`.
    """
    import onnx
    import onnx_graphsurgeon as gs

    model, name = _read_model(model_or_path)
    opset = int(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0))
    checker_error = inference_error = None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx's ValidationError / InferenceError
        checker_error = str(exc).strip().splitlines()[0]
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        inference_error = str(exc).strip().splitlines()[0]
        inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types: dict[str, int] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    graph = gs.import_onnx(inferred)
    tensors = graph.tensors()
    graph_inputs = frozenset(t.name for t in graph.inputs)
    constants = {n for n, t in tensors.items() if isinstance(t, gs.Constant)}
    constants |= {t.name for node in graph.nodes if node.op == "Constant" for t in node.outputs}
    return GraphFacts(
        name=name,
        opset=opset,
        checker_error=checker_error,
        inference_error=inference_error,
        inputs=tuple(v for v in g.input if v.name in graph_inputs),
        outputs=tuple(g.output),
        types=types,
        graph_inputs=graph_inputs,
        graph_outputs=frozenset(t.name for t in graph.outputs),
        constants=frozenset(constants),
        producers={t.name: t.inputs[0] for t in tensors.values() if t.inputs},
        consumers={n: [c.op for c in t.outputs] for n, t in tensors.items()},
        nodes=_node_facts(graph, opset, matrix),
    )
