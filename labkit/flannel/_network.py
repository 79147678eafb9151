"""The notebook's handle on a flannel network: config in etcd, one agent per node, views.

Everything here acts through the real tools in the lab's machines (``etcdctl`` in the
store machine, ``cat`` of a machine's ``subnet.env``, the kernel's routes); the agents
themselves are :mod:`labkit.flannel.agent` processes.
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import TYPE_CHECKING, Any, Iterable

from .. import validate
from ..cluster.agent import RESYNC, agent_exited, exited_at_startup
from ..errors import CommandTimeout, InvalidTopology, NotFound
from .config import DEFAULT_TTL, LEASE_TTL, RENEW_MARGIN, ConfigError, parse_config, \
    parse_subnet_env, parse_subnet_key, prefix_problem

if TYPE_CHECKING:
    from ..docker.hosts import DockerHost
    from ..process import Process
    from ..cluster import Cluster, ClusterNode
    from ..cluster.etcd import Etcd

SUBNET_FILE = "/run/flannel/subnet.env"
AGENT_OPTIONS = ("ttl", "renew_margin", "ip_masq", "resync", "iface")   # Flannel.start(**options)


class Flannel:
    """Flannel on a :class:`~labkit.cluster.Cluster`::

        flannel = Flannel(cluster, prefix="/docker-test/network")
        flannel.configure("10.4.0.0/16", backend="vxlan")   # etcdctl put PREFIX/config '{...}'
        flannel.start_all(ttl=5)                             # flanneld -iface=eth1 ... on each node
        flannel.wait_converged()
        flannel.leases()                                     # etcdctl get --prefix PREFIX/subnets

    ``api=2`` uses etcd's v2 keyspace (``etcdctl set``) as the seed's 2017 flannel did.
    """

    def __init__(self, cluster: "Cluster", *, prefix: str = "/coreos.com/network", api: int = 3) -> None:
        if api not in (2, 3):
            raise InvalidTopology(f"etcd API {api!r} is not known", obj=str(api), op="create flannel",
                                  remedy="use api=3 (flannel >= 0.18) or api=2 (the 2017 keyspace)")
        wrong = prefix_problem(prefix)
        if wrong:
            raise InvalidTopology(wrong, obj=repr(prefix), op="create flannel",
                                  remedy="e.g. '/coreos.com/network'")
        self.cluster = cluster
        self.prefix = prefix
        self.api = api
        self.agents: dict[str, "Process"] = {}
        self._stopped: dict[str, "Process"] = {}   # the agent each node's stop() ended
        self.engines: dict[str, "DockerHost"] = {}   # real dockerd per node (start_docker)

    def __repr__(self) -> str:
        return f"<Flannel {self.prefix} (etcd v{self.api}) agents: {', '.join(self.running()) or 'none'}>"

    @property
    def etcd(self) -> "Etcd":
        if self.cluster.etcd is None or not self.cluster.etcd.running:
            raise InvalidTopology("etcd is not running in this cluster", op="use flannel",
                                  remedy="start it first: cluster.start_etcd()")
        return self.cluster.etcd

    # -- the config ---------------------------------------------------------------------

    @staticmethod
    def config_json(network: str = "10.4.0.0/16", *, subnet_len: int = 24, backend: str = "vxlan",
                    **backend_options: Any) -> str:
        """The JSON flanneld reads from ``PREFIX/config``, checked as flanneld checks it."""
        data: dict[str, Any] = {"Network": network, "SubnetLen": subnet_len,
                                "Backend": {"Type": backend, **backend_options}}
        text = json.dumps(data)
        try:
            parse_config(text)
        except ConfigError as exc:
            raise InvalidTopology(f"flannel config {text}: {exc}", obj=text, op="configure flannel",
                                  remedy="fix the value named above") from None
        return text

    def configure(self, network: str = "10.4.0.0/16", *, subnet_len: int = 24, backend: str = "vxlan",
                  raw: str | None = None, **backend_options: Any) -> str:
        """Write ``PREFIX/config`` with the real etcdctl (``put`` for v3, ``set`` for v2).

        ``raw`` writes a text as it is, unchecked (to see how flanneld takes a mistake).
        """
        text = raw if raw is not None else self.config_json(network, subnet_len=subnet_len,
                                                             backend=backend, **backend_options)
        verb = "put" if self.api == 3 else "set"
        self.etcd.etcdctl(self.etcd.machine, verb, f"{self.prefix}/config", text, api=self.api, check=True)
        return text

    # -- agents -------------------------------------------------------------------------

    def args(self, machine: "ClusterNode", *, ttl: float | None = None,
             renew_margin: float | None = None, ip_masq: bool = False, resync: float | None = None,
             iface: str | None = None) -> list[str]:
        """The agent's command line, flanneld style; every value checked first (seconds
        are numbers: ``ttl=30``, ``renew_margin=10``, ``resync=5``)."""
        op = f"start flanneld on {machine.name}"
        lease_ttl = DEFAULT_TTL if ttl is None else LEASE_TTL.check(ttl, name="ttl", op=op)
        margin = None if renew_margin is None else RENEW_MARGIN.check(
            renew_margin, name="renew_margin", op=op, example=2)
        if margin is not None and margin >= lease_ttl:
            raise InvalidTopology(f"renew_margin={renew_margin!r} is not shorter than the lease TTL "
                                  f"({lease_ttl:g} s): the lease would expire before its renewal",
                                  obj=repr(renew_margin), op=op,
                                  remedy="give a margin shorter than ttl, e.g. ttl=30, renew_margin=10")
        period = None if resync is None else RESYNC.check(resync, name="resync", op=op, example=5)
        validate.flag(ip_masq, what="ip_masq", op=op)
        if iface is not None and (not isinstance(iface, str) or not iface.strip() or " " in iface):
            raise InvalidTopology(f"iface={iface!r} is not an interface name or address",
                                  obj=repr(iface), op=op, remedy=f"e.g. iface={machine.nic!r}")
        out = [f"-etcd-endpoints={self.etcd.endpoint}", f"-iface={iface or machine.nic}",
               f"-etcd-prefix={self.prefix}", f"-etcd-api={self.api}"]
        if ttl is not None:
            out.append(f"-subnet-lease-ttl={LEASE_TTL.flag(lease_ttl)}")
        if margin is not None:
            out.append(f"-subnet-lease-renew-margin={RENEW_MARGIN.flag(margin)}")
        if period is not None:
            out.append(f"-resync-period={RESYNC.flag(period)}")
        if ip_masq:
            out.append("-ip-masq")
        return out

    def start(self, node: "str | ClusterNode", **options: Any) -> "Process":
        """Start flanneld on one node (``flanneld -etcd-endpoints=... -iface=eth1 -etcd-prefix=...``).

        Options: ``ttl`` (whole seconds; flanneld's is 24 h), ``renew_margin`` (seconds,
        shorter than ``ttl``), ``ip_masq``, ``resync`` (seconds), ``iface``. A running agent
        is left as it is. A wrong option or value raises InvalidTopology before anything starts.
        """
        unknown = sorted(set(options) - set(AGENT_OPTIONS))
        if unknown:
            raise InvalidTopology(f"flanneld has no option {', '.join(map(repr, unknown))}",
                                  obj=", ".join(unknown), op="start flanneld",
                                  remedy=f"use {', '.join(AGENT_OPTIONS)}")
        machine = self.cluster.node(node)
        current = self.agents.get(machine.name)
        if current is not None and current.running:
            return current
        proc = machine.spawn_agent("labkit.flannel.agent", *self.args(machine, **options))
        self.agents[machine.name] = proc
        return proc

    def start_all(self, nodes: Iterable[str] | None = None, **options: Any) -> list["Process"]:
        """:meth:`start` on each node (every worker by default); a bad option is refused
        when the first node is started, so none starts."""
        names = list(nodes) if nodes is not None else [m.name for m in self.cluster.nodes]
        return [self.start(n, **options) for n in names]

    def stop(self, node: "str | ClusterNode") -> int | None:
        """Stop one agent (SIGTERM, as ``systemctl stop flanneld``); its lease stays until it expires."""
        name = self.cluster.node(node).name
        proc = self.agents.get(name)
        if proc is None:
            return None
        self._stopped[name] = proc        # stopped on purpose: not an agent that died
        return proc.stop()

    def running(self) -> list[str]:
        return [name for name, proc in self.agents.items() if proc.running]

    def log(self, node: "str | ClusterNode") -> str:
        """What flanneld printed on ``node`` (glog lines)."""
        proc = self.agents.get(self.cluster.node(node).name)
        if proc is None:
            raise NotFound(f"no flanneld was started on {node!r}", obj=str(node), op="read flannel log",
                           remedy="start it with flannel.start(node)")
        return proc.stderr_text() + proc.stdout_text()

    # -- views ----------------------------------------------------------------------------

    def leases(self) -> list[dict[str, Any]]:
        """The leases in etcd, one row each: subnet, PublicIP, backend, VtepMAC (and, with
        v3, the etcd lease ID and its seconds left). ``etcdctl get --prefix PREFIX/subnets``."""
        rows = []
        if self.api == 3:
            for kv in self.etcd.kvs(f"{self.prefix}/subnets/"):
                rows.append(self._row(kv["key"], kv["value"], kv["lease"]))
        else:
            for key, value in self.etcd.get_v2(f"{self.prefix}/subnets").items():
                rows.append(self._row(key, value, 0))
        return sorted(rows, key=lambda r: ipaddress.ip_network(r["subnet"]))

    def _row(self, key: str, value: str, lease: int) -> dict[str, Any]:
        subnet = parse_subnet_key(key)
        try:
            data = json.loads(value)
        except ValueError:
            data = {}
        row = {"subnet": str(subnet), "PublicIP": data.get("PublicIP"),
               "BackendType": data.get("BackendType"),
               "VtepMAC": (data.get("BackendData") or {}).get("VtepMAC")}
        if self.api == 3:
            row["lease"] = format(lease, "x")
            row["ttl"] = self.etcd.lease_ttl(lease) if lease else None
        return row

    def subnet_env(self, node: "str | ClusterNode") -> dict[str, str]:
        """``cat /run/flannel/subnet.env`` on ``node``, as a dict ({} if not written yet)."""
        text = self.cluster.node(node).read_text(SUBNET_FILE)
        return parse_subnet_env(text) if text else {}

    def wait_for_lease(self, node: "str | ClusterNode", timeout: float = 30.0) -> dict[str, str]:
        """Wait until flanneld on ``node`` has written its subnet.env; return it."""
        end = time.monotonic() + timeout
        machine = self.cluster.node(node)
        while True:
            env = self.subnet_env(machine)
            if env.get("FLANNEL_SUBNET"):
                return env
            proc = self.agents.get(machine.name)
            if proc is not None and not proc.running and self._stopped.get(machine.name) is proc:
                raise InvalidTopology(f"flanneld on {machine.name} was stopped (flannel.stop) before "
                                      "it wrote subnet.env", obj=machine.name, op="wait for lease",
                                      remedy="start it again: flannel.start(node)")
            if proc is not None and not proc.running:
                raise exited_at_startup(proc, f"flanneld on {machine.name}", op="wait for lease",
                                        remedy="fix what that line names, then flannel.start(node) "
                                               "again (flannel.log(node) has the whole log)")
            if time.monotonic() > end:
                log = self.log(machine)[-600:] if proc is not None else ""
                raise CommandTimeout(f"flanneld on {machine.name} wrote no subnet.env within {timeout} s; "
                                     f"its log ends: {log}", obj=machine.name, op="wait for lease",
                                     remedy="read flannel.log(node): the E lines say what is missing")
            time.sleep(0.1)

    def routes_to_others(self, node: "str | ClusterNode") -> dict[str, str]:
        """The routes flanneld installed on ``node``: {destination: device} for destinations
        inside the flannel network (``ip route``)."""
        machine = self.cluster.node(node)
        env = self.subnet_env(machine)
        if not env:
            return {}
        network = ipaddress.ip_network(env["FLANNEL_NETWORK"])
        out = {}
        for r in machine.routes("inet"):
            if r.dst in ("default", None) or not r.dev:
                continue
            dst = ipaddress.ip_network(r.dst, strict=False)
            if dst.subnet_of(network) and r.dev in ("flannel.1", "flannel0", machine.nic) or dst == network:
                out[str(dst)] = r.dev
        return out

    def converged(self) -> bool:
        """Every running agent has written subnet.env and has a route for every other lease."""
        names = self.running()
        envs = {n: self.subnet_env(n) for n in names}
        if not all(e.get("FLANNEL_SUBNET") for e in envs.values()):
            return False
        subnets = {n: str(ipaddress.ip_network(e["FLANNEL_SUBNET"], strict=False)) for n, e in envs.items()}
        for n in names:
            routes = self.routes_to_others(n)
            network = envs[n]["FLANNEL_NETWORK"]
            if routes.get(network) == "flannel0":  # udp: one route to the whole network
                continue
            if any(subnets[o] not in routes for o in names if o != n):
                return False
        return True

    def wait_converged(self, timeout: float = 60.0) -> None:
        """Wait until :meth:`converged` (every node routes to every other node's subnet).

        Raises :class:`~labkit.errors.AgentExited` as soon as an agent has ended on its own
        (one ended with :meth:`stop` is fine), and InvalidTopology if none runs at all.
        """
        end = time.monotonic() + timeout
        while True:
            self._check_agents()
            if self.converged():
                return
            if time.monotonic() > end:
                raise CommandTimeout(f"flannel did not converge within {timeout} s "
                                     f"(agents running: {self.running()})", op="wait for flannel",
                                     remedy="read flannel.log(node) for each node")
            time.sleep(0.1)

    def _check_agents(self) -> None:
        """Raise if an agent died on its own, or if none runs: nothing could converge then."""
        for name, proc in self.agents.items():
            if not proc.running and self._stopped.get(name) is not proc:
                raise agent_exited(proc, f"flanneld on {name}", op="wait for flannel",
                                   remedy=f"read flannel.log({name!r}), fix the cause and start it "
                                          "again with flannel.start(node)")
        if not self.running():
            raise InvalidTopology("no flanneld is running", op="wait for flannel",
                                  remedy="start the agents first: flannel.start_all()")

    def docker_bridge(self, node: "str | ClusterNode", name: str = "docker0") -> str:
        """Configure ``node``'s container bridge from its subnet.env, as Docker is started
        with ``dockerd --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU``; returns the bridge address.

        An existing bridge of that name is given the new address and MTU (its old addresses go).
        """
        machine = self.cluster.node(node)
        env = self.subnet_env(machine)
        if not env:
            raise NotFound(f"{machine.name} has no {SUBNET_FILE} yet", obj=machine.name,
                           op="configure docker bridge", remedy="start flanneld there and wait for its lease")
        bip, mtu = env["FLANNEL_SUBNET"], int(env["FLANNEL_MTU"])
        if any(i.ifname == name for i in machine.interfaces()):
            for a in machine.addresses(name):
                if a.family == "inet" and a.cidr != bip:
                    machine.del_address(name, a.cidr)
            machine.set_link(name, mtu=mtu)
            if bip not in [a.cidr for a in machine.addresses(name)]:
                machine.add_address(name, bip)
        else:
            machine.add_bridge(name, address=bip, mtu=mtu)
        return bip

    # -- the real Docker engine -------------------------------------------------------------

    def docker_opts(self, node: "str | ClusterNode") -> list[str]:
        """dockerd's options from ``node``'s subnet.env, as flannel's ``mk-docker-opts.sh``
        writes them: ``--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU``, and ``--ip-masq=false``
        when flanneld masquerades itself (``FLANNEL_IPMASQ=true``), so that Docker does not
        also hide containers behind the node on their way to other nodes.
        """
        machine = self.cluster.node(node)
        env = self.subnet_env(machine)
        if not env.get("FLANNEL_SUBNET") or not env.get("FLANNEL_MTU"):
            raise NotFound(f"{machine.name} has no complete {SUBNET_FILE} yet", obj=machine.name,
                           op="docker options", remedy="start flanneld there and wait for its lease")
        opts = [f"--bip={env['FLANNEL_SUBNET']}", f"--mtu={int(env['FLANNEL_MTU'])}"]
        if env.get("FLANNEL_IPMASQ") == "true":
            opts.append("--ip-masq=false")
        return opts

    def start_docker(self, node: "str | ClusterNode") -> "DockerHost":
        """Start the real Docker engine on ``node`` with :meth:`docker_opts` (root only).

        ``dockerd --bip=... --mtu=... [--ip-masq=false]`` in the node's network stack: it
        makes ``docker0`` from the lease, and containers started with ``engine.run(NAME)``
        get addresses of the node's flannel subnet. The engine stops when the lab closes;
        a node's running engine is returned as it is. Use either this or
        :meth:`docker_bridge` on a node, not both.
        """
        from ..docker.machine import engine_on

        machine = self.cluster.node(node)
        current = self.engines.get(machine.name)
        if current is not None and current.running:
            return current                               # like start(): a running one is kept
        if any(i.ifname == "docker0" for i in machine.interfaces()):
            raise InvalidTopology(f"{machine.name} already has a docker0 bridge", obj=machine.name,
                                  op="start Docker", remedy="dockerd makes docker0 itself: start it on a "
                                  "node where docker_bridge() was not used")
        engine = engine_on(machine, args=self.docker_opts(machine))
        self.engines[machine.name] = engine
        return engine

