"""A static HTML copy of a widget tree: what a notebook keeps when no kernel is running.

A widget output in a saved notebook is only a pointer to a model that lives in the
kernel; GitHub, nbviewer and nbconvert show it as ``VBox(children=...)`` or nothing.
:func:`static_html` walks the widget tree as it is now and writes plain HTML: the
HTML widgets' text, the Output widgets' last outputs (a table, an SVG drawing, a
figure as PNG), every tab's content under its title, the buttons as labels and
the pickers with their current values. :class:`~labkit.widgets._base.Panel` puts
it in its MIME bundle (``text/html``) and refreshes it after every cell.

A widget (and what it holds) with the CSS class :data:`NO_SNAPSHOT` is left out:
input forms, say, which mean nothing without a kernel.

An Output widget that shows a plotly figure (``show_figure``) may carry a static
rendering (``static=`` an SVG or HTML string, e.g. a :mod:`labkit.diagrams`
drawing); otherwise the figure becomes a PNG where kaleido can run
(:func:`labkit.ipython.static_png`), or a line naming it.
"""

from __future__ import annotations

import base64
import html
from typing import Any

import ipywidgets as W

from .. import ipython

__all__ = ["static_html", "output_html", "NO_SNAPSHOT"]

NO_SNAPSHOT = "labkit-no-snapshot"  # a widget with this CSS class is left out of the static copy

_PRIORITY = ("text/html", "image/svg+xml", "image/png", "text/markdown", "text/plain")


def _hidden(widget: W.Widget) -> bool:
    layout = getattr(widget, "layout", None)
    return layout is not None and (getattr(layout, "display", None) == "none"
                                   or getattr(layout, "visibility", None) == "hidden")


def _figure_static(out: W.Output, spec: dict[str, Any]) -> str:
    static = getattr(out, "_labkit_static", None)
    if static:
        return static
    fig = getattr(out, "_labkit_figure", None)
    cache = getattr(out, "_labkit_png", None)
    if fig is not None and (cache is None or cache[0] is not fig):
        png = ipython.static_png(fig)
        cache = (fig, base64.b64encode(png).decode("ascii") if png else None)
        out._labkit_png = cache  # type: ignore[attr-defined]
    if cache is not None and cache[1]:
        return f"<img src='data:image/png;base64,{cache[1]}' style='max-width:100%'>"
    title = ((spec.get("layout") or {}).get("title") or {}).get("text") or "a figure"
    return f"<p><i>[{html.escape(str(title))}: an interactive figure, shown when the notebook runs]</i></p>"


def output_html(out: W.Output) -> str:
    """The outputs an Output widget holds now, as HTML."""
    parts = []
    for item in out.outputs:
        kind = item.get("output_type")
        if kind == "stream":
            parts.append(f"<pre>{html.escape(str(item.get('text', '')))}</pre>")
        elif kind == "error":
            parts.append(f"<pre>{html.escape(str(item.get('ename')))}: {html.escape(str(item.get('evalue')))}</pre>")
        else:
            data = item.get("data", {})
            if "application/vnd.plotly.v1+json" in data:
                parts.append(_figure_static(out, data["application/vnd.plotly.v1+json"]))
                continue
            mime = next((m for m in _PRIORITY if m in data), None)
            value = data.get(mime) if mime else None
            if mime == "text/html" or mime == "image/svg+xml":
                parts.append(str(value))
            elif mime == "image/png":
                parts.append(f"<img src='data:image/png;base64,{value}' style='max-width:100%'>")
            elif mime in ("text/markdown", "text/plain"):
                parts.append(f"<pre>{html.escape(str(value))}</pre>")
    return "".join(parts)


def static_html(widget: W.Widget) -> str:
    """A static HTML rendering of ``widget`` and everything inside it, as it is now."""
    if _hidden(widget) or NO_SNAPSHOT in (getattr(widget, "_dom_classes", ()) or ()):
        return ""
    if isinstance(widget, W.Output):
        return output_html(widget)
    if isinstance(widget, (W.Tab, W.Accordion)):
        titles = list(getattr(widget, "titles", ()) or ())
        sections = []
        for i, child in enumerate(widget.children):
            title = titles[i] if i < len(titles) and titles[i] else f"part {i + 1}"
            body = static_html(child)
            if body:
                sections.append(f"<div style='margin:6px 0'><div style='font-weight:bold;border-bottom:1px solid "
                                f"#ddd;margin-bottom:4px'>{html.escape(str(title))}</div>{body}</div>")
        return "".join(sections)
    if isinstance(widget, W.Box):
        inner = [static_html(child) for child in widget.children]
        inner = [part for part in inner if part]
        if isinstance(widget, W.HBox):
            return ("<div style='display:flex;flex-wrap:wrap;gap:6px;align-items:center'>"
                    + "".join(f"<div>{part}</div>" for part in inner) + "</div>")
        return "<div>" + "".join(inner) + "</div>"
    if isinstance(widget, (W.HTML, W.HTMLMath)):
        return str(widget.value)
    if isinstance(widget, W.Label):
        return f"<span>{html.escape(str(widget.value))}</span>"
    if isinstance(widget, W.Button):
        return (f"<span style='border:1px solid #bbb;border-radius:3px;padding:1px 8px;color:#555;"
                f"background:#f5f5f5'>{html.escape(widget.description or widget.tooltip or 'button')}</span>")
    if isinstance(widget, (W.Textarea,)):
        return f"<pre>{html.escape(str(widget.value))}</pre>"
    if isinstance(widget, W.ValueWidget) and not isinstance(widget, (W.IntProgress, W.FloatProgress)):
        label = html.escape(getattr(widget, "description", "") or "")
        value = getattr(widget, "value", "")
        return f"<span style='color:#333'>{label + ' ' if label else ''}<code>{html.escape(str(value))}</code></span>"
    return ""
