"""``fcnlib bench``: run the four suites (train, metric, inference, scaling), save and print the results."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ..context import Context, setup_context
from ..provenance import run_info
from .inference import bench_inference
from .machine import cpu_peak_entry, device_info, load_average
from .metric import bench_metric
from .report import plot_scaling, to_markdown, write_files
from .scaling import bench_scaling
from .settings import SCHEMA, settings_for
from .train import bench_train

__all__ = ["UNITS", "bench_context", "run_bench"]

#: What the key suffixes of a result mean.
UNITS = {
    "*_s": "seconds",
    "*_ms": "milliseconds",
    "*_bytes": "bytes",
    "images_per_s": "images per second",
    "pixels_per_s": "pixels per second",
    "megapixels_per_s": "1e6 pixels per second",
    "samples_per_s": "training samples per second",
    "flops_*": "floating-point operations (multiply and add counted separately)",
    "achieved_tflops": "1e12 FLOP per second",
    "mfu_*": "fraction of the peak",
    "*_share": "fraction (0 to 1)",
}


def bench_context(
    device: str, amp: str = "auto", threads: int | str | None = "auto", train: bool = False
) -> Context:
    """:func:`fcnlib.engine.setup_context`, with an unusable device as a one-line :class:`ConfigError`."""
    try:
        return setup_context(device, amp, threads, train=train)
    except (ValueError, RuntimeError) as exc:  # e.g. --device cuda without a GPU
        raise ConfigError(f"bench: {str(exc).splitlines()[0]}") from None


def _save(result: dict[str, Any], out_dir: Path, label: str, stem: str) -> dict[str, str]:
    """Write JSON, markdown and plot as ``<stem>.*`` and as ``latest-<label>.*``; return the paths."""
    files = {
        "json": out_dir / f"{stem}.json",
        "markdown": out_dir / f"{stem}.md",
        "plot": out_dir / f"{stem}-scaling.png",
    }
    latest = {
        "json": out_dir / f"latest-{label}.json",
        "markdown": out_dir / f"latest-{label}.md",
        "plot": out_dir / f"latest-{label}-scaling.png",
    }
    result["files"] = {k: v.name for k, v in files.items()}
    d = result["device"]
    plot_scaling(
        result["scaling"],
        f"fcnlib train step, FCN-8s width {result['settings']['width']}, {d['name']}",
        files["plot"],
    )
    return write_files(result, to_markdown(result), files, latest)


def run_bench(
    device: str = "auto",
    quick: bool = False,
    out_dir: str | os.PathLike = "bench/results",
    *,
    tiny: bool | None = None,
    progress: bool = True,
    echo: bool = True,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Run every suite, save the results and print the markdown tables; returns the result dict.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``. ``quick``: smaller sizes (and on the CPU a
    width-0.125 model). ``tiny`` (default: environment ``FCNLIB_BENCH_TINY=1``): the test profile.
    Files: ``<out_dir>/<device>-<quick|full|tiny>-<timestamp>.{json,md}``, ``...-scaling.png``,
    and copies as ``latest-<device>[-quick|-tiny].*``. ``argv``: the command line recorded as provenance
    (default ``sys.argv[1:]``).
    """
    if tiny is None:
        tiny = os.environ.get("FCNLIB_BENCH_TINY", "") not in ("", "0")
    ctx = bench_context(device)
    s = settings_for(ctx.device, quick, tiny)
    kind = "tiny" if tiny else "quick" if quick else "full"
    t0 = time.perf_counter()
    info = device_info(ctx.device, peak_s=0.05 if tiny else 0.3)
    peak = info["peak_tflops"] if ctx.device.type == "cuda" else cpu_peak_entry(info)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "run": run_info(argv),
        "torch": torch.__version__,
        "device": info,
        "settings": {**asdict(s), "kind": kind},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_start": load_average(),
        "execution": ctx.execution(),
        "units": UNITS,
    }
    result["train"] = bench_train(s, ctx, peak, quick=quick, progress=progress)
    result["metric"] = bench_metric(s, ctx.device, progress=progress)
    result["inference"] = bench_inference(s, ctx.device, progress=progress)
    result["scaling"] = bench_scaling(s, ctx, progress=progress)
    result["load_average_end"] = load_average()
    result["wall_s"] = time.perf_counter() - t0
    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = ctx.device.type + ("" if kind == "full" else f"-{kind}")
    paths = _save(result, Path(out_dir), label, f"{ctx.device.type}-{kind}-{stamp}")
    result["paths"] = paths
    if echo:
        print(to_markdown(result))
        print(f"wrote {paths['json']} (and {Path(paths['latest_json']).name}, .md, -scaling.png)")
    return result
