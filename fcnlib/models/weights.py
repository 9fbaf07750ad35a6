"""Trained FCN weights that ship with fcnlib, each with its card (torchvision's ``Weights`` idea).

A card (``fcnlib/pretrained/<name>.json``) records how the weights were made and what they reach:
the architecture, class names and palette, normalisation, evaluation settings, metrics, recipe,
command, commit, machine, SHA-256 of the weights file and the terms of use of the data. The
weights file (``<name>.pt``) is a plain state dict, loaded with ``torch.load(weights_only=True)``
after its SHA-256 is checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FcnlibError, one_line

__all__ = [
    "PRETRAINED_DIR",
    "Weights",
    "WeightsError",
    "card_error",
    "get_weights",
    "list_weights",
]

#: Folder of the shipped weights and cards (package data).
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
_ARCH_KEYS = ("model", "num_classes", "head", "upsample", "width", "batch_norm")


class WeightsError(FcnlibError, ValueError):
    """Unknown weights name, or a weights file that does not match its card."""


@dataclass(frozen=True)
class Weights:
    """Shipped weights ``name``: the state-dict file and its card (``meta``)."""

    name: str
    file: Path
    meta: dict[str, Any]

    @property
    def architecture(self) -> dict[str, Any]:
        return self.meta["architecture"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return [tuple(c) for c in self.meta["palette"]]

    @property
    def evaluation(self) -> dict[str, Any]:
        """``scale`` and ``flip`` used for the card's figures (and by default for prediction)."""
        return self.meta["evaluation"]

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    def get_state_dict(self, check_hash: bool = True) -> dict[str, torch.Tensor]:
        """The state dict, after checking the file's SHA-256 against the card."""
        if not self.file.is_file():
            raise WeightsError(
                f"weights file {self.file} of {self.name!r} is missing (reinstall fcnlib)"
            )
        data = self.file.read_bytes()
        if check_hash and hashlib.sha256(data).hexdigest() != self.sha256:
            raise WeightsError(f"weights file {self.file} does not match the SHA-256 on its card")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - pickle error, forbidden global, ...
            raise WeightsError(
                f"cannot read weights file {self.file}: {one_line(exc)[:200]}"
            ) from None
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
        ):
            raise WeightsError(f"weights file {self.file} is not a state dict of named tensors")
        return state


def list_weights() -> list[str]:
    """Names of the shipped weights."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.json"))


def get_weights(name: str | Weights) -> Weights:
    """The shipped weights called ``name`` (a :class:`Weights` is returned as it is)."""
    if isinstance(name, Weights):
        return name
    if not isinstance(name, str) or name not in list_weights():
        known = ", ".join(list_weights()) or "none"
        raise WeightsError(f"unknown weights {name!r}; shipped weights: {known} (`weights`)")
    card = PRETRAINED_DIR / f"{name}.json"
    try:
        meta = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"the card {card} is unreadable: {one_line(exc)}") from None
    problem = card_error(meta)
    if problem:
        raise WeightsError(f"the card {card} is invalid: {problem}")
    return Weights(name, PRETRAINED_DIR / meta["file"], meta)


def _number(v: Any, low: float, high: float) -> bool:
    return (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        and low <= v <= high
    )  # fmt: skip


def _scales(v: Any) -> bool:
    items = v if isinstance(v, list) else [v]
    return bool(items) and all(_number(s, 1 / 64, 64.0) for s in items)


def _arch_error(arch: Any) -> str | None:
    if not isinstance(arch, dict):
        return "architecture: not a mapping"
    missing = [k for k in _ARCH_KEYS if k not in arch]
    checks = (
        (not missing, f"architecture: lacks {', '.join(missing)}"),
        (arch.get("model") in ("fcn32s", "fcn16s", "fcn8s"), "architecture.model: not a model"),
        (
            isinstance(arch.get("num_classes"), int) and _number(arch["num_classes"], 2, 255),
            "architecture.num_classes: not a whole number in 2..255",
        ),
        (arch.get("head") in ("paper", "light"), "architecture.head: not paper or light"),
        (arch.get("upsample") in ("bilinear", "deconv"), "architecture.upsample: unknown"),
        (_number(arch.get("width"), 1 / 64, 4.0), "architecture.width: not in 1/64..4"),
        (isinstance(arch.get("batch_norm"), bool), "architecture.batch_norm: not true/false"),
    )
    return next((message for ok, message in checks if not ok), None)


def card_error(meta: Any) -> str | None:
    """What is wrong with a weights card (``None``: nothing): the field and the reason."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    arch_problem = _arch_error(meta.get("architecture"))
    if arch_problem:
        return arch_problem
    n = meta["architecture"]["num_classes"]
    classes, palette = meta.get("classes"), meta.get("palette")
    evaluation, predict = meta.get("evaluation"), meta.get("predict", {})
    checks = (
        (
            isinstance(meta.get("file"), str)
            and meta["file"].endswith(".pt")
            and Path(meta["file"]).name == meta["file"],
            "file: not a .pt file name beside the card",
        ),
        (
            isinstance(meta.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", meta["sha256"]),
            "sha256: not 64 hex digits",
        ),
        (
            isinstance(classes, list)
            and len(classes) == n
            and all(isinstance(c, str) and c for c in classes),
            f"classes: not {n} names (architecture.num_classes)",
        ),
        (
            isinstance(palette, list)
            and len(palette) == n
            and all(
                isinstance(c, list) and len(c) == 3 and all(_int8(v) for v in c) for c in palette
            ),
            f"palette: not {n} colours of three values in 0..255",
        ),
        (
            isinstance(evaluation, dict)
            and _scales(evaluation.get("scale"))
            and isinstance(evaluation.get("flip"), bool),
            "evaluation: needs scale (positive numbers) and flip (true/false)",
        ),
        (isinstance(predict, dict) and _predict_ok(predict), "predict: unknown keys or values"),
    )
    return next((message for ok, message in checks if not ok), None)


def _int8(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255


def _predict_ok(predict: dict[str, Any]) -> bool:
    rules = {
        "mode": lambda v: v in ("auto", "whole", "scaled", "tiled"),
        "train_size": lambda v: isinstance(v, int) and _number(v, 1, 65_536),
        "scales": lambda v: isinstance(v, list) and _scales(v),
        "scale": lambda v: isinstance(v, list) and _scales(v),
        "flip": lambda v: isinstance(v, bool),
    }
    return all(k in rules and rules[k](v) for k, v in predict.items())
