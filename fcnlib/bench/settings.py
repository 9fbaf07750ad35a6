"""Benchmark profiles (sizes, repeat counts), goals and the peak-throughput table of common cards."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "GB",
    "GOALS",
    "GPU_MEMORY_GOAL_BYTES",
    "IMAGES",
    "LR",
    "PEAK_TFLOPS",
    "SCHEMA",
    "BenchSettings",
    "peak_tflops",
    "settings_for",
]

SCHEMA = "fcnlib-bench/1"
LR = 1e-4  # small enough that random data does not diverge during the timed steps
GB = 1e9
#: The inference memory goal: the 5472x3648 photo within this many bytes of GPU memory (max_memory_allocated).
GPU_MEMORY_GOAL_BYTES = 8 * GB
#: Speed-up goals (ratio against the seed baseline); the training one applies on a GPU only.
GOALS = {"train_gpu": 3.0, "metric_gpu": 20.0, "metric_cpu": 3.0}

#: Dense peak throughput (TFLOP/s) of common cards: half precision (bf16; fp16 where the card has
#: no bf16) and fp32 (non-tensor-core). From NVIDIA's datasheets; first matching pattern wins.
PEAK_TFLOPS: list[dict[str, Any]] = [
    {
        "pattern": r"\bH100\b.*\bPCIe\b",
        "card": "H100 PCIe",
        "half": 756.0,
        "half_dtype": "bf16",
        "fp32": 51.0,
    },
    {
        "pattern": r"\bH100\b.*\bNVL\b",
        "card": "H100 NVL",
        "half": 835.0,
        "half_dtype": "bf16",
        "fp32": 60.0,
    },
    {"pattern": r"\bH100\b", "card": "H100 SXM", "half": 989.0, "half_dtype": "bf16", "fp32": 67.0},
    {
        "pattern": r"\bH200\b",
        "card": "H200 (as H100 SXM)",
        "half": 989.0,
        "half_dtype": "bf16",
        "fp32": 67.0,
    },
    {"pattern": r"\bA100\b", "card": "A100", "half": 312.0, "half_dtype": "bf16", "fp32": 19.5},
    {"pattern": r"\bL4\b", "card": "L4", "half": 121.0, "half_dtype": "bf16", "fp32": 30.0},
    {"pattern": r"\bT4\b", "card": "T4", "half": 65.0, "half_dtype": "fp16", "fp32": 8.1},
]

#: The inference sizes, (name, height, width): VOC, a 3 MP photo, a 20 MP photo.
IMAGES = (("500x375", 375, 500), ("2048x1365", 1365, 2048), ("5472x3648", 3648, 5472))


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
    return tuple(
        (name, max(1, round(h / factor)), max(1, round(w / factor))) for name, h, w in IMAGES
    )


def settings_for(device: torch.device, quick: bool, tiny: bool = False) -> BenchSettings:
    """The profile for a device: full-width model and real sizes on a GPU; width 0.125 on the CPU.

    CPU full: the real inference sizes (train_size 512, tile 512), small training crops. CPU
    ``quick``: images at 1/4 of the real sizes, train_size 128 and tile 256. GPU ``quick``: fewer
    repeats and smaller crops, no ``torch.compile``. ``tiny`` (tests): width 0.0625, images at
    1/16, one timed step per repeat; every section still runs.
    """
    if tiny:
        return _tiny_settings()
    if device.type == "cuda":
        return _gpu_quick_settings() if quick else BenchSettings("gpu-full", width=1.0)
    if quick:
        return BenchSettings(
            "cpu-quick",
            width=0.125,
            train_batch=2,
            train_size=96,
            train_steps=2,
            warmup=1,
            repeats=3,
            compile=False,
            metric_batch=2,
            metric_size=(256, 256),
            metric_calls=3,
            infer_images=_scaled_images(4),
            infer_repeats=(3, 2, 1),
            infer_warmup=(1, 1, 0),
            infer_train_size=128,
            infer_tile=256,
            infer_overlap=64,
            scale_batches=(1, 2, 4),
            scale_batch_size=96,
            scale_sizes=(64, 96, 128),
            scale_size_batch=2,
            scale_steps=2,
        )
    return BenchSettings(
        "cpu-full",
        width=0.125,
        train_batch=4,
        train_size=160,
        train_steps=2,
        warmup=1,
        repeats=5,
        compile=True,
        metric_batch=4,
        metric_size=(480, 480),
        metric_calls=2,
        infer_images=IMAGES,
        infer_repeats=(3, 1, 1),
        infer_warmup=(1, 1, 0),
        scale_batches=(1, 2, 4, 8),
        scale_batch_size=128,
        scale_sizes=(64, 128, 192, 256),
        scale_size_batch=2,
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


def _tiny_settings() -> BenchSettings:
    """The tests' profile (see :func:`settings_for`)."""
    return BenchSettings(
        "tiny",
        width=0.0625,
        train_batch=2,
        train_size=64,
        train_steps=1,
        warmup=1,
        repeats=2,
        compile=False,
        metric_batch=2,
        metric_size=(96, 128),
        metric_calls=2,
        infer_images=_scaled_images(16),
        infer_repeats=(1, 1, 1),
        infer_warmup=(1, 0, 0),
        infer_train_size=32,
        infer_tile=64,
        infer_overlap=16,
        scale_batches=(1, 2),
        scale_batch_size=48,
        scale_sizes=(32, 64),
        scale_size_batch=1,
        scale_steps=1,
    )


def _gpu_quick_settings() -> BenchSettings:
    """The GPU ``quick`` profile (see :func:`settings_for`)."""
    return BenchSettings(
        "gpu-quick",
        width=1.0,
        train_batch=4,
        train_size=256,
        train_steps=5,
        warmup=2,
        repeats=3,
        compile=False,
        metric_batch=4,
        metric_calls=5,
        infer_repeats=(3, 2, 1),
        infer_warmup=(1, 1, 1),
        scale_batches=(1, 2, 4),
        scale_batch_size=256,
        scale_sizes=(128, 256, 384),
        scale_size_batch=2,
        scale_steps=3,
    )
