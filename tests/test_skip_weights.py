"""The shipped CamVid models of the skip comparison (chapter 3.8): camvid-cpu-32s and camvid-cpu-16s
load by name, agree with their cards and with their results files, and reproduce their figures."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnlib.cli import main
from fcnlib.models import WeightsError, build_model, get_weights, list_weights

REPO = Path(__file__).resolve().parents[1]
CAMVID = REPO.parent / "shared" / "data" / "camvid"
SKIPS = {"camvid-cpu-32s": ("fcn32s", 32), "camvid-cpu-16s": ("fcn16s", 16)}
SHIPPED = list(SKIPS)  # written by `tools/skip_comparison.sh ship-32s ship-16s`


def test_both_are_shipped():
    assert set(SKIPS) <= set(list_weights())


@pytest.mark.parametrize("name", SHIPPED)
def test_loads_by_name_with_its_architecture_and_card(name):
    arch, stride = SKIPS[name]
    w = get_weights(name)
    card = w.meta
    assert card["architecture"]["model"] == arch and card["architecture"]["width"] == 0.25
    model = build_model(arch, weights=name)
    assert model.stride == stride and model.num_classes == 11
    assert card["training"]["recipe"]["model"] == arch and card["training"]["epochs"] == 100
    assert card["evaluation"]["dirty"] is False and card["evaluation"]["data"]["images"] == 233
    assert card["evaluation"]["scale"] == [0.5, 0.625] and card["evaluation"]["flip"] is True
    assert set(card["metrics"]["boundary"]) == {"2", "4", "8", "16", "32"}
    with pytest.raises(WeightsError, match=f"are for {arch}, not fcn8s"):
        build_model("fcn8s", weights=name)
    x = torch.randn(1, 3, 90, 120)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 11, 90, 120)


@pytest.mark.parametrize("name", SHIPPED)
def test_card_agrees_with_its_results_file(name):
    card = get_weights(name).meta
    results = json.loads((REPO / "results" / f"{name}.json").read_text())
    assert results["metrics"]["mIoU"] == card["metrics"]["mIoU"]
    assert results["per_class_iou"] == card["metrics"]["per_class_iou"]
    assert results["metrics"]["boundary"] == card["metrics"]["boundary"]
    assert results["command"] == card["evaluation"]["command"]


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid is not at {CAMVID}")
@pytest.mark.parametrize("name", SHIPPED)
def test_eval_by_name_reproduces_the_cards_subset_figure(tmp_path, name):
    check = get_weights(name).meta["subset_check"]
    out = tmp_path / "first.json"
    argv = ["eval", "--weights", name, "--data", "camvid", "--data-root", str(CAMVID), "--split",
            "test", "--limit", str(check["images"]), "--batch-size", "4", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    got = json.loads(out.read_text())
    assert got["data"]["images"] == check["images"] == 20
    assert got["metrics"]["mIoU"] == pytest.approx(check["mIoU"], abs=1e-9)


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid is not at {CAMVID}")
@pytest.mark.parametrize("name", SHIPPED)
def test_predict_by_name_writes_label_maps(tmp_path, name):
    frame = min((CAMVID / "test").iterdir())
    assert main(["predict", "--weights", name, str(frame), "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / f"{frame.stem}_mask.png") as im:
        assert im.mode == "P" and im.size == (480, 360)
        labels = np.array(im)
    assert labels.max() < 11 and len(np.unique(labels)) >= 3  # a street scene, not one class
