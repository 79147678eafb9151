"""The cluster: machines on one underlay network, each a router with its own containers.

Seed 001's layout by default::

                       underlay 192.168.99.0/24 (the VirtualBox host-only network)
          +--------------------+--------------------+
      eth1|.100            eth1|.101            eth1|.102
        host                 node1                node2
       (etcd)          docker0 + containers   docker0 + containers

Every machine is a router node (forwarding on) whose card ``eth1`` is plugged into the
switch node ``underlay`` (one bridge). Per-machine files (``subnet.env``, ``bird.cfg``,
CNI data) live in a state folder per machine on the lab's private ``/run``
(:attr:`ClusterNode.state_dir`), so they vanish with the lab however it ends.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex
import sys
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .. import validate
from ..errors import DuplicateName, InvalidAddress, InvalidTopology, NotFound
from ..node import Node
from .etcd import Etcd

if TYPE_CHECKING:
    from ..lab import Lab
    from ..process import Process

DEFAULT_UNDERLAY = "192.168.99.0/24"
STORE_OFFSET = 100   # host .100, node1 .101, node2 .102 ... as in seed 001
STATE_FOLDER = "cluster"   # machine state folders: <lab scratch>/cluster/<machine>
DEFAULT_NIC = "eth1"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ClusterNode(Node):
    """One machine of a :class:`Cluster`: a router node with an underlay address.

    It *is* the lab's :class:`~labkit.Node` for that machine (``lab.nodes[name]`` is this
    object), so every Node method and every API taking a node accept it; :attr:`node`
    returns itself, for symmetry with plain code that wants "the Node".
    """

    def __init__(self, cluster: "Cluster", node: Node, ip: str, nic: str, role: str) -> None:
        self.__dict__.update(node.__dict__)   # take over the Node's state (name, claimed names)
        node.lab.nodes[node.name] = self
        self.cluster = cluster
        self.ip = ip
        self.nic = nic
        self.role = role
        self.state_dir = f"{cluster.state_root}/{node.name}"
        self.containers: list[Node] = []

    @property
    def node(self) -> "ClusterNode":
        return self

    def __repr__(self) -> str:
        return f"<ClusterNode {self.name} {self.ip} ({self.role})>"

    # -- files the real system keeps on this machine ---------------------------------

    def path(self, path: str) -> str:
        """Where this machine's ``path`` (e.g. ``/run/flannel/subnet.env``) really is.

        Every machine of the lab shares one filesystem, so each one's ``/run``, ``/etc``
        and ``/var/lib`` are folders under :attr:`state_dir`::

            node1.path("/run/flannel/subnet.env")   # .../cluster/node1/run/flannel/subnet.env
            node1.run(["cat", node1.path("/run/flannel/subnet.env")])
        """
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise InvalidAddress(f"path {path!r} is not an absolute path inside the machine",
                                 obj=repr(path), op="find machine file",
                                 remedy="give an absolute path without '..', e.g. /run/flannel/subnet.env")
        return self.state_dir + path

    def read_text(self, path: str) -> str | None:
        """The content of this machine's ``path`` (``cat PATH``), or None if it does not exist."""
        result = self.run(["cat", self.path(path)])
        return result.stdout if result.ok else None

    def write_text(self, path: str, text: str) -> str:
        """Write this machine's ``path`` (folders made as needed); returns the real path."""
        real = self.path(path)
        self.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", real],
                      input=text, check=True)
        return real

    # -- containers ---------------------------------------------------------------------

    def add_bridge(self, name: str = "docker0", address: str | None = None,  # type: ignore[override]
                   mtu: int | None = None, *, mac: str | None = None, up: bool = True) -> str:
        """A container bridge on this machine, as ``dockerd --bip=ADDRESS --mtu=MTU`` makes.

        ``ip link add docker0 type bridge; ip addr add ADDRESS dev docker0; ip link set
        docker0 [mtu MTU] up``
        """
        return super().add_bridge(name, address=address, mtu=mtu, mac=mac, up=up)

    def add_container(self, name: str, *, address: str, bridge: str = "docker0",
                      gateway: str | None = None, mtu: int | None = None) -> "Node":
        """A container on ``bridge``: a host node with ``eth0``, plugged like Docker does.

        ::

            ip netns add NAME
            ip link add vethXXXXXXX mtu MTU type veth peer name eth0 netns NAME
            ip link set vethXXXXXXX master docker0 up
            ip -n NAME addr add ADDRESS dev eth0; ip -n NAME route add default via GATEWAY

        ``gateway`` defaults to the bridge's address, ``mtu`` to the bridge's MTU. On any
        error nothing is left behind.
        """
        lab = self.cluster.lab
        validate.new_node(name, "host", lab.nodes, lab.name)
        iface = validate.interface_address(address)
        bridge_if = self.interface(bridge)
        if bridge_if.kind != "bridge":
            raise InvalidTopology(f"{self.name}:{bridge} is a {bridge_if.kind or 'plain'} device, "
                                  "not a bridge", obj=f"{self.name}:{bridge}", op="add container",
                                  remedy="give the name of a bridge made with add_bridge()")
        if gateway is None:
            found = [a.local for a in self.addresses(bridge) if a.family == "inet"
                     and iface.ip in ipaddress.ip_network(f"{a.local}/{a.prefixlen}", strict=False)]
            gateway = found[0] if found else None
        if mtu is None:
            mtu = bridge_if.mtu
        host_side = "veth" + hashlib.sha1(f"{lab.name}/{name}".encode()).hexdigest()[:7]
        container = lab.add_host(name)
        try:
            lab.link(container, self, names=("eth0", host_side), bridges=(None, bridge), mtu=mtu)
            container.add_address("eth0", str(iface))
            if gateway is not None:
                container.add_route("default", via=gateway)
        except Exception:
            lab.remove_node(name)
            raise
        self.containers.append(container)
        return container

    # -- agents -------------------------------------------------------------------------

    def spawn_agent(self, module: str, *args: str, env: dict[str, str] | None = None) -> "Process":
        """Run ``python -m MODULE ARGS...`` in this machine, with the lab's Python.

        The agent is a lab process: it dies with the lab; stop it with ``.stop()``, read
        what it logged with ``.stdout_text()`` / ``.stderr_text()``. Its environment
        names its machine: ``LABKIT_MACHINE`` and ``LABKIT_STATE_DIR`` (what
        :func:`labkit.cluster.agent.machine_path` uses to find ``/run/...`` files).
        """
        if not isinstance(module, str) or not _MODULE.match(module):
            raise InvalidTopology(f"{module!r} is not a Python module name", obj=repr(module),
                                  op="spawn agent", remedy="e.g. 'labkit.flannel.agent'")
        full = {"LABKIT_MACHINE": self.name, "LABKIT_STATE_DIR": self.state_dir, **(env or {})}
        return self.spawn([sys.executable, "-m", module, *[str(a) for a in args]], env=full)


class Cluster:
    """Machines on one underlay network: a store machine and workers, all routers.

    ::

        cluster = Cluster(lab)                                  # host .100, node1 .101, node2 .102
        cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
        cluster = Cluster(lab, store=None)                      # no store machine (Weave)
        cluster = Cluster.sized(lab, 30)                        # node1..node30 + host

    ``underlay`` is the network of the cards; the store gets its ``.100`` and the
    workers ``.101``, ``.102`` ... in order. ``nic`` is the card's name on every machine,
    ``mtu`` the underlay's MTU, ``switch`` the name of the switch node.
    """

    def __init__(self, lab: "Lab", *, nodes: Sequence[str] = ("node1", "node2"),
                 store: str | None = "host", underlay: str = DEFAULT_UNDERLAY, nic: str = DEFAULT_NIC,
                 mtu: int = 1500, switch: str = "underlay") -> None:
        if isinstance(nodes, str):
            nodes = [nodes]
        names = list(nodes)
        if not names:
            raise InvalidTopology("a cluster needs at least one worker node", op="create cluster",
                                  remedy="pass nodes=['node1', 'node2', ...]")
        everyone = ([store] if store else []) + names + [switch]
        for name in everyone:
            validate.node_name(name)
        if len(set(everyone)) != len(everyone):
            raise DuplicateName(f"a machine name is used twice in {everyone}", op="create cluster",
                                remedy="give the store, the workers and the switch different names")
        for name in everyone:
            validate.new_node(name, "router", lab.nodes, lab.name)
        validate.ifname(nic)
        validate.mtu(mtu)
        net = validate.network(underlay)
        if not isinstance(net, ipaddress.IPv4Network):
            raise InvalidAddress(f"underlay {underlay} is not an IPv4 network", obj=underlay,
                                 op="create cluster", remedy="use e.g. 192.168.99.0/24")
        last = STORE_OFFSET + len(names)
        if last >= net.num_addresses - 1:
            raise InvalidAddress(f"underlay {net} has no room for {len(names)} nodes from "
                                 f".{STORE_OFFSET + 1}", obj=str(net), op="create cluster",
                                 remedy="use a larger underlay, e.g. underlay='192.168.0.0/16'")
        self.lab = lab
        self.underlay = net
        self.nic = nic
        self.mtu = mtu
        scratch = str(lab._client.info.get("scratch", "/tmp")) if lab._client else "/tmp"
        self.state_root = f"{scratch}/{STATE_FOLDER}"
        self.etcd: Etcd | None = None
        plan = ([(store, STORE_OFFSET, "store")] if store else []) + \
            [(n, STORE_OFFSET + 1 + i, "worker") for i, n in enumerate(names)]
        with lab.batch():
            self.switch = lab.add_switch(switch)
            made: list[ClusterNode] = []
            for name, offset, role in plan:
                node = lab.add_router(name)
                ip = str(net.network_address + offset)
                lab.link(node, self.switch, names=(nic, None), mtu=mtu)
                node.add_address(nic, f"{ip}/{net.prefixlen}")
                made.append(ClusterNode(self, node, ip, nic, role))
        self.machines: list[ClusterNode] = made
        self.store: ClusterNode | None = made[0] if store else None
        self.nodes: list[ClusterNode] = [m for m in made if m.role == "worker"]
        self._by_name = {m.name: m for m in made}
        made[0].node.run(["mkdir", "-p", *[m.state_dir for m in made]], check=True)

    @classmethod
    def sized(cls, lab: "Lab", n: int, **kwargs: Any) -> "Cluster":
        """A cluster of ``n`` workers ``node1`` .. ``nodeN`` (plus the store), for benchmarks."""
        if not isinstance(n, int) or n < 1:
            raise InvalidTopology(f"cluster size {n!r} is not a positive integer", obj=repr(n),
                                  op="create cluster", remedy="e.g. Cluster.sized(lab, 10)")
        if n > 150 and "underlay" not in kwargs:
            kwargs["underlay"] = "192.168.0.0/16"
        return cls(lab, nodes=[f"node{i}" for i in range(1, n + 1)], **kwargs)

    def __repr__(self) -> str:
        return f"<Cluster {self.lab.name}: {', '.join(m.name for m in self.machines)} on {self.underlay}>"

    def node(self, name: "str | ClusterNode | Node") -> ClusterNode:
        """The machine called ``name`` (a ClusterNode or its Node are accepted too)."""
        key = name if isinstance(name, str) else getattr(name, "name", None)
        try:
            return self._by_name[key]  # type: ignore[index]
        except KeyError:
            raise NotFound(f"{key!r} is not a machine of this cluster "
                           f"(machines: {', '.join(self._by_name)})", obj=str(key),
                           op="find cluster machine", remedy="use one of the names listed") from None

    def __getitem__(self, name: str) -> ClusterNode:
        return self.node(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.machines)

    # -- the store ----------------------------------------------------------------------

    def start_etcd(self, *, v2: bool = True, election_ms: int = 100) -> Etcd:
        """Start Debian's etcd in the store machine; returns it once healthy.

        Listens on ``http://STORE_IP:2379`` and ``127.0.0.1:2379``; ``v2`` also serves the
        v2 API (``--enable-v2=true``) for the seed's ``ETCDCTL_API=2`` commands.
        ``election_ms`` shortens the single member's first election (etcd's default is
        1000 ms).
        """
        if self.store is None:
            raise InvalidTopology("this cluster has no store machine", op="start etcd",
                                  remedy="create it with Cluster(lab, store='host')")
        if self.etcd is None:
            self.etcd = Etcd(self, self.store, v2=v2, election_ms=election_ms)
        return self.etcd.start()

    # -- helpers ------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Plain data for tables and drawings: the underlay and each machine's role,
        address, bridges and containers."""
        rows = []
        for m in self.machines:
            rows.append({"name": m.name, "role": m.role, "ip": m.ip, "nic": m.nic,
                         "containers": [c.name for c in m.containers]})
        return {"underlay": str(self.underlay), "mtu": self.mtu, "switch": self.switch.name,
                "store": self.store.name if self.store else None, "machines": rows,
                "etcd": self.etcd.endpoint if self.etcd else None}

    def static_routes(self, subnets: dict[str, str]) -> None:
        """Route each machine's container subnet via its underlay address on every other
        machine (``ip route replace SUBNET via MACHINE_IP``): the floor no overlay beats."""
        with self.lab.batch():
            for owner, subnet in subnets.items():
                via = self.node(owner).ip
                for m in self.machines:
                    if m.name != self.node(owner).name:
                        m.node.add_route(subnet, via=via, replace=True)

    def ping_all(self, targets: dict[str, str] | None = None, *, sources: Iterable[str] | None = None,
                 count: int = 1, wait: float = 1.0) -> dict[tuple[str, str], bool]:
        """Ping every target from every source machine, all at once; ``{(src, dst): ok}``.

        ``targets`` maps a label to an address (default: every machine's underlay
        address); ``sources`` are machine names (default: all). A source does not ping
        its own label. ``ping -c COUNT -W WAIT`` is run in parallel within each machine,
        and the machines run side by side.
        """
        if targets is None:
            targets = {m.name: m.ip for m in self.machines}
        for addr in targets.values():
            validate.address(addr)
        srcs = [self.node(s) for s in (sources if sources is not None else [m.name for m in self.machines])]
        procs = []
        for m in srcs:
            lines = [f"( ping -n -q -c {int(count)} -W {float(wait)} {shlex.quote(ip)} >/dev/null 2>&1 "
                     f"&& echo ok {shlex.quote(label)} || echo no {shlex.quote(label)} ) &"
                     for label, ip in targets.items() if label != m.name]
            procs.append((m, m.node.spawn(["sh", "-c", "\n".join(lines + ["wait"])])))
        out: dict[tuple[str, str], bool] = {}
        for m, proc in procs:
            proc.wait(timeout=count * (wait + 1) + 60)
            for line in proc.stdout_text().splitlines():
                verdict, _, label = line.partition(" ")
                out[(m.name, label)] = verdict == "ok"
        return out
