"""fcnlib.cpu: precision that fits the CPU, threads that fit a shared machine, OpenMP's wait
policy, the CPU's measured peak. No timing is asserted (bench/README.md holds the figures)."""

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fcnlib import cpu
from fcnlib.checkpoint import load_checkpoint
from fcnlib.config import ConfigError, TrainConfig, load_config
from fcnlib.context import setup_context
from fcnlib.engine import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    cpu._WARNED.clear()
    yield
    torch.set_num_threads(threads)
    cpu._WARNED.clear()


def _fake_native(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(cpu, "cpu_bf16_native", lambda: native)


# ----------------------------------------------------------------------------------------------
# precision


def test_amp_auto_follows_native_bfloat16(monkeypatch, capsys):
    _fake_native(monkeypatch, True)
    amp, why = cpu.cpu_amp("auto", train=True)
    assert (amp, why) == ("bf16", "auto: native bfloat16 on this CPU (oneDNN)")
    _fake_native(monkeypatch, False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    amp, why = cpu.cpu_amp("auto", train=True)
    assert amp == "off"
    assert why == "auto: no native bfloat16 (ONEDNN_MAX_CPU_ISA=AVX2), bf16 ~10x slower"
    assert cpu.cpu_amp("auto", train=False)[0] == "off"  # evaluation stays in float32
    assert cpu.cpu_amp("off")[0] == "off"
    assert capsys.readouterr().err == ""  # auto never warns


def test_explicit_bf16_without_native_support_warns_once(monkeypatch, capsys):
    _fake_native(monkeypatch, False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert cpu.cpu_amp("bf16")[0] == "bf16"  # runs as asked
    assert cpu.cpu_amp("bf16")[0] == "bf16"
    err = capsys.readouterr().err
    assert err.count("fcnlib: warning:") == 1
    assert "about 10x as long as in float32" in err and "--amp off" in err
    assert "amp: auto" in err
    _fake_native(monkeypatch, True)
    cpu._WARNED.clear()
    assert cpu.cpu_amp("bf16") == ("bf16", "set to bf16")
    assert capsys.readouterr().err == ""


def test_setup_context_records_the_choice(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _fake_native(monkeypatch, True)
    ctx = setup_context("cpu", "auto", train=True)
    assert ctx.amp_dtype == torch.bfloat16 and ctx.amp == "bfloat16"
    assert setup_context("cpu", "auto").amp_dtype is None  # not training: float32
    _fake_native(monkeypatch, False)
    ctx = setup_context("cpu", "auto", train=True)
    assert ctx.amp_dtype is None
    record = ctx.execution()
    assert record["amp"] == "off" and record["amp_reason"].startswith("auto: no native bfloat16")
    assert record["threads"] == 1 and record["threads_reason"] == "auto: OMP_NUM_THREADS=1"
    assert ctx.describe().splitlines() == [
        "amp off on cpu (auto: no native bfloat16, bf16 ~10x slower)",
        "threads 1 (auto: OMP_NUM_THREADS=1)",
    ]


def test_train_without_native_bf16_picks_float32_and_says_so(tmp_path, monkeypatch, capsys):
    """As with ONEDNN_MAX_CPU_ISA=AVX2: the log and the checkpoint name float32 and why."""
    _fake_native(monkeypatch, False)
    cfg = TrainConfig.from_dict(
        dict(width=0.0625, crop_size=48, limit_train=8, limit_val=2, epochs=1, batch_size=4,
             out=str(tmp_path / "run"), device="cpu", threads=1)
    )
    assert cfg.amp == "auto"
    train(cfg, progress=False)
    out = capsys.readouterr().out
    assert "amp off on cpu (auto: no native bfloat16" in out
    assert "threads 1 (set to 1)" in out
    ex = load_checkpoint(tmp_path / "run" / "last.pt")["execution"]
    assert ex["amp"] == "off" and "no native bfloat16" in ex["amp_reason"]
    assert ex["threads"] == 1 and ex["threads_setting"] == 1


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN ISA limit is x86")
def test_onednn_limited_to_avx2_has_no_native_bf16():
    """The real query (no fake): ``ONEDNN_MAX_CPU_ISA=AVX2`` takes native bfloat16 away."""
    code = "from fcnlib.cpu import cpu_amp; print(cpu_amp('auto')[0])"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "off"


# ----------------------------------------------------------------------------------------------
# threads


@pytest.mark.parametrize("value,parsed", [("auto", "auto"), (None, "auto"), ("AUTO", "auto"),
                                          (2, 2), ("3", 3), (4.0, 4)])
def test_parse_threads(value, parsed):
    assert cpu.parse_threads(value) == parsed


@pytest.mark.parametrize("value", [0, "0", -1, "x", 1.5, True, ""])
def test_parse_threads_refuses(value):
    with pytest.raises(ValueError):
        cpu.parse_threads(value)


def test_threads_setting_in_recipes():
    assert TrainConfig().threads == "auto"
    assert load_config("camvid-cpu").threads == "auto" and load_config("camvid-cpu").amp == "auto"
    assert load_config(None, {"threads": "2"}).threads == 2  # a number, bounded as one
    with pytest.raises(ConfigError, match=r"threads must be >= 1 or auto, not 0"):
        load_config(None, {"threads": "0"})
    with pytest.raises(ConfigError, match=r"threads must be >= 1 or auto, not many"):
        load_config(None, {"threads": "many"})


FAKE_STAT = """\
cpu  600 0 300 1000 100 0 0 0 0 0
cpu0 100 0 50 800 50 0 0 0 0 0
cpu1 500 0 250 200 50 0 0 0 0 0
intr 12345
"""


def test_read_load_sums_the_allowed_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(FAKE_STAT)
    both = cpu.read_load(str(stat), cpus={0, 1})
    assert (both.busy, both.total) == (900, 2000)  # idle + iowait are not busy
    one = cpu.read_load(str(stat), cpus={1})
    assert (one.busy, one.total) == (750, 1000)
    assert cpu.read_load(str(tmp_path / "missing"), cpus={0}) is None


def test_cores_busy_elsewhere_takes_our_own_time_out():
    first = cpu.LoadReading(wall=10.0, busy=0, total=0, own=3.0)
    second = cpu.LoadReading(wall=12.0, busy=300, total=400, own=4.0)
    # 2 CPUs 75 % busy = 1.5 cores; this process used 1 s of CPU in 2 s = 0.5 core
    assert cpu.cores_busy_elsewhere(first, second, cpus=2) == pytest.approx(1.0)
    assert cpu.cores_busy_elsewhere(first, first, cpus=2) == 0.0


def _fake_machine(monkeypatch, readings):
    """A 2-core machine whose /proc/stat readings come from ``readings`` (busy, total, own)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "_allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(cpu, "_cgroup_cpus", lambda path="": None)
    monkeypatch.setattr(cpu, "_torch_default_threads", lambda: 2)
    it = iter(readings)
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(
        cpu, "read_load",
        lambda path="", cpus=None: cpu.LoadReading(float(next(clock)), *next(it)),
    )


def test_threads_auto_from_a_fake_proc_stat(monkeypatch):
    # readings 10 s apart: (busy jiffies, total jiffies) over 2 CPUs, this process's CPU seconds
    _fake_machine(monkeypatch, [(0, 0, 0.0), (1000, 2000, 0.0),  # start: one core busy elsewhere
                                (2500, 4000, 15.0),  # epoch 1: 1.5 cores busy, all ours
                                (3500, 6000, 15.0)])  # epoch 2: one core busy elsewhere again
    policy = cpu.CpuThreads("auto", window=0.0)
    assert policy.choose() == 1 and torch.get_num_threads() == 1
    assert policy.reason == "auto: others kept 1.0 of 2 cores busy over 10.0 s"
    note = policy.recheck()
    assert policy.threads == 2 and torch.get_num_threads() == 2
    assert note == "threads: 1 -> 2 (auto: others kept 0.0 of 2 cores busy over 10.0 s)"
    assert policy.recheck() == "threads: 2 -> 1 (auto: others kept 1.0 of 2 cores busy over 10.0 s)"
    assert policy.history == [1, 2, 1]


def test_threads_auto_thresholds(monkeypatch):
    def choose(busy_jiffies, processes=1):
        _fake_machine(monkeypatch, [(0, 0, 0.0), (busy_jiffies, 2000, 0.0)])
        return cpu.CpuThreads("auto", processes=processes, window=0.0).choose()

    assert choose(0) == 2  # idle
    assert choose(500) == 2  # half a core busy elsewhere: both cores still
    assert choose(600) == 1  # more than half a core taken
    assert choose(2000) == 1  # never fewer than one
    assert choose(0, processes=2) == 1  # two training processes share the cores


def test_threads_pinned_and_explicit(monkeypatch):
    _fake_machine(monkeypatch, [])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    policy = cpu.CpuThreads("auto")
    assert policy.choose() == 1 and policy.reason == "auto: OMP_NUM_THREADS=1"
    assert policy.recheck() is None and policy.history == [1, 1]
    explicit = cpu.CpuThreads(2)
    assert explicit.choose() == 2 and explicit.reason == "set to 2"


def test_a_busy_cpu_is_seen_now_not_a_minute_later():
    """A process spinning beside us counts as most of a core (real /proc/stat)."""
    if cpu.read_load() is None:
        pytest.skip("no /proc/stat")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        first = cpu.read_load()
        time.sleep(0.5)
        second = cpu.read_load()
        assert cpu.cores_busy_elsewhere(first, second, len(os.sched_getaffinity(0))) >= 0.7
    finally:
        spinner.kill()
        spinner.wait()


# ----------------------------------------------------------------------------------------------
# OpenMP's wait policy: in the environment before torch is imported

PROBE = """
import builtins, os, sys
real = builtins.__import__
def watch(name, *args, **kw):
    if name == "torch" and "torch" not in sys.modules:
        print("OMP_WAIT_POLICY at torch import:", os.environ.get("OMP_WAIT_POLICY"), flush=True)
        os._exit(3)  # what OpenMP would see; no need to load torch
    return real(name, *args, **kw)
builtins.__import__ = watch
from fcnlib.cli import main
sys.exit(main(["eval", "--limit", "0"]))
"""


@pytest.mark.parametrize("preset,expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE"), ("", "None")])
def test_wait_policy_is_set_before_torch_loads(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    if preset is not None:  # "": keep OpenMP's default (the variable is removed)
        env["OMP_WAIT_POLICY"] = preset
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr  # stopped where torch was about to load
    assert proc.stdout.splitlines()[0] == f"OMP_WAIT_POLICY at torch import: {expected}"


# ----------------------------------------------------------------------------------------------
# peak


def test_matmul_peak_is_flops_over_the_best_time():
    peak = cpu.matmul_peak_tflops("float32", seconds=0.0)
    n = peak["size"]
    assert 256 <= n <= 4096 and peak["repeats"] >= 3 and peak["threads"] == torch.get_num_threads()
    assert peak["tflops"] == pytest.approx(2 * n**3 / peak["best_s"] / 1e12)
    assert cpu.matmul_peak_tflops("bfloat16", seconds=0.0)["tflops"] > 0
