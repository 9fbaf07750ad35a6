"""Figure for Chapter 2: receptive fields of a pool5 cell and of a score cell.

The fields are computed, not typed: the rules of Chapter 1 (a layer with
kernel k widens the field by (k - 1) times the stride so far; padding p moves
its start back by p times the stride so far) are applied to the layers of
``fcnlib.models.make_layers(cfgs["D"])`` and to a 7x7 fc6 without padding, as
in ``fcnlib.models.convolutionalize``. The input is Chapter 2's 384x512 image.

Run: python tools/figures/receptive_field.py
(writes chapters/images/receptive_field.svg)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from torch import nn

from common import save
from fcnlib.models import cfgs, make_layers, output_stride_sizes

H, W = 384, 512  # the image of Chapter 2
SCORE_CELL = (1, 2)  # a cell of the 6x10 score map


def receptive_field(layers):
    """(field, stride, start of cell 0) in input pixels after ``layers``."""
    rf, stride, start = 1, 1, 0
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = m.kernel_size, m.stride, m.padding
            k, s, p = (v[0] if isinstance(v, tuple) else v for v in (k, s, p))
            start -= p * stride
            rf, stride = rf + (k - 1) * stride, stride * s
    return rf, stride, start


def main() -> None:
    features = make_layers(cfgs["D"], width=0.0625)  # sizes need no width
    fc6 = nn.Conv2d(32, 1, kernel_size=7)  # unpadded, as convolutionalize
    rf5, stride, start5 = receptive_field(features)
    rf6, _, start6 = receptive_field(list(features) + [fc6])
    assert (rf5, rf6, stride) == (212, 404, 32)
    p5h, p5w = output_stride_sizes(H, W)[-1]
    i, j = SCORE_CELL
    # The score cell (i, j) reads pool5 cells (i..i+6, j..j+6); its centre
    # is pool5 cell (i+3, j+3), whose own field is drawn too.
    ci, cj = i + 3, j + 3

    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    pad = -start5  # the padding reach of the border fields (90 px)
    ax.add_patch(plt.Rectangle((-pad, -pad), W + 2 * pad, H + 2 * pad,
                               facecolor="0.97", edgecolor="0.8", lw=0,
                               hatch="//", label="zero padding"))
    ax.add_patch(plt.Rectangle((0, 0), W, H, facecolor="white",
                               edgecolor="black", lw=1.2))
    for r in range(1, p5h):
        ax.plot([0, W], [r * stride] * 2, color="0.8", lw=0.5)
    for q in range(1, p5w):
        ax.plot([q * stride] * 2, [0, H], color="0.8", lw=0.5)
    ax.add_patch(plt.Rectangle((cj * stride, ci * stride), stride, stride,
                               facecolor="C0", edgecolor="C0",
                               label=f"pool5 cell ({ci}, {cj}): "
                                     f"its {stride}x{stride} grid cell"))
    ax.add_patch(plt.Rectangle((start5 + cj * stride, start5 + ci * stride),
                               rf5, rf5, facecolor="C0", alpha=0.18,
                               edgecolor="C0", lw=1.5,
                               label=f"its receptive field, {rf5}x{rf5}"))
    ax.add_patch(plt.Rectangle((start6 + j * stride, start6 + i * stride),
                               rf6, rf6, facecolor="none", edgecolor="C3",
                               lw=2, ls="--",
                               label=f"score cell ({i}, {j}): receptive "
                                     f"field {rf6}x{rf6}"))
    ax.set_xlim(-pad - 10, W + pad + 10)
    ax.set_ylim(H + pad + 10, -pad - 10)  # image coordinates: y down
    ax.set_aspect("equal")
    ax.set_xticks([0, 128, 256, 384, 512])
    ax.set_yticks([0, 128, 256, 384])
    ax.set_xlabel("column (pixels)")
    ax.set_ylabel("row (pixels)")
    ax.set_title(f"{H}x{W} input, {p5h}x{p5w} pool5 cells "
                 f"{stride} px apart")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
              fontsize=8, frameon=False)
    save(fig, "receptive_field")


if __name__ == "__main__":
    main()
