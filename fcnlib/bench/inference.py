"""Inference suite: latency and peak memory of :func:`fcnlib.predict.predict` per image size and mode."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from ..predict import predict
from .inputs import profile_model, random_photo
from .memory import PeakMemory
from .settings import GPU_MEMORY_GOAL_BYTES, IMAGES, BenchSettings
from .timing import free, is_oom, summary, sync

__all__ = ["MODES", "bench_inference"]

#: The prediction modes timed per image.
MODES = ("whole", "scaled", "tiled")


def _infer_once(
    model: nn.Module,
    image: np.ndarray,
    mode: str,
    s: BenchSettings,
    device: torch.device,
    tracker: PeakMemory,
) -> tuple[float, Tensor]:
    with tracker:
        t0 = time.perf_counter()
        labels = predict(
            model,
            image,
            mode=mode,
            train_size=s.infer_train_size,
            tile=s.infer_tile,
            overlap=s.infer_overlap,
            device=device,
            progress=False,
        )
        sync(device)
        seconds = time.perf_counter() - t0
    return seconds, labels


def _infer_row(
    model: nn.Module,
    name: str,
    image: np.ndarray,
    mode: str,
    repeats: int,
    warmup: int,
    s: BenchSettings,
    device: torch.device,
) -> dict[str, Any]:
    h, w = image.shape[:2]
    row: dict[str, Any] = {
        "image": name,
        "height": h,
        "width": w,
        "mode": mode,
        "repeats": repeats,
        "warmup": warmup,
    }
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
    except Exception as exc:
        if not is_oom(exc):
            raise
        free(device)
        row.update(status="OOM", error=str(exc).splitlines()[0])
        return row
    row.update(
        status="ok",
        latency_s=statistics.median(times),
        **{f"latency_{k}": v for k, v in summary(times).items()},
        peak_bytes=max(peaks),
        growth_bytes=max(growths),
    )
    return row


def bench_inference(
    s: BenchSettings, device: torch.device, progress: bool = True
) -> dict[str, Any]:
    """Latency (s) and peak memory (bytes) of FCN-8s prediction per image size and mode."""
    torch.manual_seed(2)
    model = profile_model(s).to(device).eval()
    rows = []
    bar = tqdm(
        total=len(s.infer_images) * len(MODES), desc="inference", leave=False, disable=not progress
    )
    for (name, h, w), reps, warm in zip(s.infer_images, s.infer_repeats, s.infer_warmup):
        image = random_photo(h, w)
        for mode in MODES:
            rows.append(_infer_row(model, name, image, mode, reps, warm, s, device))
            free(device)
            bar.update(1)
    bar.close()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    largest = IMAGES[-1][0]
    goal: dict[str, Any] = {
        "image": largest,
        "limit_bytes": GPU_MEMORY_GOAL_BYTES,
        "applies_to": "cuda",
        "met": None,
    }
    if device.type == "cuda":
        goal["met"] = {
            r["mode"]: r.get("status") == "ok" and r["peak_bytes"] <= GPU_MEMORY_GOAL_BYTES
            for r in rows
            if r["image"] == largest
        }
    del model
    free(device)
    return {
        "memory_method": PeakMemory(device).method,
        "settings": {
            "train_size": s.infer_train_size,
            "tile": s.infer_tile,
            "overlap": s.infer_overlap,
            "precision": "float32 (predict() runs the model as given, NCHW)",
        },
        "model_weight_bytes": weights,
        "rows": rows,
        "goal": goal,
    }
