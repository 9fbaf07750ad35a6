"""A training run's output folder, owned by one run at a time.

The run that trains into a folder holds ``.fcnlib.lock`` (its pid and host) for its whole life; a
second run into the same folder is refused at start. A lock left by a run that no longer exists
(killed, crashed) is taken over. Temporary files of interrupted saves are removed on entry. A
folder that the run created and that is still empty when it fails is removed again.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import FcnlibError
from .fileio import TMP_SUFFIX, remove_stale_temporaries

__all__ = ["LOCK_NAME", "RUN_FILES", "OutputFolder", "OutputFolderError"]

LOCK_NAME = ".fcnlib.lock"
#: What a run writes; ``--overwrite`` removes these before the new run starts.
RUN_FILES = ("last.pt", "best.pt", "history.csv", "curves.png")


class OutputFolderError(FcnlibError, FileExistsError):
    """The output folder is busy, already holds a run, or cannot be written."""


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
        self._take_lock()
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
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self._locked = True
            return
        raise OutputFolderError(
            f"cannot take the lock {self.lock}; remove it if no run is using {self.path}"
        )

    def _holder_alive(self) -> bool:
        try:
            pid_text, host = self.lock.read_text().split()[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            return False  # unreadable or half-written: treat as stale
        if host != socket.gethostname():
            raise OutputFolderError(
                f"output folder {self.path} is in use by a run on host {host} (pid {pid}); "
                f"wait for it, or remove {self.lock} if that run is gone"
            )
        if _alive(pid) and pid != os.getpid():
            raise OutputFolderError(
                f"another fcnlib run (pid {pid}) is writing into {self.path}; wait for it "
                "to finish or choose another `out`"
            )
        return False

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
