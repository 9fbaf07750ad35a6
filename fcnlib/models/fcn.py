"""FCN-32s, FCN-16s and FCN-8s on a VGG16 backbone, their builders, and ``grow`` (staged training).

Shapes follow PyTorch: images are ``(B, 3, H, W)`` float tensors, logits ``(B, C, H, W)``. The
builders follow torchvision's: explicit ``weights=`` (trained FCN weights with their card) and
``weights_backbone=`` (ImageNet VGG16) arguments.
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import FcnlibError
from .heads import FCNHead, PaperHead, Upsample, Upsampler
from .vgg import BackboneWeightsError, cfgs, load_vgg16_state_dict, make_layers, scaled
from .weights import Weights, WeightsError, get_weights

__all__ = [
    "FCN",
    "HEADS",
    "MAX_CLASSES",
    "MIN_INPUT_SIZE",
    "MODEL_NAMES",
    "STRIDES",
    "UPSAMPLES",
    "WIDTH_RANGE",
    "Head",
    "ModelError",
    "ModelName",
    "build_model",
    "fcn8s",
    "fcn16s",
    "fcn32s",
    "grow",
]

Head = Literal["paper", "light"]
ModelName = Literal["fcn32s", "fcn16s", "fcn8s"]

#: Output stride of each model: how coarse its last fused score map is.
STRIDES: dict[str, int] = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}
MODEL_NAMES: tuple[str, ...] = tuple(STRIDES)
HEADS: tuple[str, ...] = get_args(Head)  # the literals, written once in the type
UPSAMPLES: tuple[str, ...] = get_args(Upsample)

#: Inputs smaller than this (in either dimension) are padded up to it; see :class:`FCN`.
MIN_INPUT_SIZE = 32
#: Most classes: label 255 is the ignore value of every mask.
MAX_CLASSES = 255
#: Channel multipliers allowed (1/64 of VGG16 up to 4 times it).
WIDTH_RANGE = (1 / 64, 4.0)
#: What a builder uses without ``weights`` when an architecture argument is left out (None).
_ARCH_DEFAULTS = {"head": "paper", "upsample": "bilinear", "width": 1.0, "batch_norm": False}


class ModelError(FcnlibError, ValueError):
    """Builder arguments that describe no model (one-line message)."""


def _check_arguments(
    stride: object,
    num_classes: object,
    head: object,
    upsample: object,
    width: object,
    batch_norm: object,
) -> None:
    low, high = WIDTH_RANGE
    checks = (
        (stride in (32, 16, 8), f"stride must be 32, 16 or 8, got {stride!r}"),
        (
            isinstance(num_classes, int)
            and not isinstance(num_classes, bool)
            and 2 <= num_classes <= MAX_CLASSES,
            f"num_classes must be a whole number in 2..{MAX_CLASSES}, got {num_classes!r}",
        ),
        (head in HEADS, f"head must be 'paper' or 'light', got {head!r}"),
        (upsample in UPSAMPLES, f"upsample must be 'bilinear' or 'deconv', got {upsample!r}"),
        (
            isinstance(width, (int, float))
            and not isinstance(width, bool)
            and low <= width <= high,
            f"width must be a number in {low:g}..{high:g}, got {width!r}",
        ),
        (isinstance(batch_norm, bool), f"batch_norm must be True or False, got {batch_norm!r}"),
    )
    for ok, message in checks:
        if not ok:
            raise ModelError(message)


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
        _check_arguments(stride, num_classes, head, upsample, width, batch_norm)
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
        self.head = (
            PaperHead(c5, num_classes, width) if head == "paper" else FCNHead(c5, num_classes)
        )
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

    def feature_maps(self, x: Tensor) -> dict[str, Tensor]:
        """The backbone's named maps for ``x (B, 3, H, W)`` (H, W >= 32): ``pool3`` (stride 8,
        256 x width channels), ``pool4`` (stride 16, 512 x width) and ``pool5`` (stride 32, 512 x width)."""
        pool3 = self.features[: self._pool3 + 1](x)
        pool4 = self.features[self._pool3 + 1 : self._pool4 + 1](pool3)
        pool5 = self.features[self._pool4 + 1 :](pool4)
        return {"pool3": pool3, "pool4": pool4, "pool5": pool5}

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
            x = F.pad(x, (0, max(0, MIN_INPUT_SIZE - w), 0, max(0, MIN_INPUT_SIZE - h)))
        maps = self.feature_maps(x)
        pool3, pool4, pool5 = maps["pool3"], maps["pool4"], maps["pool5"]
        score = self.up_pool4(self.head(pool5), pool4.shape[-2:])
        if self.stride <= 16:
            score = score + self.score_pool4(pool4)
        score = self.up_pool3(score, pool3.shape[-2:])
        if self.stride == 8:
            score = score + self.score_pool3(pool3)
        out = self.up_final(score, tuple(x.shape[-2:]))
        return out[..., :h, :w]


def _load_backbone(model: FCN, state: dict[str, Tensor]) -> None:
    features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    model.features.load_state_dict(features, strict=True)
    if model.head_type == "paper" and "classifier.0.weight" in state:
        fc6, fc7 = model.head[0], model.head[3]
        w6 = state["classifier.0.weight"]
        if w6.numel() != fc6.weight.numel():
            raise ValueError(
                "VGG16 classifier weights do not fit this head (width must be 1.0 to use fc6/fc7)"
            )
        with torch.no_grad():
            fc6.weight.copy_(w6.reshape(fc6.weight.shape))
            fc6.bias.copy_(state["classifier.0.bias"])
            fc7.weight.copy_(state["classifier.3.weight"].reshape(fc7.weight.shape))
            fc7.bias.copy_(state["classifier.3.bias"])


def _build(
    stride: Literal[32, 16, 8], num_classes: int | None, weights: str | Weights | None, **kw
) -> FCN:
    if weights is not None:
        return _from_weights(stride, num_classes, get_weights(weights), **kw)
    given = {k: v for k, v in kw.items() if k in _ARCH_DEFAULTS and v is not None}
    kw.update({**_ARCH_DEFAULTS, **given})
    progress = kw.pop("progress", True)
    weights_backbone = kw.pop("weights_backbone", None)
    if weights_backbone is not None and kw["width"] != 1.0:
        raise BackboneWeightsError(
            f"pretrained VGG16 weights need width=1.0, got width={kw['width']}"
        )
    model = FCN(stride, 21 if num_classes is None else num_classes, **kw)
    state = load_vgg16_state_dict(weights_backbone, progress=progress, batch_norm=kw["batch_norm"])
    if state is not None:
        _load_backbone(model, state)
    return model


def _from_weights(stride: int, num_classes: int | None, weights: Weights, **kw) -> FCN:
    arch = weights.architecture
    if STRIDES[arch["model"]] != stride:
        raise WeightsError(f"weights {weights.name!r} are for {arch['model']}, not fcn{stride}s")
    if num_classes not in (None, arch["num_classes"]):
        raise WeightsError(
            f"weights {weights.name!r} have {arch['num_classes']} classes, not {num_classes}"
        )
    if kw.get("weights_backbone") is not None:
        raise WeightsError("give weights= or weights_backbone=, not both")
    differ = [
        f"{k}={kw[k]!r} (the weights have {arch[k]!r})"
        for k in _ARCH_DEFAULTS
        if kw.get(k) is not None and kw[k] != arch[k]
    ]
    if differ:
        raise WeightsError(
            f"weights {weights.name!r} fix the architecture; these arguments conflict with it: "
            f"{', '.join(differ)} (leave them out)"
        )
    model = FCN(
        stride,
        arch["num_classes"],
        head=arch["head"],
        upsample=arch["upsample"],
        width=arch["width"],
        batch_norm=arch["batch_norm"],
    )
    try:
        model.load_state_dict(weights.get_state_dict())
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise WeightsError(
            f"weights file {weights.file} does not fit the architecture on its card: "
            f"{'; '.join(lines[1:3])[:300] or lines[0]}"
        ) from None
    return model.eval()


_BUILDER_DOC = """

    ``weights``: trained FCN weights, by name (e.g. ``"camvid-cpu"``, see
    :func:`fcnlib.models.list_weights`) or a :class:`~fcnlib.models.Weights`; the architecture and
    ``num_classes`` then come from the weights' card and the model is returned in eval mode.
    ``weights_backbone``: ``None`` (random init), ``"IMAGENET1K_V1"`` (torchvision's ImageNet
    VGG16, downloaded with its checksum) or a path to a saved ``torchvision.models.vgg16()``
    state dict; with ``head="paper"`` the VGG16 classifier's fc6/fc7 initialise the head.
    ``batch_norm=True`` uses the VGG16-BN layout (easier to train from scratch). ``width`` scales
    every channel count (needs ``weights_backbone=None`` unless 1.0). ``num_classes`` defaults
    to 21 (PASCAL VOC) without ``weights``. ``head``, ``upsample``, ``width`` and ``batch_norm``
    left out (None) mean ``"paper"``, ``"bilinear"``, 1.0 and False, or the weights' values;
    given with ``weights``, they must agree with them. Arguments that describe no model
    (``num_classes`` outside 2..255, a width outside 1/64..4, an unknown head) raise
    :class:`ModelError`, conflicts with the weights :class:`WeightsError`.
    """


def fcn32s(
    num_classes: int | None = None,
    *,
    weights: str | Weights | None = None,
    head: Head | None = None,
    weights_backbone: str | os.PathLike | None = None,
    upsample: Upsample | None = None,
    width: float | None = None,
    batch_norm: bool | None = None,
    progress: bool = True,
) -> FCN:
    return _build(
        32,
        num_classes,
        weights,
        head=head,
        weights_backbone=weights_backbone,
        upsample=upsample,
        width=width,
        batch_norm=batch_norm,
        progress=progress,
    )


def fcn16s(
    num_classes: int | None = None,
    *,
    weights: str | Weights | None = None,
    head: Head | None = None,
    weights_backbone: str | os.PathLike | None = None,
    upsample: Upsample | None = None,
    width: float | None = None,
    batch_norm: bool | None = None,
    progress: bool = True,
) -> FCN:
    return _build(
        16,
        num_classes,
        weights,
        head=head,
        weights_backbone=weights_backbone,
        upsample=upsample,
        width=width,
        batch_norm=batch_norm,
        progress=progress,
    )


def fcn8s(
    num_classes: int | None = None,
    *,
    weights: str | Weights | None = None,
    head: Head | None = None,
    weights_backbone: str | os.PathLike | None = None,
    upsample: Upsample | None = None,
    width: float | None = None,
    batch_norm: bool | None = None,
    progress: bool = True,
) -> FCN:
    return _build(
        8,
        num_classes,
        weights,
        head=head,
        weights_backbone=weights_backbone,
        upsample=upsample,
        width=width,
        batch_norm=batch_norm,
        progress=progress,
    )


fcn32s.__doc__ = (
    "FCN-32s: VGG16 features, a classifier head on pool5, upsampling to the input size."
    + _BUILDER_DOC
)
fcn16s.__doc__ = (
    "FCN-16s: FCN-32s plus the pool4 skip (zero-initialised 1x1 score layer)." + _BUILDER_DOC
)
fcn8s.__doc__ = (
    "FCN-8s: FCN-16s plus the pool3 skip (zero-initialised 1x1 score layer)." + _BUILDER_DOC
)


_BUILDERS = {"fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s}


def build_model(name: str, num_classes: int | None = None, **kwargs) -> FCN:
    """Build ``"fcn32s"``, ``"fcn16s"`` or ``"fcn8s"`` by name (keyword arguments as :func:`fcn32s`)."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(_BUILDERS)}") from None
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
    if result.unexpected_keys or any(
        not k.startswith(new_layer) for k in result.missing_keys
    ):  # pragma: no cover
        raise RuntimeError(f"grow() could not map weights: {result}")
    return child.to(next(parent.parameters()).device)
