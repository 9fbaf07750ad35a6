"""Write ``summary.json`` for tools/gpu_check.sh from its scratch folder (standard library only, but ``env``).

    python tools/gpu_check_summary.py --work WORK --out OUT_DIR --commit C --started EPOCH --budget S [--final]

Reads ``WORK/steps.tsv`` (one line per step: name, status, rc, seconds, limit_s, note, command),
``WORK/nvidia-smi.csv``, ``WORK/env.json``, ``WORK/cuda-tests.xml`` (pytest's JUnit XML; if the
step was killed before pytest wrote it, the ``-v`` lines of ``OUT_DIR/gpu_check.log``),
``OUT_DIR/bench-cuda.json``, ``OUT_DIR/ddp-check.json``, ``WORK/camvid-run/history.csv`` and
``OUT_DIR/camvid-gpu.json``; everything missing is recorded as missing, never an error.
The shell script calls it after every step, so a killed run still leaves a summary. Also:

    python tools/gpu_check_summary.py env WORK/env.json     # versions, GPU (imports torch; exit 3 without CUDA)
    python tools/gpu_check_summary.py digest summary.json   # a few lines for the log
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import socket
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

SCHEMA = "fcnlib-gpu-check/1"
OUTCOMES = {"PASSED": "passed", "FAILED": "failed", "SKIPPED": "skipped", "ERROR": "error"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def read_steps(path: Path) -> list[dict[str, Any]]:
    steps = []
    if not path.is_file():
        return steps
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) < 7:
            continue
        name, status, rc, seconds, limit, note, command = fields[:7]
        steps.append({
            "name": name, "status": status,
            "rc": int(rc) if rc.lstrip("-").isdigit() else None,
            "seconds": float(seconds) if seconds else None,
            "limit_s": int(limit) if limit.isdigit() else None,
            "timed_out": status == "timeout",
            "note": note or None, "command": command,
        })
    return steps


def read_gpu(work: Path) -> dict[str, Any]:
    path = work / "nvidia-smi.csv"
    if not path.is_file():
        return {"nvidia_smi": None}
    text = path.read_text().strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    gpus = []
    if lines and lines[0].lower().startswith("name"):
        for ln in lines[1:]:
            parts = [p.strip() for p in ln.split(",")]
            gpus.append({"name": parts[0], "memory_total": parts[1] if len(parts) > 1 else None})
    return {"nvidia_smi": text[:2000], "gpus": gpus, "name": gpus[0]["name"] if gpus else None}


def read_cuda_tests(work: Path, log: Path) -> dict[str, Any] | None:
    xml = work / "cuda-tests.xml"
    tests: list[dict[str, Any]] = []
    source = None
    if xml.is_file():
        try:
            root = ET.parse(xml).getroot()
            source = "junit"
            for case in root.iter("testcase"):
                outcome, message = "passed", None
                for tag in ("failure", "error", "skipped"):
                    node = case.find(tag)
                    if node is not None:
                        outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                        message = (node.get("message") or node.text or "").strip()[:1000] or None
                        break
                tests.append({"name": case.get("name"), "outcome": outcome,
                              "seconds": float(case.get("time") or 0), "message": message})
        except ET.ParseError:
            tests, source = [], None
    if source is None and log.is_file():
        section = _log_section(log.read_text(errors="replace"), "cuda-tests")
        if section is not None:
            source = "log (no JUnit XML: pytest did not finish)"
            for m in re.finditer(r"test_cuda\.py::(\w+)\s+(PASSED|FAILED|SKIPPED|ERROR)", section):
                tests.append({"name": m.group(1), "outcome": OUTCOMES[m.group(2)], "seconds": None, "message": None})
    if source is None:
        return None
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
    return {"source": source, **counts, "total": len(tests), "tests": tests}


def _log_section(text: str, step: str) -> str | None:
    start = text.find(f"##### gpu_check step {step} ")
    if start < 0:
        return None
    end = text.find("##### gpu_check step ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def read_bench(out: Path) -> dict[str, Any] | None:
    b = _read_json(out / "bench-cuda.json")
    if not isinstance(b, dict):
        return None
    return {
        "file": "bench-cuda.json", "device": _get(b, "device", "name"), "profile": _get(b, "settings", "profile"),
        "wall_s": b.get("wall_s"),
        "train_speedup_vs_seed": _get(b, "train", "speedup"), "train_goal_met": _get(b, "train", "goal", "met"),
        "train_images_per_s": _get(b, "train", "variants", "fcnlib", "images_per_s"),
        "metric_speedup_vs_seed": _get(b, "metric", "speedup"), "metric_goal_met": _get(b, "metric", "goal", "met"),
        "inference_memory_goal_met": _get(b, "inference", "goal", "met"),
    }


def read_camvid(work: Path, out: Path) -> dict[str, Any] | None:
    result: dict[str, Any] = {}
    info = _read_json(work / "camvid.json")
    if isinstance(info, dict):
        result.update(info)
    history = work / "camvid-run" / "history.csv"
    if history.is_file():
        with history.open(newline="") as f:
            rows = list(csv.DictReader(f))
        result["epochs_run"] = len(rows)
        vals = [float(r["mIoU"]) for r in rows if r.get("mIoU") not in (None, "", "None", "nan")]
        result["best_val_mIoU"] = max(vals) if vals else None
        result["history"] = rows
    ev = _read_json(out / "camvid-gpu.json")
    if isinstance(ev, dict):
        result["test"] = {"file": "camvid-gpu.json", **(ev.get("metrics") or {}),
                          "images": _get(ev, "data", "images"), "trained_epochs": ev.get("trained_epochs"),
                          "train_seconds": ev.get("train_seconds")}
    return result or None


def build(args: argparse.Namespace) -> dict[str, Any]:
    work, out = Path(args.work), Path(args.out)
    now = time.time()
    steps = read_steps(work / "steps.tsv")
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "complete": bool(args.final),
        "commit": args.commit,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.started)),
        "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "wall_s": round(now - args.started, 1),
        "budget_s": args.budget,
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "gpu": read_gpu(work),
        "env": _read_json(work / "env.json"),
        "steps": steps,
        "all_ok": bool(steps) and all(s["status"] == "ok" for s in steps),
        "results": {
            "cuda_tests": read_cuda_tests(work, out / "gpu_check.log"),
            "bench": read_bench(out),
            "ddp": _read_json(out / "ddp-check.json"),
            "camvid": read_camvid(work, out),
        },
    }
    summary["files"] = sorted(p.name for p in out.iterdir() if p.is_file()) if out.is_dir() else []
    if "summary.json" not in summary["files"]:
        summary["files"] = sorted([*summary["files"], "summary.json"])
    return summary


ENV_DISTRIBUTIONS = ("torchvision", "numpy", "pillow", "pyyaml", "tqdm", "matplotlib", "pytest", "scipy")


def write_env(path: Path) -> int:
    """``env PATH``: Python, torch, CUDA, the GPU and the packages fcnlib needs, as JSON; exit 3 without CUDA."""
    import platform

    info: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    try:
        import torch

        info.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                    cudnn=torch.backends.cudnn.version(), device_count=torch.cuda.device_count())
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            info.update(gpu=p.name, gpu_memory_bytes=p.total_memory, capability=f"{p.major}.{p.minor}",
                        multiprocessors=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
            try:
                v = torch.cuda.nccl.version()
                info["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
            except Exception as exc:  # noqa: BLE001 - informational
                info["nccl"] = f"unknown ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001
        info["torch_error"] = f"{type(exc).__name__}: {exc}"
    from importlib import metadata, util

    for name in ENV_DISTRIBUTIONS:  # versions from the metadata: no slow imports
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = "missing"
    spec = util.find_spec("fcnlib")
    info["fcnlib_from"] = str(Path(spec.origin).parent) if spec and spec.origin else "missing"
    path.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info))
    if not info.get("cuda_available"):
        print("gpu_check: no CUDA device visible to torch", file=sys.stderr)
        return 3
    return 0


def digest(path: Path) -> int:
    """``digest SUMMARY``: a few lines for the end of the log (and the device tool's output tail)."""
    s = _read_json(path)
    if not isinstance(s, dict):
        print(f"no summary at {path}")
        return 1
    print(f"commit {s.get('commit')}  gpu {_get(s, 'gpu', 'name')}  wall {s.get('wall_s')}s  all_ok {s.get('all_ok')}")
    for step in s.get("steps", []):
        print(f"  {step['name']:<13} {step['status']:<8} exit {step['rc']!s:<4} {step['seconds'] or 0:>6.1f}s"
              f"{'  ' + step['note'] if step.get('note') else ''}")
    r = s.get("results") or {}
    t = r.get("cuda_tests")
    if t:
        print(f"  cuda tests: {t['passed']} passed, {t['failed']} failed, {t['error']} errors, {t['skipped']} skipped")
        for test in t["tests"]:
            if test["outcome"] in ("failed", "error"):
                print(f"    {test['outcome']}: {test['name']}: {(test['message'] or '')[:300]}")
    b = r.get("bench")
    if b:
        print(f"  bench: train x{b.get('train_speedup_vs_seed')} vs seed, metric x{b.get('metric_speedup_vs_seed')}, "
              f"inference memory goal {b.get('inference_memory_goal_met')}")
    d = r.get("ddp")
    if isinstance(d, dict):
        print(f"  ddp: ok {d.get('ok')} backend {d.get('backend')} checks {d.get('checks')} errors {d.get('errors')}")
    c = r.get("camvid")
    if c:
        test = c.get("test") or {}
        print(f"  camvid: {c.get('max_minutes')} min, {c.get('epochs_run')} epochs, best val mIoU "
              f"{c.get('best_val_mIoU')}, test mIoU {test.get('mIoU')} pixAcc {test.get('pixAcc')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["env"] and len(argv) == 2:
        return write_env(Path(argv[1]))
    if argv[:1] == ["digest"] and len(argv) == 2:
        return digest(Path(argv[1]))
    p = argparse.ArgumentParser(prog="gpu_check_summary.py")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--started", type=float, required=True, help="start time, seconds since the epoch")
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--final", action="store_true")
    args = p.parse_args(argv)
    summary = build(args)
    path = Path(args.out) / "summary.json"
    tmp = path.with_name(".summary.json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
