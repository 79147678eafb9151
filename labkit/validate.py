"""Checks on names and addresses, done before anything is built.

Pure functions: no kernel, no processes. Each one either returns the value in a
normal form or raises an error from :mod:`labkit.errors` that names the value, what
is wrong with it and how to fix it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable, Union

from .errors import DuplicateName, InvalidAddress, InvalidName, InvalidTopology

IFNAMSIZ = 16  # the kernel's buffer, including the terminating NUL: 15 usable characters
MAX_IFNAME = IFNAMSIZ - 1

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_MAC = re.compile(r"^([0-9a-fA-F]{2})(:[0-9a-fA-F]{2}){5}$")


def node_name(name: str) -> str:
    """Check a node name: a letter, then letters, digits, ``-``, ``_`` or ``.``; at most 32."""
    if not isinstance(name, str) or not _NODE_NAME.match(name) or len(name) > 32:
        raise InvalidName(
            f"node name {name!r} is not valid",
            obj=repr(name), op="name node",
            remedy="use a letter followed by letters, digits, '-', '_' or '.', at most 32 characters",
        )
    return name


NODE_KINDS = ("host", "router", "switch")


def new_node(name: str, kind: str, taken: Iterable[str], lab: str) -> str:
    """Check a node about to be added to lab ``lab``: its name, its kind, and that it is new."""
    node_name(name)
    if kind not in NODE_KINDS:
        raise InvalidTopology(f"node kind {kind!r} is not known", obj=name, op="add node",
                              remedy=f"use one of {', '.join(NODE_KINDS)}")
    if name in taken:
        raise DuplicateName(f"node {name!r} already exists in lab {lab!r}", obj=name,
                            op="add node", remedy="choose another name")
    return name


def ifname(name: str) -> str:
    """Check an interface name the way the kernel does (1 to 15 bytes, no '/', ':' or spaces)."""
    if not isinstance(name, str) or not name:
        raise InvalidName(f"interface name {name!r} is empty or not a string", obj=repr(name),
                          op="name interface", remedy="give a name of 1 to 15 characters")
    if len(name.encode()) > MAX_IFNAME:
        raise InvalidName(
            f"interface name {name!r} has {len(name.encode())} characters, more than the kernel's "
            f"limit of {MAX_IFNAME} (IFNAMSIZ)",
            obj=repr(name), op="name interface",
            remedy=f"shorten it to {MAX_IFNAME} characters or fewer",
        )
    if name in (".", "..") or any(c in name for c in "/: \t\n") :
        raise InvalidName(f"interface name {name!r} contains a character the kernel refuses",
                          obj=repr(name), op="name interface",
                          remedy="use letters, digits, '-', '_' or '.' only")
    return name


def interface_address(value: str) -> IPInterface:
    """Parse an address with its prefix length, such as ``10.0.0.1/24`` or ``fd00::1/64``."""
    text = str(value)
    if "/" not in text:
        raise InvalidAddress(
            f"address {text!r} has no prefix length",
            obj=repr(text), op="parse address",
            remedy="write it in CIDR form, for example '10.0.0.1/24'",
        )
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise InvalidAddress(f"address {text!r} is not a valid IPv4/IPv6 CIDR ({exc})",
                             obj=repr(text), op="parse address",
                             remedy="write it like '10.0.0.1/24' or 'fd00::1/64'") from None


def network(value: str) -> IPNetwork:
    """Parse a destination network: ``default``, ``10.1.0.0/16``, or a bare address (a /32 or /128)."""
    text = str(value)
    if text == "default":
        return ipaddress.ip_network("0.0.0.0/0")
    if text == "default6":
        return ipaddress.ip_network("::/0")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise InvalidAddress(f"destination {text!r} is not a network ({exc})", obj=repr(text),
                                 op="parse network",
                                 remedy="write it like '10.1.0.0/16', a single address, or 'default'") from None
        raise InvalidAddress(
            f"destination {text!r} has host bits set",
            obj=repr(text), op="parse network",
            remedy=f"did you mean {str(iface.network)!r}?",
        ) from None


def ipv4_network(value: object, *, what: str, op: str) -> ipaddress.IPv4Network:
    """Parse an IPv4 prefix with its host bits zero (a pool, a range, a subnet), or raise
    :class:`InvalidAddress` naming ``what`` it was meant to be."""
    text = str(value)
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidAddress(f"{what} {text!r} is not a valid IPv4 prefix ({exc})", obj=text, op=op,
                             remedy="write it as a prefix with its host bits zero, e.g. 10.32.0.0/12") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidAddress(f"{what} {text!r} is IPv6", obj=text, op=op,
                             remedy="this takes an IPv4 prefix, e.g. 10.0.0.0/8")
    return net


def address(value: str) -> IPAddress:
    """Parse a single IPv4 or IPv6 address (no prefix)."""
    text = str(value)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidAddress(f"{text!r} is not an IPv4 or IPv6 address", obj=repr(text),
                             op="parse address", remedy="write it like '10.0.0.1' or 'fd00::1'") from None


def mac(value: str) -> str:
    """Parse a MAC address into lower-case colon form; refuse multicast source addresses."""
    text = str(value)
    if not _MAC.match(text):
        raise InvalidAddress(f"MAC address {text!r} is not six colon-separated hex bytes",
                             obj=repr(text), op="parse MAC",
                             remedy="write it like '02:42:ac:11:00:02'")
    text = text.lower()
    if int(text[:2], 16) & 1:
        raise InvalidAddress(f"MAC address {text!r} is a multicast address and cannot name an interface",
                             obj=repr(text), op="parse MAC",
                             remedy="clear the lowest bit of the first byte (e.g. start with 02:)")
    return text


def integer(value: object, low: int, high: int, *, what: str, op: str, remedy: str) -> int:
    """Check a whole number from ``low`` to ``high`` (a VNI, key, port, TTL, MTU...)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidAddress(f"{what} {value!r} is out of range", obj=repr(value), op=op,
                             remedy=remedy)
    return value


def mtu(value: int) -> int:
    """Check an MTU: an integer from 68 (the IPv4 minimum) to 65535."""
    return integer(value, 68, 65535, what="MTU", op="set MTU",
                   remedy="use an integer from 68 to 65535 (1500 on Ethernet)")


def vni(value: object, op: str = "create vxlan device") -> int:
    """Check a VXLAN network identifier (24 bits)."""
    return integer(value, 0, 2 ** 24 - 1, what="VNI", op=op,
                   remedy="a VXLAN network identifier is 24 bits: 0 to 16777215")


def udp_port(value: object, op: str) -> int:
    """Check a UDP port number."""
    return integer(value, 1, 65535, what="UDP port", op=op,
                   remedy="use 1 to 65535 (VXLAN: 4789, flannel vxlan: 8472, flannel udp: 8285)")


def gateway_is_connected(gateway: IPAddress, connected: Iterable[IPInterface]) -> bool:
    """True when ``gateway`` lies inside one of the ``connected`` subnets (and is not one of them)."""
    for iface in connected:
        if iface.version == gateway.version and gateway in iface.network and gateway != iface.ip:
            return True
    return False
