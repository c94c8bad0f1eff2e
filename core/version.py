"""The package version, from one source: the installed distribution's metadata (``pyproject.toml``'s
``[project] version`` at install time).

Every command's ``--version`` and the HTTP API's OpenAPI ``info.version`` read :data:`__version__`. A source tree
run without installing (``python -m service.pose_serve`` from a checkout) has no metadata: the version is then read
from the ``pyproject.toml`` beside the packages, else :data:`UNKNOWN_VERSION`.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "poseserve"
#: The version of a source tree with neither metadata nor a readable ``pyproject.toml``.
UNKNOWN_VERSION = "0+unknown"


def _source_tree_version(pyproject: Path) -> str | None:
    """``[project] version`` of a ``pyproject.toml`` (the first ``version = "..."`` line of its project table)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.M) if project else None
    return found.group(1) if found else None


def package_version() -> str:
    """The installed distribution's version, else the source tree's ``pyproject.toml`` version, else
    :data:`UNKNOWN_VERSION`."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return _source_tree_version(Path(__file__).resolve().parent.parent / "pyproject.toml") or UNKNOWN_VERSION


__version__ = package_version()
