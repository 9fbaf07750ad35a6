"""Segmentation datasets: synthetic shapes, image/mask folders, CamVid, PASCAL VOC 2012, SBD, trainaug.

Every dataset returns ``(image, mask)`` pairs: a float32 ``3 x H x W`` image tensor normalised with
the ImageNet statistics and an int64 ``H x W`` label tensor in which 255 means "ignore". The pair
is produced by the dataset's ``transforms`` (default: :func:`fcnlib.transforms.eval_transforms`,
which keeps the full size). Every dataset has ``classes`` (list of names) and ``num_classes``.

Bad input raises :class:`DatasetError` with a one-line message naming the offending file.

Modules: :mod:`~fcnlib.data.classes` (class names, palettes), :mod:`~fcnlib.data.images` (file
reading, :func:`load_image` for photos), :mod:`~fcnlib.data.pairs` (the pair dataset base,
:class:`CachedDataset`, :func:`median_frequency_weights`), :mod:`~fcnlib.data.folder`,
:mod:`~fcnlib.data.camvid`, :mod:`~fcnlib.data.voc`, :mod:`~fcnlib.data.shapes`,
:mod:`~fcnlib.data.registry` (:data:`DATASET_INFO`, :func:`build_dataset`) and
:mod:`~fcnlib.data.downloads` (:func:`download`).
"""

from __future__ import annotations

from fcnlib.constants import IGNORE_INDEX

from .camvid import CamVid
from .classes import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    SHAPES_CLASSES,
    VOC_CLASSES,
    camvid_palette,
    palette_for_classes,
    voc_palette,
)
from .downloads import download
from .errors import DatasetError, ImageError
from .folder import SegmentationFolder
from .images import DEFAULT_MAX_IMAGE_PIXELS, load_image
from .pairs import CachedDataset, PairTransform, median_frequency_weights
from .registry import DATASET_INFO, DatasetInfo, build_dataset
from .shapes import SyntheticShapes
from .voc import PascalVOC, SBDSegmentation, VOCTrainAug

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "DATASET_INFO",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IGNORE_INDEX",
    "SHAPES_CLASSES",
    "VOC_CLASSES",
    "CachedDataset",
    "CamVid",
    "DatasetError",
    "DatasetInfo",
    "ImageError",
    "PairTransform",
    "PascalVOC",
    "SBDSegmentation",
    "SegmentationFolder",
    "SyntheticShapes",
    "VOCTrainAug",
    "build_dataset",
    "camvid_palette",
    "download",
    "load_image",
    "median_frequency_weights",
    "palette_for_classes",
    "voc_palette",
]
