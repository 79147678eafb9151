"""How kube-proxy's two modes scale with the number of Services, measured for real.

For each size N: N ClusterIP Services with a few endpoints each are given to the running
kube-proxy; we record the time its sync took (its own ``SyncProxyRules complete
elapsed=...`` log line: render + ``iptables-restore`` or ``nft -f``), then open new
TCP connections from a pod to the *last* Service added, whose endpoints are real pods.
In iptables mode a new connection walks KUBE-SERVICES rule by rule, so the last Service
is the slowest to find; in nftables mode one verdict-map lookup finds any Service.
Used by ``bench/services.py`` and by notebook 41.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Sequence

from .control_plane import Kubernetes
from .services import Endpoint, ServicePort


def fill(k8s: Kubernetes, count: int, *, endpoints_each: int = 3, last: Sequence[str] = ()) -> str:
    """Replace every Service by ``count`` Services ``svc-0`` ..; the last one's endpoints
    are ``last`` (real pod IPs). Returns the last Service's ClusterIP."""
    for key in list(k8s.services.services):
        ns, name = key.split("/")
        k8s.services.delete(name, ns)
    if count == 0:
        return ""
    k8s.services._cursor = 0
    fake = ipaddress.ip_network("10.244.200.0/22")
    base = int(fake.network_address) + 1
    cluster_ip = ""
    for i in range(count):
        svc = k8s.services.create(f"svc-{i}", ports=[ServicePort(80, 8080)])
        if i == count - 1 and last:
            eps = [Endpoint(ip) for ip in last]
        else:
            eps = [Endpoint(str(ipaddress.ip_address(base + (i * endpoints_each + j) % 1000)))
                   for j in range(endpoints_each)]
        k8s.services.set_endpoints(svc, eps)
        cluster_ip = svc.cluster_ip
    return cluster_ip


def last_sync_ms(k8s: Kubernetes, node: str) -> float:
    """The ``elapsed`` of kube-proxy's last complete sync on ``node``, in milliseconds."""
    found = re.findall(r'"SyncProxyRules complete" elapsed="([\d.]+)ms"', k8s.proxy_log(node))
    return float(found[-1]) if found else float("nan")


def measure(k8s: Kubernetes, client: Any, servers: Sequence[Any], sizes: Sequence[int],
            modes: Sequence[str] = ("iptables", "nftables"), connections: int = 200,
            timeout: float = 300.0, rounds: int = 3) -> list[dict[str, Any]]:
    """Rows ``{mode, services, sync_ms, connect_us, direct_us, ratio}`` for each mode and size.

    ``connect_us`` is the median time of one new connection (connect + one reply) to the
    last Service; ``direct_us`` the same straight to a pod IP, measured alongside (the
    best of ``rounds`` alternating rounds each); ``replies`` counts the answered ones.
    """
    node = client.kubelet.name
    rows: list[dict[str, Any]] = []
    for mode in modes:
        fill(k8s, 0)  # each mode starts from an empty rule set
        k8s.start_proxy(mode, sync_period=3600, timeout=timeout)
        for n in sizes:
            cip = fill(k8s, n, last=[s.ip for s in servers])
            k8s.sync(timeout=timeout)
            sync_ms = last_sync_ms(k8s, node)
            client.hit(cip, 80, count=20)  # warm up: ARP, caches
            # Alternate the two paths in a few rounds and keep each one's best median: a
            # shared machine's load comes in bursts, and should not land on one side only.
            via_us = direct_us = float("inf")
            ok = 0
            for _ in range(rounds):
                via = client.hit(cip, 80, count=connections // rounds)
                direct = client.hit(servers[0].ip, 8080, count=connections // rounds)
                ok += sum(via["replies"].values())
                via_us = min(via_us, float(via["median_us"] or "inf"))
                direct_us = min(direct_us, float(direct["median_us"] or "inf"))
            rows.append({"mode": mode, "services": n, "sync_ms": round(sync_ms, 1),
                         "connect_us": round(via_us, 1), "direct_us": round(direct_us, 1),
                         "ratio": round(via_us / direct_us, 2), "replies": ok})
    k8s.stop_proxy()
    return rows
