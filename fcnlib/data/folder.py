"""A user's own data: ``root/images/*`` with ``root/masks/*.png`` matched by file stem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fcnlib.constants import IGNORE_INDEX

from .check import check_folder, folder_classes, pair_problem, read_index_mask, scan_folder
from .errors import DatasetError, preview
from .images import IMAGE_SUFFIXES, read_image
from .pairs import PairDataset, PairTransform, read_text_lines

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
    ``0..num_classes-1`` and 255 = ignore. The class file ``root/classes.yaml``
    (:mod:`fcnlib.data.classfile`), where there is one, gives the class names, colours
    (:attr:`palette`) and ignore value; without it ``num_classes`` is needed. With ``split``,
    only the stems listed one per line in ``root/<split>.txt`` (UTF-8) are used (each must have an
    image and a mask); without it every image must have a mask and every mask an image. Sizes and
    label values are checked when a pair is read; :meth:`check` checks the whole folder with the
    checks of ``fcnlib check-data`` (:func:`fcnlib.data.check.check_folder`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        num_classes: int | None = None,
        transforms: PairTransform | None = None,
        image_dir: str = "images",
        mask_dir: str = "masks",
        class_names: Sequence[str] | None = None,
    ) -> None:
        root = Path(root)
        if num_classes is not None and not 1 <= int(num_classes) <= 255:
            raise DatasetError(f"num_classes must lie in 1..255, got {num_classes}")
        if class_names is not None and num_classes is not None and len(class_names) != num_classes:
            raise DatasetError(f"got {len(class_names)} class names for num_classes={num_classes}")
        if not root.is_dir():
            raise DatasetError(f"dataset folder not found: {root}")
        found = folder_classes(
            root, num_classes, None if class_names is None else list(class_names)
        )
        image_root, mask_root = root / image_dir, root / mask_dir
        if not image_root.is_dir():
            raise DatasetError(
                f"image folder not found: {image_root} (expected {image_dir}/*.jpg|*.jpeg|*.png under {root})"
            )
        if not mask_root.is_dir():
            raise DatasetError(
                f"mask folder not found: {mask_root} (expected {mask_dir}/*.png under {root})"
            )
        images, duplicates = scan_folder(image_root, IMAGE_SUFFIXES, "image")
        masks, more = scan_folder(mask_root, (".png",), "mask")
        if duplicates or more:
            raise DatasetError((duplicates + more)[0].message)
        if split is None:
            stems = _all_stems(images, masks, image_root, mask_root)
        else:
            stems = _split_stems(root / f"{split}.txt", images, masks)
        self.root, self.split = root, split
        self.image_dir, self.mask_dir = image_dir, mask_dir
        self.stems: list[str] = stems
        #: The class file's colours (256, index = label), or None without a class file.
        self.palette: list[tuple[int, int, int]] | None = found.palette
        #: The mask value that means "ignore" (read as 255).
        self.ignore_index: int = found.ignore
        super().__init__([(images[s], masks[s]) for s in stems], found.names, transforms)

    def raw(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Pair ``index`` as stored: PIL RGB image and uint8 ``H x W`` labels (255 = ignore)."""
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        mask = read_index_mask(mask_path)
        problem = pair_problem(image.size, mask, self.num_classes, self.ignore_index, mask_path)
        if problem is not None:
            raise DatasetError(problem.message)
        if self.ignore_index != IGNORE_INDEX:
            mask = np.where(mask == self.ignore_index, IGNORE_INDEX, mask).astype(np.uint8)
        return image, mask

    def check(self, progress: bool = True) -> None:
        """Check the whole folder as ``fcnlib check-data`` does; raise its one-line error naming
        the first problem and how many there are. A folder that passed and has not changed since
        (same files, sizes and times) is not read again. ``progress`` is kept for compatibility."""
        key = (self.num_classes, self.image_dir, self.mask_dir, _listing(self.root))
        if key in _PASSED:
            return
        check_folder(
            self.root, self.num_classes, image_dir=self.image_dir, mask_dir=self.mask_dir
        ).raise_if_bad()
        _PASSED.add(key)


#: Folders whose check passed, by class count, sub-folders and listing (see ``check``).
_PASSED: set[tuple] = set()


def _listing(root: Path) -> tuple:
    """Every file under ``root`` (two levels) with its size and modification time."""
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and len(path.relative_to(root).parts) <= 2:
            stat = path.stat()
            entries.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return (str(root.resolve()), tuple(entries))
