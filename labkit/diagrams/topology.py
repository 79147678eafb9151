"""A lab's topology as SVG, drawn from the lab itself (``lab.describe()``).

::

    from labkit import diagrams
    diagrams.topology(lab)                         # every node, cable, address, bridge
    diagrams.topology(lab, tunnels=[t1, t2])       # + the tunnels made with labkit.tunnels
    diagrams.topology(lab.describe(), title="b1")  # plain data works too (a plan, say)

Each node is a box: its name and kind, then the lines that matter for addressing:
interfaces with addresses (``eth0 10.0.0.11/24``), bridges with their ports and
address (``lxdbr0 bridge 10.0.0.1/24 ← enp0s8, veth-c1``) and tunnel devices
(``vxlan0 VNI 42``). Each cable (a veth pair) is a line with the interface name at
each end. Tunnels are dashed lines between the two hosts, labelled with the kind and
VNI or key: kernel VXLAN devices are found in the description (two ends with the same
VNI), other tunnels are given as ``tunnels=`` (:class:`labkit.tunnels.Tunnel`
objects, or dicts ``{"a": "host1", "b": "host2", "label": "GRE key 7"}``).

The layout is deterministic (the same lab is drawn the same way), shared with
:func:`labkit.plots.topology`. Each node is an SVG ``<g class="topology-node"
data-name=...>``, each cable ``<g class="topology-link" data-a="c1:eth0"
data-b="host1:veth-c1">`` and each tunnel ``<g class="topology-tunnel">``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._layout import stress_layout
from ._names import address_book, describe_of
from ._svg import Drawing, text_width

__all__ = ["topology"]

_FILL = {"host": "#eef3fa", "switch": "#eef7ec", "router": "#fdf1e4", "container": "#f6eef5"}
_STROKE = {"host": "#4C78A8", "switch": "#54A24B", "router": "#F58518", "container": "#B279A2"}
_TUNNEL_KINDS = {"vxlan", "gretap", "gre", "ipip", "geneve"}


def _node_lines(node: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    ifaces = list(node.get("interfaces", []) or [])
    ports: dict[str, list[str]] = {}
    for iface in ifaces:
        if iface.get("master"):
            ports.setdefault(str(iface["master"]), []).append(str(iface["name"]))
    for iface in ifaces:
        name, kind = str(iface.get("name")), str(iface.get("kind") or "")
        addrs = " ".join(iface.get("addresses", []) or [])
        down = "" if iface.get("up", True) else " (down)"
        if kind == "bridge":
            members = ports.get(name, [])
            text = f"{name} bridge {addrs}".rstrip()
            lines.append(text + down + (f" ← {', '.join(members)}" if members else ""))
        elif kind in _TUNNEL_KINDS or iface.get("vxlan"):
            vx = iface.get("vxlan") or {}
            text = f"{name} {kind}" + (f" VNI {vx['id']}" if "id" in vx else "")
            lines.append((text + f" {addrs}").rstrip() + down)
        elif addrs:
            lines.append(f"{name} {addrs}{down}")
        elif not iface.get("master") and node.get("kind") != "switch" and kind not in ("veth",):
            lines.append(f"{name} {kind}{down}")
    for cidr in node.get("addresses", []) or []:  # the plain "documented dict" form
        lines.append(str(cidr))
    return lines


def _tunnel_edges(data: Mapping[str, Any], tunnels: Any, book: dict[str, str]) -> list[dict[str, str]]:
    edges: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()

    def add(a: str, b: str, label: str) -> None:
        key = (min(a, b), max(a, b), label)
        if a != b and key not in seen:
            seen.add(key)
            edges.append({"a": a, "b": b, "label": label})

    vxlans: dict[int, list[str]] = {}
    for node in data.get("nodes", []):
        for iface in node.get("interfaces", []) or []:
            vx = iface.get("vxlan")
            if vx and "id" in vx:
                vxlans.setdefault(int(vx["id"]), []).append(str(node["name"]))
    for vni, owners in vxlans.items():
        for i, a in enumerate(owners):
            for b in owners[i + 1:]:
                add(a, b, f"VXLAN VNI {vni}")
    for t in tunnels or []:
        if isinstance(t, Mapping):
            add(str(t["a"]), str(t["b"]), str(t.get("label", "tunnel")))
            continue
        remotes = [r for r in (getattr(t, "remotes", None) or [getattr(t, "remote", None)]) if r]
        label = str(getattr(t, "kind", "tunnel")).upper()
        if getattr(t, "vni", None) is not None:
            label += f" VNI {t.vni}"
        if getattr(t, "key", None) is not None:
            label += f" key {t.key}"
        if getattr(t, "implementation", None) == "userspace":
            label += " (userspace)"
        for remote in remotes:
            other = book.get(str(remote))
            if other:
                add(str(t.node.name), other, label)
    return edges


def _border_point(centre: np.ndarray, size: tuple[float, float], towards: np.ndarray) -> np.ndarray:
    """Where the segment from a box's centre towards a point leaves the box."""
    d = towards - centre
    w, h = size[0] / 2, size[1] / 2
    scale = min(w / abs(d[0]) if abs(d[0]) > 1e-9 else np.inf, h / abs(d[1]) if abs(d[1]) > 1e-9 else np.inf)
    return centre + d * min(scale, 1.0)


def topology(source: Any, *, tunnels: Any = None, title: str | None = None, max_width: float = 1100) -> Drawing:
    """Draw a lab (or its ``describe()`` dict) as SVG; see the module docstring."""
    data = describe_of(source)
    nodes = list(data.get("nodes", []))
    if not nodes:
        raise ValueError("topology has no nodes: build some (lab.add_host) or give {'nodes': [...]}")
    names = [str(n["name"]) for n in nodes]
    index = {name: i for i, name in enumerate(names)}
    links = []
    for raw in data.get("links", []):
        a, b = str(raw.get("a")), str(raw.get("b"))
        a_if, b_if = raw.get("a_ifname"), raw.get("b_ifname")
        if ":" in a and a_if is None:
            a, a_if = a.split(":", 1)
        if ":" in b and b_if is None:
            b, b_if = b.split(":", 1)
        if a not in index or b not in index:
            raise ValueError(f"link {a} - {b} names a node that is not in the topology")
        links.append((a, a_if or "", b, b_if or "", raw.get("kind")))
    book = address_book(data)
    tunnel_edges = _tunnel_edges(data, tunnels, book)
    for ln in [ln for ln in links if str(ln[4] or "") in _TUNNEL_KINDS | {"tunnel"}]:
        links.remove(ln)
        tunnel_edges.append({"a": ln[0], "b": ln[2], "label": str(ln[4]).upper()})
    ifaces = {(str(n["name"]), str(i.get("name"))): i for n in nodes for i in n.get("interfaces", []) or []}

    # boxes
    sizes, texts = [], []
    for node in nodes:
        lines = _node_lines(node)
        head = f"{node['name']}"
        w = max(text_width(head, 14) + 50, *(text_width(ln, 11) for ln in lines), 80) + 20
        h = 30 + 15 * len(lines) + 8
        sizes.append((w, h))
        texts.append(lines)
    edges = [(index[a], index[b]) for a, _, b, _, _ in links if a != b]
    edges += [(index[e["a"]], index[e["b"]]) for e in tunnel_edges if e["a"] in index and e["b"] in index]
    pos = stress_layout(len(nodes), edges)
    pos[:, 1] *= -1  # SVG's y grows downwards
    ifwidth = max((text_width(str(x), 10) for ln in links for x in (ln[1], ln[3])), default=0.0)
    gap = max(70.0, 2 * ifwidth + 30)  # room on a cable for the interface names at both ends
    scale = 1.0
    for i in range(len(nodes)):
        for j in range(i + 1, len(nodes)):
            dx, dy = abs(pos[i, 0] - pos[j, 0]), abs(pos[i, 1] - pos[j, 1])
            need_x = ((sizes[i][0] + sizes[j][0]) / 2 + gap) / dx if dx > 1e-6 else np.inf
            need_y = ((sizes[i][1] + sizes[j][1]) / 2 + 50) / dy if dy > 1e-6 else np.inf
            scale = max(scale, min(need_x, need_y))
    scale = min(scale, 900.0)
    xy = pos * scale
    mins = np.array([min(xy[i, 0] - sizes[i][0] / 2 for i in range(len(nodes))),
                     min(xy[i, 1] - sizes[i][1] / 2 for i in range(len(nodes)))])
    maxs = np.array([max(xy[i, 0] + sizes[i][0] / 2 for i in range(len(nodes))),
                     max(xy[i, 1] + sizes[i][1] / 2 for i in range(len(nodes)))])
    pad, top = 40.0, 44.0
    xy = xy - mins + np.array([pad, pad + top])
    width, height = float(maxs[0] - mins[0] + 2 * pad), float(maxs[1] - mins[1] + 2 * pad + top)
    d = Drawing(width, height, title=title or str(data.get("name", "topology")))
    d.text(12, 24, title or f"Lab {data.get('name', '')}".strip(), size=15, weight="bold")

    for a, a_if, b, b_if, _ in links:
        pa, pb = xy[index[a]], xy[index[b]]
        with d.group("topology-link", {"a": f"{a}:{a_if}", "b": f"{b}:{b_if}"}, tip=f"{a}:{a_if} — {b}:{b_if}"):
            d.line(float(pa[0]), float(pa[1]), float(pb[0]), float(pb[1]), stroke="#777", width=2)
            for here, there, ifname, size in ((pa, pb, a_if, sizes[index[a]]), (pb, pa, b_if, sizes[index[b]])):
                if not ifname:
                    continue
                edge = _border_point(here, size, there)
                unit = (there - here) / (np.linalg.norm(there - here) or 1.0)
                spot = edge + unit * 14
                iface = ifaces.get((a if here is pa else b, ifname), {})
                label = ifname + ("" if iface.get("up", True) else " (down)")
                below = 12 if unit[1] > 0.3 else -4  # leaving by the bottom edge: write under it
                d.text(float(spot[0]) + (4 if abs(unit[0]) < 0.3 else 0), float(spot[1]) + below, label, size=10,
                       anchor="start" if abs(unit[0]) < 0.3 else ("start" if unit[0] > 0 else "end"),
                       fill="#b00" if not iface.get("up", True) else "#444")
    for k, e in enumerate(tunnel_edges):
        if e["a"] not in index or e["b"] not in index:
            continue
        pa, pb = xy[index[e["a"]]], xy[index[e["b"]]]
        mid = (pa + pb) / 2
        normal = np.array([-(pb - pa)[1], (pb - pa)[0]])
        normal = normal / (np.linalg.norm(normal) or 1.0)
        if normal[1] > 0:
            normal = -normal
        ctrl = mid + normal * (max(70.0, 0.35 * float(np.linalg.norm(pb - pa))) + 24 * k)
        with d.group("topology-tunnel", {"a": e["a"], "b": e["b"], "label": e["label"]}, tip=e["label"]):
            d.path(f"M{pa[0]:.1f},{pa[1]:.1f} Q{ctrl[0]:.1f},{ctrl[1]:.1f} {pb[0]:.1f},{pb[1]:.1f}",
                   stroke="#e6550d", width=2.2, dash="7 4")
            peak = (pa + pb) / 4 + ctrl / 2
            d.text(float(peak[0]), float(peak[1]) - 6, e["label"], size=11, weight="bold", anchor="middle",
                   fill="#a63603")
    for i, node in enumerate(nodes):
        kind = str(node.get("kind") or "host")
        w, h = sizes[i]
        x, y = float(xy[i, 0] - w / 2), float(xy[i, 1] - h / 2)
        with d.group("topology-node", {"name": node["name"], "kind": kind}):
            d.rect(x, y, w, h, fill=_FILL.get(kind, "#f3f3f3"), stroke=_STROKE.get(kind, "#777"), width=1.6, rx=6)
            d.text(x + 10, y + 19, str(node["name"]), size=14, weight="bold")
            d.text(x + w - 8, y + 18, kind, size=10, anchor="end", fill="#777", italic=True)
            for k, line in enumerate(texts[i]):
                d.text(x + 10, y + 36 + 15 * k, line, size=11, mono=True)
    if width > max_width:  # keep the drawing within a notebook column; the SVG scales
        d.display_width = max_width
    return d

