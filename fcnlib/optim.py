"""The optimiser and the learning-rate schedule of a recipe."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .config import OptimSettings

__all__ = ["lr_lambda", "make_optimizer"]


def make_optimizer(
    params: Iterable[torch.nn.Parameter], opt: OptimSettings, device: torch.device
) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay, or AdamW (``opt.optimizer``): fused kernels on a GPU,
    foreach (multi-tensor) kernels on the CPU."""
    fused = device.type == "cuda"
    kernels = {"fused": True if fused else None, "foreach": None if fused else True}
    if opt.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay, **kernels)
    return torch.optim.SGD(
        params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay, **kernels
    )


def lr_lambda(
    opt: OptimSettings,
    total_steps: int,
    steps_per_epoch: int,
    budget_used: Callable[[], float] | None = None,
) -> Callable[[int], float]:
    """The learning-rate factor per optimisation step: optional linear warm-up, then the schedule.

    poly: ``(1 - step / total_steps) ** poly_power``; step: ``gamma ** (epoch // step_size)``;
    constant: 1. ``budget_used`` (a callable returning the fraction of a time budget spent) makes
    the poly schedule follow time instead of steps wherever time is further along.
    """
    warmup = opt.warmup_epochs * steps_per_epoch

    def warm(step: int) -> float:
        return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0

    if opt.schedule == "poly":

        def poly(step: int) -> float:
            done = min(step, total_steps - 1) / total_steps
            if budget_used is not None:
                done = max(done, min(budget_used(), (total_steps - 1) / total_steps))
            return warm(step) * (1 - done) ** opt.poly_power

        return poly
    if opt.schedule == "step":
        return lambda step: warm(step) * opt.gamma ** ((step // steps_per_epoch) // opt.step_size)
    return warm
