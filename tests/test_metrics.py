"""fcnlib.metrics against NumPy brute-force counts; the seed's histc pitfalls demonstrated."""

import numpy as np
import pytest
import torch

from fcnlib.metrics import (
    SegmentationMetric,
    confusion_matrix,
    histc_intersection_union,
    histc_pixel_accuracy,
    seed_batch_intersection_union,
    seed_batch_pix_accuracy,
)

C = 6


def brute_force(preds, targets, num_classes, ignore=255):
    """Pixel-by-pixel NumPy loops: matrix, pixAcc, meanAcc, per-class IoU (NaN if absent), mIoU, fwIoU."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(np.asarray(preds).ravel(), np.asarray(targets).ravel()):
        if t != ignore:
            m[t, p] += 1
    ious, accs, fw = [], [], 0.0
    total = m.sum()
    for c in range(num_classes):
        tp = m[c, c]
        gt = m[c, :].sum()
        pr = m[:, c].sum()
        union = gt + pr - tp
        ious.append(tp / union if union else np.nan)
        accs.append(tp / gt if gt else np.nan)
        if union:
            fw += gt / total * tp / union
    return m, {
        "pixAcc": np.trace(m) / total,
        "meanAcc": np.nanmean(accs),
        "IoU": np.array(ious),
        "mIoU": np.nanmean(ious),
        "fwIoU": fw,
    }


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, C, 9, 11, generator=g)
    target = torch.randint(0, C, (3, 9, 11), generator=g)
    target[target == 4] = 1  # class 4 absent from the ground truth ...
    logits[:, 4] -= 100  # ... and from the predictions: its IoU must be NaN, not 0
    target[target == 5] = 2  # class 5 absent from the ground truth but predicted: IoU 0
    target[:, 0, :] = 255
    target[1, :, :4] = 255
    return logits, target


def test_confusion_matrix_equals_numpy_count(data):
    logits, target = data
    expected, _ = brute_force(logits.argmax(1).numpy(), target.numpy(), C)
    m = confusion_matrix(logits.argmax(1), target, C)
    assert m.dtype == torch.int64 and m.shape == (C, C)
    np.testing.assert_array_equal(m.numpy(), expected)


def test_metric_equals_brute_force_over_batches(data):
    logits, target = data
    metric = SegmentationMetric(C)
    for i in range(3):  # one image at a time, logits in
        metric.update(logits[i : i + 1], target[i : i + 1])
    got = metric.compute()
    m, expected = brute_force(logits.argmax(1).numpy(), target.numpy(), C)
    np.testing.assert_array_equal(got["confusion"].numpy(), m)
    for key in ("pixAcc", "meanAcc", "mIoU", "fwIoU"):
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
    np.testing.assert_allclose(got["IoU"].numpy(), expected["IoU"], rtol=1e-12)
    assert np.isnan(got["IoU"][4].item()) and got["IoU"][5].item() == 0.0


def test_labels_and_logits_give_same_result(data):
    logits, target = data
    a, b = SegmentationMetric(C), SegmentationMetric(C)
    a.update(logits, target)
    b.update(logits.argmax(1), target)
    assert a.compute()["mIoU"] == b.compute()["mIoU"]


def test_reset_and_merge(data):
    logits, target = data
    whole = SegmentationMetric(C)
    whole.update(logits, target)
    left, right = SegmentationMetric(C), SegmentationMetric(C)
    left.update(logits[:1], target[:1])
    right.update(logits[1:], target[1:])
    left.merge(right)
    assert torch.equal(left.compute()["confusion"], whole.compute()["confusion"])
    whole.reset()
    assert whole.compute()["confusion"].sum() == 0


def test_out_of_range_label_is_rejected():
    with pytest.raises(ValueError, match=r"target labels \[7\] are outside 0..5"):
        confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 7], [255, 1]]), C)
    with pytest.raises(ValueError, match="predicted labels are outside"):
        confusion_matrix(torch.tensor([[0, 6]]), torch.tensor([[0, 1]]), C)


def test_per_image_mean_is_the_seed_protocol(data):
    logits, target = data
    metric = SegmentationMetric(C, per_image=True)
    metric.update(logits, target)
    got = metric.compute()
    preds = logits.argmax(1).numpy()
    per_pix, per_miou = [], []
    for p, t in zip(preds, target.numpy()):
        _, e = brute_force(p, t, C)
        per_pix.append(e["pixAcc"])
        per_miou.append(e["mIoU"])
    assert got["pixAcc_per_image"] == pytest.approx(np.mean(per_pix), rel=1e-12)
    assert got["mIoU_per_image"] == pytest.approx(np.mean(per_miou), rel=1e-12)


def test_per_image_mean_differs_from_dataset_level():
    # Image 1: 90 pixels of class 1, all right, 10 of class 0 right. Image 2: 100 pixels of class 2,
    # only 10 right (the rest predicted 0). Dataset level: IoU = [10/100, 1, 10/100] -> mIoU 0.4.
    # Per image: mIoU1 = 1, mIoU2 = mean(0/90, 10/100) = 0.05 -> 0.525.
    t1 = torch.tensor([1] * 90 + [0] * 10).reshape(1, 10, 10)
    t2 = torch.full((1, 10, 10), 2)
    p2 = torch.zeros(1, 10, 10, dtype=torch.long)
    p2.view(-1)[:10] = 2
    metric = SegmentationMetric(3, per_image=True)
    metric.update(t1, t1)
    metric.update(p2, t2)
    got = metric.compute()
    assert got["mIoU"] == pytest.approx(0.4)
    assert got["mIoU_per_image"] == pytest.approx(0.525)
    assert got["pixAcc"] == pytest.approx(110 / 200) and got["pixAcc_per_image"] == pytest.approx(0.55)


def test_fixed_histc_agrees_with_confusion_matrix(data):
    logits, target = data
    inter, union = histc_intersection_union(logits, target, C)
    m, _ = brute_force(logits.argmax(1).numpy(), target.numpy(), C)
    np.testing.assert_array_equal(inter.numpy(), np.diag(m))
    np.testing.assert_array_equal(union.numpy(), m.sum(0) + m.sum(1) - np.diag(m))
    correct, labelled = histc_pixel_accuracy(logits, target)
    assert (correct, labelled) == (np.trace(m), m.sum())


def test_seed_pix_accuracy_truncation_pitfall():
    # Logits 0.9 vs 0.2: class 0 wins, but output.long() makes both 0 and argmax picks... still 0.
    # Logits 0.2 vs 0.9: class 1 wins, output.long() ties them at 0 and argmax returns class 0.
    logits = torch.tensor([[[[0.9]], [[0.2]]], [[[0.2]], [[0.9]]]])  # (2, 2, 1, 1)
    target = torch.tensor([[[0]], [[1]]])
    assert histc_pixel_accuracy(logits, target) == (2, 2)
    assert seed_batch_pix_accuracy(logits, target) == (1, 2)


def test_seed_code_is_right_only_with_ignore_minus_one(data):
    logits, target = data
    m, _ = brute_force(logits.argmax(1).numpy(), target.numpy(), C)
    as_minus_one = torch.where(target == 255, -1, target)
    inter, union = seed_batch_intersection_union(logits, as_minus_one, C)
    np.testing.assert_array_equal(union.numpy(), m.sum(0) + m.sum(1) - np.diag(m))
    # Integer-valued logits, so that the output.long() truncation cannot interfere here.
    integer_logits = torch.nn.functional.one_hot(logits.argmax(1), C).permute(0, 3, 1, 2).float() * 5
    assert seed_batch_pix_accuracy(integer_logits, as_minus_one) == (np.trace(m), m.sum())
    assert seed_batch_pix_accuracy(logits, as_minus_one)[0] != np.trace(m)  # truncation does interfere
    # With VOC's 255 the ignored pixels count: the union grows and pixAcc's denominator too.
    _, union255 = seed_batch_intersection_union(logits, target, C)
    assert (union255 >= union).all() and union255.sum() > union.sum()
    correct, labelled = seed_batch_pix_accuracy(logits, target)
    assert labelled == target.numel() > m.sum()


def test_histc_respects_other_ignore_values(data):
    logits, target = data
    t2 = torch.where(target == 255, -1, target)
    assert torch.equal(histc_intersection_union(logits, t2, C, ignore_index=-1)[1], histc_intersection_union(logits, target, C)[1])


def test_empty_metric_is_nan():
    got = SegmentationMetric(3).compute()
    assert np.isnan(got["mIoU"]) and np.isnan(got["pixAcc"])
