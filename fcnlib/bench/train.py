"""Training-step suite: the seed loop against fcnlib's loop (and compiled), FLOPs and utilisation."""

from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from ..config import TrainConfig
from ..constants import IGNORE_INDEX
from ..context import Context
from ..engine import train_step
from ..losses import SegmentationLoss
from ..metrics import SegmentationMetric
from ..models import FCN
from ..optim import make_optimizer
from .baselines import SeedLoop
from .inputs import profile_model, random_batch
from .settings import GOALS, LR, BenchSettings
from .timing import free, summary, sync, time_interleaved

__all__ = ["FcnlibLoop", "bench_train", "count_train_flops"]


class FcnlibLoop:
    """fcnlib's loop, as :func:`fcnlib.engine.train`: :func:`~fcnlib.engine.train_step` (autocast per
    ``ctx``, channels_last, fused/foreach SGD), the loss summed on the device, and a
    ``SegmentationMetric(validate=False)`` updated from the logits (taken with a forward hook)."""

    def __init__(
        self,
        model: FCN,
        images: Tensor,
        masks: Tensor,
        ctx: Context,
        num_classes: int,
        compile: bool = False,
    ) -> None:
        self.model = model.to(memory_format=torch.channels_last).train()
        self.images, self.masks, self.ctx = images, masks, ctx
        self._logits: list[Tensor | None] = [None]
        model.register_forward_hook(lambda _m, _i, out: self._logits.__setitem__(0, out.detach()))
        self.train_model: nn.Module = torch.compile(model) if compile else model
        opt = TrainConfig(lr=LR, momentum=0.9, weight_decay=1e-4).optim
        self.optimizer = make_optimizer(
            [p for p in model.parameters() if p.requires_grad], opt, ctx.device
        )
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
        self.criterion = SegmentationLoss(ignore_index=IGNORE_INDEX).to(ctx.device)
        self.metric = SegmentationMetric(num_classes, IGNORE_INDEX, validate=False)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        self.finite = torch.ones((), dtype=torch.bool, device=ctx.device)

    def set_batch(self, images: Tensor, masks: Tensor) -> None:
        self.images, self.masks = images, masks

    def step(self) -> None:
        loss = train_step(
            self.train_model,
            self.images,
            self.masks,
            self.criterion,
            self.optimizer,
            self.scaler,
            self.ctx,
            channels_last=True,
        )
        self.loss_sum += loss.double()
        self.finite &= torch.isfinite(loss)
        assert self._logits[0] is not None
        self.metric.update(self._logits[0], self.masks)


def count_train_flops(model: nn.Module, images: Tensor, masks: Tensor) -> int:
    """FLOPs of one forward + backward pass (``torch.utils.flop_counter.FlopCounterMode``), on a copy of ``model``."""
    from torch.utils.flop_counter import FlopCounterMode

    m = copy.deepcopy(model).train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(m(images), masks, ignore_index=IGNORE_INDEX).backward()
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


def _compile_variant(
    s: BenchSettings, base: FCN, images: Tensor, masks: Tensor, ctx: Context, quick: bool
) -> tuple[FcnlibLoop | None, dict[str, Any]]:
    """The compiled fcnlib loop after its first (compiling) step, or ``None`` and why it was not measured."""
    if not s.compile:
        why = (
            "skipped with --quick on the CPU (compiling takes minutes on 2 cores)"
            if quick
            else "disabled in this profile"
        )
        return None, {"status": "not measured", "reason": why}
    try:
        loop = FcnlibLoop(copy.deepcopy(base), images, masks, ctx, s.num_classes, compile=True)
        t0 = time.perf_counter()
        loop.step()
        sync(ctx.device)
        return loop, {"status": "measured", "compile_s": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - a missing compiler or an inductor bug must not stop the benchmark
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, {
            "status": "not measured",
            "reason": f"torch.compile failed: {type(exc).__name__}: {first}",
        }


def _variants(
    times: dict[str, list[float]],
    batch: int,
    flops: int,
    peak: dict[str, Any] | None,
    compile_info: dict[str, Any],
) -> dict[str, Any]:
    """Per loop: images/s, ms/step, the repeats, utilisation and the speed-up over the seed loop."""
    variants: dict[str, Any] = {}
    for name, sec in times.items():
        step_s = statistics.median(sec)
        variants[name] = {
            "images_per_s": batch / step_s,
            "step_ms": step_s * 1e3,
            **summary(sec),
            **_mfu(flops, step_s, peak),
        }
    variants.setdefault("fcnlib_compile", {}).update(compile_info)
    seed_ips = variants["seed"]["images_per_s"]
    for v in variants.values():
        if "images_per_s" in v:
            v["speedup_vs_seed"] = v["images_per_s"] / seed_ips
    return variants


def bench_train(
    s: BenchSettings,
    ctx: Context,
    peak: dict[str, Any] | None,
    quick: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Training throughput of the seed-style and fcnlib loops (and compiled), FLOPs and utilisation."""
    device = ctx.device
    torch.manual_seed(0)
    base = profile_model(s).to(device)
    images, masks = random_batch(s.train_batch, s.train_size, s.num_classes, device)
    flops = count_train_flops(base, images, masks)
    loops: dict[str, Any] = {
        "seed": SeedLoop(copy.deepcopy(base), images, masks, s.num_classes),
        "fcnlib": FcnlibLoop(copy.deepcopy(base), images, masks, ctx, s.num_classes),
    }
    compiled, compile_info = _compile_variant(s, base, images, masks, ctx, quick)
    if compiled is not None:
        loops["fcnlib_compile"] = compiled
    bar = tqdm(total=s.repeats * len(loops), desc="train", leave=False, disable=not progress)
    times = time_interleaved(
        {k: v.step for k, v in loops.items()}, device, s.train_steps, s.warmup, s.repeats, bar
    )
    bar.close()
    variants = _variants(times, s.train_batch, flops, peak, compile_info)
    speedup = variants["fcnlib"]["speedup_vs_seed"]
    finite = bool(loops["fcnlib"].finite) and math.isfinite(loops["seed"].loss_sum)
    del loops, compiled
    free(device)
    return {
        "model": {
            "name": "fcn8s",
            "width": s.width,
            "head": s.head,
            "batch_norm": s.batch_norm,
            "num_classes": s.num_classes,
            "parameters": sum(p.numel() for p in base.parameters()),
        },
        "batch": s.train_batch,
        "crop": [s.train_size, s.train_size],
        "steps_per_repeat": s.train_steps,
        "warmup_steps": s.warmup,
        "repeats": s.repeats,
        "fcnlib_amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
        "flops_per_step": flops,
        "flops_per_image": flops / s.train_batch,
        "variants": variants,
        "losses_finite": finite,
        "speedup": speedup,
        "goal": {
            "speedup": GOALS["train_gpu"],
            "applies_to": "cuda",
            "met": speedup >= GOALS["train_gpu"] if device.type == "cuda" else None,
        },
    }
