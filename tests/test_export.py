"""fcnlib export and the committed model of the "Try it" page (_widgets_js/fcn/camvid-cpu.onnx).

The page's model is the shipped ``camvid-cpu`` exported by ``fcnlib export``; these tests check
that onnxruntime (Python) gives it the labels of ``fcnlib.predict`` with the card's settings, so
that the .onnx and the .pt cannot drift apart, that its metadata carries the card, and the CLI's
one-line errors (each before anything is written). An export itself takes minutes of CPU (the
symbolic shapes); ``FCNLIB_EXPORT_TEST=1`` runs one and compares it with the committed file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlib.cli import main
from fcnlib.data.shapes import SyntheticShapes
from fcnlib.models import get_weights
from fcnlib.predict import predict
from fcnlib.trained import load_trained

ort = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parent.parent
ONNX = REPO / "_widgets_js" / "fcn" / "camvid-cpu.onnx"
PAGE_CARD = REPO / "_widgets_js" / "fcn" / "camvid-cpu.json"
CAMVID = REPO.parent / "shared" / "data" / "camvid"


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def model():
    return load_trained(weights="camvid-cpu").model


def _photo(h: int, w: int) -> np.ndarray:
    """A CamVid frame resized to ``h x w`` where CamVid is present, else a synthetic image."""
    if (CAMVID / "test.txt").is_file():
        rel = (CAMVID / "test.txt").read_text().split()[0]
        im = Image.open(CAMVID / rel).convert("RGB")
    else:
        im = SyntheticShapes(1, min_size=(240, 320), max_size=(240, 320), seed=3).raw(0)[0]
    return np.array(im.resize((w, h), Image.Resampling.BILINEAR))


def _onnx_labels(session, image: np.ndarray, rows=None) -> np.ndarray:
    rows = np.arange(image.shape[0]) if rows is None else rows
    return session.run(None, {"image": image, "rows": rows})[0]


def _card_predict(model, image: np.ndarray) -> np.ndarray:
    p = get_weights("camvid-cpu").meta["predict"]
    labels = predict(
        model,
        image,
        mode=p["mode"],
        train_size=p["train_size"],
        scales=p["scales"],
        flip=p["flip"],
    )
    return labels.numpy()


@pytest.mark.parametrize("size", [(517, 333), (333, 517), (181, 243), (360, 480)])
def test_onnx_labels_equal_fcnlib_predict_with_the_card_settings(session, model, size):
    # Measured on CamVid frames: 99.77-99.90 % of the pixels agree; the rest lie on class
    # boundaries (PIL's fixed-point antialiased resize vs the graph's float one, rounded to 8 bits).
    torch.set_num_threads(1)
    image = _photo(*size)
    got, want = _onnx_labels(session, image), _card_predict(model, image)
    assert got.shape == size and got.dtype == np.uint8
    agree = float((got == want).mean())
    assert agree >= 0.99, agree


def test_strips_of_rows_equal_the_whole_map(session):
    image = _photo(333, 517)
    whole = _onnx_labels(session, image)
    strips = [_onnx_labels(session, image, np.arange(a, min(333, a + 50))) for a in range(0, 333, 50)]
    np.testing.assert_array_equal(np.concatenate(strips), whole)
    odd_rows = np.array([332, 0, 17])  # any rows, in any order
    np.testing.assert_array_equal(_onnx_labels(session, image, odd_rows), whole[odd_rows])


def test_rgba_is_composited_over_white_like_load_image(session, model):
    rgb = _photo(200, 300)
    alpha = np.tile(np.linspace(0, 255, 300).round().astype(np.uint8), (200, 1))[..., None]
    rgba = np.concatenate([rgb, alpha], axis=2)
    got, want = _onnx_labels(session, rgba), _card_predict(model, rgba)
    assert float((got == want).mean()) >= 0.99


def test_metadata_carries_the_card_and_the_page_card_matches():
    from fcnlib.export import read_metadata

    meta, card = read_metadata(ONNX), get_weights("camvid-cpu").meta
    assert meta["classes"] == card["classes"]
    assert meta["palette"] == card["palette"]
    assert meta["normalisation"] == card["normalisation"]
    assert meta["predict"] == card["predict"]
    assert meta["sha256"] == card["sha256"] and meta["source"] == "weights:camvid-cpu"
    assert meta["license"] == card["terms"]
    assert json.loads(PAGE_CARD.read_text()) == meta


def _cli_error(capsys, *argv) -> str:
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcnlib: error: ") and err.count("\n") == 1
    return err


def test_unknown_weights_one_line_nothing_written(tmp_path, capsys):
    err = _cli_error(capsys, "--weights", "no-such-model", "--out", str(tmp_path / "x.onnx"))
    assert "unknown weights 'no-such-model'" in err and "camvid-cpu" in err
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_of_another_format(tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save({"weight": torch.zeros(2)}, bare)  # a bare state dict, not an fcnlib checkpoint
    err = _cli_error(capsys, "--weights", str(bare), "--out", str(tmp_path / "x.onnx"))
    assert "bare state dict" in err
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    err = _cli_error(capsys, "--weights", str(text), "--out", str(tmp_path / "x.onnx"))
    assert "notes.pt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.pt", "notes.pt"]


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"keep me")
    err = _cli_error(capsys, "--weights", "camvid-cpu", "--out", str(out))
    assert "exists (use --overwrite to replace it)" in err
    assert out.read_bytes() == b"keep me"


def test_unwritable_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    err = _cli_error(capsys, "--weights", "camvid-cpu", "--out", str(blocker / "x.onnx"))
    assert "cannot create" in err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        err = _cli_error(capsys, "--weights", "camvid-cpu", "--out", str(ro / "x.onnx"))
        assert "permission denied" in err
        assert list(ro.iterdir()) == []


@pytest.mark.skipif(
    os.environ.get("FCNLIB_EXPORT_TEST") != "1", reason="an export takes minutes: FCNLIB_EXPORT_TEST=1"
)
def test_cli_export_reproduces_the_committed_model(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "--weights", "camvid-cpu", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    fresh = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    committed = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    image = _photo(333, 517)
    np.testing.assert_array_equal(_onnx_labels(fresh, image), _onnx_labels(committed, image))
