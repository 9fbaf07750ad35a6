"""From a recipe to batches: the datasets, their loaders, padding collation and class weights."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from .config import TrainConfig
from .constants import IGNORE_INDEX
from .context import Context
from .data import CachedDataset, build_dataset, median_frequency_weights
from .data.registry import dataset_info
from .errors import FcnlibError
from .transforms import train_transforms

__all__ = [
    "build_datasets",
    "class_weights",
    "dataset_attr",
    "epoch_seed",
    "pad_collate",
    "train_loader",
    "val_loader",
]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded ``seed``: its order, augmentation and dropout
    depend only on ``(seed, epoch)``, so a resumed run repeats an uninterrupted one."""
    return seed * 1_000_003 + epoch


def pad_collate(
    batch: list[tuple[Tensor, Tensor]], ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor]:
    """Stack ``(image 3xHxW, mask HxW)`` pairs of different sizes: pad bottom/right to the largest.

    Images are padded with 0 (the mean after normalisation), masks with ``ignore_index``, so the
    padding never counts in the loss or the metrics.
    """
    h = max(img.shape[-2] for img, _ in batch)
    w = max(img.shape[-1] for img, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.int64)
    for i, (img, mask) in enumerate(batch):
        images[i, :, : img.shape[-2], : img.shape[-1]] = img
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


def _limit(ds: Dataset, n: int | None) -> Dataset:
    return ds if n is None or n >= len(ds) else Subset(ds, range(n))


def _shard(ds: Dataset, ctx: Context) -> Dataset:
    """Every ``world_size``-th item for this rank: no padding, so distributed metrics stay exact."""
    return ds if not ctx.distributed else Subset(ds, range(ctx.rank, len(ds), ctx.world_size))


class _RawMasks:
    """``raw(i)`` of a dataset under ``Subset`` wrappers (``limit_train``), for the weights."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def raw(self, index: int):
        ds = self.ds
        while isinstance(ds, Subset):
            index, ds = ds.indices[index], ds.dataset
        return ds.raw(index)


def dataset_attr(ds: Dataset, name: str):
    """Attribute ``name`` (e.g. ``classes``) of the dataset under any ``Subset`` wrappers."""
    while isinstance(ds, Subset):
        ds = ds.dataset
    return getattr(ds, name)


def build_datasets(cfg: TrainConfig, progress: bool = False) -> tuple[Dataset, Dataset]:
    """Training (augmented, cropped) and validation (full-size) datasets of a recipe."""
    crop = (cfg.crop_size, cfg.crop_width or cfg.crop_size)
    augment = train_transforms(
        crop, scale_range=tuple(cfg.scale_range), color_jitter=cfg.color_jitter
    )
    kw = {"crop_size": crop, "num_classes": cfg.num_classes}
    train_ds = build_dataset(
        cfg.data, cfg.data_root, cfg.train_split, train=True, transforms=augment, **kw
    )
    info = dataset_info(cfg.data)  # a training-only set (trainaug) names the set validating it
    val_ds = build_dataset(
        info.validate_with or cfg.data, cfg.data_root, cfg.val_split, train=False, **kw
    )
    if info.check_pairs:  # users' own files: check every pair before spending time on training
        train_ds.check(progress=False)
        val_ds.check(progress=False)
    train_ds, val_ds = _limit(train_ds, cfg.limit_train), _limit(val_ds, cfg.limit_val)
    if cfg.cache:
        train_ds, val_ds = (
            CachedDataset(train_ds, progress=progress),
            CachedDataset(val_ds, progress=progress),
        )
    return train_ds, val_ds


def class_weights(cfg: TrainConfig, train_ds: Dataset, num_classes: int) -> list[float] | None:
    """The loss's class weights: ``cfg.class_weights``, or median-frequency ones from ``train_ds``."""
    if cfg.class_weights:
        if len(cfg.class_weights) != num_classes:
            raise FcnlibError(
                f"class_weights has {len(cfg.class_weights)} values but the data has "
                f"{num_classes} classes"
            )
        return list(cfg.class_weights)
    if cfg.class_weighting == "median-frequency":
        return median_frequency_weights(_RawMasks(train_ds), num_classes, cfg.class_weight_max)
    return None


def val_loader(ds: Dataset, ctx: Context, batch_size: int = 1, workers: int = 0) -> DataLoader:
    """Full-size evaluation loader over this rank's shard (sizes may differ: padded batches)."""
    return DataLoader(
        _shard(ds, ctx),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=pad_collate,
        pin_memory=ctx.device.type == "cuda",
    )


def train_loader(ds: Dataset, cfg: TrainConfig, ctx: Context, epoch: int) -> DataLoader:
    """The shuffled training loader of ``epoch``: its order and the workers' seeds depend only on
    ``(seed, epoch)``, so a resumed run sees the same batches as an uninterrupted one."""
    g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
    if ctx.distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(
            ds, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
        sampler.set_epoch(epoch)
    else:
        sampler = torch.utils.data.RandomSampler(ds, generator=g)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=len(ds) >= cfg.batch_size,
        collate_fn=pad_collate,
        pin_memory=ctx.device.type == "cuda",
        generator=g,
        persistent_workers=False,
    )
