"""Weave Net (curriculum D2): a bridge per machine, a router per machine, no external store.

::

    from labkit import Lab
    from labkit.cluster import Cluster
    from labkit.weave import Weave

    with Lab("weave") as lab:
        cluster = Cluster(lab, store=None)        # node1 .101, node2 .102; no etcd
        weave = Weave(cluster)
        weave.launch("node1")                     # weave launch
        weave.launch("node2", "192.168.99.101")   # weave launch 192.168.99.101
        weave.wait_connected()
        bbox1 = weave.run("node1", "bbox1")       # docker run --name bbox1 busybox (via weave env)
        bbox3 = weave.run("node2", "bbox3")
        bbox3.ping(weave.address(bbox1))          # across the VXLAN on UDP 6784
        weave.resolve(bbox3, "bbox1")             # weaveDNS: bbox1.weave.local
        weave.expose("node1")                     # weave expose -> 10.32.0.x/12 on bridge weave

What is real and what is played (say it to students):

=====================  ====================================================================
real                   the ``weave`` bridge (MTU 1376), ``ethwe``/``vethwepl<N>`` veths, kernel
                       VXLAN ``vxlan-6784`` (UDP 6784) with per-peer FDB entries, TCP 6783
                       connections between routers, dnsmasq answering ``NAME.weave.local``
                       on docker0's address, the nat chain WEAVE and filter chain WEAVE-EXPOSE
played                the router (:mod:`labkit.weave.router`, a lab process per machine: peer
                       gossip, IPAM :mod:`labkit.weave.ipam`, DNS records, FDB programming)
                       and the ``weave`` command (:mod:`labkit.weave.__main__`)
absent                 Open vSwitch (no ``openvswitch`` module in this kernel): real Weave's
                       fast datapath (an ODP datapath ``datapath`` + ``vxlan-6784``) cannot
                       start and Weave falls back to sleeve; here a Linux bridge with kernel
                       VXLAN plays the fast path instead (same packets on the wire)
=====================  ====================================================================
"""

from .ipam import DEFAULT_RANGE, CidrRequest, parse_weave_cidr
from .consts import BRIDGE, CONTAINER_IFNAME, CONTROL_PORT, DOMAIN, MTU, VXLAN_DEVICE, VXLAN_PORT
from .net import Weave, WeaveRouter

__all__ = ["Weave", "WeaveRouter", "DEFAULT_RANGE", "CidrRequest", "parse_weave_cidr", "BRIDGE",
           "CONTAINER_IFNAME", "DOMAIN", "MTU", "CONTROL_PORT", "VXLAN_PORT", "VXLAN_DEVICE"]
