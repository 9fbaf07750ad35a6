#!/usr/bin/env python3
"""Check that no printed output line of executed notebooks is wider than the page's output box.

Usage: python tools/check_output_width.py [--max 88] NOTEBOOK.ipynb|FOLDER ...

A folder is searched for ``*.ipynb`` (e.g. ``_build/jupyter_execute`` after a book build, where
Jupyter Book keeps the executed notebooks). Checked: stream output (``print``), error
tracebacks' last line, and the plain-text result of a cell when it has no HTML or image form
(a DataFrame is shown as an HTML table, which the page lets scroll). Prints one line per offender
(``path:cell N: L chars: text``) and exits 1 if there is any. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MAX = 88
RICH = ("text/html", "image/png", "image/svg+xml", "application/vnd.jupyter.widget-view+json")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _printed(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return _text(output.get("text"))
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        return "" if any(k in data for k in RICH) else _text(data.get("text/plain"))
    if kind == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}"
    return ""


def wide_lines(path: str | Path, limit: int = DEFAULT_MAX) -> list[tuple[int, int, str]]:
    """(cell index, length, line) of printed output lines longer than ``limit``."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []) or []:
            for line in _printed(output).replace("\r", "\n").splitlines():
                if len(line) > limit:
                    found.append((index, len(line), line))
    return found


def notebooks(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.rglob("*.ipynb")) if p.is_dir() else [p]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="executed notebooks or folders of them")
    parser.add_argument("--max", type=int, default=DEFAULT_MAX,
                        help=f"widest allowed line (default {DEFAULT_MAX})")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"no such file or folder: {' '.join(missing)}")
        return 1
    found = notebooks(args.paths)
    if not found:
        print(f"no notebooks found in {' '.join(args.paths)}")
        return 1
    total = 0
    for path in found:
        for index, length, line in wide_lines(path, args.max):
            print(f"{path}:cell {index}: {length} chars: {line[:60]}...")
            total += 1
    if total:
        print(f"{total} output line(s) wider than {args.max} characters")
        return 1
    print(f"{len(found)} notebook(s): no output line wider than {args.max} characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
