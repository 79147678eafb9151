"""Services and their endpoints: what the API server stores and kube-proxy reads.

A :class:`ServiceTable` plays the API server's part for Services: it validates a
Service as the API server does (ClusterIP inside the service CIDR, NodePort inside
30000-32767 and not taken, named ports), allocates ClusterIPs and NodePorts, and keeps
the endpoints (pod IPs) of each Service. :meth:`ServiceTable.snapshot` is the plain
data every kube-proxy receives: the whole state, so each sync rewrites every rule from
it (a missed event cannot leave a stale rule behind).

The ClusterIP allocator hands out addresses in order (10.96.0.1, .2, ...) rather than
at random as the real one does, so notebook outputs stay the same from run to run.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ._errors import ServiceError

SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_CIDR = "10.244.0.0/16"
NODE_PORT_RANGE = (30000, 32767)
PROTOCOLS = ("TCP", "UDP")
TYPES = ("ClusterIP", "NodePort")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service (``spec.ports[i]``)."""

    port: int
    target_port: int | None = None
    protocol: str = "TCP"
    name: str = ""
    node_port: int | None = None

    @property
    def target(self) -> int:
        return self.target_port if self.target_port is not None else self.port


@dataclass(frozen=True)
class Endpoint:
    """A ready pod behind a Service (an EndpointSlice entry)."""

    ip: str
    node: str = ""
    pod: str = ""
    ready: bool = True


@dataclass
class Service:
    """A Service (``kind: Service``) with its allocated ClusterIP and NodePorts."""

    namespace: str
    name: str
    type: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    selector: dict[str, str] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def port_name(self, port: ServicePort) -> str:
        """``ns/name:port`` (``ns/name`` for an unnamed port): what kube-proxy hashes."""
        return f"{self.key}:{port.name}" if port.name else self.key

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "name": self.name, "type": self.type,
            "clusterIP": self.cluster_ip, "selector": dict(self.selector),
            "ports": [{"name": p.name, "protocol": p.protocol, "port": p.port,
                       "targetPort": p.target, "nodePort": p.node_port} for p in self.ports],
            "endpoints": [{"ip": e.ip, "nodeName": e.node, "pod": e.pod, "ready": e.ready}
                          for e in self.endpoints],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Service":
        return cls(
            namespace=data["namespace"], name=data["name"], type=data["type"],
            cluster_ip=data["clusterIP"], selector=dict(data.get("selector", {})),
            ports=tuple(ServicePort(port=int(p["port"]), target_port=int(p["targetPort"]),
                                    protocol=p["protocol"], name=p.get("name", ""),
                                    node_port=p.get("nodePort")) for p in data["ports"]),
            endpoints=[Endpoint(ip=e["ip"], node=e.get("nodeName", ""), pod=e.get("pod", ""),
                                ready=bool(e.get("ready", True))) for e in data["endpoints"]])


def _invalid(field_path: str, value: object, why: str, remedy: str, obj: str) -> ServiceError:
    return ServiceError(f"Service {obj!r} is invalid: {field_path}: Invalid value: {value!r}: {why}",
                        obj=obj, op="create service", remedy=remedy)


class ServiceTable:
    """The Services of one cluster, validated and allocated as the API server does."""

    def __init__(self, service_cidr: str = SERVICE_CIDR, cluster_cidr: str = CLUSTER_CIDR) -> None:
        self.service_cidr = ipaddress.ip_network(service_cidr)
        self.cluster_cidr = ipaddress.ip_network(cluster_cidr)
        self.services: dict[str, Service] = {}
        self.generation = 0
        self._cursor = 0

    # -- API server ------------------------------------------------------------------

    def create(self, name: str, *, ports: Iterable[ServicePort], namespace: str = "default",
               type: str = "ClusterIP", cluster_ip: str | None = None,
               selector: dict[str, str] | None = None) -> Service:
        """Validate and store a Service; allocate its ClusterIP and NodePorts."""
        key = f"{namespace}/{name}"
        if not isinstance(namespace, str) or not _DNS1123.match(namespace):
            raise _invalid("metadata.namespace", namespace, "a lowercase RFC 1123 label must "
                           "consist of lower case alphanumeric characters or '-'",
                           "use a name like 'default' or 'kube-system'", key)
        if not isinstance(name, str) or not _DNS1035.match(name):
            raise _invalid("metadata.name", name, "a DNS-1035 label must consist of lower case "
                           "alphanumeric characters or '-', start with a letter and end with an "
                           "alphanumeric character", "use a name like 'web' or 'kube-dns'", key)
        if key in self.services:
            raise ServiceError(f'services "{name}" already exists in namespace {namespace!r}',
                               obj=key, op="create service",
                               remedy="delete it first, or choose another name")
        if type not in TYPES:
            raise _invalid("spec.type", type, f"supported values: {', '.join(TYPES)}",
                           "use type='ClusterIP' or type='NodePort'", key)
        ports = tuple(ports)
        if not ports:
            raise _invalid("spec.ports", [], "a Service needs at least one port",
                           "pass ports=[ServicePort(80, 8080)]", key)
        self._check_ports(key, type, ports)
        ip = self._allocate_ip(key, cluster_ip)
        final = tuple(self._with_node_port(key, type, i, p) for i, p in enumerate(ports))
        svc = Service(namespace, name, type, ip, final, dict(selector or {}))
        self.services[key] = svc
        self.generation += 1
        return svc

    def _check_ports(self, key: str, type: str, ports: tuple[ServicePort, ...]) -> None:
        seen: set[tuple[int, str]] = set()
        names: set[str] = set()
        for i, p in enumerate(ports):
            where = f"spec.ports[{i}]"
            if p.protocol not in PROTOCOLS:
                raise _invalid(f"{where}.protocol", p.protocol,
                               f"supported values here: {', '.join(PROTOCOLS)}",
                               "use protocol='TCP' or 'UDP'", key)
            for label, value in (("port", p.port), ("targetPort", p.target)):
                if not isinstance(value, int) or not 1 <= value <= 65535:
                    raise _invalid(f"{where}.{label}", value, "must be between 1 and 65535, inclusive",
                                   "use a port number from 1 to 65535", key)
            if len(ports) > 1 and not p.name:
                raise _invalid(f"{where}.name", p.name, "Required value",
                               "name every port of a multi-port Service (e.g. name='http')", key)
            if p.name and not _PORT_NAME.match(p.name):
                raise _invalid(f"{where}.name", p.name, "must be a lowercase IANA_SVC_NAME "
                               "(at most 15 characters)", "use a name like 'http' or 'dns-tcp'", key)
            if p.name in names:
                raise _invalid(f"{where}.name", p.name, "Duplicate value",
                               "give each port its own name", key)
            if (p.port, p.protocol) in seen:
                raise _invalid(f"{where}", f"{p.port}/{p.protocol}", "Duplicate value",
                               "each port/protocol pair may appear once", key)
            names.add(p.name)
            seen.add((p.port, p.protocol))
            if p.node_port is not None and type != "NodePort":
                raise _invalid(f"{where}.nodePort", p.node_port,
                               "may not be used when `type` is 'ClusterIP'",
                               "use type='NodePort', or drop node_port", key)

    def _allocate_ip(self, key: str, wanted: str | None) -> str:
        taken = {s.cluster_ip for s in self.services.values()}
        if wanted is not None:
            try:
                ip = ipaddress.ip_address(wanted)
            except ValueError:
                raise _invalid("spec.clusterIP", wanted, "must be a valid IP address",
                               f"use an address inside {self.service_cidr}", key) from None
            if ip not in self.service_cidr or ip in (self.service_cidr.network_address,
                                                     self.service_cidr.broadcast_address):
                raise _invalid("spec.clusterIP", wanted, "provided IP is not in the valid range. "
                               f"The range of valid IPs is {self.service_cidr}",
                               f"use an address inside {self.service_cidr}", key)
            if str(ip) in taken:
                raise _invalid("spec.clusterIP", wanted, "provided IP is already allocated",
                               "choose another address, or let one be allocated", key)
            return str(ip)
        start = int(self.service_cidr.network_address) + 1
        size = self.service_cidr.num_addresses - 2
        for step in range(size):  # in order, from just after the last one handed out
            ip = str(ipaddress.ip_address(start + (self._cursor + step) % size))
            if ip not in taken:
                self._cursor = (self._cursor + step + 1) % size
                return ip
        raise ServiceError("the service CIDR is full", obj=key, op="create service",
                           remedy="delete a Service first")

    def _with_node_port(self, key: str, type: str, i: int, p: ServicePort) -> ServicePort:
        if type != "NodePort":
            return ServicePort(p.port, p.target, p.protocol, p.name, None)
        low, high = NODE_PORT_RANGE
        taken = {(q.node_port, q.protocol) for s in self.services.values() for q in s.ports}
        node_port = p.node_port
        if node_port is not None:
            if not isinstance(node_port, int) or not low <= node_port <= high:
                raise _invalid(f"spec.ports[{i}].nodePort", node_port,
                               f"provided port is not in the valid range. The range of valid "
                               f"ports is {low}-{high}", f"use a port from {low} to {high}, or "
                               "leave it out to have one allocated", key)
            if (node_port, p.protocol) in taken:
                raise _invalid(f"spec.ports[{i}].nodePort", node_port,
                               "provided port is already allocated",
                               "choose another NodePort, or leave it out", key)
        else:
            node_port = next((n for n in range(low, high + 1) if (n, p.protocol) not in taken), None)
            if node_port is None:
                raise ServiceError("no NodePort is free", obj=key, op="create service",
                                   remedy="delete a NodePort Service first")
        return ServicePort(p.port, p.target, p.protocol, p.name, node_port)

    def get(self, name: str, namespace: str = "default") -> Service:
        try:
            return self.services[f"{namespace}/{name}"]
        except KeyError:
            raise ServiceError(f'services "{name}" not found in namespace {namespace!r}',
                               obj=f"{namespace}/{name}", op="find service",
                               remedy="list them with .services") from None

    def delete(self, name: str, namespace: str = "default") -> None:
        del self.services[self.get(name, namespace).key]
        self.generation += 1

    def set_endpoints(self, svc: Service, endpoints: Iterable[Endpoint]) -> bool:
        """Replace a Service's endpoints (the endpoints controller); True if they changed."""
        new = sorted(endpoints, key=lambda e: ipaddress.ip_address(e.ip))
        if new == svc.endpoints:
            return False
        svc.endpoints = new
        self.generation += 1
        return True

    def snapshot(self) -> dict[str, Any]:
        """The whole state, as every kube-proxy receives it."""
        return {"generation": self.generation, "serviceCIDR": str(self.service_cidr),
                "clusterCIDR": str(self.cluster_cidr),
                "services": [s.as_dict() for s in self.services.values()]}
