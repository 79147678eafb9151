"""Calico on a :class:`labkit.cluster.Cluster`: what ``calicoctl node run``, ``docker
network create --driver calico`` and ``docker run --net`` do in seed 001 §4.5.

::

    with Lab("calico") as lab:
        cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
        calico = Calico(cluster).start()          # etcd keys, calico agents, BIRD per node
        calico.wait_established()                 # birdc show protocols: all Established
        calico.add_network("cal_net1")            # a profile: members talk to each other
        bbox1 = calico.add_workload("node1", "bbox1", network="cal_net1")
        bbox2 = calico.add_workload("node2", "bbox2", network="cal_net1")
        bbox1.node.ping(bbox2.ip)                 # ttl=62 across nodes

Who does what, as in Calico: the notebook writes the desired state into etcd (as
calicoctl and the libnetwork/CNI plugin do) and wires each workload's veth (as the
plugin does); the IPAM runs in the workload's machine against etcd (calico-ipam); the
calico agent of each machine (felix + confd, :mod:`labkit.calico.agent`) programs the
node and BIRD's files; BIRD (:mod:`labkit.calico.bird`) speaks BGP with the others and
writes the routes into the kernel.
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from .. import validate
from ..cluster.agent import RESYNC, agent_exited
from ..errors import CommandTimeout, InvalidTopology, NotFound
from . import bird, birdcfg, ctl, felix, keys
from .ipam import DEFAULT_BLOCK_SIZE, DEFAULT_POOL, make_pool

if TYPE_CHECKING:
    from ..cluster import Cluster, ClusterNode
    from ..node import Node
    from ..process import Process

DEFAULT_RR_CLUSTER_ID = "244.0.0.1"
AGENT = "labkit.calico.agent"
STATUS = "/var/run/calico/revision"   # the etcd revision a node's agent last applied


@dataclass
class Workload:
    """A container wired the Calico way: ``eth0`` with a /32, default via 169.254.1.1."""

    name: str
    machine: "ClusterNode"
    node: "Node"
    ip: str
    ifname: str                     # the host side, caliXXXXXXXXXXX
    block: str
    profiles: tuple[str, ...]
    namespace: str = "default"

    def __repr__(self) -> str:
        return f"<Workload {self.name} {self.ip} on {self.machine.name} via {self.ifname}>"


@dataclass
class Calico:
    """Calico (BGP mode, no encapsulation) on the workers of ``cluster``.

    ``route_reflectors`` (machine names) turns the node-to-node mesh off: those machines
    get ``rr_cluster_id`` and every other node peers with them only (N-1 sessions with
    one reflector, instead of N(N-1)/2). ``default_route`` gives each worker ``default via <store machine>``, as
    the seed's hosts had a default route: proxy ARP for 169.254.1.1 needs one.
    """

    cluster: "Cluster"
    pool: str = DEFAULT_POOL
    block_size: int = DEFAULT_BLOCK_SIZE
    as_num: int = birdcfg.DEFAULT_AS
    route_reflectors: Sequence[str] = ()
    rr_cluster_id: str = DEFAULT_RR_CLUSTER_ID
    default_route: bool = True
    resync: float = 5.0
    _prepared: bool = field(default=False, init=False, repr=False)
    agents: dict[str, "Process"] = field(default_factory=dict, init=False)
    birds: dict[str, "Process"] = field(default_factory=dict, init=False)
    workloads: dict[str, Workload] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        make_pool(self.pool, self.block_size)          # bad pool / block size: fail now
        validate.integer(self.as_num, 1, 4294967295, what="AS number", op="configure Calico",
                         remedy="use a private AS such as 64512 (Calico's default)")
        validate.address(self.rr_cluster_id)
        self.resync = RESYNC.check(self.resync, name="resync", op="configure Calico", example=5)
        names = [m.name for m in self.cluster.nodes]
        for name in self.route_reflectors:
            if name not in names:
                raise NotFound(f"route reflector {name!r} is not a worker of the cluster "
                               f"({', '.join(names)})", obj=name, op="configure Calico",
                               remedy="name one of the cluster's workers")
        if self.cluster.store is None:
            raise InvalidTopology("Calico keeps its state in etcd, but this cluster has no store "
                                  "machine", obj="store", op="configure Calico",
                                  remedy="build the cluster with store='host' (the default)")

    # -- the datastore ------------------------------------------------------------------

    @property
    def etcd(self) -> Any:
        etcd = getattr(self.cluster, "etcd", None)
        if etcd is None or not etcd.running:
            etcd = self.cluster.start_etcd()
        return etcd

    def keys(self, prefix: str = keys.ROOT) -> dict[str, str]:
        """Calico's keys in etcd (``ETCDCTL_API=3 etcdctl get --prefix /calico``)."""
        return self.etcd.get_prefix(prefix)

    def _ctl(self, *args: str) -> dict[str, Any]:
        self._prepare()
        return ctl.run(self.cluster.nodes[0], self.etcd.endpoint, *args)

    def _prepare(self) -> None:
        """The cluster-wide keys, once: the underlay reserved from IPAM, and the pool."""
        if self._prepared:
            return
        endpoint = self.etcd.endpoint
        ctl.run(self.cluster.nodes[0], endpoint, "reserve", "add", str(self.cluster.underlay),
                "--reason", "the cluster's underlay")
        if keys.pool(self.pool) not in self.keys(keys.POOLS):
            ctl.run(self.cluster.nodes[0], endpoint, "pool", "add", self.pool,
                    "--block-size", str(self.block_size))
        self._prepared = True

    # -- starting -----------------------------------------------------------------------

    def start(self, *, wait: bool = True, timeout: float = 90.0) -> "Calico":
        """``calicoctl node run`` on every worker: keys, agent, BIRD; then wait for BGP."""
        etcd = self.etcd
        self._prepare()
        etcd.put(keys.AS_NUM, str(self.as_num))
        etcd.put(keys.NODE_MESH, json.dumps({"enabled": not self.route_reflectors}))
        for machine in self.cluster.nodes:
            etcd.put(keys.host_ip(machine.name), machine.ip)
            if machine.name in self.route_reflectors:
                etcd.put(keys.rr_cluster_id(machine.name), self.rr_cluster_id)
        for machine in self.cluster.nodes:
            if self.default_route and not any(r.dst == "default" for r in machine.node.routes("inet")):
                machine.node.add_route("default", via=self.cluster.store.ip)
            self.agents[machine.name] = machine.spawn_agent(
                AGENT, "--node", machine.name, "--etcd-endpoints", etcd.endpoint,
                "--confdir", bird.confdir(machine), "--bird-socket", bird.socket_path(machine),
                "--status-file", machine.path(STATUS), "--resync", RESYNC.flag(self.resync))
        for machine in self.cluster.nodes:
            self.start_bird(machine.name)
        if wait:
            self.wait_established(timeout=timeout)
        return self

    def machine(self, name: "str | ClusterNode") -> "ClusterNode":
        machine = self.cluster.node(name)
        if machine not in self.cluster.nodes:
            raise InvalidTopology(f"{machine.name} is not a Calico node (it is the cluster's "
                                  f"{machine.role})", obj=machine.name, op="use Calico node",
                                  remedy=f"use a worker: {', '.join(m.name for m in self.cluster.nodes)}")
        return machine

    def start_bird(self, name: "str | ClusterNode") -> "Process":
        """Start BIRD on a node (again): ``bird -c .../bird.cfg -s .../bird.ctl``."""
        machine = self.machine(name)
        old = self.birds.get(machine.name)
        if old is not None and old.running:
            return old
        self.birds[machine.name] = bird.start(machine)
        return self.birds[machine.name]

    def stop_bird(self, name: "str | ClusterNode") -> None:
        """Stop BIRD on a node (SIGTERM): its peers drop the session and withdraw its blocks."""
        machine = self.machine(name)
        process = self.birds.get(machine.name)
        if process is not None:
            process.stop()

    def birdc(self, name: "str | ClusterNode", *args: str) -> str:
        """``birdc -s /var/run/calico/bird.ctl ARGS`` on a node; its output."""
        return bird.birdc(self.machine(name), *args).stdout

    def protocols(self, name: "str | ClusterNode") -> list[bird.Protocol]:
        return bird.protocols(self.machine(name))

    def expected_sessions(self, name: "str | ClusterNode") -> list[str]:
        """The BGP protocol names confd gives this node (``Mesh_<ip>`` or ``Node_<ip>``)."""
        machine = self.machine(name)
        peers = [birdcfg.Peer(m.name, m.ip, self.rr_cluster_id if m.name in self.route_reflectors
                              else None) for m in self.cluster.nodes]
        me = next(p for p in peers if p.name == machine.name)
        return [n for n, _, _ in birdcfg.sessions(me, peers, mesh=not self.route_reflectors)]

    def sessions(self) -> dict[str, dict[str, str]]:
        """Every node's BGP sessions and their state: {node: {protocol: info}}."""
        return {m.name: {p.name: p.info or p.state for p in self.protocols(m) if p.proto == "BGP"}
                for m in self.cluster.nodes}

    def _check_agents(self, op: str) -> None:
        """Raise :class:`~labkit.errors.AgentExited` if a node's agent has ended: nothing it
        should do would happen any more."""
        for name, proc in self.agents.items():
            if not proc.running:
                raise agent_exited(proc, f"the calico agent on {name}", op=op,
                                   remedy=f"read calico.agents[{name!r}].stderr_text(); Calico then "
                                          "has to be started again in a new lab")

    def _until(self, pending: "Callable[[], Any]", *, timeout: float, step: float, op: str,
               remedy: str) -> None:
        """Poll ``pending()`` (what is still missing; empty when done) until it is empty;
        stop at once if an agent has died."""
        end = time.monotonic() + timeout
        while True:
            self._check_agents(op)
            left = pending()
            if not left:
                return
            if time.monotonic() > end:
                raise CommandTimeout(f"{op}: still waiting after {timeout} s for {left}", obj=op,
                                     op=op, remedy=remedy)
            time.sleep(step)

    def wait_established(self, timeout: float = 90.0) -> dict[str, dict[str, str]]:
        """Wait until every node's expected sessions are Established (``birdc show protocols``)."""
        def pending() -> dict[str, list[str]]:
            seen = self.sessions()
            missing = {m.name: [s for s in self.expected_sessions(m)
                                if not seen[m.name].get(s, "").startswith("Established")]
                       for m in self.cluster.nodes}
            return {k: v for k, v in missing.items() if v}

        self._until(pending, timeout=timeout, step=0.5, op="wait for BGP sessions",
                    remedy="read `birdc show protocols all` and the agents' logs")
        return self.sessions()

    def revision(self) -> int:
        """etcd's current revision (``etcdctl get /calico -w json``: header.revision)."""
        result = self.etcd.etcdctl(self.cluster.store, "get", keys.AS_NUM, "-w", "json", check=True)
        return int(json.loads(result.stdout)["header"]["revision"])

    def wait_synced(self, timeout: float = 30.0) -> None:
        """Wait until every node's agent has applied everything written to etcd so far
        (routes, sysctls, chains, BIRD's files): after ``set_profile``, say."""
        target = self.revision()
        self._until(lambda: [m.name for m in self.cluster.nodes
                             if int((m.read_text(STATUS) or "0").strip() or 0) < target],
                    timeout=timeout, step=0.1, op=f"wait for the calico agents to reach etcd revision {target}",
                    remedy="read their logs (calico.agents[NODE].stderr_text())")

    def wait_routes(self, timeout: float = 60.0) -> None:
        """Wait until each node's kernel routes every other node's blocks ``proto bird``."""
        self._until(self.missing_routes, timeout=timeout, step=0.5, op="wait for block routes",
                    remedy="check the BGP sessions (calico.sessions())")

    def wait_withdrawn(self, name: "str | ClusterNode", timeout: float = 60.0) -> None:
        """Wait until no other node's kernel routes ``name``'s blocks any more (its BGP
        sessions are gone, e.g. after :meth:`stop_bird`)."""
        machine = self.machine(name)
        gone = [b for b, host in self.blocks().items() if host == machine.name]

        def pending() -> dict[str, list[str]]:
            left = {m.name: [r.dst for r in m.node.routes("inet") if r.protocol == "bird" and r.dst in gone]
                    for m in self.cluster.nodes if m is not machine}
            return {k: v for k, v in left.items() if v}

        self._until(pending, timeout=timeout, step=0.2, op=f"wait for {machine.name}'s blocks to be withdrawn",
                    remedy="is BIRD on that node stopped? (graceful restart keeps the routes of a peer "
                           "that vanished without closing its sessions)")

    def missing_routes(self) -> dict[str, list[str]]:
        """For each node, the other nodes' blocks its kernel does not route via their owner."""
        owners = self.blocks()
        ips = {m.name: m.ip for m in self.cluster.nodes}
        missing: dict[str, list[str]] = {}
        for machine in self.cluster.nodes:
            have = {(r.dst, r.gateway) for r in machine.node.routes("inet") if r.protocol == "bird"}
            lost = [b for b, host in owners.items() if host != machine.name and host in ips
                    and (b, ips[host]) not in have]
            if lost:
                missing[machine.name] = lost
        return missing

    # -- IPAM and networks ----------------------------------------------------------------

    def add_pool(self, cidr: str, block_size: int = DEFAULT_BLOCK_SIZE) -> str:
        """``calicoctl create`` of an ``ipPool`` (seed 001 §4.5.5): a new range for workloads."""
        make_pool(cidr, block_size)
        return str(self._ctl("pool", "add", str(cidr), "--block-size", str(block_size))["cidr"])

    def pools(self) -> list[str]:
        return sorted((json.loads(v)["cidr"] for v in self.keys(keys.POOLS).values()),
                      key=ipaddress.IPv4Network)

    def blocks(self) -> dict[str, str]:
        """Every allocated block and the node it belongs to: {"192.168.119.0/26": "node1"}."""
        out = {}
        for key in self.keys("/calico/ipam/v2/host/"):
            parts = key.split("/")
            out[str(keys.cidr_of(parts[-1]))] = parts[5]
        return dict(sorted(out.items(), key=lambda kv: ipaddress.IPv4Network(kv[0])))

    def assign_address(self, machine: "str | ClusterNode", handle: str, *, pool: str | None = None,
                       ip: str | None = None) -> dict[str, str]:
        """``calico-ipam`` ADD without a container: an address (and, the first time, a
        block) for ``machine``, held by ``handle``. Returns {"ip": ..., "block": ...}."""
        host = self.machine(machine)
        args = ["ipam", "assign", "--node", host.name, "--handle", handle]
        args += ["--pool", str(pool)] if pool else []
        args += ["--ip", str(ip)] if ip else []
        return self._ctl(*args)

    def release_address(self, handle: str) -> list[str]:
        """``calico-ipam`` DEL: free what ``handle`` holds (the block stays with its node)."""
        return list(self._ctl("ipam", "release", "--handle", handle)["released"])

    def add_network(self, name: str) -> None:
        """``docker network create --driver calico --ipam-driver calico-ipam NAME``: a
        profile named after the network, letting its members in and everything out."""
        self.set_profile(felix.Profile.network(validate.node_name(name)))

    def set_profile(self, profile: "felix.Profile | str", *, inbound: Iterable[Mapping[str, Any]] | None = None,
                    outbound: Iterable[Mapping[str, Any]] | None = None) -> None:
        """``calicoctl apply -f profile.yml``: replace a profile's rules.

        ``calico.set_profile("cal_web", inbound=[{"action": "allow", "protocol": "tcp",
        "src_tag": "cal_net2", "dst_ports": [80]}], outbound=[{"action": "allow"}])``
        """
        if isinstance(profile, str):
            name = validate.node_name(profile)
            current = self.profiles().get(name)
            profile = felix.Profile(
                name,
                tuple(felix.check_rule(r, name) for r in (inbound or ())),
                tuple(felix.check_rule(r, name) for r in (outbound if outbound is not None
                                                         else (current.outbound if current else ()))),
                current.tags if current else (name,))
        for rule in (*profile.inbound, *profile.outbound):
            felix.check_rule(rule, profile.name)
        self.etcd.put(keys.profile_tags(profile.name), json.dumps(list(profile.tags)))
        self.etcd.put(keys.profile_rules(profile.name), profile.rules_json())

    def profiles(self) -> dict[str, felix.Profile]:
        kv = self.keys(keys.PROFILES)
        out = {}
        for key, value in kv.items():
            if key.endswith("/rules"):
                name = key[len(keys.PROFILES):].split("/", 1)[0]
                rules = json.loads(value)
                out[name] = felix.Profile(name, tuple(rules.get("inbound_rules", [])),
                                          tuple(rules.get("outbound_rules", [])),
                                          tuple(json.loads(kv.get(keys.profile_tags(name), "[]"))))
        return out

    # -- workloads ------------------------------------------------------------------------

    def add_workload(self, machine: "str | ClusterNode", name: str, *, network: str | Sequence[str],
                     pool: str | None = None, ip: str | None = None, namespace: str = "default",
                     timeout: float = 30.0) -> Workload:
        """``docker run --net NETWORK --name NAME`` on ``machine``, wired as Calico wires it::

            ip link add caliXXXXXXXXXXX address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns NAME
            ip -n NAME addr add IP/32 dev eth0
            ip -n NAME route add 169.254.1.1 dev eth0 scope link
            ip -n NAME route add default via 169.254.1.1 dev eth0
            # felix, on the node: sysctls on caliX, `ip route add IP dev caliX scope link`
        """
        host = self.machine(machine)
        lab = self.cluster.lab
        validate.new_node(name, "host", lab.nodes, lab.name)
        validate.node_name(namespace)
        networks = (network,) if isinstance(network, str) else tuple(network)
        known = self.profiles()
        for net in networks:
            if net not in known:
                raise NotFound(f"profile (network) {net!r} does not exist (known: "
                               f"{', '.join(sorted(known)) or 'none'})", obj=net, op="add workload",
                               remedy=f"create it first: calico.add_network({net!r})")
        ifname = felix.interface_name(namespace, name)
        handle = f"{namespace}.{name}"
        got = self.assign_address(host, handle, pool=pool, ip=ip)
        container = None
        try:
            container = lab.add_host(name)
            lab.link(container, host.node, names=("eth0", ifname), macs=(None, felix.WORKLOAD_MAC))
            container.add_address("eth0", f"{got['ip']}/32")
            container.add_route(felix.GATEWAY, dev="eth0")
            container.add_route("default", via=felix.GATEWAY, dev="eth0")
            endpoint = felix.Endpoint(host.name, name, ifname, f"{got['ip']}/32", networks,
                                      orchestrator="libnetwork")
            self.etcd.put(keys.endpoint(host.name, "libnetwork", name, ifname), endpoint.to_json())
            self._wait_host_route(host, got["ip"], ifname, timeout)
        except Exception:
            self.release_address(handle)
            if container is not None:
                lab.remove_node(name)
            raise
        workload = Workload(name, host, container, got["ip"], ifname, got["block"], networks, namespace)
        self.workloads[name] = workload
        return workload

    def _wait_host_route(self, host: "ClusterNode", ip: str, ifname: str, timeout: float) -> None:
        self._until(lambda: not any(r.dst == f"{ip}/32" and r.dev == ifname for r in host.node.routes("inet")),
                    timeout=timeout, step=0.1, op=f"wait for felix on {host.name} to add `{ip} dev {ifname}`",
                    remedy="is the calico agent running there? read its log")

    def remove_workload(self, name: str) -> None:
        """``docker rm -f NAME``: endpoint key, address and container go; felix cleans up."""
        workload = self.workloads.pop(name)
        self.etcd.delete(keys.endpoint(workload.machine.name, "libnetwork", name, workload.ifname))
        self.release_address(f"{workload.namespace}.{name}")
        self.cluster.lab.remove_node(name)
