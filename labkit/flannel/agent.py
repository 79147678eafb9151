"""flanneld, played faithfully: ``python -m labkit.flannel.agent -etcd-endpoints=... -iface=eth1``.

No flanneld binary can be had here, so this lab process does what flanneld does, with
the real etcd and the real kernel, and logs it the way flanneld does (glog lines):

1. find the external interface (``-iface``) and its address (the lease's PublicIP);
2. read ``<prefix>/config`` (retrying every second, saying why, until it is there and valid);
3. prepare the backend (vxlan: create ``flannel.1`` to know its MAC);
4. take a lease: the one this PublicIP already holds, else the subnet of the previous
   ``subnet.env`` if free, else a random free one; a key created only if absent, bound
   to an etcd lease (v3) or given a TTL (v2);
5. write ``/run/flannel/subnet.env`` (on this machine), install the iptables chains;
6. watch ``<prefix>/subnets/``: a new or changed lease adds its route (and neighbour and
   FDB entry), a deleted or expired one removes them; a full resync every
   ``-resync-period`` makes the kernel match the store even after a missed event;
7. renew the lease before it expires (``-subnet-lease-ttl``, ``-subnet-lease-renew-margin``);
   if its own lease is deleted, shut down ("Lease has been revoked"), as flanneld does.

On SIGTERM it exits leaving devices, routes and the lease in place (the lease then
expires unless the agent comes back in time), like flanneld. Flags take one or two dashes.
Flags of our own (flanneld has a fixed 24 h TTL and speaks one API): ``-subnet-lease-ttl``
(seconds), ``-etcd-api`` (3, or 2 for the 2017 keyspace), ``-resync-period``.

A value that can never work (no or a scheme-less endpoint, a -public-ip that is no
address, a prefix without its leading /, a TTL under 1 s or above etcd's largest, a renew
margin not shorter than the TTL) stops it at once with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from ..cluster.agent import duration  # noqa: F401 - flanneld's duration flags, re-exported
from ..cluster.agent import RESYNC, Agent, AgentCommandFailed, GlogLogger, Reconciler, \
    etcd_endpoints, first_reachable, ip_json, ipv4, machine_file, machine_path, write_file
from ..cluster.etcd import Event, StoreError, StoreUnreachable
from . import ipmasq
from .backends import Backend, Iface, Lease, make_backend
from .config import DEFAULT_TTL, LEASE_TTL, RENEW_MARGIN, ConfigError, NetworkConfig, lease_value, \
    parse_config, parse_subnet_env, parse_subnet_key, pick_subnet, prefix_problem, renew_margin, \
    subnet_env, subnet_key
from .store import registry

Net = ipaddress.IPv4Network
EXAMPLE = '{"Network": "10.4.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}'


def go_duration(seconds: float) -> str:
    """``83405.09`` -> ``23h10m5.09s``, the way flanneld prints waiting times."""
    seconds = max(0.0, seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{int(h)}h" if h else "") + (f"{int(m)}m" if h or m else "")
    return out + f"{s:.6g}s"


def boolean(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    if text.lower() in ("1", "t", "true", "yes"):
        return True
    if text.lower() in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="flanneld (python -m labkit.flannel.agent)",
                                 description="flanneld played by labkit: leases, subnet.env, vxlan/udp/host-gw")

    def flag(name: str, **kw: Any) -> None:
        ap.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), **kw)

    def prefix(text: str) -> str:
        wrong = prefix_problem(text)
        if wrong:
            raise argparse.ArgumentTypeError(f"{wrong}, e.g. /coreos.com/network")
        return text

    flag("etcd-endpoints", type=etcd_endpoints, default="http://127.0.0.1:4001,http://127.0.0.1:2379",
         help="a comma-separated list of etcd endpoints (the first that answers is used)")
    flag("etcd-prefix", type=prefix, default="/coreos.com/network", help="etcd prefix")
    flag("etcd-api", type=int, choices=(2, 3), default=3,
         help="etcd API: 3 (flannel >= 0.18) or 2 (the 2017 keyspace: etcdctl set)")
    flag("iface", action="append", default=[], help="interface (name or IP) to use for inter-host communication")
    flag("public-ip", type=ipv4, default=None, help="IP accessible by other nodes for inter-host communication")
    flag("ip-masq", nargs="?", const=True, default=False, type=boolean,
         help="setup IP masquerade rule for traffic destined outside of overlay network")
    flag("iptables-forward-rules", nargs="?", const=True, default=True, type=boolean,
         help="add the FLANNEL-FWD chain accepting the network in FORWARD")
    flag("subnet-file", type=machine_file, default="/run/flannel/subnet.env", help="filename where env variables (subnet, MTU, ...) will be written to")
    flag("subnet-lease-ttl", type=LEASE_TTL, default=DEFAULT_TTL,
         help="lease TTL (whole seconds or a duration, 1s to 9e9s; flanneld's is 24h)")
    flag("subnet-lease-renew-margin", type=RENEW_MARGIN, default=None,
         help="renew the lease this long before it expires (minutes or a duration; default 60 "
              "minutes, or two thirds of a shorter TTL)")
    flag("resync-period", type=RESYNC, default=30.0,
         help="full resync of the kernel state with the store (seconds or a duration)")
    args = ap.parse_args(argv)
    margin = args.subnet_lease_renew_margin
    if margin is not None and margin >= args.subnet_lease_ttl:
        ap.error(f"argument -subnet-lease-renew-margin: {margin:g} s is not shorter than the lease "
                 f"TTL ({args.subnet_lease_ttl:g} s): the lease would expire before its renewal")
    return args


class Flanneld(Agent):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(GlogLogger())
        self.args = args
        self.exit_status = 0
        self.endpoints: list[str] = args.etcd_endpoints
        self.subnet_file = args.subnet_file
        self.ttl = int(args.subnet_lease_ttl)           # whole seconds, checked by parse_args
        self.margin = renew_margin(self.ttl, args.subnet_lease_renew_margin)
        endpoint = first_reachable(self.endpoints) if len(self.endpoints) > 1 else self.endpoints[0]
        self.registry = registry(args.etcd_api, endpoint, args.etcd_prefix)
        self.known: dict[Net, Lease] = {}
        self.subnet: Net | None = None
        self.value = ""
        self.renew_at = 0.0
        self.renew_failing = False

    # -- start-up ---------------------------------------------------------------------

    def find_iface(self) -> Iface | None:
        links = {l["ifname"]: l for l in ip_json("addr", "show")}
        wanted = self.args.iface
        if not wanted:
            default = [r for r in ip_json("route", "show", "default") if r.get("dev")]
            if not default:
                self.log.error("Failed to find any valid interface to use: failed to get default "
                               "interface: Unable to find default route (pass -iface=eth1)", "main.go:468")
                return None
            wanted = [default[0]["dev"]]
        for want in wanted:
            for name, link in links.items():
                addrs = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
                if (want == name or any(a["local"] == want for a in addrs)) and addrs:
                    self.log.info(f"Using interface with name {name} and address {addrs[0]['local']}",
                                  "main.go:483")
                    return Iface(name, addrs[0]["local"], int(link.get("mtu", 1500)))
        self.log.error(f"Failed to find interface to use that matches the interfaces and/or regexes "
                       f"provided ({', '.join(wanted)}); interfaces here: "
                       f"{', '.join(n for n in links if n != 'lo')}", "main.go:470")
        return None

    def previous_subnet(self) -> Net | None:
        try:
            with open(machine_path(self.subnet_file)) as f:
                text = parse_subnet_env(f.read()).get("FLANNEL_SUBNET", "")
            return ipaddress.IPv4Network(text, strict=False)
        except (OSError, ValueError):
            return None

    def fetch_config(self) -> NetworkConfig | None:
        key = self.registry.config_key()
        while not self.stopping:
            try:
                text = self.registry.get_config()
                if text is None:
                    other = self.registry.other_api_config()
                    hint = ""
                    if other is not None:
                        hint = (f"; a config exists in etcd's v{5 - self.registry.api} keyspace, which "
                                f"this flanneld does not read (v2 and v3 keyspaces are separate): write "
                                f"it with `ETCDCTL_API={self.registry.api} etcdctl "
                                f"{'put' if self.registry.api == 3 else 'set'} {key} ...` or start "
                                f"flanneld with -etcd-api={5 - self.registry.api}")
                    raise ConfigError(f"{key} not found in etcd (v{self.registry.api} API){hint}; "
                                      f"write it first, e.g. `etcdctl "
                                      f"{'put' if self.registry.api == 3 else 'set'} {key} '{EXAMPLE}'`")
                return parse_config(text)
            except ConfigError as exc:
                self.log.error(f"Couldn't fetch network config: {exc}", "main.go:330")
            except StoreUnreachable as exc:
                self.log.error(f"Couldn't fetch network config: {exc.message}; is etcd running? "
                               "Trying again in 1s", "main.go:330")
            self.sleep(1.0)
        return None

    def acquire(self, config: NetworkConfig, iface: Iface, backend: Backend,
                data: dict[str, Any] | None, previous: Net | None) -> Net | None:
        public_ip = self.args.public_ip or iface.ip
        self.value = lease_value(public_ip, config.backend, data)
        prefix = self.registry.config_key().rsplit("/", 1)[0] + "/subnets/"
        while not self.stopping:
            try:
                taken, _ = self.snapshot()
                mine = [sn for sn, l in taken.items() if l.public_ip == public_ip and config.contains(sn)]
                if mine:
                    sn = mine[0]
                    self.log.info(f"Found lease ({sn}) for current IP ({public_ip}), reusing",
                                  "local_manager.go:166")
                    self.registry.renew_lease(prefix + subnet_key(sn), self.value, self.ttl)
                else:
                    sn = None
                    if previous is not None and config.contains(previous) and previous not in taken:
                        self.log.info(f"Found previously leased subnet ({previous}), reusing",
                                      "local_manager.go:200")
                        if self.registry.create_lease(prefix + subnet_key(previous), self.value, self.ttl):
                            sn = previous
                    if sn is None:
                        self.log.info(f"Picking subnet in range {config.subnet_min} ... {config.subnet_max}",
                                      "local_manager.go:234")
                        sn = pick_subnet(config, taken)
                        if sn is None:
                            self.log.error(f"Failed to acquire lease: out of subnets: every /"
                                           f"{config.subnet_len} of {config.network} between "
                                           f"{config.subnet_min} and {config.subnet_max} is leased; "
                                           "trying again in 1s (a larger Network or a longer SubnetLen "
                                           "makes room)", "main.go:350")
                            self.sleep(1.0)
                            continue
                        if not self.registry.create_lease(prefix + subnet_key(sn), self.value, self.ttl):
                            continue  # another node took it between our read and our write
                self.log.info(f"Allocated lease ({sn}) to current node ({public_ip})", "local_manager.go:220")
                self.renew_at = time.monotonic() + self.ttl - self.margin
                return sn
            except StoreUnreachable as exc:
                self.log.error(f"Failed to acquire lease: {exc.message}; trying again in 1s", "main.go:350")
            except StoreError as exc:
                self.log.error(f"Failed to acquire lease: {exc.message}; trying again in 1s", "main.go:350")
            self.sleep(1.0)
        return None

    # -- running ------------------------------------------------------------------------

    def keep_lease(self) -> None:
        """The lease keeper, in its own thread (as flanneld's renewal goroutine): event
        handling, however long, never delays a renewal."""
        while not self.stopping:
            self.stop_event.wait(max(0.0, min(self.renew_at - time.monotonic(), 1.0)))
            if not self.stopping:
                self.renew()

    def renew(self) -> None:
        if self.subnet is None or time.monotonic() < self.renew_at:
            return
        key = self.registry.config_key().rsplit("/", 1)[0] + "/subnets/" + subnet_key(self.subnet)
        try:
            self.registry.renew_lease(key, self.value, self.ttl)
        except (StoreUnreachable, StoreError) as exc:
            self.log.error(f"Error renewing lease (trying again in 1s): {exc.message}", "main.go:420")
            self.renew_at = time.monotonic() + 1.0
            self.renew_failing = True
            return
        expires = datetime.now(timezone.utc).timestamp() + self.ttl
        stamp = datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        self.log.info(f"Lease renewed, new expiration: {stamp} +0000 UTC", "main.go:415")
        wait = self.ttl - self.margin
        self.log.info(f"Waiting for {go_duration(wait)} to renew lease", "main.go:391")
        self.renew_at = time.monotonic() + wait
        self.renew_failing = False

    def snapshot(self) -> tuple[dict[Net, Lease], int]:
        values, revision = self.registry.leases()
        leases = {}
        for key, value in values.items():
            sn = parse_subnet_key(key)
            lease = Lease.parse(sn, value) if sn is not None else None
            if lease is not None:
                leases[sn] = lease
        return leases, revision  # type: ignore[return-value]

    def revoked(self) -> None:
        self.log.error(f"Lease has been revoked. Shutting down daemon. (the key of {self.subnet} "
                       "was deleted or expired in etcd)", "main.go:435")
        self.exit_status = 1
        self.stop_event.set()

    def sync(self, leases: dict[Net, Lease]) -> None:
        if self.subnet not in leases:
            self.revoked()
            return
        others = {sn: l for sn, l in leases.items() if sn != self.subnet}
        try:
            self.backend.sync(list(others.values()))
        except AgentCommandFailed as exc:
            self.log.error(f"resync failed: {exc.message}", "main.go:440")
        self.known = others

    def handle(self, event: Event) -> bool:
        sn = parse_subnet_key(event.key)
        if sn is None:
            return True
        try:
            if sn == self.subnet:
                if event.type == "DELETE":
                    self.revoked()
                return True
            if event.type == "PUT":
                lease = Lease.parse(sn, event.value)
                if lease is None:
                    self.log.error(f"lease {event.key} holds no valid JSON; ignoring it", "main.go:440")
                    return True
                if self.known.get(sn) != lease:  # new, or changed (a renewal alone changes nothing)
                    self.backend.add(lease)
                self.known[sn] = lease
            else:
                gone = self.known.pop(sn, None)
                if gone is not None:
                    self.backend.remove(gone)
        except AgentCommandFailed as exc:
            self.log.error(f"failed to apply {event.type} {event.key}: {exc.message}", "main.go:440")
            return False
        return True

    def unreachable(self, exc: Exception, attempt: int) -> None:
        message = getattr(exc, "message", str(exc))
        self.log.error(f"Watch of subnet leases failed: {message}; retrying (attempt {attempt})",
                       "watch.go:90")

    def run(self) -> int:
        iface = self.find_iface()
        if iface is None:
            return 1
        if not self.args.public_ip:
            self.log.info(f"Defaulting external address to interface address ({iface.ip})", "main.go:500")
        previous = self.previous_subnet()
        self.log.info(f"Created subnet manager: Etcd Local Manager with Previous Subnet: "
                      f"{previous or '0.0.0.0/0'}", "main.go:235")
        self.log.info("Installing signal handlers", "main.go:238")
        config = self.fetch_config()
        if config is None:
            return self.finish()
        self.log.info(f"Found network config - Backend type: {config.backend}", "main.go:348")
        self.backend = make_backend(config, iface, self.log, os.environ.get("LABKIT_STATE_DIR", ""))
        try:
            data = self.backend.prepare()
            self.subnet = self.acquire(config, iface, self.backend, data, previous)
            if self.subnet is None:
                return self.finish()
            self.backend.configure(self.subnet)
        except AgentCommandFailed as exc:
            self.log.error(f"Error registering network: {exc.message}", "main.go:310")
            return 1
        write_file(machine_path(self.subnet_file),
                   subnet_env(config, self.subnet, self.backend.mtu, self.args.ip_masq))
        self.log.info(f"Wrote subnet file to {self.subnet_file}", "main.go:295")
        try:
            ipmasq.install(config.network, self.subnet, masq=self.args.ip_masq,
                           forward=self.args.iptables_forward_rules, log=self.log)
        except AgentCommandFailed as exc:
            self.log.error(f"Failed to set up iptables rules: {exc.message}", "main.go:398")
        self.log.info("Running backend.", "main.go:299")
        self.log.info("watching for new subnet leases", self.backend.src.split(":")[0] + ":56")
        self.log.info(f"Waiting for {go_duration(self.ttl - self.margin)} to renew lease", "main.go:391")
        threading.Thread(target=self.keep_lease, name="lease", daemon=True).start()
        Reconciler(self, snapshot=self.snapshot, watch=self.registry.watch_leases, sync=self.sync,
                   handle=self.handle, resync=self.args.resync_period,
                   unreachable=self.unreachable).run()
        return self.finish()

    def finish(self) -> int:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
        if self.signal_name:
            self.log.info(f"shutdownHandler sent cancel signal ({self.signal_name})...", "main.go:251")
        self.log.info("Exiting cleanly...", "main.go:420")
        return self.exit_status


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Flanneld(args).main()


if __name__ == "__main__":
    sys.exit(main())
