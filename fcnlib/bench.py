"""Benchmarks: fcnlib's training loop, metric and inference against the seed notes' code.

``python -m fcnlib bench [--device cpu|cuda|auto] [--quick]`` measures, in one process on one
machine, each figure as a ratio against a baseline run alongside it:

- ``train``: FCN-8s training throughput (images/s) of the seed-style loop (fp32, NCHW, plain
  SGD, ``.item()`` and the seed's histc metrics on the CPU every step) against fcnlib's loop
  (:func:`fcnlib.engine.train_step`: autocast where the context enables it, channels_last,
  fused/foreach SGD, :class:`~fcnlib.metrics.SegmentationMetric` on the device, no per-step sync),
  optionally also compiled; FLOPs per step (``FlopCounterMode``) and the utilisation of the
  card's peak.
- ``metric``: metric update throughput (pixels/s) of the confusion-matrix ``bincount`` against the
  seed's histc code on the same logits, the argmax alternatives, a per-stage breakdown, and an
  exact-equality check of the fixed histc counts against the confusion matrix.
- ``inference``: latency and peak memory of :func:`fcnlib.predict.predict` (whole / scaled /
  tiled) at VOC size, 2048x1365 and 5472x3648.
- ``scaling``: training throughput against batch size and crop size (table and PNG plot).

Results go to ``<out>/<device>-<quick|full>-<timestamp>.json`` (copied to
``<out>/latest-<device>[-quick].json``) with a markdown rendering (``.md``) and the scaling plot
(``-scaling.png``) beside it. Timings are medians of repeats after warm-up, with
``torch.cuda.synchronize()`` around GPU work; competing variants are timed interleaved (ABAB) so
that a change of machine load affects both sides of a ratio alike.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import os
import platform
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .config import ConfigError, TrainConfig
from .engine import Context, make_optimizer, setup_context, train_step
from .losses import SegmentationLoss
from .metrics import (
    SegmentationMetric,
    confusion_matrix,
    histc_intersection_union,
    histc_pixel_accuracy,
    seed_batch_intersection_union,
    seed_batch_pix_accuracy,
)
from .models import FCN, fcn8s

__all__ = [
    "SCHEMA",
    "BenchSettings",
    "PEAK_TFLOPS",
    "settings_for",
    "peak_tflops",
    "PeakMemory",
    "bench_train",
    "bench_metric",
    "bench_inference",
    "bench_scaling",
    "to_markdown",
    "run_bench",
]

SCHEMA = "fcnlib-bench/1"
IGNORE = 255
LR = 1e-4  # small enough that random data does not diverge during the timed steps
GB = 1e9
#: The inference memory goal: the 5472x3648 photo within this many bytes of GPU memory (max_memory_allocated).
GPU_MEMORY_GOAL_BYTES = 8 * GB
#: Speed-up goals (ratio against the seed baseline); the training one applies on a GPU only.
GOALS = {"train_gpu": 3.0, "metric_gpu": 20.0, "metric_cpu": 3.0}

#: Dense peak throughput (TFLOP/s) of common cards: half precision (bf16; fp16 where the card has
#: no bf16) and fp32 (non-tensor-core). From NVIDIA's datasheets; first matching pattern wins.
PEAK_TFLOPS: list[dict[str, Any]] = [
    {"pattern": r"\bH100\b.*\bPCIe\b", "card": "H100 PCIe", "half": 756.0, "half_dtype": "bf16", "fp32": 51.0},
    {"pattern": r"\bH100\b.*\bNVL\b", "card": "H100 NVL", "half": 835.0, "half_dtype": "bf16", "fp32": 60.0},
    {"pattern": r"\bH100\b", "card": "H100 SXM", "half": 989.0, "half_dtype": "bf16", "fp32": 67.0},
    {"pattern": r"\bH200\b", "card": "H200 (as H100 SXM)", "half": 989.0, "half_dtype": "bf16", "fp32": 67.0},
    {"pattern": r"\bA100\b", "card": "A100", "half": 312.0, "half_dtype": "bf16", "fp32": 19.5},
    {"pattern": r"\bL4\b", "card": "L4", "half": 121.0, "half_dtype": "bf16", "fp32": 30.0},
    {"pattern": r"\bT4\b", "card": "T4", "half": 65.0, "half_dtype": "fp16", "fp32": 8.1},
]

#: The inference sizes of the issue, (name, height, width): VOC, a 3 MP photo, the seed's largest photo.
IMAGES = (("500x375", 375, 500), ("2048x1365", 1365, 2048), ("5472x3648", 3648, 5472))


# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and repeat counts of one benchmark profile (all sizes in pixels)."""

    profile: str
    width: float  # channel width of the FCN-8s (1.0 = VGG16)
    head: str = "paper"
    batch_norm: bool = False
    num_classes: int = 21
    # training throughput
    train_batch: int = 8
    train_size: int = 480  # square crops
    train_steps: int = 10  # optimisation steps per timed repeat
    warmup: int = 3  # untimed steps (or calls) before timing
    repeats: int = 5
    compile: bool = True  # also measure torch.compile (else recorded as "not measured")
    # metric update
    metric_batch: int = 8
    metric_size: tuple[int, int] = (512, 512)
    metric_calls: int = 10  # updates per timed repeat
    # inference: (name, H, W) and per image the timed repeats and warm-up calls
    infer_images: tuple[tuple[str, int, int], ...] = IMAGES
    infer_repeats: tuple[int, ...] = (10, 5, 3)
    infer_warmup: tuple[int, ...] = (2, 1, 1)
    infer_train_size: int = 512
    infer_tile: int = 512
    infer_overlap: int = 128
    # scaling
    scale_batches: tuple[int, ...] = (1, 2, 4, 8, 16)
    scale_batch_size: int = 384  # crop size of the batch sweep
    scale_sizes: tuple[int, ...] = (256, 384, 512, 768)
    scale_size_batch: int = 4  # batch of the size sweep
    scale_steps: int = 5


def _scaled_images(factor: int) -> tuple[tuple[str, int, int], ...]:
    return tuple((name, max(1, round(h / factor)), max(1, round(w / factor))) for name, h, w in IMAGES)


def settings_for(device: torch.device, quick: bool, tiny: bool = False) -> BenchSettings:
    """The profile for a device: full-width model and real sizes on a GPU; width 0.125 on the CPU.

    CPU full: the real inference sizes (train_size 512, tile 512), small training crops (a few
    minutes on 2 cores). CPU ``quick``: images at 1/4 of the real sizes, train_size 128 and tile
    256 (about a minute). GPU ``quick``: fewer repeats and smaller crops, no ``torch.compile``.
    ``tiny`` (tests): width 0.0625, images at 1/16, one repeat; every section still runs.
    """
    if tiny:
        return BenchSettings(
            "tiny", width=0.0625, train_batch=2, train_size=64, train_steps=1, warmup=1, repeats=2, compile=False,
            metric_batch=2, metric_size=(96, 128), metric_calls=2, infer_images=_scaled_images(16),
            infer_repeats=(1, 1, 1), infer_warmup=(1, 0, 0), infer_train_size=32, infer_tile=64, infer_overlap=16,
            scale_batches=(1, 2), scale_batch_size=48, scale_sizes=(32, 64), scale_size_batch=1, scale_steps=1,
        )
    if device.type == "cuda":
        if not quick:
            return BenchSettings("gpu-full", width=1.0)
        return BenchSettings(
            "gpu-quick", width=1.0, train_batch=4, train_size=256, train_steps=5, warmup=2, repeats=3, compile=False,
            metric_batch=4, metric_calls=5, infer_repeats=(3, 2, 1), infer_warmup=(1, 1, 1),
            scale_batches=(1, 2, 4), scale_batch_size=256, scale_sizes=(128, 256, 384), scale_size_batch=2,
            scale_steps=3,
        )
    if quick:
        return BenchSettings(
            "cpu-quick", width=0.125, train_batch=2, train_size=96, train_steps=2, warmup=1, repeats=3, compile=False,
            metric_batch=2, metric_size=(256, 256), metric_calls=3, infer_images=_scaled_images(4),
            infer_repeats=(3, 2, 1), infer_warmup=(1, 1, 0), infer_train_size=128, infer_tile=256, infer_overlap=64,
            scale_batches=(1, 2, 4), scale_batch_size=96, scale_sizes=(64, 96, 128), scale_size_batch=2,
            scale_steps=2,
        )
    return BenchSettings(
        "cpu-full", width=0.125, train_batch=4, train_size=160, train_steps=2, warmup=1, repeats=5, compile=True,
        metric_batch=4, metric_size=(480, 480), metric_calls=2, infer_images=IMAGES,
        infer_repeats=(3, 1, 1), infer_warmup=(1, 1, 0),
        scale_batches=(1, 2, 4, 8), scale_batch_size=128, scale_sizes=(64, 128, 192, 256), scale_size_batch=2,
        scale_steps=2,
    )


def peak_tflops(device_name: str | None) -> dict[str, Any] | None:
    """The :data:`PEAK_TFLOPS` entry (without its pattern) matching a CUDA device name, or ``None`` (unknown)."""
    if not device_name:
        return None
    for entry in PEAK_TFLOPS:
        if re.search(entry["pattern"], device_name, flags=re.IGNORECASE):
            return {k: v for k, v in entry.items() if k != "pattern"}
    return None


# ----------------------------------------------------------------------------------------------
# Timing and memory helpers
# ----------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_interleaved(
    fns: dict[str, Callable[[], Any]], device: torch.device, calls: int, warmup: int, repeats: int,
    bar: Any = None,
) -> dict[str, list[float]]:
    """Seconds per call of each function: ``repeats`` medians-to-be, the variants alternating (ABAB...).

    Each function first runs ``warmup`` times untimed; a repeat times ``calls`` back-to-back calls
    between two device synchronisations.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / calls)
            if bar is not None:
                bar.update(1)
    return times


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "repeats_s": seconds}


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _current_rss() -> int:
    kib = _proc_status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - neither /proc nor psutil
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _trim_heap() -> bool:
    """Collect garbage and hand free heap memory back to the OS (glibc ``malloc_trim(0)``), so that
    memory freed by earlier work and reused by the next block does not hide its RSS growth."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _can_reset_hwm() -> bool:
    """Whether writing ``5`` to ``/proc/self/clear_refs`` resets the peak RSS (VmHWM), Linux >= 4.0."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return _proc_status_kib("VmHWM") is not None


class PeakMemory:
    """Peak memory of a block, bytes. ``with PeakMemory(device) as pm: ...``; then ``pm.peak``, ``pm.growth``.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (``peak`` is the
    absolute figure, weights included; ``growth`` is over the memory allocated on entry). CPU: the
    process's peak resident set (``VmHWM`` of ``/proc/self/status``, reset by writing ``5`` to
    ``/proc/self/clear_refs``), or, where that is not permitted, the maximum of the RSS sampled
    every millisecond by a thread (which can miss short spikes); ``peak`` includes the interpreter
    and libraries, ``growth`` is over the RSS on entry, after ``gc.collect()`` and glibc's
    ``malloc_trim(0)``; heap memory the allocator still keeps may be reused and then does not count.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.peak = 0
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated (reset_peak_memory_stats before each call)"
        elif _can_reset_hwm():
            self.method = "peak RSS: /proc/self/status VmHWM, reset by writing 5 to /proc/self/clear_refs after malloc_trim(0)"
        else:
            self.method = "peak RSS sampled every 1 ms by a thread (VmRSS / psutil) after malloc_trim(0)"

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.base)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.method.startswith("peak RSS: /proc"):
            _trim_heap()
            _can_reset_hwm()
            self.base = _current_rss()
        else:
            _trim_heap()
            self.base = self.peak = _current_rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _current_rss())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            assert self._stop is not None
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _current_rss())
        else:
            self.peak = (_proc_status_kib("VmHWM") or 0) * 1024


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# Data and models
# ----------------------------------------------------------------------------------------------


def _model(s: BenchSettings) -> FCN:
    return fcn8s(s.num_classes, head=s.head, width=s.width, batch_norm=s.batch_norm)


def _masks(batch: int, size: tuple[int, int], num_classes: int, device: torch.device) -> Tensor:
    """Random labels ``(B, H, W)`` int64 with about 5 % ignored (255) pixels."""
    masks = torch.randint(0, num_classes, (batch, *size), device=device)
    masks[torch.rand(masks.shape, device=device) < 0.05] = IGNORE
    return masks


def _batch(batch: int, size: int, num_classes: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """A training batch: images ``(B, 3, size, size)`` ~ N(0, 1) and masks (see :func:`_masks`)."""
    return torch.randn(batch, 3, size, size, device=device), _masks(batch, (size, size), num_classes, device)


# ----------------------------------------------------------------------------------------------
# Training loops
# ----------------------------------------------------------------------------------------------


class SeedLoop:
    """The seed notes' training loop: fp32, NCHW, plain (per-parameter) SGD, ``nn.CrossEntropyLoss``,
    ``loss.item()`` and the seed's histc metrics on ``.cpu()`` copies every step."""

    def __init__(self, model: nn.Module, images: Tensor, masks: Tensor, num_classes: int) -> None:
        self.model = model.train()
        self.images, self.masks = images, masks
        self.num_classes = num_classes
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4, foreach=False)
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


class FcnlibLoop:
    """fcnlib's loop, as :func:`fcnlib.engine.train`: :func:`~fcnlib.engine.train_step` (autocast per
    ``ctx``, channels_last, fused/foreach SGD), the loss summed on the device, and a
    ``SegmentationMetric(validate=False)`` updated from the logits (taken with a forward hook)."""

    def __init__(self, model: FCN, images: Tensor, masks: Tensor, ctx: Context, num_classes: int,
                 compile: bool = False) -> None:
        self.model = model.to(memory_format=torch.channels_last).train()
        self.images, self.masks, self.ctx = images, masks, ctx
        self._logits: list[Tensor | None] = [None]
        model.register_forward_hook(lambda _m, _i, out: self._logits.__setitem__(0, out.detach()))
        self.train_model: nn.Module = torch.compile(model) if compile else model
        cfg = TrainConfig(lr=LR, momentum=0.9, weight_decay=1e-4)
        self.optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg, ctx.device)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
        self.criterion = SegmentationLoss(ignore_index=IGNORE).to(ctx.device)
        self.metric = SegmentationMetric(num_classes, IGNORE, validate=False)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        self.finite = torch.ones((), dtype=torch.bool, device=ctx.device)

    def set_batch(self, images: Tensor, masks: Tensor) -> None:
        self.images, self.masks = images, masks

    def step(self) -> None:
        loss = train_step(self.train_model, self.images, self.masks, self.criterion, self.optimizer, self.scaler,
                          self.ctx, channels_last=True)
        self.loss_sum += loss.double()
        self.finite &= torch.isfinite(loss)
        assert self._logits[0] is not None
        self.metric.update(self._logits[0], self.masks)


def count_train_flops(model: nn.Module, images: Tensor, masks: Tensor) -> int:
    """FLOPs of one forward + backward pass (``torch.utils.flop_counter.FlopCounterMode``), on a copy of ``model``."""
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(m(images), masks, ignore_index=IGNORE).backward()
    del m
    return int(counter.get_total_flops())


def _mfu(flops: int, step_s: float, peak: dict[str, Any] | None) -> dict[str, Any]:
    achieved = flops / step_s / 1e12
    out: dict[str, Any] = {"achieved_tflops": achieved}
    if peak is None:
        out["mfu_vs_half_peak"] = out["mfu_vs_fp32_peak"] = None
        out["note"] = "peak unknown for this device"
    else:
        out["mfu_vs_half_peak"] = achieved / peak["half"]
        out["mfu_vs_fp32_peak"] = achieved / peak["fp32"]
    return out


def _compile_variant(s: BenchSettings, base: FCN, images: Tensor, masks: Tensor, ctx: Context,
                     quick: bool) -> tuple[FcnlibLoop | None, dict[str, Any]]:
    """The compiled fcnlib loop after its first (compiling) step, or ``None`` and why it was not measured."""
    if not s.compile:
        why = "skipped with --quick on the CPU (compiling takes minutes on 2 cores)" if quick else "disabled in this profile"
        return None, {"status": "not measured", "reason": why}
    try:
        loop = FcnlibLoop(copy.deepcopy(base), images, masks, ctx, s.num_classes, compile=True)
        t0 = time.perf_counter()
        loop.step()
        _sync(ctx.device)
        return loop, {"status": "measured", "compile_s": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - a missing compiler or an inductor bug must not stop the benchmark
        return None, {"status": "not measured", "reason": f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def bench_train(s: BenchSettings, ctx: Context, peak: dict[str, Any] | None, quick: bool = False,
                progress: bool = True) -> dict[str, Any]:
    """Training throughput of the seed-style and fcnlib loops (and compiled), FLOPs and utilisation."""
    device = ctx.device
    torch.manual_seed(0)
    base = _model(s).to(device)
    images, masks = _batch(s.train_batch, s.train_size, s.num_classes, device)
    flops = count_train_flops(base, images, masks)
    loops = {
        "seed": SeedLoop(copy.deepcopy(base), images, masks, s.num_classes),
        "fcnlib": FcnlibLoop(copy.deepcopy(base), images, masks, ctx, s.num_classes),
    }
    compiled, compile_info = _compile_variant(s, base, images, masks, ctx, quick)
    if compiled is not None:
        loops["fcnlib_compile"] = compiled
    bar = tqdm(total=s.repeats * len(loops), desc="train", leave=False, disable=not progress)
    times = _time_interleaved({k: v.step for k, v in loops.items()}, device, s.train_steps, s.warmup, s.repeats, bar)
    bar.close()
    variants: dict[str, Any] = {}
    for name, sec in times.items():
        step_s = statistics.median(sec)
        variants[name] = {"images_per_s": s.train_batch / step_s, "step_ms": step_s * 1e3, **_summary(sec),
                          **_mfu(flops, step_s, peak)}
    variants.setdefault("fcnlib_compile", {}).update(compile_info)
    seed_ips = variants["seed"]["images_per_s"]
    for v in variants.values():
        if "images_per_s" in v:
            v["speedup_vs_seed"] = v["images_per_s"] / seed_ips
    speedup = variants["fcnlib"]["speedup_vs_seed"]
    finite = bool(loops["fcnlib"].finite) and math.isfinite(loops["seed"].loss_sum)
    del loops, compiled
    _free(device)
    return {
        "model": {"name": "fcn8s", "width": s.width, "head": s.head, "batch_norm": s.batch_norm,
                  "num_classes": s.num_classes, "parameters": sum(p.numel() for p in base.parameters())},
        "batch": s.train_batch, "crop": [s.train_size, s.train_size], "steps_per_repeat": s.train_steps,
        "warmup_steps": s.warmup, "repeats": s.repeats,
        "fcnlib_amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
        "flops_per_step": flops, "flops_per_image": flops / s.train_batch,
        "variants": variants, "losses_finite": finite,
        "speedup": speedup,
        "goal": {"speedup": GOALS["train_gpu"], "applies_to": "cuda",
                 "met": speedup >= GOALS["train_gpu"] if device.type == "cuda" else None},
    }


# ----------------------------------------------------------------------------------------------
# Metric update
# ----------------------------------------------------------------------------------------------


def _logits(batch: int, size: tuple[int, int], num_classes: int, target: Tensor, device: torch.device) -> Tensor:
    """Float32 logits ``(B, C, H, W)`` ~ N(0, 1) with +2 on the target class (so IoUs are not trivial)."""
    logits = torch.randn(batch, num_classes, *size, device=device)
    cls = target.clamp(max=num_classes - 1)[:, None]
    return logits.scatter_add_(1, cls, torch.full_like(cls, 2.0, dtype=logits.dtype))


def argmax_channel_loop(logits: Tensor) -> Tensor:
    """Argmax over dim 1 by a running maximum over the channels (first maximum wins, as ``argmax``)."""
    best = logits[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.int64, device=logits.device)
    for c in range(1, logits.shape[1]):
        better = logits[:, c] > best
        best = torch.where(better, logits[:, c], best)
        index.masked_fill_(better, c)
    return index


def confusion_masked_bincount(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE) -> Tensor:
    """Confusion matrix by boolean indexing, ``bincount(t[keep] * C + p[keep])``: the counting step
    fcnlib used before its sync-free extra-bin version (:func:`fcnlib.metrics.confusion_matrix`).

    Same counts; kept as the alternative in the counting table, because ``x[mask]`` on a GPU needs a
    host sync to size its result.
    """
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = target != ignore_index
    index = target[keep] * num_classes + pred[keep]
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _equality_check(logits: Tensor, target: Tensor, num_classes: int) -> dict[str, Any]:
    """The fixed histc counts against the confusion matrix on the same logits: exact equality required."""
    def run(dev: torch.device) -> dict[str, Any]:
        lg, tg = logits.to(dev), target.to(dev)
        matrix = confusion_matrix(lg.argmax(1), tg, num_classes, IGNORE, validate=True).cpu()
        tp = matrix.diag()
        cm_union = matrix.sum(0) + matrix.sum(1) - tp
        inter, union = (t.cpu() for t in histc_intersection_union(lg, tg, num_classes, IGNORE))
        correct, labelled = histc_pixel_accuracy(lg, tg, IGNORE)
        seed_inter, seed_union = seed_batch_intersection_union(lg, tg, num_classes)
        integral = bool((inter == inter.round()).all() and (union == union.round()).all())
        checks = {
            "histc_counts_integral": integral,
            "intersection_equal": integral and torch.equal(inter.long(), tp),
            "union_equal": integral and torch.equal(union.long(), cm_union),
            "pixel_correct_equal": correct == int(tp.sum()),
            "pixel_labelled_equal": labelled == int(matrix.sum()),
            "masked_bincount_equal": torch.equal(confusion_masked_bincount(lg.argmax(1), tg, num_classes).cpu(), matrix),
            "max_indices_equal": torch.equal(confusion_matrix(lg.max(1).indices, tg, num_classes, IGNORE).cpu(), matrix),
        }
        return {
            "passed": all(checks.values()), "checks": checks, "device": str(dev),
            "pixels_labelled": int(matrix.sum()),
            # informative only: the seed's code is expected to differ (255 counted in the union)
            "seed_histc_agrees": bool(torch.equal(seed_inter.long(), tp) and torch.equal(seed_union.long(), cm_union)),
        }

    try:
        return run(logits.device)
    except RuntimeError as exc:  # e.g. a histc dtype the device lacks: check on the CPU instead
        result = run(torch.device("cpu"))
        result["note"] = f"ran on the CPU: {str(exc).splitlines()[0]}"
        return result


def _working(fns: dict[str, Callable[[], Any]], failed: dict[str, str]) -> dict[str, Callable[[], Any]]:
    """The functions that run once without error (the others are recorded in ``failed``); the call is a warm-up."""
    ok = {}
    for name, fn in fns.items():
        try:
            fn()
            ok[name] = fn
        except RuntimeError as exc:  # e.g. a dtype a device's kernel lacks
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ok


def _labels_agree(got: Tensor, ref: Tensor) -> float:
    return float((got == ref).double().mean())


def bench_metric(s: BenchSettings, device: torch.device, progress: bool = True) -> dict[str, Any]:
    """Metric update throughput (pixels/s), argmax alternatives, per-stage breakdown, equality check."""
    torch.manual_seed(1)
    C = s.num_classes
    target = _masks(s.metric_batch, s.metric_size, C, device)
    logits = _logits(s.metric_batch, s.metric_size, C, target, device)
    pixels = target.numel()
    equality = _equality_check(logits, target, C)

    metric = SegmentationMetric(C, IGNORE, validate=False)
    metric_bf16 = SegmentationMetric(C, IGNORE, validate=False)
    logits_bf16 = logits.to(torch.bfloat16)
    updates: dict[str, Callable[[], Any]] = {
        "seed_histc": lambda: (seed_batch_pix_accuracy(logits, target), seed_batch_intersection_union(logits, target, C)),
        "fixed_histc": lambda: (histc_pixel_accuracy(logits, target), histc_intersection_union(logits, target, C)),
        "confusion_matrix": lambda: metric.update(logits, target),
        "confusion_matrix_bf16_logits": lambda: metric_bf16.update(logits_bf16, target),
    }
    if device.type == "cuda":  # the seed's training loop passes .cpu() copies
        updates["seed_histc_cpu_copies"] = lambda: (
            seed_batch_pix_accuracy(logits.cpu(), target.cpu()),
            seed_batch_intersection_union(logits.cpu(), target.cpu(), C),
        )
    logits_cl = logits.contiguous(memory_format=torch.channels_last)
    argmaxes: dict[str, Callable[[], Tensor]] = {
        "argmax_fp32": lambda: logits.argmax(1),
        "argmax_bf16": lambda: logits_bf16.argmax(1),
        "max_indices_fp32": lambda: logits.max(1).indices,
        "argmax_fp32_channels_last": lambda: logits_cl.argmax(1),
        "max_indices_fp32_channels_last": lambda: logits_cl.max(1).indices,
        "argmax_channel_loop_fp32": lambda: argmax_channel_loop(logits),
    }
    pred = logits.argmax(1)
    counting: dict[str, Callable[[], Any]] = {
        "confusion_matrix": lambda: confusion_matrix(pred, target, C, IGNORE, validate=False),
        "confusion_masked_bincount": lambda: confusion_masked_bincount(pred, target, C),
    }
    failed: dict[str, str] = {}
    updates, argmaxes, counting = (_working(f, failed) for f in (updates, argmaxes, counting))
    total = s.repeats * (len(updates) + len(argmaxes) + len(counting))
    bar = tqdm(total=total, desc="metric", leave=False, disable=not progress)
    t_upd = _time_interleaved(updates, device, s.metric_calls, s.warmup, s.repeats, bar)
    t_arg = _time_interleaved(argmaxes, device, s.metric_calls, s.warmup, s.repeats, bar)
    t_cnt = _time_interleaved(counting, device, s.metric_calls, s.warmup, s.repeats, bar)
    bar.close()

    def row(sec: list[float]) -> dict[str, Any]:
        med = statistics.median(sec)
        return {"pixels_per_s": pixels / med, "ms_per_call": med * 1e3, **_summary(sec)}

    upd = {k: row(v) for k, v in t_upd.items()}
    for v in upd.values():
        v["speedup_vs_seed"] = upd["seed_histc"]["median_s"] / v["median_s"]
    arg = {k: {**row(v), "agrees_with_argmax_fp32": _labels_agree(argmaxes[k](), pred)} for k, v in t_arg.items()}
    cnt = {k: row(v) for k, v in t_cnt.items()}
    argmax_s, count_s = arg["argmax_fp32"]["median_s"], cnt["confusion_matrix"]["median_s"]
    speedup = upd["confusion_matrix"]["speedup_vs_seed"]
    goal = GOALS["metric_gpu" if device.type == "cuda" else "metric_cpu"]
    result = {
        "logits": {"shape": list(logits.shape), "dtype": "float32"}, "pixels_per_call": pixels,
        "calls_per_repeat": s.metric_calls, "repeats": s.repeats,
        "updates": upd, "argmax": arg, "counting": cnt,
        "breakdown": {"argmax_s": argmax_s, "count_s": count_s,
                      "argmax_share": argmax_s / (argmax_s + count_s),
                      "update_s": upd["confusion_matrix"]["median_s"]},
        "speedup": speedup,
        "goal": {"speedup": goal, "device": device.type, "met": speedup >= goal},
        "equality": equality, "failed": failed,
    }
    del logits, logits_bf16, logits_cl, target, pred
    _free(device)
    return result


# ----------------------------------------------------------------------------------------------
# Inference
# ----------------------------------------------------------------------------------------------


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random uint8 ``H x W x 3`` image (content does not change the cost)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _infer_once(model: nn.Module, image: np.ndarray, mode: str, s: BenchSettings, device: torch.device,
                tracker: PeakMemory) -> tuple[float, Tensor]:
    from .predict import predict

    with tracker:
        t0 = time.perf_counter()
        labels = predict(model, image, mode=mode, train_size=s.infer_train_size, tile=s.infer_tile,
                         overlap=s.infer_overlap, device=device, progress=False)
        _sync(device)
        seconds = time.perf_counter() - t0
    return seconds, labels


def _infer_row(model: nn.Module, name: str, image: np.ndarray, mode: str, repeats: int, warmup: int,
               s: BenchSettings, device: torch.device) -> dict[str, Any]:
    h, w = image.shape[:2]
    row: dict[str, Any] = {"image": name, "height": h, "width": w, "mode": mode, "repeats": repeats,
                           "warmup": warmup}
    tracker = PeakMemory(device)
    try:
        for _ in range(warmup):
            _infer_once(model, image, mode, s, device, tracker)
        times, peaks, growths = [], [], []
        for _ in range(repeats):
            sec, labels = _infer_once(model, image, mode, s, device, tracker)
            times.append(sec)
            peaks.append(tracker.peak)
            growths.append(tracker.growth)
            row["shape_ok"] = tuple(labels.shape) == (h, w)
            del labels
    except Exception as exc:  # noqa: BLE001 - out of memory is a result; anything else is re-raised
        if not _is_oom(exc):
            raise
        _free(device)
        row.update(status="OOM", error=str(exc).splitlines()[0])
        return row
    row.update(status="ok", latency_s=statistics.median(times), **{f"latency_{k}": v for k, v in _summary(times).items()},
               peak_bytes=max(peaks), growth_bytes=max(growths))
    return row


def bench_inference(s: BenchSettings, device: torch.device, progress: bool = True) -> dict[str, Any]:
    """Latency (s) and peak memory (bytes) of FCN-8s prediction per image size and mode."""
    torch.manual_seed(2)
    model = _model(s).to(device).eval()
    modes = ("whole", "scaled", "tiled")
    rows = []
    bar = tqdm(total=len(s.infer_images) * len(modes), desc="inference", leave=False, disable=not progress)
    for (name, h, w), reps, warm in zip(s.infer_images, s.infer_repeats, s.infer_warmup):
        image = _photo(h, w)
        for mode in modes:
            rows.append(_infer_row(model, name, image, mode, reps, warm, s, device))
            _free(device)
            bar.update(1)
    bar.close()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    largest = IMAGES[-1][0]
    goal: dict[str, Any] = {"image": largest, "limit_bytes": GPU_MEMORY_GOAL_BYTES, "applies_to": "cuda", "met": None}
    if device.type == "cuda":
        goal["met"] = {r["mode"]: r.get("status") == "ok" and r["peak_bytes"] <= GPU_MEMORY_GOAL_BYTES
                       for r in rows if r["image"] == largest}
    del model
    _free(device)
    return {
        "memory_method": PeakMemory(device).method,
        "settings": {"train_size": s.infer_train_size, "tile": s.infer_tile, "overlap": s.infer_overlap,
                     "precision": "float32 (predict() runs the model as given, NCHW)"},
        "model_weight_bytes": weights, "rows": rows, "goal": goal,
    }


# ----------------------------------------------------------------------------------------------
# Scaling
# ----------------------------------------------------------------------------------------------


def _scaling_point(loop: FcnlibLoop, batch: int, size: int, s: BenchSettings, ctx: Context) -> dict[str, Any]:
    point: dict[str, Any] = {"batch": batch, "size": size}
    try:
        loop.set_batch(*_batch(batch, size, s.num_classes, ctx.device))
        sec = _time_interleaved({"fcnlib": loop.step}, ctx.device, s.scale_steps, 1, max(1, s.repeats // 2 + 1))["fcnlib"]
    except Exception as exc:  # noqa: BLE001 - out of memory is a result
        if not _is_oom(exc):
            raise
        _free(ctx.device)
        return {**point, "status": "OOM"}
    step = statistics.median(sec)
    return {**point, "status": "ok", "step_ms": step * 1e3, "images_per_s": batch / step,
            "megapixels_per_s": batch * size * size / step / 1e6}


def bench_scaling(s: BenchSettings, ctx: Context, progress: bool = True) -> dict[str, Any]:
    """fcnlib training throughput against batch size (fixed crop) and crop size (fixed batch)."""
    torch.manual_seed(3)
    images, masks = _batch(1, s.scale_batch_size, s.num_classes, ctx.device)
    loop = FcnlibLoop(_model(s).to(ctx.device), images, masks, ctx, s.num_classes)
    bar = tqdm(total=len(s.scale_batches) + len(s.scale_sizes), desc="scaling", leave=False, disable=not progress)
    by_batch, by_size = [], []
    for b in s.scale_batches:
        by_batch.append(_scaling_point(loop, b, s.scale_batch_size, s, ctx))
        bar.update(1)
    for size in s.scale_sizes:
        by_size.append(_scaling_point(loop, s.scale_size_batch, size, s, ctx))
        bar.update(1)
    bar.close()
    del loop
    _free(ctx.device)
    return {"loop": "fcnlib", "steps_per_repeat": s.scale_steps, "by_batch": by_batch, "by_size": by_size,
            "batch_sweep_size": s.scale_batch_size, "size_sweep_batch": s.scale_size_batch}


def plot_scaling(scaling: dict[str, Any], title: str, path: Path) -> Path:
    """Save the scaling curves (images/s against batch; megapixels/s against crop size) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    pts = [p for p in scaling["by_batch"] if p["status"] == "ok"]
    ax1.plot([p["batch"] for p in pts], [p["images_per_s"] for p in pts], "o-")
    ax1.set(xlabel="batch size", ylabel="images / s", title=f"{scaling['batch_sweep_size']} px crops")
    ax1.set_xscale("log", base=2)
    ax1.set_xticks([p["batch"] for p in pts], [str(p["batch"]) for p in pts])
    ax1.minorticks_off()
    pts = [p for p in scaling["by_size"] if p["status"] == "ok"]
    ax2.plot([p["size"] for p in pts], [p["megapixels_per_s"] for p in pts], "o-")
    ax2.set(xlabel="crop side (px)", ylabel="megapixels / s", title=f"batch {scaling['size_sweep_batch']}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        if x == 0:
            return "0"
        mag = math.floor(math.log10(abs(x)))
        return f"{x:.{max(0, digits - 1 - mag)}f}" if -3 <= mag < digits + 3 else f"{x:.{digits - 1}e}"
    return str(x)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f} %"


def _md_train(t: dict[str, Any]) -> str:
    m = t["model"]
    head = (f"### Training step (FCN-8s width {m['width']}, {m['head']} head, batch {t['batch']} x "
            f"{t['crop'][0]}x{t['crop'][1]}, {t['flops_per_step'] / 1e9:.1f} GFLOP/step fwd+bwd; fcnlib amp: {t['fcnlib_amp']})")
    rows = []
    for name, v in t["variants"].items():
        if "images_per_s" not in v:
            rows.append([name, f"{v['status']}: {v.get('reason', '')}", None, None, None, None, None])
            continue
        extra = f" (compile {v['compile_s']:.0f} s)" if "compile_s" in v else ""
        rows.append([name + extra, v["images_per_s"], v["step_ms"], f"{v['speedup_vs_seed']:.2f}x",
                     v["achieved_tflops"], _pct(v["mfu_vs_half_peak"]), _pct(v["mfu_vs_fp32_peak"])])
    table = _table(["loop", "images/s", "ms/step", "vs seed", "TFLOP/s", "MFU (half peak)", "MFU (fp32 peak)"], rows)
    g = t["goal"]
    goal = f"Goal (GPU): >= {g['speedup']:.0f}x; measured {t['speedup']:.2f}x" + ("" if g["met"] is None else f", met: {_fmt(g['met'])}")
    return f"{head}\n\n{table}\n\n{goal}"


def _md_metric(m: dict[str, Any]) -> str:
    shape = "x".join(str(d) for d in m["logits"]["shape"])
    out = [f"### Metric update (logits {shape} float32, {m['pixels_per_call'] / 1e6:.2f} Mpx per call)"]
    out.append(_table(["method", "Mpx/s", "ms/call", "vs seed"],
                      [[k, v["pixels_per_s"] / 1e6, v["ms_per_call"], f"{v['speedup_vs_seed']:.2f}x"]
                       for k, v in m["updates"].items()]))
    out.append(_table(["label step (argmax over C)", "Mpx/s", "ms/call", "agrees with argmax fp32"],
                      [[k, v["pixels_per_s"] / 1e6, v["ms_per_call"], _pct(v["agrees_with_argmax_fp32"])]
                       for k, v in m["argmax"].items()]))
    out.append(_table(["counting (labels given)", "Mpx/s", "ms/call"],
                      [[k, v["pixels_per_s"] / 1e6, v["ms_per_call"]] for k, v in m["counting"].items()]))
    b, g, e = m["breakdown"], m["goal"], m["equality"]
    out.append(f"Breakdown of the confusion-matrix update: argmax {b['argmax_s'] * 1e3:.2f} ms + counting "
               f"{b['count_s'] * 1e3:.2f} ms (argmax {100 * b['argmax_share']:.0f} %). "
               f"Goal ({g['device']}): >= {g['speedup']:.0f}x; measured {m['speedup']:.2f}x, met: {_fmt(g['met'])}. "
               f"Equality (fixed histc vs confusion matrix, exact counts): {'PASSED' if e['passed'] else 'FAILED'}.")
    if m.get("failed"):
        out.append("Not measured (failed on this device): " + "; ".join(f"{k}: {v}" for k, v in m["failed"].items()))
    return "\n\n".join(out)


def _md_inference(inf: dict[str, Any]) -> str:
    rows = []
    for r in inf["rows"]:
        if r["status"] != "ok":
            rows.append([r["image"], f"{r['width']}x{r['height']}", r["mode"], r["status"], None, None, None])
            continue
        rows.append([r["image"], f"{r['width']}x{r['height']}", r["mode"], r["latency_s"], r["repeats"],
                     r["peak_bytes"] / 2**20, r["growth_bytes"] / 2**20])
    st = inf["settings"]
    head = (f"### Inference (predict(), train_size {st['train_size']}, tile {st['tile']}, overlap {st['overlap']}; "
            f"memory: {inf['memory_method']})")
    table = _table(["image", "actual WxH", "mode", "latency s", "runs", "peak MiB", "growth MiB"], rows)
    g = inf["goal"]
    goal = f"Goal (GPU): {g['image']} within {g['limit_bytes'] / GB:.0f} GB; " + (
        "not applicable on the CPU (peak is the process RSS)" if g["met"] is None
        else ", ".join(f"{k}: {_fmt(v)}" for k, v in g["met"].items()))
    return f"{head}\n\n{table}\n\n{goal}"


def _md_scaling(sc: dict[str, Any]) -> str:
    def rows(points: list[dict[str, Any]]) -> list[list[Any]]:
        return [[p["batch"], p["size"], p.get("images_per_s", p["status"]), p.get("megapixels_per_s"), p.get("step_ms")]
                for p in points]

    headers = ["batch", "crop px", "images/s", "Mpx/s", "ms/step"]
    return (f"### Scaling (fcnlib loop)\n\n{_table(headers, rows(sc['by_batch']))}\n\n"
            f"{_table(headers, rows(sc['by_size']))}")


def to_markdown(result: dict[str, Any]) -> str:
    """The result as markdown tables (what ``fcnlib bench`` prints)."""
    d = result["device"]
    head = (f"## fcnlib bench: {d['name']} ({d['type']}, {result['settings']['profile']}), torch {result['torch']}, "
            f"{result['wall_s']:.0f} s")
    parts = [head]
    for key, fn in (("train", _md_train), ("metric", _md_metric), ("inference", _md_inference), ("scaling", _md_scaling)):
        if key in result:
            parts.append(fn(result[key]))
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            match = re.search(r"^model name\s*:\s*(.+)$", fh.read(), flags=re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> dict[str, Any]:
    """Name and properties of the benchmarked device, with the matching peak TFLOP/s (``None`` if unknown)."""
    info: dict[str, Any] = {"type": device.type, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                            "cpu": _cpu_name()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_bytes=props.total_memory, capability=f"{props.major}.{props.minor}",
                    cuda=torch.version.cuda, tf32_conv=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, cudnn_benchmark=torch.backends.cudnn.benchmark)
        info["peak_tflops"] = peak_tflops(props.name)
    else:
        info.update(name=f"{info['cpu']} ({torch.get_num_threads()} threads)", peak_tflops=None)
    return info


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return x


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save(result: dict[str, Any], out_dir: Path, label: str, stem: str) -> dict[str, str]:
    """Write JSON, markdown and plot as ``<stem>.*`` and as ``latest-<label>.*``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}-scaling.png"}
    result["files"] = {k: v.name for k, v in files.items()}
    d = result["device"]
    plot_scaling(result["scaling"], f"fcnlib train step, FCN-8s width {result['settings']['width']}, {d['name']}",
                 files["plot"])
    _write(files["json"], json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n")
    _write(files["markdown"], to_markdown(result))
    latest = {"json": f"latest-{label}.json", "markdown": f"latest-{label}.md", "plot": f"latest-{label}-scaling.png"}
    for key, name in latest.items():
        shutil.copyfile(files[key], out_dir / name)
    return {**{k: str(v) for k, v in files.items()}, **{f"latest_{k}": str(out_dir / v) for k, v in latest.items()}}


def run_bench(
    device: str = "auto",
    quick: bool = False,
    out_dir: str | os.PathLike = "bench/results",
    *,
    tiny: bool | None = None,
    progress: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    """Run every section, save the results and print the markdown tables; returns the result dict.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``. ``quick``: smaller sizes (and on the CPU a
    width-0.125 model). ``tiny`` (default: environment ``FCNLIB_BENCH_TINY=1``): the test profile,
    seconds on a CPU. Files: ``<out_dir>/<device>-<quick|full|tiny>-<timestamp>.{json,md}``,
    ``...-scaling.png``, and copies as ``latest-<device>[-quick|-tiny].*``.
    """
    if tiny is None:
        tiny = os.environ.get("FCNLIB_BENCH_TINY", "") not in ("", "0")
    try:
        ctx = setup_context(device, "auto")
    except (ValueError, RuntimeError) as exc:  # e.g. --device cuda without a GPU: a one-line CLI error
        raise ConfigError(f"bench: {str(exc).splitlines()[0]}") from None
    s = settings_for(ctx.device, quick, tiny)
    kind = "tiny" if tiny else "quick" if quick else "full"
    from .cli import run_info

    t0 = time.perf_counter()
    info = device_info(ctx.device)
    result: dict[str, Any] = {
        "schema": SCHEMA, "run": run_info(), "torch": torch.__version__, "device": info,
        "settings": {**asdict(s), "kind": kind},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "units": {"*_s": "seconds", "*_ms": "milliseconds", "*_bytes": "bytes", "images_per_s": "images per second",
                  "pixels_per_s": "pixels per second", "megapixels_per_s": "1e6 pixels per second",
                  "flops_*": "floating-point operations (multiply and add counted separately)",
                  "achieved_tflops": "1e12 FLOP per second", "mfu_*": "fraction of the peak"},
    }
    result["train"] = bench_train(s, ctx, info["peak_tflops"], quick=quick, progress=progress)
    result["metric"] = bench_metric(s, ctx.device, progress=progress)
    result["inference"] = bench_inference(s, ctx.device, progress=progress)
    result["scaling"] = bench_scaling(s, ctx, progress=progress)
    result["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result["wall_s"] = time.perf_counter() - t0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = ctx.device.type + ("" if kind == "full" else f"-{kind}")
    paths = _save(result, Path(out_dir), label, f"{ctx.device.type}-{kind}-{stamp}")
    result["paths"] = paths
    if echo:
        print(to_markdown(result))
        print(f"wrote {paths['json']} (and {Path(paths['latest_json']).name}, .md, -scaling.png)")
    return result
