"""The capture panel: pick a node and interface, set a filter, start, watch, stop, read.

::

    from labkit.widgets import capture_panel
    c = capture_panel(lab)                 # or capture_panel(builder)
    c                                      # node / interface pickers, BPF filter, Start / Stop
    c.start("c2", "eth0", filter="icmp or arp")    # the same from code
    lab["c1"].ping("172.17.0.3")
    c.stop()                               # then: c.table (a DataFrame), c.capture.path (pcap)

While it runs, the panel shows a live packet count (:attr:`labkit.capture.Capture.count`).
After Stop it shows the decoded table, a plain-English summary, and two plots:
:func:`labkit.plots.timeline` and :func:`labkit.plots.protocol_breakdown`.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from .. import plots
from ._base import (Panel, Tasks, clear, code_block, current_lab, error_message, message, show_figure,
                    show_html, watcher_for)

if TYPE_CHECKING:
    import pandas as pd

    from ..capture.session import Capture
    from ..lab import Lab

__all__ = ["CapturePanel", "capture_panel"]

COLUMNS = ["t", "direction", "src_mac", "dst_mac", "stack", "src_ip", "dst_ip", "arp_op",
           "icmp_type", "length"]
MAX_ROWS = 200


class CapturePanel(Panel):
    """Capture on one interface of a lab's node, then show what was caught.

    Args:
        source: a :class:`labkit.Lab`, or a topology builder / workbench whose lab it follows.
        filter: the BPF filter shown at first (``man pcap-filter``).
        watch: how often to look for a changed lab when given a plain Lab (seconds).
    """

    def __init__(self, source: Any, *, filter: str = "icmp or arp",  # noqa: A002
                 watch: float | None = 2.0) -> None:
        self.source = source
        self.watcher = watcher_for(source, watch)
        self.capture: Capture | None = None
        self.table: pd.DataFrame | None = None
        self.error: BaseException | None = None
        self._interfaces: dict[str, list[str]] = {}
        self._had_lab = False
        self._counting = threading.Event()
        self._counter: threading.Thread | None = None
        self._tasks = Tasks(self._failed, self._update_buttons)
        self._make_widgets(filter)
        self.watcher.subscribe(self._on_lab)
        self._on_lab(self.watcher.snapshot())

    def _make_widgets(self, bpf: str) -> None:
        lay = W.Layout
        self.node = W.Dropdown(description="Node", layout=lay(width="200px"))
        self.iface = W.Dropdown(description="Interface", layout=lay(width="200px"))
        self.filter = W.Text(value=bpf, description="Filter", placeholder="e.g. icmp or arp, udp port 4789",
                             layout=lay(width="300px"))
        self.node.observe(lambda _: self._fill_interfaces(), names="value")
        self.start_button = W.Button(description="Start", icon="circle", button_style="danger",
                                     tooltip="start capturing on that interface")
        self.stop_button = W.Button(description="Stop", icon="stop", tooltip="stop and show the packets")
        self.start_button.on_click(lambda _: self._run(self._do_start, background=True))
        self.stop_button.on_click(lambda _: self._run(self._do_stop, background=True))
        self.count = W.HTML("<span style='font-size:1.2em'>0 packets</span>")
        self.status = W.HTML(message("idle", "Pick a node and interface, then click Start."))
        self.status.add_class("labkit-capture-status")
        self.code = W.HTML()
        self.summary = W.HTML()
        self.rows = W.Output(layout=lay(max_height="320px", overflow="auto"))
        self.timeline = W.Output()
        self.breakdown = W.Output()
        plots_tab = W.Tab(children=[self.rows, self.timeline, self.breakdown])
        plots_tab.titles = ("Packets", "Timeline", "Protocols")
        self.results = plots_tab
        self.widget = W.VBox([
            W.HTML("<b>Capture</b>"),
            W.HBox([self.node, self.iface, self.filter], layout=lay(flex_flow="row wrap")),
            W.HBox([self.start_button, self.stop_button, self.count], layout=lay(align_items="center")),
            self.status,
            self.code,
            self.summary,
            plots_tab,
        ], layout=lay(border="1px solid #ddd", padding="6px", width="100%"))
        self.widget.add_class("labkit-capture")

    @property
    def lab(self) -> "Lab | None":
        lab = current_lab(self.source)
        return lab if lab is not None and not lab.closed else None

    @property
    def running(self) -> bool:
        return self.capture is not None and self.capture.running

    def refresh(self) -> None:
        self._on_lab(self.watcher.snapshot())

    def _on_lab(self, data: dict[str, Any] | None) -> None:
        if data is None or data.get("planned") or self.lab is None:
            if self.capture is not None and self.capture._state in ("starting", "running"):
                self._counting.set()
                self.status.value = message("idle", "The lab was closed, and the capture with it.")
            elif self._had_lab:
                self.status.value = message("idle", "No lab now: build one, then pick a node and interface.")
            self._had_lab = False
            self.node.options = []
            self._interfaces = {}
            self._update_buttons()
            return
        if not self._had_lab and not self._tasks.busy and not self.running:
            self.status.value = message("idle", "Pick a node and interface, then click Start.")
        self._had_lab = True
        self._interfaces = {n["name"]: [i["name"] for i in n.get("interfaces", [])]
                            for n in data.get("nodes", [])}
        keep = self.node.value
        names = list(self._interfaces)
        self.node.options = [(f"{n['name']} ({n['kind']})", n["name"]) for n in data.get("nodes", [])]
        hosts = [n["name"] for n in data.get("nodes", []) if n["kind"] == "host"] or names
        self.node.value = keep if keep in names else (hosts[-1] if hosts else None)
        self._fill_interfaces()
        self._update_buttons()

    def _fill_interfaces(self) -> None:
        names = self._interfaces.get(self.node.value or "", [])
        keep = self.iface.value
        self.iface.options = names
        self.iface.value = keep if keep in names else (names[0] if names else None)

    def _update_buttons(self) -> None:
        busy, running = self._tasks.busy, self.running
        self.start_button.disabled = busy or running or self.lab is None or not self.iface.value
        self.stop_button.disabled = busy or not running

    def _run(self, work: Any, *, background: bool) -> None:
        if not self._tasks.run(work, background=background):
            self.status.value = message("busy", "Still working on the previous operation; please wait.")
        self._update_buttons()

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self._counting.set()
        self.status.value = error_message(exc, doing="the capture")

    def wait(self, timeout: float | None = 60.0) -> bool:
        return self._tasks.wait(timeout)

    # -- from code ---------------------------------------------------------------------

    def start(self, node: str | None = None, ifname: str | None = None, *, filter: str | None = None,  # noqa: A002
              wait: bool = True) -> "CapturePanel":
        """Start capturing (as the Start button); returns once the sniffer is listening."""
        if node is not None:
            self.node.value = node
        if ifname is not None:
            self.iface.value = ifname
        if filter is not None:
            self.filter.value = filter
        self._run(self._do_start, background=not wait)
        return self

    def stop(self, *, wait: bool = True) -> "pd.DataFrame | None":
        """Stop (as the Stop button) and return the decoded packets."""
        self._run(self._do_stop, background=not wait)
        return self.table

    # -- work --------------------------------------------------------------------------

    def _do_start(self) -> None:
        from ..capture.session import Capture

        lab = self.lab
        self.error = None
        if lab is None:
            self.status.value = message("error", "There is no lab to capture in: build one first.")
            return
        node, ifname = self.node.value, self.iface.value
        bpf = self.filter.value.strip() or None
        if not node or not ifname:
            self.status.value = message("error", "Pick a node and one of its interfaces first.")
            return
        self.status.value = message("busy", f"Starting the capture on {node}:{ifname} ...")
        cap = Capture(lab.node(node), ifname, filter=bpf)  # a bad filter raises FilterError here
        cap.start()
        self.capture, self.table = cap, None
        for out in (self.rows, self.timeline, self.breakdown):
            clear(out)
        self.summary.value = ""
        quoted = f", filter={json.dumps(bpf)}" if bpf else ""
        self.code.value = code_block(
            f"cap = Capture({_var(node)}, {json.dumps(ifname)}{quoted}).start()"
            f"   # ip netns exec {node} tcpdump -i {ifname} -w {cap.path.name}"
            + (f" '{bpf}'" if bpf else ""))
        self.status.value = message("ok", f"Capturing on {node}:{ifname}"
                                          + (f" (filter: {bpf})" if bpf else "")
                                          + ". Send some traffic (ping!), then click Stop.")
        self._counting.clear()
        self._counter = threading.Thread(target=self._count_loop, args=(cap,), name="labkit-capture-count",
                                         daemon=True)
        self._counter.start()

    def _count_loop(self, cap: "Capture") -> None:
        while not self._counting.wait(0.3):
            if not cap.running:
                break
            self._show_count(cap.count, live=True)
        self._update_buttons()

    def _show_count(self, n: int, *, live: bool) -> None:
        dot = "<span style='color:#c9302c'>\u25cf</span> " if live else ""
        self.count.value = f"<span style='font-size:1.2em'>{dot}{n} packet{'s' if n != 1 else ''}</span>"

    def _do_stop(self) -> None:
        cap = self.capture
        if cap is None:
            self.status.value = message("idle", "No capture is running.")
            return
        self.status.value = message("busy", f"Stopping the capture on {cap.name} and decoding ...")
        self._counting.set()
        if self._counter is not None:
            self._counter.join(5)
        cap.stop()
        table = cap.table()
        self.table = table
        self._show_count(len(table), live=False)
        self.code.value += code_block("cap.stop(); cap.table()   # tcpdump -r " + cap.path.name)
        self.summary.value = message("info", cap.summary())
        if len(table):
            cols = [c for c in COLUMNS if c in table.columns]
            shown = table[cols].head(MAX_ROWS)
            more = f"<p>(first {MAX_ROWS} of {len(table)})</p>" if len(table) > MAX_ROWS else ""
            show_html(self.rows, shown.to_html(index=False, border=0, na_rep="") + more,
                      shown.to_string(index=False))
            fig = plots.timeline(table, title=f"Packets on {cap.name}")
            fig.update_layout(height=260, width=720, margin={"l": 90, "r": 10, "t": 40, "b": 40})
            show_figure(self.timeline, fig)
            fig = plots.protocol_breakdown(table, title=f"Frames per stack on {cap.name}")
            fig.update_layout(width=720, margin={"l": 140, "r": 10, "t": 40, "b": 40})
            show_figure(self.breakdown, fig)
        self.status.value = message("ok" if len(table) else "info",
                                    f"Stopped: {len(table)} packets on {cap.name}, kept in {cap.path}")

    def close(self) -> None:
        """Stop any running capture, stop following the lab and close the widget."""
        self._freeze()
        self._tasks.wait(30)
        self._counting.set()
        cap = self.capture
        if cap is not None and cap._state in ("starting", "running"):
            try:
                cap.stop()
            except Exception:  # noqa: BLE001 - the lab may be closed already
                pass
        self.watcher.unsubscribe(self._on_lab)
        self._close_widgets()


def _var(name: str) -> str:
    from .plan import _var as var

    return var(name)


def capture_panel(source: Any, **kwargs: Any) -> CapturePanel:
    """A capture panel for a lab, or for a builder's (or workbench's) lab."""
    return CapturePanel(source, **kwargs)
