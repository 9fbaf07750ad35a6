"""Synthetic inputs of the benchmark suites: the FCN-8s of a profile, random batches, logits and photos."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..constants import IGNORE_INDEX
from ..models import FCN, fcn8s
from .settings import BenchSettings

__all__ = ["profile_model", "random_batch", "random_logits", "random_masks", "random_photo"]


def profile_model(s: BenchSettings) -> FCN:
    """The FCN-8s of profile ``s`` (random initialisation)."""
    return fcn8s(s.num_classes, head=s.head, width=s.width, batch_norm=s.batch_norm)


def random_masks(
    batch: int, size: tuple[int, int], num_classes: int, device: torch.device
) -> Tensor:
    """Random labels ``(B, H, W)`` int64 with about 5 % ignored (:data:`~fcnlib.constants.IGNORE_INDEX`) pixels."""
    masks = torch.randint(0, num_classes, (batch, *size), device=device)
    masks[torch.rand(masks.shape, device=device) < 0.05] = IGNORE_INDEX
    return masks


def random_batch(
    batch: int, size: int, num_classes: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """A training batch: images ``(B, 3, size, size)`` ~ N(0, 1) and masks (see :func:`random_masks`)."""
    return torch.randn(batch, 3, size, size, device=device), random_masks(
        batch, (size, size), num_classes, device
    )


def random_logits(
    batch: int, size: tuple[int, int], num_classes: int, target: Tensor, device: torch.device
) -> Tensor:
    """Float32 logits ``(B, C, H, W)`` ~ N(0, 1) with +2 on the target class (so IoUs are not trivial)."""
    logits = torch.randn(batch, num_classes, *size, device=device)
    cls = target.clamp(max=num_classes - 1)[:, None]
    return logits.scatter_add_(1, cls, torch.full_like(cls, 2.0, dtype=logits.dtype))


def random_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random uint8 ``H x W x 3`` image (content does not change the cost)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
