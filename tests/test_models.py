"""fcnlib.models: VGG16 parity with torchvision, convolutionalize, exact output sizes, staged growth."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16, vgg16_bn

from fcnlib import models
from fcnlib.models import BackboneWeightsError
from fcnlib.models import FCNHead, build_model, cfgs, convolutionalize, fcn8s, fcn16s, fcn32s, grow, make_layers


@pytest.mark.parametrize("batch_norm", [False, True])
def test_make_layers_loads_torchvision_vgg16_strictly_and_matches(batch_norm):
    tv = (vgg16_bn if batch_norm else vgg16)().features.eval()
    ours = make_layers(cfgs["D"], batch_norm=batch_norm).eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.randn(2, 3, 67, 45)
    torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)
    assert len(ours) == len(tv)


def test_make_layers_width_scales_every_channel_count():
    layers = make_layers(cfgs["D"], width=0.25)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    expected = [v // 4 for v in cfgs["D"] if v != "M"]
    assert [c.out_channels for c in convs] == expected
    assert [c.in_channels for c in convs] == [3] + expected[:-1]
    assert layers(torch.randn(1, 3, 64, 96)).shape == (1, 128, 2, 3)


def test_make_layers_rejects_nonpositive_width():
    with pytest.raises(ValueError, match="width must be positive"):
        make_layers(cfgs["D"], width=0)


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return vgg16(num_classes=10).eval()


def test_convolutionalize_equals_vgg_at_224(vgg):
    fcn = convolutionalize(vgg).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = vgg(x)
        got = fcn(x)
    assert got.shape == (2, 10, 1, 1)
    torch.testing.assert_close(got.flatten(1), expected, rtol=1e-4, atol=1e-5)


def test_convolutionalize_gives_score_map_on_larger_input(vgg):
    fcn = convolutionalize(vgg).eval()
    with torch.no_grad():
        out = fcn(torch.randn(1, 3, 384, 512))
    assert out.shape == (1, 10, 6, 10)


def test_convolutionalize_does_not_modify_the_classifier(vgg):
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    convolutionalize(vgg)
    for k, v in vgg.state_dict().items():
        assert torch.equal(v, before[k])


def test_fcnhead_uses_quarter_width_not_seed_erratum():
    head = FCNHead(512, 21)
    assert head[0].out_channels == 128  # 512 // 4; the seed's // 512 would give 1
    assert head(torch.randn(2, 512, 3, 5)).shape == (2, 21, 3, 5)


SIZES = [(1, 1), (7, 5), (31, 33), (32, 32), (33, 65), (97, 41), (130, 67)]


@pytest.mark.parametrize(
    "builder,head,upsample", list(itertools.product([fcn32s, fcn16s, fcn8s], ["paper", "light"], ["bilinear", "deconv"]))
)
def test_output_is_exactly_input_size(builder, head, upsample):
    model = builder(7, head=head, upsample=upsample, width=0.0625).eval()
    with torch.no_grad():
        for h, w in SIZES:
            out = model(torch.randn(2, 3, h, w))
            assert out.shape == (2, 7, h, w), (h, w)
            assert torch.isfinite(out).all()


def test_full_width_fcn8s_odd_size_and_parameter_count():
    model = fcn8s(21).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 75, 101)).shape == (1, 21, 75, 101)
    n = sum(p.numel() for p in model.parameters())
    vgg_convs = sum(p.numel() for p in vgg16().features.parameters())
    fc6, fc7, score = 512 * 4096 * 49 + 4096, 4096 * 4096 + 4096, 4096 * 21 + 21
    skips = 512 * 21 + 21 + 256 * 21 + 21
    assert n == vgg_convs + fc6 + fc7 + score + skips  # bilinear mode adds no parameters


@pytest.mark.parametrize("factor,size", [(2, (10, 12)), (2, (11, 13)), (8, (40, 48)), (8, (47, 55)), (8, (44, 41))])
def test_deconv_keeps_a_constant_map_constant_up_to_every_border(factor, size):
    # Bilinear initialisation, replicate padding and cropping: every output pixel, including the
    # up to factor-1 extra rows that floor pooling dropped, gets the full kernel weight.
    up = models.Upsampler(3, factor, "deconv")
    y = up(torch.full((1, 3, 5, 6), 2.5), size)
    assert y.shape[-2:] == size
    torch.testing.assert_close(y, torch.full_like(y, 2.5))


def test_deconv_matches_bilinear_interpolation_inside():
    # A linear ramp is reproduced exactly by bilinear upsampling (align_corners=False geometry).
    x = torch.arange(6.0).repeat(5, 1)[None, None]  # values 0..5 along the width
    y = models.Upsampler(1, 2, "deconv")(x, (10, 12))
    expected = F.interpolate(x, size=(10, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(y[..., 1:-1], expected[..., 1:-1])
    w = models.bilinear_kernel(1, 4)[0, 0]
    torch.testing.assert_close(w[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))


def test_fcn_deconv_mode_has_no_dead_output_pixels():
    m = fcn8s(4, width=0.0625, upsample="deconv", head="light").eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 333, 517))  # 333 = 8*41 + 5, 517 = 8*64 + 5
    assert out[0, :, -4:].abs().amax() > 0 and out[0, :, :, -4:].abs().amax() > 0


def test_skip_score_layers_start_at_zero():
    m = fcn8s(5, width=0.0625)
    for layer in (m.score_pool3, m.score_pool4):
        assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0


def test_weights_backbone_from_saved_state_dict(tmp_path):
    torch.manual_seed(1)
    tv = vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(tv.state_dict(), path)
    model = fcn32s(21, weights_backbone=path).eval()
    for k, v in tv.features.state_dict().items():
        assert torch.equal(model.features.state_dict()[k], v)
    torch.testing.assert_close(model.head[0].weight, tv.classifier[0].weight.reshape(4096, 512, 7, 7))
    torch.testing.assert_close(model.head[3].weight.flatten(1), tv.classifier[3].weight)
    torch.testing.assert_close(model.head[3].bias, tv.classifier[3].bias)
    light = fcn8s(21, head="light", weights_backbone=str(path))
    assert torch.equal(light.features[0].weight, tv.features[0].weight)


def test_weights_backbone_errors(tmp_path):
    with pytest.raises(BackboneWeightsError, match="backbone weights not found"):
        fcn8s(21, weights_backbone=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read backbone weights"):
        fcn8s(21, weights_backbone=bad)
    other = tmp_path / "other.pth"
    torch.save({"foo": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a VGG16 state dict"):
        fcn8s(21, weights_backbone=other)
    with pytest.raises(ValueError, match="need width=1.0"):
        fcn8s(21, weights_backbone=other, width=0.5)


def test_imagenet_weights_use_torchvision_checksummed_download(monkeypatch):
    from torchvision.models import VGG16_Weights

    calls = {}
    state = vgg16().state_dict()

    def fake_get_state_dict(self, *args, **kwargs):
        calls.update(kwargs, url=self.url)
        return state

    monkeypatch.setattr(VGG16_Weights, "get_state_dict", fake_get_state_dict)
    model = fcn16s(21, weights_backbone="IMAGENET1K_V1")
    assert calls["check_hash"] is True and calls["url"].endswith("vgg16-397923af.pth")
    assert torch.equal(model.features[28].weight, state["features.28.weight"])


def test_build_model_by_name_and_bad_arguments():
    assert build_model("fcn16s", 4, width=0.0625).stride == 16
    with pytest.raises(ValueError, match="unknown model 'fcn4s'"):
        build_model("fcn4s")
    with pytest.raises(ValueError, match="head must be"):
        fcn8s(head="heavy")
    with pytest.raises(ValueError, match="upsample must be"):
        fcn8s(upsample="nearest")


@pytest.mark.parametrize("head,upsample", [("paper", "bilinear"), ("light", "deconv"), ("paper", "deconv")])
def test_grown_children_copy_every_weight_and_start_identical_to_parent(head, upsample):
    torch.manual_seed(0)
    p32 = fcn32s(6, head=head, upsample=upsample, width=0.125).eval()
    for p in p32.parameters():  # a "trained" parent: perturb every weight
        p.data.add_(0.05 * torch.randn_like(p))
    c16 = grow(p32).eval()
    c8 = grow(c16).eval()
    assert (c16.stride, c8.stride) == (16, 8)
    for child in (c16, c8):
        cs = child.state_dict()
        for k, v in p32.state_dict().items():
            assert torch.equal(cs[k], v), k
    assert torch.count_nonzero(c8.score_pool3.weight) == 0
    assert torch.equal(c8.score_pool4.weight, c16.score_pool4.weight)
    x = torch.randn(2, 3, 97, 131)
    with torch.no_grad():
        parent = p32(x)
        torch.testing.assert_close(c16(x), parent, rtol=0, atol=0)
        torch.testing.assert_close(c8(x), parent, rtol=0, atol=0)
    # Once the new skip layer moves, the child's prediction moves with it.
    with torch.no_grad():
        c16.score_pool4.bias.fill_(1.0)
        c16.score_pool4.bias[0] = 3.0
        assert not torch.equal(c16(x), parent)


def test_grown_child_has_learnable_skip_upsampler_in_deconv_mode():
    p32 = fcn32s(3, upsample="deconv", width=0.0625)
    assert not p32.up_pool4.deconv.weight.requires_grad
    c16 = grow(p32)
    assert c16.up_pool4.deconv.weight.requires_grad and not c16.up_pool3.deconv.weight.requires_grad
    assert not c16.up_final.deconv.weight.requires_grad


def test_grow_refuses_fcn8s():
    with pytest.raises(ValueError, match="finest stage"):
        grow(fcn8s(3, width=0.0625))


def test_output_stride_sizes_matches_features():
    feats = make_layers(cfgs["D"], width=0.0625)
    x = torch.randn(1, 3, 333, 517)
    sizes = []
    for m in feats:
        x = m(x)
        if isinstance(m, nn.MaxPool2d):
            sizes.append(tuple(x.shape[-2:]))
    assert sizes == models.output_stride_sizes(333, 517) == [(166, 258), (83, 129), (41, 64), (20, 32), (10, 16)]
