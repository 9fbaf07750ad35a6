"""The class file of a user's folder: ``DIR/classes.yaml`` names the classes, their colours and
the ignore value once, for ``fcnlib check-data``, ``train``, ``eval`` and ``predict``.

The format (label = position in the list, from 0)::

    classes:
      - {name: road, color: [128, 64, 128]}
      - {name: person, color: [220, 20, 60]}
    ignore: 255          # optional (default 255): the mask value that no loss or metric counts

A colour may be left out (the VOC colour of that label is used). The ignore value lies between
the number of classes and 255.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fcnlib.constants import IGNORE_INDEX
from fcnlib.fileio import atomic_write_text

from .classes import Color, voc_palette
from .errors import DatasetError

__all__ = ["CLASS_FILE", "ClassFile", "read_class_file", "write_class_file"]

#: The class file's name inside a folder data set.
CLASS_FILE = "classes.yaml"


@dataclass(frozen=True)
class ClassFile:
    """Class names, one colour per class, and the mask value to ignore."""

    names: tuple[str, ...]
    colors: tuple[Color, ...]
    ignore: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def palette(self) -> list[Color]:
        """256 colours, index = label: the classes' colours, then VOC's."""
        return list(self.colors) + voc_palette()[len(self.colors) :]


def _color(value: Any, label: int, where: str) -> Color:
    if value is None:
        return voc_palette()[label]
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise DatasetError(f"{where}: class {label} colour must be [r, g, b], got {value!r}")
    if not all(0 <= v <= 255 for v in value):
        raise DatasetError(f"{where}: class {label} colour values must lie in 0..255, got {value}")
    return (value[0], value[1], value[2])


def _entry(item: Any, label: int, where: str) -> tuple[str, Color]:
    """``(name, colour)`` of one list entry: a mapping with ``name`` (and ``color``) or a name."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or set(item) - {"name", "color"}:
        raise DatasetError(
            f"{where}: class {label} must be a name or {{name: ..., color: [r, g, b]}}, got {item!r}"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise DatasetError(f"{where}: class {label} needs a one-line name, got {name!r}")
    return name.strip(), _color(item.get("color"), label, where)


def parse_class_file(data: Any, where: str) -> ClassFile:
    """Check the loaded YAML ``data`` of a class file (``where`` names it in errors)."""
    if not isinstance(data, dict) or set(data) - {"classes", "ignore"} or "classes" not in data:
        raise DatasetError(f"{where}: expected a mapping with 'classes' (and optional 'ignore')")
    items = data["classes"]
    if not isinstance(items, list) or not 2 <= len(items) <= 255:
        raise DatasetError(f"{where}: 'classes' must be a list of 2..255 classes")
    entries = [_entry(item, label, where) for label, item in enumerate(items)]
    names = tuple(name for name, _ in entries)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetError(f"{where}: class names must differ; given twice: {', '.join(twice)}")
    ignore = data.get("ignore", IGNORE_INDEX)
    if isinstance(ignore, bool) or not isinstance(ignore, int):
        raise DatasetError(f"{where}: ignore must be a whole number, got {ignore!r}")
    if not len(names) <= ignore <= 255:
        raise DatasetError(
            f"{where}: ignore must lie in {len(names)}..255 (not a class label), got {ignore}"
        )
    return ClassFile(names, tuple(color for _, color in entries), ignore)


def read_class_file(root: str | Path) -> ClassFile | None:
    """The class file ``root/classes.yaml``, or None where there is none."""
    path = Path(root) / CLASS_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise DatasetError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    return parse_class_file(data, str(path))


def write_class_file(
    root: str | Path,
    names: Sequence[str],
    colors: Sequence[Color] | None = None,
    ignore: int = IGNORE_INDEX,
) -> Path:
    """Write ``root/classes.yaml`` (checked as :func:`read_class_file` checks it); returns its path."""
    items = [
        {"name": n} if colors is None else {"name": n, "color": [int(v) for v in colors[k]]}
        for k, n in enumerate(names)
    ]
    path = Path(root) / CLASS_FILE
    parse_class_file({"classes": items, "ignore": ignore}, str(path))
    lines = [
        "# label = position in this list (0, 1, ...); mask pixels equal to ignore count nowhere"
    ]
    lines.append("classes:")
    for item in items:
        color = f", color: [{', '.join(map(str, item['color']))}]" if "color" in item else ""
        lines.append(f"  - {{name: {json.dumps(item['name'])}{color}}}")
    lines.append(f"ignore: {ignore}")
    atomic_write_text("\n".join(lines) + "\n", path)
    return path
