"""Upper bounds for every number a user can type, and the machine-derived ones.

Each numeric setting has a range (:data:`BOUNDS`); a value outside it is refused where it is read
(recipes and ``train`` flags through :func:`bound_errors`, the ``eval`` / ``predict`` options
through :func:`check_options`). Where the machine is what matters, the bound comes from it:
threads at most the usable cores (refused, not capped: a run that asks for more than there is
was mistyped), DataLoader workers at most :data:`WORKERS_PER_CORE` per core and what the free
memory holds at :data:`WORKER_BYTES` each (refused: each worker is a process of several hundred
MB, and a thousand of them start the kernel's out-of-memory killer), and the memory a batch at a
size and width would take, estimated before anything is allocated (:func:`check_batch_memory`).
A memory error that still happens becomes one line (:func:`out_of_memory_message`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import FcnlibError

__all__ = [
    "BOUNDS",
    "THREAD_VARIABLES",
    "WORKERS_PER_CORE",
    "WORKER_BYTES",
    "LimitError",
    "available_memory",
    "batch_bytes",
    "bound_errors",
    "check_batch_memory",
    "check_environment",
    "check_eval_memory",
    "check_options",
    "check_predict_memory",
    "check_run",
    "check_threads",
    "check_workers",
    "max_workers",
    "out_of_memory_message",
    "usable_cores",
]

#: Inclusive ranges of the recipe settings (lists: every item). Machine-derived bounds come on top.
BOUNDS: dict[str, tuple[float, float]] = {
    "epochs": (1, 100_000),
    "batch_size": (1, 4096),
    "val_batch_size": (1, 4096),
    "num_classes": (2, 255),  # 255 is the ignore label of every mask
    "width": (1 / 64, 4.0),
    "crop_size": (1, 20_000),
    "crop_width": (1, 20_000),
    "scale_range": (1 / 64, 16.0),
    "limit_train": (1, 2**31 - 1),
    "limit_val": (1, 2**31 - 1),
    "workers": (0, 4096),
    "threads": (1, 4096),
    "lr": (1e-12, 1e12),
    "weight_decay": (0.0, 10.0),
    "poly_power": (1e-6, 100.0),
    "step_size": (1, 100_000),
    "warmup_epochs": (0.0, 100_000.0),
    "stage_lr_scale": (1e-6, 1e6),
    "class_weights": (1e-6, 1e6),
    "class_weight_max": (1e-6, 1e6),
    "max_minutes": (1e-9, 1e7),
    "val_every": (1, 100_000),
    "eval_scale": (1 / 64, 64.0),
    "log_every": (1, 10**9),
}
#: The same for the options of ``fcnlib eval`` and ``fcnlib predict``.
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    "batch_size": (1, 4096),
    "workers": (0, 4096),
    "limit": (1, 2**31 - 1),
    "scale": (1 / 64, 64.0),
    "train_size": (1, 65_536),
    "tile": (1, 65_536),
    "overlap": (0, 65_535),
    "max_image_pixels": (1, 2**34),
}
#: DataLoader workers allowed per usable core.
WORKERS_PER_CORE = 4
#: Memory a DataLoader worker process takes (measured: about 380 MB each with fcnlib imported).
WORKER_BYTES = 400 * 2**20


class LimitError(FcnlibError, ValueError):
    """A number outside its range, or more than this machine can give (one-line message)."""


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory(device: Any = "cpu") -> int:
    """Bytes that a new allocation can take now: the GPU's free memory for a CUDA device, else
    ``MemAvailable`` of /proc/meminfo (the physical memory where that file is missing)."""
    if getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40  # unknown: no machine-derived bound


def _outside(label: str, value: Any, low: float, high: float) -> str | None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue  # types are checked elsewhere
        if not math.isfinite(v) or not low <= v <= high:
            return f"{label} must be in {low:g}..{high:g}, not {v!r}"
    return None


def bound_errors(values: Mapping[str, Any]) -> list[str]:
    """Messages for recipe settings outside :data:`BOUNDS` or this machine's limits, and for text
    settings holding a NUL character (no file name can)."""
    errors = [
        msg
        for name, (low, high) in BOUNDS.items()
        if values.get(name) is not None and (msg := _outside(name, values[name], low, high))
    ]
    errors += [
        f"{name} contains a NUL character"
        for name, v in values.items()
        if isinstance(v, str) and "\0" in v
    ]
    return errors


def check_run(cfg: Any) -> None:
    """The machine-derived bounds of a training run (threads, workers, the memory of a training
    batch), checked where the run starts: a recipe recorded on a larger machine still loads."""
    from .context import resolve_device

    device = resolve_device(cfg.device)
    if isinstance(cfg.threads, int):  # "auto" follows the machine's free cores itself
        check_threads(cfg.threads, "threads")
    check_workers(cfg.workers, "workers")
    pixels = cfg.crop_size * (cfg.crop_width or cfg.crop_size)
    check_batch_memory(
        "a training batch", cfg.batch_size, pixels, cfg.width, cfg.num_classes or 21, True, device
    )


def check_threads(threads: int, flag: str = "`threads`") -> None:
    """Refuse more intra-op threads than usable cores."""
    cores = usable_cores()
    if threads > cores:
        raise LimitError(
            f"{flag or 'threads'} {threads} is more than the {cores} usable CPU core(s) of this "
            "machine: give at most that many"
        )


#: Environment variables that set thread pools before fcnlib can (OpenMP, MKL, OpenBLAS).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def check_environment() -> None:
    """Refuse a thread-count environment variable above the usable cores (a huge one makes the
    first parallel operation start that many threads), before any work."""
    for name in THREAD_VARIABLES:
        text = os.environ.get(name, "").strip()
        first = text.split(",")[0].strip()  # OpenMP also takes a list per nesting level
        if first.isdigit() and int(first) > usable_cores():
            raise LimitError(
                f"environment variable {name}={text[:40]} is more than the {usable_cores()} "
                f"usable CPU core(s): lower it or unset it"
            )


def max_workers() -> int:
    """The most DataLoader workers this machine takes: per core and by free memory."""
    by_memory = max(0, available_memory() // WORKER_BYTES)
    return int(min(WORKERS_PER_CORE * usable_cores(), max(by_memory, 1)))


def check_workers(workers: int, flag: str = "`workers`") -> None:
    """Refuse more DataLoader worker processes than :func:`max_workers`."""
    limit = max_workers()
    if workers > limit:
        raise LimitError(
            f"{flag or 'workers'} {workers} is more than this machine takes ({limit}: at most "
            f"{WORKERS_PER_CORE} per usable core ({usable_cores()}), each about "
            f"{WORKER_BYTES // 2**20} MB, {_gb(available_memory())} free)"
        )


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse ``eval`` / ``predict`` options outside :data:`OPTION_BOUNDS` or the machine."""
    for name, (low, high) in OPTION_BOUNDS.items():
        value = options.get(name)
        if value is not None and (msg := _outside(f"`{name}`", value, low, high)):
            raise LimitError(msg)
    if options.get("workers") is not None:
        check_workers(options["workers"], "`workers`")


def batch_bytes(batch: int, pixels: float, width: float, num_classes: int, training: bool) -> float:
    """Estimated peak bytes of one step on ``batch`` inputs of ``pixels`` each.

    Per pixel, VGG16's activations hold 270 x width channels summed over its blocks; training
    keeps about four tensors of each (conv, batch norm, ReLU, gradient) and the class maps; an
    evaluation pass keeps about the two largest. Measured on fcn8s (light head, batch norm, 11
    classes, float32, CPU): 1133 and 4173 bytes per pixel for training at width 0.25 and 1, 236
    and 813 for evaluation; these formulas give 1496, 4736, 408 and 1008.
    """
    per_pixel = (4 * (270 * 4 * width + 8 * num_classes + 16) if training else
                 4 * (200 * width + 4 * num_classes + 8))  # fmt: skip
    return float(batch) * float(pixels) * per_pixel


def check_batch_memory(
    what: str,
    batch: int,
    pixels: float,
    width: float,
    num_classes: int,
    training: bool,
    device: Any = "cpu",
) -> None:
    """Refuse, before allocating, a step whose :func:`batch_bytes` exceeds the free memory."""
    need = batch_bytes(batch, pixels, width, num_classes, training)
    free = available_memory(device)
    if need > free:
        raise LimitError(
            f"{what} would need about {_gb(need)} of memory (batch {batch} x {pixels / 1e6:.2f} MP "
            f"x width {width:g}) but {_gb(free)} is free: use a smaller batch, size or width"
        )


def check_eval_memory(
    dataset: Any, batch: int, scale: float | list[float], model: Any, device: Any
) -> None:
    """:func:`check_batch_memory` for an evaluation batch the size of ``dataset``'s first image at
    its largest ``scale``."""
    if len(dataset) == 0:
        return
    h, w = dataset[0][1].shape[-2:]
    factor = max(scale if isinstance(scale, list) else [scale]) ** 2
    check_batch_memory(
        "an evaluation batch",
        min(batch, len(dataset)),
        int(h) * int(w) * factor,
        float(model.width),
        int(model.num_classes),
        False,
        device,
    )


def check_predict_memory(
    size: tuple[int, int], options: Mapping[str, Any], model: Any, device: Any
) -> None:
    """:func:`check_batch_memory` for predicting an image of ``size`` ``(width, height)`` with
    ``predict``'s ``mode`` / ``train_size`` / ``tile`` / ``scales``, plus the full-size result
    (8 bytes a pixel) and class-probability strips (8 bytes a pixel per class at most)."""
    w, h = size
    mode = options["mode"]
    if mode == "auto":
        mode = "whole" if w * h <= 1024 * 1024 else "scaled"
    if mode == "scaled":
        r = options["train_size"] / max(w, h)
        pixels = max(1, round(w * r)) * max(1, round(h * r))
    elif mode == "tiled":
        pixels = min(options["tile"], w) * min(options["tile"], h)
    else:
        pixels = w * h
    pixels *= max(options.get("scale") or options.get("scales") or [1.0]) ** 2
    need = batch_bytes(1, pixels, float(model.width), int(model.num_classes), False)
    need += w * h * (8 + 8 * int(model.num_classes))
    free = available_memory(device)
    if need > free:
        raise LimitError(
            f"predicting a {w}x{h} image ({mode}) would need about {_gb(need)} of memory but "
            f"{_gb(free)} is free: use `mode` scaled or tiled, a smaller `tile` or `scale`"
        )


_OOM_MARKERS = ("can't allocate memory", "out of memory", "cannot allocate memory")


def out_of_memory_message(exc: BaseException) -> str | None:
    """One line for a memory error (``MemoryError``, PyTorch's allocator failures), else None."""
    text = " ".join(str(exc).split()).lower()
    if isinstance(exc, MemoryError) or any(m in text for m in _OOM_MARKERS):
        return (
            "out of memory: this machine could not hold the step; use a smaller --batch-size, "
            "image size, --scale or --width (nothing was written by the failed step)"
        )
    return None


def first_error(messages: Iterable[str]) -> None:
    """Raise :class:`LimitError` with the first message, if any."""
    for message in messages:
        raise LimitError(message)
