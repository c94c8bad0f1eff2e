"""onnx-tensorrt's operator table as data (:class:`SupportMatrix`, the vendored ``export/data`` file) and the table's
type names."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

#: The vendored onnx-tensorrt support matrix (see :mod:`export.lint`).
SUPPORT_MATRIX = Path(__file__).resolve().parent.parent / "data" / "onnx_tensorrt_operators.json"

_CONSTANT_RULE = re.compile(r"`(\w+)`(?: input)? must be (?:an initializer|a constant tensor|a build-time constant)")


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
