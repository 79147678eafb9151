"""Where Calico keeps its state in etcd: the key layout of the seed's Calico (v1 data model).

The seed thesis ran calico/node v1.0 with ``calicoctl`` v1.0.2, whose datastore layout is
the one written here (the "v1" data model, with IPAM "v2" keys, which Calico kept until
its v3 resources). labkit stores it in etcd's v3 keyspace, because that is what the
cluster's etcd client speaks; ``ETCDCTL_API=3 etcdctl get --prefix /calico`` lists it::

    /calico/v1/ipam/v4/pool/192.168.0.0-16                     {"cidr": ..., "block_size": 26}
    /calico/v1/ipam/v4/reserved/192.168.99.0-24               never handed out (the underlay)
    /calico/ipam/v2/assignment/ipv4/block/192.168.119.0-26     the block: affinity, allocations
    /calico/ipam/v2/host/node1/ipv4/block/192.168.119.0-26     node1's affinity to that block
    /calico/ipam/v2/handle/<handle>                            what a workload holds
    /calico/bgp/v1/global/as_num                               64512
    /calico/bgp/v1/global/node_mesh                            {"enabled": true}
    /calico/bgp/v1/host/node1/ip_addr_v4                       192.168.99.101
    /calico/bgp/v1/host/node1/rr_cluster_id                    (route reflectors only)
    /calico/v1/policy/profile/cal_web/rules                    {"inbound_rules": [...], ...}
    /calico/v1/policy/profile/cal_web/tags                     ["cal_web"]
    /calico/v1/host/node1/workload/<orch>/<workload>/endpoint/<endpoint>   the endpoint
"""

from __future__ import annotations

import ipaddress

ROOT = "/calico/"
POOLS = "/calico/v1/ipam/v4/pool/"
RESERVED = "/calico/v1/ipam/v4/reserved/"
BLOCKS = "/calico/ipam/v2/assignment/ipv4/block/"
HANDLES = "/calico/ipam/v2/handle/"
BGP_GLOBAL = "/calico/bgp/v1/global/"
BGP_HOSTS = "/calico/bgp/v1/host/"
PROFILES = "/calico/v1/policy/profile/"
HOSTS = "/calico/v1/host/"
AS_NUM = BGP_GLOBAL + "as_num"
NODE_MESH = BGP_GLOBAL + "node_mesh"


def cidr_part(cidr: "str | ipaddress.IPv4Network") -> str:
    """A CIDR as Calico writes it inside a key: ``192.168.0.0/16`` -> ``192.168.0.0-16``."""
    return str(cidr).replace("/", "-")


def cidr_of(part: str) -> ipaddress.IPv4Network:
    """The inverse of :func:`cidr_part`."""
    return ipaddress.IPv4Network(part.replace("-", "/"))


def pool(cidr: "str | ipaddress.IPv4Network") -> str:
    return POOLS + cidr_part(cidr)


def reserved(cidr: "str | ipaddress.IPv4Network") -> str:
    return RESERVED + cidr_part(cidr)


def block(cidr: "str | ipaddress.IPv4Network") -> str:
    return BLOCKS + cidr_part(cidr)


def affinity(host: str, cidr: "str | ipaddress.IPv4Network") -> str:
    return f"/calico/ipam/v2/host/{host}/ipv4/block/{cidr_part(cidr)}"


def affinities(host: str) -> str:
    return f"/calico/ipam/v2/host/{host}/ipv4/block/"


def handle(handle_id: str) -> str:
    return HANDLES + handle_id


def host_ip(host: str) -> str:
    return f"{BGP_HOSTS}{host}/ip_addr_v4"


def rr_cluster_id(host: str) -> str:
    return f"{BGP_HOSTS}{host}/rr_cluster_id"


def profile_rules(name: str) -> str:
    return f"{PROFILES}{name}/rules"


def profile_tags(name: str) -> str:
    return f"{PROFILES}{name}/tags"


def endpoint(host: str, orchestrator: str, workload: str, endpoint_id: str) -> str:
    return f"{HOSTS}{host}/workload/{orchestrator}/{workload}/endpoint/{endpoint_id}"


def endpoints(host: str | None = None) -> str:
    """Prefix of every endpoint (of one host, or of all: filter on ``/workload/``)."""
    return HOSTS if host is None else f"{HOSTS}{host}/workload/"
