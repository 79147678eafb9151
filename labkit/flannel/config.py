"""Flannel's network configuration and its subnet arithmetic (pure functions).

The configuration is the JSON value of ``<prefix>/config`` in etcd::

    {"Network": "10.4.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}

Optional keys, as flanneld reads them: ``SubnetMin`` / ``SubnetMax`` (the range leases
are picked from; by default the second subnet to the last, so the first is never
leased), ``Backend.VNI`` (vxlan, default 1), ``Backend.Port`` (vxlan 8472, udp 8285).
A lease is the key ``<prefix>/subnets/10.4.41.0-24`` whose value names the host.
"""

from __future__ import annotations

import ipaddress
import json
import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..cluster.agent import Seconds

BACKENDS = ("vxlan", "udp", "host-gw")
# Backends real flannel has that this lab cannot play, and why.
UNPLAYABLE = {
    "ipip": "the kernel of this machine has no ipip module",
    "wireguard": "the kernel of this machine has no wireguard module",
    "ipsec": "no IPsec daemon (strongSwan) in this lab",
    "aws-vpc": "it programs an AWS VPC's route table",
    "gce": "it programs a Google Compute Engine network's routes",
    "ali-vpc": "it programs an Alibaba Cloud VPC's route table",
    "alloc": "it only allocates subnets and moves no packets",
    "extension": "it runs external commands this lab does not ship",
}
DEFAULT_PORT = {"vxlan": 8472, "udp": 8285, "host-gw": 0}
OVERHEAD = {"vxlan": 50, "udp": 28, "host-gw": 0}


class ConfigError(ValueError):
    """The network configuration cannot be used; the message says why, like flanneld's."""


# flanneld's durations, checked alike on its command line and in Flannel.start(...):
# a lease TTL is whole seconds (an etcd lease's), at least 1 s; a bare number given as
# the renew margin counts minutes, as flanneld's -subnet-lease-renew-margin does.
LEASE_TTL = Seconds("lease TTL", least=1.0, whole=True)
RENEW_MARGIN = Seconds("lease renew margin", unit=60.0)
DEFAULT_TTL = 24 * 3600.0       # flanneld's fixed TTL
DEFAULT_MARGIN = 3600.0         # flanneld's default margin: 60 minutes


def renew_margin(ttl: float, margin: float | None) -> float:
    """The margin an agent renews its lease with: the one given (less than the TTL), else
    flanneld's 60 minutes, or two thirds of a TTL shorter than 90 minutes."""
    return margin if margin is not None else min(DEFAULT_MARGIN, ttl * 2 / 3)


def prefix_problem(prefix: object) -> str | None:
    """What is wrong with an etcd prefix (``/coreos.com/network``), or None."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/") \
            or " " in prefix or ".." in prefix.split("/"):
        return f"etcd prefix {prefix!r} is not a key path (a leading /, no trailing /, no spaces)"
    return None


@dataclass(frozen=True)
class NetworkConfig:
    """A parsed, checked ``<prefix>/config``."""

    network: ipaddress.IPv4Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Address
    subnet_max: ipaddress.IPv4Address
    backend: str
    vni: int = 1
    port: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def subnet_size(self) -> int:
        return 1 << (32 - self.subnet_len)

    def candidates(self) -> list[ipaddress.IPv4Network]:
        """Every subnet that may be leased, from SubnetMin to SubnetMax."""
        first, last, size = int(self.subnet_min), int(self.subnet_max), self.subnet_size
        return [ipaddress.IPv4Network((n, self.subnet_len)) for n in range(first, last + 1, size)]

    def contains(self, subnet: ipaddress.IPv4Network) -> bool:
        """True if ``subnet`` could be a lease of this network (inside the range, right size)."""
        return (subnet.prefixlen == self.subnet_len and subnet.subnet_of(self.network)
                and int(self.subnet_min) <= int(subnet.network_address) <= int(self.subnet_max))


def _net(text: Any, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(text), strict=True)
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r} is not an IPv4 network ({exc})") from None


def _addr(text: Any, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(text))
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not an IPv4 address") from None


def parse_config(text: str) -> NetworkConfig:
    """Parse and check the JSON of ``<prefix>/config``; :class:`ConfigError` says what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"invalid JSON in the network config: {exc.args[0]} "
                          f"(got {text.strip()[:80]!r})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the network config must be a JSON object, got {text.strip()[:80]!r}")
    if "Network" not in raw:
        raise ConfigError('please define a correct Network parameter inside the config '
                          '(e.g. "Network": "10.4.0.0/16")')
    network = _net(raw["Network"], "Network")
    subnet_len = raw.get("SubnetLen", 0)
    if not isinstance(subnet_len, int) or isinstance(subnet_len, bool) or subnet_len < 0:
        raise ConfigError(f"SubnetLen must be a whole number of bits, got {subnet_len!r}")
    if subnet_len:
        if subnet_len > 30:
            raise ConfigError(f"SubnetLen {subnet_len} must be less than /31")
        if subnet_len < network.prefixlen + 2:
            raise ConfigError(f"Network {network} must be able to accommodate at least four "
                              f"subnets of SubnetLen /{subnet_len} (use a SubnetLen of at least "
                              f"/{network.prefixlen + 2}, or a larger Network)")
    else:
        if network.prefixlen > 28:
            raise ConfigError(f"Network {network} is too small: the minimum useful network prefix is /28")
        subnet_len = 24 if network.prefixlen <= 22 else network.prefixlen + 2
    size = 1 << (32 - subnet_len)
    low = int(network.network_address) + size
    high = int(network.broadcast_address) + 1 - size
    smin = _addr(raw["SubnetMin"], "SubnetMin") if "SubnetMin" in raw else ipaddress.IPv4Address(low)
    smax = _addr(raw["SubnetMax"], "SubnetMax") if "SubnetMax" in raw else ipaddress.IPv4Address(high)
    for name, value in (("SubnetMin", smin), ("SubnetMax", smax)):
        if value not in network:
            raise ConfigError(f"{name} {value} is not in the range of the Network {network}")
        if int(value) % size:
            raise ConfigError(f"{name} {value} is not on a SubnetLen (/{subnet_len}) boundary")
    if int(smin) > int(smax):
        raise ConfigError(f"SubnetMin {smin} is above SubnetMax {smax}")
    backend = raw.get("Backend") or {}
    if not isinstance(backend, dict):
        raise ConfigError(f'"Backend" must be an object such as {{"Type": "vxlan"}}, got {backend!r}')
    kind = str(backend.get("Type", "udp")).lower()
    if kind not in BACKENDS:
        why = UNPLAYABLE.get(kind)
        if why:
            raise ConfigError(f"backend type {kind!r} cannot run in this lab: {why}; "
                              f"use one of {', '.join(BACKENDS)}")
        raise ConfigError(f"unknown backend type: {kind} (use one of {', '.join(BACKENDS)})")
    vni = backend.get("VNI", 1)
    if kind == "vxlan" and (not isinstance(vni, int) or not 0 < vni < 1 << 24):
        raise ConfigError(f"VNI {vni!r} is out of range: a VXLAN network identifier is 1 to 16777215")
    port = backend.get("Port", 0)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"Port {port!r} is not a UDP port (0 to 65535)")
    return NetworkConfig(network, subnet_len, smin, smax, kind, vni if kind == "vxlan" else 0,
                         port, raw)


def subnet_key(subnet: ipaddress.IPv4Network) -> str:
    """``10.4.41.0/24`` -> ``10.4.41.0-24`` (the last part of a lease's key)."""
    return f"{subnet.network_address}-{subnet.prefixlen}"


def parse_subnet_key(key: str) -> ipaddress.IPv4Network | None:
    """The subnet named by a lease key (``.../subnets/10.4.41.0-24``), or None."""
    last = key.rstrip("/").rsplit("/", 1)[-1]
    addr, _, bits = last.partition("-")
    try:
        return ipaddress.IPv4Network(f"{addr}/{int(bits)}")
    except ValueError:
        return None


def pick_subnet(config: NetworkConfig, taken: Iterable[ipaddress.IPv4Network],
                rng: random.Random | None = None) -> ipaddress.IPv4Network | None:
    """A random free subnet of the range (as flanneld: never simply the first), or None."""
    used = {int(s.network_address) for s in taken}
    free = [s for s in config.candidates() if int(s.network_address) not in used]
    if not free:
        return None
    return (rng or random.SystemRandom()).choice(free[:100] if len(free) > 100 else free)


def lease_value(public_ip: str, backend: str, backend_data: dict[str, Any] | None) -> str:
    """The JSON a lease key holds, as flanneld writes it."""
    return json.dumps({"PublicIP": public_ip, "PublicIPv6": None, "BackendType": backend,
                       "BackendData": backend_data}, separators=(",", ":"))


def subnet_env(config: NetworkConfig, subnet: ipaddress.IPv4Network, mtu: int, ipmasq: bool) -> str:
    """The text of ``/run/flannel/subnet.env`` (the subnet's ``.1`` is the bridge's address)."""
    return (f"FLANNEL_NETWORK={config.network}\n"
            f"FLANNEL_SUBNET={subnet.network_address + 1}/{subnet.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\n"
            f"FLANNEL_IPMASQ={'true' if ipmasq else 'false'}\n")


def parse_subnet_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines into a dict (what ``source subnet.env`` gives a shell)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value
    return out
