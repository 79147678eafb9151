"""kube-proxy's iptables mode: the rules it writes, rendered from the Service state.

:func:`render` returns ``iptables-restore`` input for the ``filter`` and ``nat`` tables,
with kube-proxy's chains (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*, KUBE-EXT-*,
KUBE-NODEPORTS, KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-FORWARD, KUBE-EXTERNAL-SERVICES),
the same comments and the same ``statistic --mode random --probability 1/(n-i)``
choice. :data:`JUMPS` are the rules kube-proxy makes sure exist in the built-in chains
(it inserts them once, with ``iptables -I``, rather than rewriting the built-ins).
Every sync rewrites every kube chain from the whole state (``iptables-restore
--noflush``: declaring a chain flushes it) and deletes the chains no longer needed
(``-X``), as kube-proxy does on a full sync.
"""

from __future__ import annotations

from typing import Iterable

from . import _batches, names
from .services import Service, ServicePort

MASQ_MARK = "0x4000"

# (table, built-in chain, rule spec after "-A CHAIN"): inserted at the top, once.
JUMPS: tuple[tuple[str, str, str], ...] = (
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    ("filter", "INPUT", '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS'),
    ("filter", "INPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("filter", "FORWARD", '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    ("filter", "OUTPUT", '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "POSTROUTING", '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
)

FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
                 "KUBE-PROXY-FIREWALL")
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")


def _q(text: str) -> str:
    return f'"{text}"' if " " in text else text


def render(services: Iterable[Service], *, cluster_cidr: str,
           existing_nat_chains: Iterable[str] = ()) -> str:
    """The ``iptables-restore`` input of one full sync (as one text; see :func:`transactions`)."""
    return "".join(transactions(services, cluster_cidr=cluster_cidr,
                                existing_nat_chains=existing_nat_chains))


def transactions(services: Iterable[Service], *, cluster_cidr: str,
                 existing_nat_chains: Iterable[str] = ()) -> list[str]:
    """One full sync as ``iptables-restore --noflush`` inputs, each run by its own process."""
    filt: list[str] = [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]
    nat_chains: list[str] = list(NAT_CHAINS)
    nat: list[str] = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    svc_rules: list[str] = []
    for svc in services:
        for port in svc.ports:
            _service_port(svc, port, cluster_cidr, filt, nat_chains, nat, svc_rules)
    svc_rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                     'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
                     '-j KUBE-NODEPORTS')
    keep = set(nat_chains)
    stale = sorted(c for c in existing_nat_chains
                   if c.startswith(("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-")) and c not in keep)
    out = ["*filter"]
    out += [f":{c} - [0:0]" for c in FILTER_CHAINS]
    out += filt
    out.append("COMMIT")
    texts = []
    # The nat table in as many transactions as a lab's netlink socket needs (_batches):
    # chains declared (created or flushed) first, filled next, and KUBE-SERVICES, filled
    # last, makes the new rules reachable.
    declared = [f":{c} - [0:0]" for c in nat_chains + stale]
    for part in _batches.split(declared + nat + svc_rules + [f"-X {c}" for c in stale],
                               _batches.IPTABLES_BUDGET):
        out += ["*nat", *part, "COMMIT"]
        texts.append("\n".join(out) + "\n")
        out = []
    return texts


def _service_port(svc: Service, port: ServicePort, cluster_cidr: str, filt: list[str],
                  nat_chains: list[str], nat: list[str], svc_rules: list[str]) -> None:
    pname = svc.port_name(port)
    proto = port.protocol.lower()
    match = f"-p {proto} -m {proto} --dport {port.port}"
    ready = [e for e in svc.endpoints if e.ready]
    if not ready:
        comment = _q(f"{pname} has no endpoints")
        filt.append(f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p {proto} -m comment --comment "
                    f"{comment} -m {proto} --dport {port.port} -j REJECT --reject-with icmp-port-unreachable")
        if port.node_port:
            filt.append(f"-A KUBE-EXTERNAL-SERVICES -p {proto} -m comment --comment {comment} "
                        f"-m addrtype --dst-type LOCAL -m {proto} --dport {port.node_port} "
                        f"-j REJECT --reject-with icmp-port-unreachable")
        return
    svc_chain = names.svc_chain(pname, proto)
    nat_chains.append(svc_chain)
    cluster_comment = _q(f"{pname} cluster IP")
    svc_rules.append(f"-A KUBE-SERVICES -d {svc.cluster_ip}/32 -m comment --comment "
                     f"{cluster_comment} {match} -j {svc_chain}")
    if port.node_port:
        ext_chain = names.ext_chain(pname, proto)
        nat_chains.append(ext_chain)
        nat.append(f"-A KUBE-NODEPORTS -p {proto} -m comment --comment {_q(pname)} "
                   f"-m {proto} --dport {port.node_port} -j {ext_chain}")
        nat.append(f"-A {ext_chain} -m comment --comment "
                   f"{_q(f'masquerade traffic for {pname} external destinations')} -j KUBE-MARK-MASQ")
        nat.append(f"-A {ext_chain} -j {svc_chain}")
    nat.append(f"-A {svc_chain} ! -s {cluster_cidr} -d {svc.cluster_ip}/32 -m comment --comment "
               f"{cluster_comment} {match} -j KUBE-MARK-MASQ")
    n = len(ready)
    for i, ep in enumerate(ready):
        endpoint = f"{ep.ip}:{port.target}"
        sep = names.sep_chain(pname, proto, endpoint)
        nat_chains.append(sep)
        pick = "" if i == n - 1 else f"-m statistic --mode random --probability {1.0 / (n - i):0.10f} "
        nat.append(f"-A {svc_chain} -m comment --comment {_q(f'{pname} -> {endpoint}')} {pick}-j {sep}")
        nat.append(f"-A {sep} -s {ep.ip}/32 -m comment --comment {_q(pname)} -j KUBE-MARK-MASQ")
        nat.append(f"-A {sep} -p {proto} -m comment --comment {_q(pname)} -m {proto} "
                   f"-j DNAT --to-destination {endpoint}")


def cleanup(existing: dict[str, Iterable[str]]) -> str:
    """``kube-proxy --cleanup``: flush, then delete, every KUBE-* chain of each table
    (``existing``: chain names per table, from ``iptables-save``); the jumps to them from
    the built-in chains must be gone first."""
    out = []
    for table, chains in existing.items():
        kube = [c for c in chains if c.startswith("KUBE-")]
        if kube:
            out += [f"*{table}"] + [f":{c} - [0:0]" for c in kube] + [f"-X {c}" for c in kube]
            out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""
