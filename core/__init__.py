"""Foundations every other package stands on: settings and their named field groups (``settings``), the argparse <->
settings bridge (``cli_options``), the cache layout (``cache``: every path below the cache root), hashing
(``hashing``) and the error types (``errors``).

Torch-free and HTTP-free (pydantic-settings and the standard library only); imports nothing of this repository
outside ``core`` (the import-linter contracts in ``pyproject.toml`` hold it).
"""
