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
from typing import TYPE_CHECKING

from . import validate
from .errors import InvalidAddress, NotFound
from .lab import Lab
from .node import Node

if TYPE_CHECKING:
    from .tunnels import Tunnel


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
        """The address this scenario gave ``node`` (no prefix length), wherever it lives now.

        A host's is on its card, or on its bridge once :func:`join_bridged` moved it there.
        """
        ifaces = ("enp0s8", "lxdbr0") if node in self.hosts else ("eth0",)
        for iface in ifaces:
            found = [a.local for a in node.addresses() if a.ifname == iface and a.family == "inet"
                     and a.scope == "global"]
            if found:
                return found[0]
        raise NotFound(f"node {node.name!r} has no IPv4 address on {' or '.join(ifaces)}", obj=node.name,
                       op="look up scenario address", remedy="build the scenario with two_hosts() first")


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


# -- the four ways of joining the two hosts' containers (lab practical B1 to B4) ------------

def join_bridged(s: TwoHosts, *, nic: str = "enp0s8", bridge: str = "lxdbr0") -> None:
    """B1: each host's card becomes a port of its bridge, and the host's address moves to the bridge.

    ``brctl addif lxdbr0 enp0s8``, then ``ip addr del A dev enp0s8; ip addr add A dev
    lxdbr0``, as the lab practical does: a bridge port's own address no longer answers
    (frames arriving on a port go to the bridge), so left on the card it would cut the
    host off the LAN. Like a layer 2/3 switch, the address belongs on the bridge.
    """
    for host in s.hosts:
        moved = [a.cidr for a in host.addresses(nic) if a.family == "inet" and a.scope == "global"]
        host.attach(nic, bridge)
        for cidr in moved:
            host.del_address(nic, cidr)            # ip -n hostN addr del CIDR dev enp0s8
            host.add_address(bridge, cidr)         # ip -n hostN addr add CIDR dev lxdbr0


def fit_mtu(s: TwoHosts, mtu: int) -> None:
    """Lower the containers' links to ``mtu`` (what ``dockerd --mtu`` does under Flannel).

    A bridge does not fragment: full-size frames from a 1500-byte ``eth0`` are dropped at
    a tunnel port with a smaller MTU, which breaks TCP while small pings still work.
    """
    for n, (host, container) in enumerate(zip(s.hosts, s.containers), start=1):
        container.set_link("eth0", mtu=mtu)          # ip -n cN link set eth0 mtu MTU
        host.set_link(f"veth-c{n}", mtu=mtu)


def join_gretap(s: TwoHosts, *, name: str = "eltunelgre", bridge: str = "lxdbr0",
                key: int | None = None, fit: bool = True) -> list["Tunnel"]:
    """B3: a gretap tunnel between the hosts, one end in each bridge (and, with ``fit``,
    the containers' MTU lowered to the tunnel's)."""
    from .tunnels import gretap

    a, b = (s.address(h) for h in s.hosts)
    ends = [gretap(s.host1, name, remote=b, local=a, bridge=bridge, key=key),
            gretap(s.host2, name, remote=a, local=b, bridge=bridge, key=key)]
    if fit:
        fit_mtu(s, ends[0].mtu)
    return ends


def join_vxlan(s: TwoHosts, *, vni: int = 42, group: str = "239.1.1.1", nic: str = "enp0s8",
               bridge: str = "lxdbr0", fit: bool = True) -> list["Tunnel"]:
    """B4: VXLAN in multicast group mode, one device in each bridge (and, with ``fit``,
    the containers' MTU lowered to the tunnel's)."""
    from .tunnels import vxlan_group

    ends = [vxlan_group(h, "vxlan0", vni=vni, group=group, dev=nic, bridge=bridge)
            for h in s.hosts]
    if fit:
        fit_mtu(s, ends[0].mtu)
    return ends


def routed_hosts(lab: Lab, *, underlay: str = "172.16.1.0/24", nic: str = "enp0s8",
                 bridge: str = "lxdbr0", subnets: tuple[str, str] = ("10.1.1.0/24", "10.2.2.0/24")
                 ) -> TwoHosts:
    """B2 in its simplest form: each host routes for its own container subnet.

    The hosts forward, hold their bridge's gateway address (the subnet's first address;
    the container gets the second) and point their default routes at each other.
    ``TwoHosts.subnet`` is then the first container subnet.
    """
    validate.ifname(nic)
    validate.ifname(bridge)
    under = _hosts_of(underlay, "underlay")
    under_len = ipaddress.ip_network(underlay).prefixlen
    lan = lab.add_switch("lan")
    hosts, containers = [], []
    for n, subnet in ((1, subnets[0]), (2, subnets[1])):
        inner = _hosts_of(subnet, "container subnet")
        inner_len = ipaddress.ip_network(subnet).prefixlen
        host = lab.add_router(f"host{n}")
        lab.link(host, lan, names=(nic, None))
        host.add_address(nic, f"{under[n - 1]}/{under_len}")
        host.add_bridge(bridge, address=f"{inner[0]}/{inner_len}")
        container = lab.add_host(f"c{n}")
        lab.link(container, host, names=("eth0", f"veth-c{n}"), bridges=(None, bridge))
        container.add_address("eth0", f"{inner[1]}/{inner_len}")
        container.add_route("default", via=inner[0])
        hosts.append(host)
        containers.append(container)
    hosts[0].add_route("default", via=under[1])
    hosts[1].add_route("default", via=under[0])
    return TwoHosts(lan, hosts[0], hosts[1], containers[0], containers[1], underlay, subnets[0])
