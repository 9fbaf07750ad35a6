"""Checkpoints as data: what a training checkpoint holds, atomic saves, safe loads, exact restore.

A training checkpoint is a dict with the :data:`FORMAT` marker, the model's ``state_dict``, the
optimizer / scheduler / scaler states, the RNG states, the epoch, the history and the recipe.
Loads use ``torch.load(weights_only=True)``: a file that carries code is refused, never run.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import FcnlibError, one_line
from .fileio import atomic_write, atomic_write_bytes, atomic_write_text

__all__ = [
    "FORMAT",
    "REQUIRED_KEYS",
    "CheckpointError",
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "file_sha256",
    "finite_weights",
    "load_checkpoint",
    "restore_training_state",
    "rng_state",
    "set_rng_state",
    "training_state",
    "validate_checkpoint",
]

#: Marker stored in every checkpoint written by fcnlib.
FORMAT = "fcnlib-checkpoint-v1"
#: Keys every fcnlib checkpoint has (older ones lack ``train_seconds``, which is optional).
REQUIRED_KEYS = ("model", "model_name", "config", "num_classes", "epoch")
_STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}
_TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "rng", "history", "best_miou")


class CheckpointError(FcnlibError, ValueError):
    """A checkpoint that is missing, unreadable, truncated or does not fit (one-line message)."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Killing the process at any moment leaves either the previous file or the new one.
    """
    atomic_write(path, lambda f: torch.save(obj, f))


def _load_failure(path: Path, exc: BaseException) -> CheckpointError:
    text = " ".join(str(exc).split())
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe or "weights_only" in text.lower() and "global" in text.lower():
        name = unsafe.group(1) if unsafe else "a Python object"
        return CheckpointError(
            f"refused to load {path}: it holds {name}, which unpickling would import and could run as "
            "code; fcnlib loads only tensors and plain data (weights_only=True). Re-save it as a state dict "
            "if you trust its source"
        )
    reason = text or type(exc).__name__
    return CheckpointError(
        f"cannot read checkpoint {path} (truncated or not a PyTorch checkpoint): {reason[:300]}"
    )


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint written by fcnlib (or a bare state dict) with ``weights_only=True``.

    Raises :class:`CheckpointError` with one line for a missing, empty, truncated, non-checkpoint,
    incomplete or code-carrying file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of any foreign file
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle error, forbidden global, ...
        raise _load_failure(path, exc) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    if obj.get("format") != FORMAT:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {"format": "state_dict", "model": obj}
        raise CheckpointError(f"{path} is not an fcnlib checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise CheckpointError(
            f"{path} is an incomplete fcnlib checkpoint (missing {', '.join(missing)})"
        )
    validate_checkpoint(obj, path)
    return obj


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _field_errors(ckpt: dict[str, Any]) -> list[str]:
    """What is wrong with each field of an fcnlib checkpoint (empty: nothing)."""
    model, n, classes = ckpt["model"], ckpt["num_classes"], ckpt.get("classes")
    checks = [
        (
            isinstance(model, dict)
            and bool(model)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()),
            "model: not a state dict of named tensors",
        ),
        (
            isinstance(ckpt["model_name"], str) and ckpt["model_name"] in _STRIDES,
            f"model_name: {ckpt['model_name']!r} is not a model",
        ),
        (
            isinstance(ckpt["config"], dict) and all(isinstance(k, str) for k in ckpt["config"]),
            "config: not a mapping of settings",
        ),
        (
            isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= 255,
            f"num_classes: {n!r} is not a whole number in 2..255",
        ),
        (
            _is_number(ckpt["epoch"])
            and isinstance(ckpt["epoch"], int)
            and 0 <= ckpt["epoch"] <= 10**6,
            f"epoch: {ckpt['epoch']!r} is not a whole number >= 0",
        ),
        (
            classes is None
            or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)),
            "classes: not a list of names",
        ),
        (
            classes is None or not isinstance(classes, list) or len(classes) == n,
            f"classes: {len(classes or [])} names for num_classes {n}",
        ),
        ("history" not in ckpt or isinstance(ckpt["history"], list), "history: not a list"),
        (
            "best_miou" not in ckpt or _is_number(ckpt["best_miou"]),
            f"best_miou: {ckpt.get('best_miou')!r} is not a number",
        ),
        (
            ckpt.get("train_seconds") is None
            or (_is_number(ckpt["train_seconds"]) and ckpt["train_seconds"] >= 0),
            f"train_seconds: {ckpt.get('train_seconds')!r} is not a duration",
        ),
    ]
    return [message for ok, message in checks if not ok]


def _state_errors(ckpt: dict[str, Any]) -> list[str]:
    """Where the state dict disagrees with ``num_classes`` and ``model_name``."""
    model, n, stride = ckpt["model"], ckpt["num_classes"], _STRIDES[ckpt["model_name"]]
    heads = sorted(
        (k for k in model if re.fullmatch(r"head\.\d+\.bias", k)),
        key=lambda k: int(k.split(".")[1]),
    )
    scores = [k for k in ("score_pool4.bias", "score_pool3.bias") if k in model] + heads[-1:]
    errors = [
        f"model: {k} has {tuple(model[k].shape)} outputs, not num_classes {n}"
        for k in scores
        if tuple(model[k].shape) != (n,)
    ]
    for layer, needed in (("score_pool4", stride <= 16), ("score_pool3", stride == 8)):
        if needed != (f"{layer}.weight" in model):
            has = "has" if not needed else "lacks"
            errors.append(
                f"model: {has} {layer}, which model_name {ckpt['model_name']} does not fit"
            )
    return errors


def validate_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse an fcnlib checkpoint whose fields have the wrong type, range or length, or disagree
    with its state dict; the one-line message names the file and the field."""
    errors = _field_errors(ckpt)
    if not errors:
        errors = _state_errors(ckpt)
    if errors:
        raise CheckpointError(f"{path} is not a valid fcnlib checkpoint: {errors[0]}")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def finite_weights(model: nn.Module) -> bool:
    """True if every parameter and floating-point buffer of ``model`` is finite."""
    tensors = [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]
    return (
        bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True
    )  # one sync


def rng_state() -> dict[str, Any]:
    """The torch, CUDA, numpy and Python RNG states, as tensors and plain data."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def training_state(model: nn.Module, optimizer, scheduler, scaler, **info: Any) -> dict[str, Any]:
    """A training checkpoint: the model and optimisation states, RNG states and ``info``
    (``model_name``, ``epoch``, ``config``, ``num_classes``, ``classes``, ``history``, ``best_miou``,
    ``train_seconds``)."""
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_state(),
        **info,
    }


def restore_training_state(
    path: Path, model: nn.Module, optimizer, scheduler, scaler, num_classes: int
) -> dict[str, Any]:
    """Load ``path`` into the given objects and the RNGs; returns the checkpoint (for epoch, history)."""
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("format") != FORMAT or any(k not in ckpt for k in _TRAINING_KEYS):
        raise CheckpointError(f"{path} is not an fcnlib training checkpoint (it cannot be resumed)")
    if int(ckpt["num_classes"]) != num_classes:
        raise CheckpointError(
            f"{path} has {ckpt['num_classes']} classes but the data has {num_classes}"
        )
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path} does not fit the recipe's model: {str(exc).splitlines()[0]}"
        ) from None
    for name, restore in (
        ("scheduler", scheduler.load_state_dict),
        ("scaler", scaler.load_state_dict),
        ("rng", set_rng_state),
    ):
        try:
            restore(ckpt[name])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path} is not a valid fcnlib checkpoint: {name}: {one_line(exc)[:200]}"
            ) from None
    if not math.isfinite(float(ckpt["best_miou"])):
        raise CheckpointError(f"{path} records a non-finite best mIoU")
    return ckpt
