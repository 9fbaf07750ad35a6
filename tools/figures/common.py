"""Shared helpers for the book's figure scripts (tools/figures/*.py).

Every script draws one static figure with matplotlib and writes it to
``chapters/images/<name>.svg``. The SVGs are reproducible: a fixed hash salt
and no date in the metadata, so re-running a script on unchanged code gives
an identical file.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "chapters" / "images"

plt.rcParams.update({
    "svg.hashsalt": "fcn-book",
    "font.size": 9,
    "font.family": "DejaVu Sans",
})


def save(fig, name: str) -> Path:
    """Write ``fig`` to chapters/images/<name>.svg and close it."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.svg"
    fig.savefig(path, format="svg", bbox_inches="tight",
                metadata={"Date": None})
    preview = os.environ.get("FIGURE_PREVIEW_DIR")
    if preview:  # also a PNG, for looking at the figure without a browser
        Path(preview).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(preview) / f"{name}.png", dpi=110,
                    bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def box(ax, x, y, w, h, text="", *, face="white", edge="black", hatch=None,
        size=9, lw=1.0, color="black"):
    """A rectangle with lower-left corner (x, y) and centred text."""
    ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=face, edgecolor=edge,
                               hatch=hatch, lw=lw))
    if text != "":
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center",
                fontsize=size, color=color)
