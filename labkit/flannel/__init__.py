"""Flannel on the lab's cluster: a real etcd, flanneld played faithfully, the real kernel.

::

    from labkit import Lab
    from labkit.cluster import Cluster
    from labkit.flannel import Flannel

    with Lab("flannel") as lab:
        cluster = Cluster(lab)                      # host (etcd) .100, node1 .101, node2 .102
        cluster.start_etcd()
        flannel = Flannel(cluster, prefix="/docker-test/network")
        flannel.configure("10.4.0.0/16", subnet_len=24, backend="vxlan")
        flannel.start_all(ttl=5)                    # flanneld -iface=eth1 ... per node
        flannel.wait_converged()
        for node in cluster.nodes:
            flannel.docker_bridge(node)             # dockerd --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU
        # or, as root, the real engine on each node, started with those options:
        engine = flannel.start_docker("node1")      # dockerd --bip=... --mtu=... --ip-masq=false
        engine.run("c1")                            # docker run: an address of node1's lease

Modules: :mod:`.agent` (flanneld: ``python -m labkit.flannel.agent``), :mod:`.config`
(the network config and subnet arithmetic), :mod:`.store` (the v3 and v2 registries),
:mod:`.backends` (vxlan, udp, host-gw kernel writers), :mod:`.ipmasq` (FLANNEL-POSTRTG,
FLANNEL-FWD). No flanneld binary exists in the machine's package registries; the agent
reproduces its keys, devices, routes, chains, files and log lines (see systems.md).
"""

from ._network import SUBNET_FILE, Flannel
from .config import ConfigError, NetworkConfig, parse_config, parse_subnet_env

__all__ = ["Flannel", "SUBNET_FILE", "ConfigError", "NetworkConfig", "parse_config", "parse_subnet_env"]
