"""The checks of a folder data set, shared by ``fcnlib check-data`` and :class:`SegmentationFolder`
(so ``fcnlib train`` refuses exactly what ``check-data`` reports as a problem).

:func:`check_folder` reads every pair once and returns a :class:`FolderReport`: the pairs per
split file, the problems (unmatched files, unreadable files, masks that are not 8-bit index PNGs,
size mismatches, values that are neither a class nor the ignore value) and the label statistics
(pixel shares, images per class, empty masks). :func:`read_index_mask` and :func:`pair_problem`
are the per-pair checks the dataset runs on every read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fcnlib.constants import IGNORE_INDEX

from .classfile import CLASS_FILE, read_class_file
from .errors import DatasetError, preview
from .images import IMAGE_SUFFIXES, read_image, read_mask
from .pairs import read_text_lines

__all__ = [
    "PROBLEM_KINDS",
    "FolderClasses",
    "FolderReport",
    "Problem",
    "check_folder",
    "folder_classes",
    "pair_problem",
    "read_index_mask",
    "scan_folder",
]

#: What each kind of problem is called in the report, in the report's order.
PROBLEM_KINDS: dict[str, str] = {
    "duplicate": "two files with one stem",
    "no_mask": "images without a mask",
    "no_image": "masks without an image",
    "split": "split-file stems without a pair",
    "unreadable": "files that cannot be read",
    "mode": "masks not 8-bit index PNGs",
    "size": "mask size differs from image",
    "values": "masks with values not a class nor ignore",
}

_MODE_HINTS = {
    "RGB": "an RGB colour image: store each pixel's class index 0..N-1, not its colour",
    "RGBA": "an RGBA colour image: store each pixel's class index 0..N-1, not its colour",
    "I;16": "16-bit: save the class indices as an 8-bit 'L' PNG",
    "I": "16/32-bit: save the class indices as an 8-bit 'L' PNG",
    "LA": "grey with alpha: drop the alpha channel, keep the 8-bit indices",
    "1": "1-bit: save as an 8-bit 'L' PNG with values 0 and 1",
}


@dataclass(frozen=True)
class Problem:
    """One thing that makes the folder unusable: its kind (a key of :data:`PROBLEM_KINDS`)."""

    kind: str
    message: str


@dataclass(frozen=True)
class FolderClasses:
    """The classes of a folder: names, palette (None: not given), ignore value, where from."""

    names: tuple[str, ...]
    palette: list[tuple[int, int, int]] | None
    ignore: int
    source: str


def folder_classes(
    root: Path, num_classes: int | None, class_names: list[str] | None = None
) -> FolderClasses:
    """The classes from ``root/classes.yaml`` (which ``num_classes``/``class_names`` must match)
    or from ``num_classes`` (and ``class_names``); :class:`DatasetError` when neither is given."""
    found = read_class_file(root)
    if found is None:
        if num_classes is None:
            raise DatasetError(
                f"dataset 'folder' needs `num_classes` or a class file {root / CLASS_FILE}"
            )
        names = class_names or [f"class_{k}" for k in range(num_classes)]
        return FolderClasses(tuple(names), None, IGNORE_INDEX, f"{num_classes} classes given")
    if num_classes is not None and num_classes != found.num_classes:
        raise DatasetError(
            f"{root / CLASS_FILE} lists {found.num_classes} classes, "
            f"but `num_classes` is {num_classes}"
        )
    if class_names is not None and tuple(class_names) != found.names:
        raise DatasetError(f"class names differ from those in {root / CLASS_FILE}")
    return FolderClasses(found.names, found.palette, found.ignore, CLASS_FILE)


def scan_folder(
    folder: Path, suffixes: tuple[str, ...], kind: str
) -> tuple[dict[str, Path], list[Problem]]:
    """``{stem: path}`` of the files in ``folder`` with one of ``suffixes`` (hidden files
    skipped), and a problem for each further file that shares a stem."""
    by_stem: dict[str, Path] = {}
    problems = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in by_stem:
            problems.append(
                Problem(
                    "duplicate",
                    f"two {kind}s share the stem '{path.stem}': {by_stem[path.stem].name} and "
                    f"{path.name} in {folder}",
                )
            )
            continue
        by_stem[path.stem] = path
    return by_stem, problems


def read_index_mask(path: Path) -> np.ndarray:
    """A mask as uint8 ``H x W`` class indices; a mask that is not an 8-bit 'L' or 'P' PNG raises
    :class:`DatasetError` saying what it is (RGB colours, 16-bit, ...)."""
    try:
        with Image.open(path) as probe:
            mode = probe.mode
    except Exception:  # noqa: BLE001 - read_mask names the reading error below
        mode = None
    if mode is not None and mode not in ("P", "L"):
        hint = _MODE_HINTS.get(mode.split(";")[0] if mode.startswith("I;") else mode, "")
        hint = _MODE_HINTS.get(mode, hint)
        raise DatasetError(
            f"mask must be an 8-bit palette ('P') or greyscale ('L') PNG, got mode '{mode}': "
            f"{path}" + (f" ({hint})" if hint else "")
        )
    return read_mask(path)


def label_counts(mask: np.ndarray) -> np.ndarray:
    """Pixels of each value 0..255 in a uint8 mask."""
    return np.bincount(mask.ravel(), minlength=256)


def pair_problem(
    image_size: tuple[int, int], mask: np.ndarray, num_classes: int | None, ignore: int, path: Path
) -> Problem | None:
    """The problem of one read pair (size first, then label values), or None."""
    height, width = mask.shape
    if (width, height) != tuple(image_size):
        return Problem(
            "size",
            f"mask {width}x{height} does not match image {image_size[0]}x{image_size[1]}: {path}",
        )
    if num_classes is None:
        return None
    counts = label_counts(mask)
    counts[ignore] = 0
    bad = [str(v) for v in np.flatnonzero(counts[num_classes:]) + num_classes]
    if bad:
        return Problem(
            "values",
            f"mask has label values {preview(bad, 10)} outside 0..{num_classes - 1} "
            f"({ignore} = ignore): {path}",
        )
    return None


@dataclass
class FolderReport:
    """What :func:`check_folder` found."""

    root: Path
    classes: FolderClasses | None
    pairs: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    images_with: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    empty_masks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def error(self) -> DatasetError | None:
        """One-line error naming the first problem and how many there are (None if none)."""
        if self.ok:
            return None
        n = len(self.problems)
        return DatasetError(
            f"{self.root}: {n} problem{'s' if n > 1 else ''}; the first: {self.problems[0].message}"
        )

    def raise_if_bad(self) -> None:
        error = self.error()
        if error is not None:
            raise error


def _split_problems(root: Path, images: dict, masks: dict, report: FolderReport) -> None:
    for split_file in sorted(p for p in root.glob("*.txt") if p.is_file()):
        stems = [s.strip() for s in read_text_lines(split_file, "split file") if s.strip()]
        report.splits[split_file.stem] = len(stems)
        if not stems:
            report.problems.append(Problem("split", f"split file lists no stems: {split_file}"))
        absent = [s for s in stems if s not in images or s not in masks]
        report.problems += [
            Problem("split", f"split file {split_file} lists '{s}' without both image and mask")
            for s in absent
        ]


def _read_pair(image: Path, mask: Path, report: FolderReport) -> None:
    """Read one pair into the report's statistics, or record its problem."""
    classes = report.classes
    try:
        size = read_image(image).size
        labels = read_index_mask(mask)
    except DatasetError as exc:
        kind = "mode" if "got mode" in str(exc) else "unreadable"
        report.problems.append(Problem(kind, str(exc)))
        return
    num_classes = len(classes.names) if classes else None
    ignore = classes.ignore if classes else IGNORE_INDEX
    problem = pair_problem(size, labels, num_classes, ignore, mask)
    if problem is not None:
        report.problems.append(problem)
    counts = label_counts(labels)
    report.pixels += counts
    report.images_with += counts > 0
    labelled = counts[:num_classes] if num_classes else np.delete(counts, ignore)
    if not labelled.any():
        report.empty_masks.append(mask.stem)


def check_folder(
    root: str | Path,
    num_classes: int | None = None,
    *,
    image_dir: str = "images",
    mask_dir: str = "masks",
    need_classes: bool = False,
) -> FolderReport:
    """Read every pair of folder ``root`` and report (nothing raised for bad pairs: see
    :attr:`FolderReport.problems`). Missing folders or no images at all raise :class:`DatasetError`.

    Args:
        root: the folder (``images/``, ``masks/``, optional ``<split>.txt`` and ``classes.yaml``).
        num_classes: the class count where there is no class file (None: values not checked,
            unless ``need_classes``, when it is an error).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    classes = None
    if need_classes or num_classes is not None or (root / CLASS_FILE).is_file():
        classes = folder_classes(root, num_classes)
    for sub, what in ((image_dir, "*.jpg|*.jpeg|*.png"), (mask_dir, "*.png")):
        if not (root / sub).is_dir():
            kind = "image" if sub == image_dir else "mask"
            raise DatasetError(
                f"{kind} folder not found: {root / sub} (expected {sub}/{what} under {root})"
            )
    images, problems = scan_folder(root / image_dir, IMAGE_SUFFIXES, "image")
    masks, more = scan_folder(root / mask_dir, (".png",), "mask")
    if not images:
        raise DatasetError(f"no images (*.jpg, *.jpeg, *.png) found in {root / image_dir}")
    report = FolderReport(root, classes, problems=problems + more)
    report.problems += [
        Problem("no_mask", f"image {images[s].name} has no mask {s}.png in {root / mask_dir}")
        for s in sorted(images)
        if s not in masks
    ]
    report.problems += [
        Problem("no_image", f"mask {masks[s].name} has no image in {root / image_dir}")
        for s in sorted(masks)
        if s not in images
    ]
    _split_problems(root, images, masks, report)
    stems = [s for s in sorted(images) if s in masks]
    report.pairs = len(stems)
    for stem in stems:
        _read_pair(images[stem], masks[stem], report)
    return report
