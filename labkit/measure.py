"""Measurements a lesson puts side by side: latency, TCP throughput, bytes of overhead.

Each function drives real tools inside the lab (``ping``, ``iperf3``, a capture) and
returns plain numbers; benchmarks and comparison notebooks share them.
"""

from __future__ import annotations

import json
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
