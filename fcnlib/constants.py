"""Constants shared across fcnlib. Imports nothing of fcnlib."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD"]

#: Label value that the loss and the metrics skip (VOC's "void" border; CamVid's "Unlabelled").
IGNORE_INDEX = 255

#: ImageNet channel statistics (RGB, images scaled to [0, 1]) used to normalise every input.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: The largest network input, in pixels, that fcnlib accepts by default (about 100 MP): reading a
#: photo, a training crop, and an image resized for evaluation. A forward pass needs about 50
#: bytes per pixel (a 12000 x 12000 PNG of 17 KB would take 7 GB). ``fcnlib predict
#: --max-image-pixels N`` raises it for prediction.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
