"""Export a trained checkpoint as shipped weights with a card: fcnlib/pretrained/<name>.{pt,json}.

    python tools/export_weights.py CHECKPOINT --name camvid-cpu --results results/x.json \
        [--subset-results results/x-first20.json] [--train-commit SHA] [--terms TEXT]

The weights file is the model's state dict only (no optimizer state), saved with torch.save;
the card gathers the defaults of ``fcnlib predict --weights NAME``, the architecture, classes, palette, normalisation, evaluation settings and
metrics (from the ``fcnlib eval`` JSON given by --results), the recipe, command, commit, machine
and training wall time, the number of parameters, the file's SHA-256 and the data's terms.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import torch

from fcnlib.checkpoint import load_checkpoint
from fcnlib.constants import IMAGENET_MEAN, IMAGENET_STD
from fcnlib.data.classes import palette_for_classes
from fcnlib.fileio import atomic_write_bytes, atomic_write_text
from fcnlib.models import PRETRAINED_DIR


def build_card(ckpt: dict, state_bytes: bytes, results: dict, subset: dict | None, args) -> dict:
    cfg = ckpt["config"]
    n_params = sum(v.numel() for k, v in ckpt["model"].items() if not k.endswith(("running_mean", "running_var",
                                                                                   "num_batches_tracked")))
    card = {
        "name": args.name,
        "file": f"{args.name}.pt",
        "sha256": hashlib.sha256(state_bytes).hexdigest(),
        "architecture": {"model": ckpt["model_name"], "num_classes": int(ckpt["num_classes"]), "head": cfg["head"],
                         "upsample": cfg["upsample"], "width": cfg["width"], "batch_norm": cfg["batch_norm"]},
        "num_params": n_params,
        "classes": list(ckpt["classes"]),
        "palette": [list(c) for c in palette_for_classes(ckpt["classes"])[: int(ckpt["num_classes"])]],
        "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input": "RGB in [0, 1]"},
        "evaluation": {"scale": results["evaluation"]["scale"], "flip": results["evaluation"]["flip"],
                       "data": results["data"], "protocol": results["protocol"], "command": results["command"],
                       "commit": results["commit"], "dirty": results["dirty"], "machine": results["machine"]},
        "metrics": {"mIoU": results["metrics"]["mIoU"], "pixAcc": results["metrics"]["pixAcc"],
                    "meanAcc": results["metrics"]["meanAcc"], "per_class_iou": results["per_class_iou"],
                    **({"boundary": results["metrics"]["boundary"]} if "boundary" in results["metrics"] else {})},
        "training": {"recipe": cfg, "epochs": ckpt["epoch"], "train_seconds": ckpt.get("train_seconds"),
                     "history": ckpt.get("history", []),
                     "best_val_mIoU": ckpt.get("best_miou"), "command": args.train_command,
                     "commit": args.train_commit or results["commit"], "machine": results["machine"]},
        "predict": {"mode": args.predict_mode, "train_size": args.predict_train_size,
                    "scales": args.predict_scales, "flip": args.predict_flip},
        "terms": args.terms,
    }
    if subset is not None:
        card["subset_check"] = {"images": subset["data"]["images"], "split": subset["data"]["split"],
                                "mIoU": subset["metrics"]["mIoU"], "pixAcc": subset["metrics"]["pixAcc"],
                                "command": subset["command"]}
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--name", required=True)
    p.add_argument("--results", required=True, help="fcnlib eval JSON of this checkpoint")
    p.add_argument("--subset-results", default=None, help="fcnlib eval JSON on a small subset (for a quick test)")
    p.add_argument("--train-command", required=True, help="the command that trained the checkpoint")
    p.add_argument("--train-commit", default=None, help="commit the training ran at (default: the evaluation's)")
    p.add_argument("--terms", default="")
    p.add_argument("--predict-mode", default="auto", choices=["auto", "whole", "scaled", "tiled"],
                   help="`fcnlib predict --weights NAME` defaults: mode")
    p.add_argument("--predict-train-size", type=int, default=512, help="... longer side for mode scaled, px")
    p.add_argument("--predict-scales", type=float, nargs="+", default=[1.0], help="... scales")
    p.add_argument("--predict-flip", action="store_true", help="... flipped averaging")
    p.add_argument("--out", default=str(PRETRAINED_DIR))
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    buf = io.BytesIO()
    torch.save(ckpt["model"], buf)
    state_bytes = buf.getvalue()
    results = json.loads(Path(args.results).read_text())
    subset = json.loads(Path(args.subset_results).read_text()) if args.subset_results else None
    if results.get("checkpoint_sha256") and subset and subset.get("checkpoint_sha256") != results["checkpoint_sha256"]:
        print("error: --results and --subset-results come from different checkpoints", file=sys.stderr)
        return 2
    card = build_card(ckpt, state_bytes, results, subset, args)
    out = Path(args.out)
    atomic_write_bytes(state_bytes, out / f"{args.name}.pt")
    atomic_write_text(json.dumps(card, indent=2) + "\n", out / f"{args.name}.json")
    print(f"wrote {out / (args.name + '.pt')} ({len(state_bytes) / 1e6:.2f} MB) and its card")
    return 0


if __name__ == "__main__":
    sys.exit(main())
