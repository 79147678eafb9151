"""Tunnels between host nodes: VXLAN, GRE (kernel or userspace) and UDP encapsulation.

One call per host side, as one types ``ip link add ...`` on each host of the lab
practical; each returns a :class:`Tunnel` (one end)::

    from labkit.tunnels import gretap, vxlan_group

    # hosts h1 (172.16.1.1) and h2 (172.16.1.2) on the "internal network", bridge br0 each
    g1 = gretap(h1, "gretap0", remote="172.16.1.2", bridge="br0")
    g2 = gretap(h2, "gretap0", remote="172.16.1.1", bridge="br0")
    g1.implementation        # 'kernel', or 'userspace' where the kernel has no gretap
    g1.counters()            # packets and bytes each way, errors

=========================  ===========================================  ==============
function                   equivalent                                   implementation
=========================  ===========================================  ==============
:func:`vxlan_group`        ``ip link add vxlan0 type vxlan id 42          kernel
                           group 239.1.1.1 dev eth1 dstport 4789``
:func:`vxlan_unicast`      the same with ``bridge fdb append 00:00:..     kernel
                           dst REMOTE`` per remote (head-end replication)
:func:`vxlan_l3`           flannel's vxlan backend: ``flannel.1`` with    kernel
                           an address, onlink routes, neighbours, FDB
:func:`gretap`             ``ip link add gretap0 type gretap remote R     kernel if the
                           local L``                                      kernel has it,
:func:`gre`                ``ip link add gre1 type gre remote R local L`` else userspace
:func:`udp_encap`          flannel's udp backend: ``flannel0`` (TUN) and  userspace
                           a daemon sending IP in UDP port 8285
=========================  ===========================================  ==============

:func:`connect` plays the control plane for the kinds that need one (unicast and
routed VXLAN, UDP): it tells every end about every other.

A userspace end runs ``python -m labkit.tunnels.daemon`` in its node (``Tunnel.process``);
it stops with :meth:`Tunnel.stop` and always with the lab. Errors are the usual
:mod:`labkit.errors`: a bad name is :class:`~labkit.errors.InvalidName`, a VNI, key,
group or address out of range :class:`~labkit.errors.InvalidAddress`, a remote the
host cannot reach :class:`~labkit.errors.NotFound`, an impossible request
:class:`~labkit.errors.InvalidTopology`.
"""

from __future__ import annotations

from ..errors import InvalidTopology
from ._base import OVERHEAD, Tunnel
from ._gre import gre, gretap
from ._udp import udp_encap
from ._vxlan import vxlan_group, vxlan_l3, vxlan_unicast

__all__ = [
    "OVERHEAD",
    "Tunnel",
    "connect",
    "gre",
    "gretap",
    "udp_encap",
    "vxlan_group",
    "vxlan_l3",
    "vxlan_unicast",
]


def connect(*ends: Tunnel) -> None:
    """Tell every end about every other one: what a control plane (flanneld) writes.

    For :func:`vxlan_unicast` ends: each one floods to all the others. For
    :func:`vxlan_l3` ends: a route, a neighbour and an FDB entry per other host. For
    :func:`udp_encap` ends: the subnet table, then each daemon is restarted once.
    """
    if len(ends) < 2:
        raise InvalidTopology("connect() needs at least two tunnel ends", op="connect tunnels",
                              remedy="pass one Tunnel per host, e.g. connect(t1, t2)")
    first = ends[0]
    for end in ends:
        if not isinstance(end, Tunnel):
            raise InvalidTopology(f"{end!r} is not a tunnel end", obj=repr(end), op="connect tunnels",
                                  remedy="pass the Tunnel objects returned by vxlan_l3(), udp_encap() ...")
        if (end.kind, end.mode) != (first.kind, first.mode):
            raise InvalidTopology(f"cannot connect a {end.kind} tunnel to a {first.kind} tunnel",
                                  obj=f"{end.node.name}:{end.name}", op="connect tunnels",
                                  remedy="connect ends of one kind (all vxlan_l3, or all udp_encap)")
        if end.node.lab is not first.node.lab:
            raise InvalidTopology(f"tunnel {end.node.name}:{end.name} belongs to another lab",
                                  obj=f"{end.node.name}:{end.name}", op="connect tunnels",
                                  remedy="connect the ends of one lab")
    nodes = [e.node.name for e in ends]
    if len(set(nodes)) != len(nodes):
        raise InvalidTopology(f"two ends on one node ({nodes})", op="connect tunnels",
                              remedy="pass one tunnel end per host")
    routed = first.kind == "udp" or first.mode == "l3"
    for end in ends:
        for other in ends:
            if other is end:
                continue
            if routed:
                if other.subnet in end.peers:
                    continue
                end.add_peer(other.local, subnet=other.subnet, vtep_mac=other.mac, restart=False)
            elif other.local not in end.remotes:
                end.add_peer(other.local)
    if first.kind == "udp":
        for end in ends:
            if end.process is not None and end.process.running:
                end.restart()
