"""Boundary ("trimap") accuracy: the band against SciPy's distance transform and a brute-force
loop, the dataset-level matrices against per-pixel counts, shards and torch.distributed, the CLI."""

import json
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import ndimage

from fcnlib.cli import main
from fcnlib.metrics import BoundaryMetric, boundary_band

IGNORE = 255
C = 4


def random_masks(n, h, w, seed=0, blobs=True):
    """Label maps with regions (blocky upsampled noise), a few ignore pixels and an ignore strip."""
    rng = np.random.default_rng(seed)
    if blobs:
        small = rng.integers(0, C, size=(n, (h + 3) // 4, (w + 3) // 4))
        masks = np.kron(small, np.ones((1, 4, 4), dtype=np.int64))[:, :h, :w].copy()
    else:
        masks = rng.integers(0, C, size=(n, h, w))
    masks[rng.random(masks.shape) < 0.03] = IGNORE
    masks[:, :, -2:] = IGNORE
    return masks


def brute_band(mask, w):
    """Labelled pixels with another label (ignore included) in the (2w+1)^2 square, clipped."""
    h, wd = mask.shape
    band = np.zeros(mask.shape, dtype=bool)
    for y in range(h):
        for x in range(wd):
            if mask[y, x] == IGNORE:
                continue
            win = mask[max(0, y - w) : y + w + 1, max(0, x - w) : x + w + 1]
            band[y, x] = bool((win != mask[y, x]).any())
    return band


def scipy_band(mask, w):
    """Chessboard distance from each pixel to the nearest pixel of another value, <= w."""
    band = np.zeros(mask.shape, dtype=bool)
    for v in np.unique(mask):
        inside = mask == v
        if inside.all():
            continue  # no other label anywhere: distance infinite
        dist_ = ndimage.distance_transform_cdt(inside, metric="chessboard")
        band |= inside & (dist_ <= w) & (v != IGNORE)
    return band


@pytest.mark.parametrize("blobs", [True, False])
def test_band_equals_scipy_distance_transform_and_brute_force(blobs):
    masks = random_masks(3, 23, 31, seed=1, blobs=blobs)
    widths = [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 27, 40]
    bands = boundary_band(torch.from_numpy(masks), widths, IGNORE)
    assert sorted(bands) == widths
    for w in widths:
        got = bands[w].numpy()
        assert got.shape == masks.shape and got.dtype == bool
        for i, m in enumerate(masks):
            np.testing.assert_array_equal(got[i], scipy_band(m, w), err_msg=f"w={w} image {i}")
            if w in (1, 3):
                np.testing.assert_array_equal(got[i], brute_band(m, w))
    assert not bands[40][torch.from_numpy(masks) == IGNORE].any()  # ignore never counts


def test_band_edge_cases_image_border_is_no_boundary_and_ignore_is():
    m = torch.zeros(6, 6, dtype=torch.long)
    assert not boundary_band(m, [1, 3])[3].any()  # one class: no boundary, border is none
    m[:, 5] = IGNORE  # a class next to unlabelled pixels: that edge is the class's boundary
    band = boundary_band(m, [1, 2])
    assert band[1][:, 4].all() and not band[1][:, :4].any() and not band[1][:, 5].any()
    assert band[2][:, 3:5].all() and not band[2][:, :3].any()
    # 2-D and batched input agree
    assert torch.equal(boundary_band(m[None], [2])[2][0], band[2])


@pytest.mark.parametrize("widths", [[], [0], [2, -1], [1.5]])
def test_band_widths_are_validated(widths):
    with pytest.raises(ValueError, match="band widths must be integers >= 1"):
        boundary_band(torch.zeros(3, 3), widths)
    with pytest.raises(ValueError, match="band widths"):
        BoundaryMetric(C, widths)


def per_pixel_counts(preds, masks, w):
    """Dataset-level (C, C) matrix over the band pixels of every image, by NumPy indexing."""
    m = np.zeros((C, C), dtype=np.int64)
    for p, t in zip(preds, masks):
        band = scipy_band(t, w)
        np.add.at(m, (t[band], p[band]), 1)
    return m


def test_metric_is_dataset_level_and_merges_shards_exactly():
    masks = random_masks(5, 20, 26, seed=2)
    preds = np.random.default_rng(3).integers(0, C, size=masks.shape)
    preds[:, :10] = np.where(masks[:, :10] == IGNORE, 0, masks[:, :10])  # partly right
    widths = (2, 4, 8)
    whole, a, b = (BoundaryMetric(C, [8, 2, 4, 2], IGNORE) for _ in range(3))
    assert whole.widths == widths
    logits = torch.nn.functional.one_hot(torch.from_numpy(preds), C).permute(0, 3, 1, 2).float()
    target = torch.from_numpy(masks)
    for i in range(5):  # one image per batch, then two shards of 2 and 3 images
        whole.update(logits[i : i + 1], target[i : i + 1])
    a.update(logits[:2], target[:2])
    b.update(torch.from_numpy(preds[2:]), target[2:])  # labels accepted as well as logits
    a.merge(b)
    assert torch.equal(a.matrix, whole.matrix)
    res = whole.compute()
    for w in widths:
        expected = per_pixel_counts(preds, masks, w)
        np.testing.assert_array_equal(whole.matrix[widths.index(w)].numpy(), expected)
        assert res[w]["pixels"] == expected.sum()
        assert res[w]["pixAcc"] == pytest.approx(np.trace(expected) / expected.sum(), abs=1e-15)
        tp, union = np.diag(expected), expected.sum(0) + expected.sum(1) - np.diag(expected)
        miou = np.mean(tp[union > 0] / union[union > 0])
        assert res[w]["mIoU"] == pytest.approx(miou, abs=1e-12)
    with pytest.raises(ValueError, match="band widths differ"):
        a.merge(BoundaryMetric(C, [2]))


def _ddp_worker(rank, port, logits, target, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    metric = BoundaryMetric(C, [1, 3], IGNORE)
    if rank == 0:  # rank 1 sees no image at all: its state starts empty
        metric.update(logits, target)
    metric.all_reduce("cpu")
    out[rank] = metric.matrix.clone()
    dist.destroy_process_group()


def test_all_reduce_over_two_processes_equals_one_process():
    masks = torch.from_numpy(random_masks(2, 16, 16, seed=4))
    preds = torch.from_numpy(np.random.default_rng(5).integers(0, C, size=masks.shape))
    single = BoundaryMetric(C, [1, 3], IGNORE)
    single.update(preds, masks)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_ddp_worker, args=(port, preds, masks, out), nprocs=2, join=True)
    assert torch.equal(out[0], single.matrix) and torch.equal(out[1], single.matrix)


def test_cli_eval_boundary_writes_widths_and_the_widest_band_is_every_pixel(capsys, tmp_path):
    out = tmp_path / "r.json"
    argv = ["eval", "--weights", "shapes-demo", "--data", "shapes", "--limit", "3", "--quiet"]
    assert main([*argv, "--boundary", "4", "2", "1024", "--out", str(out)]) == 0
    capsys.readouterr()
    r = json.loads(out.read_text())
    b = r["metrics"]["boundary"]
    assert list(b) == ["2", "4", "1024"] and set(b["2"]) == {"pixAcc", "mIoU", "pixels"}
    assert b["2"]["pixels"] < b["4"]["pixels"] < b["1024"]["pixels"]
    # every synthetic image has a shape on a background: the widest band holds every pixel
    assert b["1024"]["pixels"] == sum(map(sum, r["confusion"]))
    assert b["1024"]["pixAcc"] == r["metrics"]["pixAcc"]
    assert b["1024"]["mIoU"] == r["metrics"]["mIoU"]


@pytest.mark.parametrize("value", ["0", "2000"])
def test_cli_eval_refuses_bad_widths(capsys, value):
    code = main(["eval", "--weights", "shapes-demo", "--data", "shapes", "--boundary", "2", value])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [
        f"fcnlib: error: --boundary widths must be 1..1024 pixels, got [2, {value}]"
    ]
