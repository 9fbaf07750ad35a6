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
from fcnlib.outputs import predict_file
from fcnlib.predict import ImageError, load_image, predict

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
    kw = dict(mode="tiled", tile=96, overlap=32, scale=(0.6, 1.0), flip=True, return_probs=True)
    one_band = predict(model, img, strip_bytes=10**9, **kw)
    for strip in (1, 4 * N * 190 * 7):  # 1 row, 7 rows per strip: many compactions of the band
        assert torch.allclose(predict(model, img, strip_bytes=strip, **kw), one_band, atol=1e-6)
    assert torch.allclose(one_band.sum(0), torch.ones(150, 190), atol=1e-5)
    # the blend differs from plain whole-image prediction but mostly agrees
    agree = (one_band.argmax(0) == predict(model, img, mode="whole", scale=(0.6, 1.0), flip=True)).float().mean()
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


def test_flip_averages_logits_with_flipped_prediction(model):
    img = smooth_image(120, 170)
    a = logits_of(model, img)
    b = logits_of(model, img[:, ::-1].copy()).flip(-1)
    probs = predict(model, img, mode="whole", flip=True, return_probs=True)
    assert torch.allclose(probs, ((a + b) / 2).softmax(0), atol=1e-6)
    assert torch.equal(predict(model, img, mode="whole", flip=True), (a + b).argmax(0))
    assert not torch.equal(a.argmax(0), b.argmax(0))  # flipping changes something


def test_multiscale_averages_logits_at_original_size(model):
    img = smooth_image(120, 170)
    expected = torch.zeros(N, 120, 170)
    for s in (0.5, 1.5):
        resized = Image.fromarray(img).resize((round(170 * s), round(120 * s)), Image.Resampling.BILINEAR)
        logits = F.interpolate(logits_of(model, resized)[None], size=(120, 170), mode="bilinear", align_corners=False)
        expected += logits[0] / 2
    probs = predict(model, img, mode="whole", scale=(0.5, 1.5), return_probs=True)
    assert torch.allclose(probs, expected.softmax(0), atol=1e-5)


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
    with pytest.raises(ValueError, match="scale"):
        predict(model, img, scale=())
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
    assert both.shape[0] == 70 and both.shape[1] > 180 and both.shape[2] == 3  # image | overlay | legend
    assert np.array_equal(both[:, :90], img)
    masks = labels[None] == torch.arange(N)[:, None, None]
    present = masks.flatten(1).any(1)
    direct = draw_segmentation_masks(torch.from_numpy(img).permute(2, 0, 1), masks[present], alpha=0.5,
                                     colors=[pal[i] for i in range(N) if present[i]])
    assert np.array_equal(both[:, 90:180], direct.permute(1, 2, 0).numpy())


def test_predict_file_refuses_to_overwrite(tmp_path, model):
    src = tmp_path / "a.png"
    Image.fromarray(smooth_image(40, 40)).save(src)
    kw = dict(classes=[str(i) for i in range(N)], palette=_palette(256), mode="whole")
    mask_path, _ = predict_file(model, src, tmp_path, **kw)
    before = mask_path.read_bytes()
    with pytest.raises(FileExistsError) as info:
        predict_file(model, src, tmp_path, **kw)
    assert "exists (use `overwrite`)" in str(info.value) and "\n" not in str(info.value)
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


# ------------------------------------------------------------------------------ pixel limit


def declared_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of ``width x height`` zeros: a few KB on disk, huge once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    return declared_png(tmp_path_factory.mktemp("huge") / "huge.png", 12000, 12000)


def test_declared_size_is_refused_before_decoding(huge_png, model, tmp_path):
    from fcnlib.data.images import DEFAULT_MAX_IMAGE_PIXELS, probe_image

    assert huge_png.stat().st_size < 40_000 and DEFAULT_MAX_IMAGE_PIXELS == 100_000_000
    for call in (lambda: load_image(huge_png), lambda: predict(model, huge_png),
                 lambda: predict_file(model, huge_png, tmp_path / "out", classes=list("abcde"))):
        with pytest.raises(ImageError) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(str(huge_png))
        assert "12000 x 12000 px (144 MP)" in msg and "100,000,000 pixels" in msg and "`max_image_pixels`" in msg
    assert not (tmp_path / "out").exists()
    assert probe_image(huge_png, max_image_pixels=12000 * 12000) == (12000, 12000)


def test_limit_replaces_pillows_own_bomb_check(tmp_path):
    """200 MP is past Pillow's DecompressionBombError threshold (~179 MP); a raised limit is honoured."""
    from fcnlib.data.images import probe_image

    path = declared_png(tmp_path / "wide.png", 20000, 10000)
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match=r"20000 x 10000 px \(200 MP\) is more than the limit"):
        probe_image(path)
    assert probe_image(path, max_image_pixels=300_000_000) == (20000, 10000)
    assert probe_image(path, max_image_pixels=None) == (20000, 10000)
    assert Image.MAX_IMAGE_PIXELS == before  # restored


def test_limit_applies_to_arrays_and_pil_images_and_is_checked():
    arr = np.zeros((64, 64, 3), np.uint8)
    assert load_image(arr, max_image_pixels=4096).size == (64, 64)
    assert load_image(Image.fromarray(arr), max_image_pixels=4096).size == (64, 64)
    for source in (arr, Image.fromarray(arr)):
        with pytest.raises(ImageError, match="64 x 64 px .* limit of 4,095 pixels"):
            load_image(source, max_image_pixels=4095)
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_image_pixels must be a positive integer or None"):
            load_image(arr, max_image_pixels=bad)


def test_predict_re_exports_the_shared_loader():
    import fcnlib.data as data
    import fcnlib.data.images as images
    import fcnlib.predict as predict_module

    assert predict_module.load_image is images.load_image is data.load_image
    assert predict_module.ImageError is images.ImageError is data.ImageError
    assert predict_module.DEFAULT_MAX_IMAGE_PIXELS == images.DEFAULT_MAX_IMAGE_PIXELS
    assert predict_module.DEFAULT_MAX_PIXELS == 1024 * 1024  # the auto-mode threshold, a different thing


# ------------------------------------------------------------------------------ names and legend


def test_output_stems_are_distinct_and_deterministic():
    from fcnlib.outputs import output_stems

    assert output_stems(["a/x.jpg", "b/x.png", "c/x.jpg"]) == ["x", "x-2", "x-3"]
    assert output_stems(["x.jpg", "x.png", "x-2.jpg"]) == ["x", "x-3", "x-2"]
    assert output_stems(["p/X.jpg", "q/x.jpg", "y.png"]) == ["X", "x-2", "y"]  # case-insensitive clash
    assert output_stems(["same.png", "same.png"]) == ["same", "same-2"]
    assert output_stems([]) == []


def test_plan_outputs_refuses_existing_files_and_inputs(tmp_path):
    from fcnlib.outputs import plan_outputs

    (tmp_path / "x_mask.png").write_bytes(b"old")
    assert plan_outputs(["a/x.jpg", "b/y.jpg"], tmp_path / "new") == ["x", "y"]
    with pytest.raises(FileExistsError, match=r"x_mask.png exists \(use `overwrite`\)"):
        plan_outputs(["a/x.jpg"], tmp_path)
    assert plan_outputs(["a/x.jpg"], tmp_path, overwrite=True) == ["x"]
    with pytest.raises(FileExistsError, match="would replace an input image"):
        plan_outputs([tmp_path / "p.png", tmp_path / "p_mask.png"], tmp_path, overwrite=True)


def _distinct_palette(n: int) -> list[tuple[int, int, int]]:
    """Colours that are neither grey (text antialiasing) nor black/white, and all different."""
    return [(20 + 40 * (i % 6), 200 - 30 * (i // 6), 90 + 17 * i) for i in range(n)]


def _colour_pixels(picture: np.ndarray, colour) -> int:
    return int((picture == np.array(colour, np.uint8)).all(-1).sum())


def test_legend_panel_has_a_swatch_per_present_class():
    from fcnlib.outputs import legend_panel

    colours = _distinct_palette(8)
    classes = [f"class number {i}" for i in range(8)]
    panel = legend_panel(classes, colours, [1, 4, 6], 300)
    picture = np.asarray(panel)
    assert panel.mode == "RGB" and panel.height == 300 and panel.width > 50
    for label in range(8):
        count = _colour_pixels(picture, colours[label])
        assert (count >= 64) == (label in (1, 4, 6)), (label, count)  # 11 px swatches, black outline
    assert (picture.max(-1) < 100).sum() > 100  # black text and outlines
    tall = legend_panel(classes, colours, list(range(8)), 19)  # one entry per column when 19 px high
    assert tall.height == 19 and tall.width > 4 * panel.width


def test_predict_file_overlay_has_a_legend_of_the_classes_present(tmp_path, model):
    img = smooth_image(160, 120)
    src = tmp_path / "scene.jpg"
    Image.fromarray(img).save(src, quality=95)
    colours = _distinct_palette(N)
    _, overlay_path = predict_file(model, src, tmp_path, classes=[f"c{i}" for i in range(N)], palette=colours,
                                   mode="whole", name="renamed")
    assert overlay_path.name == "renamed_overlay.png" and (tmp_path / "renamed_mask.png").is_file()
    with Image.open(tmp_path / "renamed_mask.png") as m:
        labels = np.asarray(m)
        assert m.mode == "P" and m.size == (120, 160) and labels.max() < N
    with Image.open(overlay_path) as o:
        picture = np.asarray(o.convert("RGB"))
    assert picture.shape[0] == 160 and picture.shape[1] > 240
    legend = picture[:, 240:]
    present = set(np.unique(labels).tolist())
    assert len(present) >= 2
    for label in range(N):
        assert (_colour_pixels(legend, colours[label]) >= 64) == (label in present), label


def test_train_size_and_scales_cannot_blow_an_image_past_the_limit(model):
    img = smooth_image(30, 40)
    with pytest.raises(ImageError, match=r"predicting at 400 x 300 px .* limit of 100,000 pixels"):
        predict(model, img, mode="whole", scale=(1.0, 10.0), max_image_pixels=100_000)
    with pytest.raises(ImageError, match=r"predicting at 4000 x 3000 px"):
        predict(model, img, mode="scaled", train_size=4000, max_image_pixels=10**6)
    assert predict(model, img, mode="whole", scale=(0.5, 2.0), max_image_pixels=4800).shape == (30, 40)
