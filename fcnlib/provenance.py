"""Provenance of a result: the command, git commit and dirty flag, machine and versions.

Every result file that fcnlib writes (``fcnlib eval --out``, ``fcnlib bench``) records
:func:`run_info`. Imports nothing of fcnlib.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["git_state", "run_info"]


def git_state(folder: str | os.PathLike | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding ``folder`` (default: fcnlib's own folder).

    ``dirty`` is whether tracked files differ from the commit (untracked files do not count).
    Outside a checkout (an installed wheel, a copy without ``.git``) both come from the
    ``FCNLIB_COMMIT`` environment variable (``<sha>`` or ``<sha>-dirty``) if it is set, else ``None``.
    """
    cwd = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                check=False,
                capture_output=True,
                text=True,
                timeout=5,
                cwd=cwd,
            ).stdout.strip()
            or None
        )
        dirty = (
            bool(
                subprocess.run(
                    ["git", "status", "--porcelain", "--untracked-files=no"],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=5,
                    cwd=cwd,
                ).stdout.strip()
            )
            if commit
            else None
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    if commit is None and os.environ.get(
        "FCNLIB_COMMIT"
    ):  # a copy without .git (e.g. a lent GPU machine)
        given = os.environ["FCNLIB_COMMIT"]
        return given.removesuffix("-dirty"), given.endswith("-dirty")
    return commit, dirty


def run_info(argv: list[str] | None = None) -> dict[str, Any]:
    """Provenance of a result: command line (``argv``, default ``sys.argv[1:]``), git commit, machine, versions."""
    import torch

    commit, dirty = git_state()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "command": " ".join(["fcnlib", *(sys.argv[1:] if argv is None else argv)]),
        "commit": commit,
        "dirty": dirty,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpu": gpu,
        },
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
