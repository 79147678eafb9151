"""Calico IPAM: IP pools cut into blocks (a /26 by default) that belong to one node each.

A node asks for an address; IPAM gives it one from a block the node already holds
("affinity"), or claims a free block of a pool for the node first. Each node then
announces its blocks over BGP as single routes, and keeps a ``blackhole`` for each so
that addresses of its block that are not in use go nowhere. This module is pure logic
over a key-value store with the interface of :class:`labkit.cluster.etcd.EtcdClient`
(``get``, ``get_prefix``, ``put``, ``create``, ``delete``); the keys are Calico's
(:mod:`labkit.calico.keys`).

Ranges can be *reserved* so that IPAM never hands them out (Calico's IPReservation
resource): labkit reserves the cluster's underlay, which the default pool
192.168.0.0/16 contains (as in the seed, whose hosts were on 192.168.56.0/24); a block
there would route the nodes' own addresses away from their network.

Choices made the way Calico makes them: a node's first block is taken at a pseudo-random
place in the pool (the seed's nodes got 192.168.119.0/26 and 192.168.183.64/26, not the
first blocks), here derived from the node's name so that a lesson is reproducible;
addresses are handed out from the lowest free ordinal of a block (the ``.0`` address
of a block is a normal address: it is a /32 on the workload, not a network number).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from ..errors import InvalidAddress, InvalidTopology, NotFound
from . import keys

DEFAULT_POOL = "192.168.0.0/16"
DEFAULT_BLOCK_SIZE = 26
BLOCK_SIZES = (20, 32)  # what Calico accepts for an IPv4 pool's block size


class Store(Protocol):
    """What IPAM needs from etcd (``labkit.cluster.etcd.EtcdClient`` has it)."""

    def get(self, key: str) -> str | None: ...
    def get_prefix(self, prefix: str) -> dict[str, str]: ...
    def put(self, key: str, value: str) -> Any: ...
    def create(self, key: str, value: str) -> bool: ...
    def delete(self, key: str) -> Any: ...


@dataclass(frozen=True)
class IPPool:
    """An IP pool: ``calicoctl create`` of an ``ipPool`` (seed 001 §4.5.5)."""

    cidr: ipaddress.IPv4Network
    block_size: int = DEFAULT_BLOCK_SIZE
    nat_outgoing: bool = False
    disabled: bool = False

    def blocks(self) -> list[ipaddress.IPv4Network]:
        return list(self.cidr.subnets(new_prefix=self.block_size))

    def to_json(self) -> str:
        return json.dumps({"cidr": str(self.cidr), "block_size": self.block_size,
                           "masquerade": self.nat_outgoing, "ipip": "", "disabled": self.disabled})

    @classmethod
    def from_json(cls, text: str) -> "IPPool":
        data = json.loads(text)
        return cls(ipaddress.IPv4Network(data["cidr"]), int(data.get("block_size", 26)),
                   bool(data.get("masquerade", False)), bool(data.get("disabled", False)))


def make_pool(cidr: str, block_size: int = DEFAULT_BLOCK_SIZE, *,
              nat_outgoing: bool = False) -> IPPool:
    """A checked pool: an IPv4 network, and a block size from 20 to 32 that fits in it."""
    try:
        net = ipaddress.IPv4Network(str(cidr), strict=True)
    except ValueError as exc:
        raise InvalidAddress(f"IP pool {cidr!r} is not an IPv4 network ({exc})", obj=repr(cidr),
                             op="create IP pool",
                             remedy="write it like '192.168.0.0/16' (no host bits set; IPv4 only here)") from None
    low, high = BLOCK_SIZES
    if not isinstance(block_size, int) or isinstance(block_size, bool) or not low <= block_size <= high:
        raise InvalidAddress(f"block size {block_size!r} of IP pool {net} is outside {low}-{high}",
                             obj=repr(block_size), op="create IP pool",
                             remedy=f"Calico cuts IPv4 pools into blocks of /{low} to /{high}; "
                                    "the default is 26 (64 addresses per node block)")
    if block_size < net.prefixlen:
        raise InvalidAddress(f"block size /{block_size} is larger than IP pool {net} itself",
                             obj=str(net), op="create IP pool",
                             remedy=f"use a block size of {net.prefixlen} or more, or a larger pool")
    return IPPool(net, block_size, nat_outgoing)


def check_no_overlap(new: IPPool, existing: Iterable[IPPool]) -> None:
    """Refuse a pool that overlaps one already defined (Calico refuses it too)."""
    for other in existing:
        if other.cidr.overlaps(new.cidr):
            raise InvalidAddress(f"IP pool {new.cidr} overlaps the existing pool {other.cidr}",
                                 obj=str(new.cidr), op="create IP pool",
                                 remedy="pick a range that shares no address with the other pools, "
                                        "or delete the old pool first")


@dataclass
class Block:
    """One allocation block, stored whole under ``/calico/ipam/v2/assignment/ipv4/block/``.

    ``allocations[i]`` is the handle that holds the block's i-th address, or None.
    """

    cidr: ipaddress.IPv4Network
    host: str | None
    allocations: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.allocations:
            self.allocations = [None] * self.cidr.num_addresses

    @property
    def free(self) -> int:
        return self.allocations.count(None)

    def assign(self, handle: str, ip: ipaddress.IPv4Address | None = None) -> ipaddress.IPv4Address:
        if ip is None:
            ordinal = self.allocations.index(None)
        else:
            ordinal = int(ip) - int(self.cidr.network_address)
            if self.allocations[ordinal] is not None:
                raise InvalidAddress(f"address {ip} is already in use (held by "
                                     f"{self.allocations[ordinal]!r})", obj=str(ip),
                                     op="assign address", remedy="pick a free address, or let IPAM choose")
        self.allocations[ordinal] = handle
        return self.cidr.network_address + ordinal

    def release(self, handle: str) -> list[ipaddress.IPv4Address]:
        gone = [self.cidr.network_address + i for i, h in enumerate(self.allocations) if h == handle]
        self.allocations = [None if h == handle else h for h in self.allocations]
        return gone

    def to_json(self) -> str:
        handles = sorted({h for h in self.allocations if h is not None})
        attrs = [{"handle_id": h, "secondary": None} for h in handles]
        index = {h: i for i, h in enumerate(handles)}
        return json.dumps({
            "cidr": str(self.cidr),
            "affinity": None if self.host is None else f"host:{self.host}",
            "strictAffinity": False,
            "allocations": [None if h is None else index[h] for h in self.allocations],
            "unallocated": [i for i, h in enumerate(self.allocations) if h is None],
            "attributes": attrs,
        })

    @classmethod
    def from_json(cls, text: str) -> "Block":
        data = json.loads(text)
        attrs = data.get("attributes", [])
        affinity = data.get("affinity") or None
        host = affinity.split(":", 1)[1] if affinity else None
        allocations = [None if a is None else attrs[a]["handle_id"] for a in data["allocations"]]
        return cls(ipaddress.IPv4Network(data["cidr"]), host, allocations)


def _start(host: str, count: int) -> int:
    """Where a node starts looking for a free block: stable per node, spread over the pool."""
    return int.from_bytes(hashlib.sha1(host.encode()).digest()[:4], "big") % count


class IPAM:
    """Calico's IPAM over a store; every method reads the current state from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- pools --------------------------------------------------------------------------

    def pools(self) -> list[IPPool]:
        rows = self.store.get_prefix(keys.POOLS)
        return sorted((IPPool.from_json(v) for v in rows.values()), key=lambda p: p.cidr)

    def add_pool(self, cidr: str, block_size: int = DEFAULT_BLOCK_SIZE, *,
                 nat_outgoing: bool = False) -> IPPool:
        new = make_pool(cidr, block_size, nat_outgoing=nat_outgoing)
        check_no_overlap(new, self.pools())
        if not self.store.create(keys.pool(new.cidr), new.to_json()):
            raise InvalidAddress(f"IP pool {new.cidr} already exists", obj=str(new.cidr),
                                 op="create IP pool", remedy="use it, or pick another range")
        return new

    def pool_for(self, cidr: str | None) -> IPPool:
        pools = [p for p in self.pools() if not p.disabled]
        if not pools:
            raise NotFound("no IP pool is defined", obj="/calico/v1/ipam/v4/pool/",
                           op="assign address", remedy="create one first (calico.add_pool(...))")
        if cidr is None:
            return pools[0]
        for pool in pools:
            if str(pool.cidr) == str(cidr):
                return pool
        raise NotFound(f"IP pool {cidr} does not exist (pools: {', '.join(str(p.cidr) for p in pools)})",
                       obj=str(cidr), op="assign address", remedy="create it with add_pool() first")

    def reserve(self, cidr: str, reason: str = "") -> ipaddress.IPv4Network:
        """Keep ``cidr`` out of every block and assignment (Calico's IPReservation)."""
        try:
            net = ipaddress.IPv4Network(str(cidr), strict=True)
        except ValueError as exc:
            raise InvalidAddress(f"reserved range {cidr!r} is not an IPv4 network ({exc})",
                                 obj=repr(cidr), op="reserve range",
                                 remedy="write it like '192.168.99.0/24'") from None
        self.store.put(keys.reserved(net), json.dumps({"cidr": str(net), "reason": reason}))
        return net

    def reserved(self) -> list[ipaddress.IPv4Network]:
        return sorted(ipaddress.IPv4Network(json.loads(v)["cidr"])
                      for v in self.store.get_prefix(keys.RESERVED).values())

    # -- blocks -------------------------------------------------------------------------

    def blocks(self) -> dict[ipaddress.IPv4Network, Block]:
        rows = self.store.get_prefix(keys.BLOCKS)
        found = (Block.from_json(v) for v in rows.values())
        return {b.cidr: b for b in sorted(found, key=lambda b: b.cidr)}

    def host_blocks(self, host: str) -> list[ipaddress.IPv4Network]:
        """The blocks with an affinity to ``host`` (from the host's affinity keys)."""
        rows = self.store.get_prefix(keys.affinities(host))
        return sorted(keys.cidr_of(k.rsplit("/", 1)[1]) for k in rows)

    def _claim(self, host: str, pool: IPPool) -> Block:
        candidates = pool.blocks()
        start = _start(host, len(candidates))
        taken = set(self.blocks())
        reserved = self.reserved()
        taken |= {b for b in candidates for r in reserved if b.overlaps(r)}
        for i in range(len(candidates)):
            cidr = candidates[(start + i) % len(candidates)]
            if cidr in taken:
                continue
            block = Block(cidr, host)
            if self.store.create(keys.block(cidr), block.to_json()):  # atomic: one winner
                self.store.put(keys.affinity(host, cidr), json.dumps({"state": "confirmed"}))
                return block
        raise InvalidTopology(f"IP pool {pool.cidr} has no free /{pool.block_size} block left for "
                              f"node {host!r}", obj=str(pool.cidr), op="claim block",
                              remedy="add another IP pool, or use a smaller block size")

    def auto_assign(self, host: str, handle: str, pool: str | None = None) -> tuple[ipaddress.IPv4Address, Block]:
        """One address for ``handle`` on ``host``: from the host's blocks, else a new block."""
        chosen = self.pool_for(pool)
        blocks = self.blocks()
        for cidr in self.host_blocks(host):
            block = blocks.get(cidr)
            if block is not None and block.cidr.subnet_of(chosen.cidr) and block.free:
                break
        else:
            block = self._claim(host, chosen)
        ip = block.assign(handle)
        self._save(block, handle)
        return ip, block

    def assign_ip(self, host: str, handle: str, ip: str) -> Block:
        """A chosen address (``docker run --ip``): it must lie inside a pool."""
        try:
            addr = ipaddress.IPv4Address(str(ip))
        except ValueError:
            raise InvalidAddress(f"{ip!r} is not an IPv4 address", obj=repr(ip), op="assign address",
                                 remedy="write it like '192.168.1.10'") from None
        pools = self.pools()
        pool = next((p for p in pools if addr in p.cidr), None)
        if pool is None:
            raise InvalidAddress(f"address {addr} is outside every IP pool "
                                 f"({', '.join(str(p.cidr) for p in pools) or 'none defined'})",
                                 obj=str(addr), op="assign address",
                                 remedy="pick an address inside a pool, or create a pool that holds it")
        held = next((r for r in self.reserved() if addr in r), None)
        if held is not None:
            raise InvalidAddress(f"address {addr} is in the reserved range {held}", obj=str(addr),
                                 op="assign address", remedy="pick an address outside it")
        cidr = ipaddress.IPv4Network(f"{addr}/{pool.block_size}", strict=False)
        block = self.blocks().get(cidr)
        if block is None:
            block = Block(cidr, host)
            if self.store.create(keys.block(cidr), block.to_json()):
                self.store.put(keys.affinity(host, cidr), json.dumps({"state": "confirmed"}))
            else:
                block = self.blocks()[cidr]
        block.assign(handle, addr)
        self._save(block, handle)
        return block

    def _save(self, block: Block, handle: str) -> None:
        self.store.put(keys.block(block.cidr), block.to_json())
        held = [str(block.cidr.network_address + i) for i, h in enumerate(block.allocations) if h == handle]
        self.store.put(keys.handle(handle), json.dumps({"handleID": handle,
                                                        "block": {str(block.cidr): len(held)}}))

    def release(self, handle: str) -> list[ipaddress.IPv4Address]:
        """Free every address ``handle`` holds (the block stays with its node, as in Calico)."""
        freed: list[ipaddress.IPv4Address] = []
        for block in self.blocks().values():
            gone = block.release(handle)
            if gone:
                self.store.put(keys.block(block.cidr), block.to_json())
                freed += gone
        self.store.delete(keys.handle(handle))
        return freed
