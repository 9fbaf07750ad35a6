"""Training: ``train(cfg) -> TrainResult`` and the pieces it is made of.

``train`` runs one recipe (:class:`fcnlib.config.TrainConfig`, never modified): it takes the
output folder (one run per folder), builds the data, model and optimiser, restores ``last.pt``
when resuming, then loops over epochs: train, validate (:func:`fcnlib.evaluation.evaluate`),
save ``last.pt``, ``best.pt``, ``history.csv`` and ``curves.png``. Under ``torchrun`` it trains
with DistributedDataParallel. Evaluation, loaders, optimisers and model building live in their
own modules; their names are no longer re-exported here.
"""

from __future__ import annotations

import csv
import importlib
import io
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm  # plain bars: tqdm.auto would save ipywidgets bars into the book's pages

from .checkpoint import (
    CheckpointError,
    atomic_save,
    finite_weights,
    load_checkpoint,
    restore_training_state,
    training_state,
)
from .config import EXECUTION_KEYS, ConfigError, TrainConfig
from .constants import IGNORE_INDEX
from .context import Context as _Context
from .context import setup_context as _setup_context
from .errors import FcnlibError
from .evaluation import EvalResult
from .evaluation import check_scaled_size as _check_scaled_size
from .evaluation import evaluate as _evaluate
from .fileio import atomic_write_bytes, atomic_write_text
from .guards import check_staged_resume
from .limits import check_run
from .loaders import build_datasets as _build_datasets
from .loaders import class_weights as _class_weights
from .loaders import dataset_attr as _dataset_attr
from .loaders import epoch_seed as _epoch_seed
from .loaders import train_loader as _train_loader
from .loaders import val_loader as _val_loader
from .losses import SegmentationLoss
from .models import FCN
from .optim import lr_lambda as _lr_lambda
from .optim import make_optimizer as _make_optimizer
from .outdir import OutputFolder
from .trained import check_parent as _check_parent
from .trained import init_model as _init_model
from .trained import make_model as _make_model

__all__ = [
    "HISTORY_FIELDS",
    "RunState",
    "TrainResult",
    "TrainingDiverged",
    "build_run",
    "train",
    "train_one_epoch",
    "train_stages",
    "train_step",
]

HISTORY_FIELDS = ["epoch", "lr", "train_loss", "val_loss", "pixAcc", "mIoU", "seconds"]

#: Names this module re-exported before; they still resolve here, with a DeprecationWarning.
_MOVED = {
    "Context": "context",
    "setup_context": "context",
    "build_datasets": "loaders",
    "pad_collate": "loaders",
    "val_loader": "loaders",
    "eval_logits": "evaluation",
    "evaluate": "evaluation",
    "lr_lambda": "optim",
    "make_optimizer": "optim",
    "make_model": "trained",
    "model_from_checkpoint": "trained",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module = f"fcnlib.{_MOVED[name]}"
        warnings.warn(
            f"fcnlib.engine.{name} is deprecated; import it from {module}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'fcnlib.engine' has no attribute {name!r}")


class TrainingDiverged(FcnlibError, RuntimeError):
    """The loss or the weights became NaN or infinite; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def train_step(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ctx: _Context,
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


@dataclass
class TrainResult:
    """What :func:`train` returns (``res["best_miou"]`` reads a field too).

    Attributes:
        out: the run's folder.
        best_miou: the best validation mIoU (-1.0 before the first validation).
        history: one row per epoch (:data:`HISTORY_FIELDS`).
        train_seconds: wall time of the whole run, across resumes.
        last: the last validation's metrics (no confusion matrix).
        stopped_by_budget: ``max_minutes`` ended the run.
        interrupted_at_step: ``max_steps`` cut the run short there (nothing saved for that epoch).
        skipped: why a stage of :func:`train_stages` was not trained again, or None.
    """

    out: str
    best_miou: float
    history: list[dict[str, Any]]
    train_seconds: float | None
    last: dict[str, Any] = field(default_factory=dict)
    stopped_by_budget: bool = False
    interrupted_at_step: int | None = None
    skipped: str | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class RunState:
    """What one training run carries from epoch to epoch (built by :func:`build_run`).

    ``model`` is the network itself, ``train_model`` what the steps call (DDP or compiled
    wrappers of it); ``class_weights`` are the loss's weights (given or computed), recorded in
    each checkpoint.
    """

    name: str
    out: OutputFolder
    model: FCN
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    num_classes: int
    classes: list[str]
    steps_per_epoch: int
    class_weights: list[float] | None = None
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_miou: float = -1.0
    seconds_before: float = 0.0  # wall time of earlier sessions of this run (resume)
    palette: list | None = None  # the data's class colours (a folder's classes.yaml), if any


def build_run(
    cfg: TrainConfig,
    ctx: _Context,
    train_ds: Dataset,
    name: str | None = None,
    parent=None,
    out: OutputFolder | None = None,
    budget_used=None,
) -> RunState:
    """Everything one run trains with, for ``train_ds``: the model (grown from checkpoint
    ``parent`` if given), optimiser, schedule, scaler and loss. ``out`` is the run's folder
    (default ``cfg.out``, not created here). ``cfg`` is not modified."""
    name = name or cfg.model
    out = out if out is not None else OutputFolder(cfg.out, owner=False)
    num_classes = _dataset_attr(train_ds, "num_classes")
    torch.manual_seed(cfg.seed)
    if parent is not None:  # a checkpoint or shipped weights; another class count: fine-tuning
        model = _init_model(parent, cfg, num_classes, name)
    else:
        model = _make_model(cfg, num_classes, name)
    model = model.to(ctx.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(
        [p for p in model.parameters() if p.requires_grad], cfg.optim, ctx.device
    )
    steps_per_epoch = max(1, len(_train_loader(train_ds, cfg, ctx, 0)))
    factor = _lr_lambda(cfg.optim, cfg.epochs * steps_per_epoch, steps_per_epoch, budget_used)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    weights = _class_weights(cfg, train_ds, num_classes)
    criterion = SegmentationLoss(weight=torch.tensor(weights) if weights else None).to(ctx.device)
    train_model: nn.Module = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
    return RunState(
        name,
        out,
        model,
        train_model,
        optimizer,
        scheduler,
        scaler,
        criterion,
        num_classes,
        list(_dataset_attr(train_ds, "classes")),
        steps_per_epoch,
        weights,
    )


def _check_resume_settings(cfg: TrainConfig, recorded: dict[str, Any], path: Path) -> None:
    """``--resume`` continues the recorded recipe exactly: refuse settings that differ from it."""
    current = cfg.to_dict()
    differ = []
    for key, was in recorded.items():
        now = current.get(key)
        if key in EXECUTION_KEYS or now == was:
            continue
        if key in ("stages", "stage_lr_scale") and recorded.get("stages") == []:
            continue  # stages recorded before they were kept in each stage's record
        if key == "class_weights" and now is None and recorded.get("class_weighting") != "none":
            continue  # records before 2026-12 kept the computed weights in the recipe
        differ.append(f"{key} {now!r} (recorded {was!r})")
    if differ:
        raise ConfigError(
            f"`resume` continues {path} exactly, but these settings differ from its recipe: {'; '.join(differ)}. "
            "Drop them to resume, or start a new run with `overwrite` or another `out`"
        )


def _restore(run: RunState) -> None:
    ckpt = restore_training_state(
        run.out.last, run.model, run.optimizer, run.scheduler, run.scaler, run.num_classes
    )
    run.start_epoch, run.history = int(ckpt["epoch"]), list(ckpt["history"])
    run.best_miou, run.seconds_before = (
        float(ckpt["best_miou"]),
        float(ckpt.get("train_seconds", 0.0)),
    )


def train_one_epoch(
    run: RunState,
    loader: DataLoader,
    cfg: TrainConfig,
    ctx: _Context,
    epoch: int,
    progress: bool = True,
    max_steps: int | None = None,
) -> float | None:
    """One pass over ``loader``; returns the mean training loss (None if ``max_steps`` cut it short).

    Raises :class:`TrainingDiverged` as soon as a checked loss is not finite.
    """
    run.train_model.train()
    step = epoch * run.steps_per_epoch
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    finite = torch.ones((), dtype=torch.bool, device=ctx.device)
    n_batches, labelled = 0, False
    bar = tqdm(
        loader,
        desc=f"{run.name} epoch {epoch + 1}/{cfg.epochs}",
        leave=False,
        disable=not (progress and ctx.is_main),
        dynamic_ncols=True,
    )
    for images, masks in bar:
        if max_steps is not None and step >= max_steps:
            return None
        labelled = labelled or bool((masks != IGNORE_INDEX).any())  # checked until one is seen
        loss = train_step(
            run.train_model,
            images,
            masks,
            run.criterion,
            run.optimizer,
            run.scaler,
            ctx,
            cfg.channels_last,
        )
        run.scheduler.step()
        step, n_batches = step + 1, n_batches + 1
        loss_sum += loss.double()
        finite &= torch.isfinite(loss)
        if n_batches % cfg.log_every == 0:
            _check_finite(bool(finite), run, epoch, "loss", f" (by step {step})")
            bar.set_postfix(
                loss=f"{loss_sum.item() / n_batches:.4f}",
                lr=f"{run.scheduler.get_last_lr()[0]:.2e}",
            )
    loss_sum, n_total, finite, labelled = _epoch_totals(loss_sum, n_batches, finite, labelled, ctx)
    if not labelled:
        raise FcnlibError(
            f"the training split has no labelled pixel (every mask is {IGNORE_INDEX}, the "
            "ignore label): nothing to learn from; check the masks (`train_split`, `data_root`)"
        )
    _check_finite(bool(finite), run, epoch, "loss", f" (by step {step})")
    return loss_sum.item() / max(1.0, float(n_total))


def _epoch_totals(loss_sum: Tensor, n_batches: int, finite: Tensor, labelled: bool, ctx: _Context):
    """``(loss sum, batches, all finite, any labelled)`` over every rank."""
    n_total = torch.tensor(float(n_batches), device=ctx.device, dtype=torch.float64)
    if not ctx.distributed:
        return loss_sum, n_total, finite, labelled
    seen = torch.tensor(float(labelled), device=ctx.device, dtype=torch.float64)
    stats = torch.stack([loss_sum, n_total, (~finite).double(), seen])
    dist.all_reduce(stats)
    return stats[0], stats[1], stats[2] == 0, bool(stats[3] > 0)


def _check_finite(ok: bool, run: RunState, epoch: int, what: str, where: str = "") -> None:
    if ok:
        return
    last = run.out.last
    kept = f"{last} (epoch {_epoch_of(last)})" if last.is_file() else "none yet"
    raise TrainingDiverged(
        f"{run.name}: {what} became NaN/inf in epoch {epoch + 1}{where}; stopped without saving "
        f"it; last good checkpoint: {kept} - lower `lr` or set `amp` off"
    )


def _epoch_of(path: Path) -> int | str:
    try:
        return int(load_checkpoint(path)["epoch"])
    except (CheckpointError, KeyError, ValueError):
        return "?"


def _validate(
    run: RunState, vloader: DataLoader, cfg: TrainConfig, ctx: _Context, progress: bool
) -> EvalResult:
    if ctx.distributed:  # DDP syncs BN statistics at the start of a forward: use rank 0's
        for buffer in run.model.buffers():
            dist.broadcast(buffer, 0)
    res = _evaluate(
        run.model,
        vloader,
        run.num_classes,
        ctx,
        per_image=cfg.per_image,
        progress=progress,
        scale=cfg.eval_scale,
        flip=cfg.eval_flip,
    )
    if int(res.confusion.sum()) == 0:
        raise FcnlibError(
            f"the validation split has no labelled pixel (every mask is {IGNORE_INDEX}, the "
            "ignore label): nothing to validate against; check the masks (`val_split`, `data_root`)"
        )
    return res


def _save_epoch(
    run: RunState,
    cfg: TrainConfig,
    row: dict[str, Any],
    improved: bool,
    seconds: float,
    execution: dict[str, Any] | None = None,
) -> None:
    state = training_state(
        _unwrap(run.model),
        run.optimizer,
        run.scheduler,
        run.scaler,
        model_name=run.name,
        epoch=row["epoch"],
        config=cfg.to_dict(),
        num_classes=run.num_classes,
        classes=run.classes,
        palette=run.palette,
        history=run.history,
        best_miou=run.best_miou,
        train_seconds=seconds,
        class_weights=run.class_weights,
        execution=execution,  # precision and threads, with the reasons
    )
    if improved:
        atomic_save(state, run.out.best)
    atomic_save(state, run.out.last)
    _write_history(run.history, run.out.path)
    if row["mIoU"] is not None:  # the curves change only where there is a validation point
        _plot_history(run.history, run.out.path, f"{run.name} on {cfg.data}")
    val = (
        ""
        if row["mIoU"] is None
        else (f" val_loss {row['val_loss']:.4f} pixAcc {row['pixAcc']:.4f} mIoU {row['mIoU']:.4f}")
    )
    tqdm.write(
        f"{run.name} epoch {row['epoch']}/{cfg.epochs}: train_loss {row['train_loss']:.4f}{val} "
        f"({row['seconds']:.1f}s)"
    )


def _epoch_row(
    run: RunState, epoch: int, train_loss: float, val: EvalResult | None, seconds: float
) -> dict[str, Any]:
    """One row of the history (:data:`HISTORY_FIELDS`); validation fields None if not run."""
    return {
        "epoch": epoch + 1,
        "lr": run.scheduler.get_last_lr()[0],
        "train_loss": train_loss,
        "val_loss": None if val is None else val.loss,
        "pixAcc": None if val is None else val.pixAcc,
        "mIoU": None if val is None else val.mIoU,
        "seconds": seconds,
    }


def _run_epochs(
    run: RunState,
    cfg: TrainConfig,
    ctx: _Context,
    train_ds: Dataset,
    vloader: DataLoader,
    clock,
    budget_used,
    progress: bool,
    max_steps: int | None,
) -> dict[str, Any]:
    """Train, validate and save epoch after epoch; returns :class:`TrainResult` fields."""
    last: dict[str, Any] = {}
    stopped_by_budget = False
    for epoch in range(run.start_epoch, cfg.epochs):
        torch.manual_seed(_epoch_seed(cfg.seed, epoch))  # augmentation, dropout: (seed, epoch)
        if (note := ctx.recheck_threads()) and ctx.is_main:
            tqdm.write(note)  # threads: auto follows the machine's load, epoch by epoch
        t0 = time.perf_counter()
        loader = _train_loader(train_ds, cfg, ctx, epoch)
        train_loss = train_one_epoch(run, loader, cfg, ctx, epoch, progress, max_steps)
        if train_loss is None:
            return {"interrupted_at_step": max_steps}
        stopped_by_budget = budget_used is not None and budget_used() >= 1
        val = None
        if stopped_by_budget or epoch + 1 == cfg.epochs or (epoch + 1) % cfg.val_every == 0:
            val = _validate(run, vloader, cfg, ctx, progress)
            last = {k: v for k, v in val.to_dict().items() if k != "confusion"}
            _check_finite(math.isfinite(val.loss), run, epoch, "the validation loss")
        _check_finite(finite_weights(run.model), run, epoch, "the weights")
        row = _epoch_row(run, epoch, train_loss, val, time.perf_counter() - t0)
        run.history.append(row)
        improved = val is not None and (val.mIoU > run.best_miou or not run.out.best.is_file())
        if improved:
            run.best_miou = val.mIoU
        if ctx.is_main:
            _save_epoch(run, cfg, row, improved, clock(), ctx.execution())
        if stopped_by_budget:
            break
    return {"last": last, "stopped_by_budget": stopped_by_budget}


def _check_grow_from(path, cfg: TrainConfig, name: str, overwrite: bool) -> None:
    _check_parent(path, cfg, name)
    inside = Path(os.path.realpath(path)).is_relative_to(os.path.realpath(cfg.out))
    if overwrite and inside:
        raise ConfigError(
            f"`init_from` {path} lies in `out` {cfg.out}, which `overwrite` would clear: "
            "choose another `out`"
        )


def _first_size(ds: Dataset) -> tuple[int, int]:
    return tuple(ds[0][1].shape[-2:]) if len(ds) else (1, 1)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    model_name: str | None = None,
    parent: str | os.PathLike | None = None,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Train one model of recipe ``cfg`` into ``cfg.out`` (``cfg`` is not modified).

    Args:
        cfg: the recipe.
        resume: continue ``cfg.out/last.pt`` exactly (weights, optimiser, schedule, scaler, RNG,
            history); recipe settings that differ from the recorded ones are refused.
        overwrite: allow a non-empty ``cfg.out``.
        model_name: the network to train (default ``cfg.model``).
        parent: a coarser model's checkpoint to grow from (default ``cfg.init_from``).
        progress: progress bars.
        max_steps: stop after that many optimisation steps in all, saving nothing for the
            unfinished epoch (an interruption).

    Raises :class:`TrainingDiverged` on a non-finite loss or weight; checkpoints already written
    stay intact.
    """
    started = time.perf_counter()
    check_run(cfg)  # threads, workers and a batch's memory against this machine
    ctx = _setup_context(cfg.device, cfg.amp, cfg.threads, train=True)
    if ctx.is_main:
        tqdm.write(ctx.describe())  # precision and threads, and why (also in the checkpoints)
    grow_from = None if resume else (parent or cfg.init_from)
    if grow_from is not None:
        _check_grow_from(grow_from, cfg, model_name or cfg.model, overwrite)
    with OutputFolder(cfg.out, resume=resume, overwrite=overwrite, owner=ctx.is_main) as out:
        train_ds, val_ds = _build_datasets(cfg, progress=progress and ctx.is_main)
        before = {"seconds": 0.0}

        def clock() -> float:
            return before["seconds"] + time.perf_counter() - started

        budget_used = (lambda: clock() / (cfg.max_minutes * 60)) if cfg.max_minutes else None
        _check_scaled_size(_first_size(val_ds), cfg.eval_scale)  # before an epoch is spent
        run = build_run(cfg, ctx, train_ds, model_name or cfg.model, grow_from, out, budget_used)
        run.palette = _dataset_attr(train_ds, "palette", None)
        if resume:
            _check_resume_settings(cfg, load_checkpoint(out.last)["config"], out.last)
            _restore(run)
            before["seconds"] = run.seconds_before
        vloader = _val_loader(val_ds, ctx, cfg.val_batch_size, cfg.workers)
        result = _run_epochs(
            run, cfg, ctx, train_ds, vloader, clock, budget_used, progress, max_steps
        )
        if ctx.distributed:
            dist.barrier()
    return TrainResult(str(out.path), run.best_miou, run.history, clock(), **result)


def _finished_stage(path: Path, epochs: int) -> TrainResult | None:
    """The result of a stage whose ``last.pt`` (``path``) already holds all its epochs."""
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    if int(ckpt["epoch"]) < epochs:
        return None
    return TrainResult(
        str(path.parent),
        float(ckpt["best_miou"]),
        list(ckpt["history"]),
        ckpt.get("train_seconds"),
        skipped="already complete",
    )


def train_stages(
    cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> dict[str, TrainResult]:
    """The paper's staged training: each model of ``cfg.stages`` grows from the previous one's
    ``best.pt``; without stages, :func:`train`. Returns each stage's result by model name.

    Stage ``k`` writes into ``cfg.out/<model name>`` and trains at ``lr * stage_lr_scale**k``;
    the first grows from ``cfg.init_from`` or starts from scratch / the backbone weights.
    """
    if not cfg.stages:
        return {cfg.model: train(cfg, resume=resume, overwrite=overwrite, progress=progress)}
    check_staged_resume(cfg, resume)  # a staged --resume needs a stage's last.pt
    results: dict[str, TrainResult] = {}
    parent = cfg.init_from
    for k, name in enumerate(cfg.stages):
        stage_cfg = TrainConfig.from_dict(
            {
                **cfg.to_dict(),
                "model": name,  # this stage's network; ``stages`` keeps the whole schedule
                "init_from": parent,
                "lr": cfg.lr * cfg.stage_lr_scale**k,  # this stage's rate
                "out": str(Path(cfg.out) / name),
            }
        )
        last = Path(stage_cfg.out) / "last.pt"
        finished = _finished_stage(last, stage_cfg.epochs) if resume else None
        results[name] = finished or train(
            stage_cfg, resume=resume and last.is_file(), overwrite=overwrite, progress=progress
        )
        parent = str(Path(stage_cfg.out) / "best.pt")
    return results


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> FCN:
    return model.module if hasattr(model, "module") else model


def _write_history(rows: list[dict[str, Any]], out: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in HISTORY_FIELDS})
    atomic_write_text(buf.getvalue(), out / "history.csv")


def _plot_history(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    """``out/curves.png``: loss, mIoU and pixAcc per epoch (written atomically)."""
    from .viz import plot_history  # matplotlib is imported only when a run saves its curves

    fig = plot_history(rows)  # a matplotlib Figure not registered with pyplot: nothing to close
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(buf.getvalue(), out / "curves.png")
