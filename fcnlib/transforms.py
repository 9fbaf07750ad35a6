"""Joint image/mask transforms for semantic segmentation (torchvision.transforms.v2).

Every transform here is a callable ``(image, mask) -> (image, mask)`` where

- ``image`` is a PIL RGB image, a ``uint8`` tensor ``3 x H x W`` (plain or ``tv_tensors.Image``)
  or a float tensor in ``[0, 1]``;
- ``mask`` is a PIL ``'L'`` / ``'P'`` image (palette index = label), a ``uint8``/``int64`` tensor
  ``H x W`` or ``1 x H x W`` (plain or ``tv_tensors.Mask``), or a numpy array; 255 = ignore.

and returns a plain ``float32`` tensor ``3 x h x w`` normalised with the ImageNet statistics and a
plain ``int64`` tensor ``h x w`` of labels. Geometric steps are applied to both with the same random
parameters; the mask is always resized with nearest-neighbour interpolation, so no new label
values are ever created (padding adds ``ignore_index`` only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RandomScale",
    "SegmentationTransform",
    "denormalize",
    "eval_transforms",
    "to_tv_tensors",
    "train_transforms",
]


def _image_to_tv(image: Any) -> tv_tensors.Image:
    if isinstance(image, Image.Image):
        return tv_tensors.Image(TF.pil_to_tensor(image.convert("RGB")))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"numpy image must be H x W x 3, got shape {image.shape}")
        return tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image tensor must be 3 x H x W, got shape {tuple(image.shape)}")
        return image if isinstance(image, tv_tensors.Image) else tv_tensors.Image(image)
    raise TypeError(f"unsupported image type {type(image).__name__}")


def _mask_to_tv(mask: Any) -> tv_tensors.Mask:
    if isinstance(mask, Image.Image):
        if mask.mode not in ("L", "P"):
            raise ValueError(
                f"mask image must have mode 'L' or 'P' (one label per pixel), got {mask.mode!r}"
            )
        data = torch.from_numpy(np.array(mask, dtype=np.uint8))
    elif isinstance(mask, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(mask))
    elif isinstance(mask, torch.Tensor):
        data = mask.as_subclass(torch.Tensor)
    else:
        raise TypeError(f"unsupported mask type {type(mask).__name__}")
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f"mask must be H x W (or 1 x H x W), got shape {tuple(data.shape)}")
    if data.is_floating_point() or data.dtype == torch.bool:
        raise ValueError(f"mask must hold integer labels, got dtype {data.dtype}")
    if data.dtype != torch.uint8:
        if data.numel() and (int(data.min()) < 0 or int(data.max()) > 255):
            raise ValueError(
                f"mask labels must lie in 0..255 (255 = ignore), got range {int(data.min())}..{int(data.max())}"
            )
        data = data.to(torch.uint8)
    # Kept as uint8 1 x H x W inside the pipeline (nearest resize and padding work on uint8).
    return tv_tensors.Mask(data.unsqueeze(0))


def to_tv_tensors(image: Any, mask: Any) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Convert an (image, mask) pair to ``tv_tensors.Image`` (3 x H x W) and ``tv_tensors.Mask``
    (uint8, 1 x H x W), checking that both have the same height and width."""
    image_tv, mask_tv = _image_to_tv(image), _mask_to_tv(mask)
    if image_tv.shape[-2:] != mask_tv.shape[-2:]:
        ih, iw = image_tv.shape[-2:]
        mh, mw = mask_tv.shape[-2:]
        raise ValueError(f"mask {mw}x{mh} does not match image {iw}x{ih} (width x height)")
    return image_tv, mask_tv


class RandomScale(v2.Transform):
    """Resize the whole sample by one random factor drawn uniformly from ``scale_range``.

    Images use ``interpolation`` (bilinear by default, antialiased); masks always use nearest.
    The output size is ``round(H * f) x round(W * f)`` (at least 1 pixel).
    """

    def __init__(
        self,
        scale_range: tuple[float, float] = (0.5, 2.0),
        interpolation: v2.InterpolationMode = v2.InterpolationMode.BILINEAR,
        antialias: bool = True,
    ) -> None:
        super().__init__()
        low, high = float(scale_range[0]), float(scale_range[1])
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (low, high)
        self.interpolation = interpolation
        self.antialias = antialias

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        low, high = self.scale_range
        factor = low + (high - low) * float(torch.rand(()))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        nearest = isinstance(inpt, tv_tensors.Mask)
        interpolation = v2.InterpolationMode.NEAREST if nearest else self.interpolation
        return self._call_kernel(
            TF.resize, inpt, params["size"], interpolation=interpolation, antialias=self.antialias
        )

    # torchvision < 0.21 calls the private names.
    _get_params = make_params
    _transform = transform


class SegmentationTransform:
    """Callable ``(image, mask) -> (float32 3 x h x w, int64 h x w)`` around a v2 pipeline.

    The pipeline receives ``tv_tensors.Image`` (uint8) and ``tv_tensors.Mask`` (uint8, 1 x H x W);
    its output is converted to float, normalised with ``mean``/``std`` and returned as plain tensors.
    """

    def __init__(
        self,
        geometric_and_colour: Sequence[Any] = (),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.pipeline = v2.Compose(
            [
                *geometric_and_colour,
                v2.ToDtype(
                    {tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True
                ),
                v2.Normalize(mean=list(mean), std=list(std)),
            ]
        )

    def __call__(self, image: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
        image_tv, mask_tv = to_tv_tensors(image, mask)
        image_out, mask_out = self.pipeline(image_tv, mask_tv)
        return image_out.as_subclass(torch.Tensor), mask_out.as_subclass(torch.Tensor)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline})"


def _as_hw(crop_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(crop_size, int):
        size = (crop_size, crop_size)
    else:
        size = tuple(int(s) for s in crop_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"crop_size must be a positive int or (height, width), got {crop_size!r}")
    return size  # type: ignore[return-value]


def train_transforms(
    crop_size: int | tuple[int, int] = 320,
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    color_jitter: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> SegmentationTransform:
    """Training augmentation: random scale, pad, random crop, flip, colour jitter, normalise.

    Args:
        crop_size: output size in pixels, ``int`` (square) or ``(height, width)``.
        scale_range: the whole pair is resized by a factor drawn uniformly from this range
            (bilinear for the image, nearest for the mask).
        hflip: flip image and mask horizontally with probability 0.5.
        color_jitter: brightness/contrast/saturation jitter of 0.3 (image only).
        ignore_index: label written into mask pixels added by padding (image padding is 0).

    Returns:
        callable ``(image, mask) -> (float32 3 x h x w, int64 h x w)`` with ``(h, w) = crop_size``.
    """
    if not 0 <= ignore_index <= 255:
        raise ValueError(f"ignore_index must lie in 0..255, got {ignore_index}")
    steps: list[Any] = [
        RandomScale(scale_range),
        v2.RandomCrop(
            _as_hw(crop_size),
            pad_if_needed=True,
            fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index},
        ),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if color_jitter:
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3))
    return SegmentationTransform(steps)


def eval_transforms(ignore_index: int = IGNORE_INDEX) -> SegmentationTransform:
    """Full-size evaluation: only convert to float and normalise (no resize, no crop).

    ``ignore_index`` is accepted for symmetry with :func:`train_transforms`; nothing is padded.
    Returns a callable ``(image, mask) -> (float32 3 x H x W, int64 H x W)``.
    """
    if not 0 <= ignore_index <= 255:
        raise ValueError(f"ignore_index must lie in 0..255, got {ignore_index}")
    return SegmentationTransform(())


def denormalize(
    image: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Undo ImageNet normalisation for display: float ``(..., 3, H, W)`` -> uint8 ``(..., 3, H, W)``."""
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"expected a (..., 3, H, W) tensor, got shape {tuple(image.shape)}")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=image.device).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=image.device).view(3, 1, 1)
    pixels = (image.detach().float() * std_t + mean_t) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8)
