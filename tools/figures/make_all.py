"""Regenerate every figure of chapters/images/ made by tools/figures/*.py.

Run from anywhere: python tools/figures/make_all.py
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["fc_as_conv", "receptive_field", "fcn_graph", "transposed_conv"]

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    for name in SCRIPTS:
        runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
