"""Scaling suite: fcnlib's training throughput against batch size (fixed crop) and crop size (fixed batch)."""

from __future__ import annotations

import statistics
from typing import Any

import torch
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from ..context import Context
from .inputs import profile_model, random_batch
from .settings import BenchSettings
from .timing import free, is_oom, time_interleaved
from .train import FcnlibLoop

__all__ = ["bench_scaling"]


def _scaling_point(
    loop: FcnlibLoop, batch: int, size: int, s: BenchSettings, ctx: Context
) -> dict[str, Any]:
    point: dict[str, Any] = {"batch": batch, "size": size}
    try:
        loop.set_batch(*random_batch(batch, size, s.num_classes, ctx.device))
        repeats = max(1, s.repeats // 2 + 1)
        sec = time_interleaved({"fcnlib": loop.step}, ctx.device, s.scale_steps, 1, repeats)[
            "fcnlib"
        ]
    except Exception as exc:
        if not is_oom(exc):
            raise
        free(ctx.device)
        return {**point, "status": "OOM"}
    step = statistics.median(sec)
    return {
        **point,
        "status": "ok",
        "step_ms": step * 1e3,
        "images_per_s": batch / step,
        "megapixels_per_s": batch * size * size / step / 1e6,
    }


def bench_scaling(s: BenchSettings, ctx: Context, progress: bool = True) -> dict[str, Any]:
    """fcnlib training throughput against batch size (fixed crop) and crop size (fixed batch)."""
    torch.manual_seed(3)
    images, masks = random_batch(1, s.scale_batch_size, s.num_classes, ctx.device)
    loop = FcnlibLoop(profile_model(s).to(ctx.device), images, masks, ctx, s.num_classes)
    bar = tqdm(
        total=len(s.scale_batches) + len(s.scale_sizes),
        desc="scaling",
        leave=False,
        disable=not progress,
    )
    by_batch, by_size = [], []
    for b in s.scale_batches:
        by_batch.append(_scaling_point(loop, b, s.scale_batch_size, s, ctx))
        bar.update(1)
    for size in s.scale_sizes:
        by_size.append(_scaling_point(loop, s.scale_size_batch, size, s, ctx))
        bar.update(1)
    bar.close()
    del loop
    free(ctx.device)
    return {
        "loop": "fcnlib",
        "steps_per_repeat": s.scale_steps,
        "by_batch": by_batch,
        "by_size": by_size,
        "batch_sweep_size": s.scale_batch_size,
        "size_sweep_batch": s.scale_size_batch,
    }
