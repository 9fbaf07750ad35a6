"""`fcnlib predict`: options checked where they enter (one line, exit 2), no output ever lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlib.cli import build_parser, main
from fcnlib.data.images import DEFAULT_MAX_IMAGE_PIXELS


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *patterns):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("fcnlib: error: "), err
    assert "Traceback" not in err
    for pattern in patterns:
        assert pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    code = main(["train", "--width", "0.0625", "--crop-size", "32", "--limit-train", "4", "--limit-val", "2",
                 "--batch-size", "2", "--epochs", "1", "--out", str(out), "--quiet"])
    assert code == 0
    return out / "best.pt"


def photo(path: Path, height: int, width: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


BAD_OPTIONS = [
    (["--tile", "0"], "--tile must be >= 1, got 0"),
    (["--tile", "-5"], "--tile must be >= 1, got -5"),
    (["--overlap", "512"], "--overlap must lie in 0..511"),
    (["--tile", "64", "--overlap", "64"], "--overlap must lie in 0..63"),
    (["--tile", "64", "--overlap", "100"], "got 100"),
    (["--overlap", "-1"], "--overlap must lie in 0..511"),
    (["--scale", "0"], "--scale must be positive finite numbers, got 0.0"),
    (["--scale", "nan"], "--scale must be positive finite numbers, got nan"),
    (["--scales", "inf"], "--scale must be positive finite numbers, got inf"),
    (["--scale", "1", "-0.5"], "--scale must be positive finite numbers, got 1.0 -0.5"),
    (["--train-size", "0"], "--train-size must be >= 1, got 0"),
    (["--train-size", "-3"], "--train-size must be >= 1"),
    (["--max-image-pixels", "0"], "--max-image-pixels must be >= 1, got 0"),
    (["--device", "foo"], "--device"),
    (["--device", "cuda:x"], "--device"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_bad_options_give_one_line_and_exit_2(capsys, tmp_path, options, message):
    image = photo(tmp_path / "x.png", 20, 30)
    out = tmp_path / "pred"
    code, _, err = run(capsys, "predict", tmp_path / "no-such.pt", image, "--out", out, *options)
    assert_one_line_error(code, err, message)
    assert not out.exists()  # refused before anything was read or written


def test_cuda_without_a_gpu(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    image = photo(tmp_path / "x.png", 20, 30)
    for device in ("cuda", "cuda:0"):
        code, _, err = run(capsys, "predict", tmp_path / "no-such.pt", image, "--out", tmp_path / "o", "--device", device)
        assert_one_line_error(code, err, "GPU")


def test_max_image_pixels_default_and_refusal(capsys, tmp_path):
    defaults = build_parser().parse_args(["predict", "ckpt.pt", "x.png"])
    assert defaults.max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS
    image = photo(tmp_path / "big.png", 40, 50)
    code, _, err = run(capsys, "predict", tmp_path / "no-such.pt", image, "--out", tmp_path / "o",
                       "--max-image-pixels", 1999)
    assert_one_line_error(code, err, "big.png: 50 x 40 px", "limit of 1,999 pixels", "--max-image-pixels")
    assert not (tmp_path / "o").exists()


def test_same_stem_inputs_keep_every_output(capsys, tmp_path, checkpoint):
    first = photo(tmp_path / "a" / "x.png", 37, 53, seed=1)
    second = photo(tmp_path / "b" / "x.png", 20, 30, seed=2)
    third = photo(tmp_path / "c" / "x.jpg", 25, 21, seed=3)
    out = tmp_path / "pred"
    for extra in ([], ["--overwrite"]):
        code, stdout, err = run(capsys, "predict", checkpoint, first, second, third, "--out", out, *extra)
        assert code == 0, err
        assert sorted(p.name for p in out.iterdir()) == [
            "x-2_mask.png", "x-2_overlay.png", "x-3_mask.png", "x-3_overlay.png", "x_mask.png", "x_overlay.png",
        ]  # fmt: skip
        for name, (height, width) in (("x", (37, 53)), ("x-2", (20, 30)), ("x-3", (25, 21))):
            with Image.open(out / f"{name}_mask.png") as mask:
                assert mask.mode == "P" and mask.size == (width, height)  # the size of its own input
                assert np.asarray(mask).max() < 6  # one class index per pixel (6 shapes classes)
            with Image.open(out / f"{name}_overlay.png") as overlay:
                assert overlay.height >= height and overlay.width > 2 * width  # image | overlay | legend
        assert f"{second}: {out / 'x-2_mask.png'}, {out / 'x-2_overlay.png'}" in stdout
    code, _, err = run(capsys, "predict", checkpoint, first, second, "--out", out)
    assert_one_line_error(code, err, "x_mask.png exists (use --overwrite)")


def test_outputs_never_replace_an_input(capsys, tmp_path, checkpoint):
    folder = tmp_path / "photos"
    image = photo(folder / "p.png", 20, 20)
    victim = photo(folder / "p_mask.png", 20, 20, seed=5)
    before = victim.read_bytes()
    code, _, err = run(capsys, "predict", checkpoint, image, victim, "--out", folder, "--overwrite")
    assert_one_line_error(code, err, "would replace an input image")
    assert victim.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["p.png", "p_mask.png"]


def test_unreadable_second_image_is_refused_before_any_output(capsys, tmp_path, checkpoint):
    good = photo(tmp_path / "good.png", 20, 20)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is no image\n")
    out = tmp_path / "pred"
    code, _, err = run(capsys, "predict", checkpoint, good, bad, "--out", out)
    assert_one_line_error(code, err, "bad.jpg: not an image file")
    assert not out.exists()


def test_scales_that_blow_the_image_up_are_refused(capsys, tmp_path, checkpoint):
    image = photo(tmp_path / "small.png", 20, 20)
    code, _, err = run(capsys, "predict", checkpoint, image, "--out", tmp_path / "o", "--mode", "whole",
                       "--scale", "1", "10", "--max-image-pixels", 10_000)
    assert_one_line_error(code, err, "predicting at 200 x 200 px", "--scale", "--max-image-pixels")
    assert not (tmp_path / "o").exists()
