"""The one seam between the book's chapters and fcnlib: the run mode, the data, the model.

``FCNBOOK_MODE``: ``smoke`` (CPU: the shipped CamVid model on real street scenes, or synthetic
shapes where CamVid is absent) or ``full`` (a GPU: PASCAL VOC 2012 and full-width VGG16); the
default is full on a GPU, smoke otherwise. ``FCNBOOK_CAMVID`` points at CamVid (default: the
first of ``../shared/data/camvid`` beside the repository and ``data/camvid``; on Colab it is
downloaded there). ``FCNBOOK_VOC_ROOT``: VOC/SBD for full mode (default ``data/voc``).
``FCNBOOK_RUNS``: where full mode keeps its trained model (default ``runs/book``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig, load_config
from .cpu import CpuThreads
from .data import DatasetError, build_dataset, download
from .data.registry import CAMVID, SBD, SHAPES, VOC
from .engine import TrainResult, train_stages
from .trained import TrainedModel, load_trained

__all__ = [
    "MODES",
    "REPOSITORY_URL",
    "BookData",
    "book_data",
    "book_mode",
    "book_model",
    "book_recipe",
    "camvid_root",
    "demo_training",
    "on_colab",
    "runs_dir",
    "setup",
]

MODES = ("smoke", "full")
#: The book's repository: launch buttons, install cells and the README use this URL (a test
#: checks that they agree with ``_config.yml``). Set it to your fork.
REPOSITORY_URL = "https://github.com/fcn-book/fcn-book"
_REPO = Path(__file__).resolve().parent.parent


def on_colab() -> bool:
    return "google.colab" in sys.modules


def book_mode(device: torch.device | None = None) -> str:
    """``FCNBOOK_MODE`` if set (smoke or full, else ValueError); otherwise full on a GPU, smoke on a CPU."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = os.environ.get("FCNBOOK_MODE") or ("full" if device.type == "cuda" else "smoke")
    if mode not in MODES:
        raise ValueError(f"FCNBOOK_MODE must be 'smoke' or 'full', got {mode!r}")
    return mode


def _cpu_threads() -> CpuThreads:
    """``threads: auto`` as ``fcnlib train`` chooses it (:class:`fcnlib.cpu.CpuThreads`): one
    intra-op thread per core that other processes leave free, judged from ``/proc/stat`` now."""
    policy = CpuThreads("auto", window=0.5)
    policy.choose()
    return policy


def setup() -> tuple[torch.device, str]:
    """The device (cuda if available) and the book mode; prints both and how to switch, and on
    the CPU the intra-op threads that `threads: auto` chose (fcnlib.cpu)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mode = book_mode(device)
    other = "full" if mode == "smoke" else "smoke"
    print(f"device={device}, mode={mode} (set FCNBOOK_MODE={other} before starting to switch)")
    if device.type == "cpu":
        policy = _cpu_threads()
        print(f"threads={policy.threads} ({policy.reason})")
    return device, mode


def runs_dir(mode: str) -> Path:
    """``$FCNBOOK_RUNS/<mode>``, default ``runs/book/<mode>`` in the repository (or the working
    directory when fcnlib is installed from a wheel)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    if os.environ.get("FCNBOOK_RUNS"):
        return Path(os.environ["FCNBOOK_RUNS"]) / mode
    root = _REPO if (_REPO / "pyproject.toml").is_file() else Path.cwd()
    return root / "runs" / "book" / mode


def book_recipe(mode: str, **overrides: Any) -> TrainConfig:
    """The recipe chapter 6 trains: smoke = the shipped ``shapes`` recipe, full = ``voc-trainaug``
    with ``data_root`` from ``FCNBOOK_VOC_ROOT``; ``out`` is :func:`runs_dir`."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    cfg = load_config(SHAPES if mode == "smoke" else "voc-trainaug")
    values = cfg.to_dict()
    if mode == "full":
        values["data_root"] = os.environ.get("FCNBOOK_VOC_ROOT", "data/voc")
    values["out"] = str(runs_dir(mode))
    return TrainConfig.from_dict({**values, **overrides}, source=f"book recipe ({mode})")


def _camvid_ok(root: Path) -> bool:
    return (root / "test.txt").is_file() or (root / "test").is_dir()


def camvid_root(download_if_missing: bool | None = None) -> Path | None:
    """CamVid's folder, or None (after printing one line saying how to get it).

    Looks at ``FCNBOOK_CAMVID`` when it is set (only there), else at ``../shared/data/camvid``
    beside the repository and ``data/camvid``; on Colab (or with ``download_if_missing=True``) downloads it to ``data/camvid``.
    """
    if os.environ.get("FCNBOOK_CAMVID"):  # set: the only place to look (a missing path -> fallback)
        candidates = [Path(os.environ["FCNBOOK_CAMVID"])]
    else:
        candidates = [_REPO.parent / "shared" / "data" / "camvid", Path("data/camvid").resolve()]
    for root in candidates:
        if _camvid_ok(root):
            return root
    if download_if_missing if download_if_missing is not None else on_colab():
        target = Path("data/camvid").resolve()
        try:
            download(CAMVID, target)
            return target
        except DatasetError as exc:
            print(f"CamVid download failed: {exc}")
    print(
        "CamVid not found; this chapter falls back to the synthetic shapes.\n"
        "(set FCNBOOK_CAMVID, or run `fcnlib download camvid --root data/camvid`)"
    )
    return None


@dataclass(frozen=True)
class BookData:
    """The data set a chapter shows: name, root and the split its figures evaluate."""

    name: str  # camvid | shapes | voc
    root: Path | None
    split: str

    def dataset(self, split: str | None = None):
        """The full-size evaluation dataset of ``split`` (default: :attr:`split`)."""
        return build_dataset(self.name, self.root, split or self.split, train=False)


def book_data(mode: str) -> BookData:
    """Smoke: CamVid test where CamVid is present, else the synthetic shapes' val split; full: VOC
    2012 val (on Colab, VOC and SBD are downloaded first with torchvision's checksummed downloads)."""
    if mode == "full":
        root = Path(os.environ.get("FCNBOOK_VOC_ROOT", "data/voc"))
        if on_colab() and not (root / "VOCdevkit" / "VOC2012").is_dir():
            for name in (VOC, SBD):  # chapter 6 trains on trainaug = VOC train + SBD
                download(name, root)
        return BookData(VOC, root, "val")
    root = camvid_root()
    return BookData(CAMVID, root, "test") if root is not None else BookData(SHAPES, None, "val")


def book_model(mode: str, data: BookData | None = None) -> TrainedModel:
    """The model a chapter shows: smoke = the shipped weights for the data (``camvid-cpu`` or
    ``shapes-demo``), full = the model chapter 6 trained (``runs_dir('full')/fcn8s/best.pt``)."""
    data = data or book_data(mode)
    if mode == "smoke":
        return load_trained(weights="camvid-cpu" if data.name == CAMVID else "shapes-demo")
    best = runs_dir("full") / "fcn8s" / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(f"{best} does not exist yet: run chapter 6 in full mode first")
    return load_trained(best)


def demo_training(mode: str, minutes: float, **overrides: Any) -> TrainResult:
    """Chapter 6's demonstration: train the book's recipe for ``minutes`` of wall time.

    Smoke mode trains into a fresh temporary folder each time (nothing is reused or shared between
    chapters); full mode trains on the first 2,000 training images (epochs of a few minutes on a
    GPU) into ``runs_dir('full')`` and resumes there. Returns the result of
    :func:`fcnlib.engine.train_stages` for the last stage, with ``out``.
    """
    out = Path(tempfile.mkdtemp(prefix="fcnbook-ch6-")) if mode == "smoke" else runs_dir(mode)
    if mode == "full":  # epochs of a few minutes, so that a budget of minutes sees several
        overrides = {"limit_train": 2000, **overrides}
    cfg = book_recipe(mode, max_minutes=minutes, out=str(out), **overrides)
    if cfg.stages:  # a time budget per stage
        cfg.max_minutes = minutes / len(cfg.stages)
    resume = mode == "full" and any(out.glob("*/last.pt"))
    results = train_stages(cfg, resume=resume, overwrite=not resume, progress=False)
    return list(results.values())[-1]
