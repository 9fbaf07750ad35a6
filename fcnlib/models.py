"""VGG16 backbones and the Fully Convolutional Networks FCN-32s, FCN-16s and FCN-8s.

Shapes follow PyTorch: images are ``(B, 3, H, W)`` float tensors, logits ``(B, C, H, W)``.

The layout mirrors torchvision's ``models/vgg.py``: a ``cfgs`` table, ``make_layers`` that turns a
config into an ``nn.Sequential`` whose state dict loads into (and from) ``torchvision.models.vgg16``,
and builder functions with explicit ``weights_backbone=`` arguments.
"""

from __future__ import annotations

import copy
import os
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "cfgs",
    "make_layers",
    "scaled",
    "convolutionalize",
    "FCNHead",
    "FCN",
    "fcn32s",
    "fcn16s",
    "fcn8s",
    "build_model",
    "grow",
    "bilinear_kernel",
    "load_vgg16_state_dict",
    "MIN_INPUT_SIZE",
    "count_parameters",
    "output_stride_sizes",
]

Head = Literal["paper", "light"]
Upsample = Literal["bilinear", "deconv"]

#: VGG configurations (numbers are conv output channels, ``"M"`` a 2x2 max pool with stride 2).
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

#: Inputs smaller than this (in either dimension) are padded up to it; see :class:`FCN`.
MIN_INPUT_SIZE = 32


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by ``width`` (at least 1)."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, int(round(channels * width)))


def make_layers(cfg: list[int | str], batch_norm: bool = False, width: float = 1.0) -> nn.Sequential:
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


class FCNHead(nn.Sequential):
    """The light classifier head of the seed notes (``_FCNHead``): 3x3 conv, BN, ReLU, dropout, 1x1 conv.

    ``(B, in_channels, h, w) -> (B, channels, h, w)``. The intermediate width is
    ``in_channels // 4`` (128 for VGG16's 512). Erratum: the seed notes write ``in_channels // 512``,
    which for VGG16 squeezes the whole pool5 map through a single channel (512 // 512 = 1) before
    classifying; the code the notes were taken from uses ``// 4``.
    """

    def __init__(self, in_channels: int, channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d) -> None:
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

    def __init__(self, channels: int, factor: int, mode: Upsample = "bilinear", learnable: bool = True) -> None:
        super().__init__()
        if mode not in ("bilinear", "deconv"):
            raise ValueError(f"upsample must be 'bilinear' or 'deconv', got {mode!r}")
        self.mode = mode
        self.factor = factor
        if mode == "deconv":
            self.deconv = nn.ConvTranspose2d(
                channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, bias=False
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


class FCN(nn.Module):
    """FCN-32s / 16s / 8s on a VGG backbone.

    ``forward(x)`` maps ``(B, 3, H, W)`` to logits ``(B, num_classes, H, W)``: exactly the input size,
    for every ``H, W >= 1``. The five max pools floor odd sizes; the upsampling path goes to the
    exact pool4, pool3 and input sizes, so nothing is lost to rounding. Inputs smaller than
    ``MIN_INPUT_SIZE`` (32) pixels in a dimension are zero-padded on the bottom/right up to 32
    (zero is the dataset mean after normalisation), so that pool5 is at least 1x1, and the logits
    are cropped back to ``H x W``.

    ``stride`` is 32, 16 or 8: how many skip connections are fused (none, pool4, pool4 + pool3).
    All three upsample the class scores along one ladder, pool5 -> pool4 -> pool3 -> input sizes
    (x2, x2, x8), and FCN-16s/8s add the pool4/pool3 skip scores on its rungs. The seed code
    interpolates FCN-32s in a single x32 step instead; the ladder differs from that by a slight
    smoothing, and it makes staged training exact: the skip score layers start at zero, so an
    FCN-16s/8s grown from its parent (:func:`grow`) starts out with identical outputs.
    """

    def __init__(
        self,
        stride: Literal[32, 16, 8],
        num_classes: int = 21,
        *,
        head: Head = "paper",
        upsample: Upsample = "bilinear",
        width: float = 1.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if stride not in (32, 16, 8):
            raise ValueError(f"stride must be 32, 16 or 8, got {stride}")
        if head not in ("paper", "light"):
            raise ValueError(f"head must be 'paper' or 'light', got {head!r}")
        if upsample not in ("bilinear", "deconv"):
            raise ValueError(f"upsample must be 'bilinear' or 'deconv', got {upsample!r}")
        self.stride = stride
        self.num_classes = num_classes
        self.head_type = head
        self.upsample_mode = upsample
        self.width = width

        features = make_layers(cfgs["D"], batch_norm=batch_norm, width=width)
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        # Keep torchvision's layer indices (features.0 ... features.30) so VGG16 weights load directly.
        self.features = features
        self._pool3, self._pool4 = pools[2], pools[3]
        c3, c4, c5 = scaled(256, width), scaled(512, width), scaled(512, width)
        self.head = PaperHead(c5, num_classes, width) if head == "paper" else FCNHead(c5, num_classes)
        # Every stage upsamples along the same ladder pool5 -> pool4 -> pool3 -> input; FCN-16s and
        # FCN-8s add skip scores on its rungs. A 2x step right before a fused skip is learnable (the
        # paper's upscore2 / upscore_pool4); the others stay fixed bilinear, as the paper's final one.
        self.up_pool4 = Upsampler(num_classes, 2, upsample, learnable=stride <= 16)
        self.up_pool3 = Upsampler(num_classes, 2, upsample, learnable=stride == 8)
        self.up_final = Upsampler(num_classes, 8, upsample, learnable=False)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
            nn.init.zeros_(self.score_pool4.weight)
            nn.init.zeros_(self.score_pool4.bias)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
            nn.init.zeros_(self.score_pool3.weight)
            nn.init.zeros_(self.score_pool3.bias)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
            x = F.pad(x, (0, max(0, MIN_INPUT_SIZE - w), 0, max(0, MIN_INPUT_SIZE - h)))
        pool3 = self.features[: self._pool3 + 1](x)
        pool4 = self.features[self._pool3 + 1 : self._pool4 + 1](pool3)
        pool5 = self.features[self._pool4 + 1 :](pool4)
        score = self.up_pool4(self.head(pool5), pool4.shape[-2:])
        if self.stride <= 16:
            score = score + self.score_pool4(pool4)
        score = self.up_pool3(score, pool3.shape[-2:])
        if self.stride == 8:
            score = score + self.score_pool3(pool3)
        out = self.up_final(score, tuple(x.shape[-2:]))
        return out[..., :h, :w]


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

        enum = VGG16_BN_Weights if batch_norm else VGG16_Weights
        return enum.IMAGENET1K_V1.get_state_dict(progress=progress, check_hash=True)
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights not found: {path} (use None, 'IMAGENET1K_V1' or a VGG16 state dict file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unreadable file
        raise ValueError(f"cannot read backbone weights {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(k.startswith("features.") for k in state):
        raise ValueError(f"{path} is not a VGG16 state dict (no 'features.*' keys)")
    return state


def _load_backbone(model: FCN, state: dict[str, Tensor]) -> None:
    features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    model.features.load_state_dict(features, strict=True)
    if model.head_type == "paper" and "classifier.0.weight" in state:
        fc6, fc7 = model.head[0], model.head[3]
        w6 = state["classifier.0.weight"]
        if w6.numel() != fc6.weight.numel():
            raise ValueError("VGG16 classifier weights do not fit this head (width must be 1.0 to use fc6/fc7)")
        with torch.no_grad():
            fc6.weight.copy_(w6.reshape(fc6.weight.shape))
            fc6.bias.copy_(state["classifier.0.bias"])
            fc7.weight.copy_(state["classifier.3.weight"].reshape(fc7.weight.shape))
            fc7.bias.copy_(state["classifier.3.bias"])


def _build(
    stride: Literal[32, 16, 8],
    num_classes: int,
    head: Head,
    weights_backbone: str | os.PathLike | None,
    upsample: Upsample,
    width: float,
    batch_norm: bool,
    progress: bool,
) -> FCN:
    if weights_backbone is not None and width != 1.0:
        raise ValueError(f"pretrained VGG16 weights need width=1.0, got width={width}")
    model = FCN(stride, num_classes, head=head, upsample=upsample, width=width, batch_norm=batch_norm)
    state = load_vgg16_state_dict(weights_backbone, progress=progress, batch_norm=batch_norm)
    if state is not None:
        _load_backbone(model, state)
    return model


def fcn32s(
    num_classes: int = 21,
    *,
    head: Head = "paper",
    weights_backbone: str | os.PathLike | None = None,
    upsample: Upsample = "bilinear",
    width: float = 1.0,
    batch_norm: bool = False,
    progress: bool = True,
) -> FCN:
    """FCN-32s: VGG16 features, a classifier head on pool5, one x32 upsampling to the input size.

    ``weights_backbone``: ``None`` (random init), ``"IMAGENET1K_V1"`` (torchvision's ImageNet VGG16,
    downloaded with its checksum) or a path to a saved ``torchvision.models.vgg16().state_dict()``.
    With ``head="paper"`` the VGG16 classifier's fc6/fc7 initialise the head's convolutions.
    ``batch_norm=True`` uses the VGG16-BN layout (easier to train from scratch). ``width`` scales
    every channel count (needs ``weights_backbone=None`` unless 1.0).
    """
    return _build(32, num_classes, head, weights_backbone, upsample, width, batch_norm, progress)


def fcn16s(
    num_classes: int = 21,
    *,
    head: Head = "paper",
    weights_backbone: str | os.PathLike | None = None,
    upsample: Upsample = "bilinear",
    width: float = 1.0,
    batch_norm: bool = False,
    progress: bool = True,
) -> FCN:
    """FCN-16s: FCN-32s plus the pool4 skip (zero-initialised 1x1 score layer), x16 final upsampling.

    Arguments as :func:`fcn32s`.
    """
    return _build(16, num_classes, head, weights_backbone, upsample, width, batch_norm, progress)


def fcn8s(
    num_classes: int = 21,
    *,
    head: Head = "paper",
    weights_backbone: str | os.PathLike | None = None,
    upsample: Upsample = "bilinear",
    width: float = 1.0,
    batch_norm: bool = False,
    progress: bool = True,
) -> FCN:
    """FCN-8s: FCN-16s plus the pool3 skip (zero-initialised 1x1 score layer), x8 final upsampling.

    Arguments as :func:`fcn32s`.
    """
    return _build(8, num_classes, head, weights_backbone, upsample, width, batch_norm, progress)


_BUILDERS = {"fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s}


def build_model(name: str, num_classes: int = 21, **kwargs) -> FCN:
    """Build ``"fcn32s"``, ``"fcn16s"`` or ``"fcn8s"`` by name (keyword arguments as :func:`fcn32s`)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_BUILDERS)}") from None
    return builder(num_classes, **kwargs)


def grow(parent: FCN) -> FCN:
    """The paper's staged training: FCN-16s from a trained FCN-32s, FCN-8s from a trained FCN-16s.

    Returns a new model one stage finer with every weight of ``parent`` copied (backbone, head,
    skip score layers, upsamplers) and the new skip's score layer at zero, so the child's output
    equals the parent's exactly until training moves the new layer.
    """
    if parent.stride == 8:
        raise ValueError("FCN-8s is the finest stage; nothing to grow")
    child_stride = 16 if parent.stride == 32 else 8
    child = FCN(
        child_stride,
        parent.num_classes,
        head=parent.head_type,
        upsample=parent.upsample_mode,
        width=parent.width,
        batch_norm=any(isinstance(m, nn.BatchNorm2d) for m in parent.features),
    )
    result = child.load_state_dict(parent.state_dict(), strict=False)
    new_layer = "score_pool4." if child_stride == 16 else "score_pool3."
    if result.unexpected_keys or any(not k.startswith(new_layer) for k in result.missing_keys):  # pragma: no cover
        raise RuntimeError(f"grow() could not map weights: {result}")
    return child.to(next(parent.parameters()).device)


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

