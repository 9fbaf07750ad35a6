"""Benchmarks: fcnlib's training loop, metric and inference against the seed notes' code, and
where a recipe's epoch time goes.

``fcnlib bench [--device cpu|cuda|auto] [--quick]`` (:func:`run_bench`) measures, in one process
on one machine, each figure as a ratio against a baseline run alongside it:

- ``train`` (:mod:`.train`): FCN-8s training throughput (images/s) of the seed-style loop (fp32,
  NCHW, plain SGD, ``.item()`` and the seed's histc metrics on the CPU every step;
  :mod:`.baselines`) against fcnlib's loop (:func:`fcnlib.engine.train_step`: autocast where the
  context enables it, channels_last, fused/foreach SGD,
  :class:`~fcnlib.metrics.SegmentationMetric` on the device, no per-step sync), optionally also
  compiled; FLOPs per step (``FlopCounterMode``) and the utilisation of the card's peak.
- ``metric`` (:mod:`.metric`): metric update throughput (pixels/s) of the confusion-matrix
  ``bincount`` against the seed's histc code on the same logits, the argmax alternatives, a
  per-stage breakdown, and an exact-equality check of the fixed histc counts against the
  confusion matrix.
- ``inference`` (:mod:`.inference`): latency and peak memory (:mod:`.memory`) of
  :func:`fcnlib.predict.predict` (whole / scaled / tiled) at VOC size, 2048x1365 and 5472x3648.
- ``scaling`` (:mod:`.scaling`): training throughput against batch size and crop size.

Results go to ``<out>/<device>-<quick|full>-<timestamp>.json`` (copied to
``<out>/latest-<device>[-quick].json``) with a markdown rendering (``.md``) and the scaling plot
(``-scaling.png``) beside it (:mod:`.report`). Timings are medians of repeats after warm-up, with
``torch.cuda.synchronize()`` around GPU work; competing variants are timed interleaved (ABAB,
:mod:`.timing`) so that a change of machine load affects both sides of a ratio alike.

``fcnlib bench --config <recipe>`` (:func:`run_recipe_bench`, :mod:`.recipe`) times a recipe's
data pipeline, training step, one epoch and one validation pass on the recipe's device.

The core library never imports this package; it imports the core.
"""

from __future__ import annotations

from .baselines import SeedLoop, argmax_channel_loop, confusion_masked_bincount
from .inference import bench_inference
from .machine import device_info
from .memory import PeakMemory
from .metric import bench_metric
from .recipe import RECIPE_SCHEMA, run_recipe_bench
from .report import plot_scaling, recipe_to_markdown, to_markdown
from .run import run_bench
from .scaling import bench_scaling
from .settings import PEAK_TFLOPS, SCHEMA, BenchSettings, peak_tflops, settings_for
from .train import FcnlibLoop, bench_train, count_train_flops

__all__ = [
    "PEAK_TFLOPS",
    "RECIPE_SCHEMA",
    "SCHEMA",
    "BenchSettings",
    "FcnlibLoop",
    "PeakMemory",
    "SeedLoop",
    "argmax_channel_loop",
    "bench_inference",
    "bench_metric",
    "bench_scaling",
    "bench_train",
    "confusion_masked_bincount",
    "count_train_flops",
    "device_info",
    "peak_tflops",
    "plot_scaling",
    "recipe_to_markdown",
    "run_bench",
    "run_recipe_bench",
    "settings_for",
    "to_markdown",
]
