"""Small helpers the book's chapters share: the run mode, the book's recipe, and its one trained model.

Chapter 6 trains the book's model with :func:`trained_model`; chapters 7 and 8 call the same
function and get the saved result (or train it themselves when executed alone).

``FCNBOOK_MODE``: ``smoke`` (synthetic shapes, width-reduced VGG16, CPU) or ``full`` (PASCAL VOC
2012, full VGG16, GPU); default ``full`` when a GPU is present, else ``smoke``.
``FCNBOOK_VOC_ROOT``: the VOC/SBD folder for full mode (default ``data/voc``).
``FCNBOOK_RUNS``: the folder holding ``<mode>/<model>/best.pt`` (default ``runs/book`` in the
repository, or in the working directory when fcnlib is installed from a wheel).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .engine import model_from_checkpoint, train, train_stages
from .models import FCN

__all__ = ["MODES", "SMOKE_EPOCHS", "setup", "book_mode", "runs_dir", "book_recipe", "trained_model"]

MODES = ("smoke", "full")
#: Epochs of the smoke-mode run: about a minute on a quiet 2-core CPU, mIoU well above chance.
SMOKE_EPOCHS = 15

# configs/voc-trainaug.yaml, spelled out so that the book also works from an installed wheel
# (tests/test_book.py checks that the two agree).
_VOC_RECIPE: dict[str, Any] = {
    "stages": ["fcn32s", "fcn16s", "fcn8s"], "head": "paper", "upsample": "bilinear", "width": 1.0,
    "batch_norm": False, "weights_backbone": "IMAGENET1K_V1", "data": "trainaug", "train_split": "train",
    "val_split": "val", "crop_size": 480, "epochs": 20, "batch_size": 8, "val_batch_size": 1, "lr": 0.001,
    "momentum": 0.9, "weight_decay": 0.0005, "schedule": "poly", "workers": 8,
}  # fmt: skip


def book_mode(device: torch.device | None = None) -> str:
    """``FCNBOOK_MODE`` if set (smoke or full, else ValueError); otherwise full on a GPU, smoke on a CPU."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = os.environ.get("FCNBOOK_MODE") or ("full" if device.type == "cuda" else "smoke")
    if mode not in MODES:
        raise ValueError(f"FCNBOOK_MODE must be 'smoke' or 'full', got {mode!r}")
    return mode


def setup() -> tuple[torch.device, str]:
    """The device (cuda if available) and the book mode; prints both on one line."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = book_mode(device)
    print(f"device={device}, mode={mode}")
    return device, mode


def runs_dir(mode: str) -> Path:
    """``$FCNBOOK_RUNS/<mode>``, default ``<repository>/runs/book/<mode>``."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    if os.environ.get("FCNBOOK_RUNS"):
        return Path(os.environ["FCNBOOK_RUNS"]) / mode
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():  # installed from a wheel: no repository around
        root = Path.cwd()
    return root / "runs" / "book" / mode


def book_recipe(mode: str, **overrides: Any) -> TrainConfig:
    """The book's recipe: smoke = the synthetic-shapes recipe (configs/shapes.yaml, ``SMOKE_EPOCHS``
    epochs), full = configs/voc-trainaug.yaml with ``data_root`` from ``FCNBOOK_VOC_ROOT``.
    ``out`` is :func:`runs_dir` (models go into ``out/<model name>``); ``overrides`` replace any setting."""
    if mode == "smoke":  # TrainConfig's defaults are the shapes recipe
        values: dict[str, Any] = {"epochs": SMOKE_EPOCHS}
    else:
        values = {**_VOC_RECIPE, "data_root": os.environ.get("FCNBOOK_VOC_ROOT", "data/voc")}
    values["out"] = str(runs_dir(mode))
    return TrainConfig.from_dict({**values, **overrides}, source=f"book recipe ({mode})")


def _finished(out: Path, epochs: int) -> bool:
    if not (out / "best.pt").is_file() or not (out / "history.csv").is_file():
        return False
    with open(out / "history.csv", newline="") as f:
        return len(list(csv.DictReader(f))) >= epochs


def trained_model(
    mode: str, name: str = "fcn8s", *, progress: bool = False, **overrides: Any
) -> tuple[FCN, dict[str, Any]]:
    """The book's trained ``name`` model and its checkpoint (``best.pt``, on the CPU).

    Trains it (smoke: one model; full: the staged FCN-32s -> 16s -> 8s up to ``name``) only if
    ``runs_dir(mode)/<name>`` holds no finished run; an interrupted run is resumed from ``last.pt``.
    ``overrides`` go to :func:`book_recipe` and only matter when training happens. Each epoch
    prints one line; ``progress`` adds tqdm bars (off by default: in a notebook they would be
    widgets saved into the page).
    """
    cfg = book_recipe(mode, **overrides)
    out = Path(cfg.out) / name
    if cfg.stages:  # train_stages writes each stage into cfg.out/<stage>
        if name not in cfg.stages:
            raise ValueError(f"{name!r} is not one of the recipe's stages {cfg.stages}")
        cfg.stages = cfg.stages[: cfg.stages.index(name) + 1]
    else:
        cfg.model, cfg.out = name, str(out)
    if not _finished(out, cfg.epochs):
        resume = (out / "last.pt").is_file() or bool(cfg.stages)
        if cfg.stages:
            train_stages(cfg, resume=resume, overwrite=True, progress=progress)
        else:
            train(cfg, resume=resume, overwrite=True, progress=progress)
    return model_from_checkpoint(out / "best.pt")
