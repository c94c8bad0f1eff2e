"""What the lint reports: :class:`Finding` (one per broken rule and place) and :class:`LintReport`."""

from __future__ import annotations

from dataclasses import dataclass, field


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
