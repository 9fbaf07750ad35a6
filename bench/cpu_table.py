"""Every row of issue 19's CPU table, one process per row: ``bash bench/cpu_table.sh [--quick]``.

Rows (``--rows`` picks some by name):

- ``epoch-*``: ``fcnlib bench --config camvid-cpu`` (data pass, step, one epoch, one validation
  pass, the CPU peak and the step's utilisation) with today's settings (``threads: 2``,
  ``amp: bf16``, OpenMP's default wait policy) or the new ones (``auto``/``auto``, passive
  waiting), idle or beside one CPU-bound process started in another session (``setsid``), plus
  the best one core can do (``threads: 1``) and the new settings with OpenMP's default policy;
- ``step-*``: the training step alone in float32 / bf16 / auto with all instructions and with
  ``ONEDNN_MAX_CPU_ISA=AVX2``, and candidates for a faster step (NCHW, ``torch.compile``).

Each row records ``/proc/loadavg`` before and after, the commit and whether the tree is clean;
``--out`` gets each row's bench JSON/markdown and ``cpu-table-<stamp>.json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TODAY = {"threads": 2, "amp": "bf16"}
NEW = {"threads": "auto", "amp": "auto"}
DEFAULT_WAIT = {"OMP_WAIT_POLICY": ""}  # empty: fcnlib keeps OpenMP's default (spin, then sleep)
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
EPOCH = ("data", "step", "epoch", "validation")
STEP = ("step",)

#: name: (recipe overrides, environment, beside a CPU-bound process, parts, what it shows)
ROWS: dict[str, tuple[dict, dict, bool, tuple, str]] = {
    "epoch-idle-today": (TODAY, DEFAULT_WAIT, False, EPOCH, "idle, threads 2, bf16"),
    "epoch-idle-threads1": ({**TODAY, "threads": 1}, DEFAULT_WAIT, False, EPOCH, "idle, 1 thread"),
    "epoch-idle-new": (NEW, {}, False, EPOCH, "idle, auto/auto, passive"),
    "epoch-idle-new-spinwait": (NEW, DEFAULT_WAIT, False, EPOCH, "idle, auto/auto, default wait"),
    "epoch-busy-today": (TODAY, DEFAULT_WAIT, True, EPOCH, "busy, threads 2, bf16"),
    "epoch-busy-new": (NEW, {}, True, EPOCH, "busy, auto/auto, passive"),
    "step-fp32-all": ({"threads": 2, "amp": "off"}, {}, False, STEP, "float32, all ISA"),
    "step-bf16-all": ({"threads": 2, "amp": "bf16"}, {}, False, STEP, "bf16, all ISA"),
    "step-fp32-avx2": ({"threads": 2, "amp": "off"}, AVX2, False, STEP, "float32, AVX2"),
    "step-bf16-avx2": ({"threads": 2, "amp": "bf16"}, AVX2, False, STEP, "bf16, AVX2"),
    "step-auto-avx2": ({"threads": 2, "amp": "auto"}, AVX2, False, STEP, "auto, AVX2"),
    "step-bf16-nchw": (
        {"threads": 2, "amp": "bf16", "channels_last": "false"},
        {},
        False,
        STEP,
        "bf16, NCHW",
    ),
    "step-bf16-compile": (
        {"threads": 2, "amp": "bf16", "compile": "true"},
        {},
        False,
        STEP,
        "bf16, torch.compile",
    ),
}
QUICK_SKIPS = {"step-bf16-compile"}  # compiling takes minutes on 2 cores
#: Fewer timed steps where a step takes seconds (about 8 s under emulated bf16, 3 s beside a
#: CPU-bound process with spinning threads), so that the whole table takes about 10 minutes.
STEPS = {"step-bf16-avx2": 3, "epoch-busy-today": 4, "epoch-busy-new": 6}


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def child(args: argparse.Namespace) -> int:
    """One row, in its own process: OMP_WAIT_POLICY is settled before torch loads."""
    from fcnlib.cpu import use_passive_wait

    use_passive_wait()
    from fcnlib.bench import run_recipe_bench

    overrides, _env, _busy, parts, _what = ROWS[args.child]
    overrides = {k: str(v) for k, v in overrides.items()}
    if args.data_root:
        overrides["data_root"] = args.data_root
    if args.quick:
        overrides.update(limit_train="16", limit_val="8")
    run_recipe_bench(
        args.config,
        out_dir=args.out,
        steps=2 if args.quick else STEPS.get(args.child, args.steps),
        warmup=1 if args.quick else 2,
        data_batches=2 if args.quick else None,
        echo=True,
        argv=["bench", "--config", args.config, f"# cpu_table row {args.child}"],
        overrides=overrides,
        parts=parts,
        name=f"table-{args.child}",
        peak_s=0.05 if args.quick else 0.3,
    )
    return 0


def _summary(name: str, out: Path) -> dict:
    """The figures of one row from its bench JSON."""
    path = out / f"latest-recipe-table-{name}-cpu.json"
    if not path.is_file():
        return {}
    r = json.loads(path.read_text())
    s, d, c = r["step"], r["device"], r["context"]
    return {
        "json": path.name,
        "amp": c["amp"],
        "amp_reason": c.get("amp_reason"),
        "threads": c["threads"],
        "epoch_threads": r.get("epoch", {}).get("threads"),
        "omp_wait_policy": c.get("omp_wait_policy"),
        "step_ms": s["median_ms"],
        "epoch_s": r.get("epoch", {}).get("wall_s"),
        "validation_s": r.get("validation", {}).get("wall_s"),
        "peak_tflops": d.get("peak_tflops"),
        "peak_tflops_bf16": d.get("peak_tflops_bf16"),
        "achieved_tflops": s.get("achieved_tflops"),
        "fraction_of_peak_fp32": s.get("fraction_of_peak_fp32"),
        "fraction_of_peak_bf16": s.get("fraction_of_peak_bf16"),
        "bf16_native": d.get("bf16_native"),
    }


def run_row(name: str, args: argparse.Namespace, out: Path) -> dict:
    """Run row ``name`` in a child process (with a CPU-bound process beside it if the row says)."""
    _overrides, env_extra, busy, _parts, what = ROWS[name]
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, __file__, "--child", name, "--out", str(out), "--config", args.config]
    cmd += ["--steps", str(args.steps)] + (["--quick"] if args.quick else [])
    cmd += ["--data-root", args.data_root] if args.data_root else []
    spinner = None
    if busy:  # its own session (setsid), so the kernel's autogroups share the CPU between them
        spinner = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], start_new_session=True
        )
        time.sleep(2.0)
    row = {"row": name, "what": what, "busy": busy, "env": env_extra, "loadavg_before": _loadavg()}
    row.update(commit=_git("rev-parse", "HEAD"), clean=_git("status", "--porcelain") == "")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, timeout=args.row_timeout, check=False)
        row["rc"] = proc.returncode
    except subprocess.TimeoutExpired:
        row["rc"] = "timeout"
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    row.update(wall_s=time.perf_counter() - t0, loadavg_after=_loadavg())
    row.update(_summary(name, out))
    return row


def _cell(x, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def to_markdown(rows: list[dict]) -> str:
    head = [
        "row",
        "setting",
        "amp",
        "threads (step/epoch)",
        "step ms",
        "epoch s",
        "validation s",
        "peak fp32 / bf16 TFLOP/s",
        "step TFLOP/s",
        "of fp32 / bf16 peak",
        "load before / after",
        "commit",
        "clean",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        frac = "/".join(
            f"{100 * r[k]:.1f} %" if r.get(k) is not None else ""
            for k in ("fraction_of_peak_fp32", "fraction_of_peak_bf16")
        )
        cells = [
            r["row"],
            r["what"],
            r.get("amp"),
            f"{_cell(r.get('threads'))}/{_cell(r.get('epoch_threads'))}",
            _cell(r.get("step_ms")),
            _cell(r.get("epoch_s")),
            _cell(r.get("validation_s")),
            f"{_cell(r.get('peak_tflops'))} / {_cell(r.get('peak_tflops_bf16'))}",
            _cell(r.get("achieved_tflops")),
            frac,
            (
                f"{' '.join(r['loadavg_before'].split()[:3])} / "
                f"{' '.join(r['loadavg_after'].split()[:3])}"
            ),
            r["commit"][:9],
            "yes" if r["clean"] else "no",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="16 training images, 2 steps: a rehearsal")
    p.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=None)
    p.add_argument("--config", default="camvid-cpu")
    p.add_argument("--data-root", default=None, help="CamVid folder (default: the recipe's)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per row (default 10)")
    p.add_argument("--row-timeout", type=float, default=900.0, help="seconds per row")
    p.add_argument("--out", default=None, help="default: bench/results (--quick: a temp folder)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.out is None:
        args.out = "/tmp/fcnlib-cpu-table-quick" if args.quick else str(REPO / "bench/results")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.rows or [n for n in ROWS if not (args.quick and n in QUICK_SKIPS)]
    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in names:
        print(f"##### {name}: {ROWS[name][4]} (load {_loadavg()})", flush=True)
        rows.append(run_row(name, args, out))
        result = {"quick": args.quick, "rows": rows, "cpu_count": os.cpu_count()}
        (out / f"cpu-table-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"cpu-table-{stamp}.md").write_text(to_markdown(rows))
    print(to_markdown(rows))
    print(f"wrote {out / f'cpu-table-{stamp}.json'} and .md")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
