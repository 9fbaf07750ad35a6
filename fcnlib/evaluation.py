"""Evaluation of a model over a data set: dataset-level metrics at the labels' full size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .constants import DEFAULT_MAX_IMAGE_PIXELS, IGNORE_INDEX
from .context import Context
from .errors import FcnlibError
from .losses import SegmentationLoss
from .metrics import BoundaryMetric, SegmentationMetric

__all__ = ["check_scaled_size", "eval_logits", "evaluate"]


def _scales(scale: float | Sequence[float]) -> tuple[float, ...]:
    scales = (float(scale),) if isinstance(scale, (int, float)) else tuple(float(s) for s in scale)
    if not scales or any(not (0 < s < float("inf")) for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scale!r}")
    return scales


def check_scaled_size(
    size: Sequence[int], scale: float | Sequence[float], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> None:
    """Refuse a scale that would make an ``H x W`` input larger than ``max_pixels`` (the same
    limit as photos), before anything is allocated."""
    h, w = int(size[0]), int(size[1])
    for s in _scales(scale):
        pixels = max(1, round(h * s)) * max(1, round(w * s))
        if pixels > max_pixels:
            raise FcnlibError(
                f"evaluation scale {s:g} turns a {h}x{w} image into {pixels / 1e6:.0f} MP, over the "
                f"{max_pixels / 1e6:.0f} MP limit: choose a smaller scale"
            )


def eval_logits(
    model: nn.Module,
    images: Tensor,
    ctx: Context,
    *,
    scale: float | Sequence[float] = 1.0,
    flip: bool = False,
) -> Tensor:
    """float32 logits ``(B, C, H, W)`` for ``images (B, 3, H, W)``, run at ``scale`` x the size.

    For each scale ``s != 1`` the input is resized to ``round(s * H) x round(s * W)`` (bilinear,
    antialiased) and the logits are upsampled back to ``H x W`` (bilinear); ``flip`` adds the
    mirrored input's logits (flipped back). With several scales (or ``flip``) the result is the
    mean of the logits of every pass.
    """
    size = tuple(images.shape[-2:])
    check_scaled_size(size, scale)
    total, passes = None, 0
    for s in _scales(scale):
        x = images
        if s != 1.0:
            small = (max(1, round(size[0] * s)), max(1, round(size[1] * s)))
            x = F.interpolate(
                images, size=small, mode="bilinear", align_corners=False, antialias=True
            )
        for mirrored in (False, True) if flip else (False,):
            with ctx.autocast():
                logits = model(x.flip(-1) if mirrored else x).float()
            logits = logits.flip(-1) if mirrored else logits
            if tuple(logits.shape[-2:]) != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
            passes += 1
    return total / passes


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    ctx: Context | None = None,
    *,
    per_image: bool = False,
    ignore_index: int = IGNORE_INDEX,
    progress: bool = True,
    scale: float | Sequence[float] = 1.0,
    flip: bool = False,
    boundary: Sequence[int] = (),
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` over ``loader`` (full-size images and labels).

    Returns the :class:`SegmentationMetric` results (``pixAcc``, ``meanAcc``, ``mIoU``, ``fwIoU``,
    per-class ``IoU``/``Acc``, ``confusion``), the mean validation ``loss`` and ``images``; with
    ``per_image`` also the seed notes' per-image means. ``scale``/``flip``: see
    :func:`eval_logits`. ``boundary``: band widths; adds ``boundary`` = the
    :class:`~fcnlib.metrics.BoundaryMetric` results per width. Under ``torch.distributed`` every rank passes its shard and all get the
    merged result.
    """
    ctx = ctx or Context(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index, per_image=per_image, validate=False)
    bmetric = BoundaryMetric(num_classes, boundary, ignore_index) if boundary else None
    criterion = SegmentationLoss(ignore_index=ignore_index)
    sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, batches, images
    bar = tqdm(
        loader, desc="eval", leave=False, disable=not (progress and ctx.is_main), dynamic_ncols=True
    )
    for images, masks in bar:
        images = images.to(ctx.device, non_blocking=True)
        masks = masks.to(ctx.device, non_blocking=True)
        logits = eval_logits(model, images, ctx, scale=scale, flip=flip)
        sums += torch.stack(
            [criterion(logits, masks).double(), sums.new_ones(()), sums.new_tensor(len(images))]
        )
        metric.update(logits, masks)
        if bmetric is not None:
            bmetric.update(logits, masks)
    metric.all_reduce(ctx.device)
    if bmetric is not None:
        bmetric.all_reduce(ctx.device)
    if ctx.distributed:
        dist.all_reduce(sums)
    model.train(was_training)
    result = metric.compute()
    result["loss"] = (sums[0] / sums[1]).item() if sums[1] > 0 else float("nan")
    result["images"] = int(sums[2].item())
    if bmetric is not None:
        result["boundary"] = bmetric.compute()
    return result
