"""Measurements a lesson puts side by side: latency, TCP throughput, bytes of overhead.

Each function drives real tools inside the lab (``ping``, ``iperf3``, a capture) and
returns plain numbers; benchmarks and comparison notebooks share them. Throughput
varies from run to run on a shared machine: :func:`throughput_runs` gives the median
and the spread of several. :func:`path_mtu` measures what crosses a path instead of
reading interface settings.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from .errors import CommandFailed
from .node import Node
from .results import PingResult


def latency(client: Node, dst: str, *, count: int = 20, interval: float = 0.01) -> PingResult:
    """``ping -c COUNT -i INTERVAL DST`` after one warm-up ping (ARP, learning, daemons)."""
    client.ping(dst, count=1)
    return client.ping(dst, count=count, interval=interval)


def iperf3(client: Node, server: Node, dst: str, *, seconds: float = 2.0,
           args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run an ``iperf3`` server on ``server`` and a client on ``client``; iperf3's JSON report."""
    daemon = server.spawn(["iperf3", "-s", "-1", "--forceflush"])
    try:
        daemon.wait_for_output("Server listening", timeout=5)
        out = client.run(["iperf3", "-c", dst, "-t", str(seconds), "-J", *args],
                         timeout=seconds + 20)
    finally:
        daemon.stop()
    data = json.loads(out.stdout or "{}")
    if "error" in data or not out.ok:
        raise CommandFailed(f"iperf3 from {client.name} to {dst}: {data.get('error', out.stderr)}",
                            returncode=out.returncode, stdout=out.stdout, stderr=out.stderr,
                            obj=client.name, op="iperf3",
                            remedy="check that the two nodes can ping each other first")
    return data


def throughput_mbit(client: Node, server: Node, dst: str, *, seconds: float = 2.0) -> float:
    """TCP throughput from ``client`` to ``dst`` (on ``server``) in Mbit/s, as iperf3 received it."""
    report = iperf3(client, server, dst, seconds=seconds)
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6


@dataclass(frozen=True)
class Spread:
    """Several runs of one measurement: ``median``, ``low``, ``high`` and every value."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def __str__(self) -> str:
        return f"{self.median:.1f} (runs {self.low:.1f}-{self.high:.1f}, n={len(self.values)})"


def throughput_runs(client: Node, server: Node, dst: str, *, runs: int = 3, seconds: float = 1.0) -> Spread:
    """TCP throughput (Mbit/s) measured ``runs`` times: one run alone can reorder a ranking."""
    return Spread(tuple(throughput_mbit(client, server, dst, seconds=seconds) for _ in range(runs)))


def path_mtu(client: Node, dst: str, *, low: int = 576, high: int = 1500, wait: float = 1.0) -> int:
    """The largest IPv4 packet that reaches ``dst`` whole: ``ping -M do -s SIZE`` by bisection.

    ``-M do`` sets Don't Fragment, so a packet too big for any link on the way is
    dropped (or refused at once) instead of being cut up. The configuration (an
    interface's ``mtu``) says what a node *sends*; this says what arrives (IP packet =
    SIZE + 28 bytes of IPv4 and ICMP headers). A probe that gets no reply is tried once
    more before the size is called too big, since a loaded machine can lose one; a size
    refused locally or by a router ("frag needed") is too big at once. Returns 0 if not
    even ``low`` bytes get through.
    """
    def fits(size: int) -> bool:
        for _ in range(2):
            probe = client.run(["ping", "-n", "-c", "1", "-W", str(wait), "-M", "do",
                                "-s", str(size - 28), dst], timeout=wait + 10)
            if probe.ok:
                return True
            said = (probe.stdout + probe.stderr).lower()
            if "too long" in said or "frag needed" in said:
                return False
        return False

    client.ping(dst, count=3, wait=2)  # warm up: ARP, bridge learning, a router's neighbour entry
    if not fits(low):
        return 0
    while low < high:  # invariant: low fits; bisect towards the largest that fits
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def overhead_bytes(underlay: Node, ifname: str, client: Node, dst: str,
                   *, filter: str | None = None) -> int:
    """Bytes a tunnel adds per packet, read from a capture of one ping on the underlay.

    0 when the packets cross the underlay unwrapped.
    """
    from .capture import Capture

    with Capture(underlay, ifname, filter=filter) as cap:
        client.ping(dst, count=1)
    table = cap.table()
    icmp = table[table["stack"].str.endswith("icmp")]
    values = icmp["overhead_bytes"].dropna()
    return int(values.max()) if len(values) else 0
