"""Pods on one machine, as the kubelet and its container runtime make them.

A pod is a network namespace (``/run/netns/<pod>``, as containerd pins one under
``/var/run/netns/cni-...``) in which a pause process runs; its containers are processes
started in the same namespace, so they share ``localhost`` and one port space. The
pod's network comes from the machine's CNI configuration (written, as on a real node,
to ``<state_dir>/etc/cni/net.d/10-labkit.conflist``), applied with the real plugins
through :class:`~labkit.kubernetes.cni.CniRuntime`: loopback first (containerd's
``cni-loopback``), then the pod network (bridge + host-local + portmap, or ptp).
host-local keeps its leases in ``<state_dir>/var/lib/cni/networks``.

A *machine* is a :class:`labkit.cluster.ClusterNode`: its ``/etc`` and ``/var/lib`` are
folders in the lab (``machine.path("/etc/cni/net.d")``), read through the machine
(``cat``), and gone with the lab.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import sys
import uuid
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ..cluster.agent import positive_seconds
from ..errors import DuplicateName, InvalidTopology, NamespacesUnavailable, NotFound
from ..process import Process
from ..results import CommandResult
from .echo import MAX_HITS
from .cni import Attachment, CniResult, CniRuntime, write_file

if TYPE_CHECKING:
    from ..node import Node

NETWORK_NAME = "k8s-pod-network"
LOOPBACK = {"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}
CNI_KINDS = ("bridge", "ptp")
_POD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


def whole(value: object, least: int, most: int, *, what: str, op: str, example: int) -> int:
    """A whole-number keyword argument from ``least`` to ``most``, else InvalidTopology."""
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise InvalidTopology(f"{what}={value!r} is not a whole number from {least} to {most}",
                              obj=repr(value), op=op, remedy=f"e.g. {what}={example}")
    return value


def port_number(value: object, *, what: str, op: str) -> int:
    """A TCP/UDP port keyword argument (1 to 65535), else InvalidTopology."""
    return whole(value, 1, 65535, what=what, op=op, example=8080)


class Machine(Protocol):
    """What the kubelet needs of a machine (a ClusterNode has it)."""

    name: str
    node: "Node"
    ip: str

    def path(self, path: str) -> str: ...


def pod_network_config(kind: str, pod_cidr: str, data_dir: str, *, mtu: int | None = None,
                       bridge: str = "cni0") -> dict[str, Any]:
    """The CNI configuration list a node uses for its pods (kubenet-like for ``bridge``)."""
    ipam = {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}
    if kind == "bridge":
        main: dict[str, Any] = {"type": "bridge", "bridge": bridge, "isGateway": True,
                                "ipMasq": False, "hairpinMode": True, "ipam": ipam}
    elif kind == "ptp":
        main = {"type": "ptp", "ipMasq": False, "ipam": ipam}
    else:
        raise InvalidTopology(f"pod network kind {kind!r} is not known", obj=kind,
                              op="configure CNI", remedy=f"use one of {', '.join(CNI_KINDS)}")
    if mtu is not None:
        main["mtu"] = mtu
    return {"cniVersion": "1.0.0", "name": NETWORK_NAME,
            "plugins": [main, {"type": "portmap", "capabilities": {"portMappings": True},
                               "snat": True}]}


class Pod:
    """A running pod: its sandbox (namespace + pause), containers and CNI result."""

    def __init__(self, kubelet: "Kubelet", name: str, namespace: str, labels: dict[str, str],
                 node: "Node", pause: Process, sandbox_id: str, uid: str,
                 host_ports: list[dict[str, Any]]) -> None:
        self.kubelet = kubelet
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.node = node
        self.pause = pause
        self.sandbox_id = sandbox_id
        self.uid = uid
        self.host_ports = host_ports
        self.result: CniResult | None = None
        self.containers: dict[str, Process] = {}

    def __repr__(self) -> str:
        return f"<Pod {self.namespace}/{self.name} on {self.kubelet.name} ip={self.ip}>"

    @property
    def ip(self) -> str:
        """The pod IP (``status.podIP``)."""
        return self.result.ip if self.result else ""

    @property
    def netns(self) -> str:
        return self.kubelet.netns_path(self.name)

    @property
    def attachment(self) -> Attachment:
        return Attachment(container_id=self.sandbox_id, netns=self.netns, ifname="eth0",
                          args={"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": self.namespace,
                                "K8S_POD_NAME": self.name,
                                "K8S_POD_INFRA_CONTAINER_ID": self.sandbox_id,
                                "K8S_POD_UID": self.uid},
                          capability_args={"portMappings": self.host_ports} if self.host_ports else {})

    def start_container(self, name: str, cmd: Sequence[str], *, env: dict[str, str] | None = None) -> Process:
        """Start a container: a process in the pod's network namespace."""
        if name in self.containers and self.containers[name].running:
            raise DuplicateName(f"container {name!r} already runs in pod {self.name!r}",
                                obj=f"{self.name}/{name}", op="start container",
                                remedy="choose another container name")
        proc = self.node.spawn(list(cmd), env=env)
        self.containers[name] = proc
        return proc

    def start_echo(self, name: str = "echo", *, port: int = 8080, udp: bool = False) -> Process:
        """Start the lessons' echo server as a container and wait until it listens."""
        port = port_number(port, what="port", op="start echo server")
        argv = [sys.executable, "-m", "labkit.kubernetes.echo", "serve", "--port", str(port),
                "--name", self.name] + (["--udp"] if udp else [])
        proc = self.start_container(name, argv)
        proc.wait_for_output("listening on", timeout=30)
        return proc

    def exec(self, cmd: "str | Sequence[str]", *, timeout: float = 60.0) -> CommandResult:
        """``kubectl exec POD -- CMD``: run a command in the pod's namespace."""
        return self.node.run(cmd, timeout=timeout)

    def hit(self, host: str, port: int, *, count: int = 1, udp: bool = False,
            timeout: float = 5.0) -> dict[str, Any]:
        """Open ``count`` new connections to host:port from this pod; replies per pod."""
        op = f"hit {host}:{port} from {self.name}"
        if not isinstance(host, str) or not host.strip() or host.startswith("-"):
            raise InvalidTopology(f"host {host!r} is not an address", obj=repr(host), op=op,
                                  remedy="give an IP address, e.g. a Service's cluster_ip")
        port = port_number(port, what="port", op=op)
        count = whole(count, 1, MAX_HITS, what="count", op=op, example=100)
        timeout = positive_seconds.check(timeout, name="timeout", op=op, example=5)
        argv = [sys.executable, "-m", "labkit.kubernetes.echo", "hit", host, str(port),
                "--count", str(count), "--timeout", str(timeout)] + (["--udp"] if udp else [])
        out = self.node.run(argv, timeout=count * timeout + 60).check()
        return dict(json.loads(out.stdout))


class Kubelet:
    """The pod side of one machine: its pod CIDR, CNI configuration and pods."""

    def __init__(self, machine: Machine, pod_cidr: str, *, cni: str = "bridge",
                 mtu: int | None = None) -> None:
        self.machine = machine
        self.name = machine.name
        self.node = machine.node
        self.lab = machine.node.lab
        try:
            self.pod_cidr = ipaddress.ip_network(pod_cidr)
        except ValueError:
            raise InvalidTopology(f"pod CIDR {pod_cidr!r} is not a network", obj=pod_cidr,
                                  op="configure kubelet", remedy="use e.g. 10.244.1.0/24") from None
        if not self.lab.named_namespaces:
            raise NamespacesUnavailable(
                "pods need named network namespaces and a private /proc for the CNI plugins, "
                "and this host refuses mounts inside the lab", obj=self.name, op="configure kubelet",
                remedy="run on a host that allows mounts in a user namespace (labkit doctor)")
        self.data_dir = machine.path("/var/lib/cni")          # libcni's cache, host-local's leases
        self.netconf = pod_network_config(cni, str(self.pod_cidr), f"{self.data_dir}/networks",
                                          mtu=mtu)
        self.conf_path = machine.path("/etc/cni/net.d/10-labkit.conflist")
        write_file(self.node, self.conf_path, json.dumps(self.netconf, indent=2) + "\n")
        self.cni = CniRuntime(self.node, cache_dir=self.data_dir)
        self.pods: dict[str, Pod] = {}
        self.node.set_forwarding(True)
        try:  # kubelet requires it: pod -> ClusterIP -> pod on the same bridge
            self.node.set_sysctl("net.bridge.bridge-nf-call-iptables", 1)
        except Exception:  # noqa: BLE001 - br_netfilter absent: same-bridge Services then hairpin
            pass

    def __repr__(self) -> str:
        return f"<Kubelet {self.name} podCIDR={self.pod_cidr} pods={len(self.pods)}>"

    @property
    def gateway(self) -> str:
        """The node's address on the pod network (``cni0``): the first of the pod CIDR."""
        return str(next(self.pod_cidr.hosts()))

    def netns_path(self, pod: str) -> str:
        return f"/run/netns/{pod}"

    def run_pod(self, name: str, *, namespace: str = "default",
                labels: dict[str, str] | None = None,
                host_ports: Sequence[tuple[int, int, str]] = ()) -> Pod:
        """RunPodSandbox: namespace, pause, CNI ADD (loopback, then the pod network).

        ``host_ports`` are ``(hostPort, containerPort, "tcp"|"udp")`` handed to portmap.
        On any failure what was made is removed again.
        """
        if not isinstance(name, str) or not _POD_NAME.match(name):
            raise InvalidTopology(f"pod name {name!r} is not a DNS-1123 label of at most 32 "
                                  "characters", obj=str(name), op="run pod",
                                  remedy="use lowercase letters, digits and '-', e.g. 'web-1'")
        if name in self.lab.nodes:
            raise DuplicateName(f"pod {name!r} already exists (or a node of that name)", obj=name,
                                op="run pod", remedy="choose another pod name")
        mappings = [{"hostPort": int(h), "containerPort": int(c), "protocol": str(p).lower()}
                    for h, c, p in host_ports]
        node = self.lab.add_host(name)
        try:
            pause = node.spawn([sys.executable, "-m", "labkit.kubernetes.pause"])
            pod = Pod(self, name, namespace, dict(labels or {}), node, pause,
                      secrets.token_hex(32), str(uuid.uuid4()), mappings)
            self.cni.add(LOOPBACK, pod.attachment)
            pod.result = self.cni.add(self.netconf, pod.attachment)
        except BaseException:
            # A failed ADD has already been undone by the runtime (DEL over the list);
            # removing the namespace ends the pause process with it.
            self.lab.remove_node(name)
            raise
        self.pods[name] = pod
        return pod

    def pod(self, name: str) -> Pod:
        try:
            return self.pods[name]
        except KeyError:
            raise NotFound(f"pod {name!r} does not run on {self.name!r}", obj=name, op="find pod",
                           remedy=f"pods here: {', '.join(self.pods) or 'none'}") from None

    def check_pod(self, name: str) -> None:
        """CNI CHECK of the pod's network (what a runtime does to verify an attachment)."""
        pod = self.pod(name)
        self.cni.check(self.netconf, pod.attachment)

    def delete_pod(self, name: str) -> None:
        """StopPodSandbox + RemovePodSandbox: CNI DEL (in reverse), then the namespace goes."""
        pod = self.pod(name)
        try:
            self.cni.delete(self.netconf, pod.attachment)
            self.cni.delete(LOOPBACK, pod.attachment)
        finally:
            for proc in list(pod.containers.values()) + [pod.pause]:
                proc.stop(grace=1.0)
            self.lab.remove_node(name)
            del self.pods[name]

    def leases(self) -> dict[str, str]:
        """host-local's leases: ``{ip: container id}`` (``ls /var/lib/cni/networks/NET``)."""
        folder = f"{self.data_dir}/networks/{NETWORK_NAME}"
        script = 'cd "$1" 2>/dev/null || exit 0; for f in *; do [ -f "$f" ] && printf "%s %s\\n" "$f" "$(head -n1 "$f")"; done; true'
        out: dict[str, str] = {}
        for line in self.node.run(["sh", "-c", script, "sh", folder], check=True).stdout.splitlines():
            name, _, owner = line.partition(" ")
            try:
                ipaddress.ip_address(name)
            except ValueError:
                continue
            out[name] = owner
        return out

    def read_config(self) -> dict[str, Any]:
        """``cat /etc/cni/net.d/10-labkit.conflist`` on this machine."""
        return dict(json.loads(self.node.run(["cat", self.conf_path], check=True).stdout))
