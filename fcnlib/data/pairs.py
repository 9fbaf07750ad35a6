"""Datasets over ``(image file, mask file)`` pairs, their in-memory cache and class weights.

:class:`PairDataset` is the base of every file-backed dataset: it reads a pair with one-line
errors (:mod:`fcnlib.data.images`), checks that the mask fits the image and holds only known
labels, and applies the pair transform. :class:`CachedDataset` decodes a dataset once into memory;
:func:`median_frequency_weights` derives class weights from its masks. :func:`index_by_stem` and
:func:`read_text_lines` are the file-listing helpers the datasets share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from fcnlib.transforms import eval_transforms

from .errors import DatasetError
from .images import check_labels, read_image, read_mask

__all__ = [
    "CachedDataset",
    "PairDataset",
    "PairTransform",
    "index_by_stem",
    "median_frequency_weights",
    "read_text_lines",
]

PairTransform = Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]


def read_text_lines(path: Path, kind: str) -> list[str]:
    """The lines of a list or split file (UTF-8, a leading BOM ignored), unstripped.

    ``kind`` names the file in the one-line :class:`DatasetError` raised when it is missing,
    unreadable or not UTF-8 text.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{kind} not found: {path}") from None
    except OSError as error:
        raise DatasetError(f"cannot read {kind} {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{kind} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}): {path}"
        ) from None


def index_by_stem(folder: Path, suffixes: Iterable[str], kind: str) -> dict[str, Path]:
    """``{stem: path}`` of the files in ``folder`` with one of ``suffixes`` (hidden files skipped);
    two files with one stem raise :class:`DatasetError`."""
    allowed = tuple(suffixes)
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in allowed:
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"two {kind}s share the stem '{path.stem}': {by_stem[path.stem].name} and {path.name} in {folder}"
            )
        by_stem[path.stem] = path
    return by_stem


class PairDataset(Dataset):
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
        image = read_image(image_path)
        mask = self._map_labels(read_mask(mask_path))
        mask_height, mask_width = mask.shape
        if (mask_width, mask_height) != image.size:
            raise DatasetError(
                f"mask {mask_width}x{mask_height} does not match image {image.size[0]}x{image.size[1]}: {mask_path}"
            )
        check_labels(mask, self.num_classes, mask_path)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw(index)
        return self.transforms(image, torch.from_numpy(mask))

    def check(self, progress: bool = True) -> None:
        """Read and validate every pair (sizes, label values, decodability); raise the first error."""
        for index in tqdm(
            range(len(self)), desc=f"checking {type(self).__name__}", disable=not progress
        ):
            self.raw(index)


class CachedDataset(Dataset):
    """Every pair of ``dataset`` decoded once into memory, transformed afresh on each access.

    ``dataset`` is a dataset with ``raw(i)`` (or a ``Subset`` of one). Images are kept as uint8
    ``3 x H x W`` tensors and masks as uint8 ``H x W`` (255 = ignore): 0.5 MB per 480x360 pair. On
    a small machine this takes JPEG decoding out of every epoch.
    """

    def __init__(
        self, dataset: Dataset, transforms: PairTransform | None = None, progress: bool = True
    ) -> None:
        base, indices = dataset, list(range(len(dataset)))
        while isinstance(base, torch.utils.data.Subset):
            indices = [base.indices[i] for i in indices]
            base = base.dataset
        self.classes: list[str] = list(base.classes)
        self.num_classes: int = int(base.num_classes)
        self.palette: list[tuple[int, int, int]] | None = getattr(base, "palette", None)
        self.transforms: PairTransform = transforms if transforms is not None else base.transforms
        self.items: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index in tqdm(
            indices, desc=f"decoding {type(base).__name__}", disable=not progress, leave=False
        ):
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


def median_frequency_weights(
    dataset: Dataset, num_classes: int, max_weight: float = 10.0
) -> list[float]:
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
    weights = torch.where(
        freq > 0, median / freq.clamp_min(1e-12), torch.full_like(freq, max_weight)
    )
    return [round(float(w), 6) for w in weights.clamp(max=max_weight)]
