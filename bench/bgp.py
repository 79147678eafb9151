"""Benchmark: Calico's BGP as the cluster grows, full mesh against one route reflector.

For each size N (default 5, 10, 30) and each mode it builds a fresh lab: a cluster of N
Calico nodes plus the etcd machine, one block claimed per node beforehand (calico-ipam,
no containers), then starts Calico (agents and BIRD on every node) and measures:

* **sessions**: BGP sessions Established, counted once per pair (``birdc show protocols``
  on every node); the mesh needs N(N-1)/2, the reflector N-1;
* **BIRD memory per node**: BIRD's own account (``birdc show memory``, "Total"), mean
  over the nodes and on the busiest node (in the reflector mode: the reflector);
* **convergence**: seconds from the start of Calico until every node's kernel routes
  every other node's block (``proto bird``, via the owner);
* **re-convergence**: seconds from stopping BIRD on one node (SIGTERM: it closes its
  sessions; a node that vanishes silently would keep its routes for the graceful-restart
  time instead) until no other node routes its block any more. In the reflector mode a
  client is stopped, not the reflector.

Both modes run in this one process tree, one after the other, and the mesh/reflector
ratios are printed. Times include the polling interval of the measurement (about
0.2 s plus one reading of every node's table).

    .venv/bin/python bench/bgp.py [--sizes 5,10,30] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from typing import Any

from labkit import Lab
from labkit.calico import Calico
from labkit.cluster import Cluster

_TOTAL = re.compile(r"^Total:\s+([\d.]+)\s*(B|kB|MB|GB)", re.M)
_UNITS = {"B": 1 / 1024, "kB": 1.0, "MB": 1024.0, "GB": 1024.0 * 1024}


def bird_memory_kb(calico: Calico, name: str) -> float:
    """``birdc show memory``: BIRD's total, in kB."""
    match = _TOTAL.search(calico.birdc(name, "show", "memory"))
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def established_pairs(calico: Calico) -> int:
    seen = set()
    ips = {m.ip.replace(".", "_"): m.name for m in calico.cluster.nodes}
    for node, sessions in calico.sessions().items():
        for proto, info in sessions.items():
            if info.startswith("Established"):
                peer = ips.get(proto.split("_", 1)[1])
                seen.add(frozenset((node, peer)))
    return len(seen)


def wait(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not done after {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - start


def run(n: int, mode: str, workdir: str) -> dict[str, Any]:
    with Lab(f"bgp-{mode}-{n}", workdir=workdir) as lab:
        cluster = Cluster.sized(lab, n)
        reflectors = ["node1"] if mode == "reflector" else []
        calico = Calico(cluster, route_reflectors=reflectors, resync=30.0)
        for machine in cluster.nodes:
            calico.assign_address(machine, f"bench.{machine.name}")
        started = time.monotonic()
        calico.start(wait=False, timeout=300)
        wait(lambda: not calico.missing_routes(), timeout=600)
        converge = time.monotonic() - started
        calico.wait_established(timeout=300)
        sessions = established_pairs(calico)
        memory = {m.name: bird_memory_kb(calico, m.name) for m in cluster.nodes}
        victim = cluster.nodes[-1].name
        stopped = time.monotonic()
        calico.stop_bird(victim)
        calico.wait_withdrawn(victim, timeout=600)
        reconverge = time.monotonic() - stopped
        busiest = "node1" if mode == "reflector" else max(memory, key=memory.get)
        return {"n": n, "mode": mode, "sessions": sessions,
                "memory_kb_mean": statistics.mean(memory.values()),
                "memory_kb_busiest": memory[busiest], "converge_s": converge,
                "reconverge_s": reconverge}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="5,10,30")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-bgp-") as workdir:
        for n in (int(s) for s in args.sizes.split(",")):
            for mode in ("mesh", "reflector"):
                row = run(n, mode, workdir)
                rows.append(row)
                if not args.json:
                    print(f"N={n:<3} {mode:<9} sessions {row['sessions']:>4}  BIRD memory/node "
                          f"{row['memory_kb_mean']:7.1f} kB (busiest {row['memory_kb_busiest']:7.1f})  "
                          f"converge {row['converge_s']:6.2f} s  re-converge {row['reconverge_s']:6.2f} s",
                          flush=True)
            mesh, rr = rows[-2], rows[-1]
            if not args.json:
                print(f"N={n:<3} mesh/reflector: sessions {mesh['sessions'] / rr['sessions']:.1f}x, "
                      f"memory/node {mesh['memory_kb_mean'] / rr['memory_kb_mean']:.2f}x "
                      f"(busiest {mesh['memory_kb_busiest'] / rr['memory_kb_busiest']:.2f}x), "
                      f"converge {mesh['converge_s'] / rr['converge_s']:.2f}x, "
                      f"re-converge {mesh['reconverge_s'] / rr['reconverge_s']:.2f}x", flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
