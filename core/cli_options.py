"""The argparse <-> :class:`~core.settings.Settings` bridge: command-line options derived from the fields.

:func:`add_settings_options` adds one option per named field (the commands name them by the groups of
``core.settings``: ``MODEL_FIELDS``, ``RUNTIME_FIELDS``, ...), :func:`settings_from_args` builds the settings back
from the parsed options, and :func:`settings_table` is the README's configuration table
(``python -m core.cli_options`` prints it; a test keeps the README equal to it). :func:`export_command` goes the
other way: the ``pose-export`` command line that carries a process's settings to the subprocess that runs it
(``pose-serve`` preparing its default models, ``pose-eval --checkpoint``).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import typing
from collections.abc import Iterable
from typing import Literal

from core.settings import DEPRECATED_NAMES, ENV_PREFIX, Settings, deprecation_message
from core.version import __version__

_log = logging.getLogger(__name__)


def _flag(name: str) -> str:
    extra = Settings.model_fields[name].json_schema_extra or {}
    return extra.get("cli") or "--" + name.replace("_", "-")


def _deprecated_flags(name: str) -> list[str]:
    """The deprecated options of field ``name`` (``--<old>`` of its :data:`~core.settings.DEPRECATED_NAMES`)."""
    return ["--" + old.replace("_", "-") for old, new in DEPRECATED_NAMES.items() if new == name]


class _StoreWarningDeprecated(argparse.Action):
    """Store the value, with a deprecation warning when the option given is a deprecated spelling."""

    def __init__(self, option_strings, dest, deprecated: tuple[str, ...] = (), **kw) -> None:
        super().__init__(option_strings, dest, **kw)
        self.deprecated = deprecated

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if option_string in self.deprecated:
            _log.warning(deprecation_message(option_string, self.option_strings[0]))
        setattr(namespace, self.dest, values)


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    v = field.default
    if v is None or v == []:
        return "unset"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and v >= 1 << 20 and v % (1 << 20) == 0:
        return f"{v // (1 << 20)} MiB"
    return str(v)


def _value_type(name: str):
    """(python type, choices) of a field for argparse."""
    ann = Settings.model_fields[name].annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)] if typing.get_origin(ann) else []
    base = args[0] if len(args) == 1 else ann
    if typing.get_origin(base) is Literal:
        return str, list(typing.get_args(base))
    return base, None


def _add_option(container, name: str) -> None:
    """One field's option on a parser or an argument group."""
    field = Settings.model_fields[name]
    typ, choices = _value_type(name)
    help_text = f"{field.description} (env {ENV_PREFIX}{name.upper()}, default {_default_text(name)})"
    kw: dict = {"dest": name, "default": None, "help": help_text}
    if typ is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif typ in (int, float):
        kw["type"] = typ
    elif choices:
        kw["choices"] = choices
    old_flags = _deprecated_flags(name)
    if old_flags:
        if typ is bool:
            raise NotImplementedError(f"deprecated spelling of the boolean option {name}")
        kw.update(action=_StoreWarningDeprecated, deprecated=tuple(old_flags))
        kw["help"] += f"; deprecated spelling: {', '.join(old_flags)}"
    container.add_argument(_flag(name), *old_flags, **kw)


def add_settings_options(
    parser: argparse.ArgumentParser, names: Iterable[str], groups: Iterable[tuple[str, Iterable[str]]] = ()
) -> None:
    """Add one option per named :class:`Settings` field: its flag, type, choices and help come from the
    field (booleans get ``--x`` / ``--no-x``); every default is None, so an option given overrides the
    environment and one left out does not. :func:`settings_from_args` reads them back.

    Args:
        parser: the command's parser (or an argument group of it).
        names: the fields, e.g. a sum of ``core.settings``' named groups (``MODEL_FIELDS + RUNTIME_FIELDS``).
        groups: optional ``(title, fields)`` pairs: each becomes an argparse argument group with that title (a section
            of ``--help``) holding those of its fields that are in ``names``, in ``names``' order; a field of ``names``
            in no group is added to ``parser`` itself (a field in two groups goes in the first).

    Raises:
        KeyError: a name that is not a field.
        ValueError: a grouped field that is not in ``names``.
    """
    names = tuple(names)
    groups = [(title, tuple(fields)) for title, fields in groups]
    stray = sorted({f for _, fields in groups for f in fields} - set(names))
    if stray:
        raise ValueError(f"grouped fields not among the options: {', '.join(stray)}")
    container_of: dict[str, object] = {}
    for title, fields in groups:
        group = parser.add_argument_group(title)
        for f in fields:
            container_of.setdefault(f, group)
    for name in names:
        _add_option(container_of.get(name, parser), name)
    parser.set_defaults(_settings_fields=names)


def add_version_option(parser: argparse.ArgumentParser) -> None:
    """``--version``: print ``<prog> <version>`` (:data:`core.version.__version__`) and exit 0."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def settings_from_args(args: argparse.Namespace, **overrides) -> Settings:
    """:class:`Settings` from the environment, overridden by the options :func:`add_settings_options`
    added (those given) and then by ``overrides``.

    Raises:
        pydantic.ValidationError: an invalid value (a ``ValueError``).
    """
    given = {n: getattr(args, n) for n in getattr(args, "_settings_fields", ()) if getattr(args, n) is not None}
    return Settings(**{**given, **overrides})


def settings_table() -> str:
    """The README's configuration table (Markdown), generated from the fields, and the deprecated spellings."""
    lines = ["| variable | pose-serve option | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `{ENV_PREFIX}{name.upper()}` | `{_flag(name)}` | {_default_text(name)} | {field.description} |"
        )
    if DEPRECATED_NAMES:
        renamed = ", ".join(
            f"`{ENV_PREFIX}{old.upper()}` / `--{old.replace('_', '-')}` (now `{ENV_PREFIX}{new.upper()}` / `{_flag(new)}`)"
            for old, new in DEPRECATED_NAMES.items()
        )
        lines += ["", f"Deprecated spellings, still accepted with a warning: {renamed}."]
    return "\n".join(lines) + "\n"


def export_extra_installed() -> bool:
    """Whether ``python -m export.cli`` can run here (torch and the export package importable), without importing them."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnx", "export"))


def export_command(subcommand: list[str], settings: Settings) -> list[str]:
    """The ``python -m export.cli`` command line of ``subcommand`` with the settings the export needs from the server's
    (``--cache-dir``, ``--offline``, ``--intra-op-threads``, ``--device``; ``defaults``: ``--default-detector``): a flag of ``pose-serve`` reaches the
    export subprocess as the flag, not only through ``POSE_*`` variables."""
    cmd = [sys.executable, "-m", "export.cli", *subcommand, "--cache-dir", str(settings.cache.root)]
    cmd += ["--intra-op-threads", str(settings.intra_op_threads), "--device", str(settings.device)]
    if subcommand[:1] == ["defaults"]:
        cmd += ["--default-detector", settings.default_detector]
    return cmd + (["--offline"] if settings.offline else [])


if __name__ == "__main__":
    print(settings_table(), end="")
