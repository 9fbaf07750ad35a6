"""A training run's output folder, owned by one run at a time.

The run that trains into a folder holds ``.fcnlib.lock`` for its whole life: one JSON line with
its pid, host, the process's start time (``/proc/<pid>/stat``) and boot id, its command and the
time it started. A second run into the same folder is refused at start, with a message that names
the lock file and says when deleting it is safe. A lock left by a run that no longer exists
(killed, crashed), whose pid now belongs to another process (the start time differs: a reused
pid, e.g. 1 in a container) or that no process can hold (a pid above the kernel's ``pid_max``)
is taken over. A lock of the older ``pid host`` form whose pid is alive is refused with the same
advice. Temporary files of interrupted saves are removed on entry. A
folder that the run created and that is still empty when it fails is removed again.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .errors import FcnlibError
from .fileio import TMP_SUFFIX, remove_stale_temporaries

__all__ = ["LOCK_NAME", "RUN_FILES", "OutputFolder", "OutputFolderError"]

LOCK_NAME = ".fcnlib.lock"
#: What a run writes; ``--overwrite`` removes these before the new run starts.
RUN_FILES = ("last.pt", "best.pt", "history.csv", "curves.png")


class OutputFolderError(FcnlibError, FileExistsError):
    """The output folder is busy, already holds a run, or cannot be written."""


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 2**22  # Linux's largest pid_max


def _process_start(pid: int) -> tuple[str | None, str | None]:
    """``(start time in clock ticks since boot, boot id)`` of ``pid``; ``None`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat[stat.rindex(")") + 2 :].split()[19]
    except (OSError, ValueError, IndexError):
        return None, None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = None
    return start, boot


def _lock_record(pid: int) -> dict[str, object]:
    """What a lock records of process ``pid`` (the command and time only for this process)."""
    start, boot = _process_start(pid)
    record: dict[str, object] = {"pid": pid, "host": socket.gethostname()}
    if start is not None:
        record.update(start=start, boot=boot)
    if pid == os.getpid():
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        prog = "fcnlib" if prog in ("__main__.py", "fcnlib") else prog
        record["command"] = " ".join([prog, *sys.argv[1:]])[:300]
        record["time"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return record


def _read_lock(lock: Path) -> dict[str, Any] | None:
    """The lock's record (JSON, or the older ``pid host`` line); None if unreadable."""
    try:
        text = lock.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        parts = text.split()
        record = {"pid": parts[0], "host": parts[1]} if len(parts) >= 2 else None
    if not isinstance(record, dict) or "host" not in record:
        return None
    try:
        pid = record["pid"]
        record["pid"] = int(pid) if not isinstance(pid, (bool, float)) else None
    except (KeyError, ValueError, TypeError):
        return None
    return record if record["pid"] is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputFolder:
    """``with OutputFolder(path, resume=..., overwrite=...) as out:`` takes ``path`` for one run.

    ``owner=False`` (the non-zero ranks under ``torchrun``) takes no lock and checks nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
        owner: bool = True,
    ) -> None:
        self.path = Path(path)
        self.resume, self.overwrite, self.owner = resume, overwrite, owner
        self._locked = False
        self._created = False

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    def __enter__(self):
        if not self.owner:
            return self
        try:
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputFolderError(
                f"cannot create output folder {self.path}: {exc.strerror or exc} (`out`)"
            ) from None
        try:
            self._take_lock()
        except BaseException:
            self._remove_if_unused()
            raise
        try:
            remove_stale_temporaries(self.path)
            self._check_contents()
        except BaseException:
            self._release()
            self._remove_if_unused()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._release()
        if exc_type is not None:
            self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        if self._created:
            try:
                self.path.rmdir()  # only if empty: nothing the run wrote is removed
            except OSError:
                pass

    def _take_lock(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if self._holder_alive():
                    raise
                self.lock.unlink(missing_ok=True)  # left by a run that no longer exists
                continue
            except OSError as exc:
                raise OutputFolderError(
                    f"cannot write into output folder {self.path}: {exc.strerror or exc} (`out`)"
                ) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(_lock_record(os.getpid())) + "\n")
            except OSError as exc:  # a full disk: no empty lock is left behind
                self.lock.unlink(missing_ok=True)
                raise OutputFolderError(
                    f"cannot write the lock {self.lock}: {exc.strerror or exc} (`out`)"
                ) from None
            self._locked = True
            return
        raise OutputFolderError(
            f"cannot take the lock {self.lock}; remove it if no run is using {self.path}"
        )

    def _holder_alive(self) -> bool:
        """False for a stale lock (taken over); raises for a lock of a run that may be alive."""
        held = _read_lock(self.lock)
        if held is None:
            return False  # unreadable or half-written: treat as stale
        pid, host = held["pid"], held.get("host")
        if host != socket.gethostname():
            raise OutputFolderError(
                f"output folder {self.path} is in use by a run on host {host} (pid {pid}); wait "
                f"for it; {self.lock} is safe to delete only once that run has ended"
            )
        if not 0 < pid <= _pid_max() or pid == os.getpid() or not _alive(pid):
            return False  # impossible, our own, or ended
        now = _lock_record(pid)
        if "start" in held and now.get("start") is not None:
            if (held["start"], held.get("boot")) != (now["start"], now.get("boot")):
                return False  # the pid now belongs to another process
            raise OutputFolderError(
                f"another fcnlib run (pid {pid}, started {held.get('time', '?')}: "
                f"{held.get('command', '?')}) is writing into {self.path}; wait for it to finish "
                f"or choose another `out` ({self.lock} is safe to delete only once it has ended)"
            )
        raise OutputFolderError(
            f"another fcnlib run (pid {pid}) may be writing into {self.path}; wait for it or "
            f"choose another `out`; if pid {pid} is not an fcnlib run (a reused pid: see "
            f"`ps -p {pid} -o args`), delete {self.lock}"
        )

    def _release(self) -> None:
        if self._locked:
            self.lock.unlink(missing_ok=True)
            self._locked = False

    def _check_contents(self) -> None:
        existing = sorted(
            p.name
            for p in self.path.iterdir()
            if p.name != LOCK_NAME and not p.name.endswith(TMP_SUFFIX)
        )
        if self.resume:
            if not self.last.is_file():
                raise OutputFolderError(
                    f"nothing to resume: {self.last} does not exist (the run stopped before its first epoch "
                    "was saved); start again with `overwrite`"
                )
            return
        if existing and not self.overwrite:
            shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
            raise OutputFolderError(
                f"output folder {self.path} is not empty ({shown}); continue its run with `resume`, replace it "
                "with `overwrite`, or choose another `out`"
            )
        if self.overwrite:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
