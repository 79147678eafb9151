"""Benchmark: the orchestrator networks of the course side by side (curriculum D5).

Each network (``labkit.comparison.NETWORKS``) is built in turn on the same cluster shape
(node1 .101, node2 .102 on one underlay, etcd in ``host`` .100 where the system uses one)
with a container on each worker, and measured with real traffic from node1's container
to node2's: bytes of overhead from a capture on node2's card, configured and measured
path MTU (``ping -M do``), RTT (``ping -c 20 -i 0.01``), TCP throughput (``iperf3 -t
SECONDS``, ``--runs`` times: median and spread), setup time. The first row is the
baseline measured in the same process tree: node1 to node2 over the underlay itself,
with no container network; the ratio columns compare every network with it.

This machine is shared: keep runs few and short.

    .venv/bin/python bench/orchestrators.py [--networks "Weave,Romana"] [--runs 5]
                                            [--seconds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from labkit.comparison import NETWORKS, available, compare

COLUMNS = [("network", "{:<15}"), ("overhead_bytes", "{:>8}"), ("configured_mtu", "{:>8}"),
           ("path_mtu", "{:>8}"), ("rtt_ms", "{:>8.3f}"), ("tcp_mbit_median", "{:>9.0f}"),
           ("tcp_mbit_min", "{:>8.0f}"), ("tcp_mbit_max", "{:>8.0f}"), ("setup_s", "{:>7.2f}")]
HEADERS = ["network", "overhead", "mtu", "path mtu", "rtt ms", "Mbit/s", "min", "max", "setup s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(n for n in NETWORKS if available(n)[0]),
                        help=f"comma-separated, from: {', '.join(NETWORKS)} (default: those this "
                             "machine can build; Docker overlay needs root and dockerd)")
    parser.add_argument("--runs", type=int, default=5, help="iperf3 runs per network (median)")
    parser.add_argument("--seconds", type=int, default=2, help="length of each iperf3 run")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args()
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    if "underlay" not in names:
        names.insert(0, "underlay")                    # the baseline is always measured
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as workdir:
        results = compare(names, runs=args.runs, seconds=args.seconds, workdir=workdir,
                          progress=lambda n: print(f"... {n}", file=sys.stderr, flush=True))
    rows = [m.row() for m in results]
    base = next(r for r in rows if r["network"] == "underlay")
    widths = [max(len(h), len(fmt.format(rows[0][c])) if rows else 0) for h, (c, fmt) in zip(HEADERS, COLUMNS)]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(HEADERS, widths)))
          + "   rtt/underlay  tcp/underlay")
    for r in rows:
        cells = [fmt.format(r[c]) for c, fmt in COLUMNS]
        line = "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        print(f"{line}   {r['rtt_ms'] / base['rtt_ms']:>12.2f}  "
              f"{r['tcp_mbit_median'] / base['tcp_mbit_median']:>12.2f}")
    print(f"({args.runs} iperf3 runs of {args.seconds} s per network; total {time.monotonic() - started:.0f} s)")
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
