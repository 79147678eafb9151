"""Weave's fixed names and numbers, shared by the router and the notebook side."""

BRIDGE = "weave"               # the Linux bridge every container's ethwe hangs off
CONTAINER_IFNAME = "ethwe"     # the container's Weave interface (eth0 stays on docker0)
MTU = 1376                     # Weave's default MTU: room for its encapsulation and encryption
CONTROL_PORT = 6783            # TCP: connections between routers (sleeve would use UDP 6783)
VXLAN_PORT = 6784              # UDP: the fast data path's VXLAN
HTTP_PORT = 6784               # TCP, on 127.0.0.1 only: the router's API for the weave command
VXLAN_DEVICE = "vxlan-6784"
VNI = 0                        # one VXLAN network here; real fastdp puts peer ids in the VNI
DOMAIN = "weave.local"
STATE = "/run/weave"           # a machine's router files (ClusterNode.path(STATE))
