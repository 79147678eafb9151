"""GRE between host nodes: Ethernet over GRE (``gretap``) and IPv4 over GRE (``gre``).

The kernel device is used when the kernel has it. Where it does not (no ``ip_gre``
module, as on the machines this course is tested on), a daemon in the host node does
the same job in userspace, with the same wire format (RFC 2784 GRE, RFC 2890 key, IP
protocol 47, protocol type 0x6558 for Ethernet or 0x0800 for IPv4), so a capture,
the MTU and the student's commands look the same; ``Tunnel.implementation`` says which
one runs. The userspace device the student sees is one end of a veth pair named like
the kernel device (``gretap0``; the daemon reads the other end, ``gretap0-pcap``, with
an AF_PACKET socket, as Weave's "sleeve" mode does) or a TUN/TAP device.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ..errors import CommandFailed, InvalidTopology, KernelError
from ._base import (
    IMPLEMENTATIONS,
    OVERHEAD,
    Tunnel,
    check_choice,
    check_key,
    check_ttl,
    claim,
    forget,
    ip_batch,
    ipv4,
    mtu_for,
    record,
    underlay,
)

if TYPE_CHECKING:
    from ..node import Node

UNSUPPORTED = ("Unknown device type", "Operation not supported", "not supported")


def _port_name(name: str) -> str:
    return f"{name[:10]}-pcap"


def make_port(node: Node, name: str, *, l3: bool, device: str, mtu: int,
              bridge: str | None, op: str) -> tuple[str, str, list[str], list[str]]:
    """Create the device the student sees for a userspace tunnel.

    Returns ``(device_type, port_spec, devices, commands)``; ``port_spec`` tells the
    daemon what to open (``packet:VETH_END``, ``tun:NAME`` or ``tap:NAME``).
    """
    choices = ("auto", "veth", "tun") if l3 else ("auto", "veth", "tap")
    check_choice(device, choices, "userspace device", op)
    master = f" master {bridge}" if bridge else ""
    if device == "auto":
        device = "tun" if l3 else "veth"  # flannel0 is a TUN device; gretap0 a veth end
        fallback = l3
    else:
        fallback = False
    if device in ("tun", "tap"):
        add = ["ip", "tuntap", "add", "dev", name, "mode", device]
        result = node.run(add)
        if result.ok:
            record(node, name)
            cmds = [" ".join(add), f"ip link set {name} mtu {mtu}{master} up"]
            try:
                ip_batch(node, cmds[1:], obj=f"{node.name}:{name}", op=op)
            except Exception:
                node.delete_link(name)
                forget(node, name)
                raise
            return device, f"{device}:{name}", [name], cmds
        if not fallback:
            raise KernelError(f"{op}: cannot create TUN/TAP device {name!r} on node "
                              f"{node.name!r}: {result.stderr.strip()}", errno=errno.EPERM,
                              obj=f"{node.name}:{name}", op=op,
                              remedy="/dev/net/tun must be readable and writable by the lab's "
                                     "user; or pass device='veth' (a veth end read with AF_PACKET)")
        device = "veth"
    peer = claim(node, _port_name(name))
    cmds = [f"ip link add {name} mtu {mtu} type veth peer name {peer} mtu {mtu}",
            f"ip link set {peer} arp off up"]
    if l3:
        cmds.append(f"ip link set {name} arp off")  # a point-to-point device, like TUN: NOARP
    cmds.append(f"ip link set {name}{master} up")
    try:
        ip_batch(node, cmds, obj=f"{node.name}:{name}", op=op)
    except Exception:
        if any(i.ifname == name for i in node.interfaces()):
            node.delete_link(name)
        raise
    record(node, name)
    record(node, peer)
    return "veth", f"packet:{peer}", [name, peer], cmds


def _kernel(node: Node, kind: str, name: str, *, remote: str, local: str, key: int | None,
            ttl: int | None, implementation: str, op: str) -> list[str] | None:
    """Try the kernel device. Its commands, or None when this kernel lacks it (auto)."""
    argv = ["ip", "link", "add", name, "type", kind, "remote", remote, "local", local]
    if key is not None:
        argv += ["key", str(key)]
    if ttl is not None:
        argv += ["ttl", str(ttl)]
    result = node.run(argv)
    if result.ok:
        record(node, name)
        return [" ".join(argv)]
    text = result.stderr.strip()
    if any(s in text for s in UNSUPPORTED):
        if implementation == "kernel":
            raise KernelError(f"{op}: this kernel has no {kind} device (`{' '.join(argv)}`: {text})",
                              errno=errno.EOPNOTSUPP, obj=f"{node.name}:{name}", op=op,
                              remedy="use implementation='userspace' (or 'auto'): a daemon in the "
                                     "node does the same on the wire")
        return None
    raise CommandFailed(f"`{' '.join(argv)}` on node {node.name!r} failed: {text}",
                        returncode=result.returncode, stdout=result.stdout, stderr=result.stderr,
                        obj=f"{node.name}:{name}", op=op, remedy="check the addresses and the name")


def _finish_kernel(node: Node, name: str, command: str, op: str) -> None:
    try:
        ip_batch(node, [command], obj=f"{node.name}:{name}", op=op)
    except Exception:
        node.delete_link(name)
        forget(node, name)
        raise


def _start_userspace(t: Tunnel) -> Tunnel:
    try:
        t._spawn()
    except Exception:
        t.delete()
        raise
    return t


def _check_end(node: Node, name: str, implementation: str, key: int | None, ttl: int | None,
               op: str) -> None:
    """The checks both GRE kinds make before building anything."""
    claim(node, name)
    check_choice(implementation, IMPLEMENTATIONS, "implementation", op)
    check_key(key)
    check_ttl(ttl)


def _common(node: Node, kind: str, name: str, remote: str, local: str | None, key: int | None,
            ttl: int | None, mtu: int | None, op: str) -> dict[str, Any]:
    """Underlay addresses, overhead and inner MTU of a GRE end: the Tunnel fields both kinds share."""
    far = ipv4(remote, "remote", op)
    near, dev = underlay(node, far, None if local is None else ipv4(local, "local", op), None, op)
    overhead = OVERHEAD[kind] + (4 if key is not None else 0)
    return {"kind": kind, "name": name, "local": near, "remote": far, "key": key, "dev": dev,
            "mtu": mtu_for(node, dev, overhead, mtu, op), "overhead": overhead, "ttl": ttl}


def gretap(node: Node, name: str = "gretap0", *, remote: str, local: str | None = None,
           key: int | None = None, ttl: int | None = None, bridge: str | None = None,
           mtu: int | None = None, implementation: str = "auto", device: str = "auto") -> Tunnel:
    """An Ethernet-over-GRE end (lab practical B3), as one types on each host::

        ip link add gretap0 type gretap remote 172.16.1.2 local 172.16.1.1 [key K] [ttl T]
        ip link set gretap0 mtu 1462 master br0 up

    Frames that enter ``gretap0`` (a port of the host bridge ``bridge``) leave the host
    as IPv4 protocol 47, GRE protocol type 0x6558, and come out of the other host's
    ``gretap0``. ``mtu`` defaults to the underlay's MTU minus 38 (42 with a key).

    ``implementation``: ``"kernel"``, ``"userspace"`` or ``"auto"`` (the kernel device if
    this kernel has one). ``device`` (userspace only): ``"veth"`` (default: a veth end,
    its peer read by the daemon with AF_PACKET) or ``"tap"``. ``remote`` must be
    reachable from the node (an underlay address or route must exist first).
    """
    op = "create gretap tunnel"
    _check_end(node, name, implementation, key, ttl, op)
    if bridge is not None:
        node.interface(bridge)
    common = _common(node, "gretap", name, remote, local, key, ttl, mtu, op)
    far, local, inner_mtu = common["remote"], common["local"], common["mtu"]
    cmds = None
    if implementation != "userspace":
        cmds = _kernel(node, "gretap", name, remote=far, local=local, key=key, ttl=ttl,
                       implementation=implementation, op=op)
    if cmds is not None:
        set_cmd = f"ip link set {name} mtu {inner_mtu}" + (f" master {bridge}" if bridge else "") + " up"
        _finish_kernel(node, name, set_cmd, op)
        t = Tunnel(node, implementation="kernel", device_type="gretap", **common)
        t.commands = cmds + [set_cmd]
        t.mac = node.interface(name).address
        return t
    dtype, spec, devices, cmds = make_port(node, name, l3=False, device=device, mtu=inner_mtu,
                                           bridge=bridge, op=op)
    t = Tunnel(node, implementation="userspace", device_type=dtype, **common)
    t.devices, t.commands, t._port_spec = devices, cmds, spec
    t.mac = node.interface(name).address
    return _start_userspace(t)


def gre(node: Node, name: str = "gre1", *, remote: str, address: str | None = None,
        local: str | None = None, key: int | None = None, ttl: int | None = None,
        mtu: int | None = None, implementation: str = "auto", device: str = "auto") -> Tunnel:
    """An IPv4-over-GRE end (protocol type 0x0800), a routed point-to-point link::

        ip link add gre1 type gre remote 172.16.1.2 local 172.16.1.1 [key K] [ttl T]
        ip link set gre1 mtu 1476 up
        ip addr add 192.168.100.1/30 dev gre1

    ``address`` (optional) goes on the device; add routes through it with
    ``node.add_route(..., dev="gre1")``. ``mtu`` defaults to the underlay's MTU minus
    24 (28 with a key). ``implementation`` as for :func:`gretap`; ``device``
    (userspace only): ``"tun"`` (default when ``/dev/net/tun`` can be opened) or
    ``"veth"`` (a NOARP veth end read with AF_PACKET).
    """
    op = "create gre tunnel"
    _check_end(node, name, implementation, key, ttl, op)
    if address is not None:
        from .. import validate
        iface = validate.interface_address(address)
        if iface.version != 4:
            raise InvalidTopology(f"address {address} is not IPv4", obj=address, op=op,
                                  remedy="give an IPv4 CIDR such as '192.168.100.1/30'")
    common = _common(node, "gre", name, remote, local, key, ttl, mtu, op)
    common["address"] = address
    far, local, inner_mtu = common["remote"], common["local"], common["mtu"]
    cmds = None
    if implementation != "userspace":
        cmds = _kernel(node, "gre", name, remote=far, local=local, key=key, ttl=ttl,
                       implementation=implementation, op=op)
    if cmds is not None:
        set_cmd = f"ip link set {name} mtu {inner_mtu} up"
        _finish_kernel(node, name, set_cmd, op)
        t = Tunnel(node, implementation="kernel", device_type="gre", **common)
        t.commands = cmds + [set_cmd]
    else:
        dtype, spec, devices, cmds = make_port(node, name, l3=True, device=device, mtu=inner_mtu,
                                               bridge=None, op=op)
        t = Tunnel(node, implementation="userspace", device_type=dtype, **common)
        t.devices, t.commands, t._port_spec = devices, cmds, spec
    if address is not None:
        node.add_address(name, address)
        t.commands.append(f"ip addr add {address} dev {name}")
    if t.implementation == "userspace":
        return _start_userspace(t)
    return t
