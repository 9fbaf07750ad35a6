"""Metric-update suite: the confusion matrix against the seed's histc code, argmax and counting
alternatives, a per-stage breakdown and an exact-equality check."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from ..constants import IGNORE_INDEX
from ..metrics import (
    SegmentationMetric,
    confusion_matrix,
    histc_intersection_union,
    histc_pixel_accuracy,
    seed_batch_intersection_union,
    seed_batch_pix_accuracy,
)
from .baselines import argmax_channel_loop, confusion_masked_bincount
from .inputs import random_logits, random_masks
from .settings import GOALS, BenchSettings
from .timing import free, summary, time_interleaved

__all__ = ["bench_metric", "equality_check"]

Fns = dict[str, Callable[[], Any]]


def _equality_on(
    logits: Tensor, target: Tensor, num_classes: int, dev: torch.device
) -> dict[str, Any]:
    lg, tg = logits.to(dev), target.to(dev)
    matrix = confusion_matrix(lg.argmax(1), tg, num_classes, IGNORE_INDEX, validate=True).cpu()
    tp = matrix.diag()
    cm_union = matrix.sum(0) + matrix.sum(1) - tp
    inter, union = (t.cpu() for t in histc_intersection_union(lg, tg, num_classes, IGNORE_INDEX))
    correct, labelled = histc_pixel_accuracy(lg, tg, IGNORE_INDEX)
    seed_inter, seed_union = seed_batch_intersection_union(lg, tg, num_classes)
    integral = bool((inter == inter.round()).all() and (union == union.round()).all())
    max_indices = confusion_matrix(lg.max(1).indices, tg, num_classes, IGNORE_INDEX).cpu()
    checks = {
        "histc_counts_integral": integral,
        "intersection_equal": integral and torch.equal(inter.long(), tp),
        "union_equal": integral and torch.equal(union.long(), cm_union),
        "pixel_correct_equal": correct == int(tp.sum()),
        "pixel_labelled_equal": labelled == int(matrix.sum()),
        "masked_bincount_equal": torch.equal(
            confusion_masked_bincount(lg.argmax(1), tg, num_classes).cpu(), matrix
        ),
        "max_indices_equal": torch.equal(max_indices, matrix),
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "device": str(dev),
        "pixels_labelled": int(matrix.sum()),
        # informative only: the seed's code is expected to differ (ignored pixels counted in the union)
        "seed_histc_agrees": bool(
            torch.equal(seed_inter.long(), tp) and torch.equal(seed_union.long(), cm_union)
        ),
    }


def equality_check(logits: Tensor, target: Tensor, num_classes: int) -> dict[str, Any]:
    """The fixed histc counts against the confusion matrix on the same logits: exact equality required.

    Runs on the logits' device; where a kernel is missing there (e.g. a histc dtype), on the CPU.
    """
    try:
        return _equality_on(logits, target, num_classes, logits.device)
    except RuntimeError as exc:
        result = _equality_on(logits, target, num_classes, torch.device("cpu"))
        result["note"] = f"ran on the CPU: {str(exc).splitlines()[0]}"
        return result


def _working(fns: Fns, failed: dict[str, str]) -> Fns:
    """The functions that run once without error (the others are recorded in ``failed``); the call is a warm-up."""
    ok = {}
    for name, fn in fns.items():
        try:
            fn()
            ok[name] = fn
        except RuntimeError as exc:  # e.g. a dtype a device's kernel lacks
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ok


def _candidates(logits: Tensor, target: Tensor, num_classes: int) -> tuple[Fns, Fns, Fns]:
    """The timed functions: whole metric updates, label (argmax) steps and counting steps."""
    C, device = num_classes, logits.device
    metric = SegmentationMetric(C, IGNORE_INDEX, validate=False)
    metric_bf16 = SegmentationMetric(C, IGNORE_INDEX, validate=False)
    logits_bf16 = logits.to(torch.bfloat16)
    updates: Fns = {
        "seed_histc": lambda: (
            seed_batch_pix_accuracy(logits, target),
            seed_batch_intersection_union(logits, target, C),
        ),
        "fixed_histc": lambda: (
            histc_pixel_accuracy(logits, target),
            histc_intersection_union(logits, target, C),
        ),
        "confusion_matrix": lambda: metric.update(logits, target),
        "confusion_matrix_bf16_logits": lambda: metric_bf16.update(logits_bf16, target),
    }
    if device.type == "cuda":  # the seed's training loop passes .cpu() copies
        updates["seed_histc_cpu_copies"] = lambda: (
            seed_batch_pix_accuracy(logits.cpu(), target.cpu()),
            seed_batch_intersection_union(logits.cpu(), target.cpu(), C),
        )
    logits_cl = logits.contiguous(memory_format=torch.channels_last)
    argmaxes: Fns = {
        "argmax_fp32": lambda: logits.argmax(1),
        "argmax_bf16": lambda: logits_bf16.argmax(1),
        "max_indices_fp32": lambda: logits.max(1).indices,
        "argmax_fp32_channels_last": lambda: logits_cl.argmax(1),
        "max_indices_fp32_channels_last": lambda: logits_cl.max(1).indices,
        "argmax_channel_loop_fp32": lambda: argmax_channel_loop(logits),
    }
    pred = logits.argmax(1)
    counting: Fns = {
        "confusion_matrix": lambda: confusion_matrix(pred, target, C, IGNORE_INDEX, validate=False),
        "confusion_masked_bincount": lambda: confusion_masked_bincount(pred, target, C),
    }
    return updates, argmaxes, counting


def _rows(times: dict[str, list[float]], pixels: int) -> dict[str, dict[str, Any]]:
    def row(sec: list[float]) -> dict[str, Any]:
        med = statistics.median(sec)
        return {"pixels_per_s": pixels / med, "ms_per_call": med * 1e3, **summary(sec)}

    return {k: row(v) for k, v in times.items()}


def bench_metric(s: BenchSettings, device: torch.device, progress: bool = True) -> dict[str, Any]:
    """Metric update throughput (pixels/s), argmax alternatives, per-stage breakdown, equality check."""
    torch.manual_seed(1)
    C = s.num_classes
    target = random_masks(s.metric_batch, s.metric_size, C, device)
    logits = random_logits(s.metric_batch, s.metric_size, C, target, device)
    pixels = target.numel()
    equality = equality_check(logits, target, C)
    failed: dict[str, str] = {}
    groups = [_working(fns, failed) for fns in _candidates(logits, target, C)]
    bar = tqdm(
        total=s.repeats * sum(map(len, groups)), desc="metric", leave=False, disable=not progress
    )
    upd, arg, cnt = (
        _rows(time_interleaved(fns, device, s.metric_calls, s.warmup, s.repeats, bar), pixels)
        for fns in groups
    )
    bar.close()
    for v in upd.values():
        v["speedup_vs_seed"] = upd["seed_histc"]["median_s"] / v["median_s"]
    pred = logits.argmax(1)
    for k, v in arg.items():
        v["agrees_with_argmax_fp32"] = float((groups[1][k]() == pred).double().mean())
    argmax_s, count_s = arg["argmax_fp32"]["median_s"], cnt["confusion_matrix"]["median_s"]
    speedup = upd["confusion_matrix"]["speedup_vs_seed"]
    goal = GOALS["metric_gpu" if device.type == "cuda" else "metric_cpu"]
    del logits, target, pred, groups
    free(device)
    return {
        "logits": {"shape": [s.metric_batch, C, *s.metric_size], "dtype": "float32"},
        "pixels_per_call": pixels,
        "calls_per_repeat": s.metric_calls,
        "repeats": s.repeats,
        "updates": upd,
        "argmax": arg,
        "counting": cnt,
        "breakdown": {
            "argmax_s": argmax_s,
            "count_s": count_s,
            "argmax_share": argmax_s / (argmax_s + count_s),
            "update_s": upd["confusion_matrix"]["median_s"],
        },
        "speedup": speedup,
        "goal": {"speedup": goal, "device": device.type, "met": speedup >= goal},
        "equality": equality,
        "failed": failed,
    }
