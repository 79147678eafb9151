"""The Romana agent of one host: ``python -m labkit.romana.agent --config PATH``.

A lab process playing ``romana-agent`` (Romana core 1.x): it reads what the Romana
daemon decided for this host (the layout, every host's id and underlay address, the
endpoints on this host) from a JSON file, and rewrites the host's kernel state from
it, in full, whenever the file changes and every few seconds (so a route or rule
removed by hand comes back):

* ``romana-gw`` holding the host's gateway address (the first address of its block,
  ``10.h.0.1/16``). Romana makes it a ``dummy`` device; this kernel has no dummy module,
  so the agent falls back to a bridge without ports, which holds an address the same
  way (it says so in its log);
* one route per other host, to its whole block, through its underlay address and
  no tunnel: ``ip route replace 10.1.0.0/16 via 192.168.99.102 dev eth1``;
* one route per local endpoint: ``ip route replace 10.0.17.2/32 dev romanaXXXXXXX``
  (routes the agent owns carry ``proto 77`` so it can find and prune them);
* isolation in iptables: ``FORWARD -o romana+ -j ROMANA-FORWARD``; per local segment a
  chain ``ROMANA-T<t>-S<s>`` entered by a destination mask and accepting only sources
  of the same tenant and segment (``-s 10.0.17.0/255.0.255.0``), everything else to
  an endpoint dropped. The masks ignore the host bits, so one rule covers a segment
  on every host (nft shows ``ip saddr & 255.0.255.0 == 10.0.17.0``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..cluster.agent import Agent, AgentCommandFailed, ip_batch, ip_json, iptables_restore, sh
from .layout import Layout

GATEWAY_DEVICE = "romana-gw"
ROUTE_PROTO = "77"            # a number iproute2 has no name for: "proto 77"
RESYNC_S = 5.0
POLL_S = 0.3


def log(where: str, message: str) -> None:
    """Go's standard log format, as romana-agent prints: ``2017/11/30 09:12:03 file.go:NN: msg``."""
    print(f"{datetime.now().strftime('%Y/%m/%d %H:%M:%S')} {where}: {message}", flush=True)


def chain_name(tenant: int, segment: int) -> str:
    return f"ROMANA-T{tenant}-S{segment}"


def desired_rules(layout: Layout, endpoints: list[dict[str, Any]]) -> str:
    """The whole ROMANA rule set for the endpoints of this host (iptables-restore input)."""
    segments = sorted({(int(e["tenant"]), int(e["segment"])) for e in endpoints})
    lines = ["*filter", ":ROMANA-FORWARD - [0:0]"]
    lines += [f":{chain_name(t, s)} - [0:0]" for t, s in segments]
    lines.append("-A ROMANA-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    for t, s in segments:
        lines.append(f"-A ROMANA-FORWARD -d {layout.segment_match(t, s)} -j {chain_name(t, s)}")
    lines.append('-A ROMANA-FORWARD -m comment --comment "romana: no segment of this host" -j DROP')
    for t, s in segments:
        lines.append(f"-A {chain_name(t, s)} -s {layout.segment_match(t, s)} -m comment "
                     f'--comment "romana: tenant {t} segment {s}" -j ACCEPT')
        lines.append(f'-A {chain_name(t, s)} -m comment --comment "romana: isolation" -j DROP')
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


class RomanaAgent(Agent):
    def __init__(self, config: Path) -> None:
        super().__init__()
        self.config = config
        self.gateway_kind: str | None = None

    def ensure_gateway(self, address: str) -> None:
        links = {l["ifname"]: l for l in ip_json("-d", "link", "show")}
        if GATEWAY_DEVICE not in links:
            made = sh(["ip", "link", "add", GATEWAY_DEVICE, "type", "dummy"], check=False)
            if made.returncode == 0:
                self.gateway_kind = "dummy"
            else:
                sh(["ip", "link", "add", GATEWAY_DEVICE, "type", "bridge"])
                self.gateway_kind = "bridge"
                log("agent.go:212", f"no dummy device in this kernel ({made.stderr.strip()}); "
                                    f"{GATEWAY_DEVICE} is a bridge without ports instead")
            log("agent.go:218", f"created {GATEWAY_DEVICE} ({self.gateway_kind})")
        addrs = {f"{a['local']}/{a['prefixlen']}" for l in ip_json("addr", "show", "dev", GATEWAY_DEVICE)
                 for a in l.get("addr_info", []) if a.get("family") == "inet"}
        if address not in addrs:
            sh(["ip", "addr", "replace", address, "dev", GATEWAY_DEVICE])
            log("agent.go:231", f"gateway {address} on {GATEWAY_DEVICE}")
        sh(["ip", "link", "set", GATEWAY_DEVICE, "up"])

    def sync(self, state: dict[str, Any]) -> None:
        layout = Layout.from_dict(state["layout"])
        me = int(state["host_id"])
        nic = str(state.get("nic", "eth1"))
        block = layout.host_block(me)
        self.ensure_gateway(f"{layout.gateway(me)}/{block.prefixlen}")
        wanted: dict[str, str] = {}
        for host in state["hosts"]:
            if int(host["id"]) != me:
                wanted[str(layout.host_block(int(host["id"])))] = f"via {host['ip']} dev {nic}"
        endpoints = list(state.get("endpoints", []))
        for ep in endpoints:
            wanted[f"{ep['address']}/32"] = f"dev {ep['ifname']}"
        have = {r["dst"] if "/" in r["dst"] else f"{r['dst']}/32": r
                for r in ip_json("route", "show", "proto", ROUTE_PROTO)}
        lines = [f"route replace {dst} {how} proto {ROUTE_PROTO}" for dst, how in sorted(wanted.items())
                 if not self._same(have.get(dst), how)]
        lines += [f"route del {dst} proto {ROUTE_PROTO}" for dst in sorted(set(have) - set(wanted))]
        if lines:
            ip_batch(lines)
            for line in lines:
                log("route.go:88", line)
        iptables_restore(desired_rules(layout, endpoints))
        if sh(["iptables", "-C", "FORWARD", "-o", "romana+", "-j", "ROMANA-FORWARD"], check=False).returncode:
            sh(["iptables", "-A", "FORWARD", "-o", "romana+", "-j", "ROMANA-FORWARD"])
            log("firewall.go:140", "FORWARD -o romana+ -j ROMANA-FORWARD")

    @staticmethod
    def _same(route: dict[str, Any] | None, how: str) -> bool:
        if route is None:
            return False
        words = how.split()
        if words[0] == "via":
            return route.get("gateway") == words[1] and route.get("dev") == words[3]
        return route.get("dev") == words[1] and "gateway" not in route

    def read_state(self, text: str) -> dict[str, Any]:
        """Parse the config file's text; ValueError says what is wrong with it."""
        state = json.loads(text)
        if not isinstance(state, dict):
            raise ValueError(f"the top level is a JSON {type(state).__name__}, not an object")
        for field in ("layout", "host_id", "hosts"):
            if field not in state:
                raise ValueError(f"no {field!r} in it")
        return state

    def run(self) -> int:
        log("main.go:62", f"romana agent starting; config {self.config}")
        seen: str | None = None             # digest of the text last read
        good: dict[str, Any] | None = None  # the last state that parsed: kept through a bad edit
        announce = False                    # a new state to report once it is applied
        failed = ""                         # the last apply error (logged once, retried each poll)
        last = 0.0
        waiting = False
        while not self.stopping:
            try:
                text = self.config.read_text()
            except OSError as exc:
                if not waiting:
                    log("agent.go:120", f"waiting for config {self.config} ({exc.strerror or exc})")
                    waiting = True
                text = ""
            digest = hashlib.sha1(text.encode()).hexdigest()
            if text and digest != seen:
                waiting, seen = False, digest
                try:
                    good, announce = self.read_state(text), True
                except (ValueError, TypeError) as exc:      # logged once per bad text
                    kept = "; keeping the last good state" if good is not None else ""
                    log("agent.go:151", f"error: config {self.config}: {exc}{kept}")
            if good is not None and (announce or failed or time.monotonic() - last > RESYNC_S):
                try:
                    self.sync(good)
                    failed = ""
                    if announce:
                        log("agent.go:140", f"synced: {len(good.get('endpoints', []))} endpoints, "
                                            f"{len(good['hosts']) - 1} other hosts")
                        print("romana agent synced", flush=True)
                        announce = False
                except (AgentCommandFailed, ValueError, KeyError, TypeError, AttributeError) as exc:
                    message = str(exc) or type(exc).__name__
                    if message != failed:
                        log("agent.go:151", f"error: {message}")
                    failed = message
                last = time.monotonic()
            self.sleep(POLL_S)
        log("main.go:90", "romana agent stopping (routes and rules stay, as the real agent leaves them)")
        return 0


def config_file(text: str) -> Path:
    """The ``--config`` argparse type: a file (that may not exist yet) in an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not the agent's JSON file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: its folder {path.parent} does not exist, so the "
                                         "file can never appear (romanad writes it there)")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="romana-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=config_file,
                        help="the JSON file romanad writes for this host")
    args = parser.parse_args(argv)
    return RomanaAgent(args.config).main()


if __name__ == "__main__":
    sys.exit(main())
