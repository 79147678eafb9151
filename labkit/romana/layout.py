"""Romana's hierarchical address layout: an address *is* a place (host, tenant, segment).

Romana (core 1.x) cuts the pod network's address space into bit fields, most
significant first::

    10.0.0.0/8 network   | host id | tenant | segment | endpoint
    8 bits (prefix)      | 8 bits  | 4 bits | 4 bits  | 8 bits       (= 32 bits)

    10 . 1 . 0001 0010 . 7   ->  host 1, tenant 1, segment 2, endpoint 7  = 10.1.18.7

so every host owns one block (host ``h``: ``10.h.0.0/16``), routed to it without
encapsulation, and a packet's tenant and segment can be read from its addresses by
a mask (``10.0.18.0/255.0.255.0`` matches tenant 1 segment 2 on every host). The
curriculum's variant, ``172.16.0.0/12`` with 4 host bits, has room for 16 hosts, each
a /16 (``172.16.0.0/16`` .. ``172.31.0.0/16``).

:class:`Layout` composes and decomposes addresses both ways and names the blocks and
masks the routes and the isolation rules use. Pure: no kernel, no processes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .. import validate
from ..errors import InvalidAddress, InvalidTopology

IPv4 = ipaddress.IPv4Address
Net = ipaddress.IPv4Network
FIELDS = ("host", "tenant", "segment", "endpoint")


@dataclass(frozen=True)
class Parts:
    """An address taken apart: which host, tenant, segment and endpoint it names."""

    host: int
    tenant: int
    segment: int
    endpoint: int

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in FIELDS}


class Layout:
    """A Romana address layout: a network prefix and four field widths summing to 32 bits.

    ::

        layout = Layout()                              # 10.0.0.0/8, 8 / 4 / 4 / 8
        layout.compose(host=1, tenant=1, segment=2, endpoint=7)    # IPv4Address('10.1.18.7')
        layout.decompose("10.1.18.7")                  # Parts(host=1, tenant=1, segment=2, endpoint=7)
        layout.host_block(1)                           # IPv4Network('10.1.0.0/16')
        layout.segment_match(1, 2)                     # '10.0.18.0/255.0.255.0'
        Layout.variant_172()                           # 172.16.0.0/12, 4 / 4 / 4 / 8
    """

    def __init__(self, network: str = "10.0.0.0/8", *, host_bits: int = 8, tenant_bits: int = 4,
                 segment_bits: int = 4, endpoint_bits: int = 8) -> None:
        net = validate.ipv4_network(network, what="Romana network", op="romana layout")
        widths = {"host": host_bits, "tenant": tenant_bits, "segment": segment_bits,
                  "endpoint": endpoint_bits}
        for field, bits in widths.items():
            if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
                raise InvalidTopology(f"{field} bits must be a positive integer (got {bits!r})",
                                      obj=f"{field}_bits", op="romana layout",
                                      remedy="give each field at least one bit")
        total = net.prefixlen + sum(widths.values())
        if total != 32:
            plan = " + ".join(f"{w} {f}" for f, w in widths.items())
            raise InvalidTopology(
                f"layout does not fit 32 bits: /{net.prefixlen} prefix + {plan} = {total} bits",
                obj=str(network), op="romana layout",
                remedy=f"after a /{net.prefixlen} prefix the four fields must share "
                       f"{32 - net.prefixlen} bits")
        self.network: Net = net
        self.bits: dict[str, int] = widths
        # shift of each field from the least significant bit
        self.shift: dict[str, int] = {}
        offset = 0
        for field in reversed(FIELDS):
            self.shift[field] = offset
            offset += widths[field]

    @classmethod
    def variant_172(cls) -> "Layout":
        """The curriculum's variant: 172.16.0.0/12 with 4 host, 4 tenant, 4 segment, 8 endpoint bits."""
        return cls("172.16.0.0/12", host_bits=4, tenant_bits=4, segment_bits=4, endpoint_bits=8)

    def __repr__(self) -> str:
        return (f"<Layout {self.network}: host {self.bits['host']}, tenant {self.bits['tenant']}, "
                f"segment {self.bits['segment']}, endpoint {self.bits['endpoint']} bits>")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and (self.network, self.bits) == (other.network, other.bits)

    def __hash__(self) -> int:
        return hash((self.network, tuple(self.bits.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"network": str(self.network), **{f"{f}_bits": b for f, b in self.bits.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Layout":
        return cls(data["network"], **{f"{f}_bits": int(data[f"{f}_bits"]) for f in FIELDS})

    # -- fields -------------------------------------------------------------------------

    def capacity(self, field: str) -> int:
        """How many values a field holds (``2 ** bits``)."""
        return 2 ** self.bits[self._field(field)]

    def _field(self, field: str) -> str:
        if field not in FIELDS:
            raise InvalidTopology(f"{field!r} is not a field of the layout", obj=field,
                                  op="romana layout", remedy=f"use one of {', '.join(FIELDS)}")
        return field

    def check(self, field: str, value: int) -> int:
        """``value`` if it fits ``field``; else an error that says the field's range."""
        top = self.capacity(field) - 1
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise InvalidAddress(
                f"{field} {value!r} is out of range: {self.bits[field]} {field} bits hold 0..{top}",
                obj=f"{field}={value!r}", op="romana address",
                remedy=f"pick a {field} from 0 to {top}")
        return value

    # -- both ways ------------------------------------------------------------------------

    def compose(self, host: int, tenant: int, segment: int, endpoint: int) -> IPv4:
        """The address of an endpoint: the network's prefix with the four fields put in."""
        values = {"host": host, "tenant": tenant, "segment": segment, "endpoint": endpoint}
        number = int(self.network.network_address)
        for field, value in values.items():
            number |= self.check(field, value) << self.shift[field]
        return IPv4(number)

    def decompose(self, address: str | IPv4) -> Parts:
        """Which host, tenant, segment and endpoint an address belongs to."""
        try:
            ip = IPv4(str(address).split("/")[0])
        except ValueError:
            raise InvalidAddress(f"{address!r} is not an IPv4 address", obj=str(address),
                                 op="romana decompose", remedy="e.g. 10.1.18.7") from None
        if ip not in self.network:
            raise InvalidAddress(f"{ip} is outside the Romana network {self.network}", obj=str(ip),
                                 op="romana decompose", remedy=f"give an address in {self.network}")
        number = int(ip)
        return Parts(**{f: (number >> self.shift[f]) & (self.capacity(f) - 1) for f in FIELDS})

    # -- blocks and masks -------------------------------------------------------------------

    def _block(self, upto: str, values: dict[str, int]) -> Net:
        fields = FIELDS[:FIELDS.index(upto) + 1]
        prefix = self.network.prefixlen + sum(self.bits[f] for f in fields)
        base = self.compose(**{f: values.get(f, 0) for f in FIELDS})
        return ipaddress.IPv4Network(f"{base}/{prefix}", strict=False)

    def host_block(self, host: int) -> Net:
        """Everything host ``host`` owns (``10.h.0.0/16``): one route per host, no tunnel."""
        return self._block("host", {"host": host})

    def tenant_block(self, host: int, tenant: int) -> Net:
        return self._block("tenant", {"host": host, "tenant": tenant})

    def segment_block(self, host: int, tenant: int, segment: int) -> Net:
        return self._block("segment", {"host": host, "tenant": tenant, "segment": segment})

    def _match(self, fields: tuple[str, ...], values: dict[str, int]) -> str:
        mask = int(self.network.netmask)
        value = int(self.network.network_address)
        for field in fields:
            mask |= (self.capacity(field) - 1) << self.shift[field]
            value |= self.check(field, values[field]) << self.shift[field]
        return f"{IPv4(value)}/{IPv4(mask)}"

    def tenant_match(self, tenant: int) -> str:
        """An iptables ``-s``/``-d`` value matching tenant ``tenant`` on any host:
        ``10.0.16.0/255.0.240.0`` (nft: ``ip saddr & 255.0.240.0 == 10.0.16.0``)."""
        return self._match(("tenant",), {"tenant": tenant})

    def segment_match(self, tenant: int, segment: int) -> str:
        """Matches one segment of one tenant on any host: ``10.0.18.0/255.0.255.0``."""
        return self._match(("tenant", "segment"), {"tenant": tenant, "segment": segment})

    def gateway(self, host: int) -> IPv4:
        """The host's gateway address (on ``romana-gw``): the first address of its block."""
        return self.compose(host, 0, 0, 1)

    def bits_table(self, address: str | IPv4) -> list[dict[str, Any]]:
        """Rows for a table: each field of ``address`` with its bits and value."""
        ip = IPv4(str(address).split("/")[0])
        parts = self.decompose(ip)
        binary = f"{int(ip):032b}"
        rows = [{"field": "network", "bits": binary[:self.network.prefixlen],
                 "width": self.network.prefixlen, "value": str(self.network)}]
        start = self.network.prefixlen
        for field in FIELDS:
            width = self.bits[field]
            rows.append({"field": field, "bits": binary[start:start + width], "width": width,
                         "value": getattr(parts, field)})
            start += width
        return rows
