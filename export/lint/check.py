"""Lint a model (:func:`lint_onnx`: the facts, then every rule), the check ``pose-export`` runs after each export
(:func:`check_graph`), and the inventory over several reports."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from export.lint.facts import GraphFacts, graph_facts
from export.lint.lint_report import LintReport
from export.lint.rules import RULES, rule_dynamic_batch
from export.lint.table import SupportMatrix, load_support_matrix, type_name

log = logging.getLogger("export.lint")

#: Lint modes of ``pose-export`` (``--lint``): fail on an error, only log, or skip the lint.
LINT_MODES = ("error", "warn", "off")


class GraphLintError(ValueError):
    """The graph has lint errors (raised by :func:`check_graph` in mode ``error``)."""


def _inventory(facts: GraphFacts, report: LintReport) -> None:
    """Fill the report's op counts, tensor types and op -> data types."""
    for _, elem in sorted(facts.types.items()):
        tn = type_name(elem)
        report.tensor_types[tn] = report.tensor_types.get(tn, 0) + 1
    op_types: dict[str, set[str]] = {}
    for n in facts.nodes:
        report.op_counts[n.node.op] = report.op_counts.get(n.node.op, 0) + 1
        if n.schema is not None:
            for t in n.data:
                if t.name in facts.types:
                    op_types.setdefault(n.node.op, set()).add(type_name(facts.types[t.name]))
    report.op_types = {k: sorted(v) for k, v in sorted(op_types.items())}


def lint_onnx(model_or_path, dynamic_batch: bool = True, matrix: SupportMatrix | None = None) -> LintReport:
    """Check an ONNX model against what TensorRT 10's ONNX parser accepts (see the module docstring's rules).

    The graph facts are gathered once (:func:`graph_facts`); each rule is one function over them (:data:`RULES`,
    :func:`rule_dynamic_batch`).

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
    matrix = matrix or load_support_matrix()
    facts = graph_facts(model_or_path, matrix)
    report = LintReport(facts.name, facts.opset)
    for rule in (*RULES, rule_dynamic_batch) if dynamic_batch else RULES:
        report.findings += rule(facts, matrix)
    _inventory(facts, report)
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
