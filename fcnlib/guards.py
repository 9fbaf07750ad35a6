"""Outputs never replace inputs: the one place that knows what each command reads.

Every command hands its outputs and the paths it reads (checkpoints, recipes, data folders with
their split files, ``--init-from``, backbone weights, images) to :func:`refuse_overlap`, which
compares them after resolving symbolic links: an output that is one of the files read, or lies
inside a data folder read, is refused before any work. :func:`writable_folder` checks, also before
the work, that an output folder can be created and written into.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import FcnlibError
from .fileio import write_target

__all__ = [
    "GuardError",
    "check_staged_resume",
    "eval_inputs",
    "guard_eval",
    "guard_predict",
    "guard_train",
    "image_inputs",
    "refuse_overlap",
    "train_inputs",
    "train_outputs",
    "writable_folder",
]


class GuardError(FcnlibError, ValueError):
    """An output that would replace an input, or an output folder that cannot be written."""


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def refuse_overlap(
    outputs: Mapping[str, str | os.PathLike], inputs: Mapping[str, str | os.PathLike | None]
) -> None:
    """Refuse an output (``{label: path}``) that is an input file or lies inside an input folder.

    Labels name the option (``--out``, ``--init-from``, ...) in the message.
    """
    read = [(label, _real(p)) for label, p in inputs.items() if p not in (None, "")]
    for out_label, out in outputs.items():
        target = _real(out)
        for in_label, src in read:
            if target == src:
                raise GuardError(
                    f"{out_label} {out} is the file that {in_label} reads: writing it would "
                    "destroy the input; choose another output"
                )
            if src.is_dir() and target.is_relative_to(src):
                raise GuardError(
                    f"{out_label} {out} lies inside {in_label} {src}, which this command reads: "
                    "write outside it"
                )


def eval_inputs(args: Any) -> dict[str, Any]:
    """What ``fcnlib eval`` reads."""
    return {"the checkpoint": args.checkpoint, "`data_root`": args.data_root}


def train_inputs(cfg: Any, recipe: str | os.PathLike | None = None) -> dict[str, Any]:
    """What ``fcnlib train`` reads: the recipe file, ``--init-from``, a backbone weights file and
    the data folder (with its split files)."""
    backbone = cfg.weights_backbone
    if backbone is not None and not Path(backbone).exists():
        backbone = None  # a name such as IMAGENET1K_V1, not a file
    recipe_file = recipe if recipe is not None and Path(recipe).is_file() else None
    return {
        "`config`": recipe_file,
        "`init_from`": cfg.init_from,
        "`weights_backbone`": backbone,
        "`data_root`": cfg.data_root,
    }


def train_outputs(cfg: Any) -> dict[str, Path]:
    """The folder and the files ``fcnlib train`` writes (each stage's, for staged training)."""
    from .outdir import RUN_FILES

    folders = [Path(cfg.out) / name for name in cfg.stages] or [Path(cfg.out)]
    outputs = {"`out`": Path(cfg.out)}
    for folder in folders:
        outputs.update({f"`out` file {folder / n}": folder / n for n in RUN_FILES})
    return outputs


def image_inputs(images: Iterable[str | os.PathLike]) -> None:
    """Refuse a folder given where an image file is expected (``.``, ``/``, ``dir/..``)."""
    for image in images:
        if os.path.isdir(image):
            raise GuardError(f"{image} is a folder, not an image file: give image files")


def writable_folder(path: str | os.PathLike, option: str = "`out`") -> None:
    """Refuse an output folder that cannot be made or written into, without creating it: the
    nearest existing folder on its path must be writable, and nothing on it may be a file."""
    probe = Path(os.path.abspath(path))
    while not probe.exists():
        if probe.is_symlink():
            raise GuardError(f"{option} {path}: {probe} is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise GuardError(f"{option} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise GuardError(f"cannot write into {probe} ({option} {path}): permission denied")


def output_file(path: str | os.PathLike, overwrite: bool, option: str = "`out`") -> None:
    """Before any work: refuse a folder, a device or pipe, or an existing file without
    ``overwrite`` as the output file ``path``; create its folder and check it can be written."""
    path = Path(path)
    if path.is_dir():
        raise GuardError(f"{path} is a folder; {option} needs a file path")
    write_target(path)  # a device, pipe or socket is refused; a link's target is what is replaced
    if path.exists() and not overwrite:
        raise GuardError(f"{path} exists (use `overwrite` to replace it)")
    make_writable_folder(path.parent, option)


def make_writable_folder(path: str | os.PathLike, option: str = "`out`") -> None:
    """Create the output folder ``path`` if needed and check that files can be written into it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GuardError(f"cannot create {path} for {option}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK):
        raise GuardError(f"cannot write into {path} ({option}): permission denied")


def check_staged_resume(cfg: Any, resume: bool) -> None:
    """``--resume`` of a staged run needs at least one stage's ``last.pt`` (as a plain --resume
    needs ``OUT/last.pt``): a new or empty folder is refused, not trained from scratch."""
    if not resume or not cfg.stages:
        return
    if not any((Path(cfg.out) / name / "last.pt").is_file() for name in cfg.stages):
        raise GuardError(
            f"nothing to resume: no stage of {' '.join(cfg.stages)} under {cfg.out} has a "
            "last.pt; start the run without `resume` (or check `out`)"
        )


def guard_train(cfg: Any, recipe: str | os.PathLike | None, resume: bool) -> None:
    """Everything ``fcnlib train`` checks about its paths before any work."""
    refuse_overlap(train_outputs(cfg), train_inputs(cfg, recipe))
    check_staged_resume(cfg, resume)


def guard_eval(args: Any) -> None:
    """``fcnlib eval --out`` is none of the files it reads."""
    if args.out:
        refuse_overlap({"`out`": args.out}, eval_inputs(args))


def guard_predict(images: list[str], checkpoint: str | None, out: str | os.PathLike) -> None:
    """``fcnlib predict``: image arguments that are files, an output folder that can be written,
    and outputs that replace neither an image (see ``plan_outputs``) nor the checkpoint."""
    from .outputs import output_paths, output_stems

    image_inputs(images)
    writable_folder(out, "`out`")
    names = output_stems(images)
    for image, name in zip(images, names):
        if not name or name in (".", ".."):
            raise GuardError(f"{image}: no output can be named after this file; rename it")
    if checkpoint is not None:
        targets = {
            f"the output {target}": target
            for name in names
            for target in output_paths(out, name)
            if _real(target) == _real(checkpoint)
        }
        refuse_overlap(targets, {"the checkpoint": checkpoint})
