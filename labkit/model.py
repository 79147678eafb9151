"""Records of what is in a lab: the state read back from the kernel, and the links made.

Field names follow ``ip -j`` / ``bridge -j`` wherever those tools have one, so what a
notebook shows can be put side by side with the real commands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Sequence, TypeVar

T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Interface:
    """A network interface as the kernel reports it (``ip -j link``)."""

    ifindex: int
    ifname: str
    kind: str | None
    address: str | None
    mtu: int | None
    operstate: str | None
    up: bool
    master: str | None
    link_index: int | None
    link_netnsid: int | None
    vxlan: dict[str, Any] | None = None


@dataclass(frozen=True)
class Address:
    """An address on an interface (``ip -j addr``)."""

    ifname: str
    family: str
    local: str
    prefixlen: int
    scope: str
    ifindex: int = 0

    @property
    def cidr(self) -> str:
        return f"{self.local}/{self.prefixlen}"


@dataclass(frozen=True)
class Route:
    """A route of the main table (``ip -j route``, ``ip -j -6 route``)."""

    family: str
    dst: str
    gateway: str | None
    dev: str | None
    type: str
    protocol: str
    scope: str
    metric: int | None
    prefsrc: str | None
    onlink: bool
    table: int = 254


@dataclass(frozen=True)
class Neighbour:
    """An ARP / NDP entry (``ip -j neigh``)."""

    dst: str
    dev: str | None
    lladdr: str | None
    state: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FdbEntry:
    """A bridge forwarding-database entry (``bridge -j fdb``)."""

    mac: str
    ifname: str | None
    dst: str | None
    master: str | None
    vlan: int | None
    state: str
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Link:
    """A veth pair made by :meth:`labkit.Lab.link`: one end in each node."""

    a: str
    a_ifname: str
    b: str
    b_ifname: str

    def __str__(self) -> str:
        return f"{self.a}:{self.a_ifname} <-> {self.b}:{self.b_ifname}"


def records(cls: type[T], rows: Iterable[dict[str, Any]]) -> list[T]:
    return [_build(cls, row) for row in rows]


def to_frame(items: Sequence[Any]) -> Any:
    """A pandas DataFrame of a list of records (imports pandas only when asked)."""
    import pandas as pd

    return pd.DataFrame([asdict(item) for item in items])
