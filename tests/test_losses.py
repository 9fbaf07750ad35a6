"""fcnlib.losses against an independent log-softmax computation."""

import math

import pytest
import torch

from fcnlib.losses import SegmentationLoss, pixel_cross_entropy


def reference_loss(logits, target, weight=None, ignore_index=255):
    """Loop over pixels: -w[t] * log softmax(logits)[t], averaged with the weights of valid pixels."""
    total, norm = 0.0, 0.0
    b, c, h, w = logits.shape
    for n in range(b):
        for i in range(h):
            for j in range(w):
                t = int(target[n, i, j])
                if t == ignore_index:
                    continue
                z = [float(v) for v in logits[n, :, i, j]]
                m = max(z)
                log_sum = m + math.log(sum(math.exp(v - m) for v in z))
                wt = 1.0 if weight is None else float(weight[t])
                total += wt * (log_sum - z[t])
                norm += wt
    return total / norm


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 5, 7, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 4, (2, 5, 7), generator=g)
    target[0, :2] = 255
    target[1, :, 3] = 255
    return logits, target


def test_matches_hand_computation_with_ignored_pixels(batch):
    logits, target = batch
    assert pixel_cross_entropy(logits, target).item() == pytest.approx(reference_loss(logits, target), rel=1e-12)


def test_class_weights(batch):
    logits, target = batch
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    got = pixel_cross_entropy(logits, target, weight=weight).item()
    assert got == pytest.approx(reference_loss(logits, target, weight), rel=1e-12)


def test_ignored_pixels_do_not_change_the_loss(batch):
    logits, target = batch
    changed = logits.clone()
    changed[0, :, :2] = 100 * torch.randn_like(changed[0, :, :2])
    assert pixel_cross_entropy(changed, target).item() == pytest.approx(pixel_cross_entropy(logits, target).item())


def test_all_ignored_gives_zero_with_gradient():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = pixel_cross_entropy(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_gradient_matches_softmax_minus_onehot():
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[[0, 2], [255, 1]]])
    pixel_cross_entropy(logits, target).backward()
    p = torch.softmax(logits.detach(), 1)
    onehot = torch.zeros_like(p)
    for i, j in [(0, 0), (0, 1), (1, 1)]:
        onehot[0, target[0, i, j], i, j] = 1
    expected = (p - onehot) / 3
    expected[0, :, 1, 0] = 0
    torch.testing.assert_close(logits.grad, expected)


def test_mix_loss_sums_auxiliary_outputs(batch):
    logits, target = batch
    aux = logits.flip(1)
    main = reference_loss(logits, target)
    side = reference_loss(aux, target)
    assert SegmentationLoss()((logits, aux), target).item() == pytest.approx(main + side, rel=1e-12)
    assert SegmentationLoss(aux_weight=0.4)([logits, aux], target).item() == pytest.approx(main + 0.4 * side, rel=1e-12)
    assert SegmentationLoss()(logits, target).item() == pytest.approx(main, rel=1e-12)


def test_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="logits are"):
        pixel_cross_entropy(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
