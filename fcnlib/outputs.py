"""The files ``fcnlib predict`` writes: a label-map PNG and an ``image | overlay | legend`` PNG per
input, with distinct names for inputs that share a stem, each written atomically."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from .data.classes import Color, flat_palette, voc_palette
from .data.images import DEFAULT_MAX_IMAGE_PIXELS, load_image
from .errors import one_line
from .fileio import atomic_write, write_target
from .predict import predict

__all__ = ["legend_panel", "output_paths", "output_stems", "plan_outputs", "predict_file"]


def output_stems(paths: Sequence[str | os.PathLike]) -> list[str]:
    """One distinct output name per input, in order: the file's stem, except that the second,
    third, ... input with a stem already used (compared case-insensitively) gets ``<stem>-2``,
    ``<stem>-3``, ... (the first such number that is neither used nor another input's own stem).

    ``a/x.jpg b/x.png c/x.jpg`` -> ``x``, ``x-2``, ``x-3``; ``x.jpg x.png x-2.jpg`` -> ``x``,
    ``x-3``, ``x-2``.
    """
    stems = [Path(p).stem for p in paths]
    own = {s.casefold() for s in stems}
    used: set[str] = set()
    names = []
    for stem in stems:
        name, number = stem, 1
        while name.casefold() in used or (number > 1 and name.casefold() in own):
            number += 1
            name = f"{stem}-{number}"
        used.add(name.casefold())
        names.append(name)
    return names


def output_paths(out_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """``(out_dir/<name>_mask.png, out_dir/<name>_overlay.png)``: the files :func:`predict_file` writes."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"output name must be a plain file name, got {name!r}")
    out = Path(out_dir)
    return out / f"{name}_mask.png", out / f"{name}_overlay.png"


def plan_outputs(
    images: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, overwrite: bool = False
) -> list[str]:
    """The output names (:func:`output_stems`) for ``images``, checked before anything is written.

    Raises ``FileExistsError`` if an output would replace one of the input images, or exists
    already and ``overwrite`` is False.
    """
    names = output_stems(images)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, "Is a file, not a folder: give `out` a folder", str(out_dir)
        )
    inputs = {os.path.realpath(p) for p in images}  # realpath: a symlink loop is not an error here
    for name in names:
        for target in output_paths(out_dir, name):
            if os.path.realpath(target) in inputs:
                raise FileExistsError(
                    one_line(f"{target} would replace an input image: choose another `out`")
                )
            write_target(target)  # a folder or a device in the way is refused before any work
            if target.exists() and not overwrite:
                raise FileExistsError(one_line(f"{target} exists (use `overwrite`)"))
    return names


def _save_png(im: Image.Image, path: Path) -> None:
    """Write ``im`` as PNG to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    atomic_write(path, lambda f: im.save(f, format="PNG"))


def _legend_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` px (its small bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def legend_panel(
    classes: Sequence[str], colors: Sequence[Color], present: Sequence[int], height: int
) -> Image.Image:
    """A white RGB panel with, for each label in ``present``, a swatch of ``colors[label]``
    (outlined in black) and the name ``classes[label]`` in black.

    Text is 1/32 of ``height`` (11..72 px); entries fill columns of at most ``height`` px, so the
    panel is ``height`` px high unless one entry alone is taller.
    """
    size = int(min(72, max(11, round(height / 32))))
    font = _legend_font(size)
    pad, line = max(2, size // 4), round(size * 1.4)
    names = [str(classes[i]) for i in present]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), name, font=font) for name in names]
    rows = max(1, min(len(names), (height - 2 * pad) // line))
    cols = max(1, math.ceil(len(names) / rows))
    rows = max(1, math.ceil(len(names) / cols))
    column = size + 3 * pad + max((box[2] for box in boxes), default=0)
    panel = Image.new(
        "RGB", (pad + cols * column, max(height, 2 * pad + rows * line)), (255, 255, 255)
    )
    draw = ImageDraw.Draw(panel)
    for k, (label, name, box) in enumerate(zip(present, names, boxes)):
        col, row = divmod(k, rows)
        x, y = pad + col * column, pad + row * line
        top = y + (line - size) // 2
        draw.rectangle(
            [x, top, x + size - 1, top + size - 1], fill=tuple(colors[label]), outline=(0, 0, 0)
        )
        text_y = y + (line - (box[3] - box[1])) // 2 - box[1]
        draw.text((x + size + pad, text_y), name, fill=(0, 0, 0), font=font)
    return panel


def _overlay_figure(
    img: Image.Image, labels: Tensor, classes: Sequence[str], colors: Sequence[Color]
) -> Image.Image:
    """``image | overlay | legend of the classes present`` on white, ``H`` px high (or the legend's height)."""
    from .viz import overlay  # matplotlib is only imported when files are written

    num_classes = len(classes)
    drawn = overlay(img, labels, num_classes, colors=colors)
    counts = torch.bincount(labels.flatten().clamp(0, num_classes), minlength=num_classes + 1)[
        :num_classes
    ]
    legend = legend_panel(classes, colors, torch.nonzero(counts).flatten().tolist(), img.height)
    W, H = img.size
    canvas = Image.new("RGB", (2 * W + legend.width, max(H, legend.height)), (255, 255, 255))
    canvas.paste(img, (0, 0))
    canvas.paste(Image.fromarray(drawn.permute(1, 2, 0).contiguous().numpy()), (W, 0))
    del drawn
    canvas.paste(legend, (2 * W, 0))
    return canvas


def predict_file(
    model: nn.Module,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    classes: Sequence[str],
    palette: Sequence[Any] | None = None,
    overwrite: bool = False,
    name: str | None = None,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    **predict_kwargs: Any,
) -> tuple[Path, Path]:
    """Predict ``path`` and write ``<name>_mask.png`` and ``<name>_overlay.png`` into ``out_dir``.

    ``name`` defaults to the file's stem (:func:`output_stems` makes distinct names for a list of
    inputs). The mask is the label map: a palette (``'P'``) PNG of the image's size (after EXIF
    orientation) whose pixel values are the class indices and whose palette is ``palette``
    (``[(r, g, b), ...]``; default: the VOC palette). The overlay PNG is, side by side on white,
    the image, the :func:`fcnlib.viz.overlay` of the labels (colours from ``palette``) and a legend
    (:func:`legend_panel`: a swatch and the name of each class present). ``classes`` fixes the
    number of classes (checked against the model). Existing outputs raise ``FileExistsError``
    unless ``overwrite=True`` (checked before predicting). Each file is written to a temporary file
    in ``out_dir`` and moved into place, so no truncated PNG is ever left. ``max_image_pixels`` and
    ``predict_kwargs`` go to :func:`predict`. Returns ``(mask_path, overlay_path)``.
    """
    src = Path(path)
    mask_path, overlay_path = output_paths(out_dir, src.stem if name is None else name)
    if not overwrite:
        for p in (mask_path, overlay_path):
            if p.exists():
                raise FileExistsError(one_line(f"{p} exists (use `overwrite`)"))
    num_classes = len(classes)
    if not 1 <= num_classes <= 255:
        raise ValueError(f"need 1..255 classes for a palette PNG, got {num_classes}")
    flat = flat_palette(voc_palette() if palette is None else palette)
    colors: list[Color] = [
        (flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]) for i in range(num_classes)
    ]

    img = load_image(src, max_image_pixels)
    labels = predict(
        model, img, num_classes=num_classes, max_image_pixels=max_image_pixels, **predict_kwargs
    )
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    mask = Image.fromarray(labels.to(torch.uint8).numpy())
    mask.putpalette(flat)
    _save_png(mask, mask_path)
    del mask
    _save_png(_overlay_figure(img, labels, classes, colors), overlay_path)
    return mask_path, overlay_path
