"""fcnlib.book: mode parsing, the book's recipes and their paths, trained_model's reuse of a finished run."""

import os
import subprocess
import sys
import time
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


def test_setup_prints_device_mode_and_how_to_switch(monkeypatch, capsys):
    monkeypatch.setenv("FCNBOOK_MODE", "smoke")
    device, mode = book.setup()
    assert mode == "smoke" and device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert capsys.readouterr().out.strip() == (
        f"device={device}, mode=smoke (set FCNBOOK_MODE=full before starting to switch)")


def test_default_runs_dir_is_in_the_repository():
    assert book.runs_dir("smoke") == ROOT / "runs" / "book" / "smoke"
    assert book.runs_dir("full") == ROOT / "runs" / "book" / "full"
    with pytest.raises(ValueError):
        book.runs_dir("other")


def test_smoke_recipe_is_the_shapes_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("FCNBOOK_RUNS", str(tmp_path))
    cfg = book.book_recipe("smoke")
    assert cfg.out == str(tmp_path / "smoke")
    expected = load_config(ROOT / "configs" / "shapes.yaml").to_dict()
    assert {**cfg.to_dict(), "out": ""} == {**expected, "out": ""}
    assert book.book_recipe("smoke", epochs=1, lr=0.5).lr == 0.5


def test_full_recipe_is_the_voc_trainaug_recipe(monkeypatch, tmp_path):
    monkeypatch.setenv("FCNBOOK_RUNS", str(tmp_path))
    cfg = book.book_recipe("full")
    assert cfg.data_root == "data/voc" and cfg.out == str(tmp_path / "full")
    expected = load_config(ROOT / "configs" / "voc-trainaug.yaml").to_dict()
    assert {**cfg.to_dict(), "out": "", "data_root": None} == {**expected, "out": "", "data_root": None}
    monkeypatch.setenv("FCNBOOK_VOC_ROOT", "/data/pascal")
    assert book.book_recipe("full").data_root == "/data/pascal"
    with pytest.raises(ValueError):
        book.book_recipe("bogus")


def test_one_repository_url_everywhere():
    import json

    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert book.REPOSITORY_URL == url
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        installs = [line for line in code.splitlines() if "pip" in line and "install" in line]
        assert installs, f"{nb.name} has no install cell"
        for line in installs:
            assert "git+" + url in line, (nb.name, line)


def test_camvid_is_found_or_the_fallback_is_announced(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FCNBOOK_CAMVID", str(tmp_path / "missing"))
    assert book.camvid_root(download_if_missing=False) is None
    assert "CamVid not found" in capsys.readouterr().out
    data = book.book_data("smoke")
    assert (data.name, data.split) == ("shapes", "val")
    (tmp_path / "cv" / "test").mkdir(parents=True)
    monkeypatch.setenv("FCNBOOK_CAMVID", str(tmp_path / "cv"))
    assert book.camvid_root(download_if_missing=False) == tmp_path / "cv"


def test_book_model_is_the_shipped_model_of_the_data():
    tm = book.book_model("smoke", book.BookData("shapes", None, "val"))
    assert tm.source == "weights:shapes-demo" and tm.model.stride == 8
    tm = book.book_model("smoke", book.BookData("camvid", Path("x"), "test"))
    assert tm.source == "weights:camvid-cpu" and tm.num_classes == 11 and len(tm.palette) == 11


def test_demo_training_runs_under_its_budget_in_a_fresh_folder(monkeypatch):
    result = book.demo_training("smoke", minutes=0.001, limit_train=16, limit_val=4, crop_size=64, width=0.0625)
    assert result["stopped_by_budget"] is True and len(result["history"]) == 1
    again = book.demo_training("smoke", minutes=0.001, limit_train=16, limit_val=4, crop_size=64, width=0.0625)
    assert again["out"] != result["out"]  # nothing reused between calls (or chapters)


def _code_cells(nb):
    import json

    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def test_chapters_fit_the_page_and_use_only_public_names():
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("check_line_length", ROOT / "tools" / "check_line_length.py")
    checker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checker)
    notebooks = sorted((ROOT / "chapters").glob("*.ipynb"))
    assert len(notebooks) == 9
    private = re.compile(r"from fcnlib[\w.]* import [^#\n]*\b_\w+|fcnlib(\.\w+)*\._\w+")
    for nb in notebooks:
        assert checker.long_lines(nb) == [], nb.name
        cells = _code_cells(nb)
        for cell in cells:
            source = "".join(cell["source"])
            assert all(len(line) <= 79 for line in source.splitlines()), nb.name
            assert not private.search(source), (nb.name, private.search(source).group(0))
            assert not cell.get("outputs"), f"{nb.name} is committed with outputs"
        first = cells[0]
        assert "hide-input" in first.get("metadata", {}).get("tags", []), nb.name


def test_a_busy_cpu_is_seen_now_not_a_minute_later(monkeypatch):
    """A process spinning beside the chapter counts as at least most of a core in use."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert book._cores_in_use(window=0.5) >= 0.7
    finally:
        spinner.kill()
        spinner.wait()
    monkeypatch.setattr(book, "_cores_in_use", lambda window=0.5: 0.1)
    assert book._busy_cpu_threads() is None
    monkeypatch.setattr(book, "_cores_in_use", lambda window=0.5: 1.2)
    assert book._busy_cpu_threads() == (1 if (os.cpu_count() or 1) <= 4 else None)
