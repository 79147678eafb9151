"""A small SVG writer: the drawings of :mod:`labkit.diagrams` are built with it.

A :class:`Drawing` collects shapes and text and renders one ``<svg>`` element.
It displays itself in any notebook front end (``_repr_svg_``: JupyterLab, GitHub,
nbviewer, nbconvert HTML and PDF all show ``image/svg+xml``), and ``save(path)``
writes a file. Each shape may carry a ``cls`` (CSS class) and ``data`` attributes
(``data-no="3"``), so tests and scripts can find what was drawn by parsing the SVG.

Text widths are estimated (no font metrics are available without a browser):
:func:`text_width` is generous enough for the sans-serif fonts browsers use.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["Drawing", "text_width", "FONT"]

FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"
MONO = "DejaVu Sans Mono, Liberation Mono, Menlo, Consolas, monospace"


def text_width(text: str, size: float = 12.0, *, mono: bool = False) -> float:
    """An upper estimate of the width of ``text`` in pixels."""
    return len(text) * size * (0.62 if mono else 0.6)


def _attrs(values: dict[str, Any]) -> str:
    out = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f'{name}="{html.escape(str(value), quote=True)}"')
    return " ".join(out)


class Drawing:
    """Shapes in a fixed-size canvas, rendered as SVG.

    ``cls`` becomes the element's ``class``; ``data`` a dict of ``data-*`` attributes;
    ``tip`` a ``<title>`` child (a tooltip in browsers). Coordinates are pixels.
    """

    def __init__(self, width: float, height: float, *, title: str = "") -> None:
        self.width = width
        self.height = height
        self.title = title
        self._parts: list[str] = []
        self._defs: dict[str, str] = {}
        self.display_width: float | None = None  # shown narrower than drawn (the SVG scales)

    # -- shapes -------------------------------------------------------------------------
    def _marker(self, colour: str) -> str:
        """An arrow head in ``colour`` (defined once per colour); its ``url(#...)``."""
        marker_id = "arrow-" + "".join(ch for ch in colour if ch.isalnum())
        self._defs.setdefault(marker_id, (
            f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'))
        return f"url(#{marker_id})"

    def _emit(self, tag: str, attrs: dict[str, Any], *, cls: str | None, data: dict[str, Any] | None,
              tip: str | None, body: str = "") -> None:
        extra = {"class": cls}
        for key, value in (data or {}).items():
            extra[f"data-{key}"] = value
        inner = body + (f"<title>{html.escape(tip)}</title>" if tip else "")
        attr_text = _attrs({**extra, **attrs})
        self._parts.append(f"<{tag} {attr_text}>{inner}</{tag}>" if inner else f"<{tag} {attr_text}/>")

    def rect(self, x: float, y: float, w: float, h: float, *, fill: str = "white", stroke: str = "#333",
             rx: float = 4, width: float = 1.2, dash: str | None = None, cls: str | None = None,
             data: dict[str, Any] | None = None, tip: str | None = None) -> None:
        self._emit("rect", {"x": f"{x:.1f}", "y": f"{y:.1f}", "width": f"{w:.1f}", "height": f"{h:.1f}",
                            "rx": rx, "fill": fill, "stroke": stroke, "stroke_width": width,
                            "stroke_dasharray": dash}, cls=cls, data=data, tip=tip)

    def line(self, x1: float, y1: float, x2: float, y2: float, *, stroke: str = "#555", width: float = 1.5,
             dash: str | None = None, arrow: bool = False, cls: str | None = None,
             data: dict[str, Any] | None = None, tip: str | None = None) -> None:
        marker = self._marker(stroke) if arrow else None
        self._emit("line", {"x1": f"{x1:.1f}", "y1": f"{y1:.1f}", "x2": f"{x2:.1f}", "y2": f"{y2:.1f}",
                            "stroke": stroke, "stroke_width": width, "stroke_dasharray": dash,
                            "marker_end": marker}, cls=cls, data=data, tip=tip)

    def path(self, d: str, *, stroke: str = "#555", width: float = 1.5, fill: str = "none",
             dash: str | None = None, arrow: bool = False, cls: str | None = None,
             data: dict[str, Any] | None = None, tip: str | None = None) -> None:
        marker = self._marker(stroke) if arrow else None
        self._emit("path", {"d": d, "stroke": stroke, "stroke_width": width, "fill": fill,
                            "stroke_dasharray": dash, "marker_end": marker}, cls=cls, data=data, tip=tip)

    def text(self, x: float, y: float, text: str, *, size: float = 12, weight: str | None = None,
             anchor: str = "start", fill: str = "#222", mono: bool = False, cls: str | None = None,
             data: dict[str, Any] | None = None, tip: str | None = None, italic: bool = False) -> None:
        self._emit("text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "font_size": size, "font_weight": weight,
                            "text_anchor": anchor, "fill": fill, "font_style": "italic" if italic else None,
                            "font_family": MONO if mono else None},
                   cls=cls, data=data, tip=tip, body=html.escape(text))

    def group(self, cls: str, data: dict[str, Any] | None = None, tip: str | None = None) -> "_Group":
        """``with d.group("arrow", {"no": 3}):`` wraps the shapes drawn inside in one ``<g>``."""
        return _Group(self, cls, data, tip)

    # -- output -------------------------------------------------------------------------
    def svg(self) -> str:
        """The drawing as one ``<svg>`` element (UTF-8 text)."""
        defs = f"<defs>{''.join(self._defs.values())}</defs>" if self._defs else ""
        title = f"<title>{html.escape(self.title)}</title>" if self.title else ""
        w, h = int(round(self.width)), int(round(self.height))
        shown = min(self.display_width or w, w)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{int(shown)}" height="{int(h * shown / w)}" '
                f'viewBox="0 0 {w} {h}" '
                f'font-family="{FONT}" class="labkit-drawing">{title}{defs}'
                f'<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>' + "".join(self._parts) + "</svg>")

    def _repr_svg_(self) -> str:
        return self.svg()

    def __repr__(self) -> str:
        return f"<Drawing {self.title or 'untitled'!r} {int(self.width)}x{int(self.height)}>"

    def save(self, path: str | Path) -> Path:
        """Write the SVG to ``path`` and return it."""
        target = Path(path)
        target.write_text(self.svg(), encoding="utf-8")
        return target


class _Group:
    def __init__(self, drawing: Drawing, cls: str, data: dict[str, Any] | None, tip: str | None) -> None:
        self.drawing, self.cls, self.data, self.tip = drawing, cls, data, tip

    def __enter__(self) -> Drawing:
        extra = {"class": self.cls, **{f"data-{k}": v for k, v in (self.data or {}).items()}}
        tip = f"<title>{html.escape(self.tip)}</title>" if self.tip else ""
        self.drawing._parts.append(f"<g {_attrs(extra)}>{tip}")
        return self.drawing

    def __exit__(self, *exc: object) -> None:
        self.drawing._parts.append("</g>")
