"""Benchmark reports: markdown tables, the scaling plot, and the JSON / markdown / PNG files.

Every file is written atomically (:mod:`fcnlib.fileio`): a reader sees the old file or the new
one, never a truncated one.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_text
from .settings import GB

__all__ = [
    "fmt",
    "jsonable",
    "plot_scaling",
    "recipe_to_markdown",
    "table",
    "to_markdown",
    "write_files",
]


def fmt(x: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` significant digits, ``None`` and non-finite as ``n/a``, booleans as yes/no."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        if x == 0:
            return "0"
        mag = math.floor(math.log10(abs(x)))
        return (
            f"{x:.{max(0, digits - 1 - mag)}f}" if -3 <= mag < digits + 3 else f"{x:.{digits - 1}e}"
        )
    return str(x)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; cells formatted by :func:`fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _pct(x: float | None) -> str | None:
    return None if x is None else f"{100 * x:.1f} %"


def _md_train(t: dict[str, Any]) -> str:
    m = t["model"]
    head = (
        f"### Training step (FCN-8s width {m['width']}, {m['head']} head, batch {t['batch']} x "
        f"{t['crop'][0]}x{t['crop'][1]}, {t['flops_per_step'] / 1e9:.1f} GFLOP/step fwd+bwd; fcnlib amp: {t['fcnlib_amp']})"
    )
    rows = []
    for name, v in t["variants"].items():
        if "images_per_s" not in v:
            rows.append(
                [name, f"{v['status']}: {v.get('reason', '')}", None, None, None, None, None]
            )
            continue
        extra = f" (compile {v['compile_s']:.0f} s)" if "compile_s" in v else ""
        rows.append(
            [
                name + extra,
                v["images_per_s"],
                v["step_ms"],
                f"{v['speedup_vs_seed']:.2f}x",
                v["achieved_tflops"],
                _pct(v["mfu_vs_half_peak"]),
                _pct(v["mfu_vs_fp32_peak"]),
            ]
        )
    body = table(
        ["loop", "images/s", "ms/step", "vs seed", "TFLOP/s", "MFU (half peak)", "MFU (fp32 peak)"],
        rows,
    )
    g = t["goal"]
    goal = f"Goal (GPU): >= {g['speedup']:.0f}x; measured {t['speedup']:.2f}x" + (
        "" if g["met"] is None else f", met: {fmt(g['met'])}"
    )
    return f"{head}\n\n{body}\n\n{goal}"


def _md_metric(m: dict[str, Any]) -> str:
    shape = "x".join(str(d) for d in m["logits"]["shape"])
    out = [
        f"### Metric update (logits {shape} float32, {m['pixels_per_call'] / 1e6:.2f} Mpx per call)"
    ]
    out.append(
        table(
            ["method", "Mpx/s", "ms/call", "vs seed"],
            [
                [k, v["pixels_per_s"] / 1e6, v["ms_per_call"], f"{v['speedup_vs_seed']:.2f}x"]
                for k, v in m["updates"].items()
            ],
        )
    )
    out.append(
        table(
            ["label step (argmax over C)", "Mpx/s", "ms/call", "agrees with argmax fp32"],
            [
                [k, v["pixels_per_s"] / 1e6, v["ms_per_call"], _pct(v["agrees_with_argmax_fp32"])]
                for k, v in m["argmax"].items()
            ],
        )
    )
    out.append(
        table(
            ["counting (labels given)", "Mpx/s", "ms/call"],
            [[k, v["pixels_per_s"] / 1e6, v["ms_per_call"]] for k, v in m["counting"].items()],
        )
    )
    b, g, e = m["breakdown"], m["goal"], m["equality"]
    out.append(
        f"Breakdown of the confusion-matrix update: argmax {b['argmax_s'] * 1e3:.2f} ms + counting "
        f"{b['count_s'] * 1e3:.2f} ms (argmax {100 * b['argmax_share']:.0f} %). "
        f"Goal ({g['device']}): >= {g['speedup']:.0f}x; measured {m['speedup']:.2f}x, met: {fmt(g['met'])}. "
        f"Equality (fixed histc vs confusion matrix, exact counts): {'PASSED' if e['passed'] else 'FAILED'}."
    )
    if m.get("failed"):
        out.append(
            "Not measured (failed on this device): "
            + "; ".join(f"{k}: {v}" for k, v in m["failed"].items())
        )
    return "\n\n".join(out)


def _md_inference(inf: dict[str, Any]) -> str:
    rows = []
    for r in inf["rows"]:
        if r["status"] != "ok":
            rows.append(
                [
                    r["image"],
                    f"{r['width']}x{r['height']}",
                    r["mode"],
                    r["status"],
                    None,
                    None,
                    None,
                ]
            )
            continue
        rows.append(
            [
                r["image"],
                f"{r['width']}x{r['height']}",
                r["mode"],
                r["latency_s"],
                r["repeats"],
                r["peak_bytes"] / 2**20,
                r["growth_bytes"] / 2**20,
            ]
        )
    st = inf["settings"]
    head = (
        f"### Inference (predict(), train_size {st['train_size']}, tile {st['tile']}, overlap {st['overlap']}; "
        f"memory: {inf['memory_method']})"
    )
    body = table(
        ["image", "actual WxH", "mode", "latency s", "runs", "peak MiB", "growth MiB"], rows
    )
    g = inf["goal"]
    goal = f"Goal (GPU): {g['image']} within {g['limit_bytes'] / GB:.0f} GB; " + (
        "not applicable on the CPU (peak is the process RSS)"
        if g["met"] is None
        else ", ".join(f"{k}: {fmt(v)}" for k, v in g["met"].items())
    )
    return f"{head}\n\n{body}\n\n{goal}"


def _md_scaling(sc: dict[str, Any]) -> str:
    def rows(points: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [
                p["batch"],
                p["size"],
                p.get("images_per_s", p["status"]),
                p.get("megapixels_per_s"),
                p.get("step_ms"),
            ]
            for p in points
        ]

    headers = ["batch", "crop px", "images/s", "Mpx/s", "ms/step"]
    return (
        f"### Scaling (fcnlib loop)\n\n{table(headers, rows(sc['by_batch']))}\n\n"
        f"{table(headers, rows(sc['by_size']))}"
    )


def _md_cpu_peak(d: dict[str, Any]) -> str:
    """The CPU's measured peak, one line."""
    m = d["peak_measurement"]
    f, b = m["float32"], m["bfloat16"]
    native = "native" if d.get("bf16_native") else "not native"
    return (
        f"CPU peak (torch.mm, {f['threads']} threads): float32 {fmt(d['peak_tflops'])} TFLOP/s "
        f"(n={f['size']}), bf16 {fmt(d['peak_tflops_bf16'])} TFLOP/s (n={b['size']}, {native})"
    )


def to_markdown(result: dict[str, Any]) -> str:
    """A suite result (:func:`fcnlib.bench.run_bench`) as markdown tables (what ``fcnlib bench`` prints)."""
    d = result["device"]
    head = (
        f"## fcnlib bench: {d['name']} ({d['type']}, {result['settings']['profile']}), torch {result['torch']}, "
        f"{result['wall_s']:.0f} s"
    )
    parts = [head]
    if d.get("peak_tflops_bf16") is not None:
        parts.append(_md_cpu_peak(d))
    for key, fn in (
        ("train", _md_train),
        ("metric", _md_metric),
        ("inference", _md_inference),
        ("scaling", _md_scaling),
    ):
        if key in result:
            parts.append(fn(result[key]))
    return "\n\n".join(parts) + "\n"


def _recipe_peak_rows(result: dict[str, Any]) -> list[list[Any]]:
    """The CPU's measured peak and the step's utilisation of it (rows of the recipe table)."""
    d, s = result["device"], result["step"]
    if "achieved_tflops" not in s:
        return []
    rows = [
        [
            "training step FLOP/s",
            f"{fmt(s['achieved_tflops'])} TFLOP/s",
            f"{fmt(s['flops'] / 1e9)} GFLOP per step (FlopCounterMode, fwd + bwd)",
        ]
    ]
    for key, label in (("fp32", "float32"), ("bf16", "bf16")):
        peak = d.get("peak_tflops" if key == "fp32" else "peak_tflops_bf16")
        if peak is not None:
            rows.append(
                [
                    f"{label} peak / step utilisation",
                    f"{fmt(peak)} TFLOP/s",
                    f"step at {_pct(s[f'fraction_of_peak_{key}'])} of it (torch.mm)",
                ]
            )
    return rows


def _recipe_rows(result: dict[str, Any]) -> list[list[Any]]:
    """The rows of the recipe table for the parts that were measured."""
    rows = []
    if d := result.get("data"):
        rows.append(
            [
                "data pipeline alone",
                f"{fmt(d['samples_per_s'])} samples/s",
                (
                    f"{fmt(d['samples_per_s_per_worker'])} per loading process; "
                    f"{d['samples']} samples in {fmt(d['wall_s'])} s"
                ),
            ]
        )
    s = result["step"]
    rows.append(
        [
            "training step alone",
            f"{fmt(s['median_ms'])} ms",
            f"median of {s['steps']} steps after {s['warmup']}, batch {s['batch_size']}",
        ]
    )
    if e := result.get("epoch"):
        rows.append(
            [
                "one epoch (real loader)",
                f"{fmt(e['wall_s'])} s",
                f"{e['steps']} steps, {e['samples']} samples",
            ]
        )
    if v := result.get("validation"):
        rows.append(
            [
                "one validation pass",
                f"{fmt(v['wall_s'])} s",
                f"{v['images']} images, scale {v['scale']}, flip {fmt(v['flip'])}",
            ]
        )
    if b := result.get("breakdown"):
        rows.append(
            [
                "waiting on data",
                _pct(b["data_wait_share"]),
                f"epoch - steps x step = {fmt(b['data_wait_s'])} s",
            ]
        )
        rows.append(
            [
                "epoch / (steps x step + validation)",
                f"{b['epoch_ratio']:.2f}",
                "(epoch + validation) / (steps x step + validation)",
            ]
        )
    return rows + _recipe_peak_rows(result)


def recipe_to_markdown(result: dict[str, Any]) -> str:
    """A recipe result (:func:`fcnlib.bench.run_recipe_bench`) as a markdown table (what
    ``fcnlib bench --config`` prints)."""
    c = result["context"]
    head = (
        f"## fcnlib bench --config {result['recipe']}: {result['device']['name']}, amp {c['amp']}, "
        f"{c['threads']} threads, {c['workers']} workers, torch {result['torch']}"
    )
    if c.get("amp_reason"):
        head += f"\n\namp: {c['amp_reason']}; threads: {c.get('threads_reason', 'n/a')}"
    load = ", ".join(fmt(x) for x in result["load_average_start"] or []) or "n/a"
    load_end = ", ".join(fmt(x) for x in result["load_average_end"] or []) or "n/a"
    return (
        f"{head}\n\n{table(['measurement', 'value', 'detail'], _recipe_rows(result))}\n\n"
        f"Load average (1, 5, 15 min): {load} before, {load_end} after; setup {fmt(result['setup_s'])} s, "
        f"{fmt(result['wall_s'])} s in all.\n"
    )


def plot_scaling(scaling: dict[str, Any], title: str, path: str | Path) -> Path:
    """Save the scaling curves (images/s against batch; megapixels/s against crop size) as a PNG."""
    from matplotlib.figure import (
        Figure,
    )  # not registered with pyplot: nothing to close, no GUI backend

    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    pts = [p for p in scaling["by_batch"] if p["status"] == "ok"]
    ax1.plot([p["batch"] for p in pts], [p["images_per_s"] for p in pts], "o-")
    ax1.set(
        xlabel="batch size", ylabel="images / s", title=f"{scaling['batch_sweep_size']} px crops"
    )
    ax1.set_xscale("log", base=2)
    ax1.set_xticks([p["batch"] for p in pts], [str(p["batch"]) for p in pts])
    ax1.minorticks_off()
    pts = [p for p in scaling["by_size"] if p["status"] == "ok"]
    ax2.plot([p["size"] for p in pts], [p["megapixels_per_s"] for p in pts], "o-")
    ax2.set(
        xlabel="crop side (px)",
        ylabel="megapixels / s",
        title=f"batch {scaling['size_sweep_batch']}",
    )
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(buf.getvalue(), path)
    return Path(path)


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars as Python numbers, tuples as lists and non-finite floats as ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.integer, np.floating)):
        return jsonable(x.item())
    return x


def write_files(
    result: dict[str, Any], markdown: str, files: dict[str, Path], latest: dict[str, Path]
) -> dict[str, str]:
    """Write ``result`` as JSON to ``files["json"]`` and ``markdown`` to ``files["markdown"]`` (a
    ``files["plot"]`` must already exist), then copy every file ``files[k]`` to ``latest[k]``.

    Returns the paths as strings: the keys of ``files``, and ``latest_<key>`` for the copies.
    """
    atomic_write_text(json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n", files["json"])
    atomic_write_text(markdown, files["markdown"])
    for key, path in latest.items():
        atomic_write_bytes(files[key].read_bytes(), path)
    return {
        **{k: str(v) for k, v in files.items()},
        **{f"latest_{k}": str(v) for k, v in latest.items()},
    }
