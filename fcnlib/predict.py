"""Inference on arbitrary photos: robust image loading and memory-bounded full-resolution prediction.

:func:`load_image` turns a path, PIL image or numpy array into an upright 8-bit RGB PIL image;
:func:`predict` returns an ``int64`` label map of exactly the image's size; :func:`predict_file`
writes a palette mask PNG and an ``original | overlay`` PNG next to each other, atomically.

Why ``"scaled"`` is the default for big photos: a network trained on ~500 px crops has learned
objects of a few hundred pixels. In a 5472 x 3648 photo the same objects are ten times larger and
the receptive field sees only texture, so full-resolution prediction ("whole" or "tiled") tends to
fragment them. Resizing the longer side to the training scale restores the object sizes seen in
training; the logits are then upsampled back to the original size (bilinearly) before the argmax.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .checkpoint import atomic_write_bytes
from .transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "ImageError",
    "ImageSource",
    "DEFAULT_MAX_PIXELS",
    "load_image",
    "predict",
    "predict_file",
]


#: ``mode="auto"`` predicts the whole image at full resolution up to this many pixels (1 MP).
DEFAULT_MAX_PIXELS = 1024 * 1024

Mode = Literal["auto", "whole", "scaled", "tiled"]
ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

_ORIENTATION = 0x0112
_BITS_PER_SAMPLE = 258


class ImageError(ValueError):
    """An image that cannot be read or converted; the message is one line and names the source."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _bit_depth(im: Image.Image, data: np.ndarray) -> int:
    """Bits per sample of a 16/32-bit grayscale image: from the TIFF tag if any, else the container."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None and _BITS_PER_SAMPLE in tags:
        bps = tags[_BITS_PER_SAMPLE]
        bps = int(bps[0] if isinstance(bps, (tuple, list)) else bps)
        if 8 < bps <= 32:
            return bps
    if im.mode.startswith("I;16"):
        return 16
    return 16 if data.size == 0 or int(data.max()) < 2**16 else 32


def _high_bits_to_uint8(data: np.ndarray, bits: int) -> np.ndarray:
    """Integer samples of ``bits`` significant bits -> uint8 by keeping the top 8 bits (``x >> (bits-8)``)."""
    data = np.clip(data.astype(np.int64), 0, 2**bits - 1)
    return (data >> (bits - 8)).astype(np.uint8)


def _float_to_uint8(data: np.ndarray, name: str) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    if data.size and not np.isfinite(data).all():
        raise ImageError(f"{name}: float image contains NaN or infinite values")
    if data.size and (data.min() < -1e-6 or data.max() > 1 + 1e-6):
        raise ImageError(
            f"{name}: float image values must lie in [0, 1], got {data.min():.4g}..{data.max():.4g} "
            "(divide 0..255 data by 255)"
        )
    return np.clip(np.floor(data * 255 + 0.5), 0, 255).astype(np.uint8)


def _to_rgb(im: Image.Image, name: str, bits: int | None = None) -> Image.Image:
    """Any PIL mode -> 'RGB'. Alpha (and palette/tRNS transparency) is composited over white."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode == "I" or mode.startswith("I;"):  # 16/32-bit integer grayscale
        data = np.asarray(im)
        gray = _high_bits_to_uint8(data, bits or _bit_depth(im, data))
        return Image.fromarray(gray).convert("RGB")
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(im), name)).convert("RGB")
    try:
        if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
            rgba = (im.convert("LA") if mode == "La" else im).convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")  # '1', 'L', 'P', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX', ...
    except (ValueError, OSError) as exc:
        raise ImageError(f"{name}: cannot convert mode {mode!r} to RGB: {_one_line(exc)}") from None


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (``ImageOps.exif_transpose``) only when it is not 1 (avoids a copy)."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF is treated as "no orientation"
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(im)
    return im


def _array_to_image(arr: np.ndarray) -> Image.Image:
    name = f"array{tuple(arr.shape)}"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageError(f"{name}: expected an H x W, H x W x 3 (RGB) or H x W x 4 (RGBA) array")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: empty image")
    if arr.dtype == np.uint8:
        data = arr
    elif arr.dtype == np.bool_:
        data = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        data = _high_bits_to_uint8(arr, 16)
    elif np.issubdtype(arr.dtype, np.floating):
        data = _float_to_uint8(arr, name)
    else:
        raise ImageError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    data = np.ascontiguousarray(data)
    if data.ndim == 3 and data.shape[2] == 2:  # gray + alpha: build 'LA' from its bands
        im = Image.merge("LA", [Image.fromarray(np.ascontiguousarray(data[:, :, i])) for i in (0, 1)])
    else:
        im = Image.fromarray(data)  # 'L', 'RGB' or 'RGBA'
    return _to_rgb(im, name)


def load_image(source: ImageSource) -> Image.Image:
    """Load ``source`` as an upright 8-bit ``'RGB'`` PIL image.

    ``source``: a path (str / PathLike), a PIL image, or a numpy array ``H x W`` (gray),
    ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA) of dtype ``uint8``, ``uint16`` or float in ``[0, 1]``.

    - EXIF orientation (tag 0x0112) is applied (``PIL.ImageOps.exif_transpose``), so the result has
      the size a viewer shows; an RGB PIL image without orientation is returned as is (no copy).
    - 16-bit grayscale (``'I;16*'``, and ``'I'``) keeps its top 8 significant bits: ``x >> (bits - 8)``
      where ``bits`` is the file's bits per sample when the format records it (TIFF, e.g. 12),
      else 16 (32 for ``'I'`` data beyond 65535); uint16 arrays use 16. Never clipped at 255.
    - Alpha (RGBA, LA, PA, palette or tRNS transparency) is composited over **white**; CMYK,
      palette ``'P'``, ``'1'``, ``'L'``, YCbCr, ... are converted with PIL.

    Raises :class:`ImageError` (a ``ValueError``) with a one-line message naming the file for a
    missing, empty (0 bytes), non-image, truncated or corrupt file; ``TypeError`` for other inputs.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(_upright(source), f"<PIL {source.mode} image>")
    if isinstance(source, np.ndarray):
        return _array_to_image(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(source).__name__}")
    path = os.fspath(source)
    name = _one_line(path)
    if not os.path.exists(path):
        raise ImageError(f"{name}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{name}: is a directory, not an image file")
    if os.path.getsize(path) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated data raises here, inside the try
            bits = None
            if im.mode.startswith("I"):
                bits = _bit_depth(im, np.asarray(im))
            return _to_rgb(_upright(im), name, bits)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file, or a format PIL cannot read") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, EOFError, zlib.error, ...
        raise ImageError(f"{name}: corrupt or truncated image ({type(exc).__name__}: {_one_line(exc)})") from None


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
) -> Tensor:
    """Segment one image; returns an ``int64`` label map ``(H, W)`` on the CPU, ``H x W`` being the
    size of ``load_image(image)`` (i.e. after EXIF orientation).

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
    if mode not in ("auto", "whole", "scaled", "tiled"):
        raise ValueError(f"mode must be 'auto', 'whole', 'scaled' or 'tiled', got {mode!r}")
    if int(train_size) < 1 or int(tile) < 1:
        raise ValueError(f"train_size and tile must be >= 1, got {train_size} and {tile}")
    if overlap is None:
        overlap = int(tile) // 4
    if not 0 <= int(overlap) < int(tile):
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    scales = tuple(float(s) for s in scales)
    if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales}")
    if strip_bytes < 1:
        raise ValueError(f"strip_bytes must be positive, got {strip_bytes}")

    img = load_image(image)
    H, W = img.height, img.width
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    if mode == "auto":
        mode = "whole" if H * W <= limit else "scaled"
    if mode == "scaled":
        r = train_size / max(H, W)
        base = (max(1, round(H * r)), max(1, round(W * r)))
    else:
        base = (H, W)

    if device is not None:
        dev = torch.device(device)
        model.to(dev)
    else:
        param = next(iter(model.parameters()), None)
        dev = param.device if param is not None else torch.device("cpu")

    def forward(array: np.ndarray) -> Tensor:
        x = _normalize(array, dev)
        with torch.inference_mode():
            out = model(x[None])
        if out.ndim != 4 or out.shape[0] != 1 or tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
            raise RuntimeError(f"model returned {tuple(out.shape)} for an input of {tuple(x.shape[-2:])}")
        return out[0].float()

    configs = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    was_training = model.training
    model.eval()
    bar = None
    try:
        with torch.no_grad():
            sources: list[_FullLogits | _TiledLogits] = []
            arrays: dict[float, np.ndarray] = {}
            for s, f in configs:
                size = (max(1, round(base[0] * s)), max(1, round(base[1] * s)))
                if s not in arrays:
                    arrays[s] = np.array(_resize(img, size))  # writable copy for torch.from_numpy
                arr = arrays[s][:, ::-1] if f else arrays[s]
                if mode == "tiled":
                    sources.append(_TiledLogits(forward, arr, tile, overlap, f, dev))
                else:
                    logits = forward(arr)
                    sources.append(_FullLogits(logits.flip(-1) if f else logits))
            del arrays
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


def _flat_palette(palette: Sequence[Any]) -> list[int]:
    """``[(r, g, b), ...]`` or a flat ``[r, g, b, r, ...]`` -> flat list of 768 ints (padded with 0)."""
    items = list(palette)
    if items and isinstance(items[0], (tuple, list, np.ndarray)):
        flat = [int(v) for c in items for v in c]
    else:
        flat = [int(v) for v in items]
    if len(flat) % 3 or len(flat) > 768 or any(not 0 <= v <= 255 for v in flat):
        raise ValueError("palette must be up to 256 (r, g, b) colours with values in 0..255")
    return flat + [0] * (768 - len(flat))


def _atomic_save_png(im: Image.Image, path: Path) -> None:
    """Write ``im`` as PNG to ``path`` atomically (temp file in the same folder, then rename)."""
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(buf.getvalue(), path)


def predict_file(
    model: nn.Module,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    classes: Sequence[str],
    palette: Sequence[Any] | None = None,
    overwrite: bool = False,
    **predict_kwargs: Any,
) -> tuple[Path, Path]:
    """Predict ``path`` and write ``<stem>_mask.png`` and ``<stem>_overlay.png`` into ``out_dir``.

    The mask is a palette (``'P'``) PNG whose pixel values are the labels and whose palette is
    ``palette`` (``[(r, g, b), ...]``; default: the VOC palette); the overlay PNG is the original and the
    :func:`fcnlib.viz.overlay` of the labels (colours from ``palette``) side by side, ``H x 2W``.
    ``classes`` fixes the number of classes (checked against the model). Existing outputs raise
    ``FileExistsError`` unless ``overwrite=True`` (checked before predicting). Each file is written
    to a temporary file in ``out_dir`` and moved into place, so no truncated PNG is ever left.
    ``predict_kwargs`` go to :func:`predict`. Returns ``(mask_path, overlay_path)``.
    """
    from .viz import _default_palette  # matplotlib is only imported when files are written
    from .viz import overlay as draw_overlay

    src = Path(path)
    out = Path(out_dir)
    mask_path, overlay_path = out / f"{src.stem}_mask.png", out / f"{src.stem}_overlay.png"
    if not overwrite:
        for p in (mask_path, overlay_path):
            if p.exists():
                raise FileExistsError(_one_line(f"{p} exists (use --overwrite)"))
    num_classes = len(classes)
    if not 1 <= num_classes <= 255:
        raise ValueError(f"need 1..255 classes for a palette PNG, got {num_classes}")
    flat = _flat_palette(_default_palette() if palette is None else palette)
    colors = [tuple(flat[3 * i : 3 * i + 3]) for i in range(num_classes)]

    img = load_image(src)
    labels = predict(model, img, num_classes=num_classes, **predict_kwargs)
    out.mkdir(parents=True, exist_ok=True)

    mask = Image.fromarray(labels.to(torch.uint8).numpy())
    mask.putpalette(flat)
    _atomic_save_png(mask, mask_path)
    del mask

    drawn = draw_overlay(img, labels, num_classes, colors=colors)
    both = np.concatenate([np.asarray(img), drawn.permute(1, 2, 0).numpy()], axis=1)
    del drawn
    _atomic_save_png(Image.fromarray(both), overlay_path)
    return mask_path, overlay_path
