"""Training recipes: every setting in one flat dataclass, read from YAML (safely), overridden from
the command line, validated once where it enters, and handed to the code in groups.

Recipe files and CLI flags are flat (``lr: 0.01``, ``--lr 0.01``). Inside fcnlib the settings are
grouped where a consumer needs a subset (:class:`ModelSettings` for building the network,
:class:`OptimSettings` for the optimiser and the schedule), so that each sees only what it
needs. Recipes load by path or by name (``camvid-cpu``): the named ones ship inside the package
(``fcnlib/configs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .constants import DEFAULT_MAX_IMAGE_PIXELS
from .cpu import parse_threads
from .data.registry import DATASETS, SHAPES
from .limits import bound_errors
from .models import HEADS, MODEL_NAMES, STRIDES, UPSAMPLES
from .settings import ConfigError, amp_setting, device_setting, setting, workers_setting
from .yamlsafe import load_recipe_yaml

__all__ = [
    "EXECUTION_KEYS",
    "RECIPES_DIR",
    "ConfigError",
    "ModelSettings",
    "OptimSettings",
    "TrainConfig",
    "add_config_arguments",
    "config_from_args",
    "load_config",
    "recipe_path",
]

#: Where the named recipes live (``configs/`` at the top of the repository links here).
RECIPES_DIR = Path(__file__).resolve().parent / "configs"
#: Settings that change how a run executes but not what it computes (may differ on --resume).
EXECUTION_KEYS = frozenset(
    {"workers", "log_every", "threads", "device", "out", "data_root", "val_batch_size"}
)


_s = setting  # a field with its help text, choices and group (fcnlib.settings)


@dataclass
class TrainConfig:
    """Every training setting. The defaults are a tiny CPU run on the synthetic shapes (about a minute)."""

    # model
    model: str = _s("fcn8s", "network", choices=MODEL_NAMES, group="model")
    stages: list[str] = _s(
        [],
        "staged training, e.g. 'fcn32s fcn16s fcn8s': each grows from the previous",
        group="model",
    )
    head: str = _s(
        "light",
        "classifier head: paper = fc6/fc7 as 7x7 and 1x1 convolutions, "
        "light = the notes' _FCNHead (3x3 conv to in/4)",
        choices=HEADS,
        group="model",
    )
    upsample: str = _s(
        "bilinear",
        "upsampling layers: bilinear = fixed bilinear interpolation, "
        "deconv = transposed convolutions initialised bilinear (the 2x steps before a "
        "skip are learned, the final one is fixed)",
        choices=UPSAMPLES,
        group="model",
    )
    width: float = _s(0.125, "channel multiplier of VGG16 (1.0 = the real VGG16)", group="model")
    batch_norm: bool = _s(True, "VGG16-BN backbone (true) or plain VGG16 (false)", group="model")
    weights_backbone: str | None = _s(
        None, "backbone weights: none, IMAGENET1K_V1 or a VGG16 state-dict path", group="model"
    )
    init_from: str | None = _s(
        None,
        "checkpoint of a coarser or equal model to grow from (staged training), or shipped "
        "weights by name (camvid-cpu) to fine-tune: another class count re-initialises the "
        "class-score layers",
        group="model",
    )
    # data
    data: str = _s(SHAPES, "data set", choices=tuple(DATASETS), group="data")
    data_root: str | None = _s(None, "data set folder (not needed for shapes)", group="data")
    num_classes: int | None = _s(
        None, "classes (folder: unless DIR/classes.yaml lists them)", group="data"
    )
    train_split: str = _s("train", "training split", group="data")
    val_split: str = _s("val", "validation split", group="data")
    crop_size: int = _s(
        96, "training crop height in px (and width unless crop_width is set)", group="data"
    )
    crop_width: int | None = _s(
        None, "training crop width in px (none: square crops)", group="data"
    )
    scale_range: list[float] = _s(
        [0.5, 2.0], "random rescale factors 'low high' before cropping", group="data"
    )
    color_jitter: bool = _s(True, "brightness/contrast/saturation jitter of 0.3", group="data")
    cache: bool = _s(False, "decode every training/validation pair into memory once", group="data")
    limit_train: int | None = _s(None, "use only the first N training images", group="data")
    limit_val: int | None = _s(None, "use only the first N validation images", group="data")
    workers: int = workers_setting()
    # optimisation
    optimizer: str = _s("sgd", "optimiser", choices=("sgd", "adamw"), group="optim")
    epochs: int = _s(
        6, "passes over the training set (an upper bound with max_minutes)", group="optim"
    )
    batch_size: int = _s(8, "training images per step", group="optim")
    val_batch_size: int = _s(1, "validation images per batch", group="optim")
    lr: float = _s(0.02, "peak learning rate", group="optim")
    momentum: float = _s(0.9, "SGD momentum, in [0, 1)", group="optim")
    weight_decay: float = _s(
        1e-4, "weight decay (L2 for SGD, decoupled for AdamW), >= 0", group="optim"
    )
    schedule: str = _s(
        "poly", "learning-rate schedule", choices=("poly", "step", "constant"), group="optim"
    )
    poly_power: float = _s(0.9, "exponent of the poly schedule, > 0", group="optim")
    step_size: int = _s(20, "epochs between decays of the step schedule, >= 1", group="optim")
    gamma: float = _s(0.1, "decay factor of the step schedule, in (0, 1]", group="optim")
    warmup_epochs: float = _s(0.0, "linear learning-rate warm-up in epochs, >= 0", group="optim")
    stage_lr_scale: float = _s(
        1.0,
        "staged training: each stage's lr is the previous stage's times this "
        "(1: the same lr for every stage)",
        group="optim",
    )
    class_weights: list[float] | None = _s(
        None, "loss weight per class (one positive number each)", group="optim"
    )
    class_weighting: str = _s(
        "none",
        "weights computed from the training labels",
        choices=("none", "median-frequency"),
        group="optim",
    )
    class_weight_max: float = _s(10.0, "upper clamp of computed class weights, > 0", group="optim")
    # execution
    amp: str = amp_setting()
    channels_last: bool = _s(True, "NHWC memory layout for the convolutions", group="run")
    compile: bool = _s(False, "torch.compile the model", group="run")
    device: str = device_setting()
    seed: int = _s(0, "random seed (weights, order, augmentation)", group="run")
    threads: str | int | None = _s(
        "auto",
        "intra-op CPU threads: a number, or auto = the cores other processes leave free, "
        "re-checked each epoch",
        group="run",
    )
    max_minutes: float | None = _s(
        None,
        "time budget in minutes: stop after the epoch in which it runs out; "
        "the poly schedule follows the budget",
        group="run",
    )
    val_every: int = _s(1, "validate every N epochs (and always after the last)", group="run")
    eval_scale: float = _s(
        1.0, "input scale at validation/evaluation; logits are upsampled to full size", group="run"
    )
    eval_flip: bool = _s(
        False, "average the mirrored image's logits at validation/evaluation", group="run"
    )
    out: str = _s(
        "runs/shapes", "output folder (checkpoints, history.csv, curves.png)", group="run"
    )
    log_every: int = _s(
        20, "steps between progress-bar updates (each one syncs with the device)", group="run"
    )
    per_image: bool = _s(False, "also report the seed notes' per-image mean metrics", group="run")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "recipe") -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
        cfg = cls()
        for key, value in values.items():
            setattr(cfg, key, _coerce(key, value, source))
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "recipe") -> None:
        """Raise :class:`ConfigError` naming the first setting that cannot be used."""
        for f in fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(
                    f"{source}: {f.name} must be one of {', '.join(choices)}, not {value!r}"
                )
            numbers = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                raise ConfigError(f"{source}: {f.name} must be a finite number, not {value!r}")
        for message in _range_errors(self):
            raise ConfigError(f"{source}: {message}")

    # The groups the code works with.
    def _group(self, kind: type) -> Any:
        return kind(**{f.name: getattr(self, f.name) for f in fields(kind)})

    @property
    def model_settings(self) -> ModelSettings:
        return self._group(ModelSettings)

    @property
    def optim(self) -> OptimSettings:
        return self._group(OptimSettings)


def _threads_ok(value: Any) -> bool:
    try:
        return parse_threads(value) is not None
    except ValueError:
        return False


def _range_errors(c: TrainConfig) -> list[str]:
    checks = [
        (
            all(s in MODEL_NAMES for s in c.stages),
            f"stages must be model names ({', '.join(MODEL_NAMES)}), not {c.stages}",
        ),
        (
            not all(s in MODEL_NAMES for s in c.stages)
            or all(STRIDES[a] > STRIDES[b] for a, b in zip(c.stages, c.stages[1:])),
            f"stages must go from coarse to fine without repeats (e.g. fcn32s fcn16s fcn8s), not {' '.join(c.stages)}",
        ),
        (0 <= c.seed < 2**32, f"seed must be in 0..{2**32 - 1}, not {c.seed}"),
        (c.width > 0, f"width must be > 0, not {c.width}"),
        (
            c.crop_size >= 1 and (c.crop_width is None or c.crop_width >= 1),
            "crop_size and crop_width must be >= 1",
        ),
        (
            c.crop_size * (c.crop_width or c.crop_size) <= DEFAULT_MAX_IMAGE_PIXELS,
            (
                f"crop_size x crop_width must be at most {DEFAULT_MAX_IMAGE_PIXELS / 1e6:.0f} MP, "
                f"not {c.crop_size}x{c.crop_width or c.crop_size}"
            ),
        ),
        (
            len(c.scale_range) == 2 and 0 < c.scale_range[0] <= c.scale_range[1],
            f"scale_range must be two numbers 0 < low <= high, not {c.scale_range}",
        ),
        (
            c.num_classes is None or c.num_classes >= 2,
            f"num_classes must be >= 2, not {c.num_classes}",
        ),
        (
            all(n is None or n >= 1 for n in (c.limit_train, c.limit_val)),
            "limit_train and limit_val must be >= 1",
        ),
        (c.workers >= 0, f"workers must be >= 0, not {c.workers}"),
    ]
    return [message for ok, message in checks if not ok] + _optim_run_errors(c)


def _optim_run_errors(c: TrainConfig) -> list[str]:
    checks = [
        (
            c.epochs >= 1 and c.batch_size >= 1 and c.val_batch_size >= 1,
            "epochs and batch sizes must be >= 1",
        ),
        (c.lr > 0, f"lr must be > 0, not {c.lr}"),
        (0 <= c.momentum < 1, f"momentum must be in [0, 1), not {c.momentum}"),
        (c.weight_decay >= 0, f"weight_decay must be >= 0, not {c.weight_decay}"),
        (c.poly_power > 0, f"poly_power must be > 0, not {c.poly_power}"),
        (c.step_size >= 1, f"step_size must be >= 1 (epochs), not {c.step_size}"),
        (0 < c.gamma <= 1, f"gamma must be in (0, 1], not {c.gamma}"),
        (c.stage_lr_scale > 0, f"stage_lr_scale must be > 0, not {c.stage_lr_scale}"),
        (c.warmup_epochs >= 0, f"warmup_epochs must be >= 0, not {c.warmup_epochs}"),
        (
            c.class_weights is None
            or (len(c.class_weights) > 0 and all(w > 0 for w in c.class_weights)),
            "class_weights must be positive numbers",
        ),
        (c.class_weight_max > 0, f"class_weight_max must be > 0, not {c.class_weight_max}"),
        (_threads_ok(c.threads), f"threads must be >= 1 or auto, not {c.threads}"),
        (
            c.max_minutes is None or c.max_minutes > 0,
            f"max_minutes must be > 0, not {c.max_minutes}",
        ),
        (c.val_every >= 1, f"val_every must be >= 1, not {c.val_every}"),
        (c.eval_scale > 0, f"eval_scale must be > 0, not {c.eval_scale}"),
        (c.log_every >= 1, f"log_every must be >= 1, not {c.log_every}"),
        (bool(c.out.strip()), "out must be a folder path"),
    ]
    return [message for ok, message in checks if not ok] + bound_errors(dataclasses.asdict(c))


@dataclass(frozen=True)
class ModelSettings:
    model: str
    head: str
    upsample: str
    width: float
    batch_norm: bool
    weights_backbone: str | None


@dataclass(frozen=True)
class OptimSettings:
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    poly_power: float
    step_size: int
    gamma: float
    warmup_epochs: float


_FIELD_TYPES = {f.name: str(f.type) for f in fields(TrainConfig)}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Convert ``value`` (from YAML or a command-line string) to the type of field ``key``."""
    kind = _FIELD_TYPES[key]
    if key == "threads":  # "auto" or a whole number, never a numeric string (bounded as a number)
        try:
            return parse_threads(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{source}: threads must be >= 1 or auto, not {value}") from None
    if value is None or (
        isinstance(value, str) and value.lower() in ("none", "null") and "None" in kind
    ):
        if "None" not in kind:
            raise ConfigError(f"{source}: {key} cannot be empty")
        return None
    try:
        if kind.startswith("list"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            item = float if "float" in kind else str
            return [item(v) for v in value]
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, (bool, int)):
                raise ValueError(value)
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if isinstance(value, (dict, list)):
            raise TypeError(value)
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"{source}: {key}={value!r} is not a valid {kind.replace(' | None', '')}"
        ) from None


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A recipe file: an existing path, or the name of a shipped recipe (``camvid-cpu``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{path.stem}.yaml"
    # a bare name, or the clone's configs/NAME.yaml (from an installed wheel): the shipped recipe
    bare = path.parent in (Path("."), Path("configs")) and path.suffix in ("", ".yaml", ".yml")
    if bare and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise ConfigError(
        f"recipe not found: {name_or_path} (a YAML path, or one of: {names}) (`config`)"
    )


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a setting given twice (YAML would keep the last silently)."""


def _unique_mapping(loader: _RecipeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)):
            continue  # an unhashable key is refused by construct_mapping itself
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"setting {key!r} is given twice (line {key_node.start_mark.line + 1})"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read_recipe(path: Path) -> dict[str, Any]:
    try:
        loaded = load_recipe_yaml(path) or {}  # safe: no Python tags; size/depth/alias limits
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of setting: value")
    return loaded


def load_config(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults, then the recipe at ``path`` (a YAML path or a shipped recipe's name, read with
    ``yaml.SafeLoader``; a setting given twice is refused), then ``overrides``; validated."""
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        resolved = recipe_path(path)
        values.update(_read_recipe(resolved))
        source = os.fspath(path)
    cfg = TrainConfig.from_dict(values, source=source)
    if overrides:
        for key, value in overrides.items():
            setattr(cfg, key, _coerce(key, value, "command line"))
        cfg.validate("command line")
    return cfg


def _help(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata.get("help", "")
    if f.metadata.get("choices"):
        text += f" ({'|'.join(f.metadata['choices'])})"
    shown = " ".join(map(str, default)) if isinstance(default, list) else default
    return f"{text}; default: {shown if shown not in ('', None) else 'none'}"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one ``--<field>`` option per TrainConfig field (default: not given)."""
    parser.add_argument(
        "--config",
        help="recipe: a YAML file (see configs/) or a shipped recipe's name, "
        "e.g. camvid-cpu; the options below override it",
    )
    defaults = TrainConfig()
    titles = {"model": "model", "data": "data", "optim": "optimisation", "run": "execution"}
    groups = {
        k: parser.add_argument_group(f"recipe settings: {t} (override the recipe)")
        for k, t in titles.items()
    }
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        metavar = "|".join(f.metadata["choices"]) if f.metadata.get("choices") else f.name.upper()
        if str(f.type).startswith("bool"):
            metavar = "true|false"
        groups[f.metadata["group"]].add_argument(
            flag,
            dest=f"cfg_{f.name}",
            default=None,
            metavar=metavar,
            help=_help(f, getattr(defaults, f.name)),
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig described by parsed ``--config`` and ``--<field>`` options."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    return load_config(args.config, overrides)
