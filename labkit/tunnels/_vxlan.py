"""VXLAN (RFC 7348) between host nodes, with the kernel's own device, in three styles.

* :func:`vxlan_group`: the lab practical's multicast mode. Broadcast, unknown unicast
  and multicast frames (the first ARP request) go to the group; the far ends learn the
  source MAC -> VTEP mapping from what they receive.
* :func:`vxlan_unicast`: no multicast in the underlay; the all-zeros FDB entry is
  repeated once per remote (head-end replication), learning fills the rest.
* :func:`vxlan_l3`: flannel's ``vxlan`` backend. The device has an address (the
  subnet's ``.0``/32), no bridge, no learning; a control plane writes, for each other
  host, an onlink route, a permanent neighbour entry and an FDB entry
  (:meth:`Tunnel.add_peer`, or :func:`~labkit.tunnels.connect` for all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import validate
from ..errors import InvalidAddress, InvalidTopology
from ._base import (
    OVERHEAD,
    Tunnel,
    check_port,
    check_ttl,
    check_vni,
    claim,
    ipv4,
    mtu_for,
    network_of,
    route_to,
    underlay,
)

if TYPE_CHECKING:
    from ..node import Node


def _vxlan_command(name: str, vni: int, *, group: str | None = None, remote: str | None = None,
                   local: str | None, dev: str | None, port: int, learning: bool = True,
                   ttl: int | None = None) -> str:
    parts = [f"ip link add {name} type vxlan id {vni}"]
    if group:
        parts.append(f"group {group}")
    if remote:
        parts.append(f"remote {remote}")
    if local:
        parts.append(f"local {local}")
    if dev:
        parts.append(f"dev {dev}")
    parts.append(f"dstport {port}")
    if not learning:
        parts.append("nolearning")
    if ttl is not None:
        parts.append(f"ttl {ttl}")
    return " ".join(parts)


def _set_command(name: str, mtu: int, bridge: str | None) -> str:
    return f"ip link set {name} mtu {mtu}" + (f" master {bridge}" if bridge else "") + " up"


def vxlan_group(node: Node, name: str = "vxlan0", *, vni: int, group: str, dev: str,
                port: int = 4789, local: str | None = None, ttl: int | None = None,
                bridge: str | None = None, mtu: int | None = None) -> Tunnel:
    """A VXLAN end in multicast group mode, as in the lab practical.

    ::

        ip link add vxlan0 type vxlan id 42 group 239.1.1.1 dev eth1 dstport 4789
        ip link set vxlan0 mtu 1450 master br0 up

    ``dev`` is the underlay NIC (the "internal network" one) the group is joined on;
    ``mtu`` defaults to ``dev``'s MTU minus 50 (1450 on a 1500 underlay) so an inner
    frame plus outer IPv4, UDP and VXLAN headers fits. ``bridge`` makes the device a
    port of the host bridge, so containers on both hosts share one segment.
    """
    op = "create vxlan tunnel"
    claim(node, name)
    check_vni(vni)
    check_port(port, op)
    check_ttl(ttl)
    if not validate.address(str(group)).is_multicast:
        raise InvalidAddress(f"VXLAN group {group!r} is not a multicast address", obj=str(group),
                             op=op, remedy="use an address in 239.0.0.0/8 (administratively "
                                           "scoped), e.g. 239.1.1.1; for unicast use vxlan_unicast()")
    group = ipv4(group, "VXLAN group", op)
    if bridge is not None:
        node.interface(bridge)
    given = None if local is None else ipv4(local, "local", op)
    source, _ = underlay(node, None, given, dev, op)
    inner_mtu = mtu_for(node, dev, OVERHEAD["vxlan"], mtu, op)
    node.add_vxlan(name, vni, group=group, local=given, dev=dev, port=port, ttl=ttl,
                   mtu=inner_mtu, bridge=bridge)
    t = Tunnel(node, kind="vxlan", mode="group", name=name, implementation="kernel",
               device_type="vxlan", local=source, group=group, vni=vni, port=port, dev=dev,
               mtu=inner_mtu, overhead=OVERHEAD["vxlan"], ttl=ttl)
    t.mac = node.interface(name).address
    t.commands = [_vxlan_command(name, vni, group=group, local=given, dev=dev, port=port, ttl=ttl),
                  _set_command(name, inner_mtu, bridge)]
    return t


def vxlan_unicast(node: Node, name: str = "vxlan0", *, vni: int, remotes: Sequence[str],
                  local: str | None = None, dev: str | None = None, port: int = 4789,
                  learning: bool = True, ttl: int | None = None, bridge: str | None = None,
                  mtu: int | None = None) -> Tunnel:
    """A VXLAN end that floods to a list of remote VTEPs (head-end replication).

    ::

        ip link add vxlan0 type vxlan id 42 local 172.16.1.1 dev eth1 dstport 4789
        bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 172.16.1.2   # once per remote
        ip link set vxlan0 mtu 1450 master br0 up

    Every broadcast or unknown frame is copied to each remote; replies teach the
    device (``learning``) which VTEP holds which MAC (see ``node.fdb("vxlan0")``).
    More remotes later: :meth:`Tunnel.add_peer`.
    """
    op = "create vxlan tunnel"
    claim(node, name)
    check_vni(vni)
    check_port(port, op)
    check_ttl(ttl)
    if isinstance(remotes, str):
        remotes = [remotes]
    far = [ipv4(r, "remote", op) for r in remotes]
    if not far:
        raise InvalidTopology("a unicast VXLAN tunnel needs at least one remote", obj=name, op=op,
                              remedy="pass remotes=['OTHER_HOST_UNDERLAY_ADDRESS', ...]")
    for r in far:
        if validate.address(r).is_multicast:
            raise InvalidAddress(f"remote {r} is a multicast address", obj=r, op=op,
                                 remedy="use vxlan_group() for a multicast group")
    if len(set(far)) != len(far):
        raise InvalidTopology(f"remote listed twice in {far}", obj=name, op=op,
                              remedy="list each remote VTEP once")
    if bridge is not None:
        node.interface(bridge)
    local, dev = underlay(node, far[0], None if local is None else ipv4(local, "local", op), dev, op)
    for r in far[1:]:
        route_to(node, r, op)
    inner_mtu = mtu_for(node, dev, OVERHEAD["vxlan"], mtu, op)
    node.add_vxlan(name, vni, local=local, dev=dev, port=port, learning=learning, ttl=ttl,
                   mtu=inner_mtu, bridge=bridge, up=False)
    t = Tunnel(node, kind="vxlan", mode="unicast", name=name, implementation="kernel",
               device_type="vxlan", local=local, vni=vni, port=port, dev=dev, mtu=inner_mtu,
               overhead=OVERHEAD["vxlan"], ttl=ttl)
    t.remotes = []
    t.commands = [_vxlan_command(name, vni, local=local, dev=dev, port=port, learning=learning,
                                 ttl=ttl)]
    for r in far:
        t.add_peer(r)
    node.set_up(name)
    t.commands.append(_set_command(name, inner_mtu, bridge))
    t.mac = node.interface(name).address
    return t


def vxlan_l3(node: Node, name: str = "flannel.1", *, subnet: str, local: str | None = None,
             dev: str | None = None, vni: int = 1, port: int = 8472, mtu: int | None = None,
             mac: str | None = None, ttl: int | None = None) -> Tunnel:
    """Flannel's ``vxlan`` backend on one host: a routed VXLAN device, no bridge.

    ``subnet`` is the host's lease (e.g. ``10.4.1.0/24``); the device gets its ``.0``
    as a /32, as flanneld does::

        ip link add flannel.1 type vxlan id 1 local 172.16.1.1 dev eth1 dstport 8472 nolearning
        ip link set flannel.1 mtu 1450 up
        ip addr add 10.4.1.0/32 dev flannel.1

    Then, for each other host (what flanneld writes when it sees that host's lease;
    :meth:`Tunnel.add_peer` or :func:`~labkit.tunnels.connect` do it here)::

        ip route add 10.4.2.0/24 via 10.4.2.0 dev flannel.1 onlink
        ip neigh add 10.4.2.0 lladdr VTEP_MAC dev flannel.1       # permanent
        bridge fdb append VTEP_MAC dev flannel.1 dst 172.16.1.2

    The host must forward (``lab.add_router``) for its containers to be reached.
    """
    op = "create vxlan tunnel"
    claim(node, name)
    check_vni(vni)
    check_port(port, op)
    check_ttl(ttl)
    net = network_of(subnet, "subnet", op)
    local, dev = underlay(node, None, None if local is None else ipv4(local, "local", op), dev, op)
    if dev is None:
        found = [a.ifname for a in node.addresses() if a.local == local]
        dev = found[0] if found else None
    inner_mtu = mtu_for(node, dev, OVERHEAD["vxlan"], mtu, op)
    node.add_vxlan(name, vni, local=local, dev=dev, port=port, learning=False, ttl=ttl,
                   mtu=inner_mtu, mac=mac)
    address = f"{net.network_address}/32"
    node.add_address(name, address)
    t = Tunnel(node, kind="vxlan", mode="l3", name=name, implementation="kernel",
               device_type="vxlan", local=local, vni=vni, port=port, dev=dev, mtu=inner_mtu,
               overhead=OVERHEAD["vxlan"], subnet=str(net), address=address, ttl=ttl)
    t.remotes = []
    t.mac = node.interface(name).address
    t.commands = [_vxlan_command(name, vni, local=local, dev=dev, port=port, learning=False, ttl=ttl),
                  _set_command(name, inner_mtu, None), f"ip addr add {address} dev {name}"]
    return t
