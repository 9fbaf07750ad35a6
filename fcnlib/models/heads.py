"""The classifier heads put on pool5 and the upsampling layers of the score maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vgg import scaled

__all__ = ["FCNHead", "PaperHead", "Upsample", "Upsampler", "bilinear_kernel"]

from typing import Literal, get_args

Upsample = Literal["bilinear", "deconv"]


class FCNHead(nn.Sequential):
    """The light classifier head of the seed notes (``_FCNHead``): 3x3 conv, BN, ReLU, dropout, 1x1 conv.

    ``(B, in_channels, h, w) -> (B, channels, h, w)``. The intermediate width is
    ``in_channels // 4`` (128 for VGG16's 512). Erratum: the seed notes write ``in_channels // 512``,
    which for VGG16 squeezes the whole pool5 map through a single channel (512 // 512 = 1) before
    classifying; the code the notes were taken from uses ``// 4``.
    """

    def __init__(
        self, in_channels: int, channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        inter_channels = max(1, in_channels // 4)
        super().__init__(
            nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False),
            norm_layer(inter_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Conv2d(inter_channels, channels, 1),
        )


class PaperHead(nn.Sequential):
    """The paper's head: fc6 as a 7x7 conv, fc7 as a 1x1 conv (each ReLU + dropout), then a 1x1 score layer.

    ``(B, in_channels, h, w) -> (B, num_classes, h, w)``. fc6 has padding 3 so that the score map
    keeps pool5's size for any input (the paper instead pads conv1_1 by 100 and crops).
    """

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        hidden = scaled(4096, width)
        super().__init__(
            nn.Conv2d(in_channels, hidden, 7, padding=3),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout2d(),
            nn.Conv2d(hidden, hidden, 1),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout2d(),
            nn.Conv2d(hidden, num_classes, 1),  # score_fr
        )


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """Weights ``(channels, channels, k, k)`` that make a ``ConvTranspose2d`` upsample each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size, dtype=torch.float64)
    weight[range(channels), range(channels)] = filt
    return weight.float()


class Upsampler(nn.Module):
    """Upsample a score map by ``factor`` to an exact ``size``.

    ``mode="bilinear"``: ``F.interpolate(..., size, align_corners=True)`` (the seed notes' approach).
    ``mode="deconv"``: a learnable ``ConvTranspose2d`` (kernel ``2*factor``, stride ``factor``,
    padding ``factor//2``) initialised to bilinear interpolation. The input is replicate-padded
    (one score before, two after) and the output cropped to exactly ``size`` (any size up to
    ``factor*(h+1)``; floor pooling gives at most ``factor*h + factor - 1``), so border pixels get
    the full kernel weight: a constant map stays constant. ``learnable=False`` freezes the
    kernel, as the paper does for the final upsampling.
    """

    def __init__(
        self, channels: int, factor: int, mode: Upsample = "bilinear", learnable: bool = True
    ) -> None:
        super().__init__()
        if mode not in get_args(Upsample):
            raise ValueError(f"upsample must be 'bilinear' or 'deconv', got {mode!r}")
        self.mode = mode
        self.factor = factor
        if mode == "deconv":
            self.deconv = nn.ConvTranspose2d(
                channels,
                channels,
                kernel_size=2 * factor,
                stride=factor,
                padding=factor // 2,
                bias=False,
            )
            with torch.no_grad():
                self.deconv.weight.copy_(bilinear_kernel(channels, 2 * factor))
            self.deconv.weight.requires_grad_(learnable)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        if self.mode == "bilinear":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        h, w = x.shape[-2:]
        f = self.factor
        if not (size[0] <= f * (h + 1) and size[1] <= f * (w + 1)):
            raise ValueError(f"deconv x{f} cannot map {h}x{w} to {size[0]}x{size[1]}")
        # Replicate the scores (one before, two after), so that every output pixel - borders and
        # the up to f-1 extra rows/columns that floor pooling dropped - lies between two input
        # centres and gets the full kernel weight; then crop the f-pixel leading margin off.
        y = self.deconv(F.pad(x, (1, 2, 1, 2), mode="replicate"))
        return y[..., f : f + size[0], f : f + size[1]]
