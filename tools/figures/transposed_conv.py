"""Figure for Chapter 3: a transposed convolution with its padding and crop.

``fcnlib.models.Upsampler(1, 2, mode="deconv")`` maps five scores to eleven
values (2 * 5 + 1, like pool3's 41 = 2 * 20 + 1 rows in miniature): it
replicates the scores at the borders (one cell before, two after), runs its
``ConvTranspose2d`` (kernel 4, stride 2, padding 1) and crops the requested
size starting f = 2 cells in. Every number drawn is taken from running the
module on a one-row ramp; the script checks that the crop of the bare
transposed convolution's output is what ``Upsampler`` returns.

Run: python tools/figures/transposed_conv.py
(writes chapters/images/transposed_conv.svg)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from common import box, save
from fcnlib.models import Upsampler

F_UP = 2  # upsampling factor
SCORES = [0.0, 1.0, 2.0, 3.0, 4.0]
SIZE = 2 * len(SCORES) + 1  # 11
SHOWN = 3  # the padded input cell whose contributions are drawn


def compute():
    up = Upsampler(1, F_UP, mode="deconv")
    x = torch.tensor(SCORES).reshape(1, 1, 1, -1)
    with torch.no_grad():
        padded = F.pad(x, (1, 2, 1, 2), mode="replicate")
        full = up.deconv(padded)
        out = up(x, (1, SIZE))
    row = F_UP  # an interior row (every row of the padded input is equal)
    full_row = full[0, 0, row]
    cropped = full_row[F_UP : F_UP + SIZE]
    torch.testing.assert_close(out[0, 0, 0], cropped)
    # the 1-D factor of the kernel (1/4, 3/4, 3/4, 1/4): its sum is F_UP
    tent = up.deconv.weight[0, 0].sum(0) / F_UP
    k = up.deconv.kernel_size[1]
    s, p = up.deconv.stride[1], up.deconv.padding[1]
    return padded[0, 0, 0].tolist(), full_row.tolist(), tent.tolist(), k, s, p


def main() -> None:
    padded, full, tent, k, s, p = compute()
    n_in, n_full = len(padded), len(full)
    fig, ax = plt.subplots(figsize=(11, 4.4))
    ax.axis("off")
    y_in, y_full, y_out, h = 4.0, 2.0, 0.0, 0.8
    # Padded input: cell q covers the output cells s*q - p .. s*q - p + k - 1
    for q, v in enumerate(padded):
        replicated = q < 1 or q >= n_in - 2
        box(ax, s * q, y_in, s, h, f"{v:g}",
            face="0.9" if replicated else "C0", hatch="//" if replicated
            else None, color="black" if replicated else "white")
    ax.text(-0.6, y_in + h / 2, f"scores, replicate-padded\n(1 + "
            f"{len(SCORES)} + 2 = {n_in})", ha="right", va="center")
    # Bare transposed convolution output
    for o, v in enumerate(full):
        kept = F_UP <= o < F_UP + SIZE
        box(ax, o, y_full, 1, h, f"{v:.2f}", face="white" if kept else "0.85",
            size=7)
    ax.text(-0.6, y_full + h / 2, f"ConvTranspose2d(kernel {k}, stride {s},"
            f"\npadding {p}): {n_full} values", ha="right", va="center")
    # Contributions of one input cell
    q = SHOWN
    for t, wgt in enumerate(tent):
        o = s * q - p + t
        ax.annotate("", xy=(o + 0.5, y_full + h), xytext=(s * q + 1, y_in),
                    arrowprops=dict(arrowstyle="->", color="C3", lw=1))
        frac = {0.25: "\u00bc", 0.75: "\u00be"}.get(round(wgt, 6), f"{wgt:g}")
        ax.text(o + 0.5, y_full + h + 0.12, f"\u00d7{frac}", ha="center",
                va="bottom", color="C3", fontsize=9, zorder=3,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.3))
    # Crop and result
    ax.annotate("", xy=(F_UP, y_full - 0.35), xytext=(F_UP + SIZE,
                y_full - 0.35), arrowprops=dict(arrowstyle="|-|", lw=1))
    ax.text(F_UP + SIZE / 2, y_full - 0.7, f"crop: start {F_UP} cells in, "
            f"keep the requested {SIZE}", ha="center", fontsize=8)
    for o in range(F_UP, F_UP + SIZE):
        box(ax, o, y_out, 1, h, f"{full[o]:.2f}", face="C1", size=7)
    ax.text(-0.6, y_out + h / 2, f"Upsampler output\n({SIZE} = {F_UP} x "
            f"{len(SCORES)} + 1)", ha="right", va="center")
    ax.text(n_full + 0.3, y_full + h / 2, "grey: outside the crop\n(less "
            "than full weight\nat the two ends)", ha="left", va="center",
            fontsize=8)
    ax.set_xlim(-5.5, n_full + 3.5)
    ax.set_ylim(-0.3, y_in + h + 0.3)
    save(fig, "transposed_conv")


if __name__ == "__main__":
    main()
