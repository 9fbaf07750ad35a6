"""Settings of the commands as dataclasses: :class:`EvalSettings`, :class:`PredictSettings`.

Each field carries its help text, choices and group in its metadata; the command line generates
one flag per field from them. Fields shared with the training recipe (device, mixed precision,
loader workers, the image size limit) are defined once here. Validation raises
:class:`ConfigError` naming the Python parameter in backticks (```train_size```); the command
line turns those names into its flags.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .constants import DEFAULT_MAX_IMAGE_PIXELS
from .data.registry import DATASETS, SHAPES
from .errors import FcnlibError

__all__ = [
    "AMP_CHOICES",
    "PREDICT_MODES",
    "ConfigError",
    "EvalSettings",
    "PredictSettings",
    "check_predict_options",
    "check_scales",
    "setting",
]

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
PREDICT_MODES = ("auto", "whole", "scaled", "tiled")


class ConfigError(FcnlibError, ValueError):
    """A setting that cannot be used (one-line message)."""


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its help text and metadata (``choices``, ``group``)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


# The settings every command shares, defined once (the recipe uses them too).
def device_setting(group: str = "run") -> Any:
    return setting("auto", "auto, cpu, cuda or cuda:N", group=group)


def amp_setting(group: str = "run") -> Any:
    return setting(
        "auto",
        "mixed precision: auto = bf16/fp16 on a GPU, off on the CPU",
        choices=AMP_CHOICES,
        group=group,
    )


def workers_setting(group: str = "data") -> Any:
    return setting(0, "DataLoader worker processes (0: load in the main process)", group=group)


def max_image_pixels_setting(group: str = "run") -> Any:
    return setting(
        DEFAULT_MAX_IMAGE_PIXELS,
        "refuse images of more than N pixels, judged from the file header before decoding",
        group=group,
    )


def check_scales(scale: float | Sequence[float], name: str = "scale") -> tuple[float, ...]:
    """``scale`` (one number or several) as a tuple of positive finite floats."""
    many = not isinstance(scale, (int, float))
    try:
        scales = tuple(float(s) for s in scale) if many else (float(scale),)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be positive numbers, got {scale!r}") from None
    if not scales or any(not (0 < s < math.inf) for s in scales):
        shown = " ".join(str(s) for s in scales) or "nothing"
        raise ConfigError(f"`{name}` must be positive finite numbers, got {shown}")
    return scales


def check_predict_options(
    mode: str, train_size: int, tile: int, overlap: int | None, scale: Any
) -> tuple[int, tuple[float, ...]]:
    """The checked ``(overlap, scales)`` of a prediction; :class:`ConfigError` otherwise."""
    if mode not in PREDICT_MODES:
        raise ConfigError(f"`mode` must be one of {', '.join(PREDICT_MODES)}, got {mode!r}")
    for name, value in (("train_size", train_size), ("tile", tile)):
        if int(value) < 1:
            raise ConfigError(f"`{name}` must be >= 1, got {value}")
    overlap = int(tile) // 4 if overlap is None else int(overlap)
    if not 0 <= overlap < int(tile):
        raise ConfigError(
            f"`overlap` must lie in 0..{int(tile) - 1} (below `tile` {tile}), got {overlap}"
        )
    return overlap, check_scales(scale)


def _check_common(settings: Any) -> None:
    """Choices and the fields shared by every command."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ConfigError(f"`{f.name}` must be one of {', '.join(choices)}, not {value!r}")
    if getattr(settings, "workers", 0) < 0:
        raise ConfigError(f"`workers` must be >= 0, got {settings.workers}")
    if getattr(settings, "max_image_pixels", 1) < 1:
        raise ConfigError(f"`max_image_pixels` must be >= 1, got {settings.max_image_pixels}")


@dataclass
class EvalSettings:
    """How ``fcnlib eval`` evaluates a model (None: the model's recipe or card decides)."""

    data: str = setting(SHAPES, "data set", choices=tuple(DATASETS), group="data")
    data_root: str | None = setting(None, "data set folder (not needed for shapes)", group="data")
    split: str = setting("val", "split to evaluate, e.g. val or test", group="data")
    limit: int | None = setting(None, "evaluate only the first N images", group="data")
    batch_size: int = setting(1, "images per batch", group="data")
    workers: int = workers_setting()
    scale: list[float] | None = setting(
        None,
        "input scale(s); logits upsampled to full size and averaged over scales "
        "(none: the recipe's eval_scale or the card's scale)",
        group="eval",
    )
    flip: bool | None = setting(
        None, "average the mirrored image's logits (none: the recipe's or card's)", group="eval"
    )
    per_image: bool = setting(False, "also report the per-image mean metrics", group="eval")
    device: str = device_setting()
    amp: str = amp_setting()

    def validate(self) -> EvalSettings:
        """Raise :class:`ConfigError` naming the first unusable setting; returns ``self``."""
        _check_common(self)
        for name in ("limit", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"`{name}` must be >= 1, got {value}")
        if self.scale is not None:
            check_scales(self.scale)
        return self


@dataclass
class PredictSettings:
    """How ``fcnlib predict`` segments photos (None: the weights' card or the default decides)."""

    mode: str | None = setting(
        None, "auto = whole up to 1 MP, else scaled (none: auto, or the card's)",
        choices=PREDICT_MODES, group="predict",
    )  # fmt: skip
    train_size: int | None = setting(
        None, "longer side used by mode scaled, px: the training scale (none: 512, or the card's)",
        group="predict",
    )  # fmt: skip
    tile: int = setting(512, "window size of mode tiled, px", group="predict")
    overlap: int | None = setting(
        None, "overlap of neighbouring tiles, px, below tile (none: tile/4)", group="predict"
    )
    scale: list[float] | None = setting(
        None, "input scale(s), e.g. 0.75 1 1.25; logits averaged (none: 1, or the card's)",
        group="predict",
    )  # fmt: skip
    flip: bool | None = setting(
        None, "also average the mirrored prediction (none: no, or the card's)", group="predict"
    )
    max_image_pixels: int = max_image_pixels_setting()
    device: str = device_setting()

    #: The values of the fields left None when no card gives them.
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "mode": "auto",
        "train_size": 512,
        "scale": [1.0],
        "flip": False,
    }

    def resolved(self, card: dict[str, Any] | None = None) -> PredictSettings:
        """A copy with the None fields filled from ``card`` (a weights card's ``predict``
        section; its ``scales`` key is read as ``scale``), then the defaults; validated."""
        card = dict(card or {})
        if "scales" in card:
            card.setdefault("scale", card.pop("scales"))
        values = {}
        for name, default in self.DEFAULTS.items():
            value = getattr(self, name)
            values[name] = value if value is not None else card.get(name, default)
        out = dataclasses.replace(self, **values)
        out.overlap = check_predict_options(
            out.mode, out.train_size, out.tile, out.overlap, out.scale
        )[0]
        _check_common(out)
        return out

    def predict_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`fcnlib.predict.predict` (after :meth:`resolved`)."""
        names = ("mode", "train_size", "tile", "overlap", "flip", "max_image_pixels")
        return {"scale": tuple(self.scale or [1.0]), **{n: getattr(self, n) for n in names}}
