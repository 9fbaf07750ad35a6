"""Models from recipes, checkpoints and shipped weights: what training grows from and what
evaluation and prediction load."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import FORMAT, CheckpointError, file_sha256, load_checkpoint
from .config import ConfigError, TrainConfig
from .errors import FcnlibError
from .models import FCN, STRIDES, build_model, get_weights

__all__ = ["TrainedModel", "check_parent", "load_trained", "make_model", "model_from_checkpoint"]


def make_model(cfg: TrainConfig, num_classes: int, name: str | None = None) -> FCN:
    """The FCN a recipe describes (``name`` overrides ``cfg.model``, for staged training)."""
    m = cfg.model_settings
    return build_model(
        name or m.model,
        num_classes,
        head=m.head,
        upsample=m.upsample,
        width=m.width,
        batch_norm=m.batch_norm,
        weights_backbone=m.weights_backbone,
    )


def _recorded(path: str | os.PathLike) -> tuple[dict[str, Any], TrainConfig]:
    """An fcnlib checkpoint and the recipe it records."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a bare state dict; fcnlib needs a checkpoint written by `fcnlib train`"
        )
    try:
        return ckpt, TrainConfig.from_dict(ckpt["config"], source=str(path))
    except ConfigError as exc:
        raise CheckpointError(f"{path} records a recipe fcnlib cannot use: {exc}") from None


def check_parent(path: str | os.PathLike, cfg: TrainConfig, name: str | None = None) -> None:
    """Refuse to grow model ``name`` (default ``cfg.model``) of recipe ``cfg`` from checkpoint
    ``path`` unless that checkpoint holds the recipe's network, as coarse as ``name`` or coarser."""
    name = name or cfg.model
    ckpt, recorded = _recorded(path)
    parent_name = ckpt.get("model_name", recorded.model)
    if STRIDES[parent_name] < STRIDES[name]:
        raise ConfigError(
            f"`init_from` {path} holds an {parent_name}, finer than {name}: a model grows "
            "only from a coarser or equal one (fcn32s -> fcn16s -> fcn8s)"
        )
    had, want = recorded.model_settings, cfg.model_settings
    differ = [
        f"`{k}` {getattr(had, k)} (the recipe says {getattr(want, k)})"
        for k in ("head", "upsample", "width", "batch_norm")
        if getattr(had, k) != getattr(want, k)
    ]
    if differ:
        raise ConfigError(
            f"`init_from` {path} was trained with {', '.join(differ)}: "
            "give the checkpoint's model settings"
        )


def model_from_checkpoint(
    path: str | os.PathLike, num_classes: int | None = None
) -> tuple[FCN, dict[str, Any]]:
    """Rebuild the model saved in an fcnlib checkpoint; ``num_classes`` must match when given."""
    ckpt, cfg = _recorded(path)
    saved_classes = int(ckpt["num_classes"])
    if num_classes is not None and num_classes != saved_classes:
        raise CheckpointError(
            f"checkpoint {path} has {saved_classes} classes but the data has {num_classes}"
        )
    cfg.weights_backbone = None
    model = make_model(cfg, saved_classes, name=ckpt.get("model_name", cfg.model))
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3]) or lines[0]
        raise CheckpointError(
            f"checkpoint {path} does not fit the model its recipe describes ({detail[:300]})"
        ) from None
    return model, ckpt


@dataclass
class TrainedModel:
    """The model and what is known about it: classes, palette, evaluation settings, provenance."""

    model: FCN
    source: str  # the checkpoint path, or "weights:<name>"
    sha256: str
    classes: list[str]
    eval_scale: float | list[float] = 1.0  # one scale, or several to average
    eval_flip: bool = False
    palette: list[tuple[int, int, int]] | None = None
    record: dict[str, Any] = field(
        default_factory=dict
    )  # model name, epochs, recipe, train_seconds

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def load_trained(
    checkpoint: str | os.PathLike | None = None, weights: str | None = None
) -> TrainedModel:
    """Exactly one of ``checkpoint`` (written by ``fcnlib train``) or ``weights`` (a shipped name)."""
    if (checkpoint is None) == (weights is None):
        raise FcnlibError("give a `checkpoint` path or `weights` NAME (exactly one)")
    if weights is not None:
        w = get_weights(weights)
        arch = w.architecture
        model = build_model(arch["model"], weights=w)
        training = w.meta.get("training", {})
        return TrainedModel(
            model,
            f"weights:{w.name}",
            w.sha256,
            w.classes,
            w.evaluation["scale"],
            bool(w.evaluation["flip"]),
            w.palette,
            {
                "model": arch["model"],
                "trained_epochs": training.get("epochs"),
                "train_config": training.get("recipe"),
                "train_seconds": training.get("train_seconds"),
            },
        )
    model, ckpt = model_from_checkpoint(checkpoint)
    saved = ckpt.get("config") or {}
    classes = [str(c) for c in (ckpt.get("classes") or range(int(ckpt["num_classes"])))]
    return TrainedModel(
        model,
        str(checkpoint),
        file_sha256(checkpoint),
        classes,
        float(saved.get("eval_scale", 1.0)),
        bool(saved.get("eval_flip", False)),
        None,
        {
            "model": ckpt.get("model_name"),
            "trained_epochs": ckpt.get("epoch"),
            "train_config": saved,
            "train_seconds": ckpt.get("train_seconds"),
        },
    )
