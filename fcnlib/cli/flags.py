"""Python parameters and command-line flags: the one place that maps one to the other.

The library names parameters in its messages in backticks (```train_size```); :func:`to_flags`
turns them into flags (``--train-size``) when the command line prints an error. Flags of the
settings dataclasses (:mod:`fcnlib.settings`) are generated from their fields here.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

__all__ = [
    "DEPRECATED",
    "FLAGS",
    "add_settings_arguments",
    "flag",
    "settings_from_args",
    "to_flags",
]

#: Parameters whose flag is not ``--`` + the name with dashes.
FLAGS = {"checkpoint": "CHECKPOINT", "config": "--config"}

#: Former flags kept as aliases: command -> {old flag: new flag}.
DEPRECATED = {"predict": {"--scales": "--scale"}}

_PARAM = re.compile(r"`([a-z][a-z0-9_]*)`")


def flag(param: str) -> str:
    """The command-line flag of Python parameter ``param`` (``train_size`` -> ``--train-size``)."""
    return FLAGS.get(param, "--" + param.replace("_", "-"))


def to_flags(message: str) -> str:
    """``message`` with every backticked parameter name replaced by its flag."""
    return _PARAM.sub(lambda m: flag(m.group(1)), message)


def _help(f: dataclasses.Field, default: Any) -> str:
    if default is None:  # the help says what None means
        return f.metadata.get("help", "")
    shown = " ".join(map(str, default)) if isinstance(default, list) else default
    return f"{f.metadata.get('help', '')} (default: {shown})"


def add_settings_arguments(
    parser: argparse.ArgumentParser, cls: type, command: str | None = None
) -> None:
    """One flag per field of settings dataclass ``cls``, with its type, choices and help."""
    defaults = cls()
    aliases = {new: old for old, new in DEPRECATED.get(command or "", {}).items()}
    for f in dataclasses.fields(cls):
        kind, default = str(f.type), getattr(defaults, f.name)
        names = [flag(f.name)] + ([aliases[flag(f.name)]] if flag(f.name) in aliases else [])
        kw: dict[str, Any] = {"dest": f.name, "default": default, "help": _help(f, default)}
        if kind.startswith("bool"):
            kw["action"] = argparse.BooleanOptionalAction
        elif kind.startswith("list"):
            kw.update(type=float, nargs="+", metavar="X")
        elif kind.startswith("int"):
            kw.update(type=int, metavar="N")
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        if len(names) > 1:
            kw["help"] += f"; {names[1]} is its former name (deprecated)"
        parser.add_argument(*names, **kw)


def settings_from_args(args: argparse.Namespace, cls: type) -> Any:
    """The ``cls`` instance that parsed flags describe (not yet validated)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
