"""Inference on photos of any size: memory-bounded full-resolution prediction.

:func:`predict` returns an ``int64`` label map of exactly the image's size (the files that
``fcnlib predict`` writes are made by :mod:`fcnlib.outputs`). :func:`load_image` (from :mod:`fcnlib.data.images`, re-exported here) turns a path, PIL image or
numpy array into an upright 8-bit RGB PIL image and refuses images above ``max_image_pixels``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .data.images import DEFAULT_MAX_IMAGE_PIXELS, ImageError, ImageSource, load_image
from .settings import check_predict_options
from .tiling import FullLogits, TiledLogits, interp_index

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_PIXELS",
    "ImageError",
    "ImageSource",
    "load_image",
    "predict",
]


def __getattr__(
    name: str,
):  # the output-file helpers live in fcnlib.outputs (which imports predict)
    if name in ("legend_panel", "output_paths", "output_stems", "plan_outputs", "predict_file"):
        raise AttributeError(f"fcnlib.predict.{name} moved to fcnlib.outputs.{name}")
    raise AttributeError(name)


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
    scale: float | Sequence[float] = 1.0,
    flip: bool = False,
    max_pixels: int | None = None,
    device: torch.device | str | None = None,
    num_classes: int | None = None,
    return_probs: bool = False,
    progress: bool | None = None,
    strip_bytes: int = 64 * 2**20,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    scales: Sequence[float] | None = None,
) -> Tensor:
    """Segment one image at full size; the ``(C, H, W)`` logits are built in strips, never whole.

    Args:
        mode: "whole", "scaled" (longer side to ``train_size``, logits upsampled), "tiled"
            (``tile`` windows overlapping by ``overlap``, blended) or "auto" ("whole" up to
            ``max_pixels``, default 1 MP, else "scaled").
        scale: factor(s) of the mode's base size; several (or ``flip``): logits averaged, as in
            :func:`fcnlib.evaluation.eval_logits`. ``scales``: its former name.
        max_image_pixels: refuse larger images, from the file header; None: no limit.

    Returns:
        int64 labels ``(H, W)`` on the CPU, or float32 probabilities ``(C, H, W)``.
    """
    if scales is not None:  # the former name
        warnings.warn("predict(scales=) is deprecated; use scale=", DeprecationWarning, 2)
        scale = scales
    overlap, scales = check_predict_options(mode, train_size, tile, overlap, scale)
    if strip_bytes < 1:
        raise ValueError(f"strip_bytes must be positive, got {strip_bytes}")
    img = load_image(image, max_image_pixels)
    H, W = img.height, img.width
    whole_limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    mode = ("whole" if H * W <= whole_limit else "scaled") if mode == "auto" else mode
    base = _base_size((H, W), mode, train_size, max(scales), max_image_pixels)
    dev = _model_device(model, device)
    forward = _forward_function(model, dev)
    configs = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    was_training = model.training
    model.eval()
    bar = None
    try:
        with torch.no_grad():
            sources = _sources(img, base, configs, mode == "tiled", tile, overlap, forward, dev)
            bar = _tile_bar(sources, progress)
            return _combine(sources, (H, W), num_classes, return_probs, strip_bytes)
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)


def _tile_bar(sources: Sequence[FullLogits | TiledLogits], progress: bool | None) -> tqdm:
    """The tiles' progress bar (None: shown for more than 8 tiles, on a terminal only)."""
    num_tiles = sum(getattr(src, "num_tiles", 0) for src in sources)
    disable = (None if num_tiles > 8 else True) if progress is None else not progress
    bar = tqdm(total=num_tiles, desc="tiles", unit="tile", disable=disable, leave=False)
    for src in sources:
        if isinstance(src, TiledLogits):
            src.bar = bar
    return bar


def _base_size(
    size: tuple[int, int], mode: str, train_size: int, top: float, limit: int | None
) -> tuple[int, int]:
    """The size the scales apply to; ``ImageError`` if the largest scale ``top`` passes ``limit``."""
    H, W = size
    if mode == "scaled":
        r = train_size / max(H, W)
        base = (max(1, round(H * r)), max(1, round(W * r)))
    else:
        base = (H, W)
    h, w = (max(1, round(v * top)) for v in base)
    if limit is not None and h * w > limit:
        raise ImageError(
            f"predicting at {w} x {h} px (`train_size` / `scale`) is more than the limit of "
            f"{limit:,} pixels; lower `train_size` or `scale`, or raise `max_image_pixels`"
        )
    return base


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
            raise RuntimeError(
                f"model returned {tuple(out.shape)} for an input of {tuple(x.shape[-2:])}"
            )
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
) -> list[FullLogits | TiledLogits]:
    """One logits source per ``(scale, flip)`` configuration, at ``base`` size times the scale."""
    sources: list[FullLogits | TiledLogits] = []
    arrays: dict[float, np.ndarray] = {}
    for s, f in configs:
        size = (max(1, round(base[0] * s)), max(1, round(base[1] * s)))
        if s not in arrays:
            arrays[s] = np.array(_resize(img, size))  # writable copy for torch.from_numpy
        arr = arrays[s][:, ::-1] if f else arrays[s]
        if tiled:
            sources.append(TiledLogits(forward, arr, tile, overlap, f, dev))
        else:
            logits = forward(arr)
            sources.append(FullLogits(logits.flip(-1) if f else logits))
    return sources


def _reserve(sources: Sequence[FullLogits | TiledLogits], maps: dict, H: int, rows: int) -> None:
    """Tell each tiled source the most source rows one output strip of ``rows`` will ask for."""
    starts = torch.arange(0, H, rows)
    ends = (starts + rows).clamp(max=H)
    for src in sources:
        if isinstance(src, TiledLogits):
            if src.size[0] == H:
                src.reserve(rows)
            else:
                i0, i1, _ = maps[src.size[0]]
                src.reserve(int((i1[ends - 1] - i0[starts]).max()) + 1)


def _combine(
    sources: Sequence[FullLogits | TiledLogits],
    size: tuple[int, int],
    num_classes: int | None,
    return_probs: bool,
    strip_bytes: int,
) -> Tensor:
    """Upsample each source's logits to ``size`` strip by strip and take the argmax of their mean (as
    :func:`fcnlib.evaluation.eval_logits` does). Returns int64 labels ``(H, W)`` or float32
    probabilities ``(C, H, W)`` (the softmax of the mean logits)."""
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
            maps[src.size[0]] = interp_index(H, src.size[0])
    rows = min(H, max(1, strip_bytes // (4 * C * W)))
    _reserve(sources, maps, H, rows)
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
                part = F.interpolate(
                    part[None], size=(part.shape[1], W), mode="bilinear", align_corners=False
                )[0]
            total = (
                part if total is None else total + part
            )  # several passes: mean logits (no in-place: part may be a view)
            del part
        assert total is not None
        if labels is not None:
            # max(0).indices: the first maximal index, like argmax, but ~3x faster over dim 0 on CPU
            labels[y0:y1] = total.max(0).indices.cpu()
        if probs is not None:
            probs[:, y0:y1] = (total / len(sources)).softmax(0).cpu()
    return probs if probs is not None else labels
