"""Full-resolution logits without materialising them: whole maps, and tiles blended in bands.

Prediction keeps each pass's logits at its own resolution and produces the full-size output in
horizontal strips; :class:`FullLogits` serves rows of a whole logit map, :class:`TiledLogits`
runs the model tile by tile and keeps only a sliding band of weighted logit sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["FullLogits", "TiledLogits", "edge_ramp", "interp_index", "tile_starts"]


def interp_index(out_len: int, in_len: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per output index the two source indices and the weight of the second, as in
    ``F.interpolate(mode="bilinear", align_corners=False)`` (one axis)."""
    scale = in_len / out_len
    src = ((torch.arange(out_len, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_(min=0)
    i0 = src.floor().long().clamp_(max=in_len - 1)
    i1 = (i0 + 1).clamp_(max=in_len - 1)
    lam = (src - i0.double()).float()
    return i0, i1, lam


class FullLogits:
    """Logits ``(C, h, w)`` of one configuration, computed on the whole (resized) image at once."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = logits
        self.channels = logits.shape[0]
        self.size = (logits.shape[1], logits.shape[2])

    def rows(self, a: int, b: int) -> Tensor:
        return self.logits[:, a:b]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def edge_ramp(n: int, overlap: int, low: bool, high: bool) -> Tensor:
    """1-D tile weight: 1 inside, a linear ramp (never 0) over ``overlap`` px at edges shared with a neighbour."""
    w = torch.ones(n)
    r = min(overlap, n // 2)
    if r > 0:
        ramp = torch.arange(1, r + 1, dtype=torch.float32) / (r + 1)
        if low:
            w[:r] = ramp
        if high:
            w[n - r :] = ramp.flip(0)
    return w


class TiledLogits:
    """Sliding-window logits of one configuration, produced lazily one row of tiles at a time.

    Only a rolling band of rows is kept: weighted logit sums ``(C, cap, w)`` and weight sums
    ``(cap, w)`` with ``cap = tile + reserve`` (``reserve``: the most source rows one output strip
    asks for). ``rows(a, b)`` must be called with non-decreasing ``a``; rows above ``a`` are dropped
    (lazily: the band is compacted in place when the next tile row does not fit).
    """

    def __init__(
        self,
        forward: Callable[[np.ndarray], Tensor],
        array: np.ndarray,
        tile: int,
        overlap: int,
        flip: bool,
        device: torch.device,
    ) -> None:
        self.forward, self.array, self.flip, self.device = forward, array, flip, device
        self.bar: Any = None
        h, w = array.shape[:2]
        self.size = (h, w)
        self.th, self.tw = min(tile, h), min(tile, w)
        self.ys, self.xs = tile_starts(h, self.th, overlap), tile_starts(w, self.tw, overlap)
        self.overlap = overlap
        self.wx = [edge_ramp(self.tw, overlap, x > 0, x + self.tw < w).to(device) for x in self.xs]
        self.num_tiles = len(self.ys) * len(self.xs)
        self.cap = self.th
        self.next_row = 0  # next tile row to compute
        self.buf0 = 0  # absolute row held at band index `off`
        self.off = 0
        self.end_row = 0  # rows < end_row have received all their tiles' contributions so far
        self.acc: Tensor | None = None
        self.wsum: Tensor | None = None
        self._first: Tensor | None = None

    @property
    def channels(self) -> int:
        if self._first is None and self.acc is None:
            self._first = self._tile(self.ys[0], self.xs[0])
        return (self._first if self._first is not None else self.acc).shape[0]

    def reserve(self, rows: int) -> None:
        """Room for ``rows`` requested rows on top of one tile row (call before the first ``rows``)."""
        self.cap = min(max(self.cap, self.th + rows), self.size[0])

    def _tile(self, y: int, x: int) -> Tensor:
        logits = self.forward(self.array[y : y + self.th, x : x + self.tw])
        if self.bar is not None:
            self.bar.update(1)
        return logits

    def _compact(self) -> None:
        """Move the live rows ``[off, off + n)`` to the front, in chunks that never overlap, and zero the rest."""
        assert self.acc is not None and self.wsum is not None
        n, d = max(0, self.end_row - self.buf0), self.off
        if d == 0:
            return
        for i in range(0, n, d):
            c = min(d, n - i)
            self.acc[:, i : i + c].copy_(self.acc[:, d + i : d + i + c])
            self.wsum[i : i + c].copy_(self.wsum[d + i : d + i + c])
        self.acc[:, n:].zero_()
        self.wsum[n:].zero_()
        self.off = 0

    def _advance(self) -> None:
        y = self.ys[self.next_row]
        self.next_row += 1
        h, w = self.size
        skip = max(0, self.buf0 - y)  # tile rows above the band are no longer needed
        wy = edge_ramp(self.th, self.overlap, y > 0, y + self.th < h).to(self.device)[skip:]
        end = self.off + y + self.th - self.buf0
        if self.acc is not None and end > self.acc.shape[1]:
            self._compact()
            end = y + self.th - self.buf0
        if self.acc is not None and end > self.acc.shape[1]:  # reserve was too small: grow (a copy)
            grow = end - self.acc.shape[1]
            self.acc = torch.cat([self.acc, self.acc.new_zeros(self.acc.shape[0], grow, w)], 1)
            self.wsum = torch.cat([self.wsum, self.wsum.new_zeros(grow, w)], 0)
        r0 = end - self.th + skip
        for x, wx in zip(self.xs, self.wx):
            if self._first is not None:
                logits, self._first = self._first, None
            else:
                logits = self._tile(y, x)
            if self.acc is None:
                self.acc = torch.zeros(logits.shape[0], max(self.cap, end), w, device=self.device)
                self.wsum = torch.zeros(max(self.cap, end), w, device=self.device)
            assert self.wsum is not None
            weight = wy[:, None] * wx[None, :]
            self.acc[:, r0:end, x : x + self.tw] += logits[:, skip:] * weight
            self.wsum[r0:end, x : x + self.tw] += weight
        self.end_row = max(self.end_row, y + self.th)

    def rows(self, a: int, b: int) -> Tensor:
        """Blended logits of rows ``[a, b)``: ``(C, b - a, w)`` (flipped back if the input was flipped)."""
        if a < self.buf0:
            raise RuntimeError("tiled rows must be requested in non-decreasing order")
        if (
            a > self.buf0
        ):  # drop rows above a (only an offset; compaction happens when room is needed)
            live = max(0, self.end_row - self.buf0)
            self.off += min(a - self.buf0, live) if self.acc is not None else 0
            if a - self.buf0 > live:  # skipped past every computed row: the band restarts empty
                self.off = self.acc.shape[1] if self.acc is not None else 0
            self.buf0 = a
        while self.next_row < len(self.ys) and self.ys[self.next_row] < b:
            self._advance()
        assert self.acc is not None and self.wsum is not None
        out = self.acc[:, self.off : self.off + b - a] / self.wsum[self.off : self.off + b - a]
        return out.flip(-1) if self.flip else out
