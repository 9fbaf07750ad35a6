"""The second attack round on the CLI: each test is a bad input or fault that a probe found
ending in data loss, a wrong success or a traceback, and what it gives now."""

import json
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnlib import cli
from fcnlib.checkpoint import load_checkpoint
from fcnlib.cli import main
from fcnlib.fileio import atomic_write_text, write_target
from test_reliability import one_line_error

TINY = ["--width", "0.0625", "--crop-size", "32", "--limit-train", "4", "--limit-val", "2", "--batch-size", "2",
        "--epochs", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A finished tiny FCN-32s run (width 0.0625)."""
    out = tmp_path_factory.mktemp("parent") / "run32"
    assert main(["train", *TINY, "--model", "fcn32s", "--out", str(out)]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ------------------------------------------------------------------------------------------------
# Data lost or a wrong success
# ------------------------------------------------------------------------------------------------


def test_overwrite_never_clears_the_checkpoint_it_grows_from(capsys, parent, tmp_path):
    before = _snapshot(parent)
    one_line_error(capsys, ["train", *TINY, "--model", "fcn16s", "--init-from", parent / "best.pt",
                            "--out", parent, "--overwrite"], "is the file that --init-from reads")
    assert _snapshot(parent) == before


@pytest.mark.parametrize("flags, words", [
    (["--width", "0.125"], "--width 0.0625 (the recipe says 0.125)"),
    (["--head", "paper"], "--head light (the recipe says paper)"),
    (["--upsample", "deconv", "--batch-norm", "false"], "--upsample bilinear (the recipe says deconv), "
                                                         "--batch-norm True (the recipe says False)"),
])
def test_init_from_another_architecture_is_refused_at_start(capsys, parent, tmp_path, flags, words):
    out = tmp_path / "child"
    one_line_error(capsys, ["train", *TINY, "--model", "fcn16s", *flags, "--init-from", parent / "best.pt",
                            "--out", out], words)
    assert not out.exists()  # refused before the folder was made


def test_init_from_a_finer_model_and_stages_out_of_order_are_refused(capsys, parent, tmp_path):
    child = tmp_path / "child16"
    assert main(["train", *TINY, "--model", "fcn16s", "--init-from", str(parent / "best.pt"),
                 "--out", str(child)]) == 0
    capsys.readouterr()
    one_line_error(capsys, ["train", *TINY, "--model", "fcn32s", "--init-from", child / "best.pt",
                            "--out", tmp_path / "back"], "holds an fcn16s, finer than fcn32s")
    for stages in ("fcn8s fcn32s", "fcn16s fcn16s"):
        one_line_error(capsys, ["train", *TINY, "--stages", stages, "--out", tmp_path / "s"],
                       "stages must go from coarse to fine without repeats")
    assert not (tmp_path / "s").exists()


def test_a_grown_model_loads_again(capsys, parent, tmp_path):
    """What --init-from trains is what its checkpoint records: eval can rebuild it."""
    out = tmp_path / "grown"
    assert main(["train", *TINY, "--init-from", str(parent / "best.pt"), "--out", str(out)]) == 0
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["model_name"] == "fcn8s" and ckpt["config"]["width"] == 0.0625
    assert main(["eval", str(out / "best.pt"), "--limit", "1", "--quiet"]) == 0


def test_outputs_that_are_not_regular_files_are_refused(capsys, parent, tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    one_line_error(capsys, ["eval", parent / "best.pt", "--limit", "1", "--out", fifo, "--overwrite", "--quiet"],
                   "Not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a pipe: a rename would have replaced it
    with pytest.raises(IsADirectoryError):
        write_target(tmp_path)


def test_a_symbolic_link_is_followed_not_replaced(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_text("new", link)
    assert link.is_symlink() and target.read_text() == "new"


def test_a_stray_rank_without_a_process_group_is_ignored(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not a whole number"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be >= 1"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK, MASTER_ADDR, MASTER_PORT not set"),
    ({"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK 5 >= WORLD_SIZE 2"),
])
def test_torchrun_variables_outside_torchrun(capsys, monkeypatch, tmp_path, env, words):
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    one_line_error(capsys, ["train", *TINY, "--out", tmp_path / "run"], words)
    assert not (tmp_path / "run").exists()


def _unlabelled_folder(root: Path) -> Path:
    """A folder data set (train and val) whose every mask pixel is the ignore label 255."""
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.full((40, 40), 255, np.uint8), "L").save(root / "masks" / f"{i}.png")
    (root / "train.txt").write_text("0\n1\n2\n")
    (root / "val.txt").write_text("3\n4\n5\n")
    return root


@pytest.mark.parametrize("weighting", ["none", "median-frequency"])
def test_training_on_masks_without_a_labelled_pixel_is_refused(capsys, tmp_path, weighting):
    root = _unlabelled_folder(tmp_path / "data")
    line = one_line_error(capsys, ["train", *TINY, "--data", "folder", "--data-root", root, "--num-classes", "3",
                                   "--class-weighting", weighting, "--out", tmp_path / "run"], "no labelled pixel")
    assert "nan" not in line.lower()
    assert not (tmp_path / "run" / "best.pt").exists()


# ------------------------------------------------------------------------------------------------
# Tracebacks that are one line now, before any work
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, words", [
    (["--seed", "99999999999999999999999"], "seed must be in 0..4294967295"),
    (["--seed", "10000000000000000"], "seed must be in 0..4294967295"),
    (["--crop-size", "20000"], "crop_size x crop_width must be at most 100 MP"),
    (["--eval-scale", "500"], "eval_scale must be in 0.015625..64"),
])
def test_settings_that_overflow_or_exhaust_memory(capsys, tmp_path, flags, words):
    out = tmp_path / "run"
    one_line_error(capsys, ["train", *TINY, *flags, "--out", out], words)
    assert not out.exists()  # --eval-scale: refused before the first epoch, not after it


def test_eval_scale_too_large_is_refused_before_allocating(capsys, parent):
    one_line_error(capsys, ["eval", parent / "best.pt", "--scale", "1000", "--limit", "1", "--quiet"],
                   "--scale must be in 0.015625..64")


def test_bench_checks_its_output_folder_first(capsys, monkeypatch, tmp_path):
    def must_not_run(**kwargs):
        raise AssertionError("the benchmark ran before --out was checked")

    monkeypatch.setattr("fcnlib.bench.run_bench", must_not_run)
    monkeypatch.setattr("fcnlib.bench.run_recipe_bench", must_not_run)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(capsys, ["bench", "--quick", "--out", blocker], "is a file; --out needs a folder")
    one_line_error(capsys, ["bench", "--config", "shapes", "--out", blocker / "sub"], "cannot create")


def test_predict_refuses_a_folder_in_the_way_before_writing(capsys, parent, tmp_path):
    photo = tmp_path / "ok.png"
    Image.new("RGB", (40, 30), (90, 120, 30)).save(photo)
    out = tmp_path / "pred"
    (out / "ok_overlay.png").mkdir(parents=True)
    one_line_error(capsys, ["predict", parent / "best.pt", photo, "--out", out, "--overwrite"],
                   "Is a folder, not a file to write")
    assert sorted(p.name for p in out.iterdir()) == ["ok_overlay.png"]  # no mask written either
    (tmp_path / "afile").write_text("x")
    one_line_error(capsys, ["predict", parent / "best.pt", photo, "--out", tmp_path / "afile"],
                   "is a file, not a folder")


def test_predict_on_a_symlink_loop(capsys, parent, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    one_line_error(capsys, ["predict", parent / "best.pt", tmp_path / "a", "--out", tmp_path / "o"], "a")


# ------------------------------------------------------------------------------------------------
# Smaller
# ------------------------------------------------------------------------------------------------


def test_a_setting_given_twice_and_a_missing_recipe_path(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 0.5\nepochs: 1\nlr: 0.001\n", encoding="utf-8")
    one_line_error(capsys, ["train", "--config", recipe, "--out", tmp_path / "o"], "setting 'lr' is given twice (line 3)")
    one_line_error(capsys, ["train", "--config", "/nonexistent/configs/shapes.yaml", "--out", tmp_path / "o"],
                   "recipe not found: /nonexistent/configs/shapes.yaml")
    one_line_error(capsys, ["train", "--config", "shapes.txt", "--out", tmp_path / "o"], "recipe not found")
    assert not (tmp_path / "o").exists()


def test_a_refused_run_leaves_no_empty_folder(capsys, tmp_path):
    out = tmp_path / "run"
    one_line_error(capsys, ["train", *TINY, "--class-weights", "1 2", "--out", out], "class")
    assert not out.exists()
    kept = tmp_path / "mine"
    kept.mkdir()
    one_line_error(capsys, ["train", *TINY, "--class-weights", "1 2", "--out", kept], "class")
    assert kept.is_dir()  # a folder the user made stays


@pytest.mark.parametrize("command, words", [
    ("predict", "the outputs already listed are complete"),
    ("eval", "no result was written"),
    ("train", "continue with --resume"),
])
def test_interruption_says_what_the_command_left(capsys, monkeypatch, command, words):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, f"cmd_{command}", interrupted)
    argv = {"predict": ["predict", "x.pt", "y.png"], "eval": ["eval", "x.pt"], "train": ["train"]}[command]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("fcnlib: interrupted; ") and words in err and "\n" not in err, err


def test_sigterm_is_an_interruption_and_the_handler_is_restored(capsys, monkeypatch, tmp_path):
    def terminated(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "cmd_eval", terminated)
    assert main(["eval", "x.pt"]) == 130
    assert "fcnlib: interrupted; no result was written" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before


def test_backbone_file_that_is_not_a_state_dict(capsys, tmp_path):
    bad = tmp_path / "vgg.json"
    bad.write_text(json.dumps({"not": "weights"}))
    line = one_line_error(capsys, ["train", *TINY, "--width", "1", "--weights-backbone", bad, "--out", tmp_path / "o"],
                          "cannot read backbone weights")
    assert "weights_only=False" not in line and "never code" in line
