"""A packet ladder (sequence diagram) from one or several captures, like Wireshark's flow graph.

::

    from labkit import diagrams
    with Capture(c2, "eth0") as cap:
        c1.ping("10.0.0.2", count=1)
    diagrams.ladder(cap.table(), lab=lab)          # columns c1, c2; ARP, then ICMP

    with MultiCapture([(lan, "eth0"), (host2, "enp0s8")]) as mc:
        ...
    diagrams.ladder(mc.table(), lab=lab)           # a packet seen at both points: one arrow

Each endpoint is a column (a node's name when ``lab=`` or ``names=`` says who owns
the address, else the address itself); each packet is one arrow, from sender to
receiver, in time order, labelled with what it is: ``ARP who-has 10.0.0.2? tell
10.0.0.1``, ``ICMP echo request id 7 seq 1``, ``TCP 41522 → 5201 [SYN]``, and for a
tunnelled packet the encapsulation first (``VXLAN VNI 42 · ICMP echo request seq 1
10.0.0.11 → 10.0.0.21``) between the two tunnel endpoints. IP packets go between IP
addresses (a routed packet keeps its column pair across hops), ARP between the ARP
addresses, anything else between MAC addresses.

Several captures (a list of tables or captures, or the merged table of a
MultiCapture) are merged by time; with ``merge=True`` (the default) the same packet
captured at several points (same headers apart from MACs and TTL, within
``window`` seconds) is drawn once, and its tooltip lists where it was seen.
Packets longer than the path MTU are marked *GSO*: the kernel handed the capture
one large send (generic segmentation offload) that is cut into MTU-sized frames
later, or never on a veth.

The result is a :class:`Ladder`: an SVG drawing (shown by any notebook viewer) whose
``rows`` DataFrame lists the arrows (time, from, to, label, where seen). Each arrow
is an SVG ``<g class="ladder-arrow" data-src=... data-dst=... data-t=...>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..capture.decode import empty_table
from ._layout import stress_layout
from ._names import address_book, describe_of
from ._svg import Drawing, text_width

__all__ = ["ladder", "Ladder", "describe_packet"]

_TUNNELS = {"vxlan": "VXLAN", "gre": "GRE", "ipip": "IP-in-IP", "6in4": "6in4", "udp": "UDP encap"}
_TCP_FLAGS = [(0x02, "SYN"), (0x10, "ACK"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x20, "URG")]
_ICMP = {0: "echo reply", 3: "destination unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded"}
_COLOURS = {"arp": "#d95f02", "icmp": "#1f78b4", "tunnel": "#7b3294", "tcp": "#1b7837", "udp": "#35978f",
            "other": "#666666"}
# Columns compared to decide that two rows are one packet seen at two points.
_IDENTITY = ["stack", "tunnel", "length", "arp_op", "arp_sender_ip", "arp_target_ip", "src_ip", "dst_ip",
             "proto", "sport", "dport", "tcp_flags", "icmp_type", "icmp_code", "icmp_id", "icmp_seq", "vni",
             "gre_key", "inner_arp_op", "inner_arp_sender_ip", "inner_arp_target_ip", "inner_src_ip",
             "inner_dst_ip", "inner_proto", "inner_sport", "inner_dport", "inner_icmp_type", "inner_icmp_id",
             "inner_icmp_seq"]


def _get(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    try:
        if value is None or pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _flags(value: int) -> str:
    names = [name for bit, name in _TCP_FLAGS if value & bit]
    return ",".join(names) or "none"


def _payload(row: Mapping[str, Any], prefix: str) -> str:
    """What the (inner, with ``prefix="inner_"``) packet is, in words."""
    g = lambda key: _get(row, prefix + key)  # noqa: E731 - a short local accessor
    op = g("arp_op")
    if op is not None:
        sender, target = g("arp_sender_ip"), g("arp_target_ip")
        if int(op) == 1:
            return f"ARP who-has {target}? tell {sender}"
        mac = _get(row, "arp_sender_mac") if not prefix else g("src_mac")
        return f"ARP {sender} is-at {mac}" if mac else f"ARP reply {sender}"
    proto = g("proto")
    icmp_type = g("icmp_type")
    if icmp_type is not None:
        name = _ICMP.get(int(icmp_type), f"type {int(icmp_type)}")
        text = f"ICMP {name}"
        if int(icmp_type) in (0, 8) and g("icmp_seq") is not None:
            text += f" id {int(g('icmp_id'))} seq {int(g('icmp_seq'))}"
        elif int(icmp_type) in (3, 11) and g("icmp_code") is not None:
            text += f" (code {int(g('icmp_code'))})"
        return text
    if proto == 6 and g("sport") is not None:
        flags = g("tcp_flags")
        return f"TCP {int(g('sport'))} → {int(g('dport'))}" + (f" [{_flags(int(flags))}]" if flags is not None else "")
    if proto == 17 and g("sport") is not None:
        return f"UDP {int(g('sport'))} → {int(g('dport'))}"
    stack = str(_get(row, "stack") or "?")
    return stack.rsplit("/", 1)[-1].upper() if stack != "?" else "unknown frame"


def describe_packet(row: Mapping[str, Any]) -> str:
    """One line naming a packet (a row of a capture table), encapsulation first."""
    tunnel = _get(row, "tunnel")
    if not tunnel:
        return _payload(row, "")
    head = _TUNNELS.get(str(tunnel), str(tunnel).upper())
    if tunnel == "vxlan" and _get(row, "vni") is not None:
        head += f" VNI {int(row['vni'])}"
    if tunnel == "gre" and _get(row, "gre_key") is not None:
        head += f" key {int(row['gre_key'])}"
    inner = _payload(row, "inner_")
    src, dst = _get(row, "inner_src_ip"), _get(row, "inner_dst_ip")
    if src and dst:
        inner += f" {src} → {dst}"
    return f"{head} · {inner}"


def _kind(row: Mapping[str, Any]) -> str:
    if _get(row, "tunnel"):
        return "tunnel"
    if _get(row, "arp_op") is not None:
        return "arp"
    if _get(row, "icmp_type") is not None:
        return "icmp"
    return {6: "tcp", 17: "udp"}.get(_get(row, "proto") or -1, "other")


def _ends(row: Mapping[str, Any]) -> tuple[str, str]:
    if _get(row, "arp_op") is not None and _get(row, "arp_sender_ip"):
        return str(row["arp_sender_ip"]), str(row["arp_target_ip"])
    if _get(row, "src_ip"):
        return str(row["src_ip"]), str(row["dst_ip"])
    return str(_get(row, "src_mac") or "?"), str(_get(row, "dst_mac") or "?")


def _tables(captures: Any) -> pd.DataFrame:
    if isinstance(captures, pd.DataFrame):
        return captures
    if hasattr(captures, "table") and callable(captures.table):
        return captures.table()
    if isinstance(captures, Iterable):
        parts = [_tables(c) for c in captures]
        parts = [p for p in parts if len(p)]
        return pd.concat(parts, ignore_index=True) if parts else empty_table()
    raise TypeError(f"ladder() takes a capture table, a Capture, or a list of them, not {type(captures).__name__}")


def _merge(rows: list[dict[str, Any]], window: float) -> list[dict[str, Any]]:
    """Fold rows that are one packet seen at several points into the first sighting."""
    merged: list[dict[str, Any]] = []
    last: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(_get(row, c) for c in _IDENTITY)
        prior = last.get(key)
        if prior is not None and row["_t"] - prior["_last"] <= window \
                and row["_point"] not in prior["_points"]:
            prior["_points"].append(row["_point"])
            prior["_last"] = row["_t"]
            continue
        row = {**row, "_points": [row["_point"]], "_last": row["_t"]}
        last[key] = row
        merged.append(row)
    return merged


class Ladder(Drawing):
    """The drawing of :func:`ladder`; ``rows`` is one line per arrow."""

    rows: pd.DataFrame
    columns: list[str]


def ladder(captures: Any, *, lab: Any = None, names: Mapping[str, str] | None = None, merge: bool = True,
           window: float = 0.5, mtu: int = 1500, max_packets: int = 80, title: str | None = None) -> Ladder:
    """Draw a packet ladder; see the module docstring.

    Args:
        captures: a capture table (:meth:`Capture.table`), a Capture/MultiCapture, or a
            list of them (merged by time).
        lab: a Lab (or ``lab.describe()``) to name columns after the nodes owning the addresses.
        names: address -> column name, on top of what ``lab`` gives.
        merge: draw a packet seen at several capture points once.
        window: seconds within which equal headers count as one packet.
        mtu: frames longer than ``mtu + 14`` bytes are marked GSO.
        max_packets: draw at most this many arrows (the first ones), and say so.
    """
    table = _tables(captures)
    book = address_book(lab) if lab is not None else {"ff:ff:ff:ff:ff:ff": "broadcast"}
    book.update({k.lower() if ":" in k and len(k) == 17 else k: v for k, v in (names or {}).items()})
    rows: list[dict[str, Any]] = []
    if len(table):
        table = table.sort_values("time", kind="stable").reset_index(drop=True)
        t0 = table["time"].iloc[0]
        for rec in table.to_dict("records"):
            rec["_t"] = (rec["time"] - t0).total_seconds()
            rec["_point"] = f"{rec.get('node') or '?'}:{rec.get('interface') or '?'}"
            rows.append(rec)
    if merge:
        rows = _merge(rows, window)
    total = len(rows)
    rows = rows[:max_packets]

    def column(addr: str) -> str:
        owner = book.get(addr.lower() if ":" in addr else addr)
        return owner if owner else addr

    arrows = []
    columns: list[str] = []
    addresses: dict[str, list[str]] = {}
    for rec in rows:
        src_addr, dst_addr = _ends(rec)
        src, dst = column(src_addr), column(dst_addr)
        for col, addr in ((src, src_addr), (dst, dst_addr)):
            if col not in columns:
                columns.append(col)
            if col != addr and addr not in addresses.setdefault(col, []):
                addresses[col].append(addr)
        length = int(rec.get("length") or 0)
        label = describe_packet(rec)
        gso = length > mtu + 14
        arrows.append({"t": rec["_t"], "src": src, "dst": dst, "label": label, "kind": _kind(rec),
                       "length": length, "gso": gso, "seen_at": ", ".join(rec["_points"]),
                       "direction": rec.get("direction")})
    if lab is not None:
        columns = _order(columns, lab)
    return _draw(arrows, columns, addresses, total=total, title=title or "Packet ladder", mtu=mtu)


def _order(columns: list[str], lab: Any) -> list[str]:
    """Node columns left to right as the topology drawing places them; other columns after."""
    data = describe_of(lab)
    names = [str(n["name"]) for n in data.get("nodes", [])]
    index = {n: i for i, n in enumerate(names)}
    edges = [(index[str(ln["a"])], index[str(ln["b"])]) for ln in data.get("links", [])
             if str(ln.get("a")) in index and str(ln.get("b")) in index]
    if not names:
        return columns
    x = stress_layout(len(names), edges)[:, 0]
    nodes = sorted((c for c in columns if c in index), key=lambda c: x[index[c]])
    return nodes + [c for c in columns if c not in index]


def _draw(arrows: list[dict[str, Any]], columns: list[str], addresses: dict[str, list[str]], *,
          total: int, title: str, mtu: int) -> Ladder:
    gutter, top, row_h, margin = 96.0, 78.0, 30.0, 24.0
    position = {c: i for i, c in enumerate(columns)}
    need = [text_width(a["label"] + (" · GSO" if a["gso"] else ""), 11) / max(abs(position[a["src"]] - position[a["dst"]]), 1)
            for a in arrows]
    spacing = max(150.0, min(300.0, max(need, default=120) + 24))
    heads = [max(text_width(c, 12), *(text_width(a, 10) for a in addresses.get(c, [])), 60) for c in columns]
    spacing = max(spacing, *(h + 20 for h in heads)) if heads else spacing
    notes = []
    if total > len(arrows):
        notes.append(f"First {len(arrows)} of {total} packets drawn.")
    if any(a["gso"] for a in arrows):
        notes.append(f"GSO: longer than the MTU ({mtu}): one large send the kernel cuts into MTU-sized "
                     "frames later (or never, on a veth).")
    if any("," in a["seen_at"] for a in arrows):
        notes.append("A packet captured at several points is drawn once (hover an arrow: where it was seen).")
    width = gutter + spacing * max(len(columns), 1) + margin
    height = top + row_h * max(len(arrows), 1) + 24 + 16 * len(notes) + 10
    d = Ladder(width, height, title=title)
    d.text(12, 22, title, size=15, weight="bold")
    x_of = {c: gutter + spacing * (i + 0.5) for i, c in enumerate(columns)}
    bottom = top + row_h * max(len(arrows), 1)
    for c in columns:
        x = x_of[c]
        with d.group("ladder-column", {"name": c}):
            d.text(x, 44, c, size=12, weight="bold", anchor="middle")
            if addresses.get(c):
                d.text(x, 58, ", ".join(addresses[c])[:48], size=10, anchor="middle", fill="#666")
            d.line(x, 64, x, bottom + 6, stroke="#bbbbbb", width=1.2, dash="4 3")
    d.text(12, 58, "ms", size=10, fill="#666")
    max_chars = int((spacing - 16) / (11 * 0.6))
    for i, a in enumerate(arrows):
        y = top + row_h * i + row_h * 0.62
        colour = _COLOURS[a["kind"]]
        tip = f"+{a['t'] * 1000:.3f} ms, {a['length']} bytes, seen at {a['seen_at']}\n{a['label']}"
        data = {"i": i, "src": a["src"], "dst": a["dst"], "t": f"{a['t']:.6f}", "kind": a["kind"]}
        with d.group("ladder-arrow", data, tip=tip):
            d.text(10, y + 4, f"{a['t'] * 1000:9.3f}", size=10, fill="#666", mono=True)
            label = a["label"] + (" · GSO" if a["gso"] else "")
            x1, x2 = x_of[a["src"]], x_of[a["dst"]]
            span = max(abs(x2 - x1) / spacing, 1.0)
            room = int(max_chars * span)
            if len(label) > room:
                label = label[: max(room - 1, 8)] + "…"
            if x1 == x2:  # to itself (e.g. an unresolved address pair): a small loop
                d.path(f"M{x1:.1f},{y - 6:.1f} h26 v12 h-24", stroke=colour, arrow=True)
                d.text(x1 + 32, y + 4, label, size=11, fill=colour)
            else:
                d.line(x1, y, x2, y, stroke=colour, width=1.6, arrow=True)
                d.text((x1 + x2) / 2, y - 5, label, size=11, anchor="middle", fill=colour)
    for k, note in enumerate(notes):
        d.text(12, bottom + 26 + 16 * k, note, size=10, fill="#555", italic=True)
    d.rows = pd.DataFrame(arrows, columns=["t", "src", "dst", "label", "kind", "length", "gso", "seen_at",
                                           "direction"])
    d.columns = columns
    return d
