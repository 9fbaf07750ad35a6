"""Inference on arbitrary photos: memory-bounded full-resolution prediction and its output files.

:func:`predict` returns an ``int64`` label map of exactly the image's size; :func:`predict_file`
writes a palette label-map PNG and an ``original | overlay | legend`` PNG, each atomically.
:func:`load_image` (from :mod:`fcnlib.data.images`, re-exported here) turns a path, PIL image or
numpy array into an upright 8-bit RGB PIL image and refuses images above ``max_image_pixels``.

Why ``"scaled"`` is the default for big photos: a network trained on ~500 px crops has learned
objects of a few hundred pixels. In a 5472 x 3648 photo the same objects are ten times larger and
the receptive field sees only texture, so full-resolution prediction ("whole" or "tiled") tends to
fragment them. Resizing the longer side to the training scale restores the object sizes seen in
training; the logits are then upsampled back to the original size (bilinearly) before the argmax.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .data.classes import Color, flat_palette, voc_palette
from .data.images import DEFAULT_MAX_IMAGE_PIXELS, ImageError, ImageSource, load_image
from .errors import one_line
from .fileio import atomic_write

__all__ = [
    "ImageError",
    "ImageSource",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "legend_panel",
    "load_image",
    "output_paths",
    "output_stems",
    "plan_outputs",
    "predict",
    "predict_file",
]


#: ``mode="auto"`` predicts the whole image at full resolution up to this many pixels (1 MP).
DEFAULT_MAX_PIXELS = 1024 * 1024

Mode = Literal["auto", "whole", "scaled", "tiled"]


# ----------------------------------------------------------------------------------------------
# Prediction
# ----------------------------------------------------------------------------------------------


def _resize(im: Image.Image, size_hw: tuple[int, int]) -> Image.Image:
    h, w = size_hw
    if (im.height, im.width) == (h, w):
        return im
    return im.resize((w, h), Image.Resampling.BILINEAR)  # antialiased when shrinking


def _interp_index(out_len: int, in_len: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per output index the two source indices and the weight of the second, as in
    ``F.interpolate(mode="bilinear", align_corners=False)`` (one axis)."""
    scale = in_len / out_len
    src = ((torch.arange(out_len, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_(min=0)
    i0 = src.floor().long().clamp_(max=in_len - 1)
    i1 = (i0 + 1).clamp_(max=in_len - 1)
    lam = (src - i0.double()).float()
    return i0, i1, lam


class _FullLogits:
    """Logits ``(C, h, w)`` of one configuration, computed on the whole (resized) image at once."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits
        self.channels = logits.shape[0]
        self.size = (logits.shape[1], logits.shape[2])

    def rows(self, a: int, b: int) -> Tensor:
        return self.logits[:, a:b]


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _edge_ramp(n: int, overlap: int, low: bool, high: bool) -> Tensor:
    """1-D tile weight: 1 inside, a linear ramp (never 0) over ``overlap`` px at edges shared with a neighbour."""
    w = torch.ones(n)
    r = min(overlap, n // 2)
    if r > 0:
        ramp = torch.arange(1, r + 1, dtype=torch.float32) / (r + 1)
        if low:
            w[:r] = ramp
        if high:
            w[n - r :] = ramp.flip(0)
    return w


class _TiledLogits:
    """Sliding-window logits of one configuration, produced lazily one row of tiles at a time.

    Only a rolling band of rows is kept: weighted logit sums ``(C, cap, w)`` and weight sums
    ``(cap, w)`` with ``cap = tile + reserve`` (``reserve``: the most source rows one output strip
    asks for). ``rows(a, b)`` must be called with non-decreasing ``a``; rows above ``a`` are dropped
    (lazily: the band is compacted in place when the next tile row does not fit).
    """

    def __init__(
        self,
        forward: Callable[[np.ndarray], Tensor],
        array: np.ndarray,
        tile: int,
        overlap: int,
        flip: bool,
        device: torch.device,
    ) -> None:
        self.forward, self.array, self.flip, self.device = forward, array, flip, device
        self.bar: Any = None
        h, w = array.shape[:2]
        self.size = (h, w)
        self.th, self.tw = min(tile, h), min(tile, w)
        self.ys, self.xs = _tile_starts(h, self.th, overlap), _tile_starts(w, self.tw, overlap)
        self.overlap = overlap
        self.wx = [_edge_ramp(self.tw, overlap, x > 0, x + self.tw < w).to(device) for x in self.xs]
        self.num_tiles = len(self.ys) * len(self.xs)
        self.cap = self.th
        self.next_row = 0  # next tile row to compute
        self.buf0 = 0  # absolute row held at band index `off`
        self.off = 0
        self.end_row = 0  # rows < end_row have received all their tiles' contributions so far
        self.acc: Tensor | None = None
        self.wsum: Tensor | None = None
        self._first: Tensor | None = None

    @property
    def channels(self) -> int:
        if self._first is None and self.acc is None:
            self._first = self._tile(self.ys[0], self.xs[0])
        return (self._first if self._first is not None else self.acc).shape[0]

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` requested rows on top of one tile row (call before the first ``rows``)."""
        self.cap = min(max(self.cap, self.th + rows), self.size[0])

    def _tile(self, y: int, x: int) -> Tensor:
        logits = self.forward(self.array[y : y + self.th, x : x + self.tw])
        if self.bar is not None:
            self.bar.update(1)
        return logits

    def _compact(self) -> None:
        """Move the live rows ``[off, off + n)`` to the front, in chunks that never overlap, and zero the rest."""
        assert self.acc is not None and self.wsum is not None
        n, d = max(0, self.end_row - self.buf0), self.off
        if d == 0:
            return
        for i in range(0, n, d):
            c = min(d, n - i)
            self.acc[:, i : i + c].copy_(self.acc[:, d + i : d + i + c])
            self.wsum[i : i + c].copy_(self.wsum[d + i : d + i + c])
        self.acc[:, n:].zero_()
        self.wsum[n:].zero_()
        self.off = 0

    def _advance(self) -> None:
        y = self.ys[self.next_row]
        self.next_row += 1
        h, w = self.size
        skip = max(0, self.buf0 - y)  # tile rows above the band are no longer needed
        wy = _edge_ramp(self.th, self.overlap, y > 0, y + self.th < h).to(self.device)[skip:]
        end = self.off + y + self.th - self.buf0
        if self.acc is not None and end > self.acc.shape[1]:
            self._compact()
            end = y + self.th - self.buf0
        if self.acc is not None and end > self.acc.shape[1]:  # reserve was too small: grow (a copy)
            grow = end - self.acc.shape[1]
            self.acc = torch.cat([self.acc, self.acc.new_zeros(self.acc.shape[0], grow, w)], 1)
            self.wsum = torch.cat([self.wsum, self.wsum.new_zeros(grow, w)], 0)
        r0 = end - self.th + skip
        for x, wx in zip(self.xs, self.wx):
            if self._first is not None:
                logits, self._first = self._first, None
            else:
                logits = self._tile(y, x)
            if self.acc is None:
                self.acc = torch.zeros(logits.shape[0], max(self.cap, end), w, device=self.device)
                self.wsum = torch.zeros(max(self.cap, end), w, device=self.device)
            assert self.wsum is not None
            weight = wy[:, None] * wx[None, :]
            self.acc[:, r0:end, x : x + self.tw] += logits[:, skip:] * weight
            self.wsum[r0:end, x : x + self.tw] += weight
        self.end_row = max(self.end_row, y + self.th)

    def rows(self, a: int, b: int) -> Tensor:
        """Blended logits of rows ``[a, b)``: ``(C, b - a, w)`` (flipped back if the input was flipped)."""
        if a < self.buf0:
            raise RuntimeError("tiled rows must be requested in non-decreasing order")
        if a > self.buf0:  # drop rows above a (only an offset; compaction happens when room is needed)
            live = max(0, self.end_row - self.buf0)
            self.off += min(a - self.buf0, live) if self.acc is not None else 0
            if a - self.buf0 > live:  # skipped past every computed row: the band restarts empty
                self.off = self.acc.shape[1] if self.acc is not None else 0
            self.buf0 = a
        while self.next_row < len(self.ys) and self.ys[self.next_row] < b:
            self._advance()
        assert self.acc is not None and self.wsum is not None
        out = self.acc[:, self.off : self.off + b - a] / self.wsum[self.off : self.off + b - a]
        return out.flip(-1) if self.flip else out


def _normalize(array: np.ndarray, device: torch.device) -> Tensor:
    """uint8 ``H x W x 3`` -> float ``(3, H, W)``: ``[0, 1]``, then ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(array)).to(device).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    return x.sub_(mean).div_(std)


def predict(
    model: nn.Module,
    image: ImageSource,
    *,
    mode: Mode = "auto",
    train_size: int = 512,
    tile: int = 512,
    overlap: int | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    max_pixels: int | None = None,
    device: torch.device | str | None = None,
    num_classes: int | None = None,
    return_probs: bool = False,
    progress: bool | None = None,
    strip_bytes: int = 64 * 2**20,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> Tensor:
    """Segment one image; returns an ``int64`` label map ``(H, W)`` on the CPU, ``H x W`` being the
    size of ``load_image(image, max_image_pixels)`` (i.e. after EXIF orientation). Images of more
    than ``max_image_pixels`` pixels (default :data:`DEFAULT_MAX_IMAGE_PIXELS`, about 100 MP; None:
    no limit) raise :class:`ImageError`, a file's from its header before it is decoded.

    Modes (``mode``):

    - ``"whole"``: the full-resolution image through the model at once.
    - ``"scaled"``: resize so the longer side is ``train_size`` px (the training scale), predict,
      upsample the logits bilinearly (``align_corners=False``) to ``H x W``, argmax.
    - ``"tiled"``: ``tile x tile`` windows over the full-resolution image overlapping by at least
      ``overlap`` px; logits are blended with a weight that is 1 inside a tile and ramps linearly
      (never to 0) over the ``overlap`` px shared with a neighbour; then argmax. Tiles are clipped to
      the image when it is smaller than a tile (one tile = ``"whole"``).
    - ``"auto"``: ``"whole"`` if ``H * W <= max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`), else ``"scaled"``.

    ``scales`` are relative to the mode's base size (``H x W``, or ``train_size`` for "scaled");
    ``flip=True`` adds the horizontally flipped input (prediction flipped back). With more than one
    prediction the softmax probabilities are averaged at ``H x W``; with one, the argmax is taken on
    the logits directly (so ``"whole"`` equals ``model(x).argmax(1)`` exactly).

    The model runs in eval mode under ``torch.inference_mode`` (its training flag is restored);
    ``device`` moves the model there (default: the device of its parameters). Inputs are scaled to
    ``[0, 1]`` and normalised with the ImageNet mean/std. ``num_classes`` (optional) is checked
    against the model's output. ``return_probs=True`` returns the ``float32`` probabilities
    ``(C, H, W)`` instead (``C * H * W * 4`` bytes: 1.7 GB for a 20 MP photo and 21 classes).

    Memory: the full-resolution ``(C, H, W)`` logits/probabilities are never materialised (only the
    model itself does so in "whole" mode, which "auto" uses up to ``max_pixels``). Each prediction
    keeps its logits at its own resolution ("scaled": at most ``4 * C * train_size**2`` bytes, 22 MB
    for 21 classes at 512). The output is produced in horizontal strips of ``strip_bytes / (4 * C * W)``
    rows: each strip is interpolated from the few source rows it needs (height with the bilinear
    weights of ``F.interpolate(..., align_corners=False)``, then width with ``F.interpolate``; equal
    to upsampling everything at once up to float rounding), softmax-averaged if there are several
    predictions, and argmaxed into the int64 result. "tiled" keeps, per prediction, a band of
    ``tile + strip`` rows of weighted logit sums, ``4 * (C + 1) * (tile + strip) * w`` bytes (300 MB
    for 21 classes, tile 512 and a 5472 px wide image), compacted in place as it slides down.
    Peak extra memory is thus about ``8 * H * W`` (the result) + a few ``strip_bytes`` + the
    low-resolution logits (or bands) + the model's activations at ``train_size`` / ``tile``,
    independent of ``C * H * W``. Measured on CPU for a 5472 x 3648 photo and full-width
    ``fcn8s(21)``: "scaled" (512) ~440 MB above the model and image (152 MB of it the result),
    ~560 MB with ``scales=(0.75, 1, 1.25), flip=True``; "tiled" (512/128) ~1.0 GB (most of it the
    full-width VGG16 activations of a 512 x 512 tile).
    """
    overlap, scales = _check_options(mode, train_size, tile, overlap, scales, strip_bytes)
    img = load_image(image, max_image_pixels)
    H, W = img.height, img.width
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    if mode == "auto":
        mode = "whole" if H * W <= limit else "scaled"
    if mode == "scaled":
        r = train_size / max(H, W)
        base = (max(1, round(H * r)), max(1, round(W * r)))
    else:
        base = (H, W)
    if max_image_pixels is not None:  # train_size or scales must not blow the image up past the limit
        h, w = (max(1, round(v * max(scales))) for v in base)
        if h * w > max_image_pixels:
            raise ImageError(
                f"predicting at {w} x {h} px (train_size / scales) is more than the limit of {max_image_pixels:,} "
                "pixels; lower --train-size or --scales, or raise --max-image-pixels"
            )
    dev = _model_device(model, device)
    forward = _forward_function(model, dev)
    configs = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    was_training = model.training
    model.eval()
    bar = None
    try:
        with torch.no_grad():
            sources = _sources(img, base, configs, mode == "tiled", tile, overlap, forward, dev)
            num_tiles = sum(getattr(src, "num_tiles", 0) for src in sources)
            # progress=None: a bar for more than 8 tiles, on a terminal only (tqdm's disable=None).
            disable = (None if num_tiles > 8 else True) if progress is None else not progress
            bar = tqdm(total=num_tiles, desc="tiles", unit="tile", disable=disable, leave=False)
            for src in sources:
                if isinstance(src, _TiledLogits):
                    src.bar = bar
            return _combine(sources, (H, W), num_classes, return_probs, strip_bytes)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)


def _check_options(
    mode: str, train_size: int, tile: int, overlap: int | None, scales: Sequence[float], strip_bytes: int
) -> tuple[int, tuple[float, ...]]:
    """The checked ``(overlap, scales)`` of :func:`predict`; ``ValueError`` naming a bad argument."""
    if mode not in ("auto", "whole", "scaled", "tiled"):
        raise ValueError(f"mode must be 'auto', 'whole', 'scaled' or 'tiled', got {mode!r}")
    if int(train_size) < 1 or int(tile) < 1:
        raise ValueError(f"train_size and tile must be >= 1, got {train_size} and {tile}")
    overlap = int(tile) // 4 if overlap is None else int(overlap)
    if not 0 <= overlap < int(tile):
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    scales = tuple(float(s) for s in scales)
    if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales}")
    if strip_bytes < 1:
        raise ValueError(f"strip_bytes must be positive, got {strip_bytes}")
    return overlap, scales


def _model_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` (the model is moved there), or the device of the model's parameters."""
    if device is not None:
        dev = torch.device(device)
        model.to(dev)
        return dev
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def _forward_function(model: nn.Module, dev: torch.device) -> Callable[[np.ndarray], Tensor]:
    """uint8 ``H x W x 3`` -> the model's float logits ``(C, H, W)`` (checked to keep the size)."""

    def forward(array: np.ndarray) -> Tensor:
        x = _normalize(array, dev)
        with torch.inference_mode():
            out = model(x[None])
        if out.ndim != 4 or out.shape[0] != 1 or tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
            raise RuntimeError(f"model returned {tuple(out.shape)} for an input of {tuple(x.shape[-2:])}")
        return out[0].float()

    return forward


def _sources(
    img: Image.Image,
    base: tuple[int, int],
    configs: Sequence[tuple[float, bool]],
    tiled: bool,
    tile: int,
    overlap: int,
    forward: Callable[[np.ndarray], Tensor],
    dev: torch.device,
) -> list[_FullLogits | _TiledLogits]:
    """One logits source per ``(scale, flip)`` configuration, at ``base`` size times the scale."""
    sources: list[_FullLogits | _TiledLogits] = []
    arrays: dict[float, np.ndarray] = {}
    for s, f in configs:
        size = (max(1, round(base[0] * s)), max(1, round(base[1] * s)))
        if s not in arrays:
            arrays[s] = np.array(_resize(img, size))  # writable copy for torch.from_numpy
        arr = arrays[s][:, ::-1] if f else arrays[s]
        if tiled:
            sources.append(_TiledLogits(forward, arr, tile, overlap, f, dev))
        else:
            logits = forward(arr)
            sources.append(_FullLogits(logits.flip(-1) if f else logits))
    return sources


def _combine(
    sources: Sequence[_FullLogits | _TiledLogits],
    size: tuple[int, int],
    num_classes: int | None,
    return_probs: bool,
    strip_bytes: int,
) -> Tensor:
    """Upsample each source's logits to ``size`` strip by strip; argmax (one source) or argmax of the
    mean softmax (several). Returns int64 labels ``(H, W)`` or float32 probabilities ``(C, H, W)``."""
    H, W = size
    C = sources[0].channels
    for src in sources:
        if src.channels != C:  # pragma: no cover - same model for every source
            raise RuntimeError("sources disagree on the number of classes")
    if num_classes is not None and C != num_classes:
        raise ValueError(f"model outputs {C} classes, num_classes={num_classes}")
    labels = None if return_probs else torch.empty(H, W, dtype=torch.int64)
    probs = torch.empty(C, H, W, dtype=torch.float32) if return_probs else None
    maps = {}
    for src in sources:
        if src.size[0] != H and src.size[0] not in maps:
            maps[src.size[0]] = _interp_index(H, src.size[0])
    rows = min(H, max(1, strip_bytes // (4 * C * W)))
    starts = torch.arange(0, H, rows)
    ends = (starts + rows).clamp(max=H)
    for src in sources:
        if isinstance(src, _TiledLogits):  # the most source rows one strip will ask for
            if src.size[0] == H:
                src.reserve(rows)
            else:
                i0, i1, _ = maps[src.size[0]]
                src.reserve(int((i1[ends - 1] - i0[starts]).max()) + 1)
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        total = None
        for src in sources:
            h_s, w_s = src.size
            if h_s == H:
                part = src.rows(y0, y1)
            else:
                i0, i1, lam = maps[h_s]
                lo, hi = int(i0[y0]), int(i1[y1 - 1]) + 1
                part = src.rows(lo, hi)
            if h_s != H:  # height first, on the narrow source rows (cheap), then width at full size
                a = (i0[y0:y1] - lo).to(part.device)
                b = (i1[y0:y1] - lo).to(part.device)
                t = lam[y0:y1].to(part.device)[None, :, None]
                part = part[:, a] * (1 - t) + part[:, b] * t
            if w_s != W:
                part = F.interpolate(part[None], size=(part.shape[1], W), mode="bilinear", align_corners=False)[0]
            if len(sources) == 1:
                total = part
            else:
                p = part.softmax(0)
                total = p if total is None else total.add_(p)
            del part
        assert total is not None
        if labels is not None:
            # max(0).indices: the first maximal index, like argmax, but ~3x faster over dim 0 on CPU
            labels[y0:y1] = total.max(0).indices.cpu()
        if probs is not None:
            probs[:, y0:y1] = (total.softmax(0) if len(sources) == 1 else total / len(sources)).cpu()
    return probs if probs is not None else labels




# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


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
    inputs = {Path(p).resolve() for p in images}
    for name in names:
        for target in output_paths(out_dir, name):
            if target.resolve() in inputs:
                raise FileExistsError(one_line(f"{target} would replace an input image: choose another --out"))
            if target.exists() and not overwrite:
                raise FileExistsError(one_line(f"{target} exists (use --overwrite)"))
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


def legend_panel(classes: Sequence[str], colors: Sequence[Color], present: Sequence[int], height: int) -> Image.Image:
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
    panel = Image.new("RGB", (pad + cols * column, max(height, 2 * pad + rows * line)), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for k, (label, name, box) in enumerate(zip(present, names, boxes)):
        col, row = divmod(k, rows)
        x, y = pad + col * column, pad + row * line
        top = y + (line - size) // 2
        draw.rectangle([x, top, x + size - 1, top + size - 1], fill=tuple(colors[label]), outline=(0, 0, 0))
        text_y = y + (line - (box[3] - box[1])) // 2 - box[1]
        draw.text((x + size + pad, text_y), name, fill=(0, 0, 0), font=font)
    return panel


def _overlay_figure(img: Image.Image, labels: Tensor, classes: Sequence[str], colors: Sequence[Color]) -> Image.Image:
    """``image | overlay | legend of the classes present`` on white, ``H`` px high (or the legend's height)."""
    from .viz import overlay  # matplotlib is only imported when files are written

    num_classes = len(classes)
    drawn = overlay(img, labels, num_classes, colors=colors)
    counts = torch.bincount(labels.flatten().clamp(0, num_classes), minlength=num_classes + 1)[:num_classes]
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
                raise FileExistsError(one_line(f"{p} exists (use --overwrite)"))
    num_classes = len(classes)
    if not 1 <= num_classes <= 255:
        raise ValueError(f"need 1..255 classes for a palette PNG, got {num_classes}")
    flat = flat_palette(voc_palette() if palette is None else palette)
    colors: list[Color] = [(flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]) for i in range(num_classes)]

    img = load_image(src, max_image_pixels)
    labels = predict(model, img, num_classes=num_classes, max_image_pixels=max_image_pixels, **predict_kwargs)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    mask = Image.fromarray(labels.to(torch.uint8).numpy())
    mask.putpalette(flat)
    _save_png(mask, mask_path)
    del mask
    _save_png(_overlay_figure(img, labels, classes, colors), overlay_path)
    return mask_path, overlay_path
