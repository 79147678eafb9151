"""What felix, Calico's per-node agent, writes into a node: pure rendering, no kernel.

A workload is wired like this (``ip`` view on the node, seed 001 §4.5.2)::

    container eth0  192.168.119.2/32, ``default via 169.254.1.1 dev eth0``,
                    ``169.254.1.1 dev eth0 scope link``
    node  cali5f744ac07f0   (veth peer, MAC ee:ee:ee:ee:ee:ee, no address)
          ``192.168.119.2 dev cali5f744ac07f0 scope link``
          sysctls on the cali interface: proxy_arp=1, neigh proxy_delay=0,
          forwarding=1, route_localnet=1

Nothing answers for 169.254.1.1: the node answers every ARP request on the cali
interface with its own MAC (proxy ARP), as long as it has a route for the address
asked about out of another interface (a default route). Policy is iptables chains named
as felix names them: ``cali-fw-<if>`` (from a workload), ``cali-tw-<if>`` (to a
workload), ``cali-pri-<profile>`` / ``cali-pro-<profile>`` (a profile's inbound and
outbound rules), with tags kept in ipsets.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InvalidTopology

PREFIX = "cali"
WORKLOAD_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"
ACCEPT_MARK = "0x1000000"
RULE_KEYS = {"action", "protocol", "src_tag", "dst_tag", "src_net", "dst_net", "dst_ports",
             "src_ports", "icmp_type"}
PROTOCOLS = ("tcp", "udp", "icmp", "sctp")


def interface_name(namespace: str, pod: str) -> str:
    """The host side of a workload's veth: ``cali`` + 11 hex digits of sha1("namespace.pod")."""
    return PREFIX + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def host_sysctls(ifname: str) -> dict[str, str]:
    """The settings felix writes for a workload interface on the node."""
    return {f"net.ipv4.conf.{ifname}.proxy_arp": "1",
            f"net.ipv4.neigh.{ifname}.proxy_delay": "0",
            f"net.ipv4.conf.{ifname}.forwarding": "1",
            f"net.ipv4.conf.{ifname}.route_localnet": "1"}


def ipset_name(tag: str) -> str:
    """The ipset holding the addresses of the workloads carrying ``tag`` (31 characters at most)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(tag.encode()).digest()).decode()
    return "cali4-s:" + digest[:22]


@dataclass(frozen=True)
class Endpoint:
    """A workload endpoint as stored under ``/calico/v1/host/<host>/workload/...``."""

    host: str
    workload: str
    name: str                      # the host-side interface, caliXXXXXXXXXXX
    ipv4: str                      # "192.168.119.2/32"
    profiles: tuple[str, ...]
    mac: str = WORKLOAD_MAC
    orchestrator: str = "libnetwork"

    @property
    def ip(self) -> str:
        return self.ipv4.split("/")[0]

    def to_json(self) -> str:
        return json.dumps({"state": "active", "name": self.name, "mac": self.mac,
                           "profile_ids": list(self.profiles), "ipv4_nets": [self.ipv4],
                           "ipv6_nets": []})

    @classmethod
    def from_key(cls, key: str, value: str) -> "Endpoint":
        # /calico/v1/host/<host>/workload/<orch>/<workload>/endpoint/<id>
        parts = key.strip("/").split("/")
        data = json.loads(value)
        return cls(host=parts[3], workload=parts[6], name=data["name"],
                   ipv4=data["ipv4_nets"][0], profiles=tuple(data.get("profile_ids", [])),
                   mac=data.get("mac", WORKLOAD_MAC), orchestrator=parts[5])


@dataclass(frozen=True)
class Profile:
    """A Calico v1 profile: rules (``inbound_rules``/``outbound_rules``) and tags."""

    name: str
    inbound: tuple[Mapping[str, Any], ...] = ()
    outbound: tuple[Mapping[str, Any], ...] = ()
    tags: tuple[str, ...] = field(default=())

    @classmethod
    def network(cls, name: str) -> "Profile":
        """The profile a Calico network gets: in from its own members, out to anywhere."""
        return cls(name, inbound=({"action": "allow", "src_tag": name},),
                   outbound=({"action": "allow"},), tags=(name,))

    def rules_json(self) -> str:
        return json.dumps({"inbound_rules": [dict(r) for r in self.inbound],
                           "outbound_rules": [dict(r) for r in self.outbound]})


def check_rule(rule: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Refuse a rule felix could not program, naming the field."""
    if not isinstance(rule, Mapping):
        raise InvalidTopology(f"rule {rule!r} of {where} is not a mapping", obj=where,
                              op="check profile", remedy="write rules like {'action': 'allow', 'protocol': 'tcp'}")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise InvalidTopology(f"rule of {where} has unknown field(s) {sorted(unknown)}", obj=where,
                              op="check profile", remedy=f"use only {sorted(RULE_KEYS)}")
    if rule.get("action") not in ("allow", "deny"):
        raise InvalidTopology(f"rule of {where} has action {rule.get('action')!r}", obj=where,
                              op="check profile", remedy="use action 'allow' or 'deny'")
    proto = rule.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        raise InvalidTopology(f"rule of {where} has protocol {proto!r}", obj=where,
                              op="check profile", remedy=f"use one of {', '.join(PROTOCOLS)}")
    for key in ("dst_ports", "src_ports"):
        ports = rule.get(key)
        if ports is None:
            continue
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidTopology(f"rule of {where} gives {key} without protocol tcp or udp",
                                  obj=where, op="check profile", remedy="add 'protocol': 'tcp'")
        if not isinstance(ports, (list, tuple)) or not ports or not all(
                isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports):
            raise InvalidTopology(f"rule of {where} has {key} {ports!r}", obj=where,
                                  op="check profile", remedy="give a list of port numbers 1-65535")
    for key in ("src_net", "dst_net"):
        if rule.get(key) is not None:
            try:
                ipaddress.IPv4Network(str(rule[key]))
            except ValueError:
                raise InvalidTopology(f"rule of {where} has {key} {rule[key]!r}", obj=where,
                                      op="check profile", remedy="write a network like '10.0.0.0/8'") from None
    return dict(rule)


def _matches(rule: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if rule.get("protocol"):
        out += ["-p", str(rule["protocol"])]
    if rule.get("src_net"):
        out += ["-s", str(rule["src_net"])]
    if rule.get("dst_net"):
        out += ["-d", str(rule["dst_net"])]
    if rule.get("src_tag"):
        out += ["-m", "set", "--match-set", ipset_name(str(rule["src_tag"])), "src"]
    if rule.get("dst_tag"):
        out += ["-m", "set", "--match-set", ipset_name(str(rule["dst_tag"])), "dst"]
    if rule.get("src_ports"):
        out += ["-m", "multiport", "--sports", ",".join(str(p) for p in rule["src_ports"])]
    if rule.get("dst_ports"):
        out += ["-m", "multiport", "--dports", ",".join(str(p) for p in rule["dst_ports"])]
    if rule.get("icmp_type") is not None:
        out += ["-m", "icmp", "--icmp-type", str(rule["icmp_type"])]
    return out


def _profile_chain(chain: str, rules: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for rule in rules:
        match = " ".join(_matches(rule))
        head = f"-A {chain} {match}".rstrip()
        if rule["action"] == "allow":
            lines.append(f"{head} -j MARK --set-xmark {ACCEPT_MARK}/{ACCEPT_MARK}")
            lines.append(f"-A {chain} -m mark --mark {ACCEPT_MARK}/{ACCEPT_MARK} -j RETURN")
        else:
            lines.append(f"{head} -j DROP")
    return lines


def _endpoint_chain(chain: str, profiles: Sequence[str], direction: str) -> list[str]:
    prefix = "cali-pri-" if direction == "in" else "cali-pro-"
    lines = [f"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
             f"-A {chain} -m conntrack --ctstate INVALID -j DROP",
             f"-A {chain} -j MARK --set-xmark 0x0/{ACCEPT_MARK}"]
    for name in profiles:
        lines.append(f"-A {chain} -j {prefix}{name}")
        lines.append(f'-A {chain} -m comment --comment "Return if profile accepted" '
                     f"-m mark --mark {ACCEPT_MARK}/{ACCEPT_MARK} -j RETURN")
    lines.append(f'-A {chain} -m comment --comment "Drop if no profiles matched" -j DROP')
    return lines


def tag_members(endpoints: Iterable[Endpoint], profiles: Mapping[str, Profile]) -> dict[str, list[str]]:
    """Addresses per tag: an endpoint carries the tags of each of its profiles."""
    members: dict[str, set[str]] = {}
    for profile in profiles.values():
        for rule in (*profile.inbound, *profile.outbound):
            for key in ("src_tag", "dst_tag"):
                if rule.get(key):
                    members.setdefault(str(rule[key]), set())
    for ep in endpoints:
        for name in ep.profiles:
            profile = profiles.get(name)
            for tag in (profile.tags if profile else ()):
                members.setdefault(tag, set()).add(ep.ip)
    return {tag: sorted(ips, key=ipaddress.IPv4Address) for tag, ips in sorted(members.items())}


def render_ipsets(members: Mapping[str, Sequence[str]]) -> str:
    """An ``ipset restore`` script that makes every tag set hold exactly its members."""
    lines = []
    for tag, ips in members.items():
        name = ipset_name(tag)
        lines += [f"create {name} hash:ip family inet -exist", f"flush {name}"]
        lines += [f"add {name} {ip}" for ip in ips]
    return "\n".join(lines) + "\n"


def chains_for(local: Sequence[Endpoint], profiles: Mapping[str, Profile]) -> dict[str, list[str]]:
    """Every cali-* chain felix wants in the filter table, with its rules, in load order."""
    chains: dict[str, list[str]] = {
        "cali-FORWARD": [
            '-A cali-FORWARD -i cali+ -m comment --comment "From workload" -j cali-from-wl-dispatch',
            '-A cali-FORWARD -o cali+ -m comment --comment "To workload" -j cali-to-wl-dispatch',
            "-A cali-FORWARD -i cali+ -j ACCEPT",
            "-A cali-FORWARD -o cali+ -j ACCEPT"],
        "cali-from-wl-dispatch": [f"-A cali-from-wl-dispatch -i {ep.name} -g cali-fw-{ep.name}"
                                  for ep in local] +
                                 ['-A cali-from-wl-dispatch -m comment --comment "Unknown interface" -j DROP'],
        "cali-to-wl-dispatch": [f"-A cali-to-wl-dispatch -o {ep.name} -g cali-tw-{ep.name}"
                                for ep in local] +
                               ['-A cali-to-wl-dispatch -m comment --comment "Unknown interface" -j DROP'],
    }
    used = sorted({p for ep in local for p in ep.profiles if p in profiles})
    for name in used:
        chains[f"cali-pri-{name}"] = _profile_chain(f"cali-pri-{name}", profiles[name].inbound)
        chains[f"cali-pro-{name}"] = _profile_chain(f"cali-pro-{name}", profiles[name].outbound)
    for ep in local:
        known = [p for p in ep.profiles if p in profiles]
        chains[f"cali-tw-{ep.name}"] = _endpoint_chain(f"cali-tw-{ep.name}", known, "in")
        chains[f"cali-fw-{ep.name}"] = _endpoint_chain(f"cali-fw-{ep.name}", known, "out")
    return chains


def render_filter(chains: Mapping[str, Sequence[str]], stale: Iterable[str] = (),
                  hook: bool = True) -> str:
    """An ``iptables-restore --noflush`` script: declare (and so flush) every chain, fill it,
    hook ``cali-FORWARD`` into FORWARD if ``hook``, and delete chains no longer wanted."""
    stale = sorted(set(stale) - set(chains))
    lines = ["*filter"] + [f":{name} - [0:0]" for name in chains]
    for rules in chains.values():
        lines += rules
    if hook:
        lines.append("-I FORWARD 1 -j cali-FORWARD")
    lines += [f"-F {name}" for name in stale] + [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
