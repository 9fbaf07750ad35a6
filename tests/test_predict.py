"""fcnlib.predict: image loading edge cases, the four prediction modes, memory bound, file outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torchvision.utils import draw_segmentation_masks

from fcnlib.models import fcn8s
from fcnlib.predict import ImageError, load_image, predict, predict_file

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
N = 5


def tiny_model(num_classes: int = N) -> nn.Module:
    """Tiny FCN-8s with He-initialised convolutions (the default init predicts almost one class)."""
    torch.manual_seed(0)
    model = fcn8s(num_classes, width=0.0625, head="light")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_model()


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 H x W x 3 with blob-like structure (so the tiny model predicts several classes)."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8))
    return np.array(small.resize((w, h), Image.Resampling.BICUBIC))


def logits_of(model: nn.Module, image: np.ndarray | Image.Image) -> torch.Tensor:
    """Reference: (C, H, W) logits of torchvision's to_tensor + normalize, one direct model call."""
    x = TF.normalize(TF.to_tensor(image), MEAN, STD)
    with torch.no_grad():
        return model(x[None])[0]


# ------------------------------------------------------------------------------------- modes


@pytest.mark.parametrize("mode", ["whole", "scaled", "tiled", "auto"])
@pytest.mark.parametrize("hw", [(37, 53), (1, 1), (333, 517), (517, 40)])
def test_output_is_int64_label_map_of_input_size(model, mode, hw):
    y = predict(model, smooth_image(*hw), mode=mode, train_size=128, tile=160, overlap=32)
    assert y.shape == hw and y.dtype == torch.int64 and y.device.type == "cpu"
    assert 0 <= int(y.min()) and int(y.max()) < N


def test_whole_equals_argmax_of_direct_model_call(model):
    img = smooth_image(333, 517)
    ref = logits_of(model, img).argmax(0)
    y = predict(model, img, mode="whole")
    assert len(torch.unique(y)) >= 3  # the check means something
    assert torch.equal(y, ref)
    assert torch.equal(predict(model, img, mode="whole", strip_bytes=1), ref)  # one row per strip
    assert torch.equal(predict(model, img, mode="auto"), ref)  # 0.17 MP <= 1 MP


def test_auto_switches_to_scaled_above_max_pixels(model):
    img = smooth_image(200, 300)
    scaled = predict(model, img, mode="scaled", train_size=128)
    assert torch.equal(predict(model, img, max_pixels=200 * 300 - 1, train_size=128), scaled)
    assert torch.equal(predict(model, img, max_pixels=200 * 300, train_size=128), predict(model, img, mode="whole"))


def test_tiled_with_tile_larger_than_image_equals_whole(model):
    img = smooth_image(150, 230)
    whole = predict(model, img, mode="whole")
    assert torch.equal(predict(model, img, mode="tiled", tile=256, overlap=64), whole)
    assert torch.equal(predict(model, img, mode="tiled", tile=230, overlap=64), whole)


def test_tiled_without_overlap_equals_independent_tiles(model):
    img = smooth_image(192, 288)
    x = TF.normalize(TF.to_tensor(img), MEAN, STD)
    ref = torch.empty(192, 288, dtype=torch.int64)
    with torch.no_grad():
        for i in range(2):
            for j in range(3):
                win = x[None, :, 96 * i : 96 * (i + 1), 96 * j : 96 * (j + 1)]
                ref[96 * i : 96 * (i + 1), 96 * j : 96 * (j + 1)] = model(win)[0].argmax(0)
    assert torch.equal(predict(model, img, mode="tiled", tile=96, overlap=0, strip_bytes=3000), ref)


def test_tiled_overlap_blends_and_is_independent_of_strip_size(model):
    img = smooth_image(150, 190)
    kw = dict(mode="tiled", tile=96, overlap=32, scales=(0.6, 1.0), flip=True, return_probs=True)
    one_band = predict(model, img, strip_bytes=10**9, **kw)
    for strip in (1, 4 * N * 190 * 7):  # 1 row, 7 rows per strip: many compactions of the band
        assert torch.allclose(predict(model, img, strip_bytes=strip, **kw), one_band, atol=1e-6)
    assert torch.allclose(one_band.sum(0), torch.ones(150, 190), atol=1e-5)
    # the blend differs from plain whole-image prediction but mostly agrees
    agree = (one_band.argmax(0) == predict(model, img, mode="whole", scales=(0.6, 1.0), flip=True)).float().mean()
    assert 0.5 < agree < 1.0


def test_scaled_upsamples_logits_of_the_resized_image(model):
    img = smooth_image(333, 517)
    small = Image.fromarray(img).resize((128, round(333 * 128 / 517)), Image.Resampling.BILINEAR)
    up = F.interpolate(logits_of(model, small)[None], size=(333, 517), mode="bilinear", align_corners=False)[0]
    probs = predict(model, img, mode="scaled", train_size=128, return_probs=True, strip_bytes=5000)
    assert probs.shape == (N, 333, 517) and probs.dtype == torch.float32
    assert torch.allclose(probs, up.softmax(0), atol=1e-6)
    labels = predict(model, img, mode="scaled", train_size=128, strip_bytes=5000)
    top2 = up.topk(2, dim=0).values
    clear = (top2[0] - top2[1]) > 1e-4  # argmax is only defined up to rounding at near-ties
    assert torch.equal(labels[clear], up.argmax(0)[clear]) and clear.float().mean() > 0.99
    # a train_size equal to the longer side is "whole"
    assert torch.equal(predict(model, img, mode="scaled", train_size=517), predict(model, img, mode="whole"))


def test_flip_averages_softmax_with_flipped_prediction(model):
    img = smooth_image(120, 170)
    a = logits_of(model, img).softmax(0)
    b = logits_of(model, img[:, ::-1].copy()).softmax(0).flip(-1)
    probs = predict(model, img, mode="whole", flip=True, return_probs=True)
    assert torch.allclose(probs, (a + b) / 2, atol=1e-6)
    assert torch.equal(predict(model, img, mode="whole", flip=True), (a + b).argmax(0))
    assert not torch.equal(a.argmax(0), b.argmax(0))  # flipping changes something


def test_multiscale_averages_probabilities_at_original_size(model):
    img = smooth_image(120, 170)
    expected = torch.zeros(N, 120, 170)
    for s in (0.5, 1.5):
        resized = Image.fromarray(img).resize((round(170 * s), round(120 * s)), Image.Resampling.BILINEAR)
        logits = F.interpolate(logits_of(model, resized)[None], size=(120, 170), mode="bilinear", align_corners=False)
        expected += logits[0].softmax(0) / 2
    probs = predict(model, img, mode="whole", scales=(0.5, 1.5), return_probs=True)
    assert torch.allclose(probs, expected, atol=1e-6)


def test_eval_mode_inference_mode_and_training_flag_restored(model):
    seen = []
    hook = model.register_forward_hook(lambda m, i, o: seen.append((m.training, torch.is_inference_mode_enabled())))
    try:
        model.train()
        y = predict(model, smooth_image(40, 50), mode="whole")
        assert model.training is True
        model.eval()
        predict(model, smooth_image(40, 50), mode="whole", device="cpu")
        assert model.training is False
    finally:
        hook.remove()
        model.eval()
    assert seen == [(False, True), (False, True)]
    y[0, 0] = 1  # a normal tensor, not an inference tensor


def test_argument_errors(model):
    img = smooth_image(20, 20)
    with pytest.raises(ValueError, match="mode"):
        predict(model, img, mode="fast")
    with pytest.raises(ValueError, match="overlap"):
        predict(model, img, mode="tiled", tile=64, overlap=64)
    with pytest.raises(ValueError, match="scales"):
        predict(model, img, scales=())
    with pytest.raises(ValueError, match="classes"):
        predict(model, img, num_classes=21)


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_large_photo_scaled_memory_is_bounded():
    """A 20 MP photo with 21 classes: any full-resolution float (C, H, W) tensor would be 1.7 GB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (Linux)
    except OSError:
        pytest.skip("needs /proc/self/clear_refs to reset the peak RSS")
    model = tiny_model(21)
    img = np.random.default_rng(0).integers(0, 256, (3648, 5472, 3), dtype=np.uint8)
    Path("/proc/self/clear_refs").write_text("5")
    base = _rss_mib()
    y = predict(model, img, mode="scaled", train_size=256)
    extra = _hwm_mib() - base
    assert y.shape == (3648, 5472) and y.dtype == torch.int64
    # 152 MB result + 60 MB PIL copy of the input + strips (64 MB each) + small-model activations
    assert extra < 700, f"peak extra memory {extra:.0f} MiB"


# ------------------------------------------------------------------------------- load_image


def test_exif_orientation_is_applied(tmp_path, model):
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, right half blue
    arr[:, 20:] = (0, 0, 255)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.size == (20, 40)  # (W, H) transposed
    top, bottom = np.asarray(loaded)[5, 10], np.asarray(loaded)[35, 10]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60  # red on top after 90 CW
    assert predict(model, path, mode="whole").shape == (40, 20)
    assert predict(model, path, mode="tiled", tile=32, overlap=8).shape == (40, 20)


def test_grayscale_png(tmp_path):
    gray = smooth_image(30, 40)[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = np.asarray(load_image(tmp_path / "g.png"))
    assert out.shape == (30, 40, 3) and (out == gray[:, :, None]).all()
    assert (np.asarray(load_image(gray)) == gray[:, :, None]).all()
    assert (np.asarray(load_image(gray[:, :, None])) == gray[:, :, None]).all()


def test_16bit_png_keeps_the_top_8_bits(tmp_path, model):
    rng = np.random.default_rng(1)
    g16 = (smooth_image(60, 80)[:, :, 0].astype(np.uint16) << 8) | rng.integers(0, 256, (60, 80), dtype=np.uint16)
    g16[0, 0], g16[0, 1] = 65535, 300
    Image.fromarray(g16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")  # really stored and read as 16 bit
    expected = (g16 >> 8).astype(np.uint8)
    out = np.asarray(load_image(tmp_path / "g16.png"))
    assert (out == expected[:, :, None]).all() and out[0, 0, 0] == 255 and out[0, 1, 0] == 1
    assert (np.asarray(load_image(g16)) == expected[:, :, None]).all()  # uint16 array
    as_i = Image.fromarray(g16.astype(np.int32))  # mode 'I' (32-bit container, 16-bit data)
    assert as_i.mode == "I" and (np.asarray(load_image(as_i)) == expected[:, :, None]).all()
    assert torch.equal(predict(model, tmp_path / "g16.png", mode="whole"), predict(model, expected, mode="whole"))


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 10, 50)
    rgba[0, :, 3] = 0  # transparent -> white
    rgba[1, :, 3] = 255  # opaque -> the colour
    rgba[2, :, 3] = 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    for src in (tmp_path / "a.png", rgba):
        out = np.asarray(load_image(src)).astype(int)
        assert (out[0] == 255).all() and (out[1] == (200, 10, 50)).all()
        assert np.abs(out[2] - (np.array([200, 10, 50]) * 128 + 255 * 127) / 255).max() <= 1
    la = np.stack([np.full((3, 3), 100, np.uint8), np.zeros((3, 3), np.uint8)], -1)  # gray + alpha 0
    assert (np.asarray(load_image(la)) == 255).all()


def test_palette_and_cmyk_images(tmp_path):
    idx = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    p = Image.fromarray(idx)
    p.putpalette([10, 20, 30, 200, 0, 0, 0, 255, 0])
    p.save(tmp_path / "p.png")
    expected = np.array([[[10, 20, 30], [200, 0, 0]], [[0, 255, 0], [200, 0, 0]]])
    assert np.array_equal(np.asarray(load_image(tmp_path / "p.png")), expected)
    p.save(tmp_path / "pt.png", transparency=0)  # index 0 transparent -> white
    assert tuple(np.asarray(load_image(tmp_path / "pt.png"))[0, 0]) == (255, 255, 255)
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    out = np.asarray(load_image(tmp_path / "c.jpg")).astype(int)
    assert out.shape == (8, 8, 3) and (np.abs(out - (255, 0, 0)) < 20).all()


def test_numpy_float_and_dtype_checks():
    f = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    assert tuple(np.asarray(load_image(f))[0, 0]) == (0, 128, 255)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(f * 255)
    with pytest.raises(ImageError, match="dtype"):
        load_image(np.zeros((4, 4, 3), dtype=np.int32))
    with pytest.raises(ImageError, match="H x W"):
        load_image(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(TypeError):
        load_image(12)


def _write_bad_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.jpg"
    Image.fromarray(smooth_image(64, 64)).save(good, quality=90)
    data = good.read_bytes()
    files = {
        "empty": tmp_path / "empty.jpg",
        "truncated": tmp_path / "truncated.jpg",
        "not_image": tmp_path / "notes.png",
        "missing": tmp_path / "missing.jpg",
        "directory": tmp_path / "folder.png",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["not_image"].write_text("this is not a picture\nsecond line\n")
    files["directory"].mkdir()
    return files


@pytest.mark.parametrize("kind", ["empty", "truncated", "not_image", "missing", "directory"])
def test_unreadable_files_raise_one_line_image_error(tmp_path, model, kind):
    path = _write_bad_files(tmp_path)[kind]
    for call in (lambda: load_image(path), lambda: load_image(str(path)), lambda: predict(model, path)):
        with pytest.raises(ImageError) as info:
            call()
        msg = str(info.value)
        assert isinstance(info.value, ValueError)
        assert path.name in msg and "\n" not in msg, msg


# ------------------------------------------------------------------------------ predict_file


def _palette(n: int) -> list[tuple[int, int, int]]:
    return [(37 * i % 256, 91 * i % 256, 53 * i % 256) for i in range(256)]


def test_predict_file_writes_palette_mask_and_overlay(tmp_path, model):
    img = smooth_image(70, 90)
    src = tmp_path / "photo.png"
    Image.fromarray(img).save(src)
    classes = [f"c{i}" for i in range(N)]
    pal = _palette(256)
    out = tmp_path / "out"
    mask_path, overlay_path = predict_file(model, src, out, classes=classes, palette=pal, mode="whole")
    assert (mask_path.name, overlay_path.name) == ("photo_mask.png", "photo_overlay.png")
    assert sorted(os.listdir(out)) == ["photo_mask.png", "photo_overlay.png"]  # no temporary files
    labels = predict(model, img, mode="whole")
    with Image.open(mask_path) as m:
        assert m.mode == "P" and m.size == (90, 70)
        assert np.array_equal(np.asarray(m), labels.numpy().astype(np.uint8))
        assert m.getpalette()[: 3 * N] == [v for c in pal[:N] for v in c]
    with Image.open(overlay_path) as o:
        both = np.asarray(o.convert("RGB"))
    assert both.shape == (70, 180, 3)
    assert np.array_equal(both[:, :90], img)
    masks = labels[None] == torch.arange(N)[:, None, None]
    present = masks.flatten(1).any(1)
    direct = draw_segmentation_masks(torch.from_numpy(img).permute(2, 0, 1), masks[present], alpha=0.5,
                                     colors=[pal[i] for i in range(N) if present[i]])
    assert np.array_equal(both[:, 90:], direct.permute(1, 2, 0).numpy())


def test_predict_file_refuses_to_overwrite(tmp_path, model):
    src = tmp_path / "a.png"
    Image.fromarray(smooth_image(40, 40)).save(src)
    kw = dict(classes=[str(i) for i in range(N)], palette=_palette(256), mode="whole")
    mask_path, _ = predict_file(model, src, tmp_path, **kw)
    before = mask_path.read_bytes()
    with pytest.raises(FileExistsError) as info:
        predict_file(model, src, tmp_path, **kw)
    assert "exists (use --overwrite)" in str(info.value) and "\n" not in str(info.value)
    assert mask_path.read_bytes() == before
    predict_file(model, src, tmp_path, overwrite=True, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_mask.png", "a_overlay.png"]


def test_predict_file_interrupted_write_leaves_nothing(tmp_path, model, monkeypatch):
    src = tmp_path / "b.png"
    Image.fromarray(smooth_image(40, 40)).save(src)
    out = tmp_path / "out"

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        predict_file(model, src, out, classes=[str(i) for i in range(N)], palette=_palette(256), mode="whole")
    assert list(out.iterdir()) == []
