"""`fcnlib check-data`: each kind of bad folder, built here, is reported in the table and refused
with one line (exit 2), exactly as `fcnlib train` and `SegmentationFolder.check` refuse it; the
class file `classes.yaml` gives names, colours and the ignore value."""

from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from fcnlib.cli import main
from fcnlib.data import DatasetError, SegmentationFolder, build_dataset
from fcnlib.data.classfile import read_class_file, write_class_file

SIZE = (40, 30)  # width, height


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err) -> str:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fcnlib: error: "), err
    return lines[0][len("fcnlib: error: ") :]


def labels(seed: int, values=(0, 1, 2)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(values, size=(SIZE[1], SIZE[0])).astype(np.uint8)


def make_folder(root: Path, n: int = 4, values=(0, 1, 2)) -> Path:
    """root/images/im{i}.png with root/masks/im{i}.png ('L', labels from ``values``)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"im{i}.png")
        Image.fromarray(labels(i, values), "L").save(root / "masks" / f"im{i}.png")
    return root


def table_count(out: str, text: str) -> int:
    """The number in the table row that starts with ``text``."""
    (row,) = [line for line in out.splitlines() if line.startswith(text)]
    return int(row.split()[-1])


def rgb_mask(root):
    Image.new("RGB", SIZE, (128, 64, 128)).save(root / "masks" / "im1.png")


def mask_16bit(root):
    Image.fromarray(labels(1).astype(np.uint16)).save(root / "masks" / "im1.png")
    assert Image.open(root / "masks" / "im1.png").mode.startswith("I")


def value_too_large(root):
    mask = labels(1)
    mask[0, :3] = [3, 7, 254]
    mask[1, 0] = 255  # the ignore value is fine
    Image.fromarray(mask, "L").save(root / "masks" / "im1.png")


def other_size(root):
    Image.fromarray(np.zeros((SIZE[1] + 1, SIZE[0]), np.uint8), "L").save(root / "masks" / "im1.png")


def no_mask(root):
    (root / "masks" / "im1.png").unlink()
    (root / "masks" / "im2.png").unlink()


def no_image(root):
    (root / "images" / "im3.png").unlink()


def corrupt_image(root):
    (root / "images" / "im1.png").write_bytes(b"\x89PNG not really")


def duplicate_stem(root):
    Image.new("RGB", SIZE).save(root / "images" / "im1.jpg")


def split_stem_missing(root):
    (root / "train.txt").write_text("im0\nim1\nim9\n")


# kind -> (how to break the folder, table row, its count, the start of the first problem)
BAD = {
    "rgb": (rgb_mask, "masks not 8-bit index PNGs", 1, "mask must be an 8-bit palette ('P') or greyscale ('L') PNG, got mode 'RGB'"),
    "16-bit": (mask_16bit, "masks not 8-bit index PNGs", 1, "mask must be an 8-bit palette ('P') or greyscale ('L') PNG, got mode 'I"),
    "value": (value_too_large, "masks with values not a class nor ignore", 1, "mask has label values 3, 7, 254 outside 0..2 (255 = ignore)"),
    "size": (other_size, "mask size differs from image", 1, "mask 40x31 does not match image 40x30"),
    "no-mask": (no_mask, "images without a mask", 2, "image im1.png has no mask im1.png"),
    "no-image": (no_image, "masks without an image", 1, "mask im3.png has no image"),
    "corrupt": (corrupt_image, "files that cannot be read", 1, "cannot read image"),
    "duplicate": (duplicate_stem, "two files with one stem", 1, "two images share the stem 'im1': im1.jpg and im1.png"),
    "split": (split_stem_missing, "split-file stems without a pair", 1, "split file"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(BAD))
def test_each_bad_folder_is_reported_and_refused(capsys, tmp_path, kind):
    breaks, row, count, first = BAD[kind]
    root = make_folder(tmp_path / "set")
    breaks(root)
    code, out, err = run(capsys, "check-data", root, "--num-classes", 3)
    message = error_line(code, err)
    assert message.startswith(f"{root}: {count} problem{'s' if count > 1 else ''}; the first: {first}")
    assert table_count(out, row) == count
    others = [line for line in out.splitlines()[4:14] if not line.startswith((row, "check"))]
    assert all(line.split()[-1] == "0" for line in others if line.strip()), out
    assert "%" not in err and "it/s" not in err  # no progress bar on stderr
    with pytest.raises(DatasetError) as refused:  # what `fcnlib train` runs at start
        dataset = SegmentationFolder(root, "train" if kind == "split" else None, num_classes=3)
        dataset.check()
    if kind in ("rgb", "16-bit", "value", "size", "corrupt"):  # pairs: the very same line
        assert str(refused.value) == message


def test_train_refuses_with_the_same_line(capsys, tmp_path):
    root = make_folder(tmp_path / "set")
    value_too_large(root)
    code, _, err = run(capsys, "check-data", root, "--num-classes", 3)
    checked = error_line(code, err)
    code, _, err = run(capsys, "train", "--data", "folder", "--data-root", root, "--num-classes", 3,
                       "--train-split", "all", "--val-split", "all", "--width", "0.0625",
                       "--crop-size", "32", "--epochs", "1", "--out", tmp_path / "out", "--quiet")  # fmt: skip
    assert error_line(code, err) == checked


def test_a_good_folder_table_is_exact(capsys, tmp_path):
    root = make_folder(tmp_path / "set", values=(0, 2, 255))  # class 1 absent
    Image.fromarray(np.full((SIZE[1], SIZE[0]), 255, np.uint8), "L").save(root / "masks" / "im3.png")
    (root / "train.txt").write_text("im0\nim1\n")
    (root / "val.txt").write_text("im2\nim3\n")
    write_class_file(root, ["road", "car", "other"], [(128, 64, 128), (0, 0, 142), (1, 2, 3)])
    code, out, err = run(capsys, "check-data", root)
    assert code == 0 and err == ""
    assert f"pairs    4 (train.txt 2, val.txt 2)" in out and "classes  3 (classes.yaml)" in out
    assert table_count(out, "empty masks (no class pixel)") == 1
    masks = [np.array(Image.open(root / "masks" / f"im{i}.png")) for i in range(4)]
    total = sum(m.size for m in masks)
    for label, name in [(0, "road"), (2, "other"), (255, "ignore (255)")]:
        (row,) = [line for line in out.splitlines() if line.startswith(name)]
        share, images = row[len(name) :].split()[:2]
        assert float(share) == pytest.approx(100 * sum((m == label).sum() for m in masks) / total, abs=0.006)
        assert int(images) == sum(bool((m == label).any()) for m in masks)
    (car,) = [line for line in out.splitlines() if line.startswith("car")]
    assert car.split()[1:] == ["0.00", "0", "(absent)"]


def test_class_file_names_colours_and_ignore_reach_the_dataset(tmp_path):
    root = make_folder(tmp_path / "set", values=(0, 1, 250))
    write_class_file(root, ["sky", "ground"], [(10, 20, 30), (40, 50, 60)], ignore=250)
    found = read_class_file(root)
    assert found.names == ("sky", "ground") and found.ignore == 250
    dataset = build_dataset("folder", root, "all", train=False)  # no num_classes: the file's
    assert dataset.classes == ["sky", "ground"] and dataset.num_classes == 2
    assert dataset.palette[:2] == [(10, 20, 30), (40, 50, 60)] and len(dataset.palette) == 256
    _, mask = dataset[0]
    stored = labels(0, (0, 1, 250))
    assert np.array_equal(mask.numpy(), np.where(stored == 250, 255, stored))  # ignore read as 255
    dataset.check()
    mask = stored.copy()
    mask[0, 0] = 255  # 255 is not the ignore value here
    Image.fromarray(mask, "L").save(root / "masks" / "im0.png")
    with pytest.raises(DatasetError, match=r"label values 255 outside 0..1 \(250 = ignore\)"):
        dataset[0]
    with pytest.raises(DatasetError, match="lists 2 classes, but `num_classes` is 3"):
        SegmentationFolder(root, num_classes=3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("classes: [road]\n", "must be a list of 2..255 classes"),
        ("classes: [road, road]\n", "given twice: road"),
        ("classes: [road, car]\nignore: 1\n", "ignore must lie in 2..255"),
        ("classes:\n  - {name: road, color: [1, 2]}\n  - car\n", "class 0 colour must be [r, g, b]"),
        ("classes:\n  - {name: road, color: [1, 2, 300]}\n  - car\n", "values must lie in 0..255"),
        ("labels: [road, car]\n", "expected a mapping with 'classes'"),
        ("classes: [road, car\n", "cannot parse"),
    ],
)
def test_bad_class_files(capsys, tmp_path, text, message):
    root = make_folder(tmp_path / "set")
    (root / "classes.yaml").write_text(text)
    code, _, err = run(capsys, "check-data", root)
    assert message in error_line(code, err)


def test_without_classes_values_are_listed_not_checked(capsys, tmp_path):
    root = make_folder(tmp_path / "set", values=(0, 5))
    code, out, err = run(capsys, "check-data", root)
    assert code == 0 and "classes  not given" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("value")] == [
        ["value", "0"], ["value", "1"], ["value", "2"], ["value", "3"], ["value", "4"], ["value", "5"]
    ]  # fmt: skip
    with pytest.raises(DatasetError, match=r"needs `num_classes` or a class file"):
        SegmentationFolder(root)


def test_check_data_argument_errors(capsys, tmp_path):
    code, _, err = run(capsys, "check-data", tmp_path / "nowhere")
    assert "dataset folder not found" in error_line(code, err)
    code, _, err = run(capsys, "check-data", make_folder(tmp_path / "set"), "--num-classes", 1)
    assert error_line(code, err) == "--num-classes must lie in 2..255, got 1"


# --------------------------------------------------------------------------------------------------
# Fine-tuning a folder from the shipped model, and the class file through train, eval, predict
# --------------------------------------------------------------------------------------------------

CAMVID_NET = ["--model", "fcn8s", "--head", "light", "--upsample", "bilinear", "--width", "0.25",
              "--batch-norm", "true"]  # fmt: skip


def test_init_model_keeps_backbone_and_skips_and_resets_class_scores():
    from fcnlib.config import load_config
    from fcnlib.models import fcn8s
    from fcnlib.trained import init_model

    cfg = load_config("camvid-cpu")
    shipped = fcn8s(weights="camvid-cpu").state_dict()
    model = init_model("camvid-cpu", cfg, 3)
    state = model.state_dict()
    assert model.num_classes == 3 and set(state) == set(shipped)
    fresh = sorted(k for k in state if state[k].shape != shipped[k].shape)
    kept = [k for k in state if k not in fresh]
    assert all(torch.equal(state[k], shipped[k]) for k in kept)
    assert any(k.startswith("features.") for k in kept) and any(k.startswith("head.") for k in kept)
    assert all(k.startswith(("head.", "score_pool", "up_")) for k in fresh), fresh
    assert {"score_pool4.weight", "score_pool3.weight"} <= set(fresh)
    assert not torch.any(state["score_pool4.weight"]) and not torch.any(state["score_pool3.weight"])
    same = init_model("camvid-cpu", cfg, 11)  # the same class count: every weight kept
    assert all(torch.equal(v, shipped[k]) for k, v in same.state_dict().items())


def test_fine_tune_a_folder_from_camvid_cpu_then_eval_and_predict(capsys, tmp_path):
    from fcnlib.checkpoint import load_checkpoint

    root = make_folder(tmp_path / "set", values=(0, 1, 2, 255))
    colours = [(128, 64, 128), (0, 0, 142), (70, 70, 70)]
    write_class_file(root, ["road", "vehicle", "other"], colours)
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--data", "folder", "--data-root", root, "--train-split", "all",
                       "--val-split", "all", *CAMVID_NET, "--init-from", "camvid-cpu", "--crop-size", "32",
                       "--epochs", "1", "--batch-size", "2", "--out", out, "--quiet")  # fmt: skip
    assert code == 0, err
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["config"]["init_from"] == "camvid-cpu" and ckpt["config"]["data"] == "folder"
    assert ckpt["classes"] == ["road", "vehicle", "other"] and ckpt["num_classes"] == 3
    assert [tuple(c) for c in ckpt["palette"][:3]] == colours
    code, out_text, err = run(capsys, "eval", out / "best.pt", "--data", "folder", "--data-root", root,
                              "--split", "all", "--out", tmp_path / "eval.json", "--quiet")  # fmt: skip
    assert code == 0, err
    assert "road:" in out_text and "vehicle:" in out_text
    code, _, err = run(capsys, "predict", out / "best.pt", root / "images" / "im0.png", "--out", tmp_path / "p")
    assert code == 0, err
    written = Image.open(tmp_path / "p" / "im0_mask.png")
    assert written.mode == "P" and written.getpalette()[:9] == [v for c in colours for v in c]


def test_init_from_weights_of_another_architecture_is_refused(capsys, tmp_path):
    root = make_folder(tmp_path / "set")
    code, _, err = run(capsys, "train", "--data", "folder", "--data-root", root, "--num-classes", 3,
                       "--train-split", "all", "--val-split", "all", "--width", "0.125",
                       "--init-from", "camvid-cpu", "--out", tmp_path / "o", "--quiet")  # fmt: skip
    assert "--init-from camvid-cpu was trained with --width 0.25 (the recipe says 0.125)" in error_line(code, err)


def test_a_folder_is_checked_again_after_it_changes(tmp_path):
    root = make_folder(tmp_path / "set")
    dataset = SegmentationFolder(root, num_classes=3)
    dataset.check()
    dataset.check()  # unchanged: passes without reading again
    rgb_mask(root)
    with pytest.raises(DatasetError, match="got mode 'RGB'"):
        dataset.check()
