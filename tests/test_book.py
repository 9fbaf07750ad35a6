"""fcnlib.book: mode parsing, the book's recipes and their paths, trained_model's reuse of a finished run."""

from pathlib import Path

import pytest
import torch

from fcnlib import book
from fcnlib.config import load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("FCNBOOK_MODE", "FCNBOOK_RUNS", "FCNBOOK_VOC_ROOT"):
        monkeypatch.delenv(name, raising=False)


def test_mode_default_follows_the_device():
    assert book.book_mode(torch.device("cpu")) == "smoke"
    assert book.book_mode(torch.device("cuda")) == "full"


@pytest.mark.parametrize("value", ["smoke", "full"])
def test_mode_from_env(monkeypatch, value):
    monkeypatch.setenv("FCNBOOK_MODE", value)
    assert book.book_mode(torch.device("cpu")) == value
    assert book.book_mode(torch.device("cuda")) == value


@pytest.mark.parametrize("value", ["fast", "Smoke", "full "])
def test_bad_mode_is_refused(monkeypatch, value):
    monkeypatch.setenv("FCNBOOK_MODE", value)
    with pytest.raises(ValueError, match="FCNBOOK_MODE"):
        book.book_mode()
    with pytest.raises(ValueError):
        book.setup()


def test_setup_prints_device_and_mode(monkeypatch, capsys):
    monkeypatch.setenv("FCNBOOK_MODE", "smoke")
    device, mode = book.setup()
    assert mode == "smoke" and device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert capsys.readouterr().out.strip() == f"device={device}, mode=smoke"


def test_default_runs_dir_is_in_the_repository():
    assert book.runs_dir("smoke") == ROOT / "runs" / "book" / "smoke"
    assert book.runs_dir("full") == ROOT / "runs" / "book" / "full"
    with pytest.raises(ValueError):
        book.runs_dir("other")


def test_smoke_recipe_is_the_shapes_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("FCNBOOK_RUNS", str(tmp_path))
    cfg = book.book_recipe("smoke")
    assert cfg.out == str(tmp_path / "smoke") and cfg.epochs == book.SMOKE_EPOCHS
    expected = load_config(ROOT / "configs" / "shapes.yaml").to_dict()
    assert {**cfg.to_dict(), "epochs": 0, "out": ""} == {**expected, "epochs": 0, "out": ""}
    assert book.book_recipe("smoke", epochs=1, lr=0.5).lr == 0.5


def test_full_recipe_is_the_voc_trainaug_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("FCNBOOK_RUNS", str(tmp_path))
    cfg = book.book_recipe("full")
    assert cfg.data_root == "data/voc" and cfg.out == str(tmp_path / "full")
    expected = load_config(ROOT / "configs" / "voc-trainaug.yaml").to_dict()
    assert {**cfg.to_dict(), "out": ""} == {**expected, "out": ""}
    monkeypatch.setenv("FCNBOOK_VOC_ROOT", "/data/pascal")
    assert book.book_recipe("full").data_root == "/data/pascal"
    with pytest.raises(ValueError):
        book.book_recipe("bogus")


def test_trained_model_trains_once_then_reuses(monkeypatch, tmp_path):
    monkeypatch.setenv("FCNBOOK_RUNS", str(tmp_path))
    monkeypatch.setattr(book, "SMOKE_EPOCHS", 1)
    calls = []
    real_train = book.train
    monkeypatch.setattr(book, "train", lambda cfg, **kw: calls.append(cfg) or real_train(cfg, **kw))
    tiny = dict(limit_train=16, limit_val=4, crop_size=64)
    model, ckpt = book.trained_model("smoke", **tiny)
    best = tmp_path / "smoke" / "fcn8s" / "best.pt"
    assert len(calls) == 1 and calls[0].out == str(best.parent) and best.is_file()
    assert model.stride == 8 and ckpt["epoch"] == 1 and ckpt["model_name"] == "fcn8s"
    mtime = best.stat().st_mtime_ns
    again, ckpt2 = book.trained_model("smoke", **tiny)
    assert len(calls) == 1 and best.stat().st_mtime_ns == mtime  # not retrained
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_trained_model_rejects_unknown_stage(monkeypatch, tmp_path):
    monkeypatch.setenv("FCNBOOK_RUNS", str(tmp_path))
    with pytest.raises(ValueError, match="stages"):
        book.trained_model("full", name="fcn4s")
