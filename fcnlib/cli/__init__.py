"""Command line: ``fcnlib {download,train,eval,predict,bench}`` (also ``python -m fcnlib``).

Expected failures (missing data, bad images, unreadable checkpoints, existing outputs, a
diverging loss) print one line, ``fcnlib: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

from ..errors import FcnlibError, one_line
from ..fileio import write_target
from ..provenance import run_info  # also importable as fcnlib.cli.run_info
from .export import add_parser as _add_export

DATASET_NAMES = ("voc", "sbd", "trainaug", "camvid", "folder", "shapes")

__all__ = ["main", "run_info"]


def _message(exc: BaseException) -> str:
    """One line for an OS error (names the file) or any other exception."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return one_line(exc) or type(exc).__name__


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """Refuse to replace ``path`` without --overwrite; check that its folder can be written to."""
    if path.is_dir():
        raise FcnlibError(f"{path} is a folder; --out needs a file path")
    write_target(path)  # a device, pipe or socket is refused; a link's target is what is replaced
    if path.exists() and not overwrite:
        raise FcnlibError(f"{path} exists (use --overwrite to replace it)")
    _writable_folder(path.parent, "--out")


def _writable_folder(path: Path, option: str) -> None:
    """Create ``path`` if needed and check that files can be written into it, before any work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FcnlibError(f"cannot create {path} for {option}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise FcnlibError(f"cannot write into {path} ({option}): permission denied")


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
    results = train_stages(
        cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet
    )
    for name, res in results.items():
        if "best_miou" in res:
            budget = " (time budget reached)" if res.get("stopped_by_budget") else ""
            print(
                f"{name}: best val mIoU {res['best_miou']:.4f} after {len(res['history'])} epochs, "
                f"{res['train_seconds'] / 60:.1f} min{budget} -> {res['out']}/best.pt"
            )
        else:
            print(f"{name}: {', '.join(f'{k} {v}' for k, v in res.items())}")
    return 0


def _eval_settings(args: argparse.Namespace) -> None:
    from ..config import ConfigError

    for name in ("limit", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    if args.scale is not None and not all(0 < v < float("inf") for v in args.scale):
        raise ConfigError(f"--scale must be positive numbers, got {' '.join(map(str, args.scale))}")


def _eval_record(args, trained, res, scale: float, flip: bool, ctx) -> dict:
    def number(v: float) -> float | None:
        return (
            None if math.isnan(v) else v
        )  # NaN (a class absent from labels and predictions) -> null

    return {
        **run_info(args.argv),
        "checkpoint": trained.source,
        "checkpoint_sha256": trained.sha256,
        "model": trained.record.get("model"),
        "trained_epochs": trained.record.get("trained_epochs"),
        "train_config": trained.record.get("train_config"),
        "train_seconds": trained.record.get("train_seconds"),
        "evaluation": {
            "scale": scale,
            "flip": flip,
            "device": str(ctx.device),
            "amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
        },
        "data": {
            "name": args.data,
            "root": args.data_root,
            "split": args.split,
            "images": res["images"],
        },
        "protocol": "dataset-level confusion matrix (classes absent from ground truth and prediction excluded)",
        "metrics": {k: number(res[k]) for k in ("pixAcc", "meanAcc", "mIoU", "fwIoU", "loss")},
        "per_class_iou": {c: number(v) for c, v in zip(trained.classes, res["IoU"].tolist())},
        "confusion": res["confusion"].tolist(),
    }


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from ..data import build_dataset
    from ..engine import evaluate, setup_context, val_loader
    from ..fileio import atomic_write_text
    from ..trained import load_trained

    _eval_settings(args)
    out = Path(args.out) if args.out else None
    if out is not None:
        _refuse_existing(out, args.overwrite)
    trained = load_trained(args.checkpoint, args.weights)
    num_classes = trained.num_classes if args.data in ("folder", "shapes") else None
    ds = build_dataset(args.data, args.data_root, args.split, train=False, num_classes=num_classes)
    if ds.num_classes != trained.num_classes:
        raise FcnlibError(
            f"{trained.source} has {trained.num_classes} classes but {args.data} has {ds.num_classes}"
        )
    ctx = setup_context(args.device, args.amp)
    model = trained.model.to(ctx.device)
    if args.limit:
        ds = torch.utils.data.Subset(ds, range(min(args.limit, len(ds))))
    scale = (
        (args.scale[0] if len(args.scale) == 1 else list(args.scale))
        if args.scale
        else trained.eval_scale
    )
    flip = args.flip if args.flip is not None else trained.eval_flip
    res = evaluate(
        model,
        val_loader(ds, ctx, args.batch_size, args.workers),
        trained.num_classes,
        ctx,
        per_image=args.per_image,
        progress=not args.quiet,
        scale=scale,
        flip=flip,
    )
    if res["images"] == 0 or res["mIoU"] != res["mIoU"]:
        raise FcnlibError(f"no labelled pixel in {args.data} {args.split}: nothing to evaluate")
    record = _eval_record(args, trained, res, scale, flip, ctx)
    if args.per_image:
        record["metrics_per_image"] = {
            "pixAcc": res["pixAcc_per_image"],
            "mIoU": res["mIoU_per_image"],
        }
    if out is not None:  # written before anything is printed: a closed stdout cannot lose it
        atomic_write_text(json.dumps(record, indent=2) + "\n", out)
    print(
        f"{args.split}: pixAcc {res['pixAcc']:.4f}  mIoU {res['mIoU']:.4f}  meanAcc {res['meanAcc']:.4f}  "
        f"fwIoU {res['fwIoU']:.4f}  ({res['images']} images, scale {scale}{', flipped' if flip else ''})"
    )
    for c, v in record["per_class_iou"].items():
        print(f"  {c:>14s}: {'  n/a' if v is None else f'{v:.4f}'}")
    if out is not None:
        print(f"wrote {out}")
    return 0


def _predict_settings(args: argparse.Namespace, card: dict) -> None:
    """Fill the options not given from the weights' card (``card``) or the defaults."""
    defaults = {"mode": "auto", "train_size": 512, "scales": [1.0], "flip": False, **card}
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def cmd_predict(args: argparse.Namespace) -> int:
    import math

    from ..config import ConfigError
    from ..data.classes import palette_for_classes
    from ..data.images import probe_image
    from ..engine import setup_context
    from ..outputs import plan_outputs, predict_file
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
    _predict_settings(args, card)
    overlap = args.tile // 4 if args.overlap is None else args.overlap
    scales = " ".join(str(s) for s in args.scales)
    for ok, message in (
        (args.train_size >= 1, f"--train-size must be >= 1, got {args.train_size}"),
        (args.tile >= 1, f"--tile must be >= 1, got {args.tile}"),
        (
            0 <= overlap < args.tile,
            f"--overlap must lie in 0..{args.tile - 1} (below --tile {args.tile}), got {overlap}",
        ),
        (
            all(0 < s < math.inf for s in args.scales),
            f"--scales must be positive finite numbers, got {scales}",
        ),
        (
            args.max_image_pixels >= 1,
            f"--max-image-pixels must be >= 1, got {args.max_image_pixels}",
        ),
    ):
        if not ok:
            raise ConfigError(message)
    ctx = setup_context(args.device, "off")
    names = plan_outputs(images, args.out, overwrite=args.overwrite)  # distinct, nothing replaced
    for image in images:  # missing, non-image or too large: refused before the model loads
        probe_image(image, args.max_image_pixels)
    trained = load_trained(checkpoint, args.weights)
    model = trained.model.to(ctx.device)
    palette = trained.palette or palette_for_classes(trained.classes)
    for image, name in zip(images, names):
        paths = predict_file(
            model,
            image,
            args.out,
            classes=trained.classes,
            palette=palette,
            overwrite=args.overwrite,
            name=name,
            max_image_pixels=args.max_image_pixels,
            mode=args.mode,
            train_size=args.train_size,
            tile=args.tile,
            overlap=overlap,
            scales=tuple(args.scales),
            flip=args.flip,
            device=ctx.device,
        )
        print(f"{image}: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import run_bench, run_recipe_bench
    from ..config import ConfigError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FcnlibError(f"{out} is a file; --out needs a folder")
    _writable_folder(out, "--out")

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
        help="fetch a data set into a folder: voc, sbd or camvid",
        description="Download a data set into --root, then pass that folder to train/eval as --data-root.",
    )
    p.add_argument(
        "name",
        choices=["voc", "sbd", "camvid"],
        metavar="NAME",
        help="voc: PASCAL VOC 2012 trainval with segmentation masks (about 2 GB, checksummed); "
        "sbd: Semantic Boundaries Dataset, 11,355 more VOC images with masks (about 1.4 GB, checksummed; needs scipy); "
        "camvid: CamVid, 11 classes, 701 frames of 480x360, from the SegNet tutorial's repository "
        "(367/101/233 train/val/test pairs, checked after the download; research and personal use only)",
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
    p.add_argument(
        "--data", default="shapes", choices=DATASET_NAMES, help="data set (default: shapes)"
    )
    p.add_argument("--data-root", default=None, help="data set folder (not needed for shapes)")
    p.add_argument(
        "--split", default="val", help="split to evaluate, e.g. val or test (default: val)"
    )
    p.add_argument(
        "--per-image", action="store_true", help="also report the seed notes' per-image means"
    )
    p.add_argument("--batch-size", type=int, default=1, help="images per batch, >= 1 (default: 1)")
    p.add_argument(
        "--workers", type=int, default=0, help="DataLoader worker processes, >= 0 (default: 0)"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="evaluate only the first N images, N >= 1 (default: all)",
    )
    p.add_argument(
        "--scale",
        type=float,
        nargs="+",
        default=None,
        metavar="S",
        help="input scale(s) for the model, logits upsampled to full size and averaged over scales "
        "(default: the recipe's eval_scale or the card's scales)",
    )
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the mirrored image's logits (default: the recipe's or card's eval_flip)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "off"],
        help="mixed precision: auto = bf16/fp16 on a GPU, off on the CPU (default: auto)",
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
        "--scales and --flip then default to its card's settings",
    )
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument(
        "--mode",
        default=None,
        choices=["auto", "whole", "scaled", "tiled"],
        help="auto = whole up to 1 MP, else scaled (default: auto, or the card's)",
    )
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="longer side used by --mode scaled, px, >= 1: the training scale (default: 512, VOC's "
        "image size, or the card's)",
    )
    p.add_argument(
        "--tile", type=int, default=512, help="window size of --mode tiled, px, >= 1 (default: 512)"
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="overlap of neighbouring tiles, px, 0 <= overlap < tile (default: tile/4)",
    )
    p.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=None,
        help="multi-scale factors, positive, e.g. 0.75 1 1.25; logits averaged (default: 1, or the card's)",
    )
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also average the horizontally flipped prediction (default: no, or the card's)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=100_000_000,
        metavar="N",
        help="refuse images of more than N pixels, judged from the file header before decoding "
        "(default: 100000000, about 100 MP; predicting takes about 50 bytes per pixel)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
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
        dest="command", required=True, metavar="{download,train,eval,predict,bench}"
    )
    _add_download(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_predict(sub)
    _add_bench(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``fcnlib`` command; returns the exit status (0 ok, 2 a user error, 130 interrupted by
    Ctrl-C or SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (FcnlibError, OSError) as exc:
        print(f"fcnlib: error: {_message(exc)}", file=sys.stderr)
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
