"""One picture of a tunnelled packet's headers, with the byte count of each.

::

    from labkit import diagrams
    diagrams.headers("vxlan")                      # outer Ethernet | outer IPv4 | UDP | VXLAN | inner ...
    diagrams.headers("gretap", key=True)           # GRE with a key: 8 bytes instead of 4
    diagrams.headers(table.iloc[0])                # a captured packet: its own stack and length

Each header is a box whose width grows with its size; a bracket marks what the
tunnel adds (the *overhead*: VXLAN 50 bytes, GRE with Ethernet 38, GRE 24, IP in
UDP 28, IP-in-IP 20), and the caption does the MTU arithmetic: an underlay MTU of
1500 leaves ``1500 - overhead`` for the inner packet. The outer Ethernet header is
drawn but is not part of that arithmetic (the MTU counts from the IP header); the
*inner* Ethernet header is, for the tunnels that carry Ethernet frames (VXLAN, GRE
with 0x6558).

Kinds: ``vxlan``, ``gretap`` (GRE carrying Ethernet), ``gre`` (GRE carrying IP),
``udp`` (flannel's udp backend: IP in UDP), ``ipip``, or a capture row (a mapping
with ``stack`` and ``length``, from :meth:`Capture.table`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._svg import Drawing, text_width

__all__ = ["headers", "HEADER_BYTES", "STACKS"]

HEADER_BYTES = {"eth": 14, "vlan": 4, "ipv4": 20, "ipv6": 40, "udp": 8, "tcp": 20, "icmp": 8, "icmpv6": 8,
                "vxlan": 8, "gre": 4, "arp": 28, "igmp": 8}
# Canonical stacks: outer first; the payload after them is the inner packet's data.
STACKS = {
    "vxlan": "eth/ipv4/udp/vxlan/eth/ipv4/icmp",
    "gretap": "eth/ipv4/gre/eth/ipv4/icmp",
    "gre": "eth/ipv4/gre/ipv4/icmp",
    "udp": "eth/ipv4/udp/ipv4/icmp",
    "ipip": "eth/ipv4/ipv4/icmp",
}
_NAMES = {"eth": "Ethernet", "ipv4": "IPv4", "ipv6": "IPv6", "udp": "UDP", "tcp": "TCP", "icmp": "ICMP",
          "vxlan": "VXLAN", "gre": "GRE", "arp": "ARP", "vlan": "802.1Q", "igmp": "IGMP", "icmpv6": "ICMPv6"}
_COLOURS = {"outer": "#fdd0a2", "tunnel": "#fc8d59", "inner": "#c6dbef", "payload": "#f0f0f0"}
_TUNNEL_LAYERS = {"vxlan", "gre"}


def _layers(stack: str, *, key: bool) -> list[tuple[str, int, str]]:
    """(label, bytes, base name) of each header of ``stack`` whose size is known."""
    out = []
    for part in stack.split("/"):
        base = re.sub(r"\(.*\)$", "", part)
        size = HEADER_BYTES.get(base)
        if size is None:
            continue
        if base == "gre" and key:
            size += 4
        label = _NAMES.get(base, base)
        if "(" in part:
            label += " " + part[part.index("(") + 1:-1].replace("=", " ").upper()
        out.append((label, size, base))
    return out


def _inner_start(bases: list[str]) -> int | None:
    """Index of the first header of the tunnelled packet, or None if there is no tunnel."""
    for i, base in enumerate(bases):
        if base in _TUNNEL_LAYERS:
            return i + 1
    if bases[:3] == ["eth", "ipv4", "ipv4"]:
        return 2  # IP-in-IP: the outer IPv4 header is the whole tunnel
    if bases[:4] == ["eth", "ipv4", "udp", "ipv4"]:
        return 3  # IP in UDP (flannel's udp backend)
    return None


def headers(what: str | Mapping[str, Any] = "vxlan", *, key: bool = False, payload: int = 56,
            underlay_mtu: int = 1500, title: str | None = None) -> Drawing:
    """Draw the header stack of a tunnel kind or of a captured packet; see the module docstring.

    Args:
        what: a tunnel kind (``vxlan``, ``gretap``, ``gre``, ``udp``, ``ipip``) or a capture row.
        key: GRE with a key (4 more bytes).
        payload: bytes of data after the innermost header (56: a default ``ping``).
        underlay_mtu: the MTU of the card carrying the tunnel, for the caption's arithmetic.
    """
    if isinstance(what, Mapping):
        stack = str(what.get("stack") or "")
        key = key or what.get("gre_key") is not None and str(what.get("gre_key")) != "<NA>"
        layers = _layers(stack, key=key)
        total = int(what.get("length") or 0)
        payload = max(total - sum(size for _, size, _ in layers), 0)
        name = title or f"Captured packet: {stack}"
    else:
        if what not in STACKS:
            raise ValueError(f"headers() knows {', '.join(STACKS)}, not {what!r}")
        stack = STACKS[what]
        layers = _layers(stack, key=key)
        name = title or {"vxlan": "VXLAN", "gretap": "GRE carrying Ethernet (gretap)", "gre": "GRE carrying IP",
                         "udp": "IP in UDP (flannel udp)", "ipip": "IP-in-IP"}[what] + ": the headers on the wire"
    bases = [base for _, _, base in layers]
    inner_from = _inner_start(bases)
    tunnelled = inner_from is not None
    boxes = []
    for i, (label, size, base) in enumerate(layers):
        if not tunnelled:
            role, prefix = "inner", ""
        elif inner_from is not None and i < inner_from:
            role = "outer" if i == 0 and base == "eth" else "tunnel"
            prefix = "outer " if base in ("eth", "ipv4", "ipv6") else ""
        else:
            role, prefix = "inner", ("inner " if base in ("eth", "ipv4", "ipv6") else "")
        boxes.append((prefix + label, size, role))
    boxes.append(("data", payload, "payload"))
    counted = [i for i, (_, _, role) in enumerate(boxes) if role == "tunnel"]
    if inner_from is not None and bases[inner_from:inner_from + 1] == ["eth"]:
        counted.append(inner_from)  # the inner Ethernet header rides inside the tunnel too
    overhead = sum(boxes[i][1] for i in counted)
    widths = [max(text_width(lbl, 11) + 16, 44 + 2.2 * size) for lbl, size, _ in boxes[:-1]]
    widths.append(max(90.0, min(260.0, 30 + payload * 0.6)))
    left, top, h = 20.0, 56.0, 50.0
    width = left * 2 + sum(widths)
    d = Drawing(max(width, 560), 190, title=name)
    d.text(left, 26, name, size=15, weight="bold")
    x = left
    spans = []
    for (label, size, role), w in zip(boxes, widths):
        with d.group("header", {"name": label, "bytes": size, "role": role}):
            d.rect(x, top, w, h, fill=_COLOURS[role], stroke="#555", rx=2)
            d.text(x + w / 2, top + 21, label, size=11, weight="bold", anchor="middle")
            d.text(x + w / 2, top + 38, f"{size} B", size=11, anchor="middle", fill="#333")
        spans.append((x, w, role))
        x += w
    if counted:
        x1, x2 = spans[counted[0]][0], spans[counted[-1]][0] + spans[counted[-1]][1]
        y = top + h + 12
        d.path(f"M{x1:.1f},{y - 6:.1f} V{y:.1f} H{x2:.1f} V{y - 6:.1f}", stroke="#a63603", width=1.6)
        d.text((x1 + x2) / 2, y + 16, f"tunnel overhead: {overhead} bytes", size=12, weight="bold",
               anchor="middle", fill="#a63603", cls="overhead", data={"bytes": overhead})
        d.text(left, y + 44, f"Underlay MTU {underlay_mtu} − {overhead} = {underlay_mtu - overhead}: the largest "
                             "inner IP packet that crosses without fragmentation.", size=11, fill="#333")
        d.text(left, y + 62, "The outer Ethernet header (14 B) is not counted: an MTU counts from the IP header.",
               size=10, fill="#666", italic=True)
    d.overhead = overhead  # type: ignore[attr-defined]  # the bracket's number, for code and tests
    return d
