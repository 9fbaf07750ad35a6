"""fcnlib.bench: the suites (tiny profile) and the recipe entry run end to end on the CPU and write well-formed results.

No speed is asserted here: speed targets live in the benchmark's own output (bench/README.md).
"""

import json
import math

import pytest
import torch

from fcnlib import cli
from fcnlib.bench import (
    PeakMemory,
    argmax_channel_loop,
    confusion_masked_bincount,
    peak_tflops,
    to_markdown,
)
from fcnlib.metrics import confusion_matrix


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny CPU run through the command line (``FCNLIB_BENCH_TINY=1``); its JSON and output folder."""
    out = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("FCNLIB_BENCH_TINY", "1")
    try:
        assert cli.main(["bench", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return json.loads((out / "latest-cpu-tiny.json").read_text()), out


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_result_files_and_header(tiny_run):
    result, out = tiny_run
    assert result["schema"] == "fcnlib-bench/1"
    assert result["torch"] == torch.__version__
    assert result["device"]["type"] == "cpu" and result["device"]["name"]
    assert result["settings"]["kind"] == "tiny"
    assert _positive(result["wall_s"])
    for name in result["files"].values():
        assert (out / name).is_file()
    stem = result["files"]["json"][: -len(".json")]
    assert stem.startswith("cpu-tiny-")
    assert (out / "latest-cpu-tiny.md").read_text().startswith("## fcnlib bench")
    assert (out / "latest-cpu-tiny-scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(result["units"]) >= {"*_s", "*_bytes", "images_per_s", "pixels_per_s"}


def test_cpu_peak_is_measured_on_the_quick_path(tiny_run):
    d = tiny_run[0]["device"]
    assert _positive(d["peak_tflops"]) and _positive(d["peak_tflops_bf16"])
    m = d["peak_measurement"]
    for key, dtype in (("peak_tflops", "float32"), ("peak_tflops_bf16", "bfloat16")):
        n = m[dtype]["size"]
        assert d[key] == pytest.approx(2 * n**3 / m[dtype]["best_s"] / 1e12)
        assert m[dtype]["threads"] == d["torch_threads"]
    assert "CPU peak (torch.mm" in (tiny_run[1] / "latest-cpu-tiny.md").read_text()
    assert tiny_run[0]["execution"]["threads"] == d["torch_threads"]


def test_train_section(tiny_run):
    t = tiny_run[0]["train"]
    assert set(t["variants"]) == {"seed", "fcnlib", "fcnlib_compile"}
    for name in ("seed", "fcnlib"):
        v = t["variants"][name]
        assert _positive(v["images_per_s"]) and _positive(v["step_ms"]) and _positive(v["achieved_tflops"])
        assert len(v["repeats_s"]) == tiny_run[0]["settings"]["repeats"]
        # on a CPU the peak is measured (large matmuls): utilisation = achieved / that peak
        peak = tiny_run[0]["device"]
        assert v["mfu_vs_fp32_peak"] == pytest.approx(v["achieved_tflops"] / peak["peak_tflops"])
        assert v["mfu_vs_half_peak"] == pytest.approx(v["achieved_tflops"] / peak["peak_tflops_bf16"])
    assert t["variants"]["fcnlib_compile"]["status"] == "not measured"
    assert t["variants"]["fcnlib_compile"]["reason"]
    assert _positive(t["flops_per_step"]) and _positive(t["speedup"])
    assert t["goal"]["met"] is None  # the training goal applies on a GPU only
    assert t["losses_finite"] is True


def test_metric_section_and_equality_check_passed(tiny_run):
    m = tiny_run[0]["metric"]
    assert m["equality"]["passed"] is True
    assert all(m["equality"]["checks"].values())
    assert m["equality"]["pixels_labelled"] > 0
    assert {"seed_histc", "fixed_histc", "confusion_matrix"} <= set(m["updates"])
    for group in ("updates", "argmax", "counting"):
        for v in m[group].values():
            assert _positive(v["pixels_per_s"]) and _positive(v["ms_per_call"])
    assert m["updates"]["seed_histc"]["speedup_vs_seed"] == pytest.approx(1.0)
    assert m["argmax"]["argmax_fp32"]["agrees_with_argmax_fp32"] == 1.0
    assert m["argmax"]["max_indices_fp32"]["agrees_with_argmax_fp32"] == 1.0
    b = m["breakdown"]
    assert _positive(b["argmax_s"]) and _positive(b["count_s"]) and 0 < b["argmax_share"] < 1
    assert isinstance(m["goal"]["met"], bool) and m["goal"]["device"] == "cpu"


def test_inference_section(tiny_run):
    inf = tiny_run[0]["inference"]
    rows = inf["rows"]
    assert {(r["image"], r["mode"]) for r in rows} == {
        (i, m) for i in ("500x375", "2048x1365", "5472x3648") for m in ("whole", "scaled", "tiled")
    }
    for r in rows:
        assert r["status"] == "ok" and r["shape_ok"] is True
        assert _positive(r["latency_s"]) and r["peak_bytes"] > 0 and r["growth_bytes"] >= 0
    assert inf["memory_method"] and inf["goal"]["met"] is None


def test_scaling_section(tiny_run):
    sc = tiny_run[0]["scaling"]
    assert [p["batch"] for p in sc["by_batch"]] == list(tiny_run[0]["settings"]["scale_batches"])
    assert [p["size"] for p in sc["by_size"]] == list(tiny_run[0]["settings"]["scale_sizes"])
    for p in sc["by_batch"] + sc["by_size"]:
        assert p["status"] == "ok" and _positive(p["images_per_s"]) and _positive(p["megapixels_per_s"])


def test_markdown_has_every_section(tiny_run):
    text = to_markdown(tiny_run[0])
    for title in ("### Training step", "### Metric update", "### Inference", "### Scaling", "PASSED"):
        assert title in text


def test_peak_table_matches_card_names():
    assert peak_tflops("NVIDIA H100 80GB HBM3")["half"] == 989
    assert peak_tflops("NVIDIA H100 PCIe")["card"] == "H100 PCIe"
    assert peak_tflops("NVIDIA H200")["fp32"] == 67
    assert peak_tflops("NVIDIA A100-SXM4-80GB")["half"] == 312
    assert peak_tflops("NVIDIA L4")["half"] == 121
    assert peak_tflops("NVIDIA L40S") is None  # not an L4
    assert peak_tflops("Tesla T4")["half_dtype"] == "fp16"
    assert peak_tflops("Some Future GPU") is None and peak_tflops(None) is None


def test_candidate_kernels_match_reference():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, 9)
    target = torch.randint(0, 5, (2, 7, 9))
    target[0, 0, :4] = 255
    assert torch.equal(argmax_channel_loop(logits), logits.argmax(1))
    pred = logits.argmax(1)
    assert torch.equal(confusion_masked_bincount(pred, target, 5), confusion_matrix(pred, target, 5))


def test_peak_memory_sees_a_cpu_allocation():
    with PeakMemory(torch.device("cpu")) as pm:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del x
    assert pm.growth >= 48 * 2**20


# ----------------------------------------------------------------------------------------------
# fcnlib bench --config <recipe>
# ----------------------------------------------------------------------------------------------

TINY_RECIPE = """\
data: shapes
width: 0.0625
crop_size: 64
limit_train: 16
limit_val: 4
batch_size: 4
val_batch_size: 2
epochs: 1
device: cpu
amp: "off"
threads: 1
"""


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """One ``fcnlib bench --config`` run on a tiny shapes recipe; its JSON, output folder and the thread
    count before the run."""
    root = tmp_path_factory.mktemp("recipe")
    recipe = root / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    out = root / "results"
    threads = torch.get_num_threads()
    assert cli.main(["bench", "--config", str(recipe), "--steps", "2", "--out", str(out)]) == 0
    return json.loads((out / "latest-recipe-tiny-cpu.json").read_text()), out, threads


def test_recipe_result_keys_and_files(recipe_run):
    result, out, _ = recipe_run
    assert result["schema"] == "fcnlib-bench-recipe/1" and result["recipe_name"] == "tiny"
    assert {"run", "device", "context", "model", "config", "data", "step", "epoch", "validation", "breakdown",
            "load_average_start", "load_average_end", "setup_s", "wall_s", "units"} <= set(result)
    assert {"command", "commit", "dirty", "machine", "python", "torch"} <= set(result["run"])
    assert result["run"]["command"].startswith("fcnlib bench --config")
    assert len(result["load_average_start"]) == 3 and len(result["load_average_end"]) == 3
    c = result["context"]
    assert {k: c[k] for k in ("device", "amp", "threads", "threads_setting", "workers", "channels_last",
                              "compile")} == {"device": "cpu", "amp": "off", "threads": 1,
                                              "threads_setting": 1, "workers": 0,
                                              "channels_last": True, "compile": False}
    assert c["amp_reason"] == "set to off (float32)" and c["threads_reason"] == "set to 1"
    assert result["config"]["width"] == 0.0625 and result["config"]["crop_size"] == 64
    for name in result["files"].values():
        assert (out / name).is_file()
    assert (out / "latest-recipe-tiny-cpu.md").read_text().startswith("## fcnlib bench --config")


def test_recipe_times_are_positive_and_share_is_a_fraction(recipe_run):
    result = recipe_run[0]
    d, s, e, v, b = (result[k] for k in ("data", "step", "epoch", "validation", "breakdown"))
    assert d["samples"] == 16 and d["batches"] == 4 and d["workers"] == 0
    assert e["steps"] == 4 and e["samples"] == 16 and v["images"] == 4 and v["batches"] == 2
    assert s["steps"] == 2 and len(s["steps_ms"]) == 2 and s["batch_size"] == 4 and s["losses_finite"]
    for x in (d["wall_s"], d["first_batch_s"], d["samples_per_s"], d["samples_per_s_per_worker"], s["median_ms"],
              s["min_ms"], e["wall_s"], v["wall_s"], result["setup_s"], result["wall_s"], b["epoch_ratio"]):
        assert _positive(x)
    assert 0.0 <= b["data_wait_share"] <= 1.0
    assert b["steps_x_step_s"] == pytest.approx(e["steps"] * s["median_ms"] / 1e3)


def test_recipe_step_flops_and_utilisation(recipe_run):
    result = recipe_run[0]
    s, d = result["step"], result["device"]
    assert _positive(d["peak_tflops"]) and _positive(d["peak_tflops_bf16"])
    assert _positive(s["flops"]) and s["threads"] == 1
    assert s["achieved_tflops"] == pytest.approx(s["flops"] / (s["median_ms"] / 1e3) / 1e12)
    assert s["fraction_of_peak_fp32"] == pytest.approx(s["achieved_tflops"] / d["peak_tflops"])
    assert s["fraction_of_peak_bf16"] == pytest.approx(s["achieved_tflops"] / d["peak_tflops_bf16"])
    text = (recipe_run[1] / "latest-recipe-tiny-cpu.md").read_text()
    assert "training step FLOP/s" in text and "float32 peak / step utilisation" in text


def test_step_flop_count_of_a_known_matmul():
    """The recipe bench's FLOP count and utilisation on a step that is one known matmul."""
    from fcnlib.bench.recipe import _utilisation, count_step_flops

    m, k, n = 32, 48, 16
    x = torch.randn(m, k, requires_grad=True)
    w = torch.randn(k, n, requires_grad=True)
    flops = count_step_flops(lambda: (x @ w).sum().backward())
    assert flops == 3 * 2 * m * k * n  # forward, and the gradients of x and of w
    step = {"achieved_tflops": flops / 0.5 / 1e12}
    _utilisation(step, {"peak_tflops": 1e-6, "peak_tflops_bf16": 2e-6})
    assert step["fraction_of_peak_fp32"] == pytest.approx(6 * m * k * n / 0.5 / 1e6)
    assert step["fraction_of_peak_bf16"] == pytest.approx(3 * m * k * n / 0.5 / 1e6)


def test_recipe_restores_the_thread_count(recipe_run):
    assert torch.get_num_threads() == recipe_run[2]


def test_breakdown_definitions():
    from fcnlib.bench.recipe import breakdown

    b = breakdown(epoch_s=10.0, steps=4, step_s=1.5, validation_s=2.0)
    assert b["data_wait_s"] == pytest.approx(4.0) and b["data_wait_share"] == pytest.approx(0.4)
    assert b["epoch_ratio"] == pytest.approx(12.0 / 8.0)
    assert breakdown(epoch_s=5.0, steps=4, step_s=1.5, validation_s=0.0)["data_wait_share"] == 0.0  # clipped


def test_bench_option_errors(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    assert cli.main(["bench", "--config", str(recipe), "--quick", "--out", str(tmp_path)]) == 2
    assert cli.main(["bench", "--steps", "3", "--out", str(tmp_path)]) == 2
    assert cli.main(["bench", "--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--quick does not apply" in err and "--steps applies only with --config" in err
    assert "recipe not found" in err
    assert not list(tmp_path.glob("*.json"))


def test_run_info_lives_in_provenance():
    from fcnlib import provenance

    assert cli.run_info is provenance.run_info
    info = provenance.run_info(["bench"])
    assert info["command"] == "fcnlib bench" and info["torch"] == torch.__version__
