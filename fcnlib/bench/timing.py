"""Timing helpers: device synchronisation, interleaved (ABAB) timing, summaries, out-of-memory handling."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["free", "is_oom", "summary", "sync", "time_calls", "time_interleaved"]


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    device: torch.device,
    calls: int,
    warmup: int,
    repeats: int,
    bar: Any = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function: ``repeats`` measurements each, the variants alternating (ABAB...).

    Each function first runs ``warmup`` times untimed; a repeat times ``calls`` back-to-back calls
    between two device synchronisations, so that a change of machine load affects every variant
    alike. ``bar`` (a tqdm bar) advances by one per timed repeat.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / calls)
            if bar is not None:
                bar.update(1)
    return times


def time_calls(
    fn: Callable[[int], Any], device: torch.device, calls: int, warmup: int
) -> list[float]:
    """Seconds of each of ``calls`` timed calls ``fn(i)`` (``i`` counts from 0 over warm-up and timed
    calls), each between two device synchronisations, after ``warmup`` untimed calls."""
    times = []
    for i in range(warmup + calls):
        sync(device)
        t0 = time.perf_counter()
        fn(i)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def summary(seconds: list[float]) -> dict[str, Any]:
    """``median_s``, ``min_s`` and every measurement (``repeats_s``) of a list of seconds."""
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "repeats_s": seconds}


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA, or a failed host allocation)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def free(device: torch.device) -> None:
    """Return cached CUDA memory to the driver (between sections); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
