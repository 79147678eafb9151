"""Calico, pure layer 3 with real BGP (curriculum D3, seed 001 §3.4 and §4.5).

Built on :mod:`labkit.cluster`: etcd holds Calico's keys (:mod:`.keys`), IPAM cuts IP
pools into /26 blocks owned by nodes (:mod:`.ipam`), each node runs a calico agent that
plays felix and confd (:mod:`.agent`: routes, proxy ARP, ``cali-*`` chains, BIRD's
files rendered by :mod:`.birdcfg`) and the real BIRD 1.6 (:mod:`.bird`).

::

    from labkit import Lab
    from labkit.cluster import Cluster
    from labkit.calico import Calico

    with Lab("calico") as lab:
        cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
        calico = Calico(cluster).start()                 # BGP full mesh, Established
        calico.add_network("cal_net1")
        a = calico.add_workload("node1", "bbox1", network="cal_net1")
        b = calico.add_workload("node2", "bbox2", network="cal_net1")
        a.node.ping(b.ip)                                # ttl=62: two routers on the way

What is real: the kernel's routes, veths, proxy ARP, iptables/ipset rules, etcd, BIRD and
its BGP sessions. What labkit plays: calico/node's felix and confd, calico-ipam and
calicoctl, following their behaviour and the seed's outputs.
"""

from ._calico import Calico, Workload
from .bird import Protocol
from .felix import GATEWAY, WORKLOAD_MAC, Endpoint, Profile, interface_name
from .ipam import IPAM, Block, IPPool, make_pool

__all__ = ["Calico", "Workload", "Protocol", "Endpoint", "Profile", "interface_name", "GATEWAY",
           "WORKLOAD_MAC", "IPAM", "Block", "IPPool", "make_pool"]
