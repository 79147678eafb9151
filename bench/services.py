"""Benchmark: kube-proxy's iptables mode against its nftables mode, 10 to 5000 Services.

One lab: a one-node cluster (``node1``), two echo pods and a client pod. For each mode
(``iptables``, ``nftables``) and each size N, N ClusterIP Services with three endpoints
each are handed to the running kube-proxy (``labkit.kubernetes.proxy``, a lab process);
the last Service's endpoints are the two real pods. Printed per row:

* ``sync_ms``: kube-proxy's own time for that full sync (its ``SyncProxyRules complete
  elapsed=`` log line: render, ``iptables-restore`` or ``nft``);
* ``connect_us``: the median time of a new TCP connection (connect + one reply) from
  the client pod to the *last* Service added; ``direct_us``: the same straight to a pod
  IP, measured just after (the comparison, same process tree); ``ratio`` = their ratio;
* then, side by side, nftables / iptables for both numbers at each size.

In iptables mode a new connection walks KUBE-SERVICES rule by rule to the last
Service; in nftables mode one verdict-map lookup finds it. A lab's netlink socket is
capped at 208 KiB per transaction, so big syncs are sent in several transactions
(``labkit/kubernetes/_batches.py``): sync times include that.

    .venv/bin/python bench/services.py [--sizes 10,100,1000,5000] [--modes iptables,nftables]
                                       [--connections 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from labkit import Lab
from labkit.cluster import Cluster
from labkit.kubernetes import Kubernetes
from labkit.kubernetes.scaling import measure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--modes", default="iptables,nftables")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir, Lab("bench-services", workdir=workdir) as lab:
        cluster = Cluster(lab, nodes=["node1"], store=None)
        k8s = Kubernetes(cluster.nodes)
        servers = [k8s.run_pod(f"web-{i}", node="node1") for i in (1, 2)]
        client = k8s.run_pod("client", node="node1", echo_port=None)
        rows = measure(k8s, client, servers, sizes, modes, connections=args.connections,
                       timeout=1800)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'mode':9} {'services':>8} {'sync ms':>9} {'connect us':>11} {'direct us':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['mode']:9} {r['services']:>8} {r['sync_ms']:>9.1f} {r['connect_us']:>11.1f} "
              f"{r['direct_us']:>10.1f} {r['ratio']:>6.2f}")
    if set(modes) >= {"iptables", "nftables"}:
        by = {(r["mode"], r["services"]): r for r in rows}
        print("\nnftables / iptables, same size:")
        print(f"{'services':>8} {'sync':>7} {'connect':>8}")
        for n in sizes:
            ipt, nft = by[("iptables", n)], by[("nftables", n)]
            print(f"{n:>8} {nft['sync_ms'] / ipt['sync_ms']:>7.2f} "
                  f"{nft['connect_us'] / ipt['connect_us']:>8.2f}")
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
