"""PASCAL VOC 2012, the Semantic Boundaries Dataset and their union "trainaug" (torchvision layouts)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torchvision

from .classes import VOC_CLASSES
from .errors import DatasetError
from .images import require_loadmat
from .pairs import PairDataset, PairTransform, read_text_lines

__all__ = ["PascalVOC", "SBDSegmentation", "VOCTrainAug"]


def _voc_not_found(root: Path) -> DatasetError:
    return DatasetError(
        f"PASCAL VOC 2012 not found under {root}: run `fcnlib download voc --root {root}`"
    )


def _sbd_not_found(root: Path) -> DatasetError:
    return DatasetError(f"SBD not found under {root}: run `fcnlib download sbd --root {root}`")


def _voc_dir(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def _read_ids(path: Path) -> list[str]:
    """Image ids listed one per line in a UTF-8 split file."""
    return [line.strip() for line in read_text_lines(path, "split file") if line.strip()]


def _require_voc(root: Path, splits: Iterable[str]) -> Path:
    """``root/VOCdevkit/VOC2012`` with its images, masks and readable split files."""
    voc = _voc_dir(root)
    split_files = [voc / "ImageSets" / "Segmentation" / f"{s}.txt" for s in splits]
    if not all(p.exists() for p in [voc / "JPEGImages", voc / "SegmentationClass", *split_files]):
        raise _voc_not_found(root)
    for split_file in split_files:
        _read_ids(split_file)
    return voc


def _require_sbd(root: Path, splits: Iterable[str]) -> None:
    """SBD's ``img/``, ``cls/`` and readable split files under ``root``."""
    split_files = [root / f"{s}.txt" for s in splits]
    if not all(p.exists() for p in [root / "img", root / "cls", *split_files]):
        raise _sbd_not_found(root)
    for split_file in split_files:
        _read_ids(split_file)


class PascalVOC(PairDataset):
    """PASCAL VOC 2012 segmentation (21 classes, 255 = void border) under ``root/VOCdevkit/VOC2012``,
    indexed by ``torchvision.datasets.VOCSegmentation``. Splits: train (1464), val (1449), trainval."""

    SPLITS = ("train", "val", "trainval")

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ) -> None:
        root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(
                f"unknown VOC split {split!r}: choose one of {', '.join(self.SPLITS)}"
            )
        _require_voc(root, [split])
        try:
            voc = torchvision.datasets.VOCSegmentation(
                str(root), year="2012", image_set=split, download=False
            )
        except (RuntimeError, OSError):
            raise _voc_not_found(root) from None
        self.root = root
        self.split = split
        super().__init__(list(zip(voc.images, voc.targets)), VOC_CLASSES, transforms)


class SBDSegmentation(PairDataset):
    """Semantic Boundaries Dataset masks (21 VOC classes, ``.mat`` files, needs scipy) under ``root``
    (``img/``, ``cls/``, ``train.txt``, ``val.txt``), indexed by ``torchvision.datasets.SBDataset``.
    Splits: train (8498), val (2857), train_noval."""

    SPLITS = ("train", "val", "train_noval")

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ) -> None:
        root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(
                f"unknown SBD split {split!r}: choose one of {', '.join(self.SPLITS)}"
            )
        _require_sbd(root, [split])
        require_loadmat()
        try:
            sbd = torchvision.datasets.SBDataset(
                str(root), image_set=split, mode="segmentation", download=False
            )
        except (RuntimeError, OSError):
            raise _sbd_not_found(root) from None
        self.root = root
        self.split = split
        super().__init__(list(zip(sbd.images, sbd.masks)), VOC_CLASSES, transforms)


class VOCTrainAug(PairDataset):
    """The standard 10,582-image "trainaug" set: SBD train + SBD val + VOC 2012 train, de-duplicated
    by image id, minus every VOC 2012 val id.

    VOC is read from ``root/VOCdevkit/VOC2012``, SBD from ``sbd_root`` (default: ``root``, where
    ``fcnlib download sbd --root DIR`` puts it). Ids in VOC train use the VOC JPEG and PNG mask (with
    its 255 border); the other ids use SBD's JPEG and ``.mat`` mask. ``image_ids`` is sorted.
    """

    def __init__(
        self,
        root: str | Path,
        sbd_root: str | Path | None = None,
        transforms: PairTransform | None = None,
    ) -> None:
        root = Path(root)
        sbd = Path(sbd_root) if sbd_root is not None else root
        voc = _require_voc(root, ["train", "val"])
        _require_sbd(sbd, ["train", "val"])
        require_loadmat()
        voc_train = _read_ids(voc / "ImageSets" / "Segmentation" / "train.txt")
        voc_val = set(_read_ids(voc / "ImageSets" / "Segmentation" / "val.txt"))
        sbd_ids = _read_ids(sbd / "train.txt") + _read_ids(sbd / "val.txt")
        voc_train_set = set(voc_train)
        self.image_ids: list[str] = sorted((voc_train_set | set(sbd_ids)) - voc_val)
        pairs = [
            (voc / "JPEGImages" / f"{i}.jpg", voc / "SegmentationClass" / f"{i}.png")
            if i in voc_train_set
            else (sbd / "img" / f"{i}.jpg", sbd / "cls" / f"{i}.mat")
            for i in self.image_ids
        ]
        self.root = root
        self.sbd_root = sbd
        super().__init__(pairs, VOC_CLASSES, transforms)
