"""Tests for fcnlib.transforms: joint image/mask augmentation and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from fcnlib.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomScale,
    denormalize,
    eval_transforms,
    train_transforms,
)

# Well separated colours: label k is drawn with COLOURS[k].
COLOURS = np.array(
    [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], dtype=np.uint8
)


def blocky_mask(height: int, width: int, labels: list[int], block: int, seed: int) -> np.ndarray:
    """uint8 H x W mask made of block x block squares with labels drawn from ``labels``."""
    rng = np.random.default_rng(seed)
    grid = rng.choice(labels, size=(-(-height // block), -(-width // block))).astype(np.uint8)
    return np.kron(grid, np.ones((block, block), np.uint8))[:height, :width]


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_constants() -> None:
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


@pytest.mark.parametrize("mask_kind", ["pil_L", "pil_P", "uint8", "int64", "tv_mask"])
def test_train_output_types_and_shapes(mask_kind: str) -> None:
    mask = blocky_mask(50, 70, [0, 2, 5], 7, seed=1)
    if mask_kind == "pil_L":
        mask_in = Image.fromarray(mask, "L")
    elif mask_kind == "pil_P":
        mask_in = Image.fromarray(mask, "P")  # the palette index is the label, whatever the colours
        mask_in.putpalette(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8).tolist())
    elif mask_kind == "uint8":
        mask_in = torch.from_numpy(mask)
    elif mask_kind == "int64":
        mask_in = torch.from_numpy(mask).long()
    else:
        mask_in = tv_tensors.Mask(torch.from_numpy(mask)[None])
    torch.manual_seed(0)
    image, labels = train_transforms(crop_size=(40, 56))(Image.fromarray(random_image(50, 70)), mask_in)
    assert type(image) is torch.Tensor and type(labels) is torch.Tensor
    assert image.dtype == torch.float32 and image.shape == (3, 40, 56)
    assert labels.dtype == torch.int64 and labels.shape == (40, 56)
    assert set(labels.unique().tolist()) <= {0, 2, 5, 255}


def test_mask_resize_is_nearest_no_new_labels() -> None:
    image = random_image(61, 83)
    mask = blocky_mask(61, 83, [0, 3, 7, 12], 5, seed=2)
    transform = train_transforms(crop_size=48, scale_range=(0.3, 3.0))
    for seed in range(20):
        torch.manual_seed(seed)
        _, labels = transform(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask))
        assert set(labels.unique().tolist()) <= {0, 3, 7, 12, 255}


def test_random_scale_uses_nearest_for_masks_even_if_asked_for_bilinear() -> None:
    mask = tv_tensors.Mask(torch.tensor([[[0, 10], [20, 30]]], dtype=torch.uint8))
    image = tv_tensors.Image(torch.zeros(3, 2, 2, dtype=torch.uint8))
    _, scaled = RandomScale((2.0, 2.0))(image, mask)  # default interpolation is bilinear
    expected = torch.tensor(np.kron(np.array([[0, 10], [20, 30]]), np.ones((2, 2))), dtype=torch.uint8)
    assert torch.equal(scaled[0], expected)


def test_random_scale_range_of_output_sizes() -> None:
    image = tv_tensors.Image(torch.zeros(3, 40, 60, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.zeros(1, 40, 60, dtype=torch.uint8))
    heights = []
    for seed in range(30):
        torch.manual_seed(seed)
        out_image, out_mask = RandomScale((0.5, 2.0))(image, mask)
        assert out_image.shape[-2:] == out_mask.shape[-2:]
        height, width = out_image.shape[-2:]
        assert 20 <= height <= 80 and abs(width / height - 1.5) < 0.05
        heights.append(height)
    assert min(heights) < 35 and max(heights) > 65  # the whole range is used


def test_small_image_is_padded_with_ignore_index() -> None:
    image = random_image(20, 30)
    mask = blocky_mask(20, 30, [1, 2], 4, seed=3)
    transform = train_transforms(crop_size=64, scale_range=(1.0, 1.0), color_jitter=False)
    out_image, labels = transform(Image.fromarray(image), Image.fromarray(mask))
    assert out_image.shape == (3, 64, 64) and labels.shape == (64, 64)
    padded = labels == 255
    assert int(padded.sum()) == 64 * 64 - 20 * 30
    # Padded image pixels are 0 before normalisation, i.e. exactly 0 after de-normalisation.
    assert int(denormalize(out_image)[:, padded].max()) == 0
    # The original pixels survive unchanged as one 20 x 30 block.
    rows, cols = torch.nonzero(~padded, as_tuple=True)
    top, left = int(rows.min()), int(cols.min())
    assert (int(rows.max()) - top + 1, int(cols.max()) - left + 1) == (20, 30)
    window = denormalize(out_image)[:, top : top + 20, left : left + 30]
    block = labels[top : top + 20, left : left + 30]
    flipped = not torch.equal(block, torch.from_numpy(mask).long())
    expected = np.ascontiguousarray(image[:, ::-1] if flipped else image)
    assert torch.equal(window, torch.from_numpy(expected).permute(2, 0, 1))


def test_custom_ignore_index_is_used_for_padding() -> None:
    transform = train_transforms(crop_size=16, scale_range=(1.0, 1.0), ignore_index=99)
    _, labels = transform(Image.fromarray(random_image(8, 8)), Image.fromarray(np.zeros((8, 8), np.uint8)))
    assert set(labels.unique().tolist()) == {0, 99}


def test_image_and_mask_stay_aligned() -> None:
    height, width = 90, 120
    checked = 0
    for seed in range(12):
        mask = blocky_mask(height, width, [0, 1, 2, 3, 4, 5], 15, seed=seed)
        mask[:, :3] = 255  # some ignore pixels, coloured like label 0
        image = COLOURS[np.where(mask == 255, 0, mask)]
        torch.manual_seed(seed)
        transform = train_transforms(crop_size=72, scale_range=(0.5, 2.0), color_jitter=False)
        out_image, labels = transform(Image.fromarray(image), Image.fromarray(mask))
        pixels = denormalize(out_image).permute(1, 2, 0).numpy().astype(np.int32)
        distances = ((pixels[:, :, None, :] - COLOURS[None, None].astype(np.int32)) ** 2).sum(-1)
        colour_label = distances.argmin(-1)
        labels_np = labels.numpy()
        # Interior pixels: the 5 x 5 neighbourhood in the output mask holds one (non-ignored) label.
        padded = np.pad(labels_np, 2, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5))
        interior = (windows == labels_np[..., None, None]).all(axis=(-1, -2)) & (labels_np != 255)
        checked += int(interior.sum())
        assert np.array_equal(colour_label[interior], labels_np[interior]), f"misaligned at seed {seed}"
    assert checked > 12 * 72 * 72 * 0.2


def test_flip_is_applied_sometimes_and_jointly() -> None:
    image = COLOURS[blocky_mask(32, 32, [1, 2, 3], 8, seed=5)]
    mask = blocky_mask(32, 32, [1, 2, 3], 8, seed=5)
    transform = train_transforms(crop_size=32, scale_range=(1.0, 1.0), color_jitter=False)
    outcomes = set()
    for seed in range(16):
        torch.manual_seed(seed)
        out_image, labels = transform(Image.fromarray(image), Image.fromarray(mask))
        flipped = torch.equal(labels, torch.from_numpy(mask[:, ::-1].copy()).long())
        assert flipped or torch.equal(labels, torch.from_numpy(mask).long())
        expected = image[:, ::-1] if flipped else image
        assert torch.equal(denormalize(out_image), torch.from_numpy(expected.copy()).permute(2, 0, 1))
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_eval_keeps_size_and_normalises_exactly() -> None:
    image = random_image(37, 53, seed=7)
    mask = np.random.default_rng(8).choice([0, 1, 4, 255], size=(37, 53)).astype(np.uint8)
    out_image, labels = eval_transforms()(Image.fromarray(image), Image.fromarray(mask))
    assert type(out_image) is torch.Tensor and out_image.dtype == torch.float32
    assert out_image.shape == (3, 37, 53)
    assert labels.dtype == torch.int64 and labels.shape == (37, 53)
    assert np.array_equal(labels.numpy(), mask)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    expected = ((image.astype(np.float64) / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(out_image.numpy(), expected, rtol=0, atol=1e-5)
    # A known value: pure white is (1 - mean) / std.
    white, _ = eval_transforms()(Image.new("RGB", (3, 2), (255, 255, 255)), np.zeros((2, 3), np.uint8))
    np.testing.assert_allclose(white[:, 0, 0].numpy(), (1 - mean) / std, atol=1e-6)


def test_eval_accepts_tensors_and_roundtrips_through_denormalize() -> None:
    image = torch.from_numpy(random_image(19, 23, seed=9)).permute(2, 0, 1)
    out_image, labels = eval_transforms()(image, torch.zeros(1, 19, 23, dtype=torch.int64))
    assert labels.shape == (19, 23)
    restored = denormalize(out_image)
    assert restored.dtype == torch.uint8 and torch.equal(restored, image)
    batch = denormalize(out_image[None].repeat(2, 1, 1, 1))
    assert batch.shape == (2, 3, 19, 23) and torch.equal(batch[1], image)


def test_deterministic_under_manual_seed() -> None:
    image = Image.fromarray(random_image(70, 90, seed=10))
    mask = Image.fromarray(blocky_mask(70, 90, [0, 1, 2], 9, seed=10))
    transform = train_transforms(crop_size=48)
    torch.manual_seed(123)
    first = transform(image, mask)
    torch.manual_seed(123)
    second = transform(image, mask)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    torch.manual_seed(124)
    third = transform(image, mask)
    assert not torch.equal(first[0], third[0])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="does not match"):
        eval_transforms()(Image.new("RGB", (10, 8)), np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match="mode 'L' or 'P'"):
        eval_transforms()(Image.new("RGB", (10, 8)), Image.new("RGB", (10, 8)))
    with pytest.raises(ValueError, match="0..255"):
        eval_transforms()(Image.new("RGB", (2, 2)), torch.full((2, 2), 300))
    with pytest.raises(ValueError, match="crop_size"):
        train_transforms(crop_size=(0, 4))
    with pytest.raises(ValueError, match="scale_range"):
        train_transforms(scale_range=(2.0, 1.0))
