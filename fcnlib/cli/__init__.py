"""Command line: ``fcnlib {download,train,eval,predict,bench}`` (also ``python -m fcnlib``).

Expected failures (missing data, bad images, unreadable checkpoints, existing outputs, a
diverging loss) print one line, ``fcnlib: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import threading
from pathlib import Path

from ..cpu import use_passive_wait

use_passive_wait()  # OMP_WAIT_POLICY=PASSIVE before the imports below load torch (OpenMP reads it once)

from ..data.registry import DATASETS, downloadable
from ..errors import FcnlibError, one_line
from ..guards import guard_eval, guard_predict, guard_train, make_writable_folder, output_file
from ..limits import (
    check_environment,
    check_eval_memory,
    check_options,
    check_predict_memory,
    out_of_memory_message,
)
from ..provenance import run_info  # also importable as fcnlib.cli.run_info
from ..settings import EvalSettings, PredictSettings
from .export import add_parser as _add_export
from .flags import add_settings_arguments, settings_from_args, to_flags

DATASET_NAMES = tuple(DATASETS)  # the earlier name of the registry's keys

__all__ = ["main", "run_info"]


def _message(exc: BaseException) -> str:
    """One line for an OS error (names the file) or any other exception."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return one_line(exc) or type(exc).__name__


# ----------------------------------------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    from ..data import download

    download(args.name, args.root)
    print(f"{args.name} ready under {args.root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import config_from_args
    from ..engine import train_stages

    cfg = config_from_args(args)
    guard_train(cfg, args.config, args.resume)  # outputs replace no input; staged --resume
    results = train_stages(
        cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet
    )
    for name, res in results.items():
        budget = " (time budget reached)" if res.stopped_by_budget else ""
        skipped = f" ({res.skipped})" if res.skipped else ""
        print(
            f"{name}: best val mIoU {res.best_miou:.4f} after {len(res.history)} epochs, "
            f"{res.train_seconds / 60:.1f} min{budget}{skipped} -> {res.out}/best.pt"
        )
    return 0


def _eval_record(args, settings, trained, res, scale, flip: bool, ctx) -> dict:
    """The results file of ``fcnlib eval`` (the schema: :func:`fcnlib.evaluation.results_record`)."""
    from ..evaluation import results_record

    amp = str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off"
    return results_record(
        res,
        trained.classes,
        evaluation={"scale": scale, "flip": flip, "device": str(ctx.device), "amp": amp},
        data={"name": settings.data, "root": settings.data_root, "split": settings.split},
        model={
            "checkpoint": trained.source,
            "checkpoint_sha256": trained.sha256,
            "model": trained.record.get("model"),
            "trained_epochs": trained.record.get("trained_epochs"),
            "train_config": trained.record.get("train_config"),
            "train_seconds": trained.record.get("train_seconds"),
        },
        provenance=run_info(args.argv),
    )


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from ..context import setup_context
    from ..data import build_dataset
    from ..data.registry import dataset_info
    from ..evaluation import evaluate
    from ..fileio import atomic_write_text
    from ..loaders import val_loader
    from ..trained import load_trained

    s = settings_from_args(args, EvalSettings).validate()
    if args.boundary is not None and not all(1 <= w <= 1024 for w in args.boundary):
        raise FcnlibError(f"--boundary widths must be 1..1024 pixels, got {args.boundary}")
    check_options(dataclasses.asdict(s))  # upper bounds; workers by cores and memory
    guard_eval(args)  # --out is no file that eval reads
    out = Path(args.out) if args.out else None
    if out is not None:
        output_file(out, args.overwrite)
    trained = load_trained(args.checkpoint, args.weights)
    num_classes = trained.num_classes if dataset_info(s.data).classes_settable else None
    ds = build_dataset(s.data, s.data_root, s.split, train=False, num_classes=num_classes)
    if ds.num_classes != trained.num_classes:
        raise FcnlibError(
            f"{trained.source} has {trained.num_classes} classes but {s.data} has {ds.num_classes}"
        )
    ctx = setup_context(s.device, s.amp)
    model = trained.model.to(ctx.device)
    if s.limit:
        ds = torch.utils.data.Subset(ds, range(min(s.limit, len(ds))))
    scale = (s.scale[0] if len(s.scale) == 1 else list(s.scale)) if s.scale else trained.eval_scale
    flip = s.flip if s.flip is not None else trained.eval_flip
    check_eval_memory(ds, s.batch_size, scale, trained.model, ctx.device)  # before allocating
    res = evaluate(
        model,
        val_loader(ds, ctx, s.batch_size, s.workers),
        trained.num_classes,
        ctx,
        per_image=s.per_image,
        progress=not args.quiet,
        scale=scale,
        flip=flip,
        boundary=args.boundary or (),
    )
    if res.images == 0 or math.isnan(res.mIoU):
        raise FcnlibError(f"no labelled pixel in {s.data} {s.split}: nothing to evaluate")
    record = _eval_record(args, s, trained, res, scale, flip, ctx)
    if out is not None:  # written before anything is printed: a closed stdout cannot lose it
        atomic_write_text(json.dumps(record, indent=2) + "\n", out)
    print(
        f"{s.split}: pixAcc {res.pixAcc:.4f}  mIoU {res.mIoU:.4f}  "
        f"meanAcc {res.meanAcc:.4f}  fwIoU {res.fwIoU:.4f}  "
        f"({res.images} images, scale {scale}{', flipped' if flip else ''})"
    )
    for c, v in record["per_class_iou"].items():
        print(f"  {c:>14s}: {'  n/a' if v is None else f'{v:.4f}'}")
    if out is not None:
        print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..context import setup_context
    from ..data.classes import palette_for_classes
    from ..data.images import probe_image
    from ..outputs import plan_outputs, predict_file
    from ..settings import ConfigError
    from ..trained import load_trained

    checkpoint, images = (None, args.inputs) if args.weights else (args.inputs[0], args.inputs[1:])
    if not images:
        raise ConfigError(
            "no image given: fcnlib predict CHECKPOINT IMAGE... or --weights NAME IMAGE..."
        )
    card = {}
    if args.weights:
        from ..models import get_weights

        card = dict(get_weights(args.weights).meta.get("predict") or {})
    s = settings_from_args(args, PredictSettings).resolved(card)
    check_options(dataclasses.asdict(s))  # upper bounds
    ctx = setup_context(s.device, "off")
    guard_predict(images, checkpoint, args.out)  # files, a writable --out, the checkpoint kept
    names = plan_outputs(images, args.out, overwrite=args.overwrite)  # distinct, nothing replaced
    for image in images:  # missing, non-image or too large: refused before the model loads
        probe_image(image, s.max_image_pixels)
    trained = load_trained(checkpoint, args.weights)
    model = trained.model.to(ctx.device)
    palette = trained.palette or palette_for_classes(trained.classes)
    for image in images:  # before the first output: each image's step fits in memory
        check_predict_memory(
            probe_image(image, s.max_image_pixels), dataclasses.asdict(s), model, ctx.device
        )
    for image, name in zip(images, names):
        paths = predict_file(
            model,
            image,
            args.out,
            classes=trained.classes,
            palette=palette,
            overwrite=args.overwrite,
            name=name,
            device=ctx.device,
            **s.predict_kwargs(),
        )
        print(f"{image}: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import run_bench, run_recipe_bench
    from ..config import ConfigError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FcnlibError(f"{out} is a file; --out needs a folder")
    make_writable_folder(out)

    if args.config:
        if args.quick:
            raise ConfigError(
                "bench: --quick does not apply to --config (the recipe sets the sizes)"
            )
        run_recipe_bench(
            args.config,
            device=args.device,
            out_dir=args.out,
            steps=args.steps,
            data_batches=args.data_batches,
            argv=args.argv,
        )
        return 0
    for flag, value in (("--steps", args.steps), ("--data-batches", args.data_batches)):
        if value is not None:
            raise ConfigError(f"bench: {flag} applies only with --config")
    run_bench(device=args.device or "auto", quick=args.quick, out_dir=args.out, argv=args.argv)
    return 0


# ----------------------------------------------------------------------------------------------


def _add_download(sub) -> None:
    p = sub.add_parser(
        "download",
        help=f"fetch a data set into a folder: {', '.join(downloadable())}",
        description="Download a data set into --root, then pass that folder to train/eval as --data-root.",
    )
    p.add_argument(
        "name",
        choices=downloadable(),
        metavar="NAME",
        help="; ".join(f"{name}: {DATASETS[name].download}" for name in downloadable()),
    )
    p.add_argument("--root", required=True, help="folder to download into (created if missing)")
    p.set_defaults(func=cmd_download)


def _add_train(sub) -> None:
    from ..config import add_config_arguments

    p = sub.add_parser(
        "train",
        help="train a model from a recipe (default: a one-minute CPU run on synthetic shapes)",
    )
    add_config_arguments(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/last.pt exactly: its recorded recipe (settings that differ are refused, except "
        "execution ones such as --workers); to train longer, start a new run with --init-from",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty output folder"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint or shipped weights on a dataset split; optionally save JSON",
    )
    p.add_argument(
        "checkpoint", nargs="?", default=None, help="best.pt or last.pt written by `fcnlib train`"
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="NAME",
        help="shipped weights instead of a checkpoint, e.g. camvid-cpu",
    )
    add_settings_arguments(p, EvalSettings, "eval")
    p.add_argument(
        "--boundary",
        type=int,
        nargs="+",
        default=None,
        metavar="W",
        help="also pixAcc and mIoU within W pixels of a ground-truth label boundary, e.g. 2 4 8",
    )
    p.add_argument("--out", default=None, help="results JSON path (default: print only)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="segment photos of any size; writes label-map PNGs and overlays with a legend",
        description="For each image, writes into --out <name>_mask.png, the label map (a palette PNG of the "
        "image's size whose pixel values are the class indices), and <name>_overlay.png (the image, "
        "the coloured prediction and a legend of the classes present, side by side). <name> is the "
        "image's file stem; a later image whose stem is already used gets <stem>-2, <stem>-3, ...",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="[CHECKPOINT] IMAGE",
        help="best.pt or last.pt written by `fcnlib train` (omitted with --weights), then image files "
        "(JPEG, PNG, TIFF, ...; EXIF orientation, 16-bit, alpha)",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="NAME",
        help="shipped weights instead of a checkpoint, e.g. camvid-cpu; --mode, --train-size, "
        "--scale and --flip then default to its card's settings",
    )
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    add_settings_arguments(p, PredictSettings, "predict")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_predict)


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks against the seed notes' code, or where a recipe's epoch time goes"
    )
    p.add_argument(
        "--device",
        default=None,
        help="cpu | cuda | auto (default: auto; with --config, the recipe's)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and a width-reduced model (about a minute on CPU)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="RECIPE",
        help="recipe YAML: time its data pipeline, training step, one epoch and one validation pass",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="with --config: timed training steps (default 10)"
    )
    p.add_argument(
        "--data-batches",
        type=int,
        default=None,
        help="with --config: batches of the data-pipeline pass (default: one epoch's)",
    )
    p.add_argument("--out", default="bench/results", help="folder for the JSON results")
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``fcnlib`` parser with its five sub-commands."""
    parser = argparse.ArgumentParser(
        prog="fcnlib",
        description="Fully Convolutional Networks for semantic segmentation: data, training, evaluation, prediction.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{download,train,eval,predict,bench,check-data}"
    )
    _add_download(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_predict(sub)
    _add_bench(sub)
    from .check_data import add_parser as add_check_data  # fcnlib check-data (issue 22)

    add_check_data(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``fcnlib`` command; returns the exit status (0 ok, 2 a user error, 130 interrupted by
    Ctrl-C or SIGTERM)."""
    use_passive_wait()  # OMP_WAIT_POLICY=PASSIVE before a command first imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        check_environment()  # thread counts from the environment, before any thread pool starts
        return args.func(args)
    except (FcnlibError, OSError) as exc:
        print(f"fcnlib: error: {to_flags(_message(exc))}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # memory errors that the estimates did not foresee
        if out_of_memory_message(exc) is None:
            raise
        print(f"fcnlib: error: {out_of_memory_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"fcnlib: interrupted; {_INTERRUPTED.get(args.command, 'nothing half-written was left')}",
            file=sys.stderr,
        )
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


#: What an interrupted command leaves behind (every file fcnlib writes is written atomically).
_INTERRUPTED = {
    "train": "checkpoints already written are intact (continue with --resume)",
    "predict": "the outputs already listed are complete; run again with --overwrite to redo them all",
    "eval": "no result was written",
    "bench": "results already written are complete",
    "download": "run the same command again to finish the download",
}


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (kill, a scheduler): clean up as after Ctrl-C


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
