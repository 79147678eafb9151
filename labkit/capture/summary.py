"""Plain-English summaries of a capture table.

>>> print(summarize(table))
12 frames on h1:eth0 over 2.01 s (6 in, 6 out):
- 6 ICMP echo request/reply inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2
- 2 ARP request/reply inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2, via multicast 239.1.1.1
...

Packets are grouped by what they are (the innermost protocol and message), how they
travel (tunnel, VNI) and between which addresses; groups are listed in order of
first appearance.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

__all__ = ["summarize", "describe_rows"]

_ICMP = {
    8: ("ICMP echo", "request"), 0: ("ICMP echo", "reply"),
    3: ("ICMP destination unreachable", ""), 11: ("ICMP time exceeded", ""),
    5: ("ICMP redirect", ""), 13: ("ICMP timestamp", "request"), 14: ("ICMP timestamp", "reply"),
}
_ICMP6 = {
    128: ("ICMPv6 echo", "request"), 129: ("ICMPv6 echo", "reply"),
    133: ("ICMPv6 router", "solicitation"), 134: ("ICMPv6 router", "advertisement"),
    135: ("ICMPv6 neighbor", "solicitation"), 136: ("ICMPv6 neighbor", "advertisement"),
    130: ("MLD", "query"), 131: ("MLD", "report"), 132: ("MLD", "done"), 143: ("MLD", "report"),
    1: ("ICMPv6 destination unreachable", ""), 3: ("ICMPv6 time exceeded", ""),
    2: ("ICMPv6 packet too big", ""),
}
_LAST_TOKEN = {
    "fragment": "IP fragment", "truncated": "truncated frame", "llc": "802.3 LLC frame",
    "malformed": "malformed packet", "ipv4": "IPv4", "ipv6": "IPv6", "eth": "Ethernet frame",
}


def _inner(table: pd.DataFrame, field: str) -> pd.Series:
    inner = table[f"inner_{field}"]
    return inner.where(inner.notna(), table[field])


def _obj(series: pd.Series) -> np.ndarray:
    """An object array with None for missing values."""
    return series.to_numpy(dtype=object, na_value=None)


def _is_group(address: object) -> bool:
    if not isinstance(address, str):
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_multicast or address == "255.255.255.255"


def describe_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Per-packet description columns: ``what``, ``variant``, ``a``, ``b``, ``carrier``, ``via``.

    ``what`` is the kind of message ("ICMP echo", "ARP", "UDP port 53"), ``variant``
    its direction ("request", "reply"), ``a``/``b`` the two innermost addresses in
    sorted order, ``carrier`` the tunnel ("inside VXLAN VNI 42") and ``via`` a
    multicast group the outer packet was sent to.
    """
    n = len(table)
    stack = pd.Series(_obj(table["stack"])).fillna("")
    last = stack.map({s: s.rsplit("/", 1)[-1] for s in stack.unique()})
    typ = _inner(table, "icmp_type").astype("Float64").fillna(-1).to_numpy(dtype=float)
    arp_op = _inner(table, "arp_op").astype("Float64").fillna(-1).to_numpy(dtype=float)
    sport = _inner(table, "sport").astype("Float64").fillna(-1).to_numpy(dtype=float)
    dport = _inner(table, "dport").astype("Float64").fillna(-1).to_numpy(dtype=float)
    what = np.empty(n, dtype=object)
    variant = np.full(n, "", dtype=object)
    lastv = last.to_numpy(dtype=object)
    # Labels are computed once per distinct value, then spread to the rows.
    for token, func in (
        ("icmp", lambda t: _ICMP.get(int(t), (f"ICMP type {int(t)}", ""))),
        ("icmpv6", lambda t: _ICMP6.get(int(t), (f"ICMPv6 type {int(t)}", ""))),
    ):
        rows = np.flatnonzero(lastv == token)
        if len(rows):
            uniq, inv = np.unique(typ[rows], return_inverse=True)
            labels = [func(t) for t in uniq]
            what[rows] = np.asarray([w for w, _ in labels], dtype=object)[inv]
            variant[rows] = np.asarray([v for _, v in labels], dtype=object)[inv]
    rows = np.flatnonzero(lastv == "arp")
    what[rows] = "ARP"
    variant[rows] = np.where(arp_op[rows] == 1, "request", np.where(arp_op[rows] == 2, "reply", ""))
    for token, name in (("tcp", "TCP"), ("udp", "UDP")):
        rows = np.flatnonzero(lastv == token)
        if len(rows):
            port = np.where((sport[rows] >= 0) & (sport[rows] < dport[rows]), sport[rows], dport[rows])
            uniq, inv = np.unique(port, return_inverse=True)
            what[rows] = np.asarray([f"{name} port {int(p)}" for p in uniq], dtype=object)[inv]
    rest = np.flatnonzero(pd.isna(what))
    if len(rest):
        what[rest] = [_LAST_TOKEN.get(t, t or "empty frame") for t in lastv[rest]]

    is_arp = lastv == "arp"
    src = np.where(is_arp, _obj(_inner(table, "arp_sender_ip")), _obj(_inner(table, "src_ip")))
    dst = np.where(is_arp, _obj(_inner(table, "arp_target_ip")), _obj(_inner(table, "dst_ip")))
    swap = np.array([(s or "") > (d or "") for s, d in zip(src, dst)], dtype=bool) if n else np.zeros(0, bool)
    a = np.where(swap, dst, src)
    b = np.where(swap, src, dst)

    carrier = np.full(n, "", dtype=object)
    tunnel = _obj(table["tunnel"])
    vni = table["vni"].astype("Float64").fillna(-1).to_numpy(dtype=float)
    gre_proto = table["gre_proto"].astype("Float64").fillna(-1).to_numpy(dtype=float)
    udp_port = table["dport"].astype("Float64").fillna(-1).to_numpy(dtype=float)
    for i in np.flatnonzero(tunnel != None):  # noqa: E711 - elementwise
        carrier[i] = _carrier(tunnel[i], vni[i], gre_proto[i], udp_port[i])
    outer_dst = _obj(table["dst_ip"])
    via = np.full(n, "", dtype=object)
    tunnelled = tunnel != None  # noqa: E711 - elementwise
    for address in pd.unique(outer_dst[tunnelled]) if tunnelled.any() else ():
        if _is_group(address):
            via[tunnelled & (outer_dst == address)] = address
    return pd.DataFrame({"what": what, "variant": variant, "a": a, "b": b, "carrier": carrier, "via": via})


def _carrier(tunnel: str, vni: float, gre_proto: float, port: float) -> str:
    if tunnel == "vxlan":
        return f"inside VXLAN VNI {int(vni)}" if vni >= 0 else "inside VXLAN"
    if tunnel == "gre":
        inner = {0x6558: "Ethernet", 0x0800: "IPv4", 0x86DD: "IPv6"}.get(int(gre_proto), "")
        return f"inside GRE ({inner})" if inner else "inside GRE"
    if tunnel == "ipip":
        return "inside IP-in-IP"
    if tunnel == "6in4":
        return "inside IPv6-in-IPv4"
    if tunnel == "udp":
        return f"inside IP-in-UDP (port {int(port)}, flannel's udp backend)" if port >= 0 else "inside IP-in-UDP"
    return f"inside {tunnel}"


def summarize(table: pd.DataFrame, *, max_groups: int = 12) -> str:
    """Describe a capture table in a few lines of plain English.

    Args:
        table: a table from :func:`labkit.capture.read_pcap` or ``Capture.table()``.
        max_groups: list at most this many kinds of traffic; the rest are counted.
    """
    n = len(table)
    places = list(dict.fromkeys(
        f"{node}:{iface}" if isinstance(node, str) else str(iface)
        for node, iface in zip(_obj(table["node"]), _obj(table["interface"]))
    ))
    where = ""
    if places and places != ["None"]:
        where = f" on {places[0]}" if len(places) == 1 else f" on {len(places)} interfaces ({', '.join(places)})"
    if n == 0:
        return f"No frames captured{where}."
    span = (table["time"].max() - table["time"].min()).total_seconds()
    directions = table["direction"].value_counts()
    head = f"{n} frame{'s' if n != 1 else ''}{where} over {span:.3g} s"
    if len(directions):
        head += " (" + ", ".join(f"{int(directions.get(d, 0))} {d}" for d in ("in", "out") if d in directions) + ")"
    desc = describe_rows(table)
    desc["order"] = np.arange(n)
    keys = ["what", "a", "b", "carrier", "via"]
    groups = (
        desc.fillna({"a": "", "b": ""})
        .groupby(keys, sort=False, dropna=False)
        .agg(count=("order", "size"), first=("order", "min"), variants=("variant", _variants))
        .reset_index()
        .sort_values("first")
    )
    lines = [head + ":"]
    for row in groups.head(max_groups).itertuples(index=False):
        text = f"- {row.count} {row.what}"
        if row.variants:
            text += f" {row.variants}"
        if row.carrier:
            text += f" {row.carrier}"
        if row.a and row.b and row.a != row.b:
            text += f" between {row.a} and {row.b}"
        elif row.a or row.b:
            text += f" from {row.a or row.b}"
        if row.via:
            text += f", via multicast {row.via}"
        lines.append(text)
    if len(groups) > max_groups:
        more = groups.iloc[max_groups:]
        lines.append(f"- and {len(more)} more kinds of traffic ({int(more['count'].sum())} frames)")
    return "\n".join(lines)


def _variants(values: pd.Series) -> str:
    seen = [v for v in dict.fromkeys(values) if v]
    order = ["request", "reply", "solicitation", "advertisement", "query", "report", "done"]
    seen.sort(key=lambda v: order.index(v) if v in order else len(order))
    return "/".join(seen)
