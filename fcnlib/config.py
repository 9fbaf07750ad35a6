"""Training recipes: a dataclass of every setting, read from YAML (safely) and overridden from the command line."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["TrainConfig", "load_config", "add_config_arguments", "config_from_args", "ConfigError"]


class ConfigError(ValueError):
    """A recipe file or override that cannot be used (one-line message)."""


@dataclass
class TrainConfig:
    """Every training setting. The defaults are a tiny CPU run on the synthetic shapes (about a minute)."""

    # model
    model: str = "fcn8s"  # fcn32s | fcn16s | fcn8s
    stages: list[str] = field(default_factory=list)  # e.g. [fcn32s, fcn16s, fcn8s]: staged training
    head: str = "light"  # paper | light
    upsample: str = "bilinear"  # bilinear | deconv
    width: float = 0.125
    batch_norm: bool = True
    weights_backbone: str | None = None  # None | IMAGENET1K_V1 | path to a VGG16 state dict
    init_from: str | None = None  # checkpoint of a coarser model to grow from (staged training)
    # data
    data: str = "shapes"  # voc | sbd | trainaug | camvid | folder | shapes
    data_root: str | None = None
    num_classes: int | None = None  # needed for data=folder; otherwise taken from the dataset
    train_split: str = "train"
    val_split: str = "val"
    crop_size: int = 96  # training crop height, px (and width unless crop_width is set)
    crop_width: int | None = None  # training crop width, px (None: square crops)
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])  # random rescale factors
    color_jitter: bool = True  # brightness/contrast/saturation jitter of 0.3
    cache: bool = False  # decode every training/validation pair into memory once
    limit_train: int | None = None  # use only the first N training images
    limit_val: int | None = None
    workers: int = 0
    # optimisation
    optimizer: str = "sgd"  # sgd | adamw
    warmup_epochs: float = 0.0  # linear learning-rate warm-up, epochs
    class_weighting: str = "none"  # none | median-frequency (computed from the training labels)
    class_weight_max: float = 10.0  # clamp of median-frequency weights
    epochs: int = 6
    batch_size: int = 8
    val_batch_size: int = 1
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "poly"  # poly | step | constant
    poly_power: float = 0.9
    step_size: int = 20  # epochs, for schedule=step
    gamma: float = 0.1
    class_weights: list[float] | None = None
    # execution
    amp: str = "auto"  # auto | bf16 | fp16 | off
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    threads: int | None = None  # intra-op CPU threads (None: PyTorch's default)
    max_minutes: float | None = None  # time budget: stop after the epoch in which it runs out
    val_every: int = 1  # validate every N epochs (and always after the last one)
    eval_scale: float = 1.0  # validation/evaluation input scale; logits are upsampled to full size
    eval_flip: bool = False  # also average the logits of the mirrored image at evaluation
    out: str = "runs/shapes"
    log_every: int = 20  # steps between progress updates (each one syncs with the device)
    per_image: bool = False  # also report the seed notes' per-image mean metrics

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "recipe") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
        cfg = cls()
        for key, value in values.items():
            setattr(cfg, key, _coerce(key, value, source))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        checks = [
            (self.model in ("fcn32s", "fcn16s", "fcn8s"), f"model must be fcn32s, fcn16s or fcn8s, not {self.model!r}"),
            (all(s in ("fcn32s", "fcn16s", "fcn8s") for s in self.stages), f"bad stages {self.stages}"),
            (self.head in ("paper", "light"), f"head must be paper or light, not {self.head!r}"),
            (self.upsample in ("bilinear", "deconv"), f"upsample must be bilinear or deconv, not {self.upsample!r}"),
            (self.optimizer in ("sgd", "adamw"), f"optimizer must be sgd or adamw, not {self.optimizer!r}"),
            (self.class_weighting in ("none", "median-frequency"),
             f"class_weighting must be none or median-frequency, not {self.class_weighting!r}"),
            (len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
             f"scale_range must be two numbers 0 < low <= high, not {self.scale_range}"),
            (self.crop_size >= 1 and (self.crop_width is None or self.crop_width >= 1),
             "crop_size and crop_width must be >= 1"),
            (self.warmup_epochs >= 0 and self.class_weight_max > 0, "warmup_epochs must be >= 0 and class_weight_max > 0"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.max_minutes is None or self.max_minutes > 0, "max_minutes must be positive"),
            (self.val_every >= 1, "val_every must be >= 1"),
            (self.eval_scale > 0, "eval_scale must be positive"),
            (self.schedule in ("poly", "step", "constant"), f"schedule must be poly, step or constant, not {self.schedule!r}"),
            (self.amp in ("auto", "bf16", "fp16", "off"), f"amp must be auto, bf16, fp16 or off, not {self.amp!r}"),
            (self.epochs >= 1 and self.batch_size >= 1 and self.val_batch_size >= 1, "epochs and batch sizes must be >= 1"),
            (self.lr > 0 and self.width > 0, "lr and width must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to the type of field ``key``."""
    kind = str(_FIELD_TYPES[key])
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and "None" in kind):
        if "None" not in kind:
            raise ConfigError(f"{source}: {key} cannot be empty")
        return None
    try:
        if kind.startswith("list"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            item = float if "float" in kind else str
            return [item(v) for v in value]
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}={value!r} is not a valid {kind}") from None


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the recipe file at ``path`` (YAML, read with ``yaml.safe_load``), then ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ConfigError(f"recipe not found: {path}")
        try:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of setting: value")
        values.update(loaded)
    cfg = TrainConfig.from_dict(values, source=os.fspath(path) if path else "defaults")
    if overrides:
        for key, value in overrides.items():
            setattr(cfg, key, _coerce(key, value, "command line"))
        cfg.validate()
    return cfg


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one ``--<field>`` option per TrainConfig field (default: not given)."""
    parser.add_argument("--config", help="recipe YAML file (see configs/); options below override it")
    group = parser.add_argument_group("recipe settings (override the recipe file)")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        group.add_argument(flag, dest=f"cfg_{f.name}", default=None, metavar=f.name.upper(),
                           help=f"default: {getattr(defaults, f.name)!r}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig described by parsed ``--config`` and ``--<field>`` options."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    return load_config(args.config, overrides)
