"""VGG16 the way torchvision builds it: the ``cfgs`` table, ``make_layers``, weights loading, and
``convolutionalize``, which turns its classifier into convolutions (the paper's Sec. 3.1).

Shapes follow PyTorch: images are ``(B, 3, H, W)`` float tensors.
"""

from __future__ import annotations

import copy
import os

import torch
from torch import Tensor, nn

from ..errors import FcnlibError

__all__ = [
    "BackboneWeightsError",
    "cfgs",
    "convolutionalize",
    "count_parameters",
    "load_vgg16_state_dict",
    "make_layers",
    "output_stride_sizes",
    "scaled",
]


class BackboneWeightsError(FcnlibError, ValueError):
    """Backbone weights that cannot be found, read or used."""


#: VGG configurations (numbers are conv output channels, ``"M"`` a 2x2 max pool with stride 2).
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by ``width`` (at least 1)."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, round(channels * width))


def make_layers(
    cfg: list[int | str], batch_norm: bool = False, width: float = 1.0
) -> nn.Sequential:
    """Build VGG's convolutional part from a config such as ``cfgs["D"]``.

    Every 3x3 convolution has padding 1 (keeps H, W); every ``"M"`` halves H and W (floor).
    ``width`` scales every channel count (0.25 gives a copy a 2-core CPU can train). At
    ``width=1.0`` the state dict is key-for-key that of ``torchvision.models.vgg16().features``
    (``vgg16_bn`` with ``batch_norm=True``).
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out_channels = scaled(int(v), width)
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
    return nn.Sequential(*layers)


def convolutionalize(vgg: nn.Module) -> nn.Sequential:
    """Turn a torchvision ``VGG`` classifier into a fully convolutional network (the paper's Sec. 3.1).

    The three Linear layers become convolutions with the same weights: fc6 a 7x7 convolution
    over the 512-channel pool5 map, fc7 and fc8 1x1 convolutions. ``avgpool`` is dropped (it is the
    identity on the 7x7 map of a 224x224 input). Returns ``nn.Sequential(features, fc6, relu,
    dropout, fc7, relu, dropout, fc8)``: on a ``(B, 3, 224, 224)`` input its ``(B, K, 1, 1)`` output
    equals ``vgg(x)`` in eval mode; on ``(B, 3, 384, 512)`` it gives a ``(B, K, 6, 10)`` score map
    (12x16 after pool5, less 6 for the 7x7 fc6). The input VGG is not modified.
    """
    linears = [m for m in vgg.classifier if isinstance(m, nn.Linear)]
    if len(linears) != 3:
        raise ValueError(f"expected a VGG classifier with 3 Linear layers, found {len(linears)}")
    fc6, fc7, fc8 = linears
    in_channels = fc6.in_features // 49
    if in_channels * 49 != fc6.in_features:
        raise ValueError(f"fc6 expects {fc6.in_features} inputs, not a multiple of 7*7")

    def conv_from(linear: nn.Linear, c_in: int, k: int) -> nn.Conv2d:
        conv = nn.Conv2d(c_in, linear.out_features, kernel_size=k)
        with torch.no_grad():
            # Linear flattens (C, 7, 7) in C-major order, exactly the layout of a conv kernel.
            conv.weight.copy_(linear.weight.reshape(linear.out_features, c_in, k, k))
            conv.bias.copy_(linear.bias)
        return conv

    features = copy.deepcopy(vgg.features)
    return nn.Sequential(
        features,
        conv_from(fc6, in_channels, 7),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        conv_from(fc7, fc6.out_features, 1),
        nn.ReLU(inplace=True),
        nn.Dropout(),
        conv_from(fc8, fc7.out_features, 1),
    )


def load_vgg16_state_dict(
    weights: str | os.PathLike | None, progress: bool = True, batch_norm: bool = False
) -> dict[str, Tensor] | None:
    """Resolve ``weights_backbone``: ``None``, ``"IMAGENET1K_V1"`` (downloaded by torchvision) or a path.

    Returns a full VGG16 (``batch_norm``: VGG16-BN) state dict (``features.*`` and
    ``classifier.*`` keys), or ``None``.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights in ("IMAGENET1K_V1", "DEFAULT"):
        from torchvision.models import VGG16_BN_Weights, VGG16_Weights

        enum = (VGG16_BN_Weights if batch_norm else VGG16_Weights).IMAGENET1K_V1
        try:
            return enum.get_state_dict(progress=progress, check_hash=True)
        except (OSError, RuntimeError) as exc:  # no network (URLError is an OSError), a bad hash
            raise BackboneWeightsError(
                f"cannot download the ImageNet VGG16 weights from {enum.url} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); download that file elsewhere and pass "
                "its path as `weights_backbone`, or train from scratch (`weights_backbone` none)"
            ) from None
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise BackboneWeightsError(
            f"backbone weights not found: {path} (use None, 'IMAGENET1K_V1' or a VGG16 state dict file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unreadable file
        raise BackboneWeightsError(
            f"cannot read backbone weights {path} ({type(exc).__name__}): it must be a VGG16 state dict "
            "saved with torch.save (fcnlib loads only plain tensors, never code)"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(k.startswith("features.") for k in state):
        raise BackboneWeightsError(f"{path} is not a VGG16 state dict (no 'features.*' keys)")
    return state


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def output_stride_sizes(h: int, w: int, num_pools: int = 5) -> list[tuple[int, int]]:
    """Spatial sizes after each of VGG's 2x2/2 max pools (floor), for an ``h x w`` input."""
    sizes = []
    for _ in range(num_pools):
        h, w = h // 2, w // 2
        sizes.append((h, w))
    return sizes
