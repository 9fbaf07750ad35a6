"""The data package's errors, both one-line :class:`fcnlib.errors.FcnlibError` and ``ValueError``."""

from __future__ import annotations

from collections.abc import Sequence

from fcnlib.errors import FcnlibError

__all__ = ["DatasetError", "ImageError", "preview"]


class DatasetError(FcnlibError, ValueError):
    """A dataset is missing, incomplete or holds a bad file. The message is always one line."""


class ImageError(FcnlibError, ValueError):
    """An image that cannot be read or converted; the message is one line and names the source."""


def preview(items: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` items joined by commas, with ``...`` when there are more."""
    shown = ", ".join(items[:limit])
    return shown + (", ..." if len(items) > limit else "")
