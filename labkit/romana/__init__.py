"""Romana (curriculum D4): hierarchical addresses, host blocks routed without tunnels,
isolation by filtering on the address bits.

::

    from labkit.cluster import Cluster
    from labkit.romana import Layout, Romana

    Layout().decompose("10.1.18.7")        # Parts(host=1, tenant=1, segment=2, endpoint=7)
    Layout.variant_172().compose(3, 1, 2, 7)   # 172.19.18.7

    cluster = Cluster(lab, store=None)
    romana = Romana(cluster)
    romana.start()                          # romana-agent on node1 (host 0) and node2 (host 1)
    a = romana.add_pod("node1", "a", tenant=1, segment=1)   # 10.0.17.1/16 on eth0
    b = romana.add_pod("node2", "b", tenant=1, segment=1)   # 10.1.17.1
    a.ping(romana.address(b))               # node1: 10.1.0.0/16 via 192.168.99.102, no encapsulation

Real: the routes, ``romana-gw`` (a port-less bridge where the kernel has no dummy
device), proxy ARP, the ROMANA iptables chains with non-contiguous masks. Played: the
agent (:mod:`labkit.romana.agent`) and the daemon's IPAM and configuration
(:class:`Romana`, in the notebook; real Romana keeps them in its own etcd).
"""

from .layout import FIELDS, Layout, Parts
from .net import CONFIG, Romana

__all__ = ["Layout", "Parts", "FIELDS", "Romana", "CONFIG"]
