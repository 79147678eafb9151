"""flanneld's iptables rules: ``-ip-masq`` (FLANNEL-POSTRTG) and forwarding (FLANNEL-FWD).

Traffic inside the flannel network keeps its addresses; traffic from a container to the
outside world leaves masqueraded behind the host's address; kube-proxy's marked
traffic (0x4000) is left to kube-proxy. FLANNEL-FWD accepts the network in FORWARD, so a
host whose FORWARD policy is DROP (Docker sets that) still passes container traffic.
"""

from __future__ import annotations

import ipaddress

from ..cluster.agent import GlogLogger, iptables_restore, sh

MASQ = '-m comment --comment "flanneld masq"'
FWD = '-m comment --comment "flanneld forward"'


def masq_rules(network: ipaddress.IPv4Network, subnet: ipaddress.IPv4Network) -> list[str]:
    """The rules of the nat chain FLANNEL-POSTRTG, in order (``iptables -t nat -S`` form)."""
    return [
        f"-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 {MASQ} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {subnet} -d {network} {MASQ} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {network} -d {subnet} {MASQ} -j RETURN",
        f"-A FLANNEL-POSTRTG ! -s {network} -d {subnet} {MASQ} -j RETURN",
        f"-A FLANNEL-POSTRTG -s {network} ! -d 224.0.0.0/4 {MASQ} -j MASQUERADE --random-fully",
        f"-A FLANNEL-POSTRTG ! -s {network} -d {network} {MASQ} -j MASQUERADE --random-fully",
    ]


def forward_rules(network: ipaddress.IPv4Network) -> list[str]:
    """The rules of the filter chain FLANNEL-FWD."""
    return [f"-A FLANNEL-FWD -s {network} {FWD} -j ACCEPT",
            f"-A FLANNEL-FWD -d {network} {FWD} -j ACCEPT"]


def _jump(table: str, chain: str, target: str) -> str | None:
    """The rule jumping from a built-in chain to ours, if it is not there yet."""
    if sh(["iptables", "-t", table, "-C", chain, "-j", target], check=False).returncode == 0:
        return None
    return f"-I {chain} 1 -j {target}"


def install(network: ipaddress.IPv4Network, subnet: ipaddress.IPv4Network, *, masq: bool,
            forward: bool, log: GlogLogger) -> None:
    """Write the chains with one ``iptables-restore --noflush`` (each chain replaced whole)."""
    text = []
    if masq:
        log.info("Setting up masking rules", "main.go:396")
        jump = _jump("nat", "POSTROUTING", "FLANNEL-POSTRTG")
        text += ["*nat", ":FLANNEL-POSTRTG - [0:0]", *([jump] if jump else []),
                 *masq_rules(network, subnet), "COMMIT"]
    if forward:
        log.info("Setting up forward rules (FLANNEL-FWD)", "main.go:404")
        jump = _jump("filter", "FORWARD", "FLANNEL-FWD")
        text += ["*filter", ":FLANNEL-FWD - [0:0]", *([jump] if jump else []),
                 *forward_rules(network), "COMMIT"]
    if text:
        iptables_restore("\n".join(text) + "\n")
