"""The benchmarked machine: device name and properties, CPU model, load average."""

from __future__ import annotations

import os
import platform
import re
from typing import Any

import torch

from ..cpu import cpu_bf16_native, matmul_peak_tflops
from .settings import peak_tflops

__all__ = ["cpu_name", "cpu_peak_entry", "cpu_peaks", "device_info", "load_average"]


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``; elsewhere what :mod:`platform` reports)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            match = re.search(r"^model name\s*:\s*(.+)$", fh.read(), flags=re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device, peak_s: float = 0.3) -> dict[str, Any]:
    """Name and properties of the benchmarked device, with its peak TFLOP/s: a GPU's from the
    card table (``None`` if unknown); a CPU's measured now with torch's current threads
    (:func:`cpu_peaks`, about ``peak_s`` seconds per precision)."""
    info: dict[str, Any] = {
        "type": device.type,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_name(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name,
            memory_bytes=props.total_memory,
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            tf32_conv=torch.backends.cudnn.allow_tf32,
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
        )
        info["peak_tflops"] = peak_tflops(props.name)
    else:
        info.update(name=f"{info['cpu']} ({torch.get_num_threads()} threads)")
        info.update(cpu_peaks(peak_s))
    return info


def cpu_peaks(seconds: float = 0.3) -> dict[str, Any]:
    """The CPU's practical peak: ``peak_tflops`` (float32) and ``peak_tflops_bf16``, the best
    rate of large square matrix products (:func:`fcnlib.cpu.matmul_peak_tflops`), with the
    details under ``peak_measurement`` and whether oneDNN has native bfloat16."""
    fp32 = matmul_peak_tflops("float32", seconds)
    bf16 = matmul_peak_tflops("bfloat16", seconds)
    return {
        "peak_tflops": fp32["tflops"],
        "peak_tflops_bf16": bf16["tflops"],
        "peak_measurement": {"float32": fp32, "bfloat16": bf16, "method": "torch.mm, best of"},
        "bf16_native": cpu_bf16_native(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }


def cpu_peak_entry(info: dict[str, Any]) -> dict[str, Any] | None:
    """A measured CPU peak in the card table's form (``half`` = bf16, ``fp32``) for utilisation."""
    if info.get("peak_tflops_bf16") is None:
        return None
    return {
        "card": "measured (matmul)",
        "half": info["peak_tflops_bf16"],
        "half_dtype": "bf16",
        "fp32": info["peak_tflops"],
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``os.getloadavg()``), or ``None`` where the system has none."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None
