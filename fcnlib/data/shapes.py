"""Synthetic shapes: procedurally drawn, deterministic images for runs without any data files."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset

from fcnlib.constants import IGNORE_INDEX
from fcnlib.transforms import eval_transforms

from .classes import SHAPES_CLASSES
from .errors import DatasetError
from .pairs import PairTransform

__all__ = ["SyntheticShapes"]

# Saturated base colour and stripe texture (period in px, angle in degrees) for each shape class.
_SHAPE_STYLE: dict[int, tuple[tuple[int, int, int], float, float]] = {
    1: ((215, 45, 45), 5.0, 0.0),
    2: ((45, 190, 70), 7.0, 45.0),
    3: ((50, 85, 225), 4.0, 90.0),
    4: ((230, 205, 45), 9.0, 135.0),
    5: ((200, 60, 205), 6.0, 20.0),
    6: ((45, 200, 205), 3.0, 70.0),
    7: ((240, 135, 30), 8.0, 160.0),
}


def _rotated(
    points: np.ndarray, angle: float, centre: tuple[float, float]
) -> list[tuple[float, float]]:
    cos, sin = math.cos(angle), math.sin(angle)
    x = points[:, 0] * cos - points[:, 1] * sin + centre[0]
    y = points[:, 0] * sin + points[:, 1] * cos + centre[1]
    return list(zip(x.tolist(), y.tolist()))


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape_class: int,
    centre: tuple[float, float],
    size: float,
    rng: np.random.Generator,
    fill: int,
) -> None:
    """Draw shape ``shape_class`` (index into SHAPES_CLASSES) of diameter about ``size`` px."""
    radius = size / 2
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = centre
    name = SHAPES_CLASSES[shape_class]
    if name == "rectangle":
        half_w, half_h = radius, radius * rng.uniform(0.4, 1.0)
        corners = np.array(
            [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
        )
        draw.polygon(_rotated(corners, angle, centre), fill=fill)
    elif name in ("disc", "ring"):
        ry = radius * rng.uniform(0.75, 1.0)
        box = [cx - radius, cy - ry, cx + radius, cy + ry]
        if name == "disc":
            draw.ellipse(box, fill=fill)
        else:
            draw.ellipse(box, outline=fill, width=max(1, round(size * rng.uniform(0.1, 0.22))))
    elif name == "triangle":
        angles = np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
        radii = radius * rng.uniform(0.8, 1.0, 3)
        draw.polygon(
            _rotated(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), angle, centre),
            fill=fill,
        )
    elif name == "cross":
        arm = radius * rng.uniform(0.2, 0.35)
        for bar in (np.array([[-radius, -arm], [radius, -arm], [radius, arm], [-radius, arm]]),
                    np.array([[-arm, -radius], [arm, -radius], [arm, radius], [-arm, radius]])):  # fmt: skip
            draw.polygon(_rotated(bar, angle, centre), fill=fill)
    elif name == "diamond":
        half_h = radius * rng.uniform(0.45, 0.8)
        draw.polygon(
            _rotated(
                np.array([[-radius, 0], [0, -half_h], [radius, 0], [0, half_h]]), angle, centre
            ),
            fill=fill,
        )
    elif name == "star":
        angles = np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
        draw.polygon(
            _rotated(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1), angle, centre),
            fill=fill,
        )
    else:  # pragma: no cover - guarded by num_classes validation
        raise ValueError(f"no drawing for class {name!r}")


class SyntheticShapes(Dataset):
    """Procedurally drawn shapes on textured backgrounds: a tiny, deterministic segmentation set.

    Item ``i`` depends only on ``(seed, i)``: image height and width are drawn from
    ``[min_size, max_size]`` (``(height, width)`` in px, inclusive, odd values included); the
    background (class 0) is a noisy gradient with stripes; 1 to 6 shapes of classes
    ``1..num_classes-1`` (see :data:`SHAPES_CLASSES`), from a few pixels up to the image size, each
    with a jittered class colour and class-specific stripe texture, are drawn largest first. With
    ``border=True`` a 1-3 px band of 255 (ignore) surrounds each shape, like VOC's void border.

    ``dataset[i]`` returns ``transforms(image, mask)`` (default :func:`eval_transforms`): float32
    ``3 x H x W`` and int64 ``H x W``. :meth:`raw` gives the PIL image and uint8 mask.
    """

    def __init__(
        self,
        num_images: int = 64,
        *,
        num_classes: int = 6,
        min_size: tuple[int, int] = (63, 63),
        max_size: tuple[int, int] = (161, 193),
        seed: int = 0,
        transforms: PairTransform | None = None,
        border: bool = True,
    ) -> None:
        if num_images < 0:
            raise DatasetError(f"num_images must be >= 0, got {num_images}")
        if not 2 <= num_classes <= len(SHAPES_CLASSES):
            raise DatasetError(
                f"num_classes for shapes must lie in 2..{len(SHAPES_CLASSES)}, got {num_classes}"
            )
        if seed < 0:
            raise DatasetError(f"seed must be >= 0, got {seed}")
        min_h, min_w = (int(v) for v in min_size)
        max_h, max_w = (int(v) for v in max_size)
        if not (8 <= min_h <= max_h and 8 <= min_w <= max_w):
            raise DatasetError(
                f"need 8 <= min_size <= max_size (height, width), got {min_size} and {max_size}"
            )
        self.num_images = int(num_images)
        self.num_classes = int(num_classes)
        self.classes: list[str] = list(SHAPES_CLASSES[:num_classes])
        self.min_size = (min_h, min_w)
        self.max_size = (max_h, max_w)
        self.seed = int(seed)
        self.border = border
        self.transforms: PairTransform = transforms if transforms is not None else eval_transforms()

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw(index)
        return self.transforms(image, torch.from_numpy(mask))

    def raw(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """Item ``index`` before transforms: PIL RGB image and uint8 ``H x W`` mask (255 = ignore)."""
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index %= self.num_images
        rng = np.random.default_rng([self.seed, index])
        height = int(rng.integers(self.min_size[0], self.max_size[0] + 1))
        width = int(rng.integers(self.min_size[1], self.max_size[1] + 1))
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        pixels = self._background(rng, xs, ys)

        # Object j (1-based, drawn largest first so small shapes stay visible) is painted with
        # value j into an "order" map; the label of each pixel is the class of its top object.
        num_objects = int(rng.integers(1, 7))
        low, high = math.log(3.0), math.log(1.05 * min(height, width))
        sizes = np.sort(np.exp(rng.uniform(low, high, num_objects)))[::-1]
        object_classes = rng.integers(1, self.num_classes, num_objects)
        order_image = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(order_image)
        for j, (size, shape_class) in enumerate(zip(sizes, object_classes), start=1):
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            _draw_shape(draw, int(shape_class), centre, float(size), rng, fill=j)
        order = np.asarray(order_image)

        for j, shape_class in enumerate(object_classes, start=1):
            inside = order == j
            base, period, degrees = _SHAPE_STYLE[int(shape_class)]
            colour = np.clip(np.array(base, np.float32) + rng.uniform(-35, 35, 3), 0, 255)
            theta = math.radians(degrees)
            phase = (xs[inside] * math.cos(theta) + ys[inside] * math.sin(theta)) * (
                2 * math.pi / period
            )
            shade = 1.0 + 0.18 * np.sin(phase + rng.uniform(0, 2 * math.pi))
            pixels[inside] = colour * shade[:, None]
        pixels += rng.normal(0.0, 9.0, pixels.shape).astype(np.float32)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

        label_of_object = np.concatenate([[0], object_classes]).astype(np.uint8)
        mask = label_of_object[order]
        if self.border:
            # Pixels within `width` px of a shape drawn above them become void (255).
            band = int(rng.integers(1, 4))
            nearest_above = np.asarray(order_image.filter(ImageFilter.MaxFilter(2 * band + 1)))
            mask[nearest_above > order] = IGNORE_INDEX
        return image, mask

    @staticmethod
    def _background(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Muted colour + linear gradient + stripes + smooth blotches, float32 ``H x W x 3``."""
        height, width = xs.shape
        grey = rng.uniform(70, 180)
        base = grey + rng.uniform(-22, 22, 3)
        direction = rng.uniform(0, 2 * math.pi)
        ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(height, width)
        gradient = rng.uniform(-60, 60) * ramp
        stripe_angle = rng.uniform(0, math.pi)
        stripes = rng.uniform(0, 22) * np.sin(
            (xs * math.cos(stripe_angle) + ys * math.sin(stripe_angle))
            * (2 * math.pi / rng.uniform(4, 30))
        )
        coarse = rng.uniform(-1, 1, (4, 5)).astype(np.float32)
        blotches = (
            np.asarray(Image.fromarray(coarse, "F").resize((width, height), Image.BILINEAR)) * 25
        )
        shade = (gradient + stripes + blotches)[..., None]
        return (base.astype(np.float32) + shade).astype(np.float32)
