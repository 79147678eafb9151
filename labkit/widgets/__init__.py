"""Widgets to build, probe and watch a lab without writing code first.

One call each, in any notebook (the last line of a cell displays the widget)::

    from labkit import widgets

    wb = widgets.workbench("two containers on a bridge (docker0)")   # all of it at once
    wb.close()                       # tears the lab down, closes the widgets

    b = widgets.builder("docker0")   # plan from a template or forms; Build / Tear down
    widgets.diagram(b)               # live drawing of the plan, then of the built lab
    widgets.ping_panel(b)            # source/destination pickers, RTT table and plot
    widgets.capture_panel(b)         # interface picker, BPF filter, live count, plots
    b.close()

The panels also take a plain :class:`labkit.Lab` built in code:
``widgets.ping_panel(lab)``. The builder shows the labkit code (and the ``ip``
commands) of what it built, so the next step can be code: ``print(b.code())``.

Every widget that builds a lab owns it: the Tear down button, ``close()``, or the
kernel ending closes it (and with it every namespace, cable and process). Running
the cell that made a builder again closes the previous builder's lab first.

A displayed panel also carries a static snapshot of itself (the diagram as SVG, the
last ping and capture results), refreshed after every cell and kept when the panel
is closed, so a saved notebook reads on GitHub, nbviewer and in HTML
(:class:`~labkit.widgets._base.Panel`, :mod:`~labkit.widgets._static`). A new panel
gets this by subclassing ``Panel``, calling ``self._freeze()`` first in ``close()``,
and tagging input-only parts with the CSS class ``_static.NO_SNAPSHOT``.
Long operations run in a worker thread and show their progress; from code they
wait (``b.build()`` returns when the lab is built; ``wait=False`` does not).

Modules: :mod:`~labkit.widgets.builder`, :mod:`~labkit.widgets.ping_panel`,
:mod:`~labkit.widgets.capture_panel`, :mod:`~labkit.widgets.diagram`,
:mod:`~labkit.widgets.templates` (the curriculum's starting topologies) and
:mod:`~labkit.widgets.plan` (a topology recorded before it is built).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from . import templates
from ._base import Panel
from .builder import TopologyBuilder, builder
from .capture_panel import CapturePanel, capture_panel
from .diagram import TopologyDiagram, diagram
from .ping_panel import PingPanel, diagnose, explain, ping_panel
from .plan import Plan

__all__ = [
    "workbench", "builder", "ping_panel", "capture_panel", "diagram",
    "Workbench", "TopologyBuilder", "PingPanel", "CapturePanel", "TopologyDiagram",
    "Plan", "templates", "explain", "diagnose",
]


class Workbench(Panel):
    """The builder, a live diagram, a ping panel and a capture panel, wired together.

    The diagram is a tab of the builder, beside the Python and ``ip`` views; the
    ping and capture panels are tabs below it.

    ``wb.builder``, ``wb.diagram``, ``wb.ping_panel`` and ``wb.capture_panel`` are the parts;
    ``wb.lab`` is the lab once built. Arguments go to :class:`TopologyBuilder`.
    """

    def __init__(self, template: str | None = None, **kwargs: Any) -> None:
        self.builder = TopologyBuilder(template, **kwargs)
        self.watcher = self.builder.watcher
        self.diagram = TopologyDiagram(self.builder, width=700, height=380)
        self.builder.add_view("Diagram", self.diagram.widget)
        self.ping_panel = PingPanel(self.builder)
        self.capture_panel = CapturePanel(self.builder)
        tools = W.Tab(children=[self.ping_panel.widget, self.capture_panel.widget])
        tools.titles = ("Ping", "Capture")
        self.tools = tools
        self.widget = W.VBox([self.builder.widget, tools], layout=W.Layout(width="100%"))
        self.widget.add_class("labkit-workbench")

    @property
    def lab(self) -> Any:
        return self.builder.lab

    def build(self, **kwargs: Any) -> "Workbench":
        self.builder.build(**kwargs)
        return self

    def close(self) -> None:
        """Tear the lab down and close every part."""
        self._freeze()
        self.capture_panel.close()
        self.ping_panel.close()
        self.diagram.close()
        self.builder.close()
        self._close_widgets()

    def __repr__(self) -> str:
        return f"<Workbench {self.builder!r}>"


def workbench(template: str | None = None, **kwargs: Any) -> Workbench:
    """Builder, diagram, ping and capture panels in one widget; display it and click Build."""
    return Workbench(template, **kwargs)
