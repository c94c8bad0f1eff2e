"""Print the largest production files and the longest functions; exit 1 if any is over the limit.

    python tools/code_size.py [--top N]

Production code is every ``*.py`` under the repository except ``tests/``, ``bench/`` and ``tools/``. A file's size is
its line count; a function's size is ``end_lineno - lineno + 1`` of its ``def`` (decorators excluded, nested
functions counted inside their parent and on their own). Limits: 500 lines a file, 80 lines a function.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED = {"tests", "bench", "tools", ".venv", "build", "dist"}
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def production_files(root: Path = ROOT) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in EXCLUDED or any(p.startswith(".") for p in parts):
            continue
        files.append(path)
    return files


def function_sizes(path: Path) -> list[tuple[int, str]]:
    """(lines, "path:line name") for every function and method in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(ROOT)
    sizes = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            sizes.append((node.end_lineno - node.lineno + 1, f"{rel}:{node.lineno} {node.name}"))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many files and functions to print (default 10)")
    args = parser.parse_args(argv)

    files = [(len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(ROOT))) for p in production_files()]
    functions = [s for p in production_files() for s in function_sizes(p)]
    files.sort(reverse=True)
    functions.sort(reverse=True)

    print(f"largest production files (limit {MAX_FILE_LINES} lines):")
    for n, name in files[: args.top]:
        print(f"  {n:5d}  {name}")
    print(f"longest functions (limit {MAX_FUNCTION_LINES} lines):")
    for n, name in functions[: args.top]:
        print(f"  {n:5d}  {name}")

    big_files = [f for f in files if f[0] > MAX_FILE_LINES]
    long_functions = [f for f in functions if f[0] > MAX_FUNCTION_LINES]
    print(f"files over {MAX_FILE_LINES}: {len(big_files)}; functions over {MAX_FUNCTION_LINES}: {len(long_functions)}")
    for n, name in big_files + long_functions:
        if (n, name) not in files[: args.top] and (n, name) not in functions[: args.top]:
            print(f"  {n:5d}  {name}")
    return 1 if big_files or long_functions else 0


if __name__ == "__main__":
    sys.exit(main())
