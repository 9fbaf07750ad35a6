"""The shipped weights, their card and the named recipes: checksums, figures, and a non-editable install."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcnlib.models import PRETRAINED_DIR, WeightsError, build_model, fcn8s, get_weights, list_weights

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"


def test_shipped_weights_match_their_cards():
    assert {"camvid-cpu", "shapes-demo"} <= set(list_weights())
    for name in list_weights():
        w = get_weights(name)
        assert hashlib.sha256(w.file.read_bytes()).hexdigest() == w.sha256, name
        assert w.file.stat().st_size <= 8 * 2**20, name
        state = w.get_state_dict()
        model = build_model(w.architecture["model"], weights=name)
        assert set(model.state_dict()) == set(state)
        n = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                        "num_batches_tracked")))
        assert n == w.meta["num_params"] == sum(p.numel() for p in model.parameters())
        assert len(w.classes) == len(w.palette) == w.architecture["num_classes"]


def test_camvid_card_records_what_an_issue_asks_for():
    card = get_weights("camvid-cpu").meta
    for key in ("architecture", "classes", "palette", "normalisation", "evaluation", "metrics", "training",
                "num_params", "sha256", "terms", "subset_check"):
        assert key in card, key
    assert card["evaluation"]["dirty"] is False and card["evaluation"]["data"]["split"] == "test"
    assert card["evaluation"]["data"]["images"] == 233
    assert card["metrics"]["mIoU"] >= 0.47
    assert min(card["metrics"]["per_class_iou"].values()) >= 0.08
    assert card["training"]["train_seconds"] <= 20 * 60
    assert "research" in card["terms"].lower()


def test_a_changed_weights_file_is_refused(tmp_path):
    w = get_weights("camvid-cpu")
    bad = tmp_path / "camvid-cpu.pt"
    data = bytearray(w.file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    from dataclasses import replace

    with pytest.raises(WeightsError, match="does not match the SHA-256"):
        replace(w, file=bad).get_state_dict()
    with pytest.raises(WeightsError, match="unknown weights 'nope'; shipped weights: camvid-cpu"):
        get_weights("nope")
    with pytest.raises(WeightsError, match="are for fcn8s, not fcn32s"):
        from fcnlib.models import fcn32s

        fcn32s(weights="camvid-cpu")
    with pytest.raises(WeightsError, match="have 11 classes, not 21"):
        fcn8s(21, weights="camvid-cpu")


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid is not at {CAMVID} (see its README to get it)")
def test_shipped_model_reproduces_its_subset_figure(tmp_path):
    card = get_weights("camvid-cpu").meta
    check = card["subset_check"]
    out = tmp_path / "first.json"
    from fcnlib.cli import main

    code = main(["eval", "--weights", "camvid-cpu", "--data", "camvid", "--data-root", str(CAMVID), "--split",
                 "test", "--limit", str(check["images"]), "--batch-size", "4", "--quiet", "--out", str(out)])
    assert code == 0
    got = json.loads(out.read_text())
    assert got["data"]["images"] == check["images"] == 20
    assert got["metrics"]["mIoU"] == pytest.approx(check["mIoU"], abs=0.002)
    assert got["evaluation"]["scale"] == card["evaluation"]["scale"]


def test_weights_and_recipes_load_from_a_non_editable_install(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(wheel_dir), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("fcnlib-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import fcnlib, sys\n"
        "from fcnlib.models import fcn8s, get_weights\n"
        "from fcnlib.config import load_config\n"
        "assert fcnlib.__file__.startswith(sys.argv[1]), fcnlib.__file__\n"
        "m = fcn8s(weights='camvid-cpu'); w = get_weights('camvid-cpu')\n"
        "assert load_config('camvid-cpu').data == 'camvid'\n"
        "print(w.meta['metrics']['mIoU'], sum(p.numel() for p in m.parameters()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    miou, params = proc.stdout.split()
    assert float(miou) == get_weights("camvid-cpu").meta["metrics"]["mIoU"]
    assert int(params) == get_weights("camvid-cpu").meta["num_params"]


def test_predicted_logits_of_the_shipped_model_are_finite():
    model = fcn8s(weights="camvid-cpu")
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 45, 61))
    assert out.shape == (1, 11, 45, 61) and torch.isfinite(out).all()
    assert PRETRAINED_DIR.is_dir()


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid is not at {CAMVID} (see its README to get it)")
def test_predict_with_the_cards_defaults_matches_evaluation(tmp_path):
    """`fcnlib predict --weights camvid-cpu` on test frames gives what `fcnlib eval` measures."""
    import numpy as np
    from PIL import Image

    from fcnlib.cli import main
    from fcnlib.data import build_dataset
    from fcnlib.metrics import SegmentationMetric

    ds = build_dataset("camvid", CAMVID, "test", train=False)
    frames = [ds.pairs[i][0] for i in range(4)]
    assert main(["predict", "--weights", "camvid-cpu", *map(str, frames), "--out", str(tmp_path)]) == 0
    ours = SegmentationMetric(11)
    for i, frame in enumerate(frames):
        with Image.open(tmp_path / f"{frame.stem}_mask.png") as im:
            assert im.mode == "P" and im.size == (480, 360)
            labels = torch.from_numpy(np.array(im)).long()
        ours.update(labels[None], ds[i][1][None])
    out = tmp_path / "eval.json"
    assert main(["eval", "--weights", "camvid-cpu", "--data", "camvid", "--data-root", str(CAMVID), "--split", "test",
                 "--limit", "4", "--quiet", "--out", str(out)]) == 0
    assert ours.compute()["mIoU"] == pytest.approx(json.loads(out.read_text())["metrics"]["mIoU"], abs=0.01)
