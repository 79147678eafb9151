"""Weave's address management (IPAM), as pure functions over address blocks.

Weave needs no external store to hand out addresses: the whole allocation range
(``--ipalloc-range``, by default ``10.32.0.0/12``) is shared out between the peers,
each peer owns some blocks of it, and a peer allocates only from what it owns.

* The first peer, launched alone, takes the whole range (what real Weave's consensus
  gives a peer that has no one to agree with).
* A peer launched with peers (``weave launch 192.168.99.101``) starts with nothing and
  asks for space: the peer it reached *donates* half of one of its blocks, a half in
  which nothing is allocated yet. So node1 owns 10.32.0.0/13 and node2 10.40.0.0/13.
* Containers get the first free address of the subnet they ask for (the default
  subnet is the whole range; ``WEAVE_CIDR=net:10.32.2.0/24`` asks for another one),
  never the network or broadcast address of that subnet: 10.32.0.1, 10.32.0.2, ...
  (and 10.40.0.0 is a normal address in 10.32.0.0/12).

Real Weave keeps the ownership in a CRDT ring gossiped between peers; the blocks here
are CIDR-aligned halves, which keeps every ownership printable as a prefix.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from .. import validate
from ..errors import InvalidAddress

DEFAULT_RANGE = "10.32.0.0/12"
MIN_DONATION_PREFIX = 30       # a block smaller than /30 is not split any further

Net = ipaddress.IPv4Network
Iface = ipaddress.IPv4Interface


def _net(text: str, what: str) -> Net:
    return validate.ipv4_network(text, what=what, op="weave ipam")


def allocation_range(text: str = DEFAULT_RANGE) -> Net:
    """Check an ``--ipalloc-range``: an IPv4 prefix of at most /30."""
    net = _net(text, "IP allocation range")
    if net.prefixlen > MIN_DONATION_PREFIX:
        raise InvalidAddress(f"IP allocation range {text} is too small", obj=text, op="weave launch",
                             remedy="give a prefix of /30 or larger, e.g. 10.32.0.0/12")
    return net


@dataclass(frozen=True)
class CidrRequest:
    """One part of a ``WEAVE_CIDR`` value: ``net:SUBNET`` (allocate) or ``ip:ADDR/LEN`` (take)."""

    kind: str                          # "net" or "ip"
    subnet: Net
    address: Iface | None = None       # for kind "ip"

    def __str__(self) -> str:
        return f"ip:{self.address}" if self.address is not None else f"net:{self.subnet}"


def parse_weave_cidr(text: str | None, ipalloc_range: Net) -> list[CidrRequest]:
    """Read a ``WEAVE_CIDR`` value (``net:default``, ``net:10.32.2.0/24``, ``ip:10.32.2.5/24``,
    several separated by spaces). ``None`` or empty means ``net:default``."""
    parts = (text or "net:default").split()
    requests: list[CidrRequest] = []
    for part in parts:
        kind, sep, value = part.partition(":")
        if not sep or kind not in ("net", "ip"):
            raise InvalidAddress(f"WEAVE_CIDR part {part!r} is not understood", obj=part,
                                 op="weave attach",
                                 remedy="write net:default, net:SUBNET (e.g. net:10.32.2.0/24) or "
                                        "ip:ADDRESS/LEN (e.g. ip:10.32.2.5/24)")
        if kind == "net":
            subnet = ipalloc_range if value == "default" else _net(value, "WEAVE_CIDR subnet")
            address = None
        else:
            try:
                address = ipaddress.IPv4Interface(value)
            except ValueError:
                raise InvalidAddress(f"WEAVE_CIDR address {value!r} is not ADDRESS/LEN", obj=part,
                                     op="weave attach", remedy="e.g. ip:10.32.2.5/24") from None
            subnet = address.network
            if address.ip in (subnet.network_address, subnet.broadcast_address) and subnet.prefixlen < 31:
                raise InvalidAddress(f"{address} is the network or broadcast address of {subnet}",
                                     obj=part, op="weave attach", remedy="pick a host address")
        if not subnet.subnet_of(ipalloc_range):
            raise InvalidAddress(f"WEAVE_CIDR subnet {subnet} is outside the allocation range "
                                 f"{ipalloc_range}", obj=part, op="weave attach",
                                 remedy=f"ask for a subnet inside {ipalloc_range}, or launch the "
                                        "routers with another --ipalloc-range")
        requests.append(CidrRequest(kind, subnet, address))
    return requests


def total(blocks: Iterable[Net]) -> int:
    """How many addresses the blocks hold."""
    return sum(b.num_addresses for b in blocks)


def donate(owned: list[Net], allocated: Iterable[str]) -> tuple[Net, list[Net]] | None:
    """Give away half of one owned block in which nothing is allocated.

    Returns ``(donated block, blocks kept)``, or ``None`` if every block is too small or
    used in both halves. The largest block is split first; its upper half is given if
    free, else its lower half.
    """
    used = [ipaddress.IPv4Address(a) for a in allocated]
    for block in sorted(owned, key=lambda b: (b.prefixlen, b)):
        if block.prefixlen >= MIN_DONATION_PREFIX:
            continue
        low, high = block.subnets(prefixlen_diff=1)
        for give, keep in ((high, low), (low, high)):
            if not any(ip in give for ip in used):
                kept = [b for b in owned if b != block] + [keep]
                return give, sorted(kept)
    return None


def donate_within(owned: list[Net], allocated: Iterable[str], subnet: Net) -> tuple[Net, list[Net]] | None:
    """Give away the largest free block inside ``subnet`` (for a peer asked for an address
    of a subnet it owns nothing of, ``WEAVE_CIDR=net:...``). Returns ``(donated block,
    blocks kept)`` or ``None`` if every candidate holds an allocation."""
    used = [ipaddress.IPv4Address(a) for a in allocated]
    for block in sorted(owned):
        if not block.overlaps(subnet):
            continue
        target = subnet if subnet.subnet_of(block) else block
        for prefix in range(target.prefixlen, MIN_DONATION_PREFIX + 1):
            for gift in target.subnets(new_prefix=prefix):
                if not any(ip in gift for ip in used):
                    rest = [] if gift == block else list(block.address_exclude(gift))
                    kept = [b for b in owned if b != block] + rest
                    return gift, sorted(ipaddress.collapse_addresses(kept))
    return None


def allocate(subnet: Net, owned: Iterable[Net], allocated: Iterable[str]) -> ipaddress.IPv4Address | None:
    """The first free address of ``subnet`` inside the owned blocks (skipping the subnet's
    network and broadcast addresses), or ``None`` if this peer has none to give."""
    used = set(allocated)
    reserved = {subnet.network_address, subnet.broadcast_address} if subnet.prefixlen < 31 else set()
    for block in sorted(owned):
        if block.subnet_of(subnet):
            part = block
        elif subnet.subnet_of(block):
            part = subnet
        else:
            continue
        for ip in part:
            if ip not in reserved and str(ip) not in used:
                return ip
    return None


def owner_of(ip: ipaddress.IPv4Address, ownership: dict[str, list[Net]]) -> str | None:
    """Which peer owns the block holding ``ip`` (``ownership``: peer -> blocks)."""
    for peer, blocks in ownership.items():
        if any(ip in b for b in blocks):
            return peer
    return None
