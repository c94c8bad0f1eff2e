"""Reading the JSON files evaluation takes (torch-free, stdlib only)."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_list(path: str | Path, what: str, error: type[ValueError] = ValueError) -> list:
    """The JSON list in ``path`` (a detection-results file, an MPII annotation file).

    Args:
        path: the file.
        what: what the file is, for the messages (``"detection file"``).
        error: the ``ValueError`` subclass to raise.

    Raises:
        FileNotFoundError: no such file.
        error: not valid JSON, or not a list (the message names ``what`` and the path).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise error(f"{what} {path} must hold a JSON list, got {type(data).__name__}")
    return data
