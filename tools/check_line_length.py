#!/usr/bin/env python3
"""Check that no code-cell line of the given notebooks is longer than a limit.

Usage: python tools/check_line_length.py [--max 79] NOTEBOOK.ipynb ...

Prints one line per offending code line (``path:cell N:line M: L chars``) and
exits 1 if there is any, 0 otherwise. Only code cells are checked; markdown is
reflowed by the book's HTML and may be longer. Standard library only, so a test
can import :func:`long_lines` or run the script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MAX = 79


def long_lines(path: str | Path, limit: int = DEFAULT_MAX):
    """(cell index, line number, length, text) of code lines over limit."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        for number, line in enumerate(text.splitlines(), 1):
            if len(line) > limit:
                found.append((index, number, len(line), line))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="notebook paths")
    parser.add_argument("--max", type=int, default=DEFAULT_MAX,
                        help=f"longest allowed line (default {DEFAULT_MAX})")
    args = parser.parse_args(argv)
    total = 0
    for path in args.notebooks:
        for index, number, length, _ in long_lines(path, args.max):
            print(f"{path}:cell {index}:line {number}: {length} chars "
                  f"(max {args.max})")
            total += 1
    if total:
        print(f"{total} code line(s) longer than {args.max} characters")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
