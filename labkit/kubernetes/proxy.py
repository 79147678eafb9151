"""kube-proxy, played faithfully: ``python -m labkit.kubernetes.proxy --proxy-mode iptables``.

There is no kube-proxy binary on these machines, so this lab process does its job: it
reads the Services and endpoints (a JSON snapshot the notebook-side API server writes
into the machine's state folder), and on every change, and every ``--sync-period``
seconds, rewrites *all* its rules from that state (a full sync) with the real tools,
``iptables-restore --noflush`` or ``nft -f``, logging in kube-proxy's klog format.
Rules stay in place when it exits, as the real one leaves them; ``--cleanup`` removes
them (``kube-proxy --cleanup``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..cluster.agent import RESYNC
from . import iptables_rules, nftables_rules
from .services import Service

MODES = ("iptables", "nftables")


def log(level: str, where: str, message: str, **fields: Any) -> None:
    """One klog line: ``I1130 09:12:03.123456    4242 proxier.go:812] "msg" key="value"``."""
    now = datetime.now()
    extra = "".join(f" {k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in fields.items())
    print(f"{level}{now:%m%d %H:%M:%S.%f} {os.getpid():>7} {where}] \"{message}\"{extra}", flush=True)


def run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True)


class Proxier:
    """One dataplane mode: turns the whole Service state into rules."""

    def __init__(self, mode: str, cluster_cidr: str, service_cidr: str) -> None:
        self.mode = mode
        self.cluster_cidr = cluster_cidr
        self.service_cidr = service_cidr

    def setup(self) -> None:
        """Start-up: remove the other mode's leftovers; make sure the jump rules exist."""
        if self.mode == "iptables":
            run(["nft", "-f", "-"], nftables_rules.cleanup())
            for table, chain, spec in iptables_rules.JUMPS:
                args = _split(spec)
                # The chains must exist before a rule can jump to them.
                run(["iptables", "-w", "-t", table, "-N", args[-1]])
                if run(["iptables", "-w", "-t", table, "-C", chain, *args]).returncode != 0:
                    run(["iptables", "-w", "-t", table, "-I", chain, *args])
        else:
            self.cleanup_iptables()

    def cleanup_iptables(self) -> None:
        for table, chain, spec in iptables_rules.JUMPS:
            run(["iptables", "-w", "-t", table, "-D", chain, *_split(spec)])
        text = iptables_rules.cleanup({t: _chains(t) for t in ("nat", "filter")})
        if text:
            run(["iptables-restore", "--noflush"], text)

    def sync(self, services: list[Service]) -> None:
        """One full sync: every rule rewritten from ``services`` (see ``_batches`` for why
        a big sync is several transactions, sent by one ``iptables-restore`` / ``nft``)."""
        if self.mode == "iptables":
            texts = iptables_rules.transactions(services, cluster_cidr=self.cluster_cidr,
                                                existing_nat_chains=_chains("nat"))
            result = run(["iptables-restore", "--noflush"], "".join(texts))
            failed = result.returncode != 0
        else:
            texts = nftables_rules.transactions(services, cluster_cidr=self.cluster_cidr,
                                                service_cidr=self.service_cidr)
            # `nft -i` runs each input line as one transaction, in one process.
            script = "".join("; ".join(t.strip().splitlines()) + "\n" for t in texts)
            result = run(["nft", "-i"], script)
            failed = result.returncode != 0 or "Error:" in result.stderr
        if failed:
            raise RuntimeError(result.stderr.strip()[-2000:] or f"exit status {result.returncode}")

    def cleanup(self) -> None:
        self.cleanup_iptables()
        run(["nft", "-f", "-"], nftables_rules.cleanup())


def _split(spec: str) -> list[str]:
    import shlex
    return shlex.split(spec)


def _chains(table: str) -> list[str]:
    out = run(["iptables-save", "-t", table]).stdout
    return re.findall(r"^:(KUBE-[A-Z0-9-]+) ", out, re.M)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kube-proxy")
    parser.add_argument("--proxy-mode", choices=MODES, default="iptables")
    parser.add_argument("--hostname-override", default=os.uname().nodename)
    parser.add_argument("--services", required=False, help="the Services snapshot (JSON)")
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument("--sync-period", type=RESYNC, default=30.0,
                        help="full sync of every rule this often (seconds or a duration)")
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args(argv)
    proxier = Proxier(args.proxy_mode, args.cluster_cidr, "10.96.0.0/12")
    if args.cleanup:
        proxier.cleanup()
        log("I", "server.go:573", "Cleanup done, exiting")
        return 0
    if not args.services:
        parser.error("--services is required")
    running = True

    def stop(signum: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("I", "server.go:484", "kube-proxy running in single-stack mode", ipFamily="IPv4")
    log("I", "server_linux.go:69", f"Using {args.proxy_mode} Proxier",
        node=args.hostname_override)
    proxier.setup()
    path = Path(args.services)
    seen: tuple[float, int] | None = None
    last_sync = 0.0
    while running:
        time.sleep(0.05)              # first, so that no path through the loop spins
        try:
            stat = path.stat()
            stamp: tuple[float, int] | None = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            stamp = None
        due = time.monotonic() - last_sync >= args.sync_period
        if stamp is not None and (stamp != seen or due):
            seen = stamp
            last_sync = time.monotonic()
            try:
                state = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                log("E", "config.go:120", "Failed to read Services", err=str(exc))
                continue
            services = [Service.from_dict(s) for s in state.get("services", [])]
            proxier.cluster_cidr = state.get("clusterCIDR", proxier.cluster_cidr)
            proxier.service_cidr = state.get("serviceCIDR", proxier.service_cidr)
            start = time.monotonic()
            log("I", "proxier.go:797", f"Syncing {args.proxy_mode} rules")
            try:
                proxier.sync(services)
            except RuntimeError as exc:
                log("E", "proxier.go:1520", "Failed to execute restore", err=str(exc))
                continue
            endpoints = sum(len(s.endpoints) for s in services)
            log("I", "proxier.go:1535", "Reloading service rules", numServices=len(services),
                numEndpoints=endpoints)
            log("I", "proxier.go:791", "SyncProxyRules complete",
                elapsed=f"{(time.monotonic() - start) * 1000:.1f}ms",
                generation=int(state.get("generation", 0)))
    log("I", "server.go:281", "Received signal, shutting down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
