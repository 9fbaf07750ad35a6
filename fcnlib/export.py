"""ONNX export: a trained FCN and its whole prediction path, usable without fcnlib.

:func:`export_onnx` writes one ``.onnx`` file whose graph does what ``fcnlib.predict(mode=
"scaled", ...)`` does with the weights card's ``predict`` settings, so a runtime only moves pixels
in and labels out:

- inputs ``image``: ``uint8`` ``H x W x 3`` (RGB) or ``H x W x 4`` (RGBA, composited over white),
  already upright (EXIF orientation applied); ``rows``: ``int64`` ``(R,)``, the output rows wanted
  (``arange(H)`` for the whole map; a strip of rows keeps a big photo's logits small);
- the photo is resized (bilinear, antialiased, rounded to 8 bits as PIL does) so its longer side
  is ``train_size`` px, times each test scale; sizes come from the symbolic ``H`` and ``W`` with
  integer arithmetic (round half to even, as Python's ``round``);
- ImageNet normalisation, the model on each scale and its mirror, the logits upsampled bilinearly
  to ``H x W`` (height, then width, as :mod:`fcnlib.predict` does) and summed, the argmax;
- output ``labels``: ``uint8`` ``(R, W)`` class indices.

What a runtime needs is in the file's ``metadata_props`` (JSON strings): ``classes``, ``palette``,
``normalisation``, ``predict`` (mode, train size, scales, flip), ``source``, ``sha256``,
``license``, ``inputs``; and in a JSON file beside it (what ``_widgets_js/fcn/photo.js`` reads).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import CheckpointError
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .data.classes import palette_for_classes
from .errors import FcnlibError
from .fileio import atomic_write_bytes
from .guards import output_file
from .trained import load_trained

__all__ = ["OPSET", "ExportError", "PhotoSegmenter", "export_onnx", "read_metadata"]

#: ONNX opset of the export (18: ``Resize`` with ``antialias``).
OPSET = 18


class ExportError(FcnlibError):
    """The export cannot be done (missing packages, bad output path, unusable model)."""


def _round_ratio(num, den):
    """``round(num / den)`` of non-negative (symbolic) ints, ties to even, by integer arithmetic."""
    q = (2 * num + den) // (2 * den)
    tie = 1 - torch.sym_min(1, (2 * num + den) % (2 * den))  # 1 when num / den = k + 1/2
    return q - tie * (q % 2)


class PhotoSegmenter(nn.Module):
    """uint8 photo + output rows -> uint8 labels, the ``"scaled"`` path of :func:`fcnlib.predict`.

    Args:
        model: the FCN (``(1, 3, h, w)`` -> ``(1, C, h, w)`` logits).
        train_size: the longer side of the photo at scale 1.
        scales: test scales relative to ``train_size`` (rational: ``1.25`` is ``5/4``).
        flip: also run the mirrored photo.
    """

    def __init__(self, model: nn.Module, train_size: int, scales=(1.0,), flip: bool = False):
        super().__init__()
        self.model = model.eval()
        self.train_size = int(train_size)
        self.scales = [Fraction(float(s)).limit_denominator(1000) for s in scales]
        self.flip = bool(flip)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)

    def _rgb(self, image: Tensor) -> Tensor:
        """``H x W x 3|4`` uint8 -> ``(1, 3, H, W)`` float in 0..255, alpha over white."""
        opaque = torch.full_like(image[:, :, :1], 255)
        x = torch.cat([image, opaque], dim=2).permute(2, 0, 1)[None].float()
        rgb, alpha = x[:, :3], x[:, 3:4] / 255  # RGB input: alpha is the appended 255
        return (rgb * alpha + 255 * (1 - alpha)).round()

    def _logits(self, x: Tensor, size) -> Tensor:
        """Logits ``(1, C, h, w)`` of the photo resized to ``size`` (and its mirror, summed)."""
        small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        small = (small.round().clamp(0, 255) - self.mean) / self.std  # 8 bits, as PIL's resize
        out = self.model(small)
        if self.flip:
            out = out + self.model(small.flip(-1)).flip(-1)  # linear: upsampling once is the same
        return out

    def forward(self, image: Tensor, rows: Tensor) -> Tensor:
        H, W = image.shape[0], image.shape[1]
        x = self._rgb(image)
        longer = torch.sym_max(H, W)
        base_h = torch.sym_max(1, _round_ratio(H * self.train_size, longer))
        base_w = torch.sym_max(1, _round_ratio(W * self.train_size, longer))
        total = None
        for s in self.scales:
            h = torch.sym_max(1, _round_ratio(base_h * s.numerator, s.denominator))
            w = torch.sym_max(1, _round_ratio(base_w * s.numerator, s.denominator))
            logits = self._logits(x, (h, w))[0]
            # the wanted rows of the bilinear (align_corners=False) upsampling to H, height first:
            # source row ((2y + 1) h - H) / 2H, clamped at 0, in exact integer arithmetic
            num = ((2 * rows + 1) * h - H).clamp(min=0)
            i0 = torch.div(num, 2 * H, rounding_mode="floor").clamp(max=h - 1)
            i1 = (i0 + 1).clamp(max=h - 1)
            t = ((num - i0 * (2 * H)).float() / (2 * H)).clamp(max=1)[None, :, None]
            part = logits[:, i0] * (1 - t) + logits[:, i1] * t
            part = F.interpolate(
                part[None], size=(rows.shape[0], W), mode="bilinear", align_corners=False
            )[0]
            total = part if total is None else total + part
        return total.argmax(0).to(torch.uint8)


def _require_onnx() -> None:
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            raise ExportError(
                f"exporting needs the {name!r} package: pip install 'fcnlib[export]'"
            ) from None


def _source_info(weights: str | os.PathLike) -> tuple[object, dict]:
    """The trained model and the metadata for a shipped name or a checkpoint path."""
    text = os.fspath(weights)
    is_path = os.path.exists(text) or any(c in text for c in "/\\.")
    try:
        trained = load_trained(checkpoint=weights) if is_path else load_trained(weights=weights)
    except CheckpointError as exc:
        raise ExportError(f"{weights}: {exc}") from None
    if is_path:  # no card: fcnlib.predict's defaults for mode "scaled"
        settings = {"mode": "scaled", "train_size": 512, "scales": [1.0], "flip": False}
        license_ = "the terms of the data the checkpoint was trained on"
        normalisation = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    else:
        from .models import get_weights

        meta = get_weights(str(weights)).meta
        settings = dict(meta.get("predict") or {})
        license_ = meta.get("terms", "")
        normalisation = meta["normalisation"]
    if settings.get("mode", "scaled") != "scaled":
        raise ExportError(
            f"{weights}: only mode 'scaled' exports, the card says {settings['mode']}"
        )
    return trained, {
        "classes": trained.classes,
        "palette": [list(c) for c in (trained.palette or palette_for_classes(trained.classes))][
            : len(trained.classes)
        ],
        "normalisation": normalisation,
        "predict": {k: settings[k] for k in ("mode", "train_size", "scales", "flip")},
        "source": trained.source,
        "sha256": trained.sha256,
        "license": license_,
        "inputs": "image: uint8 H x W x 3|4 upright; rows: int64 (R,) output rows; "
        "labels: uint8 (R, W)",
    }


def _settings(meta: dict, train_size, scales, flip) -> dict:
    """The card's (or given) predict settings, checked."""
    out = dict(meta["predict"])
    for key, value in (("train_size", train_size), ("scales", scales), ("flip", flip)):
        if value is not None:
            out[key] = value
    out = {
        "mode": "scaled",
        "train_size": int(out["train_size"]),
        "scales": [float(s) for s in out["scales"]],
        "flip": bool(out["flip"]),
    }
    if out["train_size"] < 1 or not out["scales"] or min(out["scales"]) <= 0:
        raise ExportError(f"train size must be >= 1 and scales positive, got {out}")
    return out


def _export_proto(segmenter: PhotoSegmenter):
    """The ONNX ``ModelProto`` of ``segmenter`` with dynamic H, W, channels (3 or 4) and rows."""
    dim = torch.export.Dim
    shapes = {
        "image": {
            0: dim("H", min=1, max=100_000),
            1: dim("W", min=1, max=100_000),
            2: dim("C", min=3, max=4),
        },
        "rows": {0: dim("R", min=1, max=100_000)},
    }
    example = (torch.zeros(37, 53, 4, dtype=torch.uint8), torch.arange(37))
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        program = torch.onnx.export(
            segmenter,
            example,
            input_names=["image", "rows"],
            output_names=["labels"],
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    return program.model_proto


def export_onnx(
    weights: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    train_size: int | None = None,
    scales=None,
    flip: bool | None = None,
) -> Path:
    """Export shipped weights (a name) or an fcnlib checkpoint (a path) to ONNX at ``out``, and
    its metadata as JSON beside it (``out`` with suffix ``.json``, what a web page reads).

    Args:
        weights: a shipped weights name (``"camvid-cpu"``) or a checkpoint path.
        out: the ``.onnx`` file to write (both files atomically: nothing half-written).
        overwrite: replace an existing ``out``.
        train_size, scales, flip: override the card's ``predict`` settings (a checkpoint has no
            card: ``fcnlib.predict``'s defaults, 512 px, one scale, no flip).

    Returns:
        The path written. Raises :class:`ExportError` (or another ``FcnlibError``) with one line.
    """
    out = Path(out)
    if out.suffix.lower() == ".json":
        raise ExportError(f"{out}: the model file cannot end in .json (its metadata goes there)")
    output_file(out, overwrite)
    output_file(out.with_suffix(".json"), overwrite)
    _require_onnx()
    import onnx

    trained, meta = _source_info(weights)
    meta["predict"] = _settings(meta, train_size, scales, flip)
    p = meta["predict"]
    segmenter = PhotoSegmenter(trained.model, p["train_size"], p["scales"], p["flip"]).eval()
    proto = _export_proto(segmenter)
    onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in meta.items()})
    proto.producer_name = "fcnlib"
    atomic_write_bytes(proto.SerializeToString(), out)
    atomic_write_bytes((json.dumps(meta, indent=1) + "\n").encode(), out.with_suffix(".json"))
    return out


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata_props`` of an exported file, JSON-decoded."""
    import onnx

    proto = onnx.load(os.fspath(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}
