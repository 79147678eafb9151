"""Benchmark: Flannel on N nodes against static routes written directly by labkit.

For each N (default 3, 10, 30), in this process tree, one after the other:

* **flannel**: build the cluster (``Cluster.sized``), start the real etcd, write the
  config, start N flanneld agents (vxlan), give each node a docker0 from its subnet.env,
  and wait until every node reaches every other node's docker0 (a ping across, all
  pairs at once): *up*. Then kill one agent (SIGKILL) and read, from each other agent's
  own log line ("removing subnet", glog time), when it dropped the dead node's route:
  *kill->first* and *kill->last* (the lease runs out between 2/3 TTL and TTL after the
  kill, as flanneld renews every TTL/3), and *spread* (first to last node: how long the
  news takes to reach every node once etcd has deleted the key).
* **static** (the floor): the same cluster and bridges, the same subnets, every route
  written by labkit in one batch (``Cluster.static_routes``), the same all-pairs ping;
  its *static delete* is the time labkit takes to delete the dead node's route on every
  other node (one batch): the floor for *spread*.

It prints each time and the ratios flannel/static.

    .venv/bin/python bench/cluster.py [--sizes 3,10,30] [--ttl 2]
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import time
from datetime import datetime
from typing import Any

from labkit import Lab
from labkit.cluster import Cluster
from labkit.flannel import Flannel


def wait_for(predicate: Any, timeout: float, step: float = 0.02) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError(f"benchmark condition not reached; pairs still failing: "
                               f"{len(LAST_MISSING)}, e.g. {LAST_MISSING[:5]} (a loaded machine, "
                               "or a full machine-wide ARP table: see labkit doctor)")
        time.sleep(step)


LAST_MISSING: list[tuple[str, str]] = []


def all_reach(cluster: Cluster, bips: dict[str, str]) -> bool:
    targets = {name: str(ipaddress.ip_interface(bip).ip) for name, bip in bips.items()}
    reach = cluster.ping_all(targets, sources=list(bips), count=1, wait=1)
    LAST_MISSING[:] = [pair for pair, ok in reach.items() if not ok]
    return not LAST_MISSING


def flannel_run(n: int, ttl: float) -> dict[str, float]:
    t0 = time.perf_counter()
    with Lab("bench-flannel") as lab:
        cluster = Cluster.sized(lab, n)
        cluster.start_etcd()
        flannel = Flannel(cluster)
        flannel.configure("10.4.0.0/16", backend="vxlan")
        flannel.start_all(ttl=ttl, resync=3600)
        for m in cluster.nodes:
            flannel.wait_for_lease(m, timeout=120)
        flannel.wait_converged(timeout=120)
        bips = {m.name: flannel.docker_bridge(m) for m in cluster.nodes}
        wait_for(lambda: all_reach(cluster, bips), timeout=120, step=0.1)
        up = time.perf_counter() - t0
        victim = cluster.nodes[-1]
        subnet = str(ipaddress.ip_interface(bips[victim.name]).network)
        others = [m for m in cluster.nodes if m is not victim]
        t_kill = time.time()
        flannel.agents[victim.name].signal(signal.SIGKILL)
        wait_for(lambda: all(subnet not in {r.dst for r in m.routes("inet")} for m in others),
                 timeout=ttl + 60, step=0.05)
        # when each agent removed the route: its own log line (glog time), not our polling
        removed = [glog_time(line) for m in others for line in flannel.log(m).splitlines()
                   if f"removing subnet: {subnet}" in line]
    return {"up": up, "first": min(removed) - t_kill, "last": max(removed) - t_kill,
            "spread": max(removed) - min(removed)}


def glog_time(line: str) -> float:
    """The wall-clock time of a glog line (``I1130 09:27:35.489673 ...``), this year."""
    stamp = datetime.strptime(f"{datetime.now().year} {line[1:21]}", "%Y %m%d %H:%M:%S.%f")
    return stamp.timestamp()


def static_run(n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with Lab("bench-static") as lab:
        cluster = Cluster.sized(lab, n)
        subnets = {m.name: f"10.4.{i}.0/24" for i, m in enumerate(cluster.nodes, 1)}
        bips = {name: f"10.4.{i}.1/24" for i, name in enumerate(subnets, 1)}
        with lab.batch():
            for m in cluster.nodes:
                m.add_bridge("docker0", address=bips[m.name], mtu=1500)
        cluster.static_routes(subnets)
        wait_for(lambda: all_reach(cluster, bips), timeout=120, step=0.1)
        up = time.perf_counter() - t0
        victim = cluster.nodes[-1]
        t_kill = time.perf_counter()
        with lab.batch():
            for m in cluster.nodes[:-1]:
                m.del_route(subnets[victim.name])
        drop = time.perf_counter() - t_kill
    return {"up": up, "delete": drop}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,10,30")
    parser.add_argument("--ttl", type=float, default=3.0, help="flannel lease TTL, seconds")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"lease TTL {args.ttl:g} s (flanneld renews every TTL/3: a killed agent's lease ends "
          f"between 2/3 TTL and TTL after the kill)")
    print(f"{'N':>4} {'flannel up':>11} {'static up':>10} {'ratio':>6} | {'kill->first':>11} "
          f"{'kill->last':>10} {'spread':>8} {'static delete':>13} {'ratio':>6}")
    last = ""
    for n in sizes:
        f = flannel_run(n, args.ttl)
        s = static_run(n)
        up_ratio = f["up"] / s["up"]
        spread_ratio = f["spread"] / s["delete"]
        print(f"{n:>4} {f['up']:>10.2f}s {s['up']:>9.2f}s {up_ratio:>6.1f} | {f['first']:>10.2f}s "
              f"{f['last']:>9.2f}s {f['spread']:>7.3f}s {s['delete']:>12.4f}s {spread_ratio:>6.0f}",
              flush=True)
        last = (f"N={n}: flannel/static up {up_ratio:.1f}; routes gone {f['last']:.2f} s after the kill "
                f"(TTL {args.ttl:g} s); spread across nodes / static delete {spread_ratio:.0f}")
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
