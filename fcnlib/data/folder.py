"""A user's own data: ``root/images/*`` with ``root/masks/*.png`` matched by file stem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .errors import DatasetError, preview
from .images import IMAGE_SUFFIXES
from .pairs import PairDataset, PairTransform, index_by_stem, read_text_lines

__all__ = ["SegmentationFolder"]


def _all_stems(
    images: dict[str, Path], masks: dict[str, Path], image_root: Path, mask_root: Path
) -> list[str]:
    """Every stem, when every image has a mask and every mask an image."""
    stems = sorted(images)
    if not stems:
        raise DatasetError(f"no images (*.jpg, *.jpeg, *.png) found in {image_root}")
    unmatched_images = [images[s].name for s in stems if s not in masks]
    if unmatched_images:
        raise DatasetError(
            f"{len(unmatched_images)} image(s) have no mask <stem>.png in {mask_root}: {preview(unmatched_images)}"
        )
    unmatched_masks = [masks[s].name for s in sorted(masks) if s not in images]
    if unmatched_masks:
        raise DatasetError(
            f"{len(unmatched_masks)} mask(s) have no image in {image_root}: {preview(unmatched_masks)}"
        )
    return stems


def _split_stems(split_file: Path, images: dict[str, Path], masks: dict[str, Path]) -> list[str]:
    """The stems listed in ``split_file``, each of which must have an image and a mask."""
    if not split_file.is_file():
        raise DatasetError(f"split file not found: {split_file}")
    stems = [line.strip() for line in read_text_lines(split_file, "split file") if line.strip()]
    if not stems:
        raise DatasetError(f"split file lists no stems: {split_file}")
    absent = [s for s in stems if s not in images or s not in masks]
    if absent:
        raise DatasetError(
            f"split file {split_file} lists {len(absent)} stem(s) without both an image and a mask: {preview(absent)}"
        )
    return stems


class SegmentationFolder(PairDataset):
    """Images ``root/images/*.jpg|jpeg|png`` with masks ``root/masks/*.png`` matched by file stem.

    Masks are palette ('P', label = palette index) or greyscale ('L') PNGs with labels
    ``0..num_classes-1`` and 255 = ignore. With ``split``, only the stems listed one per line in
    ``root/<split>.txt`` (UTF-8) are used (each must have an image and a mask); without it every
    image must have a mask and every mask an image. Sizes and label values are checked when a pair
    is read (or all at once by :meth:`check`).
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
            raise DatasetError(
                f"image folder not found: {image_root} (expected {image_dir}/*.jpg|*.jpeg|*.png under {root})"
            )
        if not mask_root.is_dir():
            raise DatasetError(
                f"mask folder not found: {mask_root} (expected {mask_dir}/*.png under {root})"
            )
        images = index_by_stem(image_root, IMAGE_SUFFIXES, "image")
        masks = index_by_stem(mask_root, (".png",), "mask")
        if split is None:
            stems = _all_stems(images, masks, image_root, mask_root)
        else:
            stems = _split_stems(root / f"{split}.txt", images, masks)
        self.root = root
        self.split = split
        self.stems: list[str] = stems
        names = (
            class_names if class_names is not None else [f"class_{k}" for k in range(num_classes)]
        )
        super().__init__([(images[s], masks[s]) for s in stems], names, transforms)
