"""Reliability, third round (issue 18): outputs never replace inputs, every file read is
validated, every number is bounded (machine-derived where it matters), faults end in one line.

Each case is one ``fcnlib: error:`` line and exit 2 (or works: YAML merge keys, a stale lock),
and what existed before the command is unchanged. ``BAD_NUMBERS``, ``BAD_CHECKPOINTS`` and
``BAD_CARDS`` are the tables that docs/reliability.md counts.
"""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fcnlib.context
import fcnlib.models.weights as weights_module
from fcnlib import fileio, limits
from fcnlib.checkpoint import atomic_save, load_checkpoint
from fcnlib.cli import main
from fcnlib.config import load_config
from fcnlib.models import ModelError, WeightsError, build_model, fcn8s, fcn32s
from fcnlib.outdir import LOCK_NAME
from test_reliability import one_line_error

TINY = ["--width", "0.0625", "--crop-size", "32", "--limit-train", "4", "--limit-val", "2", "--batch-size", "2",
        "--epochs", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def run32(tmp_path_factory):
    """A finished tiny FCN-32s run on the shapes (width 0.0625)."""
    out = tmp_path_factory.mktemp("r3") / "run32"
    assert main(["train", *TINY, "--model", "fcn32s", "--out", str(out)]) == 0
    return out


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _folder_data(root: Path, n: int = 4) -> Path:
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(rng.integers(0, 3, (40, 40), dtype=np.uint8), "L").save(root / "masks" / f"{i}.png")
    return root


# ------------------------------------------------------------------------------------------------
# 1. Outputs never replace inputs (after resolving links)
# ------------------------------------------------------------------------------------------------

def test_eval_out_is_never_the_checkpoint_it_reads(capsys, run32, tmp_path):
    best = run32 / "best.pt"
    before = best.read_bytes()
    one_line_error(capsys, ["eval", best, "--out", best, "--overwrite"], "is the file that the checkpoint reads")
    link = tmp_path / "result.json"
    link.symlink_to(best)
    one_line_error(capsys, ["eval", best, "--out", link, "--overwrite"], "is the file that the checkpoint reads")
    assert best.read_bytes() == before and link.is_symlink()


def test_eval_out_inside_the_data_set_is_refused(capsys, run32, tmp_path):
    root = _folder_data(tmp_path / "data")
    before = _tree(root)
    one_line_error(capsys, ["eval", run32 / "best.pt", "--data", "folder", "--data-root", root,
                            "--out", root / "masks" / "0.png", "--overwrite"], "lies inside --data-root")
    assert _tree(root) == before


def test_train_out_inside_the_data_set_is_refused(capsys, tmp_path):
    root = _folder_data(tmp_path / "data")
    before = _tree(root)
    one_line_error(capsys, ["train", *TINY, "--data", "folder", "--num-classes", "3", "--data-root", root,
                            "--out", root / "run"], "lies inside --data-root")
    assert _tree(root) == before and not (root / "run").exists()


def test_predict_output_that_would_replace_the_checkpoint(capsys, run32, tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    ckpt = tmp_path / "out" / "x_mask.png"  # a checkpoint that happens to have an output's name
    ckpt.parent.mkdir()
    shutil.copy(run32 / "best.pt", ckpt)
    before = ckpt.read_bytes()
    one_line_error(capsys, ["predict", ckpt, image, "--out", tmp_path / "out", "--overwrite"],
                   "is the file that the checkpoint reads")
    assert ckpt.read_bytes() == before


# ------------------------------------------------------------------------------------------------
# 2. Wrong successes
# ------------------------------------------------------------------------------------------------

def test_staged_resume_into_a_new_folder_is_refused(capsys, tmp_path):
    out = tmp_path / "new"
    one_line_error(capsys, ["train", *TINY, "--stages", "fcn32s fcn16s", "--resume", "--out", out],
                   "nothing to resume")
    assert not out.exists()


@pytest.mark.parametrize("kw, error, words", [
    (dict(head="paper"), WeightsError, "head='paper' (the weights have 'light')"),
    (dict(width=1.0), WeightsError, "width=1.0 (the weights have 0.125)"),
    (dict(upsample="deconv"), WeightsError, "upsample='deconv'"),
    (dict(batch_norm=False), WeightsError, "batch_norm=False"),
    (dict(num_classes=11), WeightsError, "have 6 classes, not 11"),
])
def test_builder_arguments_that_conflict_with_the_weights(kw, error, words):
    with pytest.raises(error, match=None) as info:
        fcn8s(weights="shapes-demo", **kw)
    assert words in str(info.value)
    model = fcn8s(weights="shapes-demo", head="light", width=0.125)  # agreeing arguments are fine
    assert model.head_type == "light" and model.num_classes == 6


@pytest.mark.parametrize("kw, words", [
    (dict(num_classes=0), "num_classes must be a whole number in 2..255, got 0"),
    (dict(num_classes=1), "got 1"),
    (dict(num_classes=256), "got 256"),
    (dict(num_classes=2.5), "got 2.5"),
    (dict(num_classes=True), "got True"),
    (dict(num_classes=3, width=0), "width must be a number in"),
    (dict(num_classes=3, width=1e308), "width must be a number in"),
    (dict(num_classes=3, width=float("nan")), "width must be a number in"),
    (dict(num_classes=3, head="big"), "head must be 'paper' or 'light'"),
    (dict(num_classes=3, batch_norm="yes"), "batch_norm must be True or False"),
])
def test_builders_refuse_arguments_that_describe_no_model(kw, words):
    with pytest.raises(ModelError) as info:
        fcn32s(**kw)
    assert words in str(info.value)


def test_build_model_unknown_name_and_defaults():
    with pytest.raises(ModelError, match="unknown model 'fcn4s'"):
        build_model("fcn4s", 3)
    model = fcn32s(3)  # left out: the paper's architecture, as before
    assert (model.head_type, model.upsample_mode, model.width) == ("paper", "bilinear", 1.0)


# ------------------------------------------------------------------------------------------------
# 3. Every number bounded; machine-derived for threads, workers and memory
# ------------------------------------------------------------------------------------------------

BAD_NUMBERS = [  # (command flags, words)
    (["train", "--batch-size", str(10**32)], "batch_size must be in 1..4096"),
    (["train", "--epochs", str(10**32)], "epochs must be in 1..100000"),
    (["train", "--width", "1e308"], "width must be in"),
    (["train", "--crop-size", str(10**32)], "crop_size x crop_width must be at most"),
    (["train", "--crop-size", "20001", "--crop-width", "1"], "crop_size must be in 1..20000"),
    (["train", "--scale-range", "0.5 1e308"], "scale_range must be in"),
    (["train", "--limit-train", str(10**32)], "limit_train must be in"),
    (["train", "--lr", "1e308"], "lr must be in"),
    (["train", "--num-classes", str(10**6), "--data", "folder"], "num_classes must be in 2..255"),
    (["train", "--val-every", str(10**20)], "val_every must be in"),
    (["train", "--log-every", str(10**20)], "log_every must be in"),
    (["train", "--max-minutes", "1e308"], "max_minutes must be in"),
    (["train", "--eval-scale", "1e308"], "eval_scale must be in"),
    (["train", "--step-size", str(10**32)], "step_size must be in"),
    (["train", "--class-weights", "1 1e308"], "class_weights must be in"),
    (["train", "--threads", str(10**6)], "threads must be in 1..4096"),
    (["train", "--workers", str(10**6)], "workers must be in 0..4096"),
    (["eval", "--weights", "shapes-demo", "--batch-size", str(10**32)], "--batch-size must be in 1..4096"),
    (["eval", "--weights", "shapes-demo", "--workers", str(10**9)], "--workers must be in 0..4096"),
    (["eval", "--weights", "shapes-demo", "--limit", str(10**32)], "--limit must be in"),
    (["eval", "--weights", "shapes-demo", "--scale", "1e308"], "--scale must be in"),
    (["predict", "--weights", "shapes-demo", "x.png", "--train-size", str(10**32)], "--train-size must be in"),
    (["predict", "--weights", "shapes-demo", "x.png", "--tile", str(10**32)], "--tile must be in"),
    (["predict", "--weights", "shapes-demo", "x.png", "--scale", "1e308"], "--scale must be in"),
    (["predict", "--weights", "shapes-demo", "x.png", "--max-image-pixels", str(10**32)],
     "--max-image-pixels must be in"),
]


@pytest.mark.parametrize("argv, words", BAD_NUMBERS)
def test_numbers_past_their_bound_are_one_line(capsys, tmp_path, argv, words):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "run")]
    one_line_error(capsys, argv, words)
    assert not (tmp_path / "run").exists()


def test_threads_and_workers_past_the_machine_are_refused_not_capped(capsys, tmp_path):
    cores = limits.usable_cores()
    one_line_error(capsys, ["train", *TINY, "--threads", cores + 1, "--out", tmp_path / "a"],
                   f"threads {cores + 1} is more than the {cores} usable CPU core(s)")
    over = limits.max_workers() + 1
    one_line_error(capsys, ["train", *TINY, "--workers", over, "--out", tmp_path / "b"],
                   f"workers {over} is more than this machine takes")
    one_line_error(capsys, ["eval", "--weights", "shapes-demo", "--workers", over],
                   f"--workers {over} is more than this machine takes")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert limits.max_workers() <= limits.WORKERS_PER_CORE * cores


def test_a_batch_that_would_not_fit_in_memory_is_refused_with_the_estimate(capsys, tmp_path):
    need = limits.batch_bytes(4096, 8000 * 8000, 0.0625, 21, True)  # classes unknown before the data: 21
    assert need > limits.available_memory()  # the premise: more than this machine has
    line = one_line_error(capsys, ["train", *TINY, "--batch-size", "4096", "--crop-size", "8000",
                                   "--out", tmp_path / "run"], "a training batch would need about")
    assert f"{need / 2**30:.1f} GB" in line and "is free" in line
    assert not (tmp_path / "run").exists()
    one_line_error(capsys, ["eval", "--weights", "shapes-demo", "--batch-size", "4096", "--scale", "60"],
                   "an evaluation batch would need about")


def test_the_memory_estimate_is_above_what_a_step_takes():
    """The formula against measured peaks (fcn8s, light head, batch norm, 11 classes, float32)."""
    for width, training, measured in ((0.25, True, 1133), (1.0, True, 4173), (0.25, False, 236),
                                      (1.0, False, 813)):
        estimate = limits.batch_bytes(1, 1, width, 11, training)
        assert measured <= estimate <= 2 * measured


def test_a_memory_error_that_still_happens_is_one_line(capsys, monkeypatch):
    import fcnlib.evaluation

    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(fcnlib.evaluation, "evaluate", exhausted)
    one_line_error(capsys, ["eval", "--weights", "shapes-demo", "--limit", "1"], "out of memory")
    monkeypatch.setattr(fcnlib.evaluation, "evaluate", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    one_line_error(capsys, ["eval", "--weights", "shapes-demo", "--limit", "1"], "out of memory")


# ------------------------------------------------------------------------------------------------
# 4. Files read are validated: checkpoints, weight cards, recipes
# ------------------------------------------------------------------------------------------------

def _bias_of_head(ck):
    return max((k for k in ck["model"] if k.startswith("head.") and k.endswith(".bias")),
               key=lambda k: int(k.split(".")[1]))


BAD_CHECKPOINTS = [  # (change, words naming the field)
    (lambda ck: ck.update(model_name="fcn4s"), "model_name: 'fcn4s' is not a model"),
    (lambda ck: ck.update(model_name=["x"]), "model_name: ['x'] is not a model"),  # unhashable
    (lambda ck: ck.update(num_classes="6"), "num_classes: '6' is not a whole number"),
    (lambda ck: ck.update(num_classes=1), "num_classes: 1 is not a whole number in 2..255"),
    (lambda ck: ck.update(epoch=-1), "epoch: -1"),
    (lambda ck: ck.update(classes=["a", "b"]), "classes: 2 names for num_classes 6"),
    (lambda ck: ck.update(classes=[1, 2, 3, 4, 5, 6]), "classes: not a list of names"),
    (lambda ck: ck.update(model=[1, 2]), "model: not a state dict of named tensors"),
    (lambda ck: ck.update(config=[1]), "config: not a mapping"),
    (lambda ck: ck.update(train_seconds=-5), "train_seconds: -5"),
    (lambda ck: ck.update(best_miou="high"), "best_miou: 'high' is not a number"),
    (lambda ck: ck.update(num_classes=7, classes=list("abcdefg")), "outputs, not num_classes 7"),
    (lambda ck: ck.update(model_name="fcn8s"), "lacks score_pool4, which model_name fcn8s"),
]


@pytest.mark.parametrize("change, words", BAD_CHECKPOINTS)
def test_checkpoint_fields_are_validated_at_load(capsys, run32, tmp_path, change, words):
    ck = load_checkpoint(run32 / "best.pt")
    ck.setdefault("classes", [str(i) for i in range(ck["num_classes"])])
    change(ck)
    bad = tmp_path / "bad.pt"
    atomic_save(ck, bad)
    line = one_line_error(capsys, ["eval", bad, "--limit", "1"], words)
    assert str(bad) in line


def test_a_checkpoint_with_broken_training_state_cannot_resume(capsys, run32, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run32, run)
    ck = load_checkpoint(run / "last.pt")
    ck["rng"] = {"torch": "garbage"}
    atomic_save(ck, run / "last.pt")
    before = _tree(run)
    one_line_error(capsys, ["train", *TINY, "--model", "fcn32s", "--resume", "--out", run], "rng:")
    assert _tree(run) == before


def _card_dir(tmp_path, monkeypatch, change):
    folder = tmp_path / "pretrained"
    shutil.copytree(weights_module.PRETRAINED_DIR, folder)
    card = folder / "shapes-demo.json"
    meta = json.loads(card.read_text())
    change(meta)
    card.write_text(json.dumps(meta))
    monkeypatch.setattr(weights_module, "PRETRAINED_DIR", folder)
    return card


BAD_CARDS = [  # (change, words naming the field)
    (lambda m: m.update(palette=[[0, 0, 0], [255, 255, 255]]), "palette: not 6 colours"),
    (lambda m: m["palette"].__setitem__(0, [0, 0, 300]), "palette: not 6 colours of three values in 0..255"),
    (lambda m: m.update(classes=["a", "b", "c"]), "classes: not 6 names"),
    (lambda m: m["architecture"].update(model="fcn4s"), "architecture.model"),
    (lambda m: m["architecture"].update(width="wide"), "architecture.width"),
    (lambda m: m["architecture"].update(num_classes=True), "architecture.num_classes"),
    (lambda m: m["architecture"].pop("head"), "architecture: lacks head"),
    (lambda m: m.update(sha256="zz"), "sha256: not 64 hex digits"),
    (lambda m: m.update(file="../../x.pt"), "file: not a .pt file name"),
    (lambda m: m.pop("evaluation"), "evaluation: needs scale"),
    (lambda m: m.update(predict={"tile": 4}), "predict: unknown keys"),
    (lambda m: m["architecture"].update(width=0.25), "does not fit the architecture on its card"),
]


@pytest.mark.parametrize("change, words", BAD_CARDS)
def test_weight_cards_are_validated_at_load(capsys, monkeypatch, tmp_path, change, words):
    card = _card_dir(tmp_path, monkeypatch, change)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    line = one_line_error(capsys, ["predict", "--weights", "shapes-demo", image, "--out", tmp_path / "p"], words)
    assert "shapes-demo" in line and not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())
    assert str(card) in line or "weights file" in line


def test_weights_names_are_only_the_shipped_ones(capsys):
    one_line_error(capsys, ["eval", "--weights", "../pretrained/shapes-demo"], "unknown weights")


@pytest.mark.parametrize("text, words", [
    ("1: 2\n", "key 1 (line 1) is not a setting name"),
    ("null: 2\n", "key None"),
    ("true: 2\n", "key True"),
    ("lr: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 20 levels deep"),
    ('data_root: "a\\0b"\n', "data_root contains a NUL character"),
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)),
     "through its aliases"),
    ("# " + "x" * (1 << 20) + "\n", "larger than 1024 KB"),
])
def test_hostile_recipes_are_one_line(capsys, tmp_path, text, words):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    start = time.perf_counter()
    one_line_error(capsys, ["train", "--config", recipe, "--out", tmp_path / "run"], words)
    assert time.perf_counter() - start < 20 and not (tmp_path / "run").exists()


def test_yaml_merge_keys_work(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(".base: &base\n  lr: 0.01\n  epochs: 2\n  width: 0.25\n<<: *base\nepochs: 3\n")
    cfg = load_config(recipe)
    assert (cfg.lr, cfg.epochs, cfg.width) == (0.01, 3, 0.25)
    recipe.write_text("<<: [{lr: 0.5}, {crop_size: 40}]\nlr: 0.25\n")
    cfg = load_config(recipe)
    assert (cfg.lr, cfg.crop_size) == (0.25, 40)
    recipe.write_text("<<: {lr: 0.5}\nlr: 0.25\nlr: 0.3\n")  # the mapping's own key twice: refused
    with pytest.raises(Exception, match="given twice"):
        load_config(recipe)


# ------------------------------------------------------------------------------------------------
# 5. Faults: full disk, locks, rendezvous, unwritable outputs
# ------------------------------------------------------------------------------------------------

def _full_disk(monkeypatch):
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # the temporary file is real; its writes go to /dev/full
        fd, path = real(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(monkeypatch, run32, tmp_path):
    last = tmp_path / "last.pt"
    shutil.copy(run32 / "last.pt", last)
    before = last.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        atomic_save(load_checkpoint(last), last)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(last)
    assert "no space left on device" in info.value.strerror and "previous file is intact" in info.value.strerror
    assert last.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_disk_full_during_training_is_one_line(capsys, monkeypatch, tmp_path):
    _full_disk(monkeypatch)
    line = one_line_error(capsys, ["train", *TINY, "--out", tmp_path / "run"], "no space left on device")
    assert line.endswith(("best.pt", "last.pt")) and "(nothing was written)" in line
    assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "best.pt").exists()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_disk_full_at_start_leaves_no_lock_and_no_folder(capsys, monkeypatch, tmp_path):
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        if "w" in (args[0] if args else kwargs.get("mode", "r")):
            f.write = lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
        return f

    monkeypatch.setattr(os, "fdopen", fdopen)
    one_line_error(capsys, ["train", *TINY, "--out", tmp_path / "run"], "No space left on device")
    assert not (tmp_path / "run").exists()


def _lock(out: Path, record) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(record if isinstance(record, str) else json.dumps(record))


@pytest.mark.parametrize("record", [
    {"pid": 1, "host": socket.gethostname(), "start": "-1", "boot": "x"},  # pid 1 reused
    {"pid": 10**30, "host": socket.gethostname()},  # no process can have it
    f"{10**30} {socket.gethostname()}\n",
])
def test_a_lock_whose_pid_is_reused_or_impossible_is_taken_over(capsys, tmp_path, record):
    out = tmp_path / "run"
    _lock(out, record)
    assert main(["train", *TINY, "--out", str(out), "--overwrite"]) == 0
    assert (out / "last.pt").is_file() and not (out / LOCK_NAME).exists()


def test_a_live_lock_names_the_file_and_when_to_delete_it(capsys, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from fcnlib.outdir import _lock_record

        out = tmp_path / "run"
        _lock(out, {**_lock_record(sleeper.pid), "command": "fcnlib train", "time": "now"})
        line = one_line_error(capsys, ["train", *TINY, "--out", out, "--overwrite"],
                              f"another fcnlib run (pid {sleeper.pid}, started now: fcnlib train)")
        assert f"{out / LOCK_NAME} is safe to delete only once it has ended" in line
        _lock(out, f"{sleeper.pid} {socket.gethostname()}\n")  # the older form: no start time
        line = one_line_error(capsys, ["train", *TINY, "--out", out, "--overwrite"], f"ps -p {sleeper.pid}")
        assert f"delete {out / LOCK_NAME}" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_process_group_that_nobody_joins_fails_fast(capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setattr(fcnlib.context, "RENDEZVOUS_TIMEOUT_S", 2)
    start = time.perf_counter()
    one_line_error(capsys, ["eval", "--weights", "shapes-demo", "--device", "cpu", "--limit", "1"],
                   "the other processes did not join at 127.0.0.1")
    assert time.perf_counter() - start < 30
    assert fcnlib.context.RENDEZVOUS_TIMEOUT_S <= 60


def test_unwritable_output_folders_are_refused_before_the_work(capsys, tmp_path, monkeypatch):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    import fcnlib.trained

    monkeypatch.setattr(fcnlib.trained, "load_trained", lambda *a: pytest.fail("the model was loaded"))
    one_line_error(capsys, ["predict", "--weights", "shapes-demo", image, "--out", blocker / "sub"],
                   "is a file, not a folder")
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        one_line_error(capsys, ["predict", "--weights", "shapes-demo", image, "--out", ro],
                       "permission denied")


# ------------------------------------------------------------------------------------------------
# 6. Paths
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", [".", "/", "sub/.."])
def test_predict_on_a_folder_is_one_line(capsys, run32, tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    one_line_error(capsys, ["predict", run32 / "best.pt", where, "--out", tmp_path / "p"],
                   "is a folder, not an image file")
    assert not (tmp_path / "p").exists()


def test_thread_variables_past_the_cores_are_refused(capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(10**8))
    one_line_error(capsys, ["eval", "--weights", "shapes-demo", "--limit", "1"],
                   "OMP_NUM_THREADS=100000000 is more than the")


def test_a_prediction_that_would_not_fit_in_memory_is_refused_before_any_output(capsys, tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((1000, 1000, 3), np.uint8)).save(image)
    one_line_error(capsys, ["predict", "--weights", "shapes-demo", image, "--mode", "whole", "--scale", "64",
                            "--out", tmp_path / "p"], "predicting a 1000x1000 image (whole) would need about")
    assert not (tmp_path / "p").exists() or not list((tmp_path / "p").iterdir())
