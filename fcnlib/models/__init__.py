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
    ModelError,
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
    "HEADS",
    "MIN_INPUT_SIZE",
    "MODEL_NAMES",
    "PRETRAINED_DIR",
    "STRIDES",
    "UPSAMPLES",
    "BackboneWeightsError",
    "FCNHead",
    "Head",
    "ModelError",
    "ModelName",
    "PaperHead",
    "Upsample",
    "Upsampler",
    "Weights",
    "WeightsError",
    "bilinear_kernel",
    "build_model",
    "cfgs",
    "convolutionalize",
    "count_parameters",
    "fcn8s",
    "fcn16s",
    "fcn32s",
    "get_weights",
    "grow",
    "list_weights",
    "load_vgg16_state_dict",
    "make_layers",
    "output_stride_sizes",
    "scaled",
]
