"""Peak memory of a block of code: CUDA allocator statistics, or the process's resident set (RSS) on the CPU."""

from __future__ import annotations

import gc
import re
import threading

import torch

__all__ = ["PeakMemory", "current_rss", "trim_heap"]


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), flags=re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def current_rss() -> int:
    """The process's resident set now, bytes (``/proc/self/status``, else psutil, else the peak ``ru_maxrss``)."""
    kib = _proc_status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - neither /proc nor psutil
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def trim_heap() -> bool:
    """Collect garbage and hand free heap memory back to the OS (glibc ``malloc_trim(0)``), so that
    memory freed by earlier work and reused by the next block does not hide its RSS growth."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _can_reset_hwm() -> bool:
    """Whether writing ``5`` to ``/proc/self/clear_refs`` resets the peak RSS (VmHWM), Linux >= 4.0."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return _proc_status_kib("VmHWM") is not None


class PeakMemory:
    """Peak memory of a block, bytes. ``with PeakMemory(device) as pm: ...``; then ``pm.peak``, ``pm.growth``.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (``peak`` is the
    absolute figure, weights included; ``growth`` is over the memory allocated on entry). CPU: the
    process's peak resident set (``VmHWM`` of ``/proc/self/status``, reset by writing ``5`` to
    ``/proc/self/clear_refs``), or, where that is not permitted, the maximum of the RSS sampled
    every millisecond by a thread (which can miss short spikes); ``peak`` includes the interpreter
    and libraries, ``growth`` is over the RSS on entry, after ``gc.collect()`` and glibc's
    ``malloc_trim(0)``; heap memory the allocator still keeps may be reused and then does not count.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.peak = 0
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        if device.type == "cuda":
            self.method = (
                "torch.cuda.max_memory_allocated (reset_peak_memory_stats before each call)"
            )
        elif _can_reset_hwm():
            self.method = "peak RSS: /proc/self/status VmHWM, reset by writing 5 to /proc/self/clear_refs after malloc_trim(0)"
        else:
            self.method = (
                "peak RSS sampled every 1 ms by a thread (VmRSS / psutil) after malloc_trim(0)"
            )

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.base)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.method.startswith("peak RSS: /proc"):
            trim_heap()
            _can_reset_hwm()
            self.base = current_rss()
        else:
            trim_heap()
            self.base = self.peak = current_rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        assert self._stop is not None
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, current_rss())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            assert self._stop is not None
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, current_rss())
        else:
            self.peak = (_proc_status_kib("VmHWM") or 0) * 1024
