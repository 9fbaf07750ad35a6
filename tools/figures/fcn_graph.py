"""Figure for Chapter 3: the FCN-32s / 16s / 8s graphs with their shapes.

Every edge is labelled with the shape (channels x height x width) of the
tensor it carries for the book's 333x517 example image. The shapes are
measured, not typed: each full-width ``fcnlib`` model runs once on a
333x517 input with forward hooks on its pools, head, skip score layers and
upsamplers.

Run: python tools/figures/fcn_graph.py  (writes chapters/images/fcn_graph.svg;
about half a minute on a 2-core CPU: three full-width forward passes)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import nn

from common import save
from fcnlib.models import fcn8s, fcn16s, fcn32s, output_stride_sizes

H, W = 333, 517
PIECES = ("head", "up_pool4", "score_pool4", "up_pool3", "score_pool3",
          "up_final")


def measure(builder) -> dict[str, tuple[int, ...]]:
    """Shape of every piece's output, from one forward pass with hooks."""
    net = builder(21).eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def keep(name):
        return lambda m, i, o: shapes.__setitem__(name, tuple(o.shape[1:]))

    pools = [m for m in net.features if isinstance(m, nn.MaxPool2d)]
    hooks = [m.register_forward_hook(keep(f"pool{k}"))
             for k, m in enumerate(pools, 1)]
    hooks += [getattr(net, n).register_forward_hook(keep(n))
              for n in PIECES if hasattr(net, n)]
    with torch.no_grad():
        shapes["output"] = tuple(net(torch.zeros(1, 3, H, W)).shape[1:])
    for h in hooks:
        h.remove()
    sizes = output_stride_sizes(H, W)
    assert [shapes[f"pool{k}"][1:] for k in range(1, 6)] == sizes
    assert shapes["output"] == (21, H, W)
    return shapes


def label(shape) -> str:
    return "\u00d7".join(str(v) for v in shape)


def node(ax, x, y, text, face="white", w=1.25, h=0.42):
    ax.add_patch(plt.Rectangle((x - w / 2, y - h / 2), w, h, facecolor=face,
                               edgecolor="black", lw=0.9, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5, zorder=3)


def edge(ax, a, b, text, *, side="above", wa=1.25, wb=1.25):
    """Arrow from node centre a to node centre b, labelled with a shape."""
    (xa, ya), (xb, yb) = a, b
    if ya == yb:  # horizontal: from the border of a to the border of b
        d = 1 if xb > xa else -1
        start, end = (xa + d * wa / 2, ya), (xb - d * wb / 2, yb)
    elif xa == xb:  # vertical
        d = 1 if yb > ya else -1
        start, end = (xa, ya + d * 0.21), (xb, yb - d * 0.21)
    else:
        start, end = (xa, ya - 0.21), (xb + wb / 2, yb)
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops=dict(arrowstyle="->", lw=0.9, color="0.2"))
    mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
    if side == "above":
        ax.text(mx, my + 0.09, text, ha="center", va="bottom", fontsize=7,
                color="C0")
    else:  # to the right of a vertical edge
        ax.text(mx + 0.08, my, text, ha="left", va="center", fontsize=7,
                color="C0")


def panel(ax, name, s):
    top, bottom, mid = 1.0, 0.0, 0.5
    xs = [0.0, 1.7, 3.4, 5.1, 6.8, 8.5, 10.2]  # image, blocks 1-5, head
    names = ["image", "conv1_x\n+ pool1", "conv2_x\n+ pool2",
             "conv3_x\n+ pool3", "conv4_x\n+ pool4", "conv5_x\n+ pool5",
             "head\nfc6, fc7, score"]
    for x, text in zip(xs, names):
        node(ax, x, top, text, face="0.93" if text != "image" else "white")
    outs = [(3, H, W)] + [s[f"pool{k}"] for k in range(1, 6)]
    for k in range(6):
        edge(ax, (xs[k], top), (xs[k + 1], top), label(outs[k]))
    has4, has3 = "score_pool4" in s, "score_pool3" in s
    x_up4, x_add4, x_up3, x_add3, x_up8, x_out = 8.5, 6.8, 5.95, 5.1, 2.55, 0
    node(ax, x_up4, bottom, "\u00d72\nup_pool4", face="#fde9d0")
    edge(ax, (xs[6], top), (x_up4, bottom), label(s["head"]))
    prev = (x_up4, bottom)
    for has, x_add, skip, up_x, up_name, pool_x in (
            (has4, x_add4, "score_pool4", x_up3, "up_pool3", xs[4]),
            (has3, x_add3, "score_pool3", x_up8, "up_final", xs[3])):
        up_shape = s["up_pool4" if skip == "score_pool4" else "up_pool3"]
        if has:
            node(ax, x_add, bottom, "+", w=0.45)
            edge(ax, prev, (x_add, bottom), label(up_shape),
                 wa=1.25 if prev[0] in (x_up4, x_up3) else 0.45, wb=0.45)
            node(ax, pool_x, mid, f"1\u00d71 conv\n{skip}", face="#e3f0e3",
                 w=1.25, h=0.3)
            ax.annotate("", xy=(pool_x, mid + 0.15), xytext=(pool_x,
                        top - 0.21), arrowprops=dict(arrowstyle="->",
                        lw=0.9, color="0.2"))
            pool_shape = s["pool4" if skip == "score_pool4" else "pool3"]
            ax.text(pool_x + 0.08, (mid + top) / 2 + 0.03, label(pool_shape),
                    ha="left", va="center", fontsize=7, color="C0")
            ax.annotate("", xy=(x_add, bottom + 0.21), xytext=(pool_x,
                        mid - 0.15), arrowprops=dict(arrowstyle="->",
                        lw=0.9, color="0.2"))
            ax.text(pool_x + 0.08, (mid + bottom) / 2 + 0.05, label(s[skip]),
                    ha="left", va="center", fontsize=7, color="C0")
            prev = (x_add, bottom)
        text = "\u00d78\nup_final" if up_name == "up_final" else \
            "\u00d72\nup_pool3"
        node(ax, up_x, bottom, text, face="#fde9d0")
        edge(ax, prev, (up_x, bottom), label(up_shape),
             wa=0.45 if has else 1.25)
        prev = (up_x, bottom)
    node(ax, x_out, bottom, "output", face="white")
    edge(ax, prev, (x_out, bottom), label(s["output"]))
    ax.text(-0.75, top + 0.45, name, fontsize=10, fontweight="bold",
            ha="left")
    ax.set_xlim(-0.8, 11.0)
    ax.set_ylim(-0.35, 1.6)
    ax.axis("off")


def main() -> None:
    fig, axes = plt.subplots(3, 1, figsize=(12, 7.2))
    for ax, (name, builder) in zip(axes, [("FCN-32s", fcn32s),
                                          ("FCN-16s", fcn16s),
                                          ("FCN-8s", fcn8s)]):
        panel(ax, name, measure(builder))
    fig.tight_layout()
    save(fig, "fcn_graph")


if __name__ == "__main__":
    main()
