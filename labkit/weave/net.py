"""Weave Net on a cluster, driven from the notebook: what the ``weave`` script does on a host.

The script's part (bridges, iptables chains, plumbing a container's ``ethwe``) is done
here through the lab's API; the router's part (peers, IPAM, DNS, the VXLAN data path)
is the lab process :mod:`labkit.weave.router`, one per machine, which this module starts
and talks to through the ``weave`` command (:mod:`labkit.weave.__main__`) run inside
the machine.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

from .. import validate
from ..errors import CommandFailed, InvalidName, InvalidTopology, NotFound
from ..results import CommandResult
from . import ipam
from .consts import BRIDGE, CONTAINER_IFNAME, DOMAIN, MTU, STATE

if TYPE_CHECKING:
    from ..cluster import Cluster, ClusterNode
    from ..node import Node
    from ..process import Process

DOCKER_BRIDGE = "docker0"
DOCKER_BRIDGE_ADDRESS = "172.17.0.1/16"   # Docker's default bridge: weaveDNS listens there

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class WeaveRouter:
    """The router of one machine (``docker ps`` would show the ``weave`` container)."""

    def __init__(self, net: "Weave", machine: "ClusterNode", peers: list[str],
                 process: "Process", dns_address: str) -> None:
        self.net = net
        self.machine = machine
        self.peers = peers
        self.process = process
        self.dns_address = dns_address

    def __repr__(self) -> str:
        state = "running" if self.process.running else "stopped"
        return f"<WeaveRouter {self.machine.name} {self.machine.ip} peers={self.peers} {state}>"

    @property
    def running(self) -> bool:
        return self.process.running

    def weave(self, *args: str) -> CommandResult:
        """Run the ``weave`` command in this machine: ``weave status peers`` ->
        ``router.weave("status", "peers")``."""
        return self.machine.node.run([sys.executable, "-m", "labkit.weave", *args])

    def call(self, *args: str) -> Any:
        result = self.weave("--json", *args)
        if result.returncode != 0:
            raise CommandFailed(f"weave {' '.join(args)} on {self.machine.name}: "
                                f"{(result.stderr or result.stdout).strip()}",
                                returncode=result.returncode, stdout=result.stdout,
                                stderr=result.stderr, obj=self.machine.name,
                                op=f"weave {' '.join(args)}",
                                remedy="read the router's log: router.log()")
        return json.loads(result.stdout)

    def status(self) -> dict[str, Any]:
        """The router's state: peers, owned blocks, allocations, DNS records (``weave status``)."""
        return dict(self.call("status"))

    def connected_peers(self) -> list[str]:
        """Nicknames of the peers with an established connection."""
        return [p["nickname"] for p in self.status()["peers"] if p["state"] == "established"]

    def log(self) -> str:
        """What the router printed (``docker logs weave``)."""
        return self.process.stdout_text() + self.process.stderr_text()

    def dns_log(self) -> str:
        """dnsmasq's log: the queries weaveDNS answered."""
        return self.machine.read_text(f"{STATE}/dnsmasq.log") or ""

    def stop(self) -> None:
        """``weave stop``: the router goes; its peers drop their FDB entry for this machine."""
        self.process.stop()


class Weave:
    """Weave Net across the machines of a :class:`~labkit.cluster.Cluster` (``store=None``).

    ::

        cluster = Cluster(lab, store=None)
        weave = Weave(cluster)
        weave.launch("node1")                         # weave launch
        weave.launch("node2", "192.168.99.101")       # weave launch 192.168.99.101
        weave.wait_connected()
        bbox1 = weave.run("node1", "bbox1")           # eval $(weave env); docker run --name bbox1
        c = weave.run("node1", "c", cidr="net:10.32.2.0/24")   # docker run -e WEAVE_CIDR=...
        weave.expose("node1")                         # weave expose
    """

    def __init__(self, cluster: "Cluster", *, ipalloc_range: str = ipam.DEFAULT_RANGE,
                 docker_bridge: str = DOCKER_BRIDGE_ADDRESS) -> None:
        self.cluster = cluster
        self.range = ipam.allocation_range(ipalloc_range)
        self.docker_bridge = validate.interface_address(docker_bridge)
        self.routers: dict[str, WeaveRouter] = {}
        self.exposed: dict[str, list[str]] = {}
        self._veths: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Weave {self.range} routers={sorted(self.routers)}>"

    # -- machines and peers --------------------------------------------------------------

    def machine(self, which: "str | ClusterNode") -> "ClusterNode":
        return self.cluster.node(which)

    def router(self, which: "str | ClusterNode") -> WeaveRouter:
        machine = self.machine(which)
        try:
            return self.routers[machine.name]
        except KeyError:
            raise NotFound(f"Weave is not launched on {machine.name}", obj=machine.name,
                           op="find weave router", remedy=f"weave.launch({machine.name!r}) first") from None

    def _peer_address(self, peer: str) -> str:
        by_ip = {m.ip: m for m in self.cluster.machines}
        by_name = {m.name: m for m in self.cluster.machines}
        if peer in by_name:
            return by_name[peer].ip
        known = ", ".join(f"{m.name} {m.ip}" for m in self.cluster.machines)
        try:
            ip = str(validate.address(peer))
        except ValueError:
            raise NotFound(f"peer {peer!r} is neither an address nor a machine of the cluster",
                           obj=peer, op="weave launch", remedy=f"give one of: {known}") from None
        if ip not in by_ip:
            raise NotFound(f"peer {ip} is no machine of the cluster: nothing could answer on "
                           f"{ip}:6783", obj=ip, op="weave launch", remedy=f"give one of: {known}")
        return ip

    # -- weave launch ----------------------------------------------------------------------

    def launch(self, which: "str | ClusterNode", *peers: str, timeout: float = 15.0) -> WeaveRouter:
        """``weave launch [PEER ...]`` on a machine: the ``weave`` bridge (MTU 1376), the
        iptables chains, the router (TCP 6783, VXLAN UDP 6784) and weaveDNS (dnsmasq on
        docker0's address). ``peers`` are underlay addresses (or machine names)."""
        machine = self.machine(which)
        if machine.name in self.routers and self.routers[machine.name].running:
            raise InvalidTopology(f"Weave is already running on {machine.name}", obj=machine.name,
                                  op="weave launch", remedy="stop it first: weave.router(name).stop()")
        addresses = [self._peer_address(p) for p in peers]
        if machine.ip in addresses:
            raise InvalidTopology(f"{machine.name} cannot peer with itself ({machine.ip})",
                                  obj=machine.ip, op="weave launch",
                                  remedy="give the addresses of other machines")
        dns_address = self._ensure_bridges(machine)
        self._ensure_iptables(machine)
        process = machine.spawn_agent(
            "labkit.weave.router", "--nickname", machine.name, "--host", machine.ip,
            "--iface", machine.nic, "--ipalloc-range", str(self.range),
            "--dns-address", dns_address, "--state-dir", machine.path(STATE), *addresses)
        process.wait_for_output("weave router ready", timeout=timeout)
        router = WeaveRouter(self, machine, addresses, process, dns_address)
        self.routers[machine.name] = router
        return router

    def _ensure_bridges(self, machine: "ClusterNode") -> str:
        names = {i.ifname for i in machine.node.interfaces()}
        if DOCKER_BRIDGE not in names:
            machine.add_bridge(DOCKER_BRIDGE, address=str(self.docker_bridge))
        found = [a.local for a in machine.node.addresses(DOCKER_BRIDGE) if a.family == "inet"]
        if not found:
            raise InvalidTopology(f"{machine.name}'s docker0 has no IPv4 address for weaveDNS",
                                  obj=f"{machine.name}:docker0", op="weave launch",
                                  remedy="give docker0 an address (add_bridge('docker0', address=...))")
        if BRIDGE not in names:
            machine.node.add_bridge(BRIDGE, mtu=MTU)
        return str(found[0])

    def _ensure_iptables(self, machine: "ClusterNode") -> None:
        if machine.node.run(["iptables", "-S", "WEAVE-EXPOSE"]).returncode == 0:
            return
        rules = (
            "*nat\n:WEAVE - [0:0]\n-A POSTROUTING -j WEAVE\nCOMMIT\n"
            "*filter\n:WEAVE-EXPOSE - [0:0]\n"
            f"-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT\n"
            f"-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
            f"-A FORWARD -o {BRIDGE} -j WEAVE-EXPOSE\n"
            f"-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT\n"
            f"-A FORWARD -o {BRIDGE} -j DROP\nCOMMIT\n")
        machine.node.run(["iptables-restore", "--noflush"], input=rules, check=True)

    def wait_connected(self, timeout: float = 20.0) -> dict[str, list[str]]:
        """Wait until every launched router has an established connection to every other
        one; returns ``{machine: [connected peers]}``. A peer that never answers (not
        launched, wrong address) is named in the error."""
        import time

        end = time.monotonic() + timeout
        while True:
            running = {n: r for n, r in self.routers.items() if r.running}
            seen = {n: sorted(r.connected_peers()) for n, r in running.items()}
            if all(set(seen[n]) >= set(running) - {n} for n in running):
                return seen
            if time.monotonic() > end:
                missing = {n: sorted(set(running) - {n} - set(seen[n])) for n in running}
                raise NotFound(f"Weave peers not connected after {timeout} s: {missing}",
                               obj=str(missing), op="weave connect",
                               remedy="check the addresses given to launch() and the routers' "
                                      "logs (router.log())")
            time.sleep(0.3)

    # -- containers --------------------------------------------------------------------------

    def run(self, which: "str | ClusterNode", name: str, *, cidr: str | None = None) -> "Node":
        """``docker run --name NAME [-e WEAVE_CIDR=CIDR]`` through the Weave proxy: a
        container with ``eth0`` on docker0 and ``ethwe`` on the weave bridge."""
        machine = self.machine(which)
        self.router(machine)
        _check_name(name)
        taken = {a.local for c in machine.containers for a in c.addresses("eth0")}
        net = self.docker_bridge.network
        ip = next(h for h in net.hosts() if h != self.docker_bridge.ip and str(h) not in taken)
        container = machine.add_container(name, address=f"{ip}/{net.prefixlen}",
                                          bridge=DOCKER_BRIDGE, gateway=str(self.docker_bridge.ip))
        try:
            self.attach(machine, container, cidr=cidr)
        except Exception:
            self._forget(machine, container)
            raise
        return container

    def remove(self, container: "Node") -> None:
        """``docker rm -f NAME``: the router releases its addresses and DNS name, and the
        container's namespace goes (with its veths)."""
        machine = next((m for m in self.cluster.nodes if container in m.containers), None)
        if machine is None:
            raise NotFound(f"{container.name} is no container of this Weave network",
                           obj=container.name, op="docker rm", remedy="pass a container from run()")
        if machine.name in self.routers and self.routers[machine.name].running:
            self.routers[machine.name].call("release", container.name)
        self._forget(machine, container)

    def _forget(self, machine: "ClusterNode", container: "Node") -> None:
        self.cluster.lab.remove_node(container.name)
        machine.containers.remove(container)

    def attach(self, which: "str | ClusterNode", container: "Node", *, cidr: str | None = None) -> list[str]:
        """``weave attach [CIDR] CONTAINER``: an address from the router's IPAM (or the
        WEAVE_CIDR given), ``ethwe`` (MTU 1376) in the container, its host side
        ``vethwepl<N>`` in the weave bridge, and the name ``NAME.weave.local`` in weaveDNS."""
        machine = self.machine(which)
        router = self.router(machine)
        ipam.parse_weave_cidr(cidr, self.range)          # bad input: an error before any change
        args = ["allocate", container.name] + (["--cidr", cidr] if cidr else [])
        addresses = list(router.call(*args)["addresses"])
        n = self._veths.get(machine.name, 0) + 1
        self._veths[machine.name] = n
        try:
            self.cluster.lab.link(container, machine.node, names=(CONTAINER_IFNAME, f"vethwepl{n}"),
                                  bridges=(None, BRIDGE), mtu=MTU)
            for address in addresses:
                container.add_address(CONTAINER_IFNAME, address)
            container.add_route("224.0.0.0/4", dev=CONTAINER_IFNAME)
            router.call("dns-add", container.name, addresses[0].split("/")[0])
        except Exception:
            router.call("release", container.name)
            if CONTAINER_IFNAME in {i.ifname for i in container.interfaces()}:
                container.delete_link(CONTAINER_IFNAME)
            raise
        return addresses

    def address(self, container: "Node") -> str:
        """The container's first Weave address (on ethwe), without prefix length."""
        found = [a.local for a in container.addresses(CONTAINER_IFNAME) if a.family == "inet"]
        if not found:
            raise NotFound(f"{container.name} has no address on {CONTAINER_IFNAME}",
                           obj=container.name, op="find weave address",
                           remedy="attach it with weave.attach(machine, container)")
        return str(found[0])

    # -- weaveDNS ------------------------------------------------------------------------------

    def lookup(self, container: "Node", name: str, *, server: str | None = None) -> CommandResult:
        """``nslookup NAME.weave.local DNS`` in a container (busybox's nslookup), asking the
        weaveDNS of the machine it runs on (docker0's address) unless ``server`` is given."""
        fqdn = name if name.endswith(DOMAIN) else f"{name}.{DOMAIN}"
        return container.run(["busybox", "nslookup", fqdn, server or str(self.docker_bridge.ip)])

    def dns_add(self, which: "str | ClusterNode", name: str, ip: str) -> None:
        """``weave dns-add IP -h NAME.weave.local`` on a machine: one more name, gossiped to
        every peer's weaveDNS."""
        _check_name(name)
        self.router(which).call("dns-add", name, str(validate.address(ip)))

    def dns_remove(self, which: "str | ClusterNode", name: str) -> None:
        """``weave dns-remove -h NAME.weave.local`` on the machine that added it."""
        self.router(which).call("dns-remove", name)

    def resolve(self, container: "Node", name: str) -> str | None:
        """The address weaveDNS gives for ``name`` (None for NXDOMAIN)."""
        out = self.lookup(container, name).stdout
        if "NXDOMAIN" in out:
            return None
        found = re.findall(r"^Address:\s*([0-9.]+)\s*$", out, re.M)
        return found[-1] if len(found) > 1 or "Name:" in out else None

    # -- weave expose ---------------------------------------------------------------------------

    def expose(self, which: "str | ClusterNode", cidr: str | None = None) -> str:
        """``weave expose [CIDR]``: the machine gets an address on the weave bridge, the
        subnet is accepted in WEAVE-EXPOSE and masqueraded in WEAVE (nat). Returns the
        address (``10.32.0.3/12``)."""
        machine = self.machine(which)
        router = self.router(machine)
        requests = ipam.parse_weave_cidr(cidr, self.range)
        given = list(router.call("allocate", "weave:expose", *(["--cidr", cidr] if cidr else []))["addresses"])
        have = {f"{a.local}/{a.prefixlen}" for a in machine.node.addresses(BRIDGE)}
        rules_nat, rules_filter = [], []
        for address, req in zip(given, requests):
            if address not in have:
                machine.node.add_address(BRIDGE, address)
            subnet = str(req.subnet)
            if subnet in self.exposed.get(machine.name, []):
                continue
            self.exposed.setdefault(machine.name, []).append(subnet)
            rules_filter.append(f"-A WEAVE-EXPOSE -d {subnet} -j ACCEPT")
            rules_nat += [f"-A WEAVE -s {subnet} -d 224.0.0.0/4 -j RETURN",
                          f"-A WEAVE ! -s {subnet} -d {subnet} -j MASQUERADE",
                          f"-A WEAVE -s {subnet} ! -d {subnet} -j MASQUERADE"]
        if rules_filter:
            text = ("*nat\n" + "\n".join(rules_nat) + "\nCOMMIT\n*filter\n"
                    + "\n".join(rules_filter) + "\nCOMMIT\n")
            machine.node.run(["iptables-restore", "--noflush"], input=text, check=True)
        return given[0]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidName(f"container name {name!r} cannot be a DNS name in {DOMAIN}",
                                   obj=repr(name), op="docker run",
                                   remedy="use lower-case letters, digits and '-', e.g. bbox1")
