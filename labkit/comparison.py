"""The orchestrator networks of the course side by side, measured (curriculum D5).

Each network is built in turn on the same cluster shape (``host`` .100 with etcd where
the system needs it, ``node1`` .101 and ``node2`` .102 on 192.168.99.0/24, MTU 1500), with
one container on each worker, and measured from node1's container to node2's with real
traffic:

=================  ===========================================================================
overhead_bytes     bytes the network adds to each packet, read from a capture on node2's card
configured_mtu     the MTU of the container's interface
path_mtu           the largest IP packet that crosses with DF set (``ping -M do -s N``, searched)
rtt_ms             ``ping -c 20 -i 0.01`` average, after a warm-up
tcp_mbit_*         ``iperf3 -t SECONDS`` over TCP, ``runs`` times: median, min and max
setup_s            from starting the system's agents to the first answered ping between the two
                   containers (daemons, leases/peering/BGP, routes, containers)
other_protocol     whether an IP packet of protocol 253 (RFC 3692, experimental: neither TCP,
                   UDP nor ICMP) sent from a raw socket reaches the other container
addresses          the two containers' addresses (one subnet for all, or one per host)
store              whether the system ran etcd
=================  ===========================================================================

Docker's overlay network is built on the same cluster with the real engine: one
``dockerd`` per worker, in that machine's network stack (:func:`labkit.docker.machine.engine_on`),
joined into a swarm over the underlay, an attachable overlay network, one container on
each side. It needs root and Debian's ``dockerd``; :func:`available` says whether a
network can be built here and why not, and :func:`compare` leaves out what cannot.

This module is the top of the stack: it uses every system (Flannel, Calico, Weave,
Romana) and nothing imports it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import measure
from .cluster import Cluster
from .errors import CommandTimeout, InvalidTopology
from .lab import Lab
from .node import Node


@dataclass
class Built:
    """One network on a cluster, ready to measure: a container on node1 and one on node2."""

    name: str
    cluster: Cluster
    client: Node
    server: Node
    dst: str
    setup_s: float
    notes: str = ""
    ifname: str = "eth0"           # the container's interface on this network


def _first_ping(client: Node, dst: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not client.ping(dst, count=1, wait=0.5).received:
        if time.monotonic() > end:
            raise CommandTimeout(f"{client.name} could not reach {dst} within {timeout} s",
                                 obj=client.name, op="build network", remedy="read the agents' logs")


def build_flannel(lab: Lab, backend: str = "vxlan") -> Built:
    from .flannel import Flannel

    cluster = Cluster(lab)
    started = time.monotonic()
    cluster.start_etcd()
    flannel = Flannel(cluster)
    flannel.configure("10.4.0.0/16", backend=backend)
    flannel.start_all()
    flannel.wait_converged()
    pods = []
    for machine in cluster.nodes:
        bip = flannel.docker_bridge(machine)               # dockerd --bip=$FLANNEL_SUBNET --mtu=...
        net = bip.rsplit(".", 1)[0]
        pods.append(machine.add_container(f"c-{machine.name}", address=f"{net}.2/24"))
    dst = pods[1].addresses("eth0")[0].local
    _first_ping(pods[0], dst)
    return Built(f"Flannel {backend}", cluster, pods[0], pods[1], dst, time.monotonic() - started)


def build_calico(lab: Lab) -> Built:
    from .calico import Calico

    cluster = Cluster(lab)
    started = time.monotonic()
    calico = Calico(cluster).start()
    calico.add_network("net1")
    a = calico.add_workload("node1", "c-node1", network="net1")
    b = calico.add_workload("node2", "c-node2", network="net1")
    _first_ping(a.node, b.ip)
    return Built("Calico", cluster, a.node, b.node, b.ip, time.monotonic() - started)


def build_weave(lab: Lab) -> Built:
    from .weave import Weave

    cluster = Cluster(lab)                                  # the store machine stays idle
    started = time.monotonic()
    weave = Weave(cluster)
    weave.launch("node1")
    weave.launch("node2", cluster["node1"].ip)
    weave.wait_connected()
    a, b = weave.run("node1", "c-node1"), weave.run("node2", "c-node2")
    dst = weave.address(b)
    _first_ping(a, dst)
    return Built("Weave", cluster, a, b, dst, time.monotonic() - started,
                 "kernel VXLAN on UDP 6784 (fast datapath without openvswitch)", ifname="ethwe")


def build_romana(lab: Lab) -> Built:
    from .romana import Romana

    cluster = Cluster(lab)
    started = time.monotonic()
    romana = Romana(cluster)
    romana.start()
    a = romana.add_pod("node1", "c-node1", tenant=1, segment=1)
    b = romana.add_pod("node2", "c-node2", tenant=1, segment=1)
    dst = romana.address(b)
    _first_ping(a, dst)
    return Built("Romana", cluster, a, b, dst, time.monotonic() - started)


def build_underlay(lab: Lab) -> Built:
    """The baseline: node1 to node2 over their own cards, no container network at all."""
    cluster = Cluster(lab)
    started = time.monotonic()
    node1, node2 = cluster["node1"], cluster["node2"]
    _first_ping(node1.node, node2.ip)
    return Built("underlay", cluster, node1.node, node2.node, node2.ip, time.monotonic() - started,
                 "host to host on eth1: the baseline", ifname=cluster.nic)


def build_docker_overlay(lab: Lab) -> Built:
    """Docker's own multi-host network: swarm mode and an overlay (VXLAN, UDP 4789)."""
    from .docker.hosts import join_swarm
    from .docker.machine import engine_on

    cluster = Cluster(lab)                                  # the store machine stays idle
    started = time.monotonic()
    engines = {m.name: engine_on(m) for m in cluster.nodes}  # dockerd in node1, node2
    manager = join_swarm(engines)                           # docker swarm init / join over eth1
    engines[manager].docker.network("compare", subnet="10.10.3.0/24", driver="overlay",
                                    attachable=True)        # docker network create -d overlay
    a = engines["node1"].run("c-node1", network="compare")
    b = engines["node2"].run("c-node2", network="compare")
    # The containers' namespaces belong to the engines, not to the lab's bubble: a
    # host-mode lab looks into them (nsenter --net --target PID) and runs the tools there.
    view = Lab(f"{lab.name}v"[:32], mode="host", workdir=lab.workdir)
    lab.on_close(view.close)
    client, server = a.netns(view, "c-node1"), b.netns(view, "c-node2")
    dst = b.ip("compare")
    ifname = next(i.ifname for i in server.interfaces()
                  if any(x.local == dst for x in server.addresses(i.ifname)))
    _first_ping(client, dst)
    return Built("Docker overlay", cluster, client, server, dst, time.monotonic() - started,
                 "swarm mode, VXLAN on UDP 4789 (VNI from 4097), no external store", ifname=ifname)


def available(name: str) -> tuple[bool, str]:
    """Whether network ``name`` can be built on this machine, and if not, why."""
    if name not in NETWORKS:
        return False, f"unknown network {name!r}"
    if name == "Docker overlay":
        from .docker.machine import engine_status

        return engine_status()
    return True, ""


NETWORKS: dict[str, Callable[[Lab], Built]] = {
    "underlay": build_underlay,
    "Docker overlay": build_docker_overlay,
    "Flannel vxlan": lambda lab: build_flannel(lab, "vxlan"),
    "Flannel udp": lambda lab: build_flannel(lab, "udp"),
    "Weave": build_weave,
    "Calico": build_calico,
    "Romana": build_romana,
}


def path_mtu(client: Node, dst: str, *, low: int = 1000, high: int = 1500) -> int:
    """The largest IP packet ``client`` gets across to ``dst`` with DF set
    (:func:`labkit.measure.path_mtu`), or an error when not even ``low`` bytes pass."""
    found = measure.path_mtu(client, dst, low=low, high=high)
    if not found:
        raise InvalidTopology(f"not even a {low}-byte packet reaches {dst} from {client.name}",
                              obj=client.name, op="measure path MTU", remedy="check connectivity first")
    return found


@dataclass
class Measurement:
    network: str
    overhead_bytes: int
    configured_mtu: int
    path_mtu: int
    rtt_ms: float
    tcp_runs: list[float] = field(default_factory=list)
    setup_s: float = 0.0
    other_protocol: bool = False
    addresses: str = ""
    store: bool = False
    notes: str = ""

    def row(self) -> dict[str, Any]:
        runs = self.tcp_runs or [float("nan")]
        return {"network": self.network, "overhead_bytes": self.overhead_bytes,
                "configured_mtu": self.configured_mtu, "path_mtu": self.path_mtu,
                "rtt_ms": round(self.rtt_ms, 3), "tcp_mbit_median": round(statistics.median(runs), 1),
                "tcp_mbit_min": round(min(runs), 1), "tcp_mbit_max": round(max(runs), 1),
                "tcp_runs": len(self.tcp_runs), "setup_s": round(self.setup_s, 2),
                "other_protocol": self.other_protocol, "addresses": self.addresses,
                "store": "etcd" if self.store else "none"}


def other_protocol_passes(built: Built, protocol: int = 253) -> bool:
    """Send three IP packets of ``protocol`` from a raw socket in the client; True if the
    server's interface saw any (a capture on it)."""
    script = ("import socket\n"
              f"s = socket.socket(socket.AF_INET, socket.SOCK_RAW, {int(protocol)})\n"
              f"for _ in range(3): s.sendto(b'labkit-probe', ({built.dst!r}, 0))\n")
    with built.server.capture(built.ifname, filter=f"ip proto {int(protocol)}") as cap:
        built.client.run(["python3", "-c", script], check=True)
        time.sleep(0.3)
    return len(cap.table()) > 0


def _addresses(built: Built) -> str:
    return ", ".join(f"{a.local}/{a.prefixlen}" for n in (built.client, built.server)
                     for a in n.addresses(built.ifname) if a.family == "inet")


def measure_built(built: Built) -> Measurement:
    """Everything but throughput, for one built network (see the module's table)."""
    node2 = built.cluster["node2"]
    overhead = measure.overhead_bytes(node2, node2.nic, built.client, built.dst)
    rtt = measure.latency(built.client, built.dst)
    return Measurement(built.name, overhead, int(built.client.interface(built.ifname).mtu),
                       path_mtu(built.client, built.dst), float(rtt.rtt_avg or 0.0), [],
                       built.setup_s, other_protocol_passes(built), _addresses(built),
                       built.cluster.etcd is not None, built.notes)


def compare(networks: list[str] | None = None, *, runs: int = 3, seconds: int = 1,
            workdir: str | None = None, progress: Callable[[str], None] | None = None) -> list[Measurement]:
    """Build each network in its own lab (all kept open until the end), measure each, then
    run the throughput tests in rounds across all of them; the labs close at the end.

    ``networks`` defaults to every network :func:`available` here."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 1 or runs < 1:
        raise InvalidTopology(f"runs={runs!r}, seconds={seconds!r}: iperf3 runs whole seconds",
                              op="compare", remedy="give runs >= 1 and a whole number of seconds >= 1")
    names = list(networks) if networks is not None else [n for n in NETWORKS if available(n)[0]]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        raise InvalidTopology(f"unknown network(s) {unknown}", obj=str(unknown), op="compare",
                              remedy=f"choose from {', '.join(NETWORKS)}")
    for n in names:
        ok, why = available(n)
        if not ok:
            raise InvalidTopology(f"{n} cannot be built here: {why}", obj=n, op="compare",
                                  remedy="leave it out (compare() without a list skips it)")
    out: list[Measurement] = []
    with contextlib.ExitStack() as stack:
        built: list[Built] = []
        for i, name in enumerate(names):
            if progress:
                progress(name)
            lab = stack.enter_context(Lab(f"compare{i}", workdir=workdir))
            built.append(NETWORKS[name](lab))
            out.append(measure_built(built[-1]))
        # throughput in rounds, one run of every network per round: a load that changes
        # during the benchmark (a shared machine) then weighs on every network alike
        for _ in range(runs):
            for b, m in zip(built, out):
                m.tcp_runs.append(measure.throughput_mbit(b.client, b.server, b.dst, seconds=seconds))
    return out
