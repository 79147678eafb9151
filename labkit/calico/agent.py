"""calico/node in one lab process: confd (BIRD's configuration) and felix (the data path).

Run in a machine as::

    python -m labkit.calico.agent --node node1 --etcd-endpoints http://192.168.99.100:2379 \
        --confdir STATE/etc/calico/confd/config --bird-socket STATE/var/run/calico/bird.ctl

It reads the whole ``/calico/`` tree from etcd, then follows a watch on it (with a full
resync every few seconds, so a missed event cannot leave stale state):

* as **confd**, it renders ``bird.cfg``, ``bird_aggr.cfg`` and ``bird_ipam.cfg`` for this
  node (:mod:`labkit.calico.birdcfg`); when one changes it rewrites it and tells BIRD
  (``birdc configure``), as calico/node's confd does;
* as **felix**, for each workload endpoint of this node it sets the interface's sysctls
  (proxy ARP and friends), adds the ``IP dev caliX scope link`` route, removes routes of
  endpoints that are gone, keeps one ipset per tag, and rewrites its ``cali-*`` chains
  with ``iptables-restore --noflush`` whenever the wanted rules change.

It logs like felix and confd (``2026-11-30 09:12:03.123 [INFO][4242] felix/route_table.go
...``). Stopping it (SIGTERM) leaves the kernel as it is, as stopping calico/node does.
BIRD itself is a separate lab process (see :mod:`labkit.calico.bird`), so that a lesson
can stop it and watch the routes go.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from datetime import datetime
from typing import Any, Callable, TypeVar

from .. import validate
from ..cluster.agent import RESYNC, Agent, AgentCommandFailed, GlogLogger, Reconciler, etcd_endpoints, \
    first_reachable, ip_json, iptables_restore, sh, write_file
from ..cluster.etcd import EtcdClient
from . import birdcfg, felix, keys

T = TypeVar("T")


class CalicoLogger(GlogLogger):
    """Calico's log format (logrus): ``2026-11-30 09:12:03.123 [INFO][4242] file.go 123: msg``."""

    LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR"}

    def _emit(self, level: str, msg: str, src: str) -> None:
        now = datetime.now()
        where = src.replace(":", " ", 1)
        line = (f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d} "
                f"[{self.LEVELS.get(level, level)}][{self.pid}] {where}: {msg}\n")
        with self._lock:
            stream = self.stream or sys.stderr
            stream.write(line)
            stream.flush()


_BAD_DATA = (ValueError, KeyError, TypeError, IndexError, AttributeError)


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    return str(exc) or type(exc).__name__


def _bgp_host(key: str, value: str) -> tuple[str, str, str]:
    rest = key[len(keys.BGP_HOSTS):]
    if "/" not in rest:
        raise ValueError(f"not a key {keys.BGP_HOSTS}<node>/<field>")
    host, leaf = rest.split("/", 1)
    if leaf in ("ip_addr_v4", "rr_cluster_id") and value:
        value = str(ipaddress.IPv4Address(value))
    return host, leaf, value


def _as_num(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 4294967295:
        raise ValueError(f"AS number {number} is out of range (1 to 4294967295)")
    return number


def _mesh(value: str) -> bool:
    enabled = json.loads(value).get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f'"enabled" is {enabled!r}, not true or false')
    return enabled


def _endpoint(key: str, value: str) -> felix.Endpoint:
    ep = felix.Endpoint.from_key(key, value)
    ipaddress.IPv4Interface(ep.ipv4)
    validate.ifname(ep.name)
    if not all(isinstance(p, str) for p in ep.profiles):
        raise ValueError(f"profile_ids {list(ep.profiles)!r} are not all names")
    return ep


def _profile(name: str, rules_text: str, tags_text: str) -> felix.Profile:
    rules = json.loads(rules_text)
    where = f"profile {name}"
    inbound = tuple(felix.check_rule(r, where) for r in rules.get("inbound_rules", []))
    outbound = tuple(felix.check_rule(r, where) for r in rules.get("outbound_rules", []))
    tags = json.loads(tags_text)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"tags {tags!r} are not a list of names")
    return felix.Profile(name, inbound, outbound, tuple(tags))


def parse_state(kv: dict[str, str], me: str) -> dict[str, Any]:
    """Everything this node needs, read from the ``/calico/`` keys.

    Each key is read on its own: one that does not parse (``etcdctl put
    /calico/bgp/v1/global/as_num sixty``) is left out, with the default in its place, and
    listed in ``state["ignored"]`` as ``(key, reason)``; calico-node logs such a key and
    carries on, and so does the agent: one bad put must not stop every node.
    """
    ignored: list[tuple[str, str]] = []

    def read(key: str, parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except _BAD_DATA as exc:
            ignored.append((key, _reason(exc)))
            return None

    peers: dict[str, str] = {}
    rr: dict[str, str] = {}
    for key, value in kv.items():
        if key.startswith(keys.BGP_HOSTS):
            found = read(key, lambda: _bgp_host(key, value))
            if found is None or not found[2]:
                continue
            host, leaf, value = found
            if leaf == "ip_addr_v4":
                peers[host] = value
            elif leaf == "rr_cluster_id":
                rr[host] = value
    peer_list = sorted((birdcfg.Peer(name, ip, rr.get(name)) for name, ip in peers.items()),
                       key=lambda p: ipaddress.IPv4Address(p.ip))
    mesh = read(keys.NODE_MESH, lambda: _mesh(kv[keys.NODE_MESH])) if keys.NODE_MESH in kv else True
    as_num = read(keys.AS_NUM, lambda: _as_num(kv[keys.AS_NUM])) if keys.AS_NUM in kv else None
    pools = [read(k, lambda: ipaddress.IPv4Network(json.loads(v)["cidr"]))
             for k, v in kv.items() if k.startswith(keys.POOLS)]
    blocks = [read(k, lambda: keys.cidr_of(k.rsplit("/", 1)[1]))
              for k in kv if k.startswith(keys.affinities(me))]
    endpoints = [read(k, lambda: _endpoint(k, v)) for k, v in kv.items()
                 if k.startswith(keys.HOSTS) and "/workload/" in k and "/endpoint/" in k]
    profiles: dict[str, felix.Profile] = {}
    for key, value in kv.items():
        if key.startswith(keys.PROFILES) and key.endswith("/rules"):
            name = key[len(keys.PROFILES):].split("/", 1)[0]
            profile = read(key, lambda: _profile(name, value, kv.get(keys.profile_tags(name), "[]")))
            if profile is not None:
                profiles[name] = profile
    return {"me": next((p for p in peer_list if p.name == me), None), "peers": peer_list,
            "mesh": mesh is not False, "as_num": as_num or birdcfg.DEFAULT_AS,
            "pools": [p for p in pools if p is not None], "blocks": [b for b in blocks if b is not None],
            "endpoints": [e for e in endpoints if e is not None], "profiles": profiles,
            "ignored": ignored}


class CalicoNode(Agent):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(CalicoLogger())
        self.args = args
        self.endpoint = first_reachable(args.etcd_endpoints)
        self.store = EtcdClient(self.endpoint)
        self.reported: set[tuple[str, str | None]] = set()
        self.applied_filter = ""
        self.applied_ipsets = ""
        self.configured: set[str] = set()

    # -- confd --------------------------------------------------------------------------

    def confd(self, state: dict[str, Any]) -> None:
        me = state["me"]
        if me is None:
            return
        files = birdcfg.render(me, state["peers"], state["blocks"], state["pools"],
                               as_num=state["as_num"], mesh=state["mesh"])
        changed = []
        for name, text in files.items():
            path = os.path.join(self.args.confdir, name)
            try:
                with open(path) as fh:
                    if fh.read() == text:
                        continue
            except FileNotFoundError:
                pass
            write_file(path, text)
            changed.append(path)
            self.log.info(f"Target config {path} has been updated", src="resource.go:370")
        if changed and os.path.exists(self.args.bird_socket):
            done = sh(["birdc", "-s", self.args.bird_socket, "configure"], check=False)
            reply = (done.stdout.strip().splitlines() or ["(no reply)"])[-1]
            self.log.info(f"Reloaded BIRD: {reply}", src="resource.go:412")

    # -- felix --------------------------------------------------------------------------

    def _sysctl(self, key: str, value: str) -> None:
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as fh:
                fh.write(value)
            return
        except OSError:
            pass
        # /proc/sys read-only (restricted labs): the same settings over netlink.
        parts = key.split(".")
        if parts[2] == "neigh":
            sh(["ip", "ntable", "change", "name", "arp_cache", "dev", parts[3], parts[4], value])
        else:
            from .._netlink import Netlink
            nl = Netlink()
            try:
                nl.set_ipv4_conf(nl.get_index(parts[3]), {parts[4]: int(value)})
            finally:
                nl.close()

    def endpoints(self, local: list[felix.Endpoint]) -> None:
        links = {link["ifname"] for link in ip_json("link")}
        routes = ip_json("route", "show", "table", "main")
        by_dev: dict[str, set[str]] = {}
        for route in routes:
            if str(route.get("dev", "")).startswith(felix.PREFIX) and route.get("dst") != "default":
                by_dev.setdefault(route["dev"], set()).add(route["dst"].split("/")[0])
        wanted = {ep.name: ep for ep in local if ep.name in links}
        for ep in wanted.values():
            if ep.name not in self.configured:
                for key, value in felix.host_sysctls(ep.name).items():
                    self._sysctl(key, value)
                self.configured.add(ep.name)
                self.log.info(f"Configured interface {ep.name} (proxy ARP, forwarding)",
                              src="endpoint_mgr.go:1066")
            if ep.ip not in by_dev.get(ep.name, set()):
                sh(["ip", "route", "replace", ep.ipv4, "dev", ep.name, "scope", "link"])
                self.log.info(f"Adding route {ep.ipv4} dev {ep.name} scope link",
                              src="route_table.go:577")
        for dev, dsts in by_dev.items():
            keep = wanted[dev].ip if dev in wanted else None
            for dst in dsts - {keep}:
                sh(["ip", "route", "del", dst, "dev", dev], check=False)
                self.log.info(f"Removing route {dst} dev {dev}", src="route_table.go:614")
        self.configured &= set(wanted)

    def policy(self, state: dict[str, Any], local: list[felix.Endpoint]) -> None:
        members = felix.tag_members(state["endpoints"], state["profiles"])
        ipsets = felix.render_ipsets(members)
        if ipsets != self.applied_ipsets:
            sh(["ipset", "restore", "-exist"], input=ipsets)
            self.applied_ipsets = ipsets
            self.log.info(f"Updated {len(members)} IP set(s)", src="ipsets.go:282")
        saved = sh(["iptables-save", "-t", "filter"]).stdout
        existing = {line[1:].split()[0] for line in saved.splitlines()
                    if line.startswith(":cali-")}
        hooked = "-A FORWARD -j cali-FORWARD" in saved
        chains = felix.chains_for(local, state["profiles"])
        script = felix.render_filter(chains, existing, hook=not hooked)
        if script != self.applied_filter or not hooked:
            iptables_restore(script)
            self.applied_filter = felix.render_filter(chains, existing, hook=False)
            self.log.info(f"Applied {len(chains)} cali chains to the filter table",
                          src="table.go:1263")

    # -- the loop -----------------------------------------------------------------------

    def sync(self, snapshot: tuple[dict[str, str], int]) -> None:
        kv, revision = snapshot
        state = parse_state(kv, self.args.node)
        bad = {(key, kv.get(key)) for key, _ in state["ignored"]}
        for key, reason in state["ignored"]:
            if (key, kv.get(key)) not in self.reported:   # once per bad value, not every sync
                self.log.error(f"ignoring key {key}: {reason}", src="syncer.go:295")
        self.reported = bad
        local = sorted((ep for ep in state["endpoints"] if ep.host == self.args.node),
                       key=lambda ep: ep.name)
        try:
            self.confd(state)
            self.endpoints(local)
            self.policy(state, [ep for ep in local if ep.name in self.configured])
        except AgentCommandFailed as exc:   # the kernel refused: say so, try again next sync
            self.log.error(f"failed to apply revision {revision}: {exc.message}", src="int_dataplane.go:1050")
            return
        # how far this node has got: the notebook waits on it (Calico.wait_synced)
        write_file(self.args.status_file, f"{revision}\n")

    def run(self) -> int:
        self.log.info(f"Calico node {self.args.node} starting (confd + felix), "
                      f"datastore {self.endpoint}", src="startup.go:86")

        def snapshot() -> tuple[tuple[dict[str, str], int], int]:
            kv, revision = self.store.get_prefix_with_revision(keys.ROOT)
            return (kv, revision), revision

        # Like felix, changes are batched: a burst of etcd events (a cluster starting, a
        # workload added) marks the state dirty, and the next tick applies it once.
        dirty = [False]

        def changed(event: object) -> bool:
            dirty[0] = True
            return True

        def tick() -> None:
            if not dirty[0]:
                return
            dirty[0] = False
            try:
                self.sync(snapshot()[0])
            except ConnectionError as exc:
                dirty[0] = True
                self.log.warning(f"datastore unreachable ({exc}), retrying", src="syncer.go:171")

        reconciler: Reconciler[tuple[dict[str, str], int]] = Reconciler(
            self, snapshot=snapshot,
            watch=lambda rev, stop: self.store.watch(keys.ROOT, rev, stop=stop),
            sync=self.sync, handle=changed, tick=tick, tick_every=0.1, resync=self.args.resync,
            unreachable=lambda exc, n: self.log.warning(f"datastore unreachable ({exc}), retrying",
                                                        src="syncer.go:171"))
        reconciler.run()
        self.log.info(f"Calico node stopping ({self.signal_name or 'done'})", src="daemon.go:540")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit.calico.agent", description=__doc__.split("\n")[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--etcd-endpoints", required=True, type=etcd_endpoints,
                        help="etcd URLs, comma-separated (the first that answers is used)")
    parser.add_argument("--confdir", required=True)
    parser.add_argument("--bird-socket", required=True)
    parser.add_argument("--status-file", required=True,
                        help="where to write the etcd revision the node is in step with")
    parser.add_argument("--resync", type=RESYNC, default=5.0,
                        help="full resync with etcd every this long (seconds or a duration)")
    return CalicoNode(parser.parse_args(argv)).main()


if __name__ == "__main__":
    sys.exit(main())
