"""kube-proxy's nftables mode: one ``table ip kube-proxy`` rendered from the Service state.

The structure is kube-proxy's (pkg/proxy/nftables): base chains named ``TYPE-HOOK``
(``nat-prerouting``, ``filter-input``, ...), a ``services`` chain that makes one lookup
in the verdict maps ``service-ips`` (``ip daddr . meta l4proto . th dport``) and
``service-nodeports``, one ``service-HASH-ns/name/proto/port`` chain per service port
that picks an endpoint with ``numgen random mod N vmap { 0 : goto endpoint-..., ... }``,
and ``no-endpoint-services`` / ``no-endpoint-nodeports`` maps that reject traffic to a
Service without endpoints. The lookup is a hash map, so its cost does not grow with the
number of Services, unlike the iptables chain walk.

A sync is one ``nft -f`` transaction that replaces the table as a whole (kube-proxy
flushes and refills its chains and maps in one transaction; the resulting ruleset is
the same).
"""

from __future__ import annotations

from typing import Iterable

from . import _batches, names
from .services import Service, ServicePort

TABLE = "kube-proxy"
MASQ_MARK = "0x00004000"

# Priorities as numbers (dstnat = -100, srcnat = 100): nft 1.0 accepts the names only on
# some hooks.
BASE_CHAINS: tuple[tuple[str, str, str, str], ...] = (
    ("filter-prerouting", "filter", "prerouting", "-110"),
    ("filter-input", "filter", "input", "-110"),
    ("filter-forward", "filter", "forward", "-110"),
    ("filter-output", "filter", "output", "-110"),
    ("filter-output-post-dnat", "filter", "output", "-90"),
    ("nat-prerouting", "nat", "prerouting", "-100"),
    ("nat-output", "nat", "output", "-100"),
    ("nat-postrouting", "nat", "postrouting", "100"),
)
JUMP_CHAINS: tuple[tuple[str, str, str], ...] = (
    ("nodeport-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-input", "ct state new"),
    ("service-endpoints-check", "filter-forward", "ct state new"),
    ("service-endpoints-check", "filter-output", "ct state new"),
    ("firewall-check", "filter-prerouting", "ct state new"),
    ("firewall-check", "filter-output", "ct state new"),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new"),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new"),
)


def render(services: Iterable[Service], *, cluster_cidr: str, service_cidr: str,
           replace: bool = True) -> str:
    """The ``nft -f`` text of one full sync (as one text; see :func:`transactions`)."""
    return "".join(transactions(services, cluster_cidr=cluster_cidr, service_cidr=service_cidr,
                                replace=replace))


def transactions(services: Iterable[Service], *, cluster_cidr: str, service_cidr: str,
                 replace: bool = True) -> list[str]:
    """One full sync as several ``nft`` transactions, applied in order.

    kube-proxy sends one transaction; a lab's netlink socket takes less (see ``_batches``),
    so a big ruleset goes in several: the table and its maps first, then chains, rules,
    and last the map elements that make them reachable.
    """
    t = f"ip {TABLE}"
    out: list[str] = []
    if replace:  # "add" first so that "delete" cannot fail on the first sync
        out += [f"add table {t}", f"delete table {t}"]
    out.append(f'add table {t} {{ comment "rules for kube-proxy" ; }}')
    for name, ctype, hook, prio in BASE_CHAINS:
        out.append(f"add chain {t} {name} {{ type {ctype} hook {hook} priority {prio} ; }}")
    declared: set[str] = set()
    for dst, _, _ in JUMP_CHAINS:
        if dst not in declared:
            declared.add(dst)
            out.append(f"add chain {t} {dst}")
    for chain in ("mark-for-masquerade", "reject-chain"):
        out.append(f"add chain {t} {chain}")
    out += [
        f'add set {t} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}',
        f'add map {t} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }}',
        f'add map {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }}',
        f'add map {t} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }}',
        f'add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}',
        f'add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }}',
    ]
    rules: list[str] = []
    for dst, src, extra in JUMP_CHAINS:
        rules.append(f"add rule {t} {src} {extra + ' ' if extra else ''}jump {dst}")
    rules += [
        f"add rule {t} mark-for-masquerade mark set mark or {MASQ_MARK}",
        f"add rule {t} masquerading mark and {MASQ_MARK} == 0 return",
        f"add rule {t} masquerading mark set mark xor {MASQ_MARK}",
        f"add rule {t} masquerading masquerade fully-random",
        f'add rule {t} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
        f'add rule {t} cluster-ips-check ip daddr {{ {service_cidr} }} drop comment "Drop traffic to unallocated ClusterIPs"',
        f"add rule {t} reject-chain reject",
        f"add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
        f"add rule {t} nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",
        f"add rule {t} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
    ]
    chains: list[str] = []
    elements: list[str] = []
    for svc in services:
        elements.append(f"add element {t} cluster-ips {{ {svc.cluster_ip} }}")
        for port in svc.ports:
            _service_port(t, svc, port, cluster_cidr, chains, rules, elements)
    groups = _batches.split(out + chains + rules + elements, _batches.NFT_BUDGET)
    return ["\n".join(group) + "\n" for group in groups]


def _service_port(t: str, svc: Service, port: ServicePort, cluster_cidr: str, chains: list[str],
                  rules: list[str], elements: list[str]) -> None:
    proto = port.protocol.lower()
    pname = port.name
    key = f"{svc.cluster_ip} . {proto} . {port.port}"
    node_port = port.node_port
    ready = [e for e in svc.endpoints if e.ready]
    comment = f'comment "{svc.port_name(port)}"'
    if not ready:
        elements.append(f"add element {t} no-endpoint-services {{ {key} {comment} : goto reject-chain }}")
        if node_port:
            elements.append(f"add element {t} no-endpoint-nodeports {{ {proto} . {node_port} {comment} : goto reject-chain }}")
        return
    svc_chain = names.nft_service_chain(svc.namespace, svc.name, proto, pname)
    chains.append(f"add chain {t} {svc_chain}")
    elements.append(f"add element {t} service-ips {{ {key} : goto {svc_chain} }}")
    rules.append(f"add rule {t} {svc_chain} ip daddr {svc.cluster_ip} {proto} dport {port.port} "
                 f"ip saddr != {cluster_cidr} jump mark-for-masquerade")
    if node_port:
        ext = names.nft_external_chain(svc.namespace, svc.name, proto, pname)
        chains.append(f"add chain {t} {ext}")
        rules.append(f"add rule {t} {ext} jump mark-for-masquerade")
        rules.append(f"add rule {t} {ext} goto {svc_chain}")
        elements.append(f"add element {t} service-nodeports {{ {proto} . {node_port} : goto {ext} }}")
    picks = []
    for i, ep in enumerate(ready):
        endpoint = f"{ep.ip}:{port.target}"
        ep_chain = names.nft_endpoint_chain(svc.namespace, svc.name, proto, pname, endpoint)
        chains.append(f"add chain {t} {ep_chain}")
        rules.append(f"add rule {t} {ep_chain} ip saddr {ep.ip} jump mark-for-masquerade")
        rules.append(f"add rule {t} {ep_chain} meta l4proto {proto} dnat to {endpoint}")
        picks.append(f"{i} : goto {ep_chain}")
    rules.append(f"add rule {t} {svc_chain} numgen random mod {len(ready)} vmap {{ {', '.join(picks)} }}")


def cleanup() -> str:
    """``kube-proxy --cleanup`` in nftables mode: the table goes, with everything in it."""
    return f"add table ip {TABLE}\ndelete table ip {TABLE}\n"
