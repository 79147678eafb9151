"""IP over UDP, as flannel's old ``udp`` backend does it.

A daemon on each host (flanneld) holds the TUN device ``flannel0``; the host routes
the whole overlay network into it (``flannel0`` has the lease's ``.0`` with the
network's prefix, e.g. ``10.4.1.0/16``); the daemon reads each IP packet, looks up
which host leases the destination's subnet and sends the packet as the payload of a
UDP datagram to port 8285 there; the daemon there writes it into its own
``flannel0`` and the host routes it on to the container. Every packet crosses into
userspace twice, which is why the ``vxlan`` backend replaced it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import InvalidAddress
from ._base import (
    OVERHEAD,
    Tunnel,
    check_port,
    check_ttl,
    claim,
    ipv4,
    mtu_for,
    network_of,
    underlay,
)
from ._gre import _start_userspace, make_port

if TYPE_CHECKING:
    from ..node import Node


def udp_encap(node: Node, name: str = "flannel0", *, subnet: str, network: str,
              local: str | None = None, dev: str | None = None, port: int = 8285,
              peers: Mapping[str, str] | None = None, mtu: int | None = None,
              ttl: int | None = None, device: str = "auto") -> Tunnel:
    """One host of flannel's ``udp`` backend::

        ip tuntap add dev flannel0 mode tun         # flanneld opens /dev/net/tun
        ip link set flannel0 mtu 1472 up
        ip addr add 10.4.1.0/16 dev flannel0        # so 10.4.0.0/16 is routed into it
        flanneld ...                                # here: python -m labkit.tunnels.daemon --encap udp

    ``subnet`` is this host's lease (``10.4.1.0/24``), ``network`` the whole overlay
    (``10.4.0.0/16``); ``local`` (or ``dev``) the underlay address the daemon listens on
    (UDP ``port``, 8285). ``peers`` maps each other host's subnet to its underlay
    address (flannel's leases); add more with :meth:`Tunnel.add_peer` or
    :func:`~labkit.tunnels.connect`. ``mtu`` defaults to the underlay's MTU minus 28.

    ``device``: ``"tun"`` (flannel's way; needs ``/dev/net/tun`` to be openable by the
    lab's user), ``"veth"`` (a NOARP veth end named ``flannel0``, its peer read with an
    AF_PACKET socket) or ``"auto"`` (TUN if possible, else veth). The host must forward
    (``lab.add_router``) to pass packets on to its containers.
    """
    op = "create udp tunnel"
    claim(node, name)
    check_port(port, op)
    check_ttl(ttl)
    lease = network_of(subnet, "subnet", op)
    whole = network_of(network, "network", op)
    if not lease.subnet_of(whole):
        raise InvalidAddress(f"subnet {lease} is not inside the overlay network {whole}",
                             obj=str(lease), op=op,
                             remedy="lease a subnet of the network, e.g. 10.4.1.0/24 of 10.4.0.0/16")
    local, dev = underlay(node, None, None if local is None else ipv4(local, "local", op), dev, op)
    if dev is None:
        found = [a.ifname for a in node.addresses() if a.local == local]
        dev = found[0] if found else None
    inner_mtu = mtu_for(node, dev, OVERHEAD["udp"], mtu, op)
    address = f"{lease.network_address}/{whole.prefixlen}"
    dtype, spec, devices, cmds = make_port(node, name, l3=True, device=device, mtu=inner_mtu,
                                           bridge=None, op=op)
    t = Tunnel(node, kind="udp", name=name, implementation="userspace", device_type=dtype,
               local=local, port=port, dev=dev, mtu=inner_mtu, overhead=OVERHEAD["udp"],
               subnet=str(lease), address=address, ttl=ttl)
    t.devices, t.commands, t._port_spec = devices, cmds, spec
    t.remotes = []
    try:
        node.add_address(name, address)
        t.commands.append(f"ip addr add {address} dev {name}")
        for peer_subnet, host in (peers or {}).items():
            t.add_peer(host, subnet=peer_subnet, restart=False)
    except Exception:
        t.delete()
        raise
    return _start_userspace(t)
