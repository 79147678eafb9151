"""Ready-made starting points of the two-host lab practical.

The walkthroughs build each scenario step by step once; later lessons and exercises,
whose subject is something else (a tunnel, a checkpoint), start from these instead of
repeating the same twenty lines::

    from labkit import Lab
    from labkit.scenarios import two_hosts

    with Lab("b4") as lab:
        s = two_hosts(lab)          # lan switch, host1/host2 at 172.16.1.1/.2,
        s.c1.ping("10.0.0.21")      # a bridge lxdbr0 on each, c1 10.0.0.11 and c2 10.0.0.21

Address plan (the lab practical's)::

        host1  172.16.1.1                         host2  172.16.1.2
      c1 10.0.0.11 ─ lxdbr0     enp0s8 ── lan ── enp0s8     lxdbr0 ─ c2 10.0.0.21

The hosts' cards are *not* in the bridges: how the two bridges get joined (the card
itself, routing, GRE, VXLAN) is the lesson.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import validate
from .errors import InvalidAddress
from .lab import Lab
from .node import Node


@dataclass(frozen=True)
class TwoHosts:
    """The nodes of :func:`two_hosts`."""

    lan: Node
    host1: Node
    host2: Node
    c1: Node
    c2: Node
    underlay: str       # e.g. "172.16.1.0/24"
    subnet: str         # the containers' subnet, e.g. "10.0.0.0/24"

    @property
    def hosts(self) -> tuple[Node, Node]:
        return (self.host1, self.host2)

    @property
    def containers(self) -> tuple[Node, Node]:
        return (self.c1, self.c2)

    def address(self, node: Node) -> str:
        """The address this scenario gave ``node`` (no prefix length)."""
        iface = "enp0s8" if node in self.hosts else "eth0"
        return next(a.local for a in node.addresses(iface) if a.family == "inet")


def _hosts_of(network: str, what: str) -> list[str]:
    try:
        net = ipaddress.ip_network(network, strict=True)
    except ValueError as exc:
        raise InvalidAddress(f"{what} {network!r} is not a network ({exc})", obj=network,
                             op="build scenario", remedy="write it like '10.0.0.0/24'") from None
    if net.version != 4 or net.prefixlen > 26:
        raise InvalidAddress(f"{what} {network!r} must be an IPv4 network of /26 or larger",
                             obj=network, op="build scenario", remedy="use e.g. '10.0.0.0/24'")
    return [str(ip) for ip in net.hosts()]


def two_hosts(lab: Lab, *, underlay: str = "172.16.1.0/24", subnet: str = "10.0.0.0/24",
              nic: str = "enp0s8", bridge: str = "lxdbr0") -> TwoHosts:
    """Two hosts on an internal network, each with a bridge and one container on it.

    Hosts get the first two addresses of ``underlay`` on ``nic``; containers get the
    11th and 21st of ``subnet`` (10.0.0.11 and 10.0.0.21 by default), on ``eth0``,
    plugged into ``bridge`` on their host. Nothing joins the two bridges yet.
    """
    validate.ifname(nic)
    validate.ifname(bridge)
    under = _hosts_of(underlay, "underlay")
    inner = _hosts_of(subnet, "container subnet")
    under_len = ipaddress.ip_network(underlay).prefixlen
    inner_len = ipaddress.ip_network(subnet).prefixlen
    lan = lab.add_switch("lan")
    hosts, containers = [], []
    for n in (1, 2):
        host = lab.add_host(f"host{n}")
        lab.link(host, lan, names=(nic, None))
        host.add_address(nic, f"{under[n - 1]}/{under_len}")
        host.add_bridge(bridge)
        container = lab.add_host(f"c{n}")
        lab.link(container, host, names=("eth0", f"veth-c{n}"), bridges=(None, bridge))
        container.add_address("eth0", f"{inner[10 * n]}/{inner_len}")
        hosts.append(host)
        containers.append(container)
    return TwoHosts(lan, hosts[0], hosts[1], containers[0], containers[1], underlay, subnet)
