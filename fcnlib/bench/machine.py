"""The benchmarked machine: device name and properties, CPU model, load average."""

from __future__ import annotations

import os
import platform
import re
from typing import Any

import torch

from .settings import peak_tflops

__all__ = ["cpu_name", "device_info", "load_average"]


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


def device_info(device: torch.device) -> dict[str, Any]:
    """Name and properties of the benchmarked device, with the matching peak TFLOP/s (``None`` if unknown)."""
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
        info.update(name=f"{info['cpu']} ({torch.get_num_threads()} threads)", peak_tflops=None)
    return info


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``os.getloadavg()``), or ``None`` where the system has none."""
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None
