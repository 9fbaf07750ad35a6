"""Comparison baselines: the seed notes' training loop and alternative argmax / counting kernels.

The seed's histc metric functions themselves live in :mod:`fcnlib.metrics`
(``seed_batch_pix_accuracy``, ``seed_batch_intersection_union``), beside the fixed versions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..constants import IGNORE_INDEX
from ..metrics import seed_batch_intersection_union, seed_batch_pix_accuracy
from .settings import LR

__all__ = ["SeedLoop", "argmax_channel_loop", "confusion_masked_bincount"]


class SeedLoop:
    """The seed notes' training loop: fp32, NCHW, plain (per-parameter) SGD, ``nn.CrossEntropyLoss``,
    ``loss.item()`` and the seed's histc metrics on ``.cpu()`` copies every step."""

    def __init__(self, model: nn.Module, images: Tensor, masks: Tensor, num_classes: int) -> None:
        self.model = model.train()
        self.images, self.masks = images, masks
        self.num_classes = num_classes
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4, foreach=False
        )
        self.loss_sum = 0.0
        self.correct = self.labeled = 0
        self.inter = self.union = torch.zeros(num_classes)

    def step(self) -> None:
        outputs = self.model(self.images)
        loss = self.criterion(outputs, self.masks)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.item()
        out, target = outputs.detach().cpu(), self.masks.cpu()
        correct, labeled = seed_batch_pix_accuracy(out, target)
        inter, union = seed_batch_intersection_union(out, target, self.num_classes)
        self.correct, self.labeled = self.correct + correct, self.labeled + labeled
        self.inter, self.union = self.inter + inter, self.union + union


def argmax_channel_loop(logits: Tensor) -> Tensor:
    """Argmax over dim 1 by a running maximum over the channels (first maximum wins, as ``argmax``)."""
    best = logits[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.int64, device=logits.device)
    for c in range(1, logits.shape[1]):
        better = logits[:, c] > best
        best = torch.where(better, logits[:, c], best)
        index.masked_fill_(better, c)
    return index


def confusion_masked_bincount(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Confusion matrix by boolean indexing, ``bincount(t[keep] * C + p[keep])``.

    Same counts as :func:`fcnlib.metrics.confusion_matrix`, which instead maps ignored pixels to
    an extra, dropped bin; ``x[mask]`` on a GPU needs a host sync to size its result.
    """
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )
