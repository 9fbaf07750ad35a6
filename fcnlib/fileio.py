"""Atomic file writes: a temporary file in the target folder, fsync, then ``os.replace``.

Readers see the old file or the new one, never a truncated one, whatever moment the process is
killed at. New files get the usual permissions (0666 minus the umask), not the temporary file's
0600. A symbolic link is followed (its target is replaced, the link kept); a target that exists
and is not a regular file (a folder, a device such as /dev/null, a pipe) is refused, since a
rename would replace it. A full disk (or quota) during a write is one ``OSError`` (ENOSPC) that names the file and says
that the previous file is intact, whatever layer (``torch.save``'s zip writer) hit it first.
Imports nothing of fcnlib.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = [
    "TMP_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_temporaries",
    "write_target",
]

#: Suffix of the temporary files; a leftover one is from a killed process.
TMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` replaces: symbolic links followed; raises ``OSError`` (naming it)
    if it exists and is not a regular file."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return target  # not there yet (creating its folder reports what is in the way)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a folder, not a file to write", str(path))
    if not stat.S_ISREG(mode):
        raise OSError(
            errno.EINVAL,
            "Not a regular file (a device, pipe or socket; give a file path)",
            str(path),
        )
    return target


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(binary file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = write_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if _disk_full(exc):  # e.g. torch's "unexpected pos" over the OSError it hit
            kept = "the previous file is intact" if path.exists() else "nothing was written"
            raise OSError(
                errno.ENOSPC, f"no space left on device while writing it ({kept})", str(path)
            ) from None
        raise


def _disk_full(exc: BaseException | None) -> bool:
    """True if ``exc`` or an exception it arose from is "no space left" (or over the quota)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(text.encode("utf-8"), path)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a killed writer left in ``folder``; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
