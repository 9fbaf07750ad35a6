"""How a run uses the CPU: bfloat16 only where the CPU computes it natively, intra-op threads
chosen from how busy the machine is (re-checked during training), OpenMP threads that sleep
instead of spinning, and the CPU's practical peak (large matrix multiplications).

This module imports torch only inside its functions, so that the command line can call
:func:`use_passive_wait` before torch (and OpenMP) is first loaded.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BF16_EMULATED_SLOWDOWN",
    "CpuThreads",
    "LoadReading",
    "cores_busy_elsewhere",
    "cpu_amp",
    "cpu_bf16_native",
    "matmul_peak_tflops",
    "parse_threads",
    "use_passive_wait",
    "wait_policy",
]

#: One training step of the CamVid recipe under bf16 autocast over the same step in float32 with
#: oneDNN limited to AVX2 (no bf16 units): 8,376 ms against 812 ms on this project's machine
#: (issue 19); what an explicit ``amp: bf16`` costs on a CPU without native bfloat16.
BF16_EMULATED_SLOWDOWN = 10.3
_WARNED: set[str] = set()
_TORCH_LOADED_FIRST: list[bool] = []  # set by use_passive_wait: was torch already imported?
_DEFAULT_KEPT: list[bool] = []  # OMP_WAIT_POLICY was set empty: OpenMP's default is kept


def use_passive_wait() -> str:
    """Put ``OMP_WAIT_POLICY=PASSIVE`` in the environment unless it is set already; returns the
    policy. OpenMP reads the variable once, when torch is first imported: call this before.

    Idle OpenMP threads then sleep at once instead of spinning, so a thread that waits for a core
    taken by another process does not hold a second core (issue 19: a step beside one CPU-bound
    process took 687 ms with spinning threads, 343 ms with passive ones).
    ``OMP_WAIT_POLICY=`` (empty) keeps OpenMP's default (spin a while, then sleep); the
    variable is then removed so that OpenMP does not complain about it.
    """
    _TORCH_LOADED_FIRST.append("torch" in sys.modules)
    if os.environ.get("OMP_WAIT_POLICY") == "" or _DEFAULT_KEPT:  # empty: OpenMP's default
        os.environ.pop("OMP_WAIT_POLICY", None)
        _DEFAULT_KEPT.append(True)
        return "default"
    return os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def wait_policy() -> str:
    """OpenMP's wait policy as this process runs it (for the run's record)."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    if policy is None:
        return "default (spin, then sleep)"
    if _TORCH_LOADED_FIRST and _TORCH_LOADED_FIRST[0]:
        return f"{policy} (set after torch was loaded: OpenMP's default applies)"
    return policy


def cpu_bf16_native() -> bool:
    """Whether oneDNN computes bfloat16 natively on this CPU (AVX-512 BF16, AMX).

    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` respects ``ONEDNN_MAX_CPU_ISA`` (false with
    ``AVX2``), unlike ``torch.backends.cpu.get_cpu_capability()``.
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _isa() -> str:
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f" (ONEDNN_MAX_CPU_ISA={limit})" if limit else ""


def cpu_amp(amp: str, train: bool = True) -> tuple[str, str]:
    """The precision a CPU run uses for setting ``amp`` and why: ``("bf16" | "off", reason)``.

    ``auto`` trains in bf16 where the CPU has native bfloat16 (oneDNN), else in float32;
    evaluation and prediction stay in float32 under ``auto``. An explicit ``bf16`` without native
    support runs, with a warning (once per process) on stderr.
    """
    native = cpu_bf16_native()
    if amp == "auto" and not train:
        return "off", "auto: float32 for evaluation and prediction on the CPU"
    if amp == "auto":
        if native:
            return "bf16", "auto: native bfloat16 on this CPU (oneDNN)"
        return "off", (
            f"auto: no native bfloat16{_isa()}, bf16 ~{BF16_EMULATED_SLOWDOWN:.0f}x slower"
        )
    if amp == "bf16" and not native:
        _warn_once(
            "bf16",
            f"amp bf16 on a CPU without native bfloat16{_isa()}: expect each training step to "
            f"take about {BF16_EMULATED_SLOWDOWN:.0f}x as long as in float32 (CamVid recipe: "
            "8.4 s against 0.81 s); use amp: auto (--amp auto) or --amp off to run in float32",
        )
        return "bf16", f"set to bf16; no native bfloat16{_isa()}: emulated, slow"
    return amp, f"set to {amp}" + (" (float32)" if amp == "off" else "")


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        print(f"fcnlib: warning: {message}", file=sys.stderr)


def parse_threads(value: Any) -> int | str:
    """``"auto"`` (also ``None``, older records) or a whole number >= 1; ValueError otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return "auto"
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    number = int(str(value).strip()) if isinstance(value, str) else int(value)
    if number < 1:
        raise ValueError(value)
    return number


# ----------------------------------------------------------------------------------------------
# How busy the machine is: /proc/stat, not the load average (which lags by a minute)


@dataclass(frozen=True)
class LoadReading:
    """One reading: wall clock, busy and total jiffies of our CPUs, this process's CPU seconds."""

    wall: float
    busy: int
    total: int
    own: float


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def read_load(stat_path: str = "/proc/stat", cpus: set[int] | None = None) -> LoadReading | None:
    """Busy and total jiffies over ``cpus`` (default: those this process may run on), or None."""
    cpus = _allowed_cpus() if cpus is None else cpus
    busy = total = 0
    try:
        with open(stat_path, encoding="ascii") as f:
            for line in f:
                name, *values = line.split()
                if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
                    continue
                v = [int(x) for x in values[:8]]  # user nice system idle iowait irq softirq steal
                total += sum(v)
                busy += sum(v) - v[3] - (v[4] if len(v) > 4 else 0)
    except (OSError, ValueError):
        return None
    if total == 0:
        return None
    return LoadReading(time.monotonic(), busy, total, time.process_time())


def cores_busy_elsewhere(first: LoadReading, second: LoadReading, cpus: int) -> float:
    """Cores that other processes kept busy between two readings (this process's CPU time taken
    out; its DataLoader workers count as others)."""
    total = second.total - first.total
    wall = second.wall - first.wall
    if total <= 0 or wall <= 0:
        return 0.0
    busy = cpus * (second.busy - first.busy) / total
    own = (second.own - first.own) / wall
    return max(0.0, busy - own)


def _cgroup_cpus(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """The cgroup's CPU quota in cores (``cpu.max``), or None without a limit."""
    try:
        with open(path, encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


_DEFAULT_THREADS: list[int] = []


def _torch_default_threads() -> int:
    """PyTorch's own default (the physical cores), read before fcnlib first changes it."""
    import torch

    if not _DEFAULT_THREADS:
        _DEFAULT_THREADS.append(torch.get_num_threads())
    return _DEFAULT_THREADS[0]


@dataclass
class CpuThreads:
    """Intra-op threads for setting ``setting`` (``"auto"`` or a number), shared by
    ``processes`` processes of one machine (``LOCAL_WORLD_SIZE`` under torchrun).

    ``auto``: ``OMP_NUM_THREADS`` if set; otherwise the cores that other processes leave free,
    judged from ``/proc/stat`` over ``window`` seconds at the start and, at each :meth:`recheck`,
    over the time since the previous reading (an epoch). A core counts as taken when others keep
    more than half of it busy; at least one thread, at most PyTorch's default (physical cores).
    """

    setting: int | str = "auto"
    processes: int = 1
    window: float = 0.25
    stat_path: str = "/proc/stat"
    threads: int = 0
    reason: str = ""
    history: list[int] = field(default_factory=list)
    _last: LoadReading | None = None

    def choose(self) -> int:
        """Decide now (a short /proc/stat window for ``auto``) and apply it to torch."""
        if self.setting != "auto":
            return self._apply(int(self.setting), f"set to {self.setting}")
        pinned = os.environ.get("OMP_NUM_THREADS", "").strip()
        if pinned.isdigit() and int(pinned) >= 1:
            return self._apply(int(pinned), f"auto: OMP_NUM_THREADS={pinned}")
        first = read_load(self.stat_path)
        if first is None:
            return self._apply(self._limit(), "auto: no /proc/stat here, PyTorch's default")
        time.sleep(self.window)
        return self._decide(first)

    def recheck(self) -> str | None:
        """Re-decide ``auto`` from the load since the last reading; a note if the count changed."""
        if self.setting != "auto" or self._last is None:
            if self.threads:
                self.history.append(self.threads)
            return None
        before = self.threads
        self._decide(self._last)
        if self.threads != before:
            return f"threads: {before} -> {self.threads} ({self.reason})"
        return None

    def _limit(self) -> int:
        cores = len(_allowed_cpus())
        quota = _cgroup_cpus()
        if quota is not None:
            cores = min(cores, max(1, math.ceil(quota)))
        return max(1, min(cores, _torch_default_threads()) // max(1, self.processes))

    def _decide(self, first: LoadReading) -> int:
        second = read_load(self.stat_path)
        if second is None:
            return self._apply(self._limit(), "auto: no /proc/stat here, PyTorch's default")
        self._last = second
        cpus = len(_allowed_cpus())
        others = cores_busy_elsewhere(first, second, cpus)
        free = cpus - others
        limit = self._limit()
        threads = max(1, min(limit, int(free / max(1, self.processes) + 0.5)))
        span = second.wall - first.wall
        why = f"auto: others kept {others:.1f} of {cpus} cores busy over {span:.1f} s" + (
            f", {self.processes} processes share them" if self.processes > 1 else ""
        )
        return self._apply(threads, why)

    def _apply(self, threads: int, reason: str) -> int:
        import torch

        _torch_default_threads()  # remember PyTorch's default before changing it
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.threads, self.reason = threads, reason
        self.history.append(threads)
        return threads


# ----------------------------------------------------------------------------------------------
# The CPU's practical peak


def matmul_peak_tflops(dtype_name: str = "float32", seconds: float = 0.3) -> dict[str, Any]:
    """The best TFLOP/s of square ``n x n`` matrix products (``2 n^3`` FLOP each) in ``dtype_name``
    on the CPU with torch's current threads: ``n`` doubles from 256 until one product takes 50 ms
    (at most 4096), then products repeat for ``seconds`` (at least 3)."""
    import torch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    gen = torch.Generator().manual_seed(0)
    n = 256
    while True:
        a = torch.randn(n, n, generator=gen).to(dtype)
        b = torch.randn(n, n, generator=gen).to(dtype)
        torch.mm(a, b)  # warm-up: packing, oneDNN primitive creation
        t0 = time.perf_counter()
        torch.mm(a, b)
        one = time.perf_counter() - t0
        if one >= 0.05 or n >= 4096:
            break
        n *= 2
    times = [one]
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "dtype": dtype_name,
        "size": n,
        "repeats": len(times),
        "best_s": best,
        "threads": torch.get_num_threads(),
        "tflops": 2 * n**3 / best / 1e12,
    }
