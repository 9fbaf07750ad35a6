"""Tests for fcnlib.viz_widgets (the kernel-free slider used in the static book)."""

from __future__ import annotations

import base64
import re

import pytest

widgets = pytest.importorskip("ipywidgets")

from fcnlib.viz_widgets import SLIDER_BOX_CLASS, class_slider_panel, figure_to_html_img, panel_html  # noqa: E402

PANELS = [("road", "<p>IoU 0.91</p>"), ("car", "<p>IoU 0.75</p>"), ("<person>", "<p>IoU 0.40</p>")]


def _parts(box):
    slider, stack = box.children
    return slider, stack


def test_class_slider_panel_structure():
    box = class_slider_panel(PANELS, description="class")
    assert isinstance(box, widgets.VBox)
    assert SLIDER_BOX_CLASS in box._dom_classes
    slider, stack = _parts(box)
    assert isinstance(stack, widgets.Stack)
    assert len(stack.children) == 3
    assert all(isinstance(c, widgets.HTML) for c in stack.children)
    assert stack.selected_index == 0
    # the readout (option labels) are the titles, the values are panel indices
    assert list(slider.options) == [("road", 0), ("car", 1), ("<person>", 2)]
    assert slider.description == "class"
    # each panel names its title (escaped) for the browser check
    assert 'data-title="car"' in stack.children[1].value
    assert 'data-title="&lt;person&gt;"' in stack.children[2].value
    assert "<p>IoU 0.40</p>" in stack.children[2].value


def test_class_slider_panel_is_jslinked():
    box = class_slider_panel(PANELS)
    slider, stack = _parts(box)
    link = box._fcn_link
    from ipywidgets.widgets.widget_link import Link

    assert isinstance(link, Link)  # jslink: runs in the browser, works without a kernel
    assert link.source == (slider, "index")
    assert link.target == (stack, "selected_index")
    # the link is a widget of its own, so it is saved in the embedded widget state
    state = widgets.Widget.get_manager_state(drop_defaults=False)["state"]
    assert link.model_id in state
    assert state[link.model_id]["state"]["_model_name"] == "LinkModel"


def test_class_slider_panel_selected_and_errors():
    box = class_slider_panel(PANELS, selected=2)
    slider, stack = _parts(box)
    assert slider.index == 2 and stack.selected_index == 2
    with pytest.raises(ValueError):
        class_slider_panel([])
    with pytest.raises(ValueError):
        class_slider_panel(PANELS, selected=3)


def test_panel_html_escapes_title():
    html = panel_html('a "b" <c>', "<i>x</i>")
    assert 'data-title="a &quot;b&quot; &lt;c&gt;"' in html
    assert html.endswith("<i>x</i></div>")


def test_figure_to_html_img_is_decodable_png():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    n_before = len(plt.get_fignums())
    tag = figure_to_html_img(fig, alt="a <line>")
    assert len(plt.get_fignums()) == n_before - 1  # the figure was closed
    m = re.fullmatch(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="a &lt;line&gt;" style="[^"]*">', tag)
    assert m, tag[:120]
    png = base64.b64decode(m.group(1), validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # IHDR: width and height are positive
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 0 and height > 0
