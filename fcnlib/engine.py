"""Training and evaluation: SGD with poly/step schedule, mixed precision, DDP, atomic checkpoints, exact resume.

``train(cfg)`` runs one recipe (:class:`fcnlib.config.TrainConfig`) and writes into ``cfg.out``:
``last.pt`` (every epoch), ``best.pt`` (best validation mIoU), ``history.csv`` and
``curves.png``. Under ``torchrun`` it trains with DistributedDataParallel; confusion matrices are
all-reduced so that every metric is the dataset-level one.
"""

from __future__ import annotations

import csv
import io
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .checkpoint import FORMAT, CheckpointError, atomic_save, atomic_write_bytes, atomic_write_text, load_checkpoint
from .config import TrainConfig
from .losses import SegmentationLoss
from .metrics import SegmentationMetric
from .models import FCN, build_model, grow

__all__ = [
    "TrainingDiverged",
    "Context",
    "setup_context",
    "pad_collate",
    "make_model",
    "model_from_checkpoint",
    "evaluate",
    "train",
    "train_step",
    "make_optimizer",
    "train_stages",
    "HISTORY_FIELDS",
]

STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}
HISTORY_FIELDS = ["epoch", "lr", "train_loss", "val_loss", "pixAcc", "mIoU", "seconds"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------------------
# Execution context: device, distributed state, precision
# ----------------------------------------------------------------------------------------------


@dataclass
class Context:
    """Where and how to run: device, rank / world size (1 without torchrun), autocast dtype."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def setup_context(device: str = "auto", amp: str = "auto") -> Context:
    """Resolve the device, join the ``torchrun`` process group if there is one, and choose the precision.

    ``amp="auto"``: bf16 autocast on GPUs that support it, fp16 (with a gradient scaler) on
    older GPUs, none on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda requested but no GPU is available (use --device cpu)")
        if world_size > 1 or dev.index is None:
            dev = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    if amp == "auto":
        if dev.type == "cuda":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            amp = "off"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
    return Context(dev, rank, world_size, amp_dtype)


# ----------------------------------------------------------------------------------------------
# Data loading
# ----------------------------------------------------------------------------------------------


def pad_collate(batch: list[tuple[Tensor, Tensor]], ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """Stack ``(image 3xHxW, mask HxW)`` pairs of different sizes: pad bottom/right to the largest.

    Images are padded with 0 (the mean after normalisation), masks with ``ignore_index``, so the
    padding never counts in the loss or the metrics.
    """
    h = max(img.shape[-2] for img, _ in batch)
    w = max(img.shape[-1] for img, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.int64)
    for i, (img, mask) in enumerate(batch):
        images[i, :, : img.shape[-2], : img.shape[-1]] = img
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


def _limit(ds: Dataset, n: int | None) -> Dataset:
    return ds if n is None or n >= len(ds) else Subset(ds, range(n))


def _shard(ds: Dataset, ctx: Context) -> Dataset:
    """Every ``world_size``-th item for this rank: no padding, so distributed metrics stay exact."""
    return ds if not ctx.distributed else Subset(ds, range(ctx.rank, len(ds), ctx.world_size))


def build_datasets(cfg: TrainConfig, progress: bool = False) -> tuple[Dataset, Dataset]:
    """Training (augmented, cropped) and validation (full-size) datasets of a recipe."""
    from .data import CachedDataset, build_dataset
    from .transforms import train_transforms

    crop = (cfg.crop_size, cfg.crop_width or cfg.crop_size)
    augment = train_transforms(crop, scale_range=tuple(cfg.scale_range), color_jitter=cfg.color_jitter)
    kw = {"crop_size": crop, "num_classes": cfg.num_classes}
    train_ds = build_dataset(cfg.data, cfg.data_root, cfg.train_split, train=True, transforms=augment, **kw)
    # trainaug is a training set only (it excludes VOC val by construction): validate on VOC.
    val_name = "voc" if cfg.data == "trainaug" else cfg.data
    val_ds = build_dataset(val_name, cfg.data_root, cfg.val_split, train=False, **kw)
    if cfg.data == "folder":  # users' own data: validate every pair before spending time on training
        train_ds.check(progress=False)
        val_ds.check(progress=False)
    train_ds, val_ds = _limit(train_ds, cfg.limit_train), _limit(val_ds, cfg.limit_val)
    if cfg.cache:
        train_ds, val_ds = CachedDataset(train_ds, progress=progress), CachedDataset(val_ds, progress=progress)
    return train_ds, val_ds


def class_weights(cfg: TrainConfig, train_ds: Dataset, num_classes: int) -> list[float] | None:
    """The loss's class weights: ``cfg.class_weights``, or median-frequency ones from ``train_ds``."""
    if cfg.class_weights:
        if len(cfg.class_weights) != num_classes:
            raise ValueError(f"class_weights has {len(cfg.class_weights)} values but the data has {num_classes} classes")
        return list(cfg.class_weights)
    if cfg.class_weighting == "median-frequency":
        from .data import median_frequency_weights

        return median_frequency_weights(train_ds, num_classes, cfg.class_weight_max)
    return None


def _dataset_attr(ds: Dataset, name: str):
    while isinstance(ds, Subset):
        ds = ds.dataset
    return getattr(ds, name)


def val_loader(ds: Dataset, ctx: Context, batch_size: int = 1, workers: int = 0) -> DataLoader:
    """Full-size evaluation loader over this rank's shard (sizes may differ: padded batches)."""
    return DataLoader(
        _shard(ds, ctx), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=pad_collate, pin_memory=ctx.device.type == "cuda",
    )


def _train_loader(ds: Dataset, cfg: TrainConfig, ctx: Context, epoch: int) -> DataLoader:
    # The order and the workers' seeds depend only on (seed, epoch), so a resumed run sees the
    # same batches as an uninterrupted one.
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    if ctx.distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(ds, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        sampler = torch.utils.data.RandomSampler(ds, generator=g)
    return DataLoader(
        ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=len(ds) >= cfg.batch_size,
        collate_fn=pad_collate, pin_memory=ctx.device.type == "cuda", generator=g,
        persistent_workers=False,
    )


# ----------------------------------------------------------------------------------------------
# Models and checkpoints
# ----------------------------------------------------------------------------------------------


def make_model(cfg: TrainConfig, num_classes: int, name: str | None = None) -> FCN:
    """The FCN a recipe describes (``name`` overrides ``cfg.model``, for staged training)."""
    return build_model(
        name or cfg.model, num_classes, head=cfg.head, upsample=cfg.upsample, width=cfg.width,
        batch_norm=cfg.batch_norm, weights_backbone=cfg.weights_backbone,
    )


def model_from_checkpoint(path: str | os.PathLike, num_classes: int | None = None) -> tuple[FCN, dict[str, Any]]:
    """Rebuild the model saved in an fcnlib checkpoint; ``num_classes`` must match when given."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a bare state dict; fcnlib needs a checkpoint written by `fcnlib train`")
    cfg = TrainConfig.from_dict(ckpt["config"], source=str(path))
    saved_classes = int(ckpt["num_classes"])
    if num_classes is not None and num_classes != saved_classes:
        raise CheckpointError(f"checkpoint {path} has {saved_classes} classes but the data has {num_classes}")
    cfg.weights_backbone = None
    model = make_model(cfg, saved_classes, name=ckpt.get("model_name", cfg.model))
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit its model: {str(exc).splitlines()[0]}") from None
    return model, ckpt


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    ctx: Context | None = None,
    *,
    per_image: bool = False,
    ignore_index: int = 255,
    progress: bool = True,
    scale: float | Sequence[float] = 1.0,
    flip: bool = False,
) -> dict[str, Any]:
    """Dataset-level metrics of ``model`` over ``loader`` (full-size images).

    ``scale`` resizes each input batch by that factor before the model (bilinear, antialiased)
    and upsamples the logits back to the label size; ``flip`` averages the logits of the image
    and of its mirror image (flipped back). Metrics are always taken at the labels' full size.

    Returns the :class:`SegmentationMetric` results (``pixAcc``, ``meanAcc``, ``mIoU``, ``fwIoU``,
    per-class ``IoU``/``Acc``, ``confusion``) plus the mean validation ``loss``; with
    ``per_image`` also the seed notes' per-image means. Under ``torch.distributed`` every rank
    passes its shard and all get the merged result.
    """
    ctx = ctx or Context(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    metric = SegmentationMetric(num_classes, ignore_index, per_image=per_image, validate=False)
    criterion = SegmentationLoss(ignore_index=ignore_index)
    loss_sum = torch.zeros(2, dtype=torch.float64, device=ctx.device)  # sum of losses, number of batches
    bar = tqdm(loader, desc="eval", leave=False, disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for images, masks in bar:
        images = images.to(ctx.device, non_blocking=True)
        masks = masks.to(ctx.device, non_blocking=True)
        logits = eval_logits(model, images, ctx, scale=scale, flip=flip)
        loss_sum += torch.stack([criterion(logits.float(), masks).double(), loss_sum.new_ones(())])
        metric.update(logits, masks)
    metric.all_reduce(ctx.device)
    if ctx.distributed:
        dist.all_reduce(loss_sum)
    model.train(was_training)
    result = metric.compute()
    result["loss"] = (loss_sum[0] / loss_sum[1]).item() if loss_sum[1] > 0 else float("nan")
    return result


def _scales(scale: float | Sequence[float]) -> tuple[float, ...]:
    scales = (float(scale),) if isinstance(scale, (int, float)) else tuple(float(s) for s in scale)
    if not scales or any(not (0 < s < float("inf")) for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scale!r}")
    return scales


def eval_logits(model: nn.Module, images: Tensor, ctx: Context, *, scale: float | Sequence[float] = 1.0,
                flip: bool = False) -> Tensor:
    """float32 logits ``(B, C, H, W)`` for ``images (B, 3, H, W)``, run at ``scale`` x the size.

    For each scale ``s != 1`` the input is resized to ``round(s * H) x round(s * W)`` (bilinear,
    antialiased) and the logits are upsampled back to ``H x W`` (bilinear); ``flip`` adds the
    mirrored input's logits (flipped back). With several scales (or ``flip``) the result is the
    mean of the logits of every pass.
    """
    size = tuple(images.shape[-2:])
    total, passes = None, 0
    for s in _scales(scale):
        x = images
        if s != 1.0:
            small = (max(1, round(size[0] * s)), max(1, round(size[1] * s)))
            x = F.interpolate(images, size=small, mode="bilinear", align_corners=False, antialias=True)
        for mirrored in (False, True) if flip else (False,):
            with ctx.autocast():
                logits = model(x.flip(-1) if mirrored else x).float()
            logits = logits.flip(-1) if mirrored else logits
            if tuple(logits.shape[-2:]) != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            total = logits if total is None else total + logits
            passes += 1
    return total / passes


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _lr_lambda(cfg: TrainConfig, total_steps: int, steps_per_epoch: int, budget_used=None):
    """The learning-rate factor per optimisation step: optional linear warm-up, then the schedule.

    ``budget_used`` (a callable returning the fraction of ``max_minutes`` spent) makes the poly
    schedule follow time instead of steps when that is further along.
    """
    warmup = cfg.warmup_epochs * steps_per_epoch

    def warm(step: int) -> float:
        return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0

    if cfg.schedule == "poly":
        def poly(step: int) -> float:
            done = min(step, total_steps - 1) / total_steps
            if budget_used is not None:
                done = max(done, min(budget_used(), (total_steps - 1) / total_steps))
            return warm(step) * (1 - done) ** cfg.poly_power

        return poly
    if cfg.schedule == "step":
        return lambda step: warm(step) * cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
    return warm


def _write_history(rows: list[dict[str, Any]], out: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in HISTORY_FIELDS})
    atomic_write_text(buf.getvalue(), out / "history.csv")


def _plot_history(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """``out/curves.png``: loss, mIoU and pixAcc per epoch (written atomically)."""
    from .viz import plot_history

    fig = plot_history(rows)  # a matplotlib Figure not registered with pyplot: nothing to close
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(buf.getvalue(), out / "curves.png")


def train_step(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ctx: Context,
    channels_last: bool = True,
) -> Tensor:
    """One optimisation step on a batch ``(B, 3, H, W)``, ``(B, H, W)``; returns the loss (on the device, no sync)."""
    images = images.to(ctx.device, non_blocking=True)
    masks = masks.to(ctx.device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with ctx.autocast():
        logits = model(images)
    loss = criterion(logits.float(), masks)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay, or AdamW (``cfg.optimizer``): fused kernels on a GPU,
    foreach (multi-tensor) on the CPU."""
    fused = device.type == "cuda"
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=True if fused else None, foreach=None if fused else True)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
        fused=True if fused else None, foreach=None if fused else True,
    )


def _unwrap(model: nn.Module) -> FCN:
    return model.module if hasattr(model, "module") else model


@dataclass
class _Run:
    """The state one training run carries from epoch to epoch."""

    name: str
    out: Path
    model: FCN
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    num_classes: int
    classes: list[str]
    steps_per_epoch: int
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_miou: float = -1.0
    seconds: float = 0.0  # wall time spent in earlier sessions (resume)

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"


def _prepare_out(out: Path, resume: bool, overwrite: bool, ctx: Context) -> None:
    if not ctx.is_main:
        return
    if resume and not (out / "last.pt").is_file():
        raise CheckpointError(f"nothing to resume: {out / 'last.pt'} does not exist")
    if not resume and out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {out} exists and is not empty (use --overwrite or --resume)")
    out.mkdir(parents=True, exist_ok=True)


def _build_run(cfg: TrainConfig, ctx: Context, train_ds: Dataset, name: str, parent, clock) -> _Run:
    num_classes = _dataset_attr(train_ds, "num_classes")
    torch.manual_seed(cfg.seed)
    if parent is not None:
        model, _ = model_from_checkpoint(parent, num_classes)
        while model.stride > STRIDES[name]:
            model = grow(model)
    else:
        model = make_model(cfg, num_classes, name)
    model = model.to(ctx.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg, ctx.device)
    steps_per_epoch = max(1, len(_train_loader(train_ds, cfg, ctx, 0)))
    lr_lambda = _lr_lambda(cfg, cfg.epochs * steps_per_epoch, steps_per_epoch, clock)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    weights = class_weights(cfg, train_ds, num_classes)
    if weights is not None:
        cfg.class_weights = weights  # the recorded recipe holds the weights that were used
    weight = torch.tensor(weights, device=ctx.device) if weights else None
    train_model: nn.Module = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model)
    return _Run(
        name, Path(cfg.out), model, train_model, optimizer, scheduler,
        torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16),
        SegmentationLoss(weight=weight).to(ctx.device), num_classes,
        list(_dataset_attr(train_ds, "classes")), steps_per_epoch,
    )


def _restore(run: _Run) -> None:
    """Continue ``run`` from its ``last.pt``: weights, optimizer, schedule, scaler, RNG, history."""
    ckpt = load_checkpoint(run.last_path, map_location="cpu")
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{run.last_path} is not an fcnlib training checkpoint")
    if int(ckpt["num_classes"]) != run.num_classes:
        raise CheckpointError(f"{run.last_path} has {ckpt['num_classes']} classes but the data has {run.num_classes}")
    try:
        run.model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{run.last_path} does not fit the recipe's model: {str(exc).splitlines()[0]}") from None
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    _set_rng_state(ckpt["rng"])
    run.start_epoch, run.history = int(ckpt["epoch"]), list(ckpt["history"])
    run.best_miou, run.seconds = float(ckpt["best_miou"]), float(ckpt.get("train_seconds", 0.0))


def _checkpoint(run: _Run, cfg: TrainConfig, epoch: int, seconds: float) -> dict[str, Any]:
    return {
        "format": FORMAT, "model_name": run.name, "model": _unwrap(run.model).state_dict(),
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(), "epoch": epoch, "rng": _rng_state(), "config": cfg.to_dict(),
        "num_classes": run.num_classes, "classes": run.classes, "history": run.history,
        "best_miou": run.best_miou, "train_seconds": seconds,
    }


def train_one_epoch(run: _Run, loader: DataLoader, cfg: TrainConfig, ctx: Context, epoch: int,
                    progress: bool = True, max_steps: int | None = None) -> float | None:
    """One pass over ``loader``; returns the mean training loss (None if ``max_steps`` cut it short).

    Raises :class:`TrainingDiverged` as soon as a checked loss is not finite.
    """
    run.train_model.train()
    step = epoch * run.steps_per_epoch
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    finite = torch.ones((), dtype=torch.bool, device=ctx.device)
    n_batches = 0
    bar = tqdm(loader, desc=f"{run.name} epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for images, masks in bar:
        if max_steps is not None and step >= max_steps:
            return None
        loss = train_step(run.train_model, images, masks, run.criterion, run.optimizer, run.scaler, ctx,
                          cfg.channels_last)
        run.scheduler.step()
        step += 1
        n_batches += 1
        loss_sum += loss.double()
        finite &= torch.isfinite(loss)
        if n_batches % cfg.log_every == 0:
            _check_finite(finite, run.name, epoch, step, run.last_path)
            bar.set_postfix(loss=f"{loss_sum.item() / n_batches:.4f}", lr=f"{run.scheduler.get_last_lr()[0]:.2e}")
    n_total = torch.tensor(float(n_batches), device=ctx.device, dtype=torch.float64)
    if ctx.distributed:
        stats = torch.stack([loss_sum, n_total, (~finite).double()])
        dist.all_reduce(stats)
        loss_sum, n_total, finite = stats[0], stats[1], stats[2] == 0
    _check_finite(finite, run.name, epoch, step, run.last_path)
    return loss_sum.item() / max(1.0, float(n_total))


def _save_epoch(run: _Run, cfg: TrainConfig, row: dict[str, Any], improved: bool, seconds: float) -> None:
    state = _checkpoint(run, cfg, row["epoch"], seconds)
    if improved:
        atomic_save(state, run.best_path)
    atomic_save(state, run.last_path)
    _write_history(run.history, run.out)
    if row["mIoU"] is not None:  # the curves change only where there is a validation point
        _plot_history(run.history, run.out, f"{run.name} on {cfg.data}")
    val = "" if row["mIoU"] is None else (
        f" val_loss {row['val_loss']:.4f} pixAcc {row['pixAcc']:.4f} mIoU {row['mIoU']:.4f}")
    tqdm.write(f"{run.name} epoch {row['epoch']}/{cfg.epochs}: train_loss {row['train_loss']:.4f}{val} "
               f"({row['seconds']:.1f}s)")


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    model_name: str | None = None,
    parent: str | os.PathLike | None = None,
    progress: bool = True,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Train one model of recipe ``cfg`` into ``cfg.out``; returns ``best_miou``, the ``last`` metrics,
    ``history`` and ``train_seconds`` (wall time of the whole run, across resumes).

    Writes ``last.pt`` (every epoch), ``best.pt`` (best validation mIoU), ``history.csv`` and
    ``curves.png``. ``resume`` continues from ``cfg.out/last.pt`` exactly (weights, optimizer,
    schedule, scaler, RNG, history). ``parent`` (or ``cfg.init_from``) is a coarser model's
    checkpoint to grow from (FCN-32s -> 16s -> 8s). ``max_steps`` stops after that many
    optimisation steps in total, saving nothing for the unfinished epoch (simulates an
    interruption). ``cfg.max_minutes`` stops after the epoch in which the budget runs out (the poly
    schedule follows the budget). A non-finite loss raises :class:`TrainingDiverged`; checkpoints
    already written stay intact.
    """
    started = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = setup_context(cfg.device, cfg.amp)
    out = Path(cfg.out)
    _prepare_out(out, resume, overwrite, ctx)
    train_ds, val_ds = build_datasets(cfg, progress=progress and ctx.is_main)
    budget = cfg.max_minutes * 60 if cfg.max_minutes else None
    elapsed = {"before": 0.0}

    def seconds() -> float:
        return elapsed["before"] + time.perf_counter() - started

    clock = (lambda: seconds() / budget) if budget else None
    run = _build_run(cfg, ctx, train_ds, model_name or cfg.model,
                     None if resume else (parent or cfg.init_from), clock)
    if resume:
        _restore(run)
        elapsed["before"] = run.seconds
    vloader = val_loader(val_ds, ctx, cfg.val_batch_size, cfg.workers)
    last: dict[str, Any] = {}
    stopped_by_budget = False
    for epoch in range(run.start_epoch, cfg.epochs):
        # Re-seed per epoch so augmentation and dropout depend only on (seed, epoch).
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        t0 = time.perf_counter()
        loader = _train_loader(train_ds, cfg, ctx, epoch)
        train_loss = train_one_epoch(run, loader, cfg, ctx, epoch, progress, max_steps)
        if train_loss is None:
            return {"interrupted_at_step": max_steps}
        stopped_by_budget = budget is not None and seconds() >= budget
        final = stopped_by_budget or epoch + 1 == cfg.epochs
        if ctx.distributed:  # DDP syncs BN statistics at the start of a forward: give every rank rank 0's
            for buffer in run.model.buffers():
                dist.broadcast(buffer, 0)
        val: dict[str, Any] = {"loss": None, "pixAcc": None, "mIoU": None}
        if final or (epoch + 1) % cfg.val_every == 0:
            val = evaluate(run.model, vloader, run.num_classes, ctx, per_image=cfg.per_image,
                           progress=progress, scale=cfg.eval_scale, flip=cfg.eval_flip)
            last = {k: v for k, v in val.items() if k != "confusion"}
        row = {"epoch": epoch + 1, "lr": run.scheduler.get_last_lr()[0], "train_loss": train_loss,
               "val_loss": val["loss"], "pixAcc": val["pixAcc"], "mIoU": val["mIoU"],
               "seconds": time.perf_counter() - t0}
        run.history.append(row)
        improved = val["mIoU"] is not None and (val["mIoU"] > run.best_miou or not run.best_path.is_file())
        if improved:
            run.best_miou = val["mIoU"]
        if ctx.is_main:
            _save_epoch(run, cfg, row, improved, seconds())
        if stopped_by_budget:
            break
    if ctx.distributed:
        dist.barrier()
    return {"best_miou": run.best_miou, "last": last, "history": run.history, "out": str(out),
            "train_seconds": seconds(), "stopped_by_budget": stopped_by_budget}


def _check_finite(finite: Tensor, name: str, epoch: int, step: int, last_path: Path) -> None:
    if not bool(finite):
        kept = f"{last_path} (epoch {_epoch_of(last_path)})" if last_path.is_file() else "no checkpoint yet"
        raise TrainingDiverged(
            f"{name}: loss became NaN/inf in epoch {epoch + 1} (by step {step}); stopped, last good checkpoint: {kept}"
            " - lower --lr or use --amp off"
        )


def _epoch_of(path: Path) -> int | str:
    try:
        return int(load_checkpoint(path)["epoch"])
    except (CheckpointError, KeyError, ValueError):
        return "?"


def train_stages(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """The paper's staged training: each model in ``cfg.stages`` grows from the previous one's ``best.pt``.

    Stage ``k`` writes into ``cfg.out/<model name>``; the first stage starts from ``cfg.init_from``
    or from scratch / the backbone weights. Returns the best metrics of each stage.
    """
    if not cfg.stages:
        return {cfg.model: train(cfg, resume=resume, overwrite=overwrite, progress=progress)}
    results: dict[str, Any] = {}
    parent = cfg.init_from
    for name in cfg.stages:
        stage_cfg = TrainConfig.from_dict({**cfg.to_dict(), "model": name, "stages": [], "init_from": parent,
                                            "out": str(Path(cfg.out) / name)})
        done = (Path(stage_cfg.out) / "last.pt")
        stage_resume = resume and done.is_file()
        if resume and done.is_file() and int(load_checkpoint(done)["epoch"]) >= stage_cfg.epochs:
            results[name] = {"skipped": "already complete"}
        else:
            results[name] = train(stage_cfg, resume=stage_resume, overwrite=overwrite, progress=progress)
        parent = str(Path(stage_cfg.out) / "best.pt")
    return results

