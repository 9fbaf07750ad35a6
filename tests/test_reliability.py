"""Bad inputs and faults of `fcnlib train` / `fcnlib eval`: each is a clear one-line error (exit 2,
nothing half-written) or is handled, and nothing is lost or reported as success when it is not.

``BAD_SETTINGS`` and ``BAD_EVAL`` are the tables that docs/reliability.md counts.
"""

import math
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcnlib.checkpoint import FORMAT, atomic_save, file_sha256, load_checkpoint
from fcnlib.cli import main
from fcnlib.config import ConfigError, TrainConfig, load_config
from fcnlib.engine import TrainingDiverged, train
from fcnlib.outdir import LOCK_NAME, OutputFolderError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--width", "0.0625", "--crop-size", "64", "--limit-train", "16", "--limit-val", "4", "--batch-size", "8"]


def tiny(tmp_path, **kw) -> TrainConfig:
    values = dict(width=0.0625, crop_size=64, limit_train=16, limit_val=4, epochs=1, batch_size=8,
                  out=str(tmp_path / "run"), log_every=1)
    values.update(kw)
    return TrainConfig.from_dict(values)


def one_line_error(capsys, argv, pattern):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("fcnlib: error: "), err
    assert pattern in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------------
# Settings refused where they enter (recipe keys and their command-line flags)
# ------------------------------------------------------------------------------------------------

BAD_SETTINGS = [  # (flag, value, words of the message)
    ("--lr", "inf", "lr must be a finite number"),
    ("--lr", "nan", "lr must be a finite number"),
    ("--lr", "0", "lr must be > 0"),
    ("--momentum", "-1", "momentum must be in [0, 1)"),
    ("--momentum", "1", "momentum must be in [0, 1)"),
    ("--weight-decay", "-0.1", "weight_decay must be >= 0"),
    ("--step-size", "0", "step_size must be >= 1"),
    ("--gamma", "0", "gamma must be in (0, 1]"),
    ("--poly-power", "0", "poly_power must be > 0"),
    ("--log-every", "0", "log_every must be >= 1"),
    ("--workers", "-1", "workers must be >= 0"),
    ("--epochs", "0", "epochs and batch sizes must be >= 1"),
    ("--batch-size", "-2", "epochs and batch sizes must be >= 1"),
    ("--width", "0", "width must be > 0"),
    ("--crop-size", "0", "crop_size and crop_width must be >= 1"),
    ("--scale-range", "2 1", "scale_range must be two numbers"),
    ("--scale-range", "0.5", "scale_range must be two numbers"),
    ("--limit-train", "0", "limit_train and limit_val must be >= 1"),
    ("--num-classes", "1", "num_classes must be >= 2"),
    ("--threads", "0", "threads must be >= 1"),
    ("--max-minutes", "-1", "max_minutes must be > 0"),
    ("--val-every", "0", "val_every must be >= 1"),
    ("--eval-scale", "0", "eval_scale must be > 0"),
    ("--warmup-epochs", "-1", "warmup_epochs must be >= 0"),
    ("--class-weights", "1 -1", "class_weights must be positive"),
    ("--optimizer", "adam", "optimizer must be one of sgd, adamw"),
    ("--model", "fcn4s", "model must be one of fcn32s, fcn16s, fcn8s"),
    ("--head", "big", "head must be one of paper, light"),
    ("--amp", "fp8", "amp must be one of auto, bf16, fp16, off"),
    ("--batch-norm", "maybe", "batch_norm='maybe' is not a valid bool"),
    ("--epochs", "2.5", "epochs='2.5' is not a valid int"),
    ("--stages", "fcn32s fcn4s", "stages must be model names"),
    ("--device", "foo", "unknown device 'foo'"),
    ("--amp", "fp16", "amp fp16 needs a CUDA GPU"),
]


@pytest.mark.parametrize("flag, value, words", BAD_SETTINGS)
def test_bad_setting_is_one_line_and_writes_nothing(capsys, tmp_path, flag, value, words):
    if flag == "--amp" and value == "fp16" and torch.cuda.is_available():
        pytest.skip("fp16 is valid on a GPU")
    out = tmp_path / "run"
    one_line_error(capsys, ["train", *TINY, "--epochs", "1", "--device", "cpu", flag, value, "--out", out], words)
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_device_cuda_without_gpu_is_one_line(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    one_line_error(capsys, ["train", *TINY, "--device", "cuda", "--out", tmp_path / "r"], "no CUDA GPU is available")
    one_line_error(capsys, ["train", *TINY, "--device", "cuda:1", "--out", tmp_path / "r"], "no CUDA GPU")


def test_recipe_files_that_are_not_utf8_or_not_a_mapping(capsys, tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("lr: 0.01 # d\xe9j\xe0\n".encode("latin-1"))
    one_line_error(capsys, ["train", "--config", latin], "is not UTF-8 text")
    listing = tmp_path / "list.yaml"
    listing.write_text("- lr\n- 0.1\n")
    one_line_error(capsys, ["train", "--config", listing], "a recipe must be a mapping")
    nested = tmp_path / "nested.yaml"
    nested.write_text("lr: {a: 1}\n")
    one_line_error(capsys, ["train", "--config", nested], "is not a valid float")
    one_line_error(capsys, ["train", "--config", tmp_path / "none.yaml"], "recipe not found")


def test_shipped_recipes_load_by_name_and_by_path():
    by_name = load_config("camvid-cpu")
    by_path = load_config(REPO / "configs" / "camvid-cpu.yaml")
    assert by_name == by_path and by_name.data == "camvid"
    assert load_config("configs/shapes.yaml") == load_config("shapes")
    with pytest.raises(ConfigError, match="one of: camvid, camvid-cpu"):
        load_config("no-such-recipe")


def test_every_train_option_explains_itself(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out.split("recipe settings", 1)[1]
    for f in TrainConfig.__dataclass_fields__:
        flag = "--" + f.replace("_", "-")
        block = text.split(flag + " ", 1)[1].split("\n  --", 1)[0]
        assert "default:" in block and len(block.split("default:")[0].split()) >= 3, (flag, block)
    assert "--head paper|light" in text and "--batch-norm true|false" in text


# ------------------------------------------------------------------------------------------------
# Non-finite training: never saved, never called good
# ------------------------------------------------------------------------------------------------


def test_diverging_lr_saves_no_bad_checkpoint(tmp_path):
    cfg = tiny(tmp_path, lr=1e6, epochs=2)
    with pytest.raises(TrainingDiverged, match="loss became NaN/inf in epoch 1.*last good checkpoint: none yet"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "best.pt").exists()


def test_non_finite_weights_with_finite_loss_are_not_saved(tmp_path, monkeypatch):
    assert train(tiny(tmp_path, epochs=2), progress=False, max_steps=2).interrupted_at_step == 2
    last = tmp_path / "run" / "last.pt"
    before = file_sha256(last)
    from fcnlib import engine

    monkeypatch.setattr(engine, "finite_weights", lambda model: False)
    with pytest.raises(TrainingDiverged, match=r"the weights became NaN/inf in epoch 2.*last.pt \(epoch 1\)"):
        train(tiny(tmp_path, epochs=2), resume=True, progress=False)
    assert file_sha256(last) == before


# ------------------------------------------------------------------------------------------------
# One run per output folder
# ------------------------------------------------------------------------------------------------


def test_second_run_into_a_busy_folder_is_refused_at_start(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "fcnlib", "train", *TINY, "--limit-train", "64", "--epochs", "30", "--out", str(out),
           "--quiet", "--device", "cpu", "--threads", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / LOCK_NAME).exists() and time.time() < deadline:
            time.sleep(0.1)
        assert (out / LOCK_NAME).exists()
        second = subprocess.run(cmd[:-4] + ["--overwrite", "--quiet"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"fcnlib: error: another fcnlib run (pid {first.pid}, started ")
        assert lines[0].endswith(f"is writing into {out}; wait for it to finish or choose another --out "
                                 f"({out / LOCK_NAME} is safe to delete only once it has ended)")
        assert "fcnlib train" in lines[0]  # the holder's command
    finally:
        first.kill()
        first.wait()


def test_lock_of_a_dead_run_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    result = train(tiny(tmp_path), progress=False)
    assert result.best_miou >= 0 and not (out / LOCK_NAME).exists()


def test_lock_of_a_live_process_refuses_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(OutputFolderError, match=f"pid {sleeper.pid}"):
            train(tiny(tmp_path), progress=False)
        assert (out / LOCK_NAME).read_text().split()[0] == str(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_leftover_temporaries_are_removed_and_files_get_normal_permissions(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    old = os.umask(0o022)
    try:
        train(tiny(tmp_path), progress=False, overwrite=True)
    finally:
        os.umask(old)
    assert not list(out.glob("*.tmp"))
    for name in ("last.pt", "best.pt", "history.csv", "curves.png"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_interrupted_first_epoch_says_what_to_do(tmp_path):
    cfg = tiny(tmp_path, epochs=2, limit_train=32, batch_size=8)
    assert train(cfg, progress=False, max_steps=2).interrupted_at_step == 2
    with pytest.raises(OutputFolderError, match=r"stopped before its first epoch was saved\); start again with `overwrite`"):
        train(cfg, resume=True, progress=False)
    (tmp_path / "run" / "notes.txt").write_text("x")
    with pytest.raises(OutputFolderError, match="continue its run with `resume`, replace it with `overwrite`"):
        train(cfg, progress=False)


# ------------------------------------------------------------------------------------------------
# Resume continues exactly what was recorded
# ------------------------------------------------------------------------------------------------


def test_resume_refuses_changed_settings_and_allows_execution_ones(tmp_path):
    train(tiny(tmp_path, epochs=1), progress=False)
    with pytest.raises(ConfigError, match=r"epochs 3 \(recorded 1\); lr 0\.5 \(recorded 0\.02\)"):
        train(tiny(tmp_path, epochs=3, lr=0.5), resume=True, progress=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    # same recipe, other execution settings: nothing to do beyond the recorded epoch, and no error
    result = train(tiny(tmp_path, epochs=1, log_every=5, workers=0), resume=True, progress=False)
    assert len(result.history) == 1


# ------------------------------------------------------------------------------------------------
# Time budget
# ------------------------------------------------------------------------------------------------


def test_max_minutes_stops_after_the_epoch_in_which_it_runs_out(tmp_path):
    cfg = tiny(tmp_path, epochs=50, max_minutes=1e-4, val_every=10)
    result = train(cfg, progress=False)
    assert result.stopped_by_budget is True
    assert len(result.history) == 1 and result.history[0]["mIoU"] is not None  # validated
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["config"]["max_minutes"] == 1e-4
    assert 0 < ckpt["train_seconds"] <= result.train_seconds
    # the poly schedule followed the budget: the budget was spent, so the last rate is the floor
    steps = 16 // 8
    assert result.history[0]["lr"] == pytest.approx(cfg.lr * (1 / (50 * steps)) ** cfg.poly_power, rel=1e-6)


def test_without_budget_every_epoch_runs_and_val_every_skips_validation(tmp_path):
    result = train(tiny(tmp_path, epochs=3, val_every=2), progress=False)
    assert result.stopped_by_budget is False
    assert [r["mIoU"] is not None for r in result.history] == [False, True, True]
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert rows[1].split(",")[3:6] == ["", "", ""]  # no validation in epoch 1: empty, not NaN


# ------------------------------------------------------------------------------------------------
# Checkpoints that carry the marker but not the content, or carry code
# ------------------------------------------------------------------------------------------------


def test_checkpoint_with_marker_but_missing_keys(capsys, tmp_path):
    path = tmp_path / "partial.pt"
    atomic_save({"format": FORMAT, "model": {}}, path)
    one_line_error(capsys, ["eval", path], "incomplete fcnlib checkpoint (missing model_name, config, num_classes, epoch)")


def test_unsafe_pickle_refusal_explains_the_danger(capsys, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "obj": Path("x")}, path)
    line = one_line_error(capsys, ["eval", path], "refused to load")
    assert "could run as code" in line and "weights_only=True" in line


def test_checkpoint_saved_before_the_reshape_still_loads():
    """tests/data/pre-reshape-shapes.pt was written by `fcnlib train` at commit 01197cd."""
    from fcnlib.trained import model_from_checkpoint

    path = REPO / "tests" / "data" / "pre-reshape-shapes.pt"
    model, ckpt = model_from_checkpoint(path)
    assert ckpt["format"] == FORMAT and ckpt["model_name"] == "fcn8s"
    x = torch.randn(1, 3, 37, 53)
    assert model.eval()(x).shape == (1, ckpt["num_classes"], 37, 53)
    assert set(model.state_dict()) == set(ckpt["model"])


# ------------------------------------------------------------------------------------------------
# fcnlib eval
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    return out / "best.pt"


BAD_EVAL = [  # (extra arguments, words of the message)
    (["--limit", "0"], "--limit must be >= 1"),
    (["--limit", "-1"], "--limit must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--workers", "-1"], "--workers must be >= 0"),
    (["--scale", "0"], "--scale must be positive finite numbers"),
    (["--scale", "0.5", "inf"], "--scale must be positive finite numbers"),
    (["--scale", "nan"], "--scale must be positive finite numbers"),
    (["--device", "foo"], "unknown device 'foo'"),
    (["--data", "camvid"], "--data-root"),
    (["--weights", "nope"], "unknown weights 'nope'"),
]


@pytest.mark.parametrize("extra, words", BAD_EVAL)
def test_bad_eval_options(capsys, tmp_path, checkpoint, extra, words):
    out = tmp_path / "res.json"
    argv = ["eval", *([] if "--weights" in extra else [checkpoint]), *extra, "--out", out]
    one_line_error(capsys, argv, words)
    assert not out.exists()


def test_eval_output_that_cannot_be_written_fails_before_the_work(capsys, tmp_path, checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(capsys, ["eval", checkpoint, "--out", blocker / "res.json"], "cannot create")
    folder = tmp_path / "folder"
    folder.mkdir()
    one_line_error(capsys, ["eval", checkpoint, "--out", folder], "is a folder")


def test_eval_never_writes_nan(capsys, tmp_path, checkpoint):
    out = tmp_path / "res.json"
    assert main(["eval", str(checkpoint), "--limit", "2", "--out", str(out), "--quiet"]) == 0
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    import json

    record = json.loads(text)
    assert record["data"]["images"] == 2 and math.isfinite(record["metrics"]["mIoU"])
    assert record["evaluation"] == {"scale": 1.0, "flip": False, "device": "cpu", "amp": "off"}


def _fake_camvid(root: Path, broken: str | None = None) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for i in range(4):
            name = f"{split}{i}.png"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / split / name)
            Image.fromarray(rng.integers(0, 12, (48, 64), dtype=np.uint8), "L").save(root / f"{split}annot" / name)
            lines.append(f"{split}/{name} {split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    if broken:
        (root / broken).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def test_broken_image_in_a_worker_is_the_datasets_one_line(capsys, tmp_path):
    root = _fake_camvid(tmp_path / "camvid", broken="train/train2.png")
    line = one_line_error(capsys, ["train", "--data", "camvid", "--data-root", root, "--workers", "2", "--width",
                                   "0.0625", "--crop-size", "32", "--batch-size", "2", "--epochs", "1",
                                   "--out", tmp_path / "run", "--quiet"], "train2.png")
    assert "Traceback" not in line and "DataLoader worker" not in line and len(line) < 300, line


def test_staged_training_can_lower_the_rate_per_stage(tmp_path):
    """stage_lr_scale: stage k trains at lr * scale**k (the paper lowers the rate between stages)."""
    from fcnlib.engine import train_stages

    cfg = tiny(tmp_path, stages=["fcn32s", "fcn16s", "fcn8s"], lr=0.02, stage_lr_scale=0.01)
    train_stages(cfg, progress=False)
    lrs = [load_checkpoint(tmp_path / "run" / name / "last.pt")["config"]["lr"] for name in cfg.stages]
    assert lrs == pytest.approx([0.02, 2e-4, 2e-6])
    parents = [load_checkpoint(tmp_path / "run" / name / "last.pt")["config"]["init_from"] for name in cfg.stages]
    assert parents[0] is None and parents[1].endswith("fcn32s/best.pt") and parents[2].endswith("fcn16s/best.pt")
    for name in cfg.stages:  # each stage's record says that it is part of the staged schedule
        record = load_checkpoint(tmp_path / "run" / name / "last.pt")["config"]
        assert record["stages"] == ["fcn32s", "fcn16s", "fcn8s"] and record["model"] == name
        assert record["stage_lr_scale"] == 0.01
