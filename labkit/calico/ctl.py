"""The IPAM half of ``calicoctl`` and of the calico-ipam plugin, run inside a machine.

Calico's IPAM runs where the workload is created (the ``calico-ipam`` plugin is executed
on the node) and talks to etcd itself; so does this::

    python -m labkit.calico.ctl --etcd-endpoints http://192.168.99.100:2379 pool add 17.2.0.0/16
    python -m labkit.calico.ctl --etcd-endpoints ... ipam assign --node node1 --handle bbox1 [--pool C] [--ip A]
    python -m labkit.calico.ctl --etcd-endpoints ... ipam release --handle bbox1
    python -m labkit.calico.ctl --etcd-endpoints ... reserve add 192.168.99.0/24 --reason underlay

It prints one JSON object: the result, or ``{"error": {...}}`` (a labkit error, rebuilt on
the notebook side by :func:`run`) with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import LabkitError, from_wire, to_wire
from .ipam import IPAM

if TYPE_CHECKING:
    from ..cluster import ClusterNode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit.calico.ctl")
    parser.add_argument("--etcd-endpoints", required=True)
    sub = parser.add_subparsers(dest="what", required=True)
    pool = sub.add_parser("pool").add_subparsers(dest="action", required=True)
    add = pool.add_parser("add")
    add.add_argument("cidr")
    add.add_argument("--block-size", type=int, default=26)
    add.add_argument("--nat-outgoing", action="store_true")
    reserve = sub.add_parser("reserve").add_subparsers(dest="action", required=True)
    reserve_add = reserve.add_parser("add")
    reserve_add.add_argument("cidr")
    reserve_add.add_argument("--reason", default="")
    ipam = sub.add_parser("ipam").add_subparsers(dest="action", required=True)
    assign = ipam.add_parser("assign")
    assign.add_argument("--node", required=True)
    assign.add_argument("--handle", required=True)
    assign.add_argument("--pool")
    assign.add_argument("--ip")
    release = ipam.add_parser("release")
    release.add_argument("--handle", required=True)
    args = parser.parse_args(argv)

    from ..cluster.etcd import EtcdClient

    store = IPAM(EtcdClient(args.etcd_endpoints))
    try:
        result: dict[str, Any]
        if args.what == "pool":
            made = store.add_pool(args.cidr, args.block_size, nat_outgoing=args.nat_outgoing)
            result = {"cidr": str(made.cidr), "block_size": made.block_size}
        elif args.what == "reserve":
            result = {"cidr": str(store.reserve(args.cidr, args.reason))}
        elif args.action == "assign":
            if args.ip:
                block = store.assign_ip(args.node, args.handle, args.ip)
                result = {"ip": args.ip, "block": str(block.cidr)}
            else:
                ip, block = store.auto_assign(args.node, args.handle, args.pool)
                result = {"ip": str(ip), "block": str(block.cidr)}
        else:
            result = {"released": [str(ip) for ip in store.release(args.handle)]}
    except LabkitError as exc:
        print(json.dumps({"error": to_wire(exc)}))
        return 2
    print(json.dumps(result))
    return 0


def run(machine: "ClusterNode", endpoint: str, *args: str) -> dict[str, Any]:
    """Run this command in ``machine`` and return its result (its error raised here)."""
    result = machine.node.run([sys.executable, "-m", "labkit.calico.ctl",
                               "--etcd-endpoints", endpoint, *args], timeout=60)
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result.check()
        raise LabkitError(f"calico ctl {' '.join(args)} printed no result: {result.stderr[-300:]}",
                          obj=machine.name, op="calico ctl") from None
    if "error" in data:
        raise from_wire(data["error"])
    return data


if __name__ == "__main__":
    sys.exit(main())
