"""Visualisation: colour label maps, overlays, legends, training curves and confusion matrices.

Figures are plain :class:`matplotlib.figure.Figure` objects, not pyplot figures: no backend is
selected or forced here, nothing is registered with pyplot's global figure manager, ``savefig``
works headless (it renders with Agg), and a Figure that is the last expression of a notebook cell
is still displayed inline by IPython. Close nothing: a Figure is freed when no longer referenced.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image
from torch import Tensor
from torchvision.utils import draw_segmentation_masks

from .constants import IGNORE_INDEX
from .data.classes import Color
from .data.classes import palette_colors as _color_list
from .data.classes import voc_palette as _default_palette

__all__ = [
    "colorize",
    "legend_figure",
    "overlay",
    "plot_confusion",
    "plot_history",
    "read_history",
    "side_by_side",
]

History = Sequence[Mapping[str, Any]] | str | os.PathLike


def _palette_colors(palette: Sequence[Any] | None) -> list[Color]:
    """``None`` (VOC), ``[(r, g, b), ...]`` or flat ``[r, g, b, ...]`` -> list of 256 colours (0-padded)."""
    if palette is None:
        return _default_palette()
    colors = _color_list(palette)
    return colors + [(0, 0, 0)] * (256 - len(colors))


def _labels_tensor(labels: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(np.asarray(labels)) if isinstance(labels, np.ndarray) else labels
    if not isinstance(t, Tensor):
        raise TypeError(f"labels must be a tensor or numpy array, got {type(labels).__name__}")
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise ValueError(f"labels must be H x W, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {t.dtype}")
    return t.detach().cpu()


def _image_tensor(image: Image.Image | Tensor | np.ndarray) -> Tensor:
    """PIL image / uint8 ``3 x H x W`` tensor / uint8 ``H x W x 3`` array -> uint8 ``(3, H, W)`` tensor (CPU)."""
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"numpy image must be uint8 H x W x 3, got {image.dtype} {image.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
            raise ValueError(
                f"image tensor must be uint8 3 x H x W, got {image.dtype} {tuple(image.shape)}"
            )
        return image.detach().cpu()
    raise TypeError(f"image must be a PIL image, tensor or numpy array, got {type(image).__name__}")


def colorize(labels: Tensor | np.ndarray, palette: Sequence[Any] | None = None) -> Image.Image:
    """Label map ``H x W`` (integers 0..255) -> ``'P'`` PIL image with ``palette`` (VOC by default).

    Pixel values are the labels themselves, so ``np.array(colorize(y)) == y``; 255 (ignore) shows in
    the palette's colour 255 ((224, 224, 192) for VOC). Save it as PNG to get a VOC-style mask.
    """
    t = _labels_tensor(labels)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > 255):
        raise ValueError(
            f"labels must lie in 0..255 for a palette image, got {int(t.min())}..{int(t.max())}"
        )
    im = Image.fromarray(t.to(torch.uint8).numpy())
    im.putpalette([v for c in _palette_colors(palette) for v in c])
    return im


def overlay(
    image: Image.Image | Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    num_classes: int,
    alpha: float = 0.5,
    colors: Sequence[Any] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Blend class colours over ``image``; returns a uint8 ``(3, H, W)`` tensor.

    One boolean mask per class present in ``labels`` (``H x W``, values in ``[0, num_classes)`` or
    ``ignore_index``) is drawn with ``torchvision.utils.draw_segmentation_masks(image, masks, alpha,
    colors)``; pixels of ``ignore_index`` are left exactly as in ``image``. ``colors``: one
    ``(r, g, b)`` per class (default: the VOC palette). Works in row strips of ~4 MP, so a 20 MP
    photo needs ~50 MB of float temporaries (the result is identical to one call).
    """
    img = _image_tensor(image)
    lab = _labels_tensor(labels)
    if tuple(lab.shape) != tuple(img.shape[-2:]):
        raise ValueError(
            f"labels {tuple(lab.shape)} and image {tuple(img.shape[-2:])} differ in size"
        )
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    palette = _default_palette() if colors is None else _color_list(colors)
    if len(palette) < num_classes:
        raise ValueError(f"need at least num_classes={num_classes} colours, got {len(palette)}")
    present = [int(c) for c in torch.unique(lab)]
    bad = [c for c in present if not (0 <= c < num_classes or c == ignore_index)]
    if bad:
        raise ValueError(
            f"labels {bad[:5]} outside 0..{num_classes - 1} (and not ignore_index={ignore_index})"
        )
    present = [c for c in present if c != ignore_index]
    out = img.clone()
    H, W = lab.shape
    rows = max(1, (1 << 22) // max(1, W))
    for y0 in range(0, H, rows):
        strip = lab[y0 : y0 + rows]
        cls = [c for c in present if bool((strip == c).any())]
        if not cls:
            continue
        masks = strip[None] == torch.tensor(cls)[:, None, None]
        drawn = draw_segmentation_masks(
            img[:, y0 : y0 + rows], masks, alpha=alpha, colors=[palette[c] for c in cls]
        )
        keep = masks.any(0)
        out[:, y0 : y0 + rows][:, keep] = drawn[:, keep]
    return out


def _legend_handles(
    classes: Sequence[str], colors: Sequence[Color], ids: Sequence[int]
) -> list[Patch]:
    return [
        Patch(
            facecolor=np.array(colors[i]) / 255.0,
            edgecolor="black",
            linewidth=0.5,
            label=str(classes[i]),
        )
        for i in ids
    ]


def side_by_side(
    image: Image.Image | Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    classes: Sequence[str],
    palette: Sequence[Any] | None = None,
    title: str | None = None,
    *,
    alpha: float = 0.5,
    max_display: int = 1600,
) -> Figure:
    """Figure: the image, its overlay, and a legend of the classes present (with their colours).

    ``labels`` ``H x W`` in ``[0, len(classes))`` or 255 (ignore, not drawn). Images larger than
    ``max_display`` px on the longer side are shown downscaled (labels with nearest neighbour).
    """
    img = _image_tensor(image)
    lab = _labels_tensor(labels)
    colors = _palette_colors(palette)
    H, W = lab.shape
    if max(H, W) > max_display:
        r = max_display / max(H, W)
        size = (max(1, round(W * r)), max(1, round(H * r)))
        pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize(size, Image.Resampling.BILINEAR)
        img = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)
        small = Image.fromarray(lab.to(torch.int32).numpy()).resize(size, Image.Resampling.NEAREST)
        lab = torch.from_numpy(np.asarray(small).astype(np.int64))
    drawn = overlay(img, lab, len(classes), alpha=alpha, colors=colors[: len(classes)])
    present = [int(c) for c in torch.unique(lab) if int(c) < len(classes)]

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax0, ax1 = fig.subplots(1, 2)
    ax0.imshow(img.permute(1, 2, 0).numpy())
    ax0.set_title("image")
    ax1.imshow(drawn.permute(1, 2, 0).numpy())
    ax1.set_title("prediction")
    for ax in (ax0, ax1):
        ax.set_axis_off()
    if present:
        fig.legend(
            handles=_legend_handles(classes, colors, present),
            loc="outside right upper",
            frameon=False,
        )
    if title:
        fig.suptitle(title)
    return fig


def legend_figure(
    classes: Sequence[str], palette: Sequence[Any] | None = None, ncols: int | None = None
) -> Figure:
    """A figure with only a legend: every class with its palette colour (``ncols`` columns, default <= 4)."""
    n = len(classes)
    if n == 0:
        raise ValueError("no classes")
    colors = _palette_colors(palette)
    ncols = ncols or min(4, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(2.3 * ncols, 0.32 * nrows + 0.3))
    fig.add_subplot().set_axis_off()  # IPython does not display a figure without axes
    fig.legend(
        handles=_legend_handles(classes, colors, range(n)), loc="center", ncols=ncols, frameon=False
    )
    return fig


def _to_float(value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_history(history: History) -> dict[str, list[float]]:
    """``history.csv`` (columns epoch, lr, train_loss, val_loss, pixAcc, mIoU, seconds) or a list of
    row dicts -> ``{column: [float per epoch]}`` (missing or empty values are NaN)."""
    if isinstance(history, (str, os.PathLike)):
        with open(history, newline="") as fh:
            rows: Sequence[Mapping[str, Any]] = list(csv.DictReader(fh))
        if not rows:
            raise ValueError(f"{os.fspath(history)}: no rows")
    else:
        rows = list(history)
        if not rows:
            raise ValueError("empty history")
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: [_to_float(row.get(k)) for row in rows] for k in keys}


def _plot_history_row(axes: Sequence[Any], cols: dict[str, list[float]], name: str | None) -> None:
    epochs = cols.get("epoch") or list(range(1, len(next(iter(cols.values()))) + 1))
    ax_loss, ax_miou, ax_acc = axes
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        if key in cols:
            ax_loss.plot(epochs, cols[key], marker=".", label=label)
    if "mIoU" in cols:
        ax_miou.plot(epochs, cols["mIoU"], marker=".", color="C2")
    if "pixAcc" in cols:
        ax_acc.plot(epochs, cols["pixAcc"], marker=".", color="C3")
    prefix = f"{name}: " if name else ""
    for ax, t in ((ax_loss, "loss"), (ax_miou, "mIoU"), (ax_acc, "pixAcc")):
        ax.set_title(prefix + t)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if ax_loss.lines:
        ax_loss.legend()


def plot_history(
    history: History | Mapping[str, History],
    out_path: str | os.PathLike | None = None,
) -> Figure:
    """Training curves: loss (train and val), mIoU and pixAcc against epoch, three panels in a row.

    ``history``: a list of row dicts or a path to ``history.csv``; or a mapping ``{model name:
    history}`` for one row of panels per model (the seed notes' nine figures for three models).
    Saved to ``out_path`` (format from its suffix, written atomically) when given.
    """
    runs = dict(history) if isinstance(history, Mapping) else {None: history}
    if not runs:
        raise ValueError("empty history mapping")
    fig = Figure(figsize=(13, 3.6 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 3, squeeze=False)
    for row, (name, hist) in zip(axes, runs.items()):
        _plot_history_row(row, read_history(hist), name)
    if out_path is not None:
        _atomic_savefig(fig, Path(out_path))
    return fig


def _atomic_savefig(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format=path.suffix.lstrip(".") or "png", dpi=100)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def plot_confusion(
    matrix: Tensor | np.ndarray,
    classes: Sequence[str],
    normalize: bool = True,
    *,
    annotate: bool | None = None,
) -> Figure:
    """Confusion matrix ``(C, C)`` (rows = ground truth, columns = prediction) as an image.

    ``normalize=True`` divides each row by its sum (rows then sum to 1, i.e. per-class recall on the
    diagonal; an all-zero row stays 0). ``annotate`` writes the values in the cells (default: C <= 12).
    """
    m = (
        matrix.detach().cpu().double().numpy()
        if isinstance(matrix, Tensor)
        else np.asarray(matrix, dtype=np.float64)
    )
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be C x C, got shape {m.shape}")
    if m.shape[0] != len(classes):
        raise ValueError(
            f"matrix is {m.shape[0]} x {m.shape[0]} but {len(classes)} classes were given"
        )
    if normalize:
        sums = m.sum(axis=1, keepdims=True)
        m = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    C = m.shape[0]
    size = max(4.0, 0.35 * C + 2.0)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(C), [str(c) for c in classes], rotation=90)
    ax.set_yticks(range(C), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("confusion matrix" + (" (rows normalised)" if normalize else ""))
    if annotate if annotate is not None else C <= 12:
        hi = m.max() if m.size else 0
        for i in range(C):
            for j in range(C):
                text = f"{m[i, j]:.2f}" if normalize else f"{m[i, j]:.0f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if hi and m[i, j] > 0.6 * hi else "black",
                )
    return fig
