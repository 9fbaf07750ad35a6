"""fcnlib.engine on the CPU: learning, exact resume, atomic checkpoints, divergence, DDP with gloo."""

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcnlib.checkpoint import CheckpointError, atomic_save, file_sha256, load_checkpoint
from fcnlib.config import TrainConfig
from fcnlib.data import build_dataset
from fcnlib.context import Context
from fcnlib.engine import TrainingDiverged, train
from fcnlib.errors import FcnlibError
from fcnlib.evaluation import evaluate
from fcnlib.loaders import pad_collate, val_loader
from fcnlib.trained import model_from_checkpoint

REPO = Path(__file__).resolve().parents[1]


def tiny(tmp_path, **kw) -> TrainConfig:
    values = dict(width=0.0625, crop_size=64, limit_train=48, limit_val=12, epochs=2, batch_size=8,
                  out=str(tmp_path / "run"), log_every=2)
    values.update(kw)
    return TrainConfig.from_dict(values)


def test_training_learns_well_above_chance(tmp_path):
    # float32 (amp off): the re-evaluation below is float32, so validation must be too (amp auto
    # validates under bf16 autocast on CPUs with native bfloat16)
    cfg = tiny(tmp_path, width=0.125, crop_size=96, limit_train=None, limit_val=32, epochs=4, lr=0.02,
               amp="off")
    val = build_dataset("shapes", split="val", train=False)
    sub = torch.utils.data.Subset(val, range(32))
    loader = val_loader(sub, Context(torch.device("cpu")))
    torch.manual_seed(cfg.seed)
    from fcnlib.trained import make_model

    untrained = evaluate(make_model(cfg, 6), loader, 6, progress=False)
    result = train(cfg, progress=False)
    # A constant "background" prediction scores mIoU ~0.13 here (one of six classes, IoU ~0.8).
    assert result.best_miou > 0.30, result.history
    assert result.best_miou > untrained["mIoU"] + 0.15
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert set(rows[0]) == {"epoch", "lr", "train_loss", "val_loss", "pixAcc", "mIoU", "seconds"}
    assert float(rows[-1]["mIoU"]) == pytest.approx(result.history[-1]["mIoU"])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best_miou"] == pytest.approx(result.best_miou)
    # The saved best model reproduces its validation mIoU.
    model, _ = model_from_checkpoint(tmp_path / "run" / "best.pt", 6)
    again = evaluate(model, loader, 6, progress=False)
    assert again["mIoU"] == pytest.approx(result.best_miou, abs=1e-9)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    full = tiny(tmp_path, out=str(tmp_path / "full"), epochs=3)
    train(full, progress=False)
    steps_per_epoch = 48 // 8
    cut = tiny(tmp_path, out=str(tmp_path / "cut"), epochs=3)
    assert train(cut, progress=False, max_steps=steps_per_epoch + 2).interrupted_at_step == steps_per_epoch + 2
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1  # the partial epoch saved nothing
    train(cut, resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert [r["mIoU"] for r in a["history"]] == [r["mIoU"] for r in b["history"]]
    assert a["optimizer"]["state"][0]["momentum_buffer"].equal(b["optimizer"]["state"][0]["momentum_buffer"])


def test_existing_output_is_refused_and_resume_needs_a_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="continue its run with `resume`, replace it with `overwrite`"):
        train(tiny(tmp_path), progress=False)
    with pytest.raises(FileExistsError, match="nothing to resume"):
        train(tiny(tmp_path), resume=True, progress=False)
    assert (tmp_path / "run" / "notes.txt").read_text() == "keep me"


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = tiny(tmp_path, epochs=2)
    assert train(cfg, progress=False, max_steps=48 // 8).interrupted_at_step == 6  # epoch 1 saved
    last = tmp_path / "run" / "last.pt"
    before = file_sha256(last)
    from fcnlib import engine

    real = engine.SegmentationLoss.forward
    monkeypatch.setattr(engine.SegmentationLoss, "forward", lambda self, out, t: real(self, out, t) * float("nan"))
    cfg2 = tiny(tmp_path, epochs=2)
    with pytest.raises(TrainingDiverged, match=r"loss became NaN/inf in epoch 2.*last good checkpoint: .*last.pt \(epoch 1\)"):
        train(cfg2, resume=True, progress=False)
    assert file_sha256(last) == before
    assert load_checkpoint(last)["epoch"] == 1


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"format": "x", "value": torch.arange(3)}, path)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"value": torch.arange(5)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_sigkill_during_repeated_saves_never_leaves_a_truncated_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    script = (
        "import sys, torch\n"
        "from fcnlib.checkpoint import atomic_save\n"
        "i = 0\n"
        "while True:\n"
        "    atomic_save({'i': torch.tensor(i), 'w': torch.randn(512, 1024)}, sys.argv[1]); i += 1\n"
    )
    for delay in (1.5, 2.0, 2.5):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay - 1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        obj = torch.load(path, weights_only=True)  # must load: old or new, never partial
        assert obj["w"].shape == (512, 1024)


@pytest.mark.parametrize(
    "content,match",
    [(b"", "empty"), (b"\x80\x04garbage", "cannot read checkpoint"), (None, "not found")],
)
def test_bad_checkpoints_give_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_truncated_and_wrong_class_checkpoints(tmp_path):
    cfg = tiny(tmp_path, epochs=1)
    train(cfg, progress=False)
    good = tmp_path / "run" / "best.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint"):
        model_from_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="has 6 classes but the data has 21"):
        model_from_checkpoint(good, 21)


def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "fcnlib-checkpoint-v1", "obj": Path("x")}, path)  # a non-tensor class: needs pickle code
    with pytest.raises(CheckpointError, match="refused to load .*pathlib.*could run as code"):
        load_checkpoint(path)


def test_pad_collate_pads_with_zero_and_ignore():
    a = (torch.ones(3, 2, 3), torch.zeros(2, 3, dtype=torch.long))
    b = (torch.ones(3, 4, 1), torch.ones(4, 1, dtype=torch.long))
    images, masks = pad_collate([a, b])
    assert images.shape == (2, 3, 4, 3) and masks.shape == (2, 4, 3)
    assert images[0, :, 2:].abs().sum() == 0 and (masks[0, 2:] == 255).all() and (masks[1, :, 1:] == 255).all()
    assert masks[1, :, 0].tolist() == [1, 1, 1, 1]


def test_staged_training_grows_each_stage_from_the_previous(tmp_path):
    from fcnlib.engine import train_stages

    cfg = tiny(tmp_path, epochs=1, stages=["fcn32s", "fcn16s"], head="paper")
    results = train_stages(cfg, progress=False)
    assert set(results) == {"fcn32s", "fcn16s"}
    p = load_checkpoint(tmp_path / "run" / "fcn32s" / "best.pt")
    c = load_checkpoint(tmp_path / "run" / "fcn16s" / "last.pt")
    assert c["model_name"] == "fcn16s" and c["config"]["init_from"].endswith("fcn32s/best.pt")
    assert c["history"][0]["mIoU"] >= 0  # trained one epoch after growing
    assert set(p["model"]) < set(c["model"]) and "score_pool4.weight" in c["model"]


def test_ddp_two_processes_give_the_same_metrics_as_one(tmp_path):
    """torchrun with 2 CPU processes (gloo): the all-reduced validation metrics equal a 1-process evaluation."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "fcnlib",
           "train", "--width", "0.0625", "--crop-size", "64", "--limit-train", "32", "--limit-val", "11",
           "--epochs", "1", "--batch-size", "4", "--amp", "off", "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out / "last.pt")
    model, _ = model_from_checkpoint(out / "last.pt")
    val = torch.utils.data.Subset(build_dataset("shapes", split="val", train=False), range(11))
    single = evaluate(model, val_loader(val, Context(torch.device("cpu"))), 6, progress=False)
    ddp_row = ckpt["history"][0]
    assert ddp_row["mIoU"] == pytest.approx(single["mIoU"], abs=1e-12)
    assert ddp_row["pixAcc"] == pytest.approx(single["pixAcc"], abs=1e-12)
    assert ddp_row["val_loss"] == pytest.approx(single["loss"], rel=1e-6)


def test_trainaug_recipe_validates_on_voc_val(monkeypatch):
    """configs/voc-trainaug.yaml: trainaug has no val split, so validation uses VOC 2012 val."""
    from fcnlib import loaders
    from fcnlib.config import load_config

    calls = []
    monkeypatch.setattr(loaders, "build_dataset", lambda name, root, split, train, **kw: calls.append((name, split, train)))
    loaders.build_datasets(load_config(REPO / "configs" / "voc-trainaug.yaml"))
    assert calls == [("trainaug", "train", True), ("voc", "val", False)]


# ------------------------------------------------------------------------------------------------
# Typed results, a recipe that is never written to, no re-exports
# ------------------------------------------------------------------------------------------------


def test_train_returns_typed_results_and_never_writes_into_the_recipe(tmp_path):
    from fcnlib.engine import TrainResult
    from fcnlib.loaders import build_datasets, class_weights

    cfg = tiny(tmp_path, epochs=1, limit_train=16, limit_val=4, class_weighting="median-frequency")
    before = copy.deepcopy(cfg.to_dict())
    result = train(cfg, progress=False)
    assert cfg.to_dict() == before and cfg.class_weights is None
    assert isinstance(result, TrainResult) and result.out == cfg.out and len(result.history) == 1
    assert result.best_miou == result.history[0]["mIoU"] == result.last["mIoU"]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    expected = class_weights(cfg, build_datasets(cfg)[0], 6)  # median-frequency, from the labels
    assert len(expected) == 6 and expected != [1.0] * 6
    assert ckpt["class_weights"] == expected and ckpt["config"]["class_weights"] is None
    again = train(tiny(tmp_path, epochs=1, limit_train=16, limit_val=4,
                       class_weighting="median-frequency"), resume=True, progress=False)
    assert again.history == result.history  # the recorded recipe equals the recipe: it resumes


def test_annotations_resolve_to_the_result_types():
    import typing

    from fcnlib import engine, evaluation

    assert typing.get_type_hints(engine.train)["return"] is engine.TrainResult
    assert typing.get_type_hints(evaluation.evaluate)["return"] is evaluation.EvalResult


def test_the_engine_re_exports_nothing_and_old_names_warn():
    import importlib

    from fcnlib import engine

    for name in engine.__all__:
        obj = getattr(engine, name)
        assert getattr(obj, "__module__", "fcnlib.engine") == "fcnlib.engine", name
    for name, module in engine._MOVED.items():
        assert name not in engine.__all__
        with pytest.warns(DeprecationWarning, match=f"fcnlib.engine.{name} is deprecated"):
            old = getattr(engine, name)
        assert old is getattr(importlib.import_module(f"fcnlib.{module}"), name)
    with pytest.raises(AttributeError):
        engine.no_such_name


def test_results_files_of_both_schemas_read(tmp_path):
    from fcnlib.evaluation import RESULTS_SCHEMA, EvalResult, read_results, results_record

    matrix = torch.tensor([[3, 1], [0, 0]])
    res = EvalResult(0.75, 0.5, 0.375, 0.5, torch.tensor([0.75, 0.0]), torch.tensor([0.75, float("nan")]),
                     matrix, 0.25, 2)
    record = results_record(res, ["a", "b"], evaluation={"scale": 1.0, "flip": False},
                            data={"name": "shapes", "root": None, "split": "val"}, model={"checkpoint": "x"})
    assert record["schema"] == RESULTS_SCHEMA == 2 and record["data"]["images"] == 2
    assert record["metrics"] == {"pixAcc": 0.75, "meanAcc": 0.5, "mIoU": 0.375, "fwIoU": 0.5, "loss": 0.25}
    assert record["per_class_iou"] == {"a": 0.75, "b": 0.0} and record["confusion"] == [[3, 1], [0, 0]]
    assert res["mIoU"] == res.mIoU and "mIoU_per_image" not in res
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps(record))
    old.write_text(json.dumps({k: v for k, v in record.items() if k != "schema"}))
    assert read_results(new) == record and read_results(old)["schema"] == 1
    (tmp_path / "future.json").write_text(json.dumps({**record, "schema": 99}))
    with pytest.raises(FcnlibError, match="results schema 99"):
        read_results(tmp_path / "future.json")
