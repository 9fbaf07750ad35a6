"""Segmentation metrics: confusion matrix, pixel accuracy, mean accuracy, (mean / frequency-weighted) IoU.

Everything is derived from one ``(C, C)`` confusion matrix (rows = ground truth, columns =
prediction) accumulated on the inputs' device with a single ``bincount`` per batch. Also kept, for
the book: the seed notes' ``torch.histc`` code (``seed_*``, with its bugs) and a corrected version
(``histc_*``). :class:`BoundaryMetric` keeps one matrix per band width around the ground
truth's label boundaries (the "trimap" evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .constants import IGNORE_INDEX

__all__ = [
    "BoundaryMetric",
    "SegmentationMetric",
    "boundary_band",
    "confusion_matrix",
    "histc_intersection_union",
    "histc_pixel_accuracy",
    "metrics_from_confusion",
    "seed_batch_intersection_union",
    "seed_batch_pix_accuracy",
]


def _labels(output: Tensor) -> Tensor:
    """Labels ``(B, H, W)`` from logits ``(B, C, H, W)`` (argmax over C) or labels as given.

    ``max(1).indices`` is the same argmax (first maximum on ties); ``fcnlib bench`` compares its
    speed with ``argmax(1)``.
    """
    return output.max(1).indices if output.dim() == 4 else output


def confusion_matrix(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    validate: bool = True,
) -> Tensor:
    """``(C, C)`` int64 counts on the inputs' device: entry ``[t, p]`` = pixels of class t predicted p.

    ``pred`` and ``target`` are label tensors of the same shape (any shape); pixels whose target is
    ``ignore_index`` are skipped. One ``bincount`` over ``t * C + p``. With ``validate`` (default) a
    target or prediction outside ``0..C-1`` (other than the ignore label) raises ``ValueError``;
    ``validate=False`` skips that check, which needs a host sync, for hot loops on trusted data.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        )
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    keep = target != ignore_index
    if validate:
        bad_t = keep & ((target < 0) | (target >= num_classes))
        if bad_t.any():
            values = torch.unique(target[bad_t]).tolist()[:10]
            raise ValueError(
                f"target labels {values} are outside 0..{num_classes - 1} (ignore label {ignore_index})"
            )
        if ((pred < 0) | (pred >= num_classes)).any():
            raise ValueError(f"predicted labels are outside 0..{num_classes - 1}")
    # Ignored pixels go to an extra bin that is dropped: no boolean indexing, hence no host sync.
    n = num_classes * num_classes
    index = torch.where(keep, target * num_classes + pred, torch.full_like(target, n))
    return torch.bincount(index, minlength=n + 1)[:n].reshape(num_classes, num_classes)


def metrics_from_confusion(matrix: Tensor) -> dict[str, float | Tensor]:
    """Metrics from a confusion matrix (rows = ground truth).

    Returns ``pixAcc`` (correct / labelled pixels), ``meanAcc`` (mean per-class recall),
    ``mIoU`` (mean IoU), ``fwIoU`` (IoU weighted by class frequency) as floats in [0, 1], and
    ``IoU`` / ``Acc`` as per-class float64 tensors. A class absent from both ground truth and
    prediction has NaN IoU and is left out of the means (not counted as 0).
    """
    m = matrix.double()
    tp = m.diag()
    gt = m.sum(1)
    pr = m.sum(0)
    union = gt + pr - tp
    nan = torch.tensor(float("nan"), dtype=m.dtype, device=m.device)
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
    total = gt.sum()
    freq = gt / total.clamp_min(1)
    present = union > 0
    return {
        "pixAcc": (tp.sum() / total).item() if total > 0 else float("nan"),
        "meanAcc": _nanmean(acc),
        "mIoU": _nanmean(iou),
        "fwIoU": (freq[present] * iou[present]).sum().item() if total > 0 else float("nan"),
        "IoU": iou.cpu(),
        "Acc": acc.cpu(),
    }


def _nanmean(x: Tensor) -> float:
    x = x[~torch.isnan(x)]
    return x.mean().item() if x.numel() else float("nan")


class SegmentationMetric:
    """Accumulates a confusion matrix over batches; ``compute()`` gives the dataset-level metrics.

    ``update(output, target)`` takes logits ``(B, C, H, W)`` or labels ``(B, H, W)`` and targets
    ``(B, H, W)``; the matrix lives on the inputs' device. With ``validate=False`` no value is
    copied to the host until ``compute()`` (the default label-range check needs one sync per batch). With ``per_image=True`` it also keeps, per image, pixel accuracy and mIoU (over
    the classes present in that image's ground truth or prediction), and ``compute()`` adds their
    means as ``pixAcc_per_image`` / ``mIoU_per_image``: the seed notes' protocol, which is not
    the standard one. Call ``all_reduce()`` under ``torch.distributed`` to merge the state of every
    process before ``compute()``.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        per_image: bool = False,
        validate: bool = True,
    ):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.per_image = per_image
        self.validate = validate
        self.reset()

    def reset(self) -> None:
        self.matrix: Tensor | None = None
        # per-image sums: [sum of pixAcc, number of images with labels, sum of mIoU, number of images with a class]
        self._image_sums: Tensor | None = None

    @torch.no_grad()
    def update(self, output: Tensor, target: Tensor) -> None:
        pred = _labels(output.detach())
        target = target.detach()
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        m = confusion_matrix(pred, target, self.num_classes, self.ignore_index, self.validate)
        self.matrix = m if self.matrix is None else self.matrix + m
        if self.per_image:
            sums = torch.zeros(4, dtype=torch.float64, device=pred.device)
            for p, t in zip(pred, target):
                sums += _image_metrics(
                    confusion_matrix(p, t, self.num_classes, self.ignore_index, validate=False)
                )
            self._image_sums = sums if self._image_sums is None else self._image_sums + sums

    def merge(self, other: SegmentationMetric) -> None:
        """Add another metric's state (e.g. from another data shard) to this one."""
        if other.matrix is not None:
            self.matrix = (
                other.matrix.clone()
                if self.matrix is None
                else self.matrix + other.matrix.to(self.matrix.device)
            )
        if other._image_sums is not None:
            s = other._image_sums
            self._image_sums = (
                s.clone()
                if self._image_sums is None
                else self._image_sums + s.to(self._image_sums.device)
            )

    def all_reduce(self, device: torch.device | str | None = None) -> None:
        """Sum the state over all ``torch.distributed`` processes (every rank must call it)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        device = (
            torch.device(device)
            if device is not None
            else (self.matrix.device if self.matrix is not None else torch.device("cpu"))
        )
        if self.matrix is None:
            self.matrix = torch.zeros(
                self.num_classes, self.num_classes, dtype=torch.int64, device=device
            )
        dist.all_reduce(self.matrix)
        if self.per_image:
            if self._image_sums is None:
                self._image_sums = torch.zeros(4, dtype=torch.float64, device=self.matrix.device)
            dist.all_reduce(self._image_sums)

    def compute(self) -> dict[str, float | Tensor]:
        """``pixAcc``, ``meanAcc``, ``mIoU``, ``fwIoU`` (floats), ``IoU``, ``Acc`` (per class) and the matrix."""
        matrix = self.matrix
        if matrix is None:
            matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        result = metrics_from_confusion(matrix)
        result["confusion"] = matrix.cpu()
        if self.per_image:
            s = self._image_sums.tolist() if self._image_sums is not None else [0.0] * 4
            result["pixAcc_per_image"] = s[0] / s[1] if s[1] else float("nan")
            result["mIoU_per_image"] = s[2] / s[3] if s[3] else float("nan")
        return result


def _image_metrics(m: Tensor) -> Tensor:
    """``[pixAcc, 1, mIoU, 1]`` of one image's matrix (zeros where it has no labelled pixel)."""
    m = m.double()
    tp, gt, pr = m.diag(), m.sum(1), m.sum(0)
    total = gt.sum()
    union = gt + pr - tp
    present = union > 0
    has_labels = (total > 0).double()
    pix = tp.sum() / total.clamp_min(1)
    miou = (tp[present] / union[present]).sum() / present.sum().clamp_min(1)
    return torch.stack([pix * has_labels, has_labels, miou * has_labels, has_labels])


def _grow_max(x: Tensor, radius: int, target: int) -> Tensor:
    """``x`` = maxima over squares of ``radius`` around each pixel of ``(B, 1, H, W)``, grown to
    squares of ``target`` (clipped to the image).

    Each step takes the maximum of three copies shifted by ``-d, 0, +d`` along each axis (a
    dilated 3-tap max pool), which covers a contiguous square of radius ``radius + d`` as long as
    ``d <= 2 * radius + 1``; so the radius roughly triples per step and a band of width 32 needs
    four steps instead of a 65-tap window. Edge replication (not -inf padding) keeps the window
    clipped to the image exact: a shifted centre beyond the border stands for the border pixel,
    whose square then covers what the centre's would have inside the image.
    """
    while radius < target:
        d = min(2 * radius + 1, target - radius)
        x = F.max_pool2d(F.pad(x, (d, d, 0, 0), mode="replicate"), (1, 3), 1, dilation=(1, d))
        x = F.max_pool2d(F.pad(x, (0, 0, d, d), mode="replicate"), (3, 1), 1, dilation=(d, 1))
        radius += d
    return x


def boundary_band(
    target: Tensor, widths: Sequence[int], ignore_index: int = IGNORE_INDEX
) -> dict[int, Tensor]:
    """Per band width ``w``: the labelled pixels within ``w`` pixels of a label boundary.

    A pixel is in the band of width ``w`` when the ``(2w+1) x (2w+1)`` square around it (clipped
    to the image: the image border is no boundary) holds a label other than its own, the ignore
    label included (an edge towards unlabelled pixels is a boundary of the class); ignored pixels
    themselves are never in a band. Equivalently: chessboard distance to the nearest pixel of
    another label ``<= w``.

    Args:
        target: labels ``(H, W)`` or ``(B, H, W)``; padding added by batching images of different
            sizes counts as ignore (an edge), so evaluate such data sets at batch size 1.
        widths: band widths in pixels, each ``>= 1``.

    Returns:
        ``{w: bool tensor of target's shape}``.
    """
    if not widths or any(int(w) != w or w < 1 for w in widths):
        raise ValueError(f"band widths must be integers >= 1, got {list(widths)}")
    x = target.reshape(-1, 1, *target.shape[-2:]).float()
    hi, lo, done, bands = x, -x, 0, {}
    for w in sorted({int(v) for v in widths}):
        hi, lo, done = _grow_max(hi, done, w), _grow_max(lo, done, w), w
        band = (hi != -lo) & (x != ignore_index)
        bands[w] = band.reshape(target.shape)
    return bands


class BoundaryMetric:
    """Confusion matrices restricted to the boundary bands of the ground truth, one per width.

    ``update(output, target)`` as :class:`SegmentationMetric`; ``compute()`` gives
    ``{w: metrics_from_confusion(...) + {"pixels": labelled pixels in the band}}``. The state is
    a ``(len(widths), C, C)`` int64 tensor, so ``merge``/``all_reduce`` keep it dataset-level
    and exact over shards.
    """

    def __init__(self, num_classes: int, widths: Sequence[int], ignore_index: int = IGNORE_INDEX):
        boundary_band(torch.zeros(1, 1), widths)  # validates the widths
        self.num_classes = num_classes
        self.widths = tuple(sorted({int(w) for w in widths}))
        self.ignore_index = ignore_index
        self.matrix: Tensor | None = None

    @torch.no_grad()
    def update(self, output: Tensor, target: Tensor) -> None:
        pred, target = _labels(output.detach()).long(), target.detach().long()
        bands = boundary_band(target, self.widths, self.ignore_index)
        n, c = len(self.widths), self.num_classes
        # The bands are nested: each pixel gets the index of the narrowest band holding it (n if
        # none), one bincount counts (band, target, prediction), and a cumulative sum over the
        # band index turns "narrowest band k" into "inside band k".
        level = torch.full_like(target, n)
        for k in reversed(range(n)):
            level = torch.where(bands[self.widths[k]], k, level)
        index = torch.where(level < n, (level * c + target) * c + pred, n * c * c)
        counts = torch.bincount(index.reshape(-1), minlength=n * c * c + 1)[: n * c * c]
        m = counts.reshape(n, c, c).cumsum(0)
        self.matrix = m if self.matrix is None else self.matrix + m

    def merge(self, other: BoundaryMetric) -> None:
        """Add another metric's state (same widths) to this one."""
        if other.widths != self.widths:
            raise ValueError(f"band widths differ: {self.widths} and {other.widths}")
        if other.matrix is not None:
            m = other.matrix
            self.matrix = (
                m.clone() if self.matrix is None else self.matrix + m.to(self.matrix.device)
            )

    def all_reduce(self, device: torch.device | str | None = None) -> None:
        """Sum the matrices over all ``torch.distributed`` processes (every rank must call it)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        if self.matrix is None:
            shape = (len(self.widths), self.num_classes, self.num_classes)
            self.matrix = torch.zeros(shape, dtype=torch.int64, device=device or "cpu")
        dist.all_reduce(self.matrix)

    def compute(self) -> dict[int, dict[str, float | Tensor]]:
        """Per width: ``pixAcc``, ``mIoU``, ... (see :func:`metrics_from_confusion`), ``pixels``."""
        shape = (len(self.widths), self.num_classes, self.num_classes)
        matrix = self.matrix if self.matrix is not None else torch.zeros(shape, dtype=torch.int64)
        result = {}
        for w, m in zip(self.widths, matrix):
            result[w] = {**metrics_from_confusion(m), "pixels": int(m.sum().item())}
        return result


# --------------------------------------------------------------------------------------------
# The seed notes' histc metrics: the original (kept verbatim in behaviour, for teaching) and fixed.
# --------------------------------------------------------------------------------------------


def seed_batch_pix_accuracy(output: Tensor, target: Tensor) -> tuple[int, int]:
    """The seed notes' ``batch_pix_accuracy``, bugs included. Do not use; see :func:`histc_pixel_accuracy`.

    Bug 1: ``argmax(output.long(), 1)`` truncates the logits to integers before the argmax, so
    classes whose logits differ by less than 1 tie and the first one wins. Bug 2: the ``+ 1``
    shift treats only ``target == -1`` as ignored; VOC's 255 becomes 256 and counts as labelled.
    """
    predict = torch.argmax(output.long(), 1) + 1
    target = target.long() + 1
    pixel_labeled = torch.sum(target > 0).item()
    pixel_correct = torch.sum((predict == target) * (target > 0)).item()
    assert pixel_correct <= pixel_labeled, "Correct area should be smaller than Labeled"
    return pixel_correct, pixel_labeled


def seed_batch_intersection_union(
    output: Tensor, target: Tensor, nclass: int
) -> tuple[Tensor, Tensor]:
    """The seed notes' ``batch_intersection_union`` (histc over labels shifted by +1). Do not use.

    It is right only when ignored pixels are labelled -1 (shifted to 0, so ``target > 0`` masks
    them out). With VOC's 255 they become 256: still outside the histogram range ``[1, nclass]``
    for the ground truth, but ``target > 0`` no longer masks their predictions, which then count
    in ``area_pred`` and inflate the union (IoU comes out too low).
    """
    mini, maxi, nbins = 1, nclass, nclass
    predict = torch.argmax(output, 1) + 1
    target = target.float() + 1
    predict = predict.float() * (target > 0).float()
    intersection = predict * (predict == target).float()
    area_inter = torch.histc(intersection.cpu(), bins=nbins, min=mini, max=maxi)
    area_pred = torch.histc(predict.cpu(), bins=nbins, min=mini, max=maxi)
    area_lab = torch.histc(target.cpu(), bins=nbins, min=mini, max=maxi)
    area_union = area_pred + area_lab - area_inter
    assert torch.sum(area_inter > area_union).item() == 0, (
        "Intersection area should be smaller than Union area"
    )
    return area_inter.float(), area_union.float()


def _shift(output: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Labels shifted by +1 with ignored pixels at 0, whatever ``ignore_index`` is (argmax on the float logits)."""
    predict = _labels(output).long() + 1
    target = target.long()
    valid = target != ignore_index
    target = torch.where(valid, target + 1, torch.zeros_like(target))
    return predict * valid, target


def histc_pixel_accuracy(
    output: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[int, int]:
    """The seed's pixel accuracy, fixed: ``(correct, labelled)`` pixel counts.

    Argmax over the float logits (not ``output.long()``), and the ignore label mapped to 0
    explicitly before the ``+1``-shift test ``target > 0``.
    """
    predict, target = _shift(output, target, ignore_index)
    labelled = int((target > 0).sum().item())
    correct = int(((predict == target) & (target > 0)).sum().item())
    return correct, labelled


def histc_intersection_union(
    output: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor]:
    """The seed's per-class ``(intersection, union)`` pixel counts via ``torch.histc``, fixed.

    Labels are shifted by +1 so that 0 can mark ignored pixels (explicitly, whatever
    ``ignore_index`` is) and fall outside the histogram range ``[1, C]``. Float64 histograms stay
    exact beyond 2**24 pixels. Returns two float64 tensors of length C.
    """
    predict, target = _shift(output, target, ignore_index)
    intersection = predict * (predict == target)
    kwargs = {"bins": num_classes, "min": 1, "max": num_classes}
    area_inter = torch.histc(intersection.double(), **kwargs)
    area_pred = torch.histc(predict.double(), **kwargs)
    area_lab = torch.histc(target.double(), **kwargs)
    return area_inter, area_pred + area_lab - area_inter
