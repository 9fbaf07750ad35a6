"""Constants shared across fcnlib. Imports nothing of fcnlib."""

from __future__ import annotations

__all__ = ["IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD"]

#: Label value that the loss and the metrics skip (VOC's "void" border; CamVid's "Unlabelled").
IGNORE_INDEX = 255

#: ImageNet channel statistics (RGB, images scaled to [0, 1]) used to normalise every input.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
