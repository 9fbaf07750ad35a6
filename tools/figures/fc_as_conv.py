"""Figure for Chapter 2: a fully connected layer seen as a convolution.

Left: a 2x3x3 block is flattened (channel-major, as ``nn.Linear`` sees it)
into 18 numbers; each row of the 4x18 weight matrix gives one output. Right:
row 1 of the same matrix, reshaped to 2x3x3, is kernel 1 of a convolution
that slides over a larger 2x5x6 input and gives a 3x4 map per output
channel. The shapes are those of Section 2.2; the output size is measured
with ``torch.nn.Conv2d``. Colours follow the flattening order, so the same
colour marks the same weight in the matrix row and in the kernel.

Run: python tools/figures/fc_as_conv.py
(writes chapters/images/fc_as_conv.svg)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import nn

from common import box, save

C, K, OUT = 2, 3, 4  # channels, kernel size, outputs: the example of 2.2
H, W = 5, 6  # the larger input
ROW = 1  # the matrix row (and output channel) drawn in colour
WINDOW = (1, 2)  # top-left corner of the highlighted 3x3 window


def measured_output_size() -> tuple[int, int]:
    conv = nn.Conv2d(C, OUT, kernel_size=K)
    with torch.no_grad():
        return tuple(conv(torch.zeros(1, C, H, W)).shape[-2:])


def grids(ax, x0, y0, colours, cell, gap, numbers=True):
    """C grids of KxK side by side; cell (c, r, q) is index c*K*K + r*K + q."""
    for c in range(C):
        for r in range(K):
            for q in range(K):
                i = c * K * K + r * K + q
                box(ax, x0 + c * (K * cell + gap) + q * cell,
                    y0 + (K - 1 - r) * cell, cell, cell,
                    str(i) if numbers else "", face=colours[i], size=7,
                    color="white" if i < 9 else "black")
        ax.text(x0 + c * (K * cell + gap) + K * cell / 2, y0 - 0.18,
                f"channel {c}", ha="center", va="top", fontsize=7.5)


def main() -> None:
    oh, ow = measured_output_size()
    n = C * K * K
    cmap = plt.get_cmap("viridis")
    colours = [cmap(0.1 + 0.85 * i / (n - 1)) for i in range(n)]
    fig, ax = plt.subplots(figsize=(12.5, 4.4))
    ax.set_aspect("equal")
    ax.axis("off")

    # Left: the fully connected layer.
    ax.text(2.7, 4.75, f"fully connected: Linear({n}, {OUT})", ha="center",
            fontsize=10, fontweight="bold")
    grids(ax, 0.6, 2.9, colours, cell=0.45, gap=0.5)
    ax.text(2.0, 4.35, f"input block {C}x{K}x{K}", ha="center", fontsize=8)
    cell = 0.3
    xv, yv = 0.0, 1.75
    ax.annotate("", xy=(2.7, yv + cell + 0.05), xytext=(2.7, 2.45),
                arrowprops=dict(arrowstyle="->"))
    ax.text(2.8, 2.2, "flatten (channel-major)", ha="left", va="center",
            fontsize=8)
    for i in range(n):
        box(ax, xv + i * cell, yv, cell, cell, str(i), face=colours[i],
            size=6, color="white" if i < 9 else "black")
    ax.text(xv + n * cell + 0.1, yv + cell / 2, f"{n} numbers", ha="left",
            va="center", fontsize=8)
    for o in range(OUT):  # the weight matrix, aligned with the vector
        y = yv - 0.45 - (o + 1) * cell
        for i in range(n):
            face = colours[i] if o == ROW else "0.92"
            box(ax, xv + i * cell, y, cell, cell, face=face, lw=0.5)
        box(ax, xv + n * cell + 0.55, y, cell, cell, str(o),
            face="C1" if o == ROW else "white", size=7)
    ax.text(xv + n * cell / 2, yv - 0.2, f"weight matrix {OUT}x{n}",
            ha="center", va="center", fontsize=8)
    ax.text(xv + n * cell + 0.7, yv - 0.2, "outputs", ha="center",
            va="center", fontsize=8)
    ax.text(xv + n * cell / 2, yv - 0.75 - OUT * cell,
            f"output {ROW} = row {ROW} \u00b7 the {n} numbers + bias {ROW}",
            ha="center", va="center", fontsize=8)

    # Right: the same weights as a convolution.
    x0 = 8.3
    ax.text(x0 + 2.3, 4.75, f"the same weights: Conv2d({C}, {OUT}, "
            f"kernel_size={K})", ha="center", fontsize=10, fontweight="bold")
    grids(ax, x0, 2.9, colours, cell=0.45, gap=0.5)
    ax.text(x0 + 1.4, 4.35, f"row {ROW} reshaped to {C}x{K}x{K}: "
            f"kernel {ROW}", ha="center", fontsize=8)
    ci = 0.27
    yi = 0.1
    wi, hi = WINDOW
    for c in range(C):
        xc = x0 + c * (W * ci + 0.5)
        for r in range(H):
            for q in range(W):
                inside = wi <= r < wi + K and hi <= q < hi + K
                box(ax, xc + q * ci, yi + (H - 1 - r) * ci, ci, ci,
                    face="0.7" if inside else "0.96", lw=0.5)
        ax.text(xc + W * ci / 2, yi - 0.18, f"channel {c}", ha="center",
                va="top", fontsize=7.5)
    ax.text(x0 + W * ci + 0.25, yi + H * ci + 0.3, f"larger input "
            f"{C}x{H}x{W}: kernel {ROW} slides over every {K}x{K} window",
            ha="center", fontsize=8)
    for c in range(C):  # kernel -> window
        xk = x0 + c * (K * 0.45 + 0.5) + K * 0.45 / 2
        xw = x0 + c * (W * ci + 0.5) + (hi + K / 2) * ci
        ax.annotate("", xy=(xw, yi + (H - wi) * ci), xytext=(xk, 2.72),
                    arrowprops=dict(arrowstyle="->", color="0.45", lw=0.8))
    xo = x0 + 2 * (W * ci + 0.5) + 0.5
    for r in range(oh):
        for q in range(ow):
            box(ax, xo + q * ci, yi + 0.25 + (oh - 1 - r) * ci, ci, ci,
                face="C1" if (r, q) == WINDOW else "white", lw=0.7)
    ax.text(xo + ow * ci / 2, yi + 0.07, f"output channel {ROW}: "
            f"{oh}x{ow}", ha="center", va="top", fontsize=7.5)
    ax.annotate("", xy=(xo - 0.05, yi + 0.25 + 1.5 * ci),
                xytext=(x0 + W * ci * 2 + 0.5 + 0.05, yi + 2.5 * ci),
                arrowprops=dict(arrowstyle="->", color="C1", lw=1))
    ax.text(x0 + 2.3, -0.75, f"on a {K}x{K} input the map is 1x1: the "
            "Linear layer's outputs", ha="center", fontsize=8)
    ax.set_xlim(-0.2, 14.6)
    ax.set_ylim(-1.0, 5.0)
    save(fig, "fc_as_conv")


if __name__ == "__main__":
    main()
