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


class Node:
    def __init__(self, ax, x, y, text, face="white", w=1.05, h=0.42):
        self.x, self.y, self.w, self.h = x, y, w, h
        ax.add_patch(plt.Rectangle((x - w / 2, y - h / 2), w, h,
                                   facecolor=face, edgecolor="black", lw=0.9,
                                   zorder=2))
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5, zorder=3)

    def exit(self, dx, dy):
        """Point where the ray from the centre along (dx, dy) leaves the box."""
        t = min(self.w / 2 / abs(dx) if dx else float("inf"),
                self.h / 2 / abs(dy) if dy else float("inf"))
        return self.x + t * dx, self.y + t * dy


def connect(ax, a: Node, b: Node, text: str) -> None:
    """Arrow from box a to box b, labelled with the shape it carries."""
    dx, dy = b.x - a.x, b.y - a.y
    start, end = a.exit(dx, dy), b.exit(-dx, -dy)
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops=dict(arrowstyle="->", lw=0.9, color="0.25"))
    mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
    if abs(dy) < 1e-9:  # horizontal: the label above the arrow
        ax.text(mx, my + 0.05, text, ha="center", va="bottom", fontsize=7,
                color="C0")
    else:  # slanted or vertical: the label to its right
        ax.text(mx + 0.07, my, text, ha="left", va="center", fontsize=7,
                color="C0")


def panel(ax, name, s):
    top, mid, bottom = 1.0, 0.5, 0.0
    names = ["image", "conv1_x\n+ pool1", "conv2_x\n+ pool2",
             "conv3_x\n+ pool3", "conv4_x\n+ pool4", "conv5_x\n+ pool5",
             "head\nfc6, fc7, score"]
    row = [Node(ax, 1.9 * k, top, text, face="white" if k == 0 else "0.93")
           for k, text in enumerate(names)]
    outs = [(3, H, W)] + [s[f"pool{k}"] for k in range(1, 6)]
    for k in range(6):
        connect(ax, row[k], row[k + 1], label(outs[k]))
    up = "#fde9d0"
    up4 = Node(ax, 10.6, bottom, "\u00d72\nup_pool4", face=up)
    connect(ax, row[6], up4, label(s["head"]))

    def skip(prev, shape, k, x_add, x_conv):
        """The ``+ score_pool<k>`` fusion where the model has it; the node after it."""
        name = f"score_pool{k}"
        if name not in s:
            return prev
        add = Node(ax, x_add, bottom, "+", w=0.35)
        conv = Node(ax, x_conv, mid, f"1\u00d71 conv {name}",
                    face="#e3f0e3", w=1.6, h=0.26)
        connect(ax, row[k], conv, label(s[f"pool{k}"]))
        connect(ax, conv, add, label(s[name]))
        connect(ax, prev, add, label(shape))
        return add

    shape = s["up_pool4"]
    prev = skip(up4, shape, 4, 8.6, 8.1)
    up3 = Node(ax, 6.6, bottom, "\u00d72\nup_pool3", face=up)
    connect(ax, prev, up3, label(shape))
    shape = s["up_pool3"]
    prev = skip(up3, shape, 3, 4.6, 5.15)
    up8 = Node(ax, 2.4, bottom, "\u00d78\nup_final", face=up)
    connect(ax, prev, up8, label(shape))
    out = Node(ax, 0.0, bottom, "output")
    connect(ax, up8, out, label(s["output"]))
    ax.text(-0.55, top + 0.42, name, fontsize=10, fontweight="bold",
            ha="left")
    ax.set_xlim(-0.6, 12.1)
    ax.set_ylim(-0.3, 1.55)
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
