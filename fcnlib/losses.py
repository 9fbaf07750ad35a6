"""Per-pixel cross-entropy for segmentation (the paper's loss), with the VOC ignore label."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .constants import IGNORE_INDEX

__all__ = ["SegmentationLoss", "pixel_cross_entropy"]


def pixel_cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Mean cross-entropy over the valid pixels of ``logits (B, C, H, W)`` against ``target (B, H, W)``.

    Pixels labelled ``ignore_index`` contribute nothing. With class ``weight`` the mean is weighted
    (PyTorch's convention: divided by the sum of the weights of the valid pixels). A batch with no
    valid pixel gives a zero loss that still carries a gradient path, rather than NaN.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        raise ValueError(
            f"logits are {tuple(logits.shape[-2:])} but target is {tuple(target.shape[-2:])}"
        )
    target = target.long()
    # Per-pixel terms from F.cross_entropy (0 at ignored pixels); the mean is taken here so that an
    # all-ignored batch gives 0 instead of 0/0, without a host sync to test for that case.
    per_pixel = F.cross_entropy(
        logits, target, weight=weight, ignore_index=ignore_index, reduction="none"
    )
    valid = target != ignore_index
    if weight is None:
        denom = valid.sum().to(per_pixel.dtype)
    else:
        denom = (weight[target.clamp(0, logits.shape[1] - 1)] * valid).sum()
    return per_pixel.sum() / denom.clamp_min(1e-12)


class SegmentationLoss(nn.Module):
    """Cross-entropy over one output or several (the seed's ``MixSoftmaxCrossEntropyLoss``).

    ``forward(outputs, target)``: ``outputs`` is logits ``(B, C, H, W)`` or a tuple/list of them
    (main output first, auxiliary ones after); the loss is the main term plus ``aux_weight`` times
    each auxiliary term (default 1: the plain sum the seed notes describe; other code bases
    down-weight auxiliary heads, e.g. 0.2 to 0.4).
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
        aux_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.aux_weight = aux_weight
        self.register_buffer(
            "weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        )

    def forward(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        if isinstance(outputs, Tensor):
            outputs = (outputs,)
        if len(outputs) == 0:
            raise ValueError("no outputs to compute a loss on")
        weight = self.weight.to(outputs[0].dtype) if self.weight is not None else None
        loss = pixel_cross_entropy(outputs[0], target, weight, self.ignore_index)
        for aux in outputs[1:]:
            loss = loss + self.aux_weight * pixel_cross_entropy(
                aux, target, weight, self.ignore_index
            )
        return loss
