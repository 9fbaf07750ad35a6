"""fcnlib.viz: palette images, overlays, legends, training curves, confusion matrices."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from torchvision.utils import draw_segmentation_masks

from fcnlib import viz
from fcnlib.data import voc_palette

VOC_FIRST = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128)]


def labels_and_image(h: int = 24, w: int = 32, n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n, (h, w), generator=g)
    labels[:3] = 255  # ignore band
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    return labels, image


def test_colorize_keeps_labels_as_indices_with_voc_palette():
    labels, _ = labels_and_image()
    for inp in (labels, labels.numpy(), labels.to(torch.uint8)):
        im = viz.colorize(inp)
        assert im.mode == "P" and im.size == (32, 24)
        assert np.array_equal(np.asarray(im), labels.numpy().astype(np.uint8))
    pal = im.getpalette()
    colours = [tuple(pal[3 * i : 3 * i + 3]) for i in range(256)]
    assert colours[:6] == VOC_FIRST
    assert colours[15] == (192, 128, 128)  # person
    assert colours[255] == (224, 224, 192)  # ignore
    rgb = np.asarray(im.convert("RGB"))
    assert tuple(rgb[0, 0]) == (224, 224, 192)


def test_colorize_custom_palette_and_range_check():
    labels = torch.tensor([[0, 1], [2, 1]])
    im = viz.colorize(labels, palette=[(1, 2, 3), (4, 5, 6), (7, 8, 9)])
    assert np.array_equal(np.asarray(im.convert("RGB"))[1, 0], [7, 8, 9])
    im = viz.colorize(labels, palette=[1, 2, 3, 4, 5, 6, 7, 8, 9])  # flat form
    assert np.array_equal(np.asarray(im.convert("RGB"))[0, 1], [4, 5, 6])
    with pytest.raises(ValueError, match="0..255"):
        viz.colorize(torch.tensor([[0, 256]]))
    with pytest.raises(ValueError, match="integers"):
        viz.colorize(torch.zeros(2, 2))


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_overlay_matches_draw_segmentation_masks_on_masked_pixels_only(alpha):
    labels, image = labels_and_image(n=4)
    labels[labels == 2] = 1  # class 2 absent
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    out = viz.overlay(image, labels, 4, alpha=alpha, colors=colors)
    assert out.dtype == torch.uint8 and out.shape == image.shape
    present = [0, 1, 3]
    masks = labels[None] == torch.tensor(present)[:, None, None]
    direct = draw_segmentation_masks(image, masks, alpha=alpha, colors=[colors[c] for c in present])
    drawn = masks.any(0)
    assert torch.equal(out[:, drawn], direct[:, drawn])
    assert torch.equal(out[:, ~drawn], image[:, ~drawn])  # ignore (255) pixels untouched
    assert not torch.equal(out[:, drawn], image[:, drawn])
    # PIL input and default (VOC) colours
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    voc = viz.overlay(pil, labels.numpy(), 4, alpha=alpha)
    direct_voc = draw_segmentation_masks(image, masks, alpha=alpha, colors=[VOC_FIRST[c] for c in present])
    assert torch.equal(voc[:, drawn], direct_voc[:, drawn])


def test_overlay_in_strips_equals_one_call():
    h, w = 2100, 2100  # > 4 MP: processed in two strips
    labels = torch.zeros(h, w, dtype=torch.int64)
    labels[:, 700:] = 1
    labels[1500:, :300] = 255
    image = torch.full((3, h, w), 90, dtype=torch.uint8)
    out = viz.overlay(image, labels, 2, alpha=0.5, colors=[(10, 200, 30), (250, 0, 100)])
    masks = torch.stack([labels == 0, labels == 1])
    direct = draw_segmentation_masks(image, masks, alpha=0.5, colors=[(10, 200, 30), (250, 0, 100)])
    drawn = masks.any(0)
    assert torch.equal(out[:, drawn], direct[:, drawn]) and torch.equal(out[:, ~drawn], image[:, ~drawn])


def test_overlay_rejects_bad_labels():
    labels, image = labels_and_image(n=4)
    with pytest.raises(ValueError, match="outside"):
        viz.overlay(image, labels, 3)
    with pytest.raises(ValueError, match="size"):
        viz.overlay(image, labels[:-1], 4)


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_side_by_side_legend_lists_present_classes_only():
    labels, image = labels_and_image(n=3)
    classes = ["background", "cat", "dog", "bird", "car"]
    fig = viz.side_by_side(image, labels, classes, title="demo")
    assert isinstance(fig, Figure)
    assert len([ax for ax in fig.axes if ax.images]) == 2
    assert _legend_texts(fig) == ["background", "cat", "dog"]
    assert fig._suptitle.get_text() == "demo"
    fig.savefig(io.BytesIO(), format="png")  # renders headless without pyplot


def test_side_by_side_downscales_big_images():
    labels = torch.zeros(1000, 3000, dtype=torch.int64)
    labels[:, 1500:] = 4
    fig = viz.side_by_side(np.zeros((1000, 3000, 3), np.uint8), labels, [str(i) for i in range(5)], max_display=600)
    assert fig.axes[0].images[0].get_array().shape[:2] == (200, 600)
    assert _legend_texts(fig) == ["0", "4"]


def test_legend_figure_lists_all_classes():
    classes = [f"class{i}" for i in range(21)]
    fig = viz.legend_figure(classes, voc_palette())
    assert _legend_texts(fig) == classes
    handles = fig.legends[0].legend_handles
    assert tuple(np.round(np.array(handles[1].get_facecolor()[:3]) * 255)) == (128, 0, 0)


def _write_history(path, rows):
    fields = ["epoch", "lr", "train_loss", "val_loss", "pixAcc", "mIoU", "seconds"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _history_rows(n: int = 5) -> list[dict]:
    return [
        {"epoch": e, "lr": 0.01 * 0.9**e, "train_loss": 2.0 / e, "val_loss": 2.2 / e + 0.01 * e,
         "pixAcc": 0.5 + 0.08 * e, "mIoU": 0.1 + 0.05 * e, "seconds": 12.5 * e}
        for e in range(1, n + 1)
    ]


def test_plot_history_from_csv_has_three_panels_with_the_csv_data(tmp_path):
    rows = _history_rows()
    _write_history(tmp_path / "history.csv", rows)
    out = tmp_path / "plots" / "curves.png"
    fig = viz.plot_history(tmp_path / "history.csv", out_path=out)
    assert len(fig.axes) == 3
    loss, miou, acc = fig.axes
    col = {k: [float(r[k]) for r in rows] for k in rows[0]}
    assert [line.get_label() for line in loss.get_lines()] == ["train", "val"]
    for line, key in zip(loss.get_lines(), ["train_loss", "val_loss"]):
        assert np.allclose(line.get_xdata(), col["epoch"]) and np.allclose(line.get_ydata(), col[key])
    assert np.allclose(miou.get_lines()[0].get_ydata(), col["mIoU"])
    assert np.allclose(acc.get_lines()[0].get_xdata(), col["epoch"])
    assert np.allclose(acc.get_lines()[0].get_ydata(), col["pixAcc"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]  # no temporary file left


def test_plot_history_rows_and_missing_values():
    rows = _history_rows(3)
    rows[1]["val_loss"] = None  # e.g. not evaluated that epoch -> a gap (NaN)
    fig = viz.plot_history({"fcn32s": rows, "fcn16s": _history_rows(4), "fcn8s": _history_rows(2)})
    assert len(fig.axes) == 9
    assert fig.axes[0].get_title() == "fcn32s: loss" and fig.axes[5].get_title() == "fcn16s: pixAcc"
    assert np.isnan(fig.axes[0].get_lines()[1].get_ydata()[1])
    with pytest.raises(ValueError):
        viz.plot_history([])


def test_plot_confusion_normalises_rows():
    m = torch.tensor([[5, 3, 2], [0, 0, 0], [1, 1, 8]])
    fig = viz.plot_confusion(m, ["a", "b", "c"])
    shown = np.asarray(fig.axes[0].images[0].get_array())
    assert np.allclose(shown.sum(1), [1, 0, 1])  # an all-zero row stays zero (no NaN)
    assert np.allclose(shown[0], [0.5, 0.3, 0.2])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c"]
    raw = viz.plot_confusion(m.numpy(), ["a", "b", "c"], normalize=False)
    assert np.array_equal(np.asarray(raw.axes[0].images[0].get_array()), m.numpy())
    with pytest.raises(ValueError):
        viz.plot_confusion(m, ["a", "b"])
