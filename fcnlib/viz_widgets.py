"""Kernel-free interactive widgets for the static HTML book.

A reader of the built book has no Jupyter kernel, so a widget can only react
through links that run in the browser (``ipywidgets.jslink``) between widgets
whose state was saved into the page when the notebook was executed.  The
helpers here build such a widget: a slider over pre-rendered HTML panels
(e.g. one per class), where moving the slider switches the panel shown.

``ipywidgets`` is imported inside the functions, so ``fcnlib`` itself does not
depend on it (it is in the ``book`` extra).

Example, in a book notebook::

    from fcnlib.viz_widgets import class_slider_panel, figure_to_html_img
    panels = []
    for name, iou in per_class_iou.items():
        fig, ax = plt.subplots()
        ...
        panels.append((name, f"<p>IoU {iou:.3f}</p>" + figure_to_html_img(fig)))
    class_slider_panel(panels)          # last expression of the cell

The DOM that the browser check (``tools/check_widgets.py``) relies on: the
returned box has the CSS class ``fcn-class-slider``; each panel is wrapped in
``<div class="fcn-panel" data-title="...">``, and the slider's readout shows
the same title as the panel it selects.
"""

from __future__ import annotations

import base64
import html as _html
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets

__all__ = ["SLIDER_BOX_CLASS", "class_slider_panel", "figure_to_html_img", "panel_html"]

#: CSS class put on the VBox returned by :func:`class_slider_panel`.
SLIDER_BOX_CLASS = "fcn-class-slider"


def panel_html(title: str, body_html: str) -> str:
    """Wrap one panel's HTML in the ``fcn-panel`` div that names its title.

    The title is HTML-escaped; ``body_html`` is inserted as is.
    """
    esc = _html.escape(title, quote=True)
    return (
        f'<div class="fcn-panel" data-title="{esc}">'
        f'<div class="fcn-panel-title"><b>{esc}</b></div>'
        f"{body_html}</div>"
    )


def class_slider_panel(
    panels: Sequence[tuple[str, str]],
    description: str = "class",
    *,
    selected: int = 0,
) -> ipywidgets.VBox:
    """A slider over pre-rendered HTML panels that works without a kernel.

    Args:
        panels: ``(title, html)`` pairs, one per slider position; ``title``
            (e.g. a class name) is shown as the slider's readout and above the
            panel, ``html`` is the panel's body (text, tables, ``<img>`` tags
            from :func:`figure_to_html_img`).
        description: label shown left of the slider.
        selected: index of the panel shown first.

    Returns:
        An ``ipywidgets.VBox`` (CSS class ``fcn-class-slider``) holding a
        ``SelectionSlider`` whose ``index`` is ``jslink``-ed to the
        ``selected_index`` of a ``Stack`` of ``HTML`` panels.  Display it as the
        last expression of a cell; the notebook must be executed with widget
        state stored (myst-nb / nbclient do this by default).
    """
    import ipywidgets as widgets

    if not panels:
        raise ValueError("class_slider_panel needs at least one panel")
    if not 0 <= selected < len(panels):
        raise ValueError(f"selected={selected} is out of range for {len(panels)} panels")

    children = [widgets.HTML(value=panel_html(title, body)) for title, body in panels]
    stack = widgets.Stack(children=children, selected_index=selected)
    slider = widgets.SelectionSlider(
        options=[(title, i) for i, (title, _) in enumerate(panels)],
        index=selected,
        description=description,
        continuous_update=True,
        readout=True,
        layout=widgets.Layout(width="100%", max_width="40em"),
        style={"description_width": "initial"},
    )
    link = widgets.jslink((slider, "index"), (stack, "selected_index"))
    box = widgets.VBox([slider, stack])
    box.add_class(SLIDER_BOX_CLASS)
    # keep Python references, so that callers and tests can reach the parts
    box._fcn_slider = slider  # type: ignore[attr-defined]
    box._fcn_stack = stack  # type: ignore[attr-defined]
    box._fcn_link = link  # type: ignore[attr-defined]
    return box


def figure_to_html_img(fig: Any, *, dpi: int = 100, alt: str = "", fmt: str = "png") -> str:
    """Render a matplotlib figure to an inline ``<img>`` tag and close the figure.

    The image is a base64 ``data:`` URI, so it lives in the widget state saved
    in the page and needs no file beside it.

    Args:
        fig: a ``matplotlib.figure.Figure``.
        dpi: resolution of the PNG.
        alt: the ``alt`` text of the image.
        fmt: image format passed to ``savefig`` (``"png"`` by default).

    Returns:
        ``'<img src="data:image/png;base64,..." alt="..." style="max-width:100%">'``
    """
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    mime = "image/svg+xml" if fmt == "svg" else f"image/{fmt}"
    return (
        f'<img src="data:{mime};base64,{data}" alt="{_html.escape(alt, quote=True)}" '
        'style="max-width:100%;height:auto">'
    )
