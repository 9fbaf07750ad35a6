"""Training and evaluation: ``train_one_epoch``, ``evaluate``, and ``train``, which ties them together.

``train(cfg)`` runs one recipe (:class:`fcnlib.config.TrainConfig`): it takes the output folder
(a lock file: one run per folder), builds the data, model and optimiser, restores ``last.pt`` when
resuming, then loops over epochs: train, validate, save. It writes ``last.pt`` (every epoch, only
when its weights are finite), ``best.pt`` (best validation mIoU), ``history.csv`` and
``curves.png``. Under ``torchrun`` it trains with DistributedDataParallel; confusion matrices are
all-reduced so that every metric is the dataset-level one.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
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
from .context import Context, setup_context
from .errors import FcnlibError
from .evaluation import check_scaled_size, eval_logits, evaluate
from .fileio import atomic_write_bytes, atomic_write_text
from .limits import check_run
from .loaders import (
    build_datasets,
    class_weights,
    dataset_attr,
    pad_collate,
    train_loader,
    val_loader,
)
from .losses import SegmentationLoss
from .models import FCN, STRIDES, grow
from .optim import lr_lambda, make_optimizer
from .outdir import OutputFolder
from .trained import check_parent, make_model, model_from_checkpoint

__all__ = [
    "HISTORY_FIELDS",
    "Context",
    "TrainingDiverged",
    "build_datasets",
    "build_run",
    "eval_logits",
    "evaluate",
    "lr_lambda",
    "make_model",
    "make_optimizer",
    "model_from_checkpoint",
    "pad_collate",
    "setup_context",
    "train",
    "train_one_epoch",
    "train_stages",
    "train_step",
    "val_loader",
]

HISTORY_FIELDS = ["epoch", "lr", "train_loss", "val_loss", "pixAcc", "mIoU", "seconds"]


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


@dataclass
class _Run:
    """What one training run carries from epoch to epoch."""

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
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_miou: float = -1.0
    seconds_before: float = 0.0  # wall time of earlier sessions of this run (resume)


def build_run(
    cfg: TrainConfig,
    ctx: Context,
    train_ds: Dataset,
    name: str | None = None,
    parent=None,
    out: OutputFolder | None = None,
    budget_used=None,
) -> _Run:
    """Everything one run trains with: the model (grown from ``parent`` if given), optimiser,
    schedule, scaler and loss (with the recipe's class weights), for ``train_ds``. ``out`` is
    the run's output folder (default ``cfg.out``, not created here)."""
    name = name or cfg.model
    out = out if out is not None else OutputFolder(cfg.out, owner=False)
    num_classes = dataset_attr(train_ds, "num_classes")
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
    optimizer = make_optimizer(
        [p for p in model.parameters() if p.requires_grad], cfg.optim, ctx.device
    )
    steps_per_epoch = max(1, len(train_loader(train_ds, cfg, ctx, 0)))
    factor = lr_lambda(cfg.optim, cfg.epochs * steps_per_epoch, steps_per_epoch, budget_used)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    weights = class_weights(cfg, train_ds, num_classes)
    if weights is not None:
        cfg.class_weights = weights  # the recorded recipe holds the weights that were used
    criterion = SegmentationLoss(weight=torch.tensor(weights) if weights else None).to(ctx.device)
    train_model: nn.Module = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=ctx.amp_dtype == torch.float16)
    return _Run(
        name,
        out,
        model,
        train_model,
        optimizer,
        scheduler,
        scaler,
        criterion,
        num_classes,
        list(dataset_attr(train_ds, "classes")),
        steps_per_epoch,
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
            continue  # computed from the labels at start-up: same data, same weights
        differ.append(f"{key} {now!r} (recorded {was!r})")
    if differ:
        raise ConfigError(
            f"`resume` continues {path} exactly, but these settings differ from its recipe: {'; '.join(differ)}. "
            "Drop them to resume, or start a new run with `overwrite` or another `out`"
        )


def _restore(run: _Run) -> None:
    ckpt = restore_training_state(
        run.out.last, run.model, run.optimizer, run.scheduler, run.scaler, run.num_classes
    )
    run.start_epoch, run.history = int(ckpt["epoch"]), list(ckpt["history"])
    run.best_miou, run.seconds_before = (
        float(ckpt["best_miou"]),
        float(ckpt.get("train_seconds", 0.0)),
    )


def train_one_epoch(
    run: _Run,
    loader: DataLoader,
    cfg: TrainConfig,
    ctx: Context,
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
    n_total = torch.tensor(float(n_batches), device=ctx.device, dtype=torch.float64)
    if ctx.distributed:
        seen = torch.tensor(float(labelled), device=ctx.device, dtype=torch.float64)
        stats = torch.stack([loss_sum, n_total, (~finite).double(), seen])
        dist.all_reduce(stats)
        loss_sum, n_total, finite, labelled = stats[0], stats[1], stats[2] == 0, bool(stats[3] > 0)
    if not labelled:
        raise FcnlibError(
            f"the training split has no labelled pixel (every mask is {IGNORE_INDEX}, the "
            "ignore label): nothing to learn from; check the masks (`train_split`, `data_root`)"
        )
    _check_finite(bool(finite), run, epoch, "loss", f" (by step {step})")
    return loss_sum.item() / max(1.0, float(n_total))


def _check_finite(ok: bool, run: _Run, epoch: int, what: str, where: str = "") -> None:
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
    run: _Run, vloader: DataLoader, cfg: TrainConfig, ctx: Context, progress: bool
) -> dict[str, Any]:
    if (
        ctx.distributed
    ):  # DDP syncs BN statistics at the start of a forward: give every rank rank 0's
        for buffer in run.model.buffers():
            dist.broadcast(buffer, 0)
    res = evaluate(
        run.model,
        vloader,
        run.num_classes,
        ctx,
        per_image=cfg.per_image,
        progress=progress,
        scale=cfg.eval_scale,
        flip=cfg.eval_flip,
    )
    if int(res["confusion"].sum()) == 0:
        raise FcnlibError(
            f"the validation split has no labelled pixel (every mask is {IGNORE_INDEX}, the "
            "ignore label): nothing to validate against; check the masks (`val_split`, `data_root`)"
        )
    return res


def _save_epoch(
    run: _Run, cfg: TrainConfig, row: dict[str, Any], improved: bool, seconds: float
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
        history=run.history,
        best_miou=run.best_miou,
        train_seconds=seconds,
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


def _run_epochs(
    run: _Run,
    cfg: TrainConfig,
    ctx: Context,
    train_ds: Dataset,
    vloader: DataLoader,
    clock,
    budget_used,
    progress: bool,
    max_steps: int | None,
) -> dict[str, Any]:
    last: dict[str, Any] = {}
    stopped_by_budget = False
    for epoch in range(run.start_epoch, cfg.epochs):
        torch.manual_seed(
            cfg.seed * 1_000_003 + epoch
        )  # augmentation and dropout depend on (seed, epoch)
        t0 = time.perf_counter()
        train_loss = train_one_epoch(
            run, train_loader(train_ds, cfg, ctx, epoch), cfg, ctx, epoch, progress, max_steps
        )
        if train_loss is None:
            return {"interrupted_at_step": max_steps}
        stopped_by_budget = budget_used is not None and budget_used() >= 1
        val: dict[str, Any] = {"loss": None, "pixAcc": None, "mIoU": None}
        if stopped_by_budget or epoch + 1 == cfg.epochs or (epoch + 1) % cfg.val_every == 0:
            val = _validate(run, vloader, cfg, ctx, progress)
            last = {k: v for k, v in val.to_dict().items() if k != "confusion"}
            _check_finite(math.isfinite(val["loss"]), run, epoch, "the validation loss")
        _check_finite(finite_weights(run.model), run, epoch, "the weights")
        row = {
            "epoch": epoch + 1,
            "lr": run.scheduler.get_last_lr()[0],
            "train_loss": train_loss,
            "val_loss": val["loss"],
            "pixAcc": val["pixAcc"],
            "mIoU": val["mIoU"],
            "seconds": time.perf_counter() - t0,
        }
        run.history.append(row)
        improved = val["mIoU"] is not None and (
            val["mIoU"] > run.best_miou or not run.out.best.is_file()
        )
        if improved:
            run.best_miou = val["mIoU"]
        if ctx.is_main:
            _save_epoch(run, cfg, row, improved, clock())
        if stopped_by_budget:
            break
    return {"last": last, "stopped_by_budget": stopped_by_budget}


def _check_grow_from(path, cfg: TrainConfig, name: str, overwrite: bool) -> None:
    check_parent(path, cfg, name)
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
) -> dict[str, Any]:
    """Train one model of recipe ``cfg`` into ``cfg.out``; returns ``best_miou``, the ``last`` metrics,
    ``history``, ``out`` and ``train_seconds`` (wall time of the whole run, across resumes).

    ``resume`` continues from ``cfg.out/last.pt`` exactly (weights, optimizer, schedule, scaler,
    RNG, history) and refuses recipe settings that differ from the recorded ones. ``parent`` (or
    ``cfg.init_from``) is a coarser model's checkpoint to grow from (FCN-32s -> 16s -> 8s).
    ``max_steps`` stops after that many optimisation steps in total, saving nothing for the
    unfinished epoch (simulates an interruption). ``cfg.max_minutes`` stops after the epoch in
    which the budget runs out (the poly schedule follows the budget). A non-finite loss or weight
    raises :class:`TrainingDiverged`; checkpoints already written stay intact and finite.
    """
    started = time.perf_counter()
    check_run(cfg)  # threads, workers and a batch's memory against this machine
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = setup_context(cfg.device, cfg.amp)
    grow_from = None if resume else (parent or cfg.init_from)
    if grow_from is not None:
        _check_grow_from(grow_from, cfg, model_name or cfg.model, overwrite)
    with OutputFolder(cfg.out, resume=resume, overwrite=overwrite, owner=ctx.is_main) as out:
        train_ds, val_ds = build_datasets(cfg, progress=progress and ctx.is_main)
        before = {"seconds": 0.0}

        def clock() -> float:
            return before["seconds"] + time.perf_counter() - started

        budget_used = (lambda: clock() / (cfg.max_minutes * 60)) if cfg.max_minutes else None
        check_scaled_size(_first_size(val_ds), cfg.eval_scale)  # before an epoch is spent
        run = build_run(cfg, ctx, train_ds, model_name or cfg.model, grow_from, out, budget_used)
        if resume:
            _check_resume_settings(cfg, load_checkpoint(out.last)["config"], out.last)
            _restore(run)
            before["seconds"] = run.seconds_before
        result = _run_epochs(
            run,
            cfg,
            ctx,
            train_ds,
            val_loader(val_ds, ctx, cfg.val_batch_size, cfg.workers),
            clock,
            budget_used,
            progress,
            max_steps,
        )
        if ctx.distributed:
            dist.barrier()
    if "interrupted_at_step" in result:
        return result
    return {
        "best_miou": run.best_miou,
        "history": run.history,
        "out": str(out.path),
        "train_seconds": clock(),
        **result,
    }


def train_stages(
    cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """The paper's staged training: each model in ``cfg.stages`` grows from the previous one's ``best.pt``.

    Stage ``k`` writes into ``cfg.out/<model name>``; the first stage starts from ``cfg.init_from``
    or from scratch / the backbone weights, and stage ``k`` trains at ``lr * stage_lr_scale**k``.
    Returns the results of each stage.
    """
    if not cfg.stages:
        return {cfg.model: train(cfg, resume=resume, overwrite=overwrite, progress=progress)}
    results: dict[str, Any] = {}
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
        done = Path(stage_cfg.out) / "last.pt"
        finished = load_checkpoint(done) if resume and done.is_file() else None
        if finished is not None and int(finished["epoch"]) >= stage_cfg.epochs:
            results[name] = {
                "skipped": "already complete",
                "history": finished["history"],
                "best_miou": finished["best_miou"],
                "out": stage_cfg.out,
                "train_seconds": finished.get("train_seconds"),
                "stopped_by_budget": False,
            }
        else:
            results[name] = train(
                stage_cfg, resume=resume and done.is_file(), overwrite=overwrite, progress=progress
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
