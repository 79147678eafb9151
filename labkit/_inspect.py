"""Read a namespace's network state with pyroute2 and return plain, ``ip -j``-like dicts.

Runs inside the supervisor, with an ``IPRoute`` socket opened in the node's
namespace. Keys follow iproute2's JSON output where one exists (``ifname``,
``address``, ``mtu``, ``operstate``, ``master``, ``dst``, ``gateway``, ``dev``,
``lladdr``, ``mac``...), so a student can put a table next to ``ip -j`` and see the
same thing. Values are always present (``None`` when the kernel gave none), which
keeps tables rectangular.
"""

from __future__ import annotations

import socket
from typing import Any

SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
PROTOCOLS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra",
             11: "zebra", 12: "bird", 16: "dhcp", 186: "bgp", 188: "ospf"}
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
               6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}
NUD = [(0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"),
       (0x10, "PROBE"), (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT")]
IFF_UP = 0x1
AF_BRIDGE = 7


def _names(ipr: Any) -> dict[int, str]:
    return {msg["index"]: msg.get("ifname") for msg in ipr.get_links()}


def links(ipr: Any) -> list[dict[str, Any]]:
    out = []
    msgs = list(ipr.get_links())
    names = {msg["index"]: msg.get("ifname") for msg in msgs}
    for msg in msgs:
        info = msg.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info else None
        if kind is None and msg.get("ifname") == "lo":
            kind = "loopback"
        entry: dict[str, Any] = {
            "ifindex": msg["index"],
            "ifname": msg.get("ifname"),
            "kind": kind,
            "address": msg.get("address"),
            "mtu": msg.get("mtu"),
            "operstate": msg.get("operstate"),
            "up": bool(msg["flags"] & IFF_UP),
            "master": names.get(msg.get("master")) if msg.get("master") else None,
            "link_index": msg.get("link"),
            "link_netnsid": msg.get("link_netnsid"),
        }
        if kind == "vxlan" and info is not None:
            data = info.get("IFLA_INFO_DATA")
            if data is not None:
                link = data.get("IFLA_VXLAN_LINK")
                entry["vxlan"] = {
                    "id": data.get("IFLA_VXLAN_ID"),
                    "group": data.get("IFLA_VXLAN_GROUP") or data.get("IFLA_VXLAN_GROUP6"),
                    "local": data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6"),
                    "link": names.get(link) if link else None,
                    "port": data.get("IFLA_VXLAN_PORT"),
                    "learning": bool(data.get("IFLA_VXLAN_LEARNING")),
                }
        out.append(entry)
    return out


def addresses(ipr: Any) -> list[dict[str, Any]]:
    names = _names(ipr)
    out = []
    for msg in ipr.get_addr():
        family = "inet" if msg["family"] == socket.AF_INET else "inet6"
        out.append({
            "ifindex": msg["index"],
            "ifname": names.get(msg["index"]),
            "family": family,
            "local": msg.get("local") or msg.get("address"),
            "prefixlen": msg["prefixlen"],
            "scope": SCOPES.get(msg["scope"], str(msg["scope"])),
        })
    return out


def routes(ipr: Any, table: int = 254) -> list[dict[str, Any]]:
    names = _names(ipr)
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_routes(family=family, table=table):
            dst = msg.get("dst")
            out.append({
                "family": "inet" if family == socket.AF_INET else "inet6",
                "dst": f"{dst}/{msg['dst_len']}" if dst else "default",
                "gateway": msg.get("gateway"),
                "dev": names.get(msg.get("oif")) if msg.get("oif") else None,
                "type": ROUTE_TYPES.get(msg["type"], str(msg["type"])),
                "protocol": PROTOCOLS.get(msg["proto"], str(msg["proto"])),
                "scope": SCOPES.get(msg["scope"], str(msg["scope"])),
                "metric": msg.get("priority"),
                "prefsrc": msg.get("prefsrc"),
                "onlink": bool(msg["flags"] & 0x4),
                "table": msg.get("table", table),
            })
    return out


def neighbours(ipr: Any) -> list[dict[str, Any]]:
    names = _names(ipr)
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_neighbours(family=family):
            if not msg["state"] & ~0x40:
                continue  # like `ip neigh`: NOARP-only entries (multicast) are not shown
            dst = msg.get("dst")
            state = [name for bit, name in NUD if msg["state"] & bit]
            out.append({
                "dst": dst,
                "dev": names.get(msg["ifindex"]),
                "lladdr": msg.get("lladdr"),
                "state": state,
            })
    return out


def fdb(ipr: Any) -> list[dict[str, Any]]:
    names = _names(ipr)
    out = []
    for msg in ipr.get_neighbours(family=AF_BRIDGE):
        flags = []
        if msg["flags"] & 0x02:
            flags.append("self")
        if msg["flags"] & 0x04:
            flags.append("master")
        state = "permanent" if msg["state"] & 0x80 else ("static" if msg["state"] & 0x40 else "")
        master = msg.get("master")
        out.append({
            "mac": msg.get("lladdr"),
            "ifname": names.get(msg["ifindex"]),
            "dst": msg.get("dst"),
            "master": names.get(master) if master else None,
            "vlan": msg.get("vlan"),
            "state": state,
            "flags": flags,
        })
    return out


READERS = {"links": links, "addresses": addresses, "routes": routes,
           "neighbours": neighbours, "fdb": fdb}
