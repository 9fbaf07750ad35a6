"""fcnlib: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell 2015)."""

__version__ = "0.1.0"
