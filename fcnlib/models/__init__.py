"""VGG16 backbones, the Fully Convolutional Networks FCN-32s / 16s / 8s, and shipped weights.

``vgg`` builds VGG16 as torchvision does; ``heads`` holds the classifier heads and upsamplers;
``fcn`` the networks and their builders; ``weights`` the trained weights with their cards.
This package imports nothing of fcnlib but the ground-floor :mod:`fcnlib.errors`.
"""

from .fcn import (
    FCN,
    HEADS,
    MIN_INPUT_SIZE,
    MODEL_NAMES,
    STRIDES,
    UPSAMPLES,
    Head,
    ModelName,
    build_model,
    fcn8s,
    fcn16s,
    fcn32s,
    grow,
)
from .heads import FCNHead, PaperHead, Upsample, Upsampler, bilinear_kernel
from .vgg import (
    BackboneWeightsError,
    cfgs,
    convolutionalize,
    count_parameters,
    load_vgg16_state_dict,
    make_layers,
    output_stride_sizes,
    scaled,
)
from .weights import PRETRAINED_DIR, Weights, WeightsError, get_weights, list_weights

__all__ = [
    "FCN",
    "fcn32s",
    "fcn16s",
    "fcn8s",
    "build_model",
    "grow",
    "STRIDES",
    "MODEL_NAMES",
    "HEADS",
    "UPSAMPLES",
    "MIN_INPUT_SIZE",
    "Head",
    "ModelName",
    "Upsample",
    "FCNHead",
    "PaperHead",
    "Upsampler",
    "bilinear_kernel",
    "cfgs",
    "make_layers",
    "scaled",
    "convolutionalize",
    "load_vgg16_state_dict",
    "count_parameters",
    "output_stride_sizes",
    "BackboneWeightsError",
    "Weights",
    "WeightsError",
    "get_weights",
    "list_weights",
    "PRETRAINED_DIR",
]
