"""``fcnlib check-data DIR [--num-classes N]``: what a folder data set holds and what is wrong.

Prints a short table on stdout (pairs per split file, problems by kind, each class's pixel share
and images); exits 2 with one ``fcnlib: error: ...`` line naming the first problem and how many
there are when ``fcnlib train`` would refuse the folder. Absent classes and empty masks are
reported, not refused.
"""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["add_parser", "format_report", "run"]


def add_parser(sub) -> None:
    """Add the ``check-data`` sub-command to ``sub`` (argparse sub-parsers)."""
    p = sub.add_parser(
        "check-data",
        help="check a folder data set (images/, masks/, split files, classes.yaml) before training",
        description="Read every image and mask of DIR (DIR/images/*, DIR/masks/*.png matched by "
        "stem, optional DIR/<split>.txt and DIR/classes.yaml) and report the pairs, the problems "
        "that `fcnlib train` would refuse, and each class's pixel share. Exit status 2 when there "
        "is a problem.",
    )
    p.add_argument("root", metavar="DIR", help="the data set folder")
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        metavar="N",
        help="classes 0..N-1 (default: from DIR/classes.yaml; without either, values >= N are "
        "not checked)",
    )
    p.set_defaults(func=run)


def _class_rows(report) -> list[str]:
    pixels, images = report.pixels, report.images_with
    classes = report.classes
    ignore = classes.ignore if classes else 255
    if classes is not None:
        names = list(classes.names)
    else:  # no class count: every value found except the ignore value
        found = [int(v) for v in np.flatnonzero(pixels) if v != ignore]
        names = [f"value {v}" for v in range(max(found) + 1)] if found else []
    total = max(int(pixels.sum()), 1)
    width = max([len(n) for n in names] + [14])
    rows = [f"{'class':<{width}}  {'pixels %':>8}  {'images':>6}"]
    for label, name in enumerate(names):
        absent = "  (absent)" if pixels[label] == 0 else ""
        rows.append(
            f"{name[:40]:<{width}}  {100 * pixels[label] / total:8.2f}  {images[label]:6d}{absent}"
        )
    rows.append(
        f"{f'ignore ({ignore})':<{width}}  {100 * pixels[ignore] / total:8.2f}  {images[ignore]:6d}"
    )
    return rows


def format_report(report) -> str:
    """The table ``check-data`` prints for a :class:`fcnlib.data.check.FolderReport`."""
    from ..data.check import PROBLEM_KINDS

    classes = report.classes
    source = f"{len(classes.names)} ({classes.source})" if classes else "not given"
    splits = ", ".join(f"{k}.txt {v}" for k, v in report.splits.items()) or "no split files"
    lines = [
        f"folder   {report.root}",
        f"classes  {source}",
        f"pairs    {report.pairs} ({splits})",
        "",
        f"{'check':<40}  {'found':>5}",
    ]
    for kind, text in PROBLEM_KINDS.items():
        count = sum(p.kind == kind for p in report.problems)
        lines.append(f"{text:<40}  {count:5d}")
    lines.append(f"{'empty masks (no class pixel)':<40}  {len(report.empty_masks):5d}")
    lines += ["", *_class_rows(report)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Check ``args.root``; print the table; raise the first problem (the CLI: exit 2)."""
    from ..data import DatasetError
    from ..data.check import check_folder

    if args.num_classes is not None and not 2 <= args.num_classes <= 255:
        raise DatasetError(f"--num-classes must lie in 2..255, got {args.num_classes}")
    report = check_folder(args.root, args.num_classes)
    print(format_report(report), flush=True)
    report.raise_if_bad()
    return 0
