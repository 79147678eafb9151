"""Romana on a cluster, from the notebook: the daemon's decisions and the CNI plugin's plumbing.

The notebook plays ``romanad`` (it numbers the hosts, keeps the IPAM of tenants,
segments and endpoints, and writes each host agent's configuration file,
``/etc/romana/agent.json`` on that machine) and the Romana CNI plugin (a pod's veth
``romanaXXXXXXX``, its address, its default route through the host's gateway, proxy ARP
on the host side). The agent (:mod:`labkit.romana.agent`, a lab process per machine)
turns the file into routes and isolation chains.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from .. import validate
from ..errors import CommandTimeout, InvalidTopology, NotFound
from .layout import Layout, Parts

if TYPE_CHECKING:
    from ..cluster import Cluster, ClusterNode
    from ..node import Node
    from ..process import Process

CONFIG = "/etc/romana/agent.json"


class Romana:
    """Romana's hierarchical layer-3 network across a cluster's workers.

    ::

        cluster = Cluster(lab, store=None)
        romana = Romana(cluster)                      # Layout(): 10/8, 8 / 4 / 4 / 8 bits
        romana.start()                                # romana-agent on every worker
        a = romana.add_pod("node1", "a", tenant=1, segment=1)    # 10.0.17.1
        b = romana.add_pod("node2", "b", tenant=1, segment=1)    # 10.1.17.1
        a.ping(romana.address(b))                     # routed, no encapsulation
    """

    def __init__(self, cluster: "Cluster", layout: Layout | None = None) -> None:
        self.cluster = cluster
        self.layout = layout or Layout()
        workers = cluster.nodes
        if len(workers) > self.layout.capacity("host"):
            raise InvalidTopology(f"{len(workers)} hosts do not fit {self.layout.bits['host']} host bits",
                                  obj=repr(self.layout), op="romana start",
                                  remedy="use fewer machines or a layout with more host bits")
        self.host_ids: dict[str, int] = {m.name: i for i, m in enumerate(workers)}
        self.endpoints: dict[str, dict[str, Any]] = {}      # pod name -> record
        self.agents: dict[str, "Process"] = {}

    def __repr__(self) -> str:
        return f"<Romana {self.layout!r} hosts={self.host_ids}>"

    def machine(self, which: "str | ClusterNode") -> "ClusterNode":
        machine = self.cluster.node(which)
        if machine.name not in self.host_ids:
            raise NotFound(f"{machine.name} is not a Romana host", obj=machine.name,
                           op="romana", remedy=f"use one of {', '.join(self.host_ids)}")
        return machine

    def host_id(self, which: "str | ClusterNode") -> int:
        return self.host_ids[self.machine(which).name]

    # -- the daemon's side: configuration files -----------------------------------------------

    def config_for(self, machine: "ClusterNode") -> dict[str, Any]:
        hosts = [{"name": m.name, "id": self.host_ids[m.name], "ip": m.ip} for m in self.cluster.nodes]
        mine = [e for e in self.endpoints.values() if e["host"] == machine.name]
        return {"layout": self.layout.to_dict(), "host_id": self.host_ids[machine.name],
                "nic": machine.nic, "hosts": hosts,
                "endpoints": [{k: e[k] for k in ("name", "address", "tenant", "segment", "ifname")}
                              for e in mine]}

    def _publish(self, machine: "ClusterNode") -> None:
        machine.write_text(CONFIG, json.dumps(self.config_for(machine), indent=1) + "\n")

    def start(self, timeout: float = 15.0) -> None:
        """Write every host's configuration and start ``romana-agent`` on each; returns once
        each agent has programmed its host (romana-gw, routes to the other blocks)."""
        for machine in self.cluster.nodes:
            if machine.name in self.agents and self.agents[machine.name].running:
                continue
            machine.node.set_forwarding(True)
            self._publish(machine)
            self.agents[machine.name] = machine.spawn_agent("labkit.romana.agent", "--config",
                                                            machine.path(CONFIG))
        for machine in self.cluster.nodes:
            self.agents[machine.name].wait_for_output("romana agent synced", timeout=timeout)

    def agent(self, which: "str | ClusterNode") -> "Process":
        name = self.machine(which).name
        if name not in self.agents:
            raise NotFound(f"no romana agent on {name}", obj=name, op="romana",
                           remedy="call romana.start() first")
        return self.agents[name]

    # -- the CNI plugin's side: pods ----------------------------------------------------------

    def add_pod(self, which: "str | ClusterNode", name: str, *, tenant: int, segment: int,
                timeout: float = 10.0) -> "Node":
        """A pod of ``tenant``/``segment`` on a host: the next free endpoint of that segment
        in the host's block, a veth ``romanaXXXXXXX`` (``eth0`` inside), ``default via``
        the host's gateway, proxy ARP on the host side; then the agent adds its route."""
        machine = self.machine(which)
        lab = self.cluster.lab
        validate.new_node(name, "host", lab.nodes, lab.name)
        host = self.host_ids[machine.name]
        self.layout.check("tenant", tenant)
        self.layout.check("segment", segment)
        used = {self.layout.decompose(e["address"]).endpoint for e in self.endpoints.values()
                if e["host"] == machine.name and (e["tenant"], e["segment"]) == (tenant, segment)}
        if (tenant, segment) == (0, 0):
            used.add(self.layout.decompose(self.layout.gateway(host)).endpoint)
        top = self.layout.capacity("endpoint") - 1
        free = [n for n in range(1, top) if n not in used]
        if not free:
            raise InvalidTopology(f"segment {segment} of tenant {tenant} on {machine.name} is full "
                                  f"({top - 1} endpoints)", obj=name, op="romana add pod",
                                  remedy="use another segment or host")
        address = self.layout.compose(host, tenant, segment, free[0])
        ifname = "romana" + hashlib.sha1(f"{lab.name}/{name}".encode()).hexdigest()[:7]
        prefix = self.layout.host_block(host).prefixlen
        pod = lab.add_host(name)
        try:
            lab.link(pod, machine.node, names=("eth0", ifname))
            pod.add_address("eth0", f"{address}/{prefix}")
            pod.add_route("default", via=str(self.layout.gateway(host)))
            machine.node.set_sysctl(f"net.ipv4.conf.{ifname}.proxy_arp", 1)
            machine.node.set_sysctl(f"net.ipv4.neigh.{ifname}.proxy_delay", 0)  # answer at once
        except Exception:
            lab.remove_node(name)
            raise
        self.endpoints[name] = {"name": name, "host": machine.name, "address": str(address),
                                "tenant": tenant, "segment": segment, "ifname": ifname, "node": pod}
        self._publish(machine)
        self._wait_route(machine, f"{address}", ifname, timeout)
        return pod

    def remove_pod(self, pod: "Node | str") -> None:
        """Delete a pod; its host's agent removes its route."""
        name = pod if isinstance(pod, str) else pod.name
        if name not in self.endpoints:
            raise NotFound(f"{name} is no Romana pod", obj=name, op="romana remove pod",
                           remedy=f"one of {', '.join(self.endpoints) or 'none yet'}")
        record = self.endpoints.pop(name)
        self.cluster.lab.remove_node(name)
        self._publish(self.cluster.node(record["host"]))

    def _wait_route(self, machine: "ClusterNode", address: str, ifname: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not any(r.dst in (address, f"{address}/32") and r.dev == ifname
                      for r in machine.node.routes()):
            if time.monotonic() > end:
                raise CommandTimeout(f"romana agent on {machine.name} did not add the route to "
                                     f"{address} within {timeout} s", obj=machine.name,
                                     op="romana add pod", remedy="read its log: romana.agent(name).stdout_text()")
            time.sleep(0.05)

    def address(self, pod: "Node | str") -> str:
        name = pod if isinstance(pod, str) else pod.name
        try:
            return str(self.endpoints[name]["address"])
        except KeyError:
            raise NotFound(f"{name} is no Romana pod", obj=name, op="romana address",
                           remedy="create it with romana.add_pod(...)") from None

    def parts(self, pod: "Node | str") -> Parts:
        """Host, tenant, segment and endpoint of a pod, read back from its address."""
        return self.layout.decompose(self.address(pod))

    def table(self) -> list[dict[str, Any]]:
        """One row per pod: host, address and its fields (for a DataFrame)."""
        return [{"pod": n, "host": e["host"], "address": e["address"], "veth": e["ifname"],
                 **self.layout.decompose(e["address"]).as_dict()}
                for n, e in self.endpoints.items()]
