"""Command line: ``fcnlib {download,train,eval,predict,bench}`` (also ``python -m fcnlib``).

Expected failures (missing data, bad images, unreadable checkpoints, existing outputs, a
diverging loss) print one line, ``fcnlib: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "run_info"]


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .data import DatasetError
    from .engine import TrainingDiverged
    from .predict import ImageError

    return (DatasetError, CheckpointError, ConfigError, ImageError, TrainingDiverged, FileExistsError, FileNotFoundError)


def run_info(argv: list[str] | None = None) -> dict[str, Any]:
    """Provenance of a result: command line (``argv``, default ``sys.argv[1:]``), git commit, machine, versions."""
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "command": " ".join(["fcnlib", *(sys.argv[1:] if argv is None else argv)]),
        "commit": commit,
        "dirty": dirty,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpu": gpu,
        },
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line; for an error re-raised from a DataLoader worker, the original one."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    if lines[0].startswith("Caught ") and "DataLoader worker" in lines[0]:
        last = lines[-1]  # "fcnlib.data.DatasetError: <message>"
        return last.split(": ", 1)[1] if ": " in last else last
    return lines[0]


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite to replace it)")


# ----------------------------------------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    from .data import download

    download(args.name, args.root)
    print(f"{args.name} ready under {args.root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import config_from_args
    from .engine import train_stages

    cfg = config_from_args(args)
    results = train_stages(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    for name, res in results.items():
        if "best_miou" in res:
            print(f"{name}: best val mIoU {res['best_miou']:.4f} -> {res['out']}/best.pt")
        else:
            print(f"{name}: {res}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import CheckpointError, atomic_write_text, file_sha256
    from .data import build_dataset
    from .engine import evaluate, model_from_checkpoint, setup_context, val_loader

    from .config import ConfigError

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.scale is not None and not all(0 < v < float("inf") for v in args.scale):
        raise ConfigError(f"--scale must be positive numbers, got {' '.join(map(str, args.scale))}")
    out = Path(args.out) if args.out else None
    if out is not None:
        _refuse_existing(out, args.overwrite)
    model, ckpt = model_from_checkpoint(args.checkpoint)
    num_classes = int(ckpt["num_classes"]) if args.data == "folder" else None
    ds = build_dataset(args.data, args.data_root, args.split, train=False, num_classes=num_classes)
    if ds.num_classes != ckpt["num_classes"]:
        raise CheckpointError(f"checkpoint {args.checkpoint} has {ckpt['num_classes']} classes but {args.data} has {ds.num_classes}")
    ctx = setup_context(args.device, args.amp)
    model = model.to(ctx.device)
    if args.limit:
        ds = torch.utils.data.Subset(ds, range(min(args.limit, len(ds))))
    loader = val_loader(ds, ctx, args.batch_size, args.workers)
    saved = ckpt.get("config") or {}
    if args.scale:
        scale = args.scale[0] if len(args.scale) == 1 else list(args.scale)
    else:
        scale = float(saved.get("eval_scale", 1.0))
    flip = args.flip if args.flip is not None else bool(saved.get("eval_flip", False))
    res = evaluate(model, loader, ckpt["num_classes"], ctx, per_image=args.per_image, progress=not args.quiet,
                   scale=scale, flip=flip)
    classes = list(ckpt.get("classes") or range(ckpt["num_classes"]))
    record = {
        **run_info(args.argv),
        "checkpoint": str(args.checkpoint),
        "checkpoint_sha256": file_sha256(args.checkpoint),
        "model": ckpt.get("model_name"),
        "trained_epochs": ckpt.get("epoch"),
        "train_config": ckpt.get("config"),
        "train_seconds": ckpt.get("train_seconds"),
        "evaluation": {"scale": scale, "flip": flip, "amp": str(ctx.amp_dtype).replace("torch.", "") if ctx.amp_dtype else "off",
                       "device": str(ctx.device)},
        "data": {"name": args.data, "root": args.data_root, "split": args.split, "images": len(ds)},
        "protocol": "dataset-level confusion matrix (classes absent from ground truth and prediction excluded)",
        "metrics": {k: (None if res[k] != res[k] else res[k]) for k in ("pixAcc", "meanAcc", "mIoU", "fwIoU", "loss")},
        "per_class_iou": {str(c): (None if v != v else v) for c, v in zip(classes, res["IoU"].tolist())},
        "confusion": res["confusion"].tolist(),
    }
    if args.per_image:
        record["metrics_per_image"] = {"pixAcc": res["pixAcc_per_image"], "mIoU": res["mIoU_per_image"]}
    print(f"{args.split}: pixAcc {res['pixAcc']:.4f}  mIoU {res['mIoU']:.4f}  meanAcc {res['meanAcc']:.4f}  "
          f"fwIoU {res['fwIoU']:.4f}  ({len(ds)} images)")
    for c, v in record["per_class_iou"].items():
        print(f"  {c:>14s}: {'  n/a' if v is None else f'{v:.4f}'}")
    if out is not None:
        atomic_write_text(json.dumps(record, indent=2) + "\n", out)
        print(f"wrote {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .engine import model_from_checkpoint, setup_context
    from .predict import predict_file

    model, ckpt = model_from_checkpoint(args.checkpoint)
    ctx = setup_context(args.device, "off")
    model = model.to(ctx.device)
    classes = list(ckpt.get("classes") or [str(i) for i in range(ckpt["num_classes"])])
    out_dir = Path(args.out)
    for image in args.images:
        paths = predict_file(
            model, image, out_dir, classes=classes, overwrite=args.overwrite, mode=args.mode,
            train_size=args.train_size, tile=args.tile, overlap=args.overlap, scales=tuple(args.scales), flip=args.flip,
            device=ctx.device,
        )
        print(f"{image}: " + ", ".join(str(p) for p in paths))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    run_bench(device=args.device, quick=args.quick, out_dir=args.out)
    return 0


# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from .config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="fcnlib", description="Fully Convolutional Networks for semantic segmentation: data, training, evaluation, prediction."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,train,eval,predict,bench}")

    p = sub.add_parser("download", help="fetch PASCAL VOC 2012 or SBD with torchvision's checksummed downloads")
    p.add_argument("name", choices=["voc", "sbd", "camvid"])
    p.add_argument("--root", required=True, help="folder to download into")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("train", help="train a model from a recipe (default: a one-minute CPU run on synthetic shapes)")
    add_config_arguments(p)
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/last.pt")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset split; optionally save the results as JSON")
    p.add_argument("checkpoint", help="best.pt or last.pt written by `fcnlib train`")
    p.add_argument("--data", default="shapes", help="voc | sbd | trainaug | camvid | folder | shapes")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default="val")
    p.add_argument("--per-image", action="store_true", help="also report the seed notes' per-image means")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--scale", type=float, nargs="+", default=None, metavar="S",
                   help="input scale(s) for the model; logits upsampled to full size and averaged over scales "
                        "(default: the recipe's eval_scale)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average the mirrored image's logits (default: the recipe's eval_flip)")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--out", default=None, help="results JSON path")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="segment photos of any size; writes palette PNGs and overlay figures")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", default="predictions", help="output folder")
    p.add_argument("--mode", default="auto", choices=["auto", "whole", "scaled", "tiled"])
    p.add_argument("--train-size", type=int, default=512, help="longer side used by --mode scaled (the training scale)")
    p.add_argument("--tile", type=int, default=512, help="window size of --mode tiled, px")
    p.add_argument("--overlap", type=int, default=None, help="overlap of neighbouring tiles, px (default: tile/4)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="multi-scale factors, e.g. 0.75 1 1.25")
    p.add_argument("--flip", action="store_true", help="also average the horizontally flipped prediction")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="benchmarks against the seed notes' training and metric code")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--quick", action="store_true", help="small sizes and a width-reduced model (about a minute on CPU)")
    p.add_argument("--out", default="bench/results", help="folder for the JSON results")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    errors = _expected_errors()
    try:
        return args.func(args)
    except errors as exc:
        print(f"fcnlib: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fcnlib: interrupted; checkpoints already written are intact (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
