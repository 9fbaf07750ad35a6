"""Class names and colour palettes of the datasets, and the check of a user-given palette.

The one place for names and colours: :data:`VOC_CLASSES` with :func:`voc_palette` (the VOCdevkit
colour map), :data:`CAMVID_CLASSES` with :data:`CAMVID_PALETTE` (the SegNet tutorial's
``Scripts/camvid11.png``), :data:`SHAPES_CLASSES` (drawn with the VOC colours). Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "CAMVID_UNLABELLED",
    "SHAPES_CLASSES",
    "VOC_CLASSES",
    "Color",
    "camvid_palette",
    "flat_palette",
    "palette_colors",
    "palette_for_classes",
    "voc_palette",
]

Color = tuple[int, int, int]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)  # fmt: skip

#: Label value of CamVid's "Unlabelled" pixels in the SegNet tutorial's label PNGs (read as 255).
CAMVID_UNLABELLED = 11

#: Colours of CamVid labels 0..11 (11 = Unlabelled): entries 0..11 of the SegNet tutorial's
#: ``Scripts/camvid11.png`` palette (a 256 x 1 RGBA strip, opaque; every later entry is black).
CAMVID_PALETTE: tuple[Color, ...] = (
    (128, 128, 128),  # Sky
    (128, 0, 0),  # Building
    (192, 192, 128),  # Pole
    (128, 64, 128),  # Road
    (60, 40, 222),  # Pavement
    (128, 128, 0),  # Tree
    (192, 128, 128),  # SignSymbol
    (64, 64, 128),  # Fence
    (64, 0, 128),  # Car
    (64, 64, 0),  # Pedestrian
    (0, 128, 192),  # Bicyclist
    (0, 0, 0),  # Unlabelled
)

SHAPES_CLASSES: tuple[str, ...] = (
    "background", "rectangle", "disc", "triangle", "ring", "cross", "diamond", "star",
)  # fmt: skip


def voc_palette() -> list[Color]:
    """The standard PASCAL VOC colour map: 256 ``(r, g, b)`` entries, index = label.

    Bit ``3*j + c`` of the label sets bit ``7 - j`` of channel ``c`` (the VOCdevkit ``labelcolormap``).
    """
    palette = []
    for label in range(256):
        red = green = blue = 0
        bits = label
        for j in range(8):
            red |= ((bits >> 0) & 1) << (7 - j)
            green |= ((bits >> 1) & 1) << (7 - j)
            blue |= ((bits >> 2) & 1) << (7 - j)
            bits >>= 3
        palette.append((red, green, blue))
    return palette


def camvid_palette() -> list[Color]:
    """:data:`CAMVID_PALETTE` padded with black to 256 entries, index = label."""
    return list(CAMVID_PALETTE) + [(0, 0, 0)] * (256 - len(CAMVID_PALETTE))


def palette_for_classes(classes: Sequence[str]) -> list[Color]:
    """The 256-entry palette that goes with ``classes``: CamVid's for :data:`CAMVID_CLASSES`, else VOC's."""
    return camvid_palette() if tuple(classes) == CAMVID_CLASSES else voc_palette()


def palette_colors(palette: Sequence[Any]) -> list[Color]:
    """Check a user palette: ``[(r, g, b), ...]`` or flat ``[r, g, b, ...]`` -> list of ``(r, g, b)``.

    At most 256 colours with integer values in 0..255; raises ``ValueError`` otherwise.
    """
    items = list(palette)
    if items and not hasattr(items[0], "__len__"):  # flat: numbers, not (r, g, b) sequences
        if len(items) % 3:
            raise ValueError(f"a flat palette needs a multiple of 3 values, got {len(items)}")
        items = [items[i : i + 3] for i in range(0, len(items), 3)]
    colors = [tuple(int(v) for v in c) for c in items]
    if len(colors) > 256 or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
        raise ValueError("palette must be up to 256 (r, g, b) colours with values in 0..255")
    return colors  # type: ignore[return-value]


def flat_palette(palette: Sequence[Any]) -> list[int]:
    """A checked palette as PIL's flat list of 768 ints ``[r0, g0, b0, r1, ...]`` (padded with 0)."""
    flat = [v for c in palette_colors(palette) for v in c]
    return flat + [0] * (768 - len(flat))
