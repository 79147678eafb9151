"""The control plane of a small Kubernetes cluster on a lab's machines.

:class:`Kubernetes` plays the parts of the API server, the scheduler's choice (you say
which node a pod runs on) and the endpoints controller, and starts the node agents:
a :class:`~labkit.kubernetes.kubelet.Kubelet` per machine (pods through real CNI
plugins) and a kube-proxy per machine (``python -m labkit.kubernetes.proxy``, a lab
process). Each machine gets the pod CIDR ``10.244.N.0/24`` (N = its position, from 1).

Pods on different machines reach each other without NAT: either over routes between the
machines (:meth:`Kubernetes.route_pod_cidrs`, host-gw style, the default here) or over an
overlay such as Flannel's, which then owns those routes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import time
from typing import Any, Iterable, Sequence

from ..cluster.agent import RESYNC, exited_at_startup
from ..errors import CommandTimeout, InvalidTopology, NotFound
from ..process import Process
from .cni import write_file
from .kubelet import Kubelet, Machine, Pod, port_number
from .services import CLUSTER_CIDR, SERVICE_CIDR, Endpoint, Service, ServicePort, ServiceTable
from .proxy import MODES


class Kubernetes:
    """A cluster's pods and Services over ``machines`` (objects with .name/.node/.state_dir)."""

    def __init__(self, machines: Sequence[Machine], *, cni: str = "bridge",
                 cluster_cidr: str = CLUSTER_CIDR, service_cidr: str = SERVICE_CIDR,
                 mtu: int | None = None, pod_cidrs: dict[str, str] | None = None) -> None:
        if not machines:
            raise InvalidTopology("a cluster needs at least one machine", op="create cluster",
                                  remedy="pass the worker machines, e.g. cluster.nodes")
        self.cluster_cidr = ipaddress.ip_network(cluster_cidr)
        self.services = ServiceTable(service_cidr, cluster_cidr)
        self.kubelets: dict[str, Kubelet] = {}
        subnets = self.cluster_cidr.subnets(new_prefix=24)
        next(subnets)  # 10.244.0.0/24 is left for a control-plane node, as kubeadm does
        for machine, cidr in zip(machines, subnets):
            chosen = (pod_cidrs or {}).get(machine.name, str(cidr))
            self.kubelets[machine.name] = Kubelet(machine, chosen, cni=cni, mtu=mtu)
        self.proxies: dict[str, Process] = {}
        self.proxy_mode: str | None = None
        for kubelet in self.kubelets.values():
            self._route_service_cidr(kubelet)

    def _route_service_cidr(self, kubelet: Kubelet) -> None:
        # kube-proxy rewrites ClusterIP traffic, but the kernel routes it first: a node needs
        # a route covering the service range (real nodes have a default route). A machine
        # without one gets ``ip route add 10.96.0.0/12 dev <its cluster card>``.
        routes = kubelet.node.routes("inet")
        if any(r.dst in ("default", "0.0.0.0/0") for r in routes):
            return
        nic = getattr(kubelet.machine, "nic", None)
        if nic:
            kubelet.node.add_route(str(self.services.service_cidr), dev=nic)

    @classmethod
    def on_flannel(cls, flannel: Any, machines: Sequence[Machine] | None = None,
                   **kwargs: Any) -> "Kubernetes":
        """Pods over a running Flannel: each node's pod CIDR and MTU are its lease, read from
        ``/run/flannel/subnet.env`` (``FLANNEL_SUBNET``, ``FLANNEL_MTU``), as the flannel
        CNI plugin does before it delegates to ``bridge``; the cluster CIDR is
        ``FLANNEL_NETWORK``. Flannel's routes (flannel.1) then carry pod traffic between
        nodes: do not call :meth:`route_pod_cidrs`."""
        machines = list(machines if machines is not None else flannel.cluster.nodes)
        envs = {m.name: flannel.wait_for_lease(m) for m in machines}
        first = next(iter(envs.values()))
        pod_cidrs = {name: str(ipaddress.ip_network(env["FLANNEL_SUBNET"], strict=False))
                     for name, env in envs.items()}
        mtus = {int(env["FLANNEL_MTU"]) for env in envs.values()}
        return cls(machines, cluster_cidr=first["FLANNEL_NETWORK"], pod_cidrs=pod_cidrs,
                   mtu=min(mtus), **kwargs)

    def __repr__(self) -> str:
        return (f"<Kubernetes nodes={list(self.kubelets)} pods={len(self.pods)} "
                f"services={len(self.services.services)} proxy={self.proxy_mode}>")

    # -- nodes and pods --------------------------------------------------------------

    def kubelet(self, node: str) -> Kubelet:
        try:
            return self.kubelets[node]
        except KeyError:
            raise NotFound(f"node {node!r} is not part of this cluster", obj=node, op="find node",
                           remedy=f"nodes: {', '.join(self.kubelets)}") from None

    @property
    def pods(self) -> dict[str, Pod]:
        return {name: pod for k in self.kubelets.values() for name, pod in k.pods.items()}

    def pod(self, name: str) -> Pod:
        try:
            return self.pods[name]
        except KeyError:
            raise NotFound(f"pod {name!r} does not exist", obj=name, op="find pod",
                           remedy=f"pods: {', '.join(self.pods) or 'none'}") from None

    def route_pod_cidrs(self) -> dict[str, str]:
        """Routes between the machines for each other's pod CIDR (no overlay, no NAT).

        ``ip route replace 10.244.2.0/24 via <node2's underlay address>`` on every other
        machine of the cluster (``Cluster.static_routes``). Returns ``{node: pod CIDR}``.
        """
        subnets = {name: str(k.pod_cidr) for name, k in self.kubelets.items()}
        cluster = getattr(next(iter(self.kubelets.values())).machine, "cluster")
        cluster.static_routes(subnets)
        return subnets

    def run_pod(self, name: str, *, node: str, labels: dict[str, str] | None = None,
                namespace: str = "default", echo_port: int | None = 8080,
                host_ports: Sequence[tuple[int, int, str]] = ()) -> Pod:
        """Run a pod on ``node`` (with the echo server as its container unless
        ``echo_port=None``); Services selecting its labels gain it as an endpoint."""
        if echo_port is not None:
            echo_port = port_number(echo_port, what="echo_port", op="run pod")
        pod = self.kubelet(node).run_pod(name, namespace=namespace, labels=labels,
                                         host_ports=host_ports)
        try:
            if echo_port is not None:
                pod.start_echo(port=echo_port, udp=True)
        except BaseException:
            self.kubelet(node).delete_pod(name)
            raise
        self._reconcile_endpoints()
        return pod

    def delete_pod(self, name: str) -> None:
        """``kubectl delete pod``: endpoints drop it first, then CNI DEL and the sandbox goes."""
        pod = self.pod(name)
        pod.labels = {}
        self._reconcile_endpoints()
        pod.kubelet.delete_pod(name)

    # -- Services --------------------------------------------------------------------

    def create_service(self, name: str, *, selector: dict[str, str],
                       ports: Iterable[ServicePort], namespace: str = "default",
                       type: str = "ClusterIP", cluster_ip: str | None = None) -> Service:
        """``kubectl apply`` of a Service; its endpoints are the ready pods it selects."""
        svc = self.services.create(name, ports=ports, namespace=namespace, type=type,
                                   cluster_ip=cluster_ip, selector=selector)
        self._reconcile_endpoints(force=True)
        return svc

    def delete_service(self, name: str, namespace: str = "default") -> None:
        self.services.delete(name, namespace)
        self._publish()

    def set_endpoints(self, name: str, ips: Iterable[str], namespace: str = "default") -> Service:
        """Endpoints by hand (a Service without selector, like ``default/kubernetes``)."""
        svc = self.services.get(name, namespace)
        svc.selector = {}
        self.services.set_endpoints(svc, [Endpoint(ip) for ip in ips])
        self._publish()
        return svc

    def _reconcile_endpoints(self, force: bool = False) -> None:
        changed = force
        for svc in self.services.services.values():
            if not svc.selector:
                continue
            eps = [Endpoint(p.ip, node=p.kubelet.name, pod=p.name)
                   for p in self.pods.values()
                   if p.namespace == svc.namespace and p.ip
                   and all(p.labels.get(k) == v for k, v in svc.selector.items())]
            changed = self.services.set_endpoints(svc, eps) or changed
        if changed:
            self._publish()

    # -- kube-proxy ------------------------------------------------------------------

    def _state_file(self, kubelet: Kubelet) -> str:
        return kubelet.machine.path("/var/lib/kube-proxy/services.json")

    def _publish(self) -> None:
        snapshot = json.dumps(self.services.snapshot(), indent=1)
        for kubelet in self.kubelets.values():
            write_file(kubelet.node, self._state_file(kubelet), snapshot)

    def start_proxy(self, mode: str = "iptables", *, sync_period: float = 30.0,
                    timeout: float = 60.0) -> None:
        """Start kube-proxy on every machine (stopping any running one) and wait for a sync."""
        if mode not in MODES:
            raise InvalidTopology(f"proxy mode {mode!r} is not available", obj=mode,
                                  op="start kube-proxy",
                                  remedy="use 'iptables' or 'nftables' (IPVS needs the ip_vs module, "
                                         "absent from this kernel)")
        period = RESYNC.check(sync_period, name="sync_period", op="start kube-proxy", example=30)
        self.stop_proxy()
        self._publish()
        for name, kubelet in self.kubelets.items():
            argv = [sys.executable, "-m", "labkit.kubernetes.proxy", "--proxy-mode", mode,
                    "--hostname-override", name, "--services", str(self._state_file(kubelet)),
                    "--cluster-cidr", str(self.cluster_cidr), "--sync-period", RESYNC.flag(period)]
            self.proxies[name] = kubelet.node.spawn(argv)
        self.proxy_mode = mode
        self.wait_synced(timeout=timeout)

    def stop_proxy(self) -> None:
        for proc in self.proxies.values():
            proc.stop(grace=2.0)
        self.proxies.clear()

    def wait_synced(self, timeout: float = 60.0) -> None:
        """Wait until every kube-proxy has applied the current Service state."""
        want = self.services.generation
        end = time.monotonic() + timeout
        for name, proc in self.proxies.items():
            while True:
                log = proc.stdout_text()
                done = [int(g) for g in re.findall(r'"SyncProxyRules complete".*generation=(\d+)', log)]
                if done and max(done) >= want:
                    break
                if not proc.running:
                    raise exited_at_startup(proc, f"kube-proxy on {name}", op="sync kube-proxy",
                                            remedy="fix what that line names and start it again "
                                                   "(k8s.start_proxy(...)); the whole log: "
                                                   "k8s.proxy_log(node)")
                if time.monotonic() > end:
                    errors = [l for l in log.splitlines() if l.startswith("E")]
                    raise CommandTimeout(f"kube-proxy on {name} did not sync generation {want} "
                                         f"within {timeout} s" + (f": {errors[-1]}" if errors else ""),
                                         obj=name, op="sync kube-proxy",
                                         remedy="read its log: cluster.proxies[name].stdout_text()")
                time.sleep(0.05)

    def sync(self, timeout: float = 60.0) -> None:
        """Publish the state and wait for every running kube-proxy to apply it."""
        self._publish()
        if self.proxies:
            self.wait_synced(timeout)

    def proxy_log(self, node: str) -> str:
        return self.proxies[node].stdout_text()
