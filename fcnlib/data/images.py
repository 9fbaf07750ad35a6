"""Reading image and label files, with one-line errors that name the file.

Two kinds of reading share this module:

- photos to segment, :func:`load_image`: a path, PIL image or numpy array becomes an upright 8-bit
  RGB PIL image (EXIF orientation, 16-bit, alpha over white); a file that declares more than
  ``max_image_pixels`` pixels is refused from its header, before anything is decoded. Errors are
  :class:`ImageError`.
- dataset pairs, :func:`read_image`, :func:`read_mask` and :func:`check_labels`: the stored pixels
  as they are (no EXIF rotation, so an image stays aligned with its mask). Errors are
  :class:`DatasetError`.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fcnlib.constants import DEFAULT_MAX_IMAGE_PIXELS, IGNORE_INDEX
from fcnlib.errors import one_line

from .errors import DatasetError, ImageError, preview

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_SUFFIXES",
    "ImageSource",
    "check_image_size",
    "check_labels",
    "load_image",
    "probe_image",
    "read_image",
    "read_mask",
    "require_loadmat",
]


ImageSource = str | os.PathLike | Image.Image | np.ndarray

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_PIL_READ_ERRORS = (
    UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError,
)  # fmt: skip
_ORIENTATION = 0x0112
_BITS_PER_SAMPLE = 258
_PIL_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# The pixel limit
# --------------------------------------------------------------------------------------------------


def _check_limit(max_image_pixels: int | None) -> None:
    if max_image_pixels is None:
        return
    if (
        isinstance(max_image_pixels, bool)
        or not isinstance(max_image_pixels, int)
        or max_image_pixels < 1
    ):
        raise ValueError(
            f"max_image_pixels must be a positive integer or None, got {max_image_pixels!r}"
        )


def check_image_size(width: int, height: int, name: str, max_image_pixels: int | None) -> None:
    """Raise :class:`ImageError` if ``width * height`` exceeds ``max_image_pixels`` (None: no limit)."""
    _check_limit(max_image_pixels)
    if max_image_pixels is None:
        return
    pixels = int(width) * int(height)
    if pixels > max_image_pixels:
        raise ImageError(
            f"{name}: {width} x {height} px ({pixels / 1e6:.3g} MP) is more than the limit of "
            f"{max_image_pixels:,} pixels; raise it with `max_image_pixels` "
            "if the machine has the memory (about 50 bytes per pixel)"
        )


@contextmanager
def _declared_size_checked_here() -> Iterator[None]:
    """Pillow's own decompression-bomb limit off while this module opens a file: the declared size
    is checked against ``max_image_pixels`` instead (a lock serialises the change of the global)."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


# --------------------------------------------------------------------------------------------------
# Photos: any mode -> upright 8-bit RGB
# --------------------------------------------------------------------------------------------------


def _bit_depth(im: Image.Image, data: np.ndarray) -> int:
    """Bits per sample of a 16/32-bit grayscale image: from the TIFF tag if any, else the container."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None and _BITS_PER_SAMPLE in tags:
        bps = tags[_BITS_PER_SAMPLE]
        bps = int(bps[0] if isinstance(bps, (tuple, list)) else bps)
        if 8 < bps <= 32:
            return bps
    if im.mode.startswith("I;16"):
        return 16
    return 16 if data.size == 0 or int(data.max()) < 2**16 else 32


def _high_bits_to_uint8(data: np.ndarray, bits: int) -> np.ndarray:
    """Integer samples of ``bits`` significant bits -> uint8 by keeping the top 8 bits (``x >> (bits-8)``)."""
    data = np.clip(data.astype(np.int64), 0, 2**bits - 1)
    return (data >> (bits - 8)).astype(np.uint8)


def _float_to_uint8(data: np.ndarray, name: str) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    if data.size and not np.isfinite(data).all():
        raise ImageError(f"{name}: float image contains NaN or infinite values")
    if data.size and (data.min() < -1e-6 or data.max() > 1 + 1e-6):
        raise ImageError(
            f"{name}: float image values must lie in [0, 1], got {data.min():.4g}..{data.max():.4g} "
            "(divide 0..255 data by 255)"
        )
    return np.clip(np.floor(data * 255 + 0.5), 0, 255).astype(np.uint8)


def _to_rgb(im: Image.Image, name: str, bits: int | None = None) -> Image.Image:
    """Any PIL mode -> 'RGB'. Alpha (and palette/tRNS transparency) is composited over white."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode == "I" or mode.startswith("I;"):  # 16/32-bit integer grayscale
        data = np.asarray(im)
        gray = _high_bits_to_uint8(data, bits or _bit_depth(im, data))
        return Image.fromarray(gray).convert("RGB")
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(im), name)).convert("RGB")
    try:
        if mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
            rgba = (im.convert("LA") if mode == "La" else im).convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im.convert("RGB")  # '1', 'L', 'P', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX', ...
    except (ValueError, OSError) as exc:
        raise ImageError(f"{name}: cannot convert mode {mode!r} to RGB: {one_line(exc)}") from None


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (``ImageOps.exif_transpose``) only when it is not 1 (avoids a copy)."""
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF is treated as "no orientation"
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(im)
    return im


def _array_to_image(arr: np.ndarray) -> Image.Image:
    name = f"array{tuple(arr.shape)}"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageError(f"{name}: expected an H x W, H x W x 3 (RGB) or H x W x 4 (RGBA) array")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: empty image")
    if arr.dtype == np.uint8:
        data = arr
    elif arr.dtype == np.bool_:
        data = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        data = _high_bits_to_uint8(arr, 16)
    elif np.issubdtype(arr.dtype, np.floating):
        data = _float_to_uint8(arr, name)
    else:
        raise ImageError(
            f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])"
        )
    data = np.ascontiguousarray(data)
    if data.ndim == 3 and data.shape[2] == 2:  # gray + alpha: build 'LA' from its bands
        im = Image.merge(
            "LA", [Image.fromarray(np.ascontiguousarray(data[:, :, i])) for i in (0, 1)]
        )
    else:
        im = Image.fromarray(data)  # 'L', 'RGB' or 'RGBA'
    return _to_rgb(im, name)


def _checked_path(source: str | os.PathLike) -> tuple[str, str]:
    """``(path, one-line name)`` of an existing, non-empty file; :class:`ImageError` otherwise."""
    path = os.fspath(source)
    name = one_line(path)
    if not os.path.exists(path):
        raise ImageError(f"{name}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{name}: is a directory, not an image file")
    if os.path.getsize(path) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    return path, name


def _open_error(name: str, exc: Exception) -> ImageError:
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, UnidentifiedImageError):
        return ImageError(f"{name}: not an image file, or a format PIL cannot read")
    return ImageError(f"{name}: corrupt or truncated image ({type(exc).__name__}: {one_line(exc)})")


@contextmanager
def _opened(
    source: str | os.PathLike, max_image_pixels: int | None
) -> Iterator[tuple[Image.Image, str]]:
    """The opened (not yet decoded) image file and its one-line name, its declared size checked;
    any failure inside the block, decoding included, becomes one :class:`ImageError`."""
    _check_limit(max_image_pixels)
    path, name = _checked_path(source)
    with _declared_size_checked_here():
        try:
            with Image.open(path) as im:
                check_image_size(im.width, im.height, name, max_image_pixels)
                yield im, name
        except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, EOFError, zlib.error, ...
            raise _open_error(name, exc) from None


def probe_image(
    source: str | os.PathLike, max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> tuple[int, int]:
    """``(width, height)`` from a file's header, nothing decoded; the checks of :func:`load_image`
    that need no decoding (missing, empty, not an image, above ``max_image_pixels``)."""
    with _opened(source, max_image_pixels) as (im, _):
        return im.width, im.height


def load_image(
    source: ImageSource, max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
) -> Image.Image:
    """Load ``source`` as an upright 8-bit ``'RGB'`` PIL image.

    ``source``: a path (str / PathLike), a PIL image, or a numpy array ``H x W`` (gray),
    ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA) of dtype ``uint8``, ``uint16`` or float in ``[0, 1]``.

    - EXIF orientation (tag 0x0112) is applied (``PIL.ImageOps.exif_transpose``), so the result has
      the size a viewer shows; an RGB PIL image without orientation is returned as is (no copy).
    - 16-bit grayscale (``'I;16*'``, and ``'I'``) keeps its top 8 significant bits: ``x >> (bits - 8)``
      where ``bits`` is the file's bits per sample when the format records it (TIFF, e.g. 12),
      else 16 (32 for ``'I'`` data beyond 65535); uint16 arrays use 16. Never clipped at 255.
    - Alpha (RGBA, LA, PA, palette or tRNS transparency) is composited over **white**; CMYK,
      palette ``'P'``, ``'1'``, ``'L'``, YCbCr, ... are converted with PIL.
    - More than ``max_image_pixels`` pixels (default :data:`DEFAULT_MAX_IMAGE_PIXELS`; None: no
      limit) raises :class:`ImageError`; for a file this is decided from its header, before
      decoding. Pillow's own decompression-bomb limit is replaced by this one.

    Raises :class:`ImageError` (a ``ValueError``) with a one-line message naming the file for a
    missing, empty (0 bytes), non-image, truncated, corrupt or too large file; ``TypeError`` for
    other inputs.
    """
    if isinstance(source, Image.Image):
        name = f"<PIL {source.mode} image>"
        check_image_size(source.width, source.height, name, max_image_pixels)
        return _to_rgb(_upright(source), name)
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            check_image_size(
                source.shape[1], source.shape[0], f"array{tuple(source.shape)}", max_image_pixels
            )
        return _array_to_image(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(source).__name__}")
    with _opened(source, max_image_pixels) as (im, name):
        im.load()  # decode now: truncated data raises here, inside the error mapping
        bits = _bit_depth(im, np.asarray(im)) if im.mode.startswith("I") else None
        return _to_rgb(_upright(im), name, bits)


# --------------------------------------------------------------------------------------------------
# Dataset files: stored pixels, DatasetError
# --------------------------------------------------------------------------------------------------


def _check_nonempty_file(path: Path, kind: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DatasetError(f"{kind} file not found: {path}") from None
    if size == 0:
        raise DatasetError(f"{kind} file is empty (0 bytes): {path}")


def read_image(path: Path) -> Image.Image:
    """A dataset image as PIL RGB, fully decoded (truncated files fail here, not later)."""
    _check_nonempty_file(path, "image")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except _PIL_READ_ERRORS as error:
        raise DatasetError(f"cannot read image {path}: {error}") from None


def require_loadmat() -> Callable[..., dict]:
    """``scipy.io.loadmat`` (SBD's ``.mat`` masks need it), or a :class:`DatasetError` saying so."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError("reading SBD .mat masks needs scipy: pip install scipy") from None
    return loadmat


def _read_mat_mask(path: Path) -> np.ndarray:
    loadmat = require_loadmat()
    try:
        segmentation = loadmat(str(path))["GTcls"][0]["Segmentation"][0]
    except (KeyError, IndexError, ValueError, TypeError):
        raise DatasetError(
            f"not an SBD segmentation .mat file (no GTcls.Segmentation): {path}"
        ) from None
    except Exception as error:  # noqa: BLE001 - scipy raises assorted errors on corrupt files
        raise DatasetError(f"cannot read mask {path}: {error}") from None
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 2 or segmentation.min() < 0 or segmentation.max() > 255:
        raise DatasetError(f"SBD mask is not a 2-D array of labels 0..255: {path}")
    return segmentation.astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """A label mask as uint8 ``H x W``: palette ('P') PNGs give the palette index, 'L' PNGs the grey
    value; SBD ``.mat`` files give ``GTcls.Segmentation``."""
    _check_nonempty_file(path, "mask")
    if path.suffix.lower() == ".mat":
        return _read_mat_mask(path)
    try:
        with Image.open(path) as mask:
            if mask.mode not in ("P", "L"):
                raise DatasetError(
                    f"mask must be an 8-bit palette ('P') or greyscale ('L') PNG, got mode '{mask.mode}': {path}"
                )
            return np.array(mask, dtype=np.uint8)
    except _PIL_READ_ERRORS as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"cannot read mask {path}: {error}") from None


def check_labels(mask: np.ndarray, num_classes: int, path: Path) -> None:
    """Raise :class:`DatasetError` for label values outside ``0..num_classes-1`` other than 255."""
    counts = np.bincount(mask.ravel(), minlength=256)
    bad = [int(v) for v in np.flatnonzero(counts[num_classes:IGNORE_INDEX]) + num_classes]
    if bad:
        raise DatasetError(
            f"mask has label values {preview([str(v) for v in bad], 10)} outside 0..{num_classes - 1} "
            f"(255 = ignore): {path}"
        )
