"""``fcnlib bench --config <recipe>``: where one training epoch's time goes for a recipe.

The datasets, model, optimizer, loss and loaders are built as :func:`fcnlib.engine.train`
builds them, on the recipe's device, precision (``amp``) and intra-op threads, except that the
weights are a random initialisation (``weights_backbone`` and ``init_from`` are not loaded: the
cost of a step does not depend on the values). Measured in this order:

1. ``data``: one pass over the training DataLoader alone (the recipe's ``workers``): samples/s,
   samples/s per loading process (the workers, or the main process when ``workers`` is 0) and the
   time to the first batch.
2. ``step``: :func:`fcnlib.engine.train_step` alone on batches fetched beforehand (as the loader
   yields them; ``train_step`` copies them to the device): median over ``steps`` steps after
   ``warmup`` untimed ones, each between two device synchronisations.
3. ``epoch``: one epoch through the real loader, :func:`fcnlib.engine.train_one_epoch` (wall s,
   loader start-up included).
4. ``validation``: one :func:`fcnlib.evaluation.evaluate` pass with the recipe's ``eval_scale`` and
   ``eval_flip`` (wall s).
5. ``breakdown``: ``data_wait_s = epoch - steps x step``; ``data_wait_share`` is that over the
   epoch, clipped to [0, 1]; ``epoch_ratio = (epoch + validation) / (steps x step + validation)``
   (1 when the epoch costs only its steps and its validation).

Results: ``<out>/recipe-<recipe name>-<device>-<timestamp>.{json,md}`` and copies as
``latest-recipe-<recipe name>-<device>.{json,md}``.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..config import ConfigError, TrainConfig, load_config
from ..context import Context
from ..engine import build_run, train_one_epoch, train_step
from ..evaluation import evaluate
from ..loaders import build_datasets, epoch_seed, train_loader, val_loader
from ..outdir import OutputFolder
from ..provenance import run_info
from .machine import device_info, load_average
from .report import recipe_to_markdown, write_files
from .run import UNITS, bench_context
from .timing import sync, time_calls

__all__ = ["RECIPE_SCHEMA", "breakdown", "run_recipe_bench"]

RECIPE_SCHEMA = "fcnlib-bench-recipe/1"


def _epoch_seed(cfg: TrainConfig, epoch: int) -> None:
    torch.manual_seed(epoch_seed(cfg.seed, epoch))  # as train(): augmentation per (seed, epoch)


def _data_pass(
    train_ds: Dataset, cfg: TrainConfig, ctx: Context, max_batches: int | None
) -> dict[str, Any]:
    """Iterate the epoch-0 training loader alone (no model), up to ``max_batches`` batches."""
    _epoch_seed(cfg, 0)
    loader = train_loader(train_ds, cfg, ctx, 0)
    batches = samples = 0
    first_s = None
    t0 = time.perf_counter()
    for images, _masks in loader:
        if first_s is None:
            first_s = time.perf_counter() - t0
        batches, samples = batches + 1, samples + images.shape[0]
        if max_batches is not None and batches >= max_batches:
            break
    wall = time.perf_counter() - t0
    rate = samples / wall
    return {
        "workers": cfg.workers,
        "batches": batches,
        "batches_per_epoch": len(loader),
        "samples": samples,
        "wall_s": wall,
        "first_batch_s": first_s,
        "samples_per_s": rate,
        "samples_per_s_per_worker": rate / max(1, cfg.workers),
    }


def _prefetch(train_ds: Dataset, cfg: TrainConfig, ctx: Context, n: int) -> list[tuple[Any, Any]]:
    """The first ``n`` batches of the epoch-1 training loader (fewer if the epoch is shorter)."""
    _epoch_seed(cfg, 1)
    batches = []
    for batch in train_loader(train_ds, cfg, ctx, 1):
        batches.append(batch)
        if len(batches) >= n:
            break
    return batches


def _step_pass(
    run: Any, train_ds: Dataset, cfg: TrainConfig, ctx: Context, steps: int, warmup: int
) -> dict[str, Any]:
    """``train_step`` alone, cycling over pre-fetched batches: the median of ``steps`` timed steps."""
    batches = _prefetch(train_ds, cfg, ctx, steps + warmup)
    run.train_model.train()
    losses = []

    def step(i: int) -> None:
        images, masks = batches[i % len(batches)]
        losses.append(
            train_step(
                run.train_model,
                images,
                masks,
                run.criterion,
                run.optimizer,
                run.scaler,
                ctx,
                cfg.channels_last,
            )
        )

    times = time_calls(step, ctx.device, steps, warmup)
    median = statistics.median(times)
    return {
        "steps": steps,
        "warmup": warmup,
        "distinct_batches": len(batches),
        "batch_size": int(batches[0][0].shape[0]),
        "median_s": median,
        "median_ms": median * 1e3,
        "min_ms": min(times) * 1e3,
        "steps_ms": [t * 1e3 for t in times],
        "losses_finite": bool(torch.isfinite(torch.stack(losses)).all()),
    }


def _epoch_pass(run: Any, train_ds: Dataset, cfg: TrainConfig, ctx: Context) -> dict[str, Any]:
    """One epoch (epoch 0) through the real training loader, as ``train()`` runs it."""
    _epoch_seed(cfg, 0)
    t0 = time.perf_counter()
    loader = train_loader(train_ds, cfg, ctx, 0)
    loss = train_one_epoch(run, loader, cfg, ctx, 0, progress=False)
    sync(ctx.device)
    wall = time.perf_counter() - t0
    steps = len(loader)
    return {
        "wall_s": wall,
        "steps": steps,
        "samples": min(len(train_ds), steps * cfg.batch_size),
        "train_loss": loss,
    }


def _validation_pass(run: Any, val_ds: Dataset, cfg: TrainConfig, ctx: Context) -> dict[str, Any]:
    """One validation pass, as ``train()`` runs it (``run.model``, the recipe's scale and flip)."""
    loader = val_loader(val_ds, ctx, cfg.val_batch_size, cfg.workers)
    t0 = time.perf_counter()
    evaluate(
        run.model,
        loader,
        run.num_classes,
        ctx,
        per_image=cfg.per_image,
        progress=False,
        scale=cfg.eval_scale,
        flip=cfg.eval_flip,
    )
    sync(ctx.device)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "images": len(val_ds),
        "batches": len(loader),
        "images_per_s": len(val_ds) / wall,
        "scale": cfg.eval_scale,
        "flip": cfg.eval_flip,
    }


def breakdown(epoch_s: float, steps: int, step_s: float, validation_s: float) -> dict[str, Any]:
    """The data-wait share of an epoch and ``epoch_ratio`` (see the module docstring)."""
    compute_s = steps * step_s
    wait_s = epoch_s - compute_s
    return {
        "steps_x_step_s": compute_s,
        "data_wait_s": wait_s,
        "data_wait_share": min(1.0, max(0.0, wait_s / epoch_s)) if epoch_s > 0 else 0.0,
        "epoch_ratio": (epoch_s + validation_s) / (compute_s + validation_s),
    }


def _recipe(config: str | os.PathLike, device: str | None) -> TrainConfig:
    cfg = load_config(config)
    if device is not None:
        cfg.device = device
    cfg.weights_backbone, cfg.init_from = None, None  # random weights: same cost, no download
    cfg.validate()
    return cfg


def _measure(
    cfg: TrainConfig, steps: int, warmup: int, data_batches: int | None, out_dir: Path
) -> dict[str, Any]:
    """Build the recipe's run and time the data pass, the step, one epoch and one validation pass.

    Nothing is saved: the run's output folder (``out_dir``/``.no-checkpoints``, never created) only
    names "no checkpoint" in the message of a diverging loss.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ctx = bench_context(cfg.device, cfg.amp)
    t0 = time.perf_counter()
    train_ds, val_ds = build_datasets(cfg, progress=False)
    folder = OutputFolder(out_dir / ".no-checkpoints", owner=False)
    run = build_run(cfg, ctx, train_ds, out=folder)
    setup_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "device": device_info(ctx.device),
        "setup_s": setup_s,
        "context": {
            "device": str(ctx.device),
            "amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
            "threads": torch.get_num_threads(),
            "workers": cfg.workers,
            "channels_last": cfg.channels_last,
            "compile": cfg.compile,
        },
        "model": {
            "name": cfg.model,
            "parameters": sum(p.numel() for p in run.model.parameters()),
            "weights": "random initialisation",
        },
    }
    out["data"] = _data_pass(train_ds, cfg, ctx, data_batches)
    out["step"] = _step_pass(run, train_ds, cfg, ctx, steps, warmup)
    out["epoch"] = _epoch_pass(run, train_ds, cfg, ctx)
    out["validation"] = _validation_pass(run, val_ds, cfg, ctx)
    out["breakdown"] = breakdown(
        out["epoch"]["wall_s"],
        out["epoch"]["steps"],
        out["step"]["median_s"],
        out["validation"]["wall_s"],
    )
    return out


def run_recipe_bench(
    config: str | os.PathLike,
    *,
    device: str | None = None,
    out_dir: str | os.PathLike = "bench/results",
    steps: int | None = None,
    warmup: int = 3,
    data_batches: int | None = None,
    echo: bool = True,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Measure where one epoch's time goes for recipe ``config``; save, print and return the result.

    ``device`` overrides the recipe's. ``steps`` (default 10): timed training steps, after
    ``warmup`` untimed ones. ``data_batches``: batches of the data-pipeline pass (default: one
    epoch's). ``argv``: the command line recorded as provenance (default ``sys.argv[1:]``). The
    intra-op thread count is restored afterwards.
    """
    steps = 10 if steps is None else steps
    if steps < 1 or warmup < 0 or (data_batches is not None and data_batches < 1):
        raise ConfigError("bench: --steps and --data-batches must be >= 1 (and warmup >= 0)")
    cfg = _recipe(config, device)
    name = Path(config).stem
    result: dict[str, Any] = {
        "schema": RECIPE_SCHEMA,
        "recipe": str(config),
        "recipe_name": name,
        "run": run_info(argv),
        "torch": torch.__version__,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_start": load_average(),
    }
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        result.update(_measure(cfg, steps, warmup, data_batches, Path(out_dir)))
    finally:
        torch.set_num_threads(threads)
    result.update(
        load_average_end=load_average(),
        wall_s=time.perf_counter() - t0,
        config=cfg.to_dict(),
        units=UNITS,
    )
    out, kind = Path(out_dir), result["device"]["type"]
    stem = f"recipe-{name}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    files = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md"}
    latest = {k: out / f"latest-recipe-{name}-{kind}{p.suffix}" for k, p in files.items()}
    result["files"] = {k: v.name for k, v in files.items()}
    markdown = recipe_to_markdown(result)
    result["paths"] = write_files(result, markdown, files, latest)
    if echo:
        print(markdown)
        print(f"wrote {result['paths']['json']} (and {latest['json'].name}, .md)")
    return result
