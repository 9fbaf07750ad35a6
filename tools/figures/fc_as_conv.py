"""Figure for Chapter 2: a fully connected layer seen as a convolution.

Left: a 2x3x3 block is flattened (channel-major, as ``nn.Linear`` sees it)
into 18 numbers and multiplied by a 4x18 weight matrix. Right: the same
matrix, each row reshaped to a 2x3x3 kernel, slides over a 2x5x6 input and
gives a 4x3x4 map. The shapes are those of Section 2.2; the output size is
measured with ``torch.nn.Conv2d``. Colours follow the flattening order, so
the same colour marks the same weight in the matrix row and in the kernel.

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


def measured_output_size() -> tuple[int, int]:
    conv = nn.Conv2d(C, OUT, kernel_size=K)
    with torch.no_grad():
        return tuple(conv(torch.zeros(1, C, H, W)).shape[-2:])


def draw_block(ax, x0, y0, colours, cell=0.5, gap=0.35, label=True):
    """C stacked KxK grids; cell index c*K*K + r*K + q gets colours[index]."""
    for c in range(C):
        ox, oy = x0 + c * gap, y0 - c * gap
        for r in range(K):
            for q in range(K):
                i = c * K * K + r * K + q
                box(ax, ox + q * cell, oy + (K - 1 - r) * cell, cell, cell,
                    str(i) if label else "", face=colours[i], size=6)


def main() -> None:
    oh, ow = measured_output_size()
    n = C * K * K
    cmap = plt.get_cmap("viridis")
    colours = [cmap(0.15 + 0.8 * i / (n - 1)) for i in range(n)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2),
                                      gridspec_kw={"width_ratios": [1, 1]})
    for ax in (left, right):
        ax.set_aspect("equal")
        ax.axis("off")

    # Left: fully connected.
    left.set_title("fully connected: Linear(18, 4)")
    draw_block(left, 0, 3.2, colours)
    left.text(0.9, 5.0, f"input block {C}x{K}x{K}", ha="center")
    left.annotate("", xy=(2.6, 3.9), xytext=(2.0, 3.9),
                  arrowprops=dict(arrowstyle="->"))
    left.text(2.3, 4.15, "flatten", ha="center", fontsize=8)
    cell = 0.28
    for i in range(n):  # the flattened vector, as a column
        box(left, 2.8, 6.2 - (i + 1) * cell, cell, cell, str(i),
            face=colours[i], size=5)
    left.text(2.94, 6.35, f"{n} numbers", ha="center", fontsize=8)
    for o in range(OUT):  # the weight matrix, OUT rows of n entries
        for i in range(n):
            face = colours[i] if o == 1 else "0.92"
            box(left, 3.6 + i * cell, 4.6 - o * cell, cell, cell, face=face,
                lw=0.5)
    left.text(3.6 + n * cell / 2, 5.1, f"weight matrix {OUT}x{n} (row 1 "
              "coloured)", ha="center", fontsize=8)
    for o in range(OUT):  # the output vector
        box(left, 3.6 + n * cell + 0.5, 4.6 - o * cell, cell, cell,
            f"{o}", face="C1" if o == 1 else "white", size=6)
    left.text(3.6 + n * cell + 0.64, 5.1, f"{OUT} outputs", ha="center",
              fontsize=8)
    left.text(4.5, 2.6, "output o = row o of the matrix \u00b7 flattened "
              "block + bias o", ha="center", fontsize=8)
    left.set_xlim(-0.3, 9.6)
    left.set_ylim(2.3, 6.6)

    # Right: the same weights as a convolution.
    right.set_title(f"the same weights as Conv2d({C}, {OUT}, kernel_size="
                    f"{K})")
    draw_block(right, 0, 3.9, colours)
    right.text(0.9, 5.7, "row 1, reshaped:\nkernel 1", ha="center",
               fontsize=8)
    cell = 0.42
    x0, y0 = 3.0, 2.9
    for c in (1, 0):  # the larger input, channel 0 in front
        ox, oy = x0 + c * 0.3, y0 - c * 0.3
        for r in range(H):
            for q in range(W):
                inside = 1 <= r < 1 + K and 2 <= q < 2 + K
                face = "0.75" if inside and c == 0 else "0.95"
                box(right, ox + q * cell, oy + (H - 1 - r) * cell, cell, cell,
                    face=face, lw=0.5)
    right.text(x0 + W * cell / 2, y0 + H * cell + 0.25,
               f"input {C}x{H}x{W}", ha="center", fontsize=8)
    right.annotate("", xy=(x0 + 2 * cell, y0 + 3 * cell),
                   xytext=(1.8, 4.6),
                   arrowprops=dict(arrowstyle="->", color="0.3"))
    right.text(2.0, 3.2, "slides over\nevery 3x3\nposition", ha="center",
               fontsize=8)
    xo, yo, co = 6.4, 3.1, 0.42
    for r in range(oh):
        for q in range(ow):
            face = "C1" if (r, q) == (1, 2) else "white"
            box(right, xo + q * co, yo + (oh - 1 - r) * co, co, co,
                face=face, lw=0.7)
    right.text(xo + ow * co / 2, yo + oh * co + 0.25,
               f"output channel 1: {oh}x{ow}", ha="center", fontsize=8)
    right.text(4.6, 2.0, f"on a {K}x{K} input: a 1x1 map, equal to the "
               "Linear layer's outputs", ha="center", fontsize=8)
    right.set_xlim(-0.3, 8.6)
    right.set_ylim(1.7, 6.6)
    save(fig, "fc_as_conv")


if __name__ == "__main__":
    main()
