"""``fcnlib export``: shipped weights or a checkpoint -> one ONNX file (:mod:`fcnlib.export`)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    """Add the ``export`` sub-command to ``sub`` (the sub-parsers of ``fcnlib``)."""
    p = sub.add_parser(
        "export",
        help="write a model and its whole prediction path as ONNX (photo in, labels out)",
        description="Export shipped weights (--weights NAME) or an fcnlib checkpoint "
        "(--weights PATH) to ONNX with dynamic height and width: uint8 photo in, labels out, "
        "the card's predict settings (train size, scales, flip) inside the graph and its "
        "classes, palette and terms in the file's metadata.",
    )
    p.add_argument(
        "--weights", required=True, metavar="NAME|CHECKPOINT", help="camvid-cpu, or a .pt path"
    )
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; prints the path written and the settings inside it."""
    from ..export import export_onnx, read_metadata

    out = export_onnx(args.weights, args.out, overwrite=args.overwrite)
    p = read_metadata(out)["predict"]
    scales = " ".join(str(s) for s in p["scales"])
    print(f"wrote {out} (train size {p['train_size']}, scales {scales}, flip {p['flip']})")
    return 0
