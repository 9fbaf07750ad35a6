"""The base error of fcnlib and the one-line message helper. Imports nothing of fcnlib.

Every failure a user can cause (a bad setting, a missing file, a broken image, a checkpoint that
does not fit) raises a subclass of :class:`FcnlibError`; the command line prints it as one line,
``fcnlib: error: <message>``, and exits with status 2.
"""

from __future__ import annotations

__all__ = ["FcnlibError", "one_line"]


def one_line(message: object) -> str:
    """``message`` as text with every run of whitespace (newlines included) collapsed to one space.

    An error re-raised from a DataLoader worker carries the worker's whole traceback; only its
    last line, the original message, is kept.
    """
    text = str(message)
    if "DataLoader worker process" in text and "Traceback" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1].strip()
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split())


class FcnlibError(Exception):
    """Base class of fcnlib's user-facing errors; the message is always one line."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(message))
