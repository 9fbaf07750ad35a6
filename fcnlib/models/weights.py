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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import FcnlibError

__all__ = ["PRETRAINED_DIR", "Weights", "WeightsError", "get_weights", "list_weights"]

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
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def list_weights() -> list[str]:
    """Names of the shipped weights."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.json"))


def get_weights(name: str | Weights) -> Weights:
    """The shipped weights called ``name`` (a :class:`Weights` is returned as it is)."""
    if isinstance(name, Weights):
        return name
    card = PRETRAINED_DIR / f"{name}.json"
    if not card.is_file():
        known = ", ".join(list_weights()) or "none"
        raise WeightsError(f"unknown weights {name!r}; shipped weights: {known} (`weights`)")
    try:
        meta = json.loads(card.read_text(encoding="utf-8"))
        missing = [k for k in _ARCH_KEYS if k not in meta["architecture"]]
        file = PRETRAINED_DIR / meta["file"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"the card {card} is unreadable: {exc}") from None
    if missing:
        raise WeightsError(f"the card {card} lacks architecture keys {', '.join(missing)}")
    return Weights(str(name), file, meta)
