"""Evaluation of a model over a data set: dataset-level metrics at the labels' full size
(:func:`evaluate` -> :class:`EvalResult`), and the results file that records one evaluation
(:func:`results_record`, :func:`read_results`; versioned by :data:`RESULTS_SCHEMA`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
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
from .metrics import SegmentationMetric
from .settings import check_scales

__all__ = [
    "RESULTS_PROTOCOL",
    "RESULTS_SCHEMA",
    "RESULT_METRICS",
    "EvalResult",
    "check_scaled_size",
    "eval_logits",
    "evaluate",
    "read_results",
    "results_record",
]

#: Version of the results file :func:`results_record` writes (files without one are version 1,
#: which had the same sections).
RESULTS_SCHEMA = 2
#: The dataset-level numbers a results file records under ``metrics`` (a new one: one name here).
RESULT_METRICS = ("pixAcc", "meanAcc", "mIoU", "fwIoU", "loss")
RESULTS_PROTOCOL = (
    "dataset-level confusion matrix (classes absent from ground truth and prediction excluded)"
)


@dataclass
class EvalResult:
    """Dataset-level metrics of one evaluation.

    ``pixAcc``, ``meanAcc``, ``mIoU``, ``fwIoU`` are floats (NaN where undefined); ``IoU`` and
    ``Acc`` are per-class float tensors ``(C,)``; ``confusion`` the int64 ``(C, C)`` matrix (rows:
    ground truth); ``loss`` the mean cross-entropy; ``images`` the number evaluated; the
    ``*_per_image`` means only with ``per_image=True``. ``res["mIoU"]`` reads a field too.
    """

    pixAcc: float
    meanAcc: float
    mIoU: float
    fwIoU: float
    IoU: Tensor
    Acc: Tensor
    confusion: Tensor
    loss: float
    images: int
    pixAcc_per_image: float | None = None
    mIoU_per_image: float | None = None

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def keys(self) -> list[str]:
        """The field names (the per-image ones only when computed)."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.keys()}


_scales = check_scales  # one number or several -> positive finite floats (ConfigError otherwise)


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
) -> EvalResult:
    """Dataset-level metrics of ``model`` over ``loader`` (full-size images and labels).

    ``per_image`` adds the per-image means; ``scale``/``flip``: see :func:`eval_logits`. Under
    ``torch.distributed`` every rank passes its shard and all get the merged result.
    """
    ctx = ctx or Context(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index, per_image=per_image, validate=False)
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
    metric.all_reduce(ctx.device)
    if ctx.distributed:
        dist.all_reduce(sums)
    model.train(was_training)
    result = metric.compute()
    loss = (sums[0] / sums[1]).item() if sums[1] > 0 else float("nan")
    names = {f.name for f in fields(EvalResult)}
    values = {k: v for k, v in result.items() if k in names}
    return EvalResult(**values, loss=loss, images=int(sums[2].item()))


def _number(v: float) -> float | None:
    return None if math.isnan(v) else v  # NaN (a class absent from labels and predictions): null


def results_record(
    res: EvalResult,
    classes: Sequence[str],
    *,
    evaluation: dict[str, Any],
    data: dict[str, Any],
    model: dict[str, Any],
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The results file of one evaluation (JSON-ready).

    Args:
        res: what :func:`evaluate` returned.
        classes: the class names, in the model's order.
        evaluation: how it ran (``scale``, ``flip``, ``device``, ``amp``).
        data: ``name``, ``root``, ``split``; ``images`` is added from ``res``.
        model: ``checkpoint``, ``checkpoint_sha256``, ``model``, ``trained_epochs``,
            ``train_config``, ``train_seconds``.
        provenance: :func:`fcnlib.provenance.run_info` (command, commit, machine).
    """
    record = {
        "schema": RESULTS_SCHEMA,
        **(provenance or {}),
        **model,
        "evaluation": dict(evaluation),
        "data": {**data, "images": res.images},
        "protocol": RESULTS_PROTOCOL,
        "metrics": {k: _number(res[k]) for k in RESULT_METRICS},
        "per_class_iou": {c: _number(v) for c, v in zip(classes, res.IoU.tolist())},
        "confusion": res.confusion.tolist(),
    }
    if res.pixAcc_per_image is not None:
        record["metrics_per_image"] = {"pixAcc": res.pixAcc_per_image, "mIoU": res.mIoU_per_image}
    return record


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """A results file written by ``fcnlib eval`` (any schema up to :data:`RESULTS_SCHEMA`)."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise FcnlibError(f"cannot read results file {path}: {exc}") from None
    if not isinstance(record, dict) or "metrics" not in record:
        raise FcnlibError(f"{path} is not an fcnlib results file (no metrics)")
    schema = record.setdefault("schema", 1)
    if not isinstance(schema, int) or schema > RESULTS_SCHEMA:
        raise FcnlibError(
            f"{path} has results schema {schema!r}; this fcnlib reads up to {RESULTS_SCHEMA}"
        )
    return record
