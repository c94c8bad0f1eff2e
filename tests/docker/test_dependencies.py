"""Every third-party module that core, inference and service import is declared in pyproject.toml: in the base
dependencies or an extra that installs the serving path (serve, serve-gpu, video, tensorrt, openvino) or the Ray
runner of the engine (ray: ``pose-predict --runner ray``), so an image never runs on a module that arrived by chance as
some other package's dependency."""

from __future__ import annotations

import ast
import importlib.metadata
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO_ROOT

try:
    import tomllib  # Python 3.11+
except ImportError:  # pragma: no cover
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

FIRST_PARTY = {"core", "models", "inference", "service", "export", "evaluation", "training", "poseserve"}
SERVING_EXTRAS = ("serve", "serve-gpu", "video", "tensorrt", "openvino", "otel", "client", "ray")
#: import name -> distribution for the modules of GPU / optional wheels that may be absent here
KNOWN_DISTRIBUTIONS = {"tensorrt": "tensorrt-cu12", "cuda": "cuda-python", "onnxruntime": "onnxruntime"}


def _imported_modules(package: str) -> dict[str, str]:
    """Top-level module name -> one file importing it, over every import statement (also inside functions)."""
    found: dict[str, str] = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO_ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in SERVING_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in reqs}


@pytest.mark.parametrize("package", ["core", "inference", "service", "poseserve"])
def test_every_third_party_import_is_declared(package):
    declared = _declared()
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, where in _imported_modules(package).items():
        if module in FIRST_PARTY or module in sys.stdlib_module_names or module == "__future__":
            continue
        dists = distributions.get(module) or [KNOWN_DISTRIBUTIONS.get(module, module)]
        if not any(canonicalize_name(d) in declared for d in dists):
            missing.append(f"{module} ({where}; distribution {', '.join(dists)})")
    assert not missing, f"imported but not declared in the base or serving extras: {missing}"


def test_multipart_range_excludes_the_cve_2024_53981_releases():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for extra in ("serve", "serve-gpu"):
        req = next(Requirement(r) for r in project["optional-dependencies"][extra] if r.startswith("python-multipart"))
        assert not req.specifier.contains("0.0.17") and req.specifier.contains("0.0.18"), (extra, req)
