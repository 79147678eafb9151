"""A topology diagram that redraws itself when the lab changes.

::

    from labkit.widgets import diagram
    d = diagram(lab)        # or diagram(builder): draws the plan, then the built lab
    d                       # redraws within a few seconds of any change (watch=2.0)
    d.refresh()             # redraw now

It draws ``lab.describe()`` with :func:`labkit.plots.topology`; before a builder has
built anything it draws the builder's plan, marked *planned*.
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as W

from .. import diagrams, plots
from ._base import Panel, clear, message, plural, show_figure, watcher_for

__all__ = ["TopologyDiagram", "diagram"]


class TopologyDiagram(Panel):
    """A live drawing of a lab (or of a builder's plan and lab).

    Args:
        source: a :class:`labkit.Lab`, or a topology builder / workbench.
        watch: how often to look for changes made from code (seconds; ``None``: only
            when told, or when the builder changes the lab).
        width, height: of the figure, in pixels.
    """

    def __init__(self, source: Any, *, watch: float | None = 2.0, width: int = 520, height: int = 420) -> None:
        self.source = source
        self.size = (width, height)
        self.watcher = watcher_for(source, watch)
        self.data: dict[str, Any] | None = None
        self.redraws = 0
        self.figure: Any = None
        self.caption = W.HTML()
        self.out = W.Output(layout=W.Layout(min_height=f"{min(height, 200)}px"))
        self.refresh_button = W.Button(icon="refresh", tooltip="redraw now", layout=W.Layout(width="40px"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = W.VBox([W.HBox([W.HTML("<b>Topology</b>"), self.refresh_button],
                                     layout=W.Layout(align_items="center", justify_content="space-between")),
                              self.caption, self.out],
                             layout=W.Layout(border="1px solid #ddd", padding="6px"))
        self.widget.add_class("labkit-diagram")
        self.watcher.subscribe(self._draw)
        self._draw(self.watcher.snapshot())

    def refresh(self) -> None:
        """Look at the lab now and redraw."""
        self._draw(self.watcher.snapshot())

    def _draw(self, data: dict[str, Any] | None) -> None:
        self.data = data
        if not data or not data.get("nodes"):
            self.figure = None
            clear(self.out)
            self.caption.value = message("idle", "Nothing to draw yet: no lab, or a lab with no nodes.")
            return
        planned = bool(data.get("planned"))
        title = f"{data.get('name', 'lab')}" + (" (planned, not built yet)" if planned else "")
        fig = plots.topology(data, title=title)
        w, h = self.size
        fig.update_layout(width=w, height=h, margin={"l": 5, "r": 5, "t": 40, "b": 5},
                          legend={"orientation": "h", "y": -0.02})
        fig.layout.yaxis.scaleanchor = None  # use the widget's width: room for the address labels
        self.figure = fig
        try:  # the snapshot (saved notebooks, no kernel) shows the same lab as an SVG drawing
            static = diagrams.topology(data, title=title).svg()
        except Exception:  # noqa: BLE001 - a half-written plan; the live figure is still right
            static = None
        show_figure(self.out, fig, static=static)
        self.redraws += 1
        nodes, links = len(data["nodes"]), len(data.get("links", []))
        state = "planned" if planned else "built"
        self.caption.value = (f"<small>{state}: {plural(nodes, 'node')}, {plural(links, 'link')} \u00b7 drawn "
                              f"{time.strftime('%H:%M:%S')}</small>")

    def close(self) -> None:
        """Stop following the lab and close the widget."""
        self._freeze()
        self.watcher.unsubscribe(self._draw)
        self._close_widgets()


def diagram(source: Any, **kwargs: Any) -> TopologyDiagram:
    """A live topology diagram of a lab, or of a builder's plan and lab."""
    return TopologyDiagram(source, **kwargs)
