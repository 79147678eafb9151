"""Plotly figures for captures, pings and topologies.

Every function takes plain data (a capture table from
:func:`labkit.capture.read_pcap`, ping results, or a topology dict) and returns a
``plotly.graph_objects.Figure``: it renders in JupyterLab, and
``fig.write_image("x.png")`` exports it where kaleido can run a browser. Shown by a
notebook cell, each figure also carries a PNG (:mod:`labkit.ipython`), so it reads on
GitHub, nbviewer and in HTML too. For pictures that need no browser at all, and read
better at a glance, prefer :mod:`labkit.diagrams`: ``diagrams.topology(lab)`` over
:func:`topology`, and ``diagrams.ladder(table)`` over :func:`timeline` when the dots
of a few packets would stack on each other.

* :func:`timeline`: one lane per interface; one ping's journey joined by a line.
* :func:`protocol_breakdown`: how many frames of each encapsulation stack.
* :func:`overhead`: bytes per packet, inner packet vs. encapsulation, per tunnel.
* :func:`rtt`: round-trip time per ping sequence number, lost pings marked.
* :func:`topology`: nodes, bridges, links, addresses and tunnels from plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .diagrams._layout import stress_layout as _stress_layout

__all__ = ["timeline", "protocol_breakdown", "overhead", "rtt", "topology"]

_TUNNEL_KINDS = {"vxlan", "gre", "gretap", "ipip", "udp", "tunnel", "geneve", "wireguard", "flannel"}
_SYMBOLS = {"host": "square", "router": "diamond", "switch": "square-open", "bridge": "square-open",
            "container": "circle", "pod": "circle", "vtep": "triangle-up"}
_COLORS = {"host": "#4C78A8", "router": "#F58518", "switch": "#54A24B", "bridge": "#54A24B",
           "container": "#B279A2", "pod": "#B279A2"}


def _lane(table: pd.DataFrame) -> pd.Series:
    node = table["node"].astype(object)
    iface = table["interface"].fillna("?").astype(object)
    return pd.Series(
        [f"{n}:{i}" if isinstance(n, str) else str(i) for n, i in zip(node, iface)], index=table.index
    )


def _inner(table: pd.DataFrame, field: str) -> pd.Series:
    inner = table[f"inner_{field}"]
    return inner.where(inner.notna(), table[field])


def _describe(table: pd.DataFrame) -> pd.Series:
    """A one-line hover text per packet."""
    ip_src, ip_dst = _inner(table, "src_ip").astype(object), _inner(table, "dst_ip").astype(object)
    src = ip_src.where(ip_src.notna(), _inner(table, "arp_sender_ip").astype(object))
    dst = ip_dst.where(ip_dst.notna(), _inner(table, "arp_target_ip").astype(object))
    typ = _inner(table, "icmp_type")
    seq = _inner(table, "icmp_seq")
    parts = []
    for no, s, d, stack, t, q, length, direction in zip(
        table["no"], src, dst, table["stack"], typ, seq, table["length"], table["direction"]
    ):
        text = f"#{no} {stack}<br>{s if isinstance(s, str) else '?'} → {d if isinstance(d, str) else '?'}"
        if not pd.isna(t):
            text += f"<br>icmp type {t}" + (f" seq {q}" if not pd.isna(q) else "")
        text += f"<br>{length} bytes" + (f", {direction}" if isinstance(direction, str) else "")
        parts.append(text)
    return pd.Series(parts, index=table.index)


def journey_keys(table: pd.DataFrame) -> pd.Series:
    """A key naming the logical packet a row carries, wherever it was seen.

    Echo requests/replies are keyed by their innermost addresses, type, id and
    sequence; ARP by operation and addresses. Other rows get ``None``.
    """
    src, dst = _inner(table, "src_ip").astype(object), _inner(table, "dst_ip").astype(object)
    typ, ident, seq = _inner(table, "icmp_type"), _inner(table, "icmp_id"), _inner(table, "icmp_seq")
    op = _inner(table, "arp_op")
    asrc, adst = _inner(table, "arp_sender_ip").astype(object), _inner(table, "arp_target_ip").astype(object)
    keys: list[str | None] = []
    for s, d, t, i, q, o, a, b in zip(src, dst, typ, ident, seq, op, asrc, adst):
        if not pd.isna(q) and isinstance(s, str):
            keys.append(f"icmp {s}>{d} type {t} id {i} seq {q}")
        elif not pd.isna(o) and isinstance(a, str):
            keys.append(f"arp {o} {a}>{b}")
        else:
            keys.append(None)
    return pd.Series(keys, index=table.index, dtype=object)


def timeline(table: pd.DataFrame, *, journeys: bool = True, max_journeys: int = 200,
             title: str | None = None) -> go.Figure:
    """Packets over time, one lane per (node, interface), coloured by stack.

    With ``journeys``, each echo request/reply or ARP message seen on several
    interfaces is joined by a grey line, so a student can follow one ping across
    veth, bridge, tunnel and the remote host.
    """
    fig = go.Figure()
    if len(table) == 0:
        fig.update_layout(title=title or "No packets")
        return fig
    table = table.sort_values("time", kind="stable")
    lane = _lane(table)
    lanes = list(dict.fromkeys(lane))
    ms = (table["time"] - table["time"].min()).dt.total_seconds() * 1000.0
    hover = _describe(table)
    if journeys:
        keys = journey_keys(table)
        xs: list[float | None] = []
        ys: list[str | None] = []
        drawn = 0
        frame = pd.DataFrame({"key": keys, "lane": lane, "ms": ms})
        for _, group in frame.dropna(subset=["key"]).groupby("key", sort=False):
            if group["lane"].nunique() < 2 or group["lane"].duplicated().any():
                continue  # seen once, or a repeat on one interface: not a journey
            xs += [*group["ms"].tolist(), None]
            ys += [*group["lane"].tolist(), None]
            drawn += 1
            if drawn >= max_journeys:
                break
        if drawn:
            fig.add_trace(go.Scatter(x=xs[:-1], y=ys[:-1], mode="lines", name="journey",
                                     line={"color": "rgba(120,120,120,0.6)", "width": 1}, hoverinfo="skip"))
    for stack in dict.fromkeys(table["stack"].fillna("?")):
        rows = (table["stack"].fillna("?") == stack).to_numpy()
        fig.add_trace(go.Scatter(
            x=ms[rows], y=lane[rows], mode="markers", name=str(stack), text=hover[rows],
            hovertemplate="%{text}<br>%{x:.3f} ms<extra>%{y}</extra>", marker={"size": 9},
        ))
    fig.update_layout(
        title=title or "Packets per interface",
        xaxis_title="ms since the first packet",
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": lanes, "autorange": "reversed"},
        legend_title="stack", height=max(300, 80 + 60 * len(lanes)),
    )
    return fig


def protocol_breakdown(table: pd.DataFrame, *, kind: str = "bar", title: str | None = None) -> go.Figure:
    """Frames per encapsulation stack: ``kind="bar"`` (per interface) or ``"sunburst"``."""
    stacks = table["stack"].fillna("?").astype(object)
    if kind == "sunburst":
        counts = stacks.value_counts()
        totals: dict[str, int] = {}
        for stack, n in counts.items():
            parts = str(stack).split("/")
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                totals[prefix] = totals.get(prefix, 0) + int(n)
        ids = list(totals)
        fig = go.Figure(go.Sunburst(
            ids=ids, labels=[i.rsplit("/", 1)[-1] for i in ids],
            parents=[i.rsplit("/", 1)[0] if "/" in i else "" for i in ids],
            values=[totals[i] for i in ids], branchvalues="total",
            hovertemplate="%{id}<br>%{value} frames<extra></extra>",
        ))
        fig.update_layout(title=title or "Encapsulation stacks")
        return fig
    if kind != "bar":
        raise ValueError(f"protocol_breakdown kind {kind!r} is not known; use 'bar' or 'sunburst'")
    lane = _lane(table)
    order = stacks.value_counts().index.tolist()[::-1]
    fig = go.Figure()
    for name in dict.fromkeys(lane):
        counts = stacks[lane == name].value_counts().reindex(order, fill_value=0)
        fig.add_trace(go.Bar(x=counts.to_numpy(), y=order, orientation="h", name=name))
    fig.update_layout(barmode="stack", title=title or "Frames per encapsulation stack",
                      xaxis_title="frames", legend_title="interface",
                      height=max(300, 100 + 28 * len(order)))
    return fig


def _encapsulation(table: pd.DataFrame) -> pd.Series:
    tunnel = table["tunnel"].astype(object)
    gre_inner = table["gre_proto"].map({0x6558: "gre (Ethernet)", 0x0800: "gre (IPv4)", 0x86DD: "gre (IPv6)"})
    label = tunnel.where(tunnel != "gre", gre_inner.astype(object).fillna("gre"))
    return label.fillna("none")


def overhead(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Average bytes per packet for each encapsulation: inner packet + tunnel overhead.

    ``none`` is traffic without a tunnel. Bar labels give the overhead in bytes
    (VXLAN 50, GRE with Ethernet 38, IP-in-IP 20, flannel UDP 28).
    """
    frame = pd.DataFrame({
        "enc": _encapsulation(table),
        "over": table["overhead_bytes"].astype(float),
        "inner": (table["length"] - table["overhead_bytes"]).astype(float),
    })
    stats = frame.groupby("enc", sort=False).agg(over=("over", "mean"), inner=("inner", "mean"),
                                                 lo=("over", "min"), hi=("over", "max"), n=("over", "size"))
    stats = stats.sort_values("over")
    names = stats.index.tolist()
    text = [f"{o:.0f} B" if lo == hi else f"{lo:.0f}-{hi:.0f} B"
            for o, lo, hi in zip(stats["over"], stats["lo"], stats["hi"])]
    fig = go.Figure([
        go.Bar(x=names, y=stats["inner"].round(1).tolist(), name="inner packet", marker_color="#9ecae1",
               hovertemplate="%{x}: inner %{y:.0f} B<extra></extra>"),
        go.Bar(x=names, y=stats["over"].round(1).tolist(), name="encapsulation overhead", marker_color="#e6550d",
               text=text, textposition="outside", customdata=stats["n"].tolist(),
               hovertemplate="%{x}: overhead %{y:.0f} B (%{customdata} packets)<extra></extra>"),
    ])
    fig.update_layout(barmode="stack", title=title or "Bytes per packet by encapsulation",
                      yaxis_title="bytes per packet (mean)", xaxis_title="encapsulation")
    return fig


def _ping_rows(result: Any) -> tuple[list[int], list[float], int]:
    """(seqs, rtts in ms, packets sent) from a PingResult or a DataFrame of replies."""
    if isinstance(result, pd.DataFrame):
        seqs = [int(s) for s in result["seq"]]
        rtts = [float(r) for r in result["rtt_ms"]]
        return seqs, rtts, max(seqs, default=0)
    replies = list(getattr(result, "replies", []))
    sent = int(getattr(result, "sent", 0) or 0)
    seqs = [int(r.seq) for r in replies]
    return seqs, [float(r.rtt_ms) for r in replies], max([sent, *seqs], default=0)


def rtt(results: Any, *, title: str | None = None) -> go.Figure:
    """Round-trip time per ping sequence number; lost pings leave a gap and an ×.

    Args:
        results: a ping result (``labkit.PingResult``: ``.sent`` and ``.replies`` with
            ``seq`` and ``rtt_ms``), a DataFrame with ``seq`` and ``rtt_ms``, a list of
            results, or a dict label -> result to compare paths.
    """
    if isinstance(results, Mapping):
        items = list(results.items())
    elif isinstance(results, (list, tuple)):
        items = [(str(getattr(r, "destination", f"ping {i + 1}")), r) for i, r in enumerate(results)]
    else:
        items = [(str(getattr(results, "destination", "ping")), results)]
    fig = go.Figure()
    lost_traces = []
    for label, result in items:
        seqs, rtts, sent = _ping_rows(result)
        by_seq = dict(zip(seqs, rtts))
        xs = list(range(1, sent + 1)) if sent else sorted(by_seq)
        ys = [by_seq.get(s) for s in xs]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=str(label), connectgaps=False,
                                 hovertemplate="seq %{x}: %{y:.3f} ms<extra>" + str(label) + "</extra>"))
        lost = [s for s in xs if s not in by_seq]
        if lost:
            lost_traces.append(go.Scatter(x=lost, y=[0] * len(lost), mode="markers", name=f"{label}: lost",
                                          marker={"symbol": "x", "size": 10, "color": "crimson"}))
    for trace in lost_traces:
        fig.add_trace(trace)
    fig.update_layout(title=title or "Round-trip time", xaxis_title="ping sequence number",
                      yaxis_title="RTT (ms)", yaxis_rangemode="tozero")
    return fig


# --------------------------------------------------------------------------- topology


def _normalise_topology(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Nodes and links in one shape, from the documented dict or ``Lab.describe()``."""
    nodes: list[dict[str, Any]] = []
    for raw in data.get("nodes", []):
        node: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {"name": str(raw)}
        if "name" not in node:
            raise ValueError(f"topology node {raw!r} has no 'name'")
        addresses = list(node.get("addresses", []))
        for iface in node.get("interfaces", []) or []:
            for addr in iface.get("addresses", []) or []:
                addresses.append(f"{iface.get('name', '?')} {addr}")
        node["addresses"] = addresses
        nodes.append(node)
    names = {n["name"] for n in nodes}
    links: list[dict[str, Any]] = []
    for raw in data.get("links", []):
        link = dict(raw)
        a, b = str(link.get("a", "")), str(link.get("b", ""))
        if "a_ifname" in link:
            a = f"{a}:{link['a_ifname']}"
        if "b_ifname" in link:
            b = f"{b}:{link['b_ifname']}"
        a_node, _, a_if = a.partition(":")
        b_node, _, b_if = b.partition(":")
        for end in (a_node, b_node):
            if end not in names:
                raise ValueError(f"link {a} - {b} names unknown node {end!r}; add it to 'nodes'")
        link.update(a_node=a_node, a_if=a_if, b_node=b_node, b_if=b_if)
        links.append(link)
    return nodes, links


def topology(data: Mapping[str, Any], *, title: str | None = None) -> go.Figure:
    """Draw a lab: nodes with their addresses, links with interface names, tunnels dashed.

    ``data`` is plain data, so a diagram can be drawn before (or without) a lab::

        {
          "nodes": [
            {"name": "h1", "kind": "host", "addresses": ["172.16.1.1/24"]},
            {"name": "br0", "kind": "bridge"},
            {"name": "c1", "kind": "container", "addresses": ["10.0.0.1/24"],
             "pos": [0, -1]},                                     # optional fixed position
          ],
          "links": [
            {"a": "h1:eth0", "b": "br0:p1"},                      # "node:interface" or "node"
            {"a": "h1:vxlan42", "b": "h2:vxlan42", "kind": "vxlan", "label": "VNI 42"},
          ],
        }

    ``kind`` of a node picks its symbol (host, router, switch, bridge, container);
    a link whose ``kind`` is a tunnel (vxlan, gre, ipip, udp, tunnel, ...) is dashed.
    ``Lab.describe()`` output (interfaces with addresses; links with ``a_ifname``)
    is accepted as well.
    """
    nodes, links = _normalise_topology(data)
    if not nodes:
        raise ValueError("topology has no nodes; give {'nodes': [...], 'links': [...]}")
    names = [n["name"] for n in nodes]
    index = {name: i for i, name in enumerate(names)}
    edges = [(index[ln["a_node"]], index[ln["b_node"]]) for ln in links if ln["a_node"] != ln["b_node"]]
    pos = _stress_layout(len(names), edges)
    for i, node in enumerate(nodes):
        if "pos" in node:
            pos[i] = np.asarray(node["pos"], dtype=float)
    fig = go.Figure()
    for dashed in (False, True):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for link in links:
            if (str(link.get("kind", "")).lower() in _TUNNEL_KINDS) != dashed:
                continue
            a, b = pos[index[link["a_node"]]], pos[index[link["b_node"]]]
            xs += [float(a[0]), float(b[0]), None]
            ys += [float(a[1]), float(b[1]), None]
        if xs:
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", hoverinfo="skip", name="tunnel" if dashed else "link",
                line={"color": "#e6550d" if dashed else "#888", "width": 2, "dash": "dash" if dashed else "solid"},
            ))
    label_x, label_y, label_text = [], [], []
    for link in links:
        a, b = pos[index[link["a_node"]]], pos[index[link["b_node"]]]
        length = float(np.linalg.norm(b - a)) or 1.0
        step = min(0.16, 0.3 * length) / length  # interface names near their own node
        for frac, ifname in ((step, link["a_if"]), (1 - step, link["b_if"])):
            if ifname:
                point = a + (b - a) * frac
                label_x.append(float(point[0]))
                label_y.append(float(point[1]))
                label_text.append(ifname)
    if label_text:
        fig.add_trace(go.Scatter(x=label_x, y=label_y, mode="text", text=label_text, hoverinfo="skip",
                                 textfont={"size": 10, "color": "#555"}, showlegend=False))
    labelled = [link for link in links if link.get("label")]
    if labelled:
        mids = [(pos[index[ln["a_node"]]] + pos[index[ln["b_node"]]]) / 2 for ln in labelled]
        fig.add_trace(go.Scatter(
            x=[float(m[0]) for m in mids], y=[float(m[1]) for m in mids], mode="text",
            text=[f"<b>{ln['label']}</b>" for ln in labelled], textposition="top center",
            hoverinfo="skip", textfont={"size": 11, "color": "#a63603"}, showlegend=False,
        ))
    for kind in dict.fromkeys(str(n.get("kind", "host")) for n in nodes):
        members = [i for i, n in enumerate(nodes) if str(n.get("kind", "host")) == kind]
        text = []
        for i in members:
            addrs = nodes[i]["addresses"]
            text.append(f"<b>{names[i]}</b>" + "".join(f"<br>{a}" for a in addrs))
        fig.add_trace(go.Scatter(
            x=pos[members, 0].tolist(), y=pos[members, 1].tolist(), mode="markers+text", name=kind,
            text=text, textposition="bottom center", hovertemplate="%{text}<extra>" + kind + "</extra>",
            marker={"size": 28, "symbol": _SYMBOLS.get(kind, "circle"), "color": _COLORS.get(kind, "#72B7B2"),
                    "line": {"width": 2, "color": _COLORS.get(kind, "#72B7B2")}},
        ))
    fig.update_layout(
        title=title or str(data.get("name", "Topology")),
        xaxis={"visible": False, "range": [-1.3, 1.3]},
        yaxis={"visible": False, "range": [-1.35, 1.25], "scaleanchor": "x"},
        plot_bgcolor="white", width=820, height=640, legend_title="node kind",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig
