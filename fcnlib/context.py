"""Where and how a run executes: the device, the ``torchrun`` process group, the precision and,
on the CPU, the intra-op threads (:mod:`fcnlib.cpu`)."""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist

from .cpu import CpuThreads, cpu_amp, parse_threads, wait_policy
from .errors import FcnlibError

__all__ = ["AMP_MODES", "Context", "DeviceError", "resolve_device", "setup_context"]

Amp = Literal["auto", "bf16", "fp16", "off"]
AMP_MODES: tuple[str, ...] = ("auto", "bf16", "fp16", "off")
_DEVICE = re.compile(r"^(auto|cpu|cuda)(:(\d+))?$")


class DeviceError(FcnlibError, ValueError):
    """A device or precision that this machine cannot provide."""


@dataclass
class Context:
    """Where and how to run: device, rank / world size (1 without torchrun), autocast dtype, why
    that precision (``amp_reason``) and the CPU thread policy (``threads``, None: left as it was)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None
    amp_reason: str = ""
    threads: CpuThreads | None = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """``torch.autocast`` with this context's dtype, or a no-op context without mixed precision."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def amp(self) -> str:
        return str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off"

    def recheck_threads(self) -> str | None:
        """Re-choose ``threads: auto`` from the load since the last check (call once an epoch);
        returns a line for the log when the count changed."""
        return self.threads.recheck() if self.threads is not None else None

    def execution(self) -> dict[str, Any]:
        """What the run's record keeps: precision and threads, each with the reason."""
        record: dict[str, Any] = {"device": str(self.device), "amp": self.amp}
        record["amp_reason"] = self.amp_reason
        record["threads"] = torch.get_num_threads()
        if self.threads is not None:
            record["threads_setting"] = self.threads.setting
            record["threads_reason"] = self.threads.reason
            record["threads_per_check"] = list(self.threads.history)
        record["omp_wait_policy"] = wait_policy()
        return record

    def describe(self) -> str:
        """Two log lines: the precision and the threads, each with the reason."""
        threads = f"threads {torch.get_num_threads()}"
        if self.threads is not None:
            threads += f" ({self.threads.reason})"
        return f"amp {self.amp} on {self.device} ({self.amp_reason})\n{threads}"


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` (cuda if present, else cpu), ``cpu``, ``cuda`` or ``cuda:N``; refuses anything else."""
    match = _DEVICE.match(str(device).strip())
    if match is None or (match.group(1) != "cuda" and match.group(2)):
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N (`device`)")
    kind, index = match.group(1), match.group(3)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} requested but no CUDA GPU is available (use `device` cpu)"
        )
    if index is not None and int(index) >= torch.cuda.device_count():
        raise DeviceError(
            f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)"
        )
    return torch.device("cuda", int(index) if index is not None else torch.cuda.current_device())


def _env_int(name: str, default: int, low: int) -> int:
    text = os.environ.get(name, "").strip()
    try:
        value = int(text) if text else default
    except ValueError:
        raise DeviceError(
            f"environment variable {name}={text!r} is not a whole number (set by torchrun; "
            f"unset it outside torchrun)"
        ) from None
    if value < low:
        raise DeviceError(f"environment variable {name}={value} must be >= {low}")
    return value


def _process_group_env() -> tuple[int, int, int]:
    """``(world_size, rank, local_rank)`` from torchrun's variables; one process without them."""
    world_size = _env_int("WORLD_SIZE", 1, 1)
    if world_size == 1:
        return 1, 0, 0  # a stray RANK without a process group means nothing
    rank = _env_int("RANK", 0, 0)
    local_rank = _env_int("LOCAL_RANK", 0, 0)
    missing = [n for n in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(n)]
    if missing or rank >= world_size:
        problem = (
            f"{', '.join(missing)} not set"
            if missing
            else f"RANK {rank} >= WORLD_SIZE {world_size}"
        )
        raise DeviceError(
            f"WORLD_SIZE={world_size} but {problem}: start several processes with torchrun, "
            "or unset WORLD_SIZE"
        )
    return world_size, rank, local_rank


#: Longest wait, in seconds, for the other processes of a group that ``torchrun`` did not start
#: (PyTorch's own default is 30 minutes, which looks like a hang).
RENDEZVOUS_TIMEOUT_S = 30


def _join_process_group(backend: str, world_size: int, rank: int) -> None:
    """``init_process_group`` from torchrun's variables; outside ``torchrun`` (no
    ``TORCHELASTIC_RUN_ID``) within :data:`RENDEZVOUS_TIMEOUT_S`; any failure is one line."""
    by_torchrun = bool(os.environ.get("TORCHELASTIC_RUN_ID"))
    wait = None if by_torchrun else RENDEZVOUS_TIMEOUT_S
    where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    try:
        if wait is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=wait))
    except Exception as exc:  # noqa: BLE001 - timeouts, refused connections, bad addresses
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        waited = f"within {wait} s " if wait is not None else ""
        raise DeviceError(
            f"WORLD_SIZE={world_size} RANK={rank}: the other processes did not join at {where} "
            f"{waited}({reason}); start every process with torchrun, or unset WORLD_SIZE, RANK, "
            "MASTER_ADDR and MASTER_PORT to run as one process"
        ) from None


def setup_context(
    device: str = "auto", amp: str = "auto", threads: int | str | None = "auto", *, train=False
) -> Context:
    """Resolve the device, join the ``torchrun`` process group if there is one, choose the
    precision and, on the CPU, the intra-op threads.

    ``amp="auto"``: bf16 autocast on GPUs that support it, fp16 (with a gradient scaler) on older
    GPUs; on the CPU bf16 for training (``train``) where the CPU computes bfloat16 natively, else
    float32 (:func:`fcnlib.cpu.cpu_amp`; an explicit ``bf16`` there without native support warns).
    ``threads``: a number, or ``"auto"`` (:class:`fcnlib.cpu.CpuThreads`: from how busy the
    machine is; on a GPU ``auto`` leaves PyTorch's default).
    """
    if amp not in AMP_MODES:
        raise DeviceError(f"amp must be one of {', '.join(AMP_MODES)}, not {amp!r} (`amp`)")
    try:
        threads = parse_threads(threads)
    except ValueError:
        raise DeviceError(f"threads must be >= 1 or auto, not {threads!r}") from None
    world_size, rank, local_rank = _process_group_env()
    dev = resolve_device(device)
    if dev.type == "cuda":
        if world_size > 1:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        _join_process_group("nccl" if dev.type == "cuda" else "gloo", world_size, rank)
    if amp == "fp16" and dev.type != "cuda":
        raise DeviceError("amp fp16 needs a CUDA GPU; on the CPU use bf16 or off (`amp`)")
    if dev.type == "cuda":
        reason = f"set to {amp}"
        if amp == "auto":
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            reason = f"auto: {amp} on this GPU"
    else:
        amp, reason = cpu_amp(amp, train=train)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[amp]
    policy = None
    if dev.type == "cpu" or threads != "auto":
        policy = CpuThreads(threads, processes=_env_int("LOCAL_WORLD_SIZE", 1, 1))
        policy.choose()
    return Context(dev, rank, world_size, amp_dtype, reason, policy)
