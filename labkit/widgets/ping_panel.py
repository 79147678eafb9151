"""The ping panel: pick a source node and a destination address, ping, see why.

::

    from labkit.widgets import ping_panel
    p = ping_panel(lab)           # or ping_panel(builder): follows the builder's lab
    p                             # source / destination pickers, count, Ping button
    p.ping("c1", "172.17.0.3")    # the same from code; returns the PingResult

A successful ping shows its replies as a table and an RTT plot
(:func:`labkit.plots.rtt`). A failed one is explained in plain words from what ping
reported (``Network is unreachable``, ``Destination Host Unreachable``,
``Packet filtered``, ...) and, when nothing came back at all, from the lab's own
state along the path (:func:`diagnose`): routes, interfaces without carrier,
ARP entries that got no reply, routers that do not forward, missing return routes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from .. import plots
from ..results import PingResult
from ._base import (Panel, Tasks, clear, code_block, current_lab, error_message, message, show_figure,
                    show_html, watcher_for)

if TYPE_CHECKING:
    from ..lab import Lab
    from ..node import Node

__all__ = ["PingPanel", "ping_panel", "explain", "diagnose"]

_OTHER = "__other__"


# --------------------------------------------------------------------------- words


def _meaning(error: str) -> str:
    """One ping error line, said in plain words."""
    sender = re.match(r"From (\S+) icmp_seq=\d+ (.+)", error)
    who, what = (sender.group(1), sender.group(2)) if sender else ("", error)
    by = f"{who} " if who else ""
    if "Network is unreachable" in what:
        return ("the source has no route to that address, so the kernel refused to send anything "
                "(add an address on that subnet, or a route such as a default route via a gateway)")
    if "Destination Net Unreachable" in what:
        return (f"router {by}answered that it has no route to the destination's network "
                f"(add a route on {who or 'that router'}, or a default route)")
    if "Destination Host Unreachable" in what:
        return (f"{by}asked by ARP for the destination's MAC address and got no reply: the host is "
                "down, its cable is unplugged, or that address is on no host of this LAN")
    if "Packet filtered" in what or "prohibited" in what.lower():
        return f"a firewall rule on {who or 'the path'} rejected the packet (REJECT with admin-prohibited)"
    if "Port Unreachable" in what or "Protocol Unreachable" in what:
        return f"{by}rejected the packet (often a firewall REJECT rule)"
    if "Time to live exceeded" in what:
        return (f"the packet's TTL ran out at {who or 'a router'}: a routing loop, "
                "or more hops than the TTL allows")
    if "Frag needed" in what or "Message too long" in what:
        return f"the packet is bigger than the MTU at {who or 'a hop'} and may not be fragmented"
    if "Operation not permitted" in what:
        return "a firewall rule on the source itself (OUTPUT chain) refused to send it"
    return what


def explain(result: PingResult) -> list[str]:
    """What a ping's output says, in plain words (empty for a clean success)."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in result.errors:
        text = _meaning(error)
        if text not in seen:
            seen.add(text)
            lines.append(f"{error} \u2192 {text}")
    return lines


def _route_get(node: "Node", dst: str, src: str | None = None) -> tuple[dict[str, Any] | None, str]:
    argv = ["ip", "-j", "route", "get", dst] + (["from", src] if src else [])
    res = node.run(argv, timeout=10)
    if res.returncode != 0:
        return None, (res.stderr.strip() or res.stdout.strip())
    try:
        rows = json.loads(res.stdout or "[]")
    except ValueError:
        return None, res.stdout.strip()
    return (rows[0] if rows else None), ""


def _owners(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """address -> (node, interface) for every address in a lab description."""
    owners: dict[str, tuple[str, str]] = {}
    for node in data.get("nodes", []):
        for iface in node.get("interfaces", []):
            for cidr in iface.get("addresses", []):
                owners[cidr.split("/")[0]] = (node["name"], iface["name"])
    return owners


def diagnose(lab: "Lab", source: str, dst: str, *, max_hops: int = 8) -> list[str]:
    """Walk the path from ``source`` to ``dst`` in the lab's real state; say where it breaks.

    At each node: the route (``ip route get``), the outgoing interface's carrier, the
    ARP entry for the next hop (``ip neigh``: INCOMPLETE or FAILED means no ARP
    reply), forwarding on the routers passed, and the destination's route back.
    """
    data = lab.describe()
    owners = _owners(data)
    kinds = {n["name"]: n["kind"] for n in data.get("nodes", [])}
    findings: list[str] = []
    here, src_addr = source, None
    visited: set[str] = set()
    for _ in range(max_hops):
        if here in visited:
            findings.append(f"the path comes back to {here}: a routing loop")
            return findings
        visited.add(here)
        node = lab.node(here)
        route, err = _route_get(node, dst)
        if route is None:
            findings.append(f"{here} has no route to {dst} ({err or 'no route'}): add one on {here}")
            return findings
        if src_addr is None:
            src_addr = route.get("prefsrc")
        dev = route.get("dev", "?")
        if route.get("type") in ("blackhole", "unreachable", "prohibit"):
            findings.append(f"{here}'s route to {dst} is a {route['type']} route: packets stop there")
            return findings
        if dev == "lo":
            findings.append(f"{dst} is an address of {here} itself")
            break
        iface = next((i for i in node.interfaces() if i.ifname == dev), None)
        if iface is not None and not iface.up:
            findings.append(f"{here}'s interface {dev} is administratively down: `ip link set {dev} up` on {here}")
            return findings
        if iface is not None and iface.operstate == "DOWN":
            findings.append(f"{here}'s interface {dev} has no carrier: the other end of its cable is down "
                            "(or not plugged into anything)")
            return findings
        hop = route.get("gateway") or dst
        state = next((n.state for n in node.neighbours() if n.dst == hop), None)
        if state is not None and any(s in ("INCOMPLETE", "FAILED") for s in state):
            what = "the destination" if hop == dst else f"its gateway {hop}"
            findings.append(f"{here} asked by ARP for {what} ({hop}) on {dev} and got no reply: "
                            f"no host on that LAN has {hop}, or it is down or on another segment")
            return findings
        owner = owners.get(hop)
        if owner is None:
            findings.append(f"{here} sends to {hop} via {dev}, but no node of this lab has that address")
            return findings
        nxt, nxt_if = owner
        far = next((i for i in lab.node(nxt).interfaces() if i.ifname == nxt_if), None)
        if far is not None and not far.up:
            findings.append(f"{nxt}'s interface {nxt_if} ({hop}) is administratively down: "
                            f"`ip link set {nxt_if} up` on {nxt}")
            return findings
        if far is not None and far.operstate == "DOWN":
            findings.append(f"{nxt}'s interface {nxt_if} ({hop}) has no carrier: the other end of its "
                            "cable is down")
            return findings
        if hop == dst or owners.get(dst, ("",))[0] == nxt:
            back, err = _route_get(lab.node(nxt), src_addr) if src_addr else (None, "no source address")
            if back is None:
                findings.append(f"the request can reach {nxt}, but {nxt} has no route back to {src_addr} "
                                f"({err}): the reply is never sent; add a route back (or NAT)")
            else:
                findings.append(f"the path to {nxt} and back looks right; a firewall rule may drop the "
                                "packets silently (check `nft list ruleset` / `iptables -S` on the nodes)")
            return findings
        if kinds.get(nxt) != "router":
            fwd = lab.node(nxt).get_sysctl("net.ipv4.ip_forward")
            if fwd.strip() == "0":
                findings.append(f"the packet reaches {nxt} ({hop}), but {nxt} does not forward packets "
                                f"(net.ipv4.ip_forward=0): it is a host, not a router")
                return findings
        else:
            fwd = lab.node(nxt).get_sysctl("net.ipv4.ip_forward")
            if fwd.strip() == "0":
                findings.append(f"the packet reaches router {nxt}, but forwarding is off there "
                                f"(net.ipv4.ip_forward=0): turn it on with set_forwarding(True)")
                return findings
        here = nxt
    return findings


# --------------------------------------------------------------------------- panel


class PingPanel(Panel):
    """Ping between the nodes of a lab (or of a builder's lab) and explain the result.

    Args:
        source: a :class:`labkit.Lab`, or a topology builder / workbench whose lab it follows.
        watch: how often to look for a changed lab when given a plain Lab (seconds).
    """

    def __init__(self, source: Any, *, watch: float | None = 2.0) -> None:
        self.source = source
        self.watcher = watcher_for(source, watch)
        self.result: PingResult | None = None
        self.results: list[PingResult] = []
        self.explanation: list[str] = []
        self.error: BaseException | None = None
        self._had_lab = False
        self._tasks = Tasks(self._failed, self._update_buttons)
        self._make_widgets()
        self.watcher.subscribe(self._on_lab)
        self._on_lab(self.watcher.snapshot())

    def _make_widgets(self) -> None:
        lay = W.Layout
        self.src = W.Dropdown(description="From", layout=lay(width="220px"))
        self.dst = W.Dropdown(description="To", layout=lay(width="330px"))
        self.other = W.Text(placeholder="another address, e.g. 8.8.8.8", layout=lay(width="220px",
                                                                                   display="none"))
        self.count = W.IntSlider(value=3, min=1, max=20, description="count", layout=lay(width="260px"))
        self.ping_button = W.Button(description="Ping", icon="paper-plane", button_style="primary")
        self.ping_button.on_click(lambda _: self._start(background=True))
        self.refresh_button = W.Button(icon="refresh", tooltip="read the lab's nodes and addresses again",
                                       layout=lay(width="40px"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.dst.observe(self._on_dst, names="value")
        self.progress = W.FloatProgress(value=0, min=0, max=1, layout=lay(width="160px", visibility="hidden"))
        self.status = W.HTML(message("idle", "Pick a source node and a destination, then click Ping."))
        self.status.add_class("labkit-ping-status")
        self.code = W.HTML()
        self.table = W.Output(layout=lay(max_width="420px"))
        self.plot = W.Output(layout=lay(flex="1 1 420px"))
        self.widget = W.VBox([
            W.HTML("<b>Ping</b>"),
            W.HBox([self.src, self.dst, self.other, self.refresh_button], layout=lay(flex_flow="row wrap")),
            W.HBox([self.count, self.ping_button, self.progress], layout=lay(align_items="center")),
            self.status,
            self.code,
            W.HBox([self.table, self.plot], layout=lay(flex_flow="row wrap")),
        ], layout=lay(border="1px solid #ddd", padding="6px", width="100%"))
        self.widget.add_class("labkit-ping")

    # -- pickers -------------------------------------------------------------------------

    @property
    def lab(self) -> "Lab | None":
        lab = current_lab(self.source)
        return lab if lab is not None and not lab.closed else None

    def refresh(self) -> None:
        """Read the lab's nodes and addresses again (the refresh button)."""
        self._on_lab(self.watcher.snapshot())

    def _on_lab(self, data: dict[str, Any] | None) -> None:
        if data is None or data.get("planned") or self.lab is None:
            self.src.options, self.dst.options = [], []
            self._update_buttons()
            if self._had_lab or self.result is None:
                self.status.value = message("idle", "No lab now: build one, then pick a source and a destination.")
            self._had_lab = False
            return
        if not self._had_lab and not self._tasks.busy:
            self.status.value = message("idle", "Pick a source node and a destination, then click Ping.")
        self._had_lab = True
        nodes = data.get("nodes", [])
        src_opts = [(f"{n['name']} ({n['kind']})", n["name"]) for n in nodes]
        dst_opts: list[tuple[str, str]] = []
        for n in nodes:
            for iface in n.get("interfaces", []):
                for cidr in iface.get("addresses", []):
                    ip = cidr.split("/")[0]
                    if ipaddress.ip_address(ip).version == 4:
                        dst_opts.append((f"{ip}  ({n['name']} {iface['name']})", ip))
        dst_opts.append(("another address ...", _OTHER))
        keep_src, keep_dst = self.src.value, self.dst.value
        names = [v for _, v in src_opts]
        hosts = [n["name"] for n in nodes if n["kind"] == "host"] or names
        self.src.options = src_opts
        self.src.value = keep_src if keep_src in names else (hosts[0] if hosts else None)
        self.dst.options = dst_opts
        values = [v for _, v in dst_opts]
        if keep_dst in values and (keep_dst != _OTHER or self.other.value.strip()):
            self.dst.value = keep_dst
        else:
            self.dst.value = self._default_dst(nodes, self.src.value) or values[0]
        self._update_buttons()

    @staticmethod
    def _default_dst(nodes: list[dict[str, Any]], src: str | None) -> str | None:
        """An address of another host (a container), else of any other node."""
        best: str | None = None
        for n in nodes:
            if n["name"] == src:
                continue
            for iface in n.get("interfaces", []):
                for cidr in iface.get("addresses", []):
                    ip = str(cidr).split("/")[0]
                    if ipaddress.ip_address(ip).version != 4:
                        continue
                    if n["kind"] == "host":
                        return ip
                    best = best or ip
        return best

    def _on_dst(self, change: dict[str, Any]) -> None:
        self.other.layout.display = "" if change["new"] == _OTHER else "none"

    def _update_buttons(self) -> None:
        self.ping_button.disabled = self._tasks.busy or self.lab is None or not self.src.options

    # -- pinging -------------------------------------------------------------------------

    def _target(self) -> str:
        value = self.dst.value
        return self.other.value.strip() if value in (_OTHER, None) else str(value)

    def ping(self, source: str | None = None, dst: str | None = None, *, count: int | None = None,
             wait: bool = True) -> PingResult | None:
        """Ping from code (as the button does); returns the result (``None`` if it could not run)."""
        if source is not None:
            self.src.value = source
        if dst is not None:
            values = [v for _, v in self.dst.options]
            if dst in values:
                self.dst.value = dst
            else:
                self.dst.value = _OTHER
                self.other.value = dst
        if count is not None:
            self.count.value = count
        self._start(background=not wait)
        return self.result if wait else None

    def wait(self, timeout: float | None = 60.0) -> bool:
        return self._tasks.wait(timeout)

    def _start(self, *, background: bool) -> None:
        if not self._tasks.run(self._do_ping, background=background):
            self.status.value = message("busy", "A ping is still running; please wait.")
        self._update_buttons()

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self.progress.layout.visibility = "hidden"
        self.status.value = error_message(exc, doing="the ping")

    def _do_ping(self) -> None:
        lab = self.lab
        self.error = None
        if lab is None:
            self.status.value = message("error", "There is no lab to ping in: build one first.")
            return
        src, dst, count = self.src.value, self._target(), int(self.count.value)
        if not src:
            self.status.value = message("error", "Pick the node to ping from.")
            return
        node = lab.node(src)
        interval, wait = 0.2, 1.0
        self.status.value = message("busy", f"Pinging {dst} from {src} ({count} echo requests) ...")
        self.code.value = code_block(f'{_var(src)}.ping("{dst}", count={count})'
                                     f"      # ip netns exec {src} ping -c {count} {dst}")
        expected = count * interval + wait
        self.progress.value, self.progress.max = 0, expected
        self.progress.bar_style = "info"
        self.progress.layout.visibility = "visible"
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = node.ping(dst, count=count, interval=interval, wait=wait)
            except BaseException as exc:  # noqa: BLE001 - raised again below
                box["error"] = exc

        worker = threading.Thread(target=run, name="labkit-ping", daemon=True)
        started = time.monotonic()
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            self.progress.value = min(expected, time.monotonic() - started)
        if "error" in box:
            raise box["error"]
        result: PingResult = box["result"]
        self.result = result
        self.results.append(result)
        self.progress.value = expected
        self._show(lab, src, dst, result)

    def _show(self, lab: "Lab", src: str, dst: str, result: PingResult) -> None:
        lines = explain(result)
        if result.ok:
            ttl = result.replies[0].ttl if result.replies else None
            hops = (64 - ttl) if ttl is not None and ttl <= 64 else None
            via = "" if hops is None else (" \u00b7 no router on the way" if hops == 0 else
                                           f" \u00b7 TTL {ttl}: {hops} router{'s' if hops > 1 else ''} on the way")
            text = (f"\u2714 {result.received}/{result.sent} replies from {dst} "
                    f"(rtt min/avg/max {result.rtt_min:.3f}/{result.rtt_avg:.3f}/{result.rtt_max:.3f} ms){via}")
            if result.received < result.sent:
                text += f"\n{result.sent - result.received} lost (the first ones often wait for ARP)."
            kind = "ok"
        else:
            text = f"\u2718 {result.received}/{result.sent} replies from {dst}."
            if not lines:
                lines = ["No reply and no error message came back."]
                self.status.value = message("busy", text + "\nLooking along the path for the reason ...")
                try:
                    lines += diagnose(lab, src, dst)
                except Exception as exc:  # noqa: BLE001 - the explanation is a bonus
                    lines.append(f"(could not look along the path: {exc})")
            kind = "error"
        self.explanation = lines
        detail = "".join(f"<li>{_esc(line)}</li>" for line in lines)
        self.status.value = message(kind, text, detail=f"<ul style='margin:2px 0 0 0'>{detail}</ul>" if detail else "")
        self.progress.bar_style = "success" if result.ok else "danger"
        if result.replies:
            frame = pd.DataFrame(result.rows())[["seq", "source", "ttl", "rtt_ms"]]
            show_html(self.table, frame.to_html(index=False, border=0), frame.to_string(index=False))
            fig = plots.rtt(result, title=f"RTT {src} \u2192 {dst}")
            fig.update_layout(height=300, width=460, margin={"l": 50, "r": 10, "t": 40, "b": 40})
            fig.update_xaxes(dtick=1 if result.sent <= 20 else None)
            show_figure(self.plot, fig)
        else:
            clear(self.table)
            clear(self.plot)

    def close(self) -> None:
        """Stop following the lab and close the widget (the lab stays as it is)."""
        self._freeze()
        self._tasks.wait(30)
        self.watcher.unsubscribe(self._on_lab)
        self._close_widgets()


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def _var(name: str) -> str:
    from .plan import _var as var

    return var(name)


def ping_panel(source: Any, **kwargs: Any) -> PingPanel:
    """A ping panel for a lab, or for a builder's (or workbench's) lab."""
    return PingPanel(source, **kwargs)
