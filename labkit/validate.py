"""Checks on names and addresses, done before anything is built.

Pure functions: no kernel, no processes. Each one either returns the value in a
normal form or raises an error from :mod:`labkit.errors` that names the value, what
is wrong with it and how to fix it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import signal as _signal
from typing import Any, Iterable, Mapping, Sequence, Union

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
    if name in (".", "..") or any(c in "/:\0" or c.isspace() for c in name):
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


def fdb_mac(value: str) -> str:
    """A MAC address in a bridge FDB entry: any unicast MAC, or all zeros (VXLAN flooding)."""
    if isinstance(value, str) and value.lower() == "00:00:00:00:00:00":
        return value.lower()
    return mac(value)


def integer(value: object, low: int, high: int, *, what: str, op: str, remedy: str) -> int:
    """Check a whole number from ``low`` to ``high`` (a VNI, key, port, TTL, MTU...)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAddress(f"{what} {value!r} is not a whole number", obj=repr(value), op=op,
                             remedy=remedy)
    if not low <= value <= high:
        raise InvalidAddress(f"{what} {value!r} is out of range", obj=repr(value), op=op,
                             remedy=remedy)
    return value


def pid(value: object, op: str = "adopt namespace") -> int:
    """A process ID, such as a Docker container's (``docker inspect -f '{{.State.Pid}}'``)."""
    return integer(value, 1, 2 ** 22, what="process id", op=op,
                   remedy="pass the PID of a running process (docker inspect -f '{{.State.Pid}}')")


def seconds(value: object, *, what: str, op: str, allow_none: bool = True,
            allow_zero: bool = False) -> float | None:
    """Check a duration in seconds: a positive, finite number (or None for "no limit")."""
    if value is None and allow_none:
        return None
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value < 0 or (value == 0 and not allow_zero)):
        least = "0 or more" if allow_zero else "greater than 0"
        raise InvalidTopology(f"{what} {value!r} is not a valid number of seconds",
                              obj=repr(value), op=op,
                              remedy=f"pass a number of seconds {least}"
                                     f"{' (or None for no limit)' if allow_none else ''}")
    return float(value)


def flag(value: object, *, what: str, op: str) -> bool:
    """Check a yes/no option (True or False, not a string such as "no")."""
    if not isinstance(value, bool):
        raise InvalidTopology(f"{what} must be True or False (got {value!r})", obj=repr(value),
                              op=op, remedy=f"pass {what}=True or {what}=False")
    return value


def route_metric(value: object, op: str = "add route") -> int | None:
    """A route's metric (``ip route ... metric N``): 0 to 4294967295, or None."""
    if value is None:
        return None
    return integer(value, 0, 2 ** 32 - 1, what="route metric", op=op,
                   remedy="a metric (priority) is 0 to 4294967295; lower wins, the default is 0")


def route_table(value: object, op: str = "add route") -> int:
    """A routing table number (``ip route ... table N``): 1 to 4294967295 (main is 254)."""
    return integer(value, 1, 2 ** 32 - 1, what="routing table", op=op,
                   remedy="use 254 (main, the default), 255 (local) or your own table from 1 "
                          "to 4294967295")


def ip_ttl(value: object, op: str, *, inherit: bool = False) -> int | None:
    """An IP TTL (hop limit): 1 to 255, or None for the default (0 too, meaning "inherit")."""
    if value is None:
        return None
    low = 0 if inherit else 1
    return integer(value, low, 255, what="TTL", op=op,
                   remedy=f"a TTL is one byte: use {low} to 255"
                          f"{' (0 copies the inner TTL)' if inherit else ''}, or None for the default")


def text(value: object, *, what: str, op: str) -> str:
    """A string handed to the kernel or a program: no NUL bytes (C strings end at the first)."""
    if not isinstance(value, str):
        raise InvalidTopology(f"{what} {value!r} is not a string", obj=repr(value), op=op,
                              remedy=f"pass {what} as text")
    if "\0" in value:
        raise InvalidTopology(f"{what} {value!r} contains a NUL byte", obj=repr(value), op=op,
                              remedy="remove the \\0: programs and the kernel read a string only "
                                     "up to the first NUL")
    return value


def command(argv: Sequence[object], op: str = "run command") -> list[str]:
    """A command line: a non-empty list of strings without NUL bytes."""
    words = [text(word, what="command argument", op=op) for word in argv]
    if not words:
        raise InvalidTopology("empty command", op=op, remedy="give a program to run")
    return words


_ENV_NAME = re.compile(r"^[^=\0]+$")


def environment(env: Mapping[Any, Any] | None, op: str = "run command") -> dict[str, str] | None:
    """Extra environment variables: names like ``LANG`` (not empty, no '=' or NUL), text values."""
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise InvalidTopology(f"env {env!r} is not a mapping", obj=repr(env), op=op,
                              remedy="pass a dict such as {'LANG': 'C'}")
    checked = {}
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise InvalidTopology(f"environment variable name {name!r} is not valid", obj=repr(name),
                                  op=op, remedy="a name cannot be empty or contain '=' or NUL: use "
                                                "letters, digits and '_', such as 'LANG'")
        checked[name] = text(value if not isinstance(value, (int, float)) or isinstance(value, bool)
                             else str(value), what=f"value of environment variable {name}", op=op)
    return checked


def signal_number(value: object, op: str = "signal process") -> int:
    """A signal as a user writes it: ``signal.SIGKILL``, ``9``, ``"KILL"`` or ``"SIGKILL"``."""
    if isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        member = getattr(_signal.Signals, "__members__", {}).get(name)
        if member is None:
            raise InvalidTopology(f"signal {value!r} is not known", obj=repr(value), op=op,
                                  remedy="use a name such as 'TERM', 'KILL', 'INT', 'HUP', 'USR1' "
                                         "(see `kill -l`) or signal.SIGTERM")
        return int(member)
    valid = set(int(s) for s in _signal.valid_signals())
    if isinstance(value, bool) or not isinstance(value, int) or int(value) not in valid or value == 0:
        raise InvalidTopology(f"signal {value!r} is not a signal of this system", obj=repr(value),
                              op=op, remedy="use signal.SIGTERM, signal.SIGKILL, 'TERM' or 'KILL' "
                                            "(see `kill -l`)")
    return int(value)


_SYSCTL_KEY = re.compile(r"^[A-Za-z0-9_-]+([./][A-Za-z0-9_@:+-]+)+$")


def sysctl_key(key: object, op: str = "set sysctl") -> str:
    """A sysctl name such as ``net.ipv4.ip_forward`` (``/`` separators are accepted too).

    Interface names with dots (``eth0.100``) need the ``/`` form, as with ``sysctl``.
    """
    if (not isinstance(key, str) or not _SYSCTL_KEY.match(key)
            or any(part in ("", ".", "..") for part in re.split(r"[./]", key))):
        raise InvalidName(f"sysctl name {key!r} is not valid", obj=repr(key), op=op,
                          remedy="write it like 'net.ipv4.ip_forward' (see `sysctl -a` in the node)")
    return key


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
