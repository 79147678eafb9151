# ---
# jupyter:
#   labkit:
#     requires:
#     - dockerd
#     - root
# ---

# %% [markdown]
# # 21 · Docker across two hosts: the overlay network
#
# Every network of notebook 20 lived on one engine (`SCOPE local`). Containers on two
# different machines need something more: each machine's `docker0` hands out addresses
# from the same private subnet, and nothing routes one machine's container subnet to
# the other. Since version 1.9 Docker answers with the **overlay** driver: a virtual
# layer-2 network carried between the hosts in VXLAN, the tunnel of notebook 06
# ([Ethernet over VXLAN](06-ethernet-over-vxlan.ipynb)).
#
# In the UPV thesis (section 4.2) three VirtualBox machines ran a Consul key-value
# store, and each engine was pointed at it (`cluster-store`, `cluster-advertise` in
# `/etc/docker/daemon.json`) so that a network created on one host (`demonet`,
# 10.10.3.0/24) appeared on all of them with scope `global`. That mechanism was deprecated
# in Docker 20.10 and removed in 23.0; today the engines share network state through
# **swarm mode**, whose managers keep it in a replicated store of their own. Here two
# engines on this one machine stand for the two hosts.
#
# **Objectives.** By the end you can
#
# 1. start two Docker engines standing for two hosts and tell their networks apart;
# 2. explain why two default bridges cannot connect containers across hosts;
# 3. join the engines in a swarm and create the overlay network `demonet`;
# 4. ping a container on the other host by name;
# 5. find the VXLAN device behind the overlay, its VNI and its forwarding entries, and
#    capture the encapsulated packets between the hosts;
# 6. compare Docker's overlay with the kernel VXLAN you built by hand in notebook 06.
#
# **Address plan** (host addresses as in the thesis):
#
# ```
#      node1 192.168.99.103/24                          node2 192.168.99.104/24
#   +------------------------------+   eth0    eth0  +------------------------------+
#   | dockerd (its own namespaces) |-----------------| dockerd (its own namespaces) |
#   |  c1  10.10.3.x  on demonet   |  a veth "cable" |  c2  10.10.3.y  on demonet   |
#   |  docker0 172.17.0.1/16       |                 |  docker0 172.17.0.1/16       |
#   +------------------------------+                 +------------------------------+
#              demonet = VXLAN (UDP port 4789) between .103 and .104
# ```
#
# Each "host" is one `dockerd` started in namespaces of its own: its own network stack,
# process tree, hostname and file system view (its images and containers live on a
# tmpfs that disappears with it). The two are cabled with a veth pair. This needs root
# and the Docker engine's programs (`.ci/docker.sh` installs them); the first cell checks.

# %%
import os
import shutil

missing = [tool for tool in ("dockerd", "unshare", "nsenter") if shutil.which(tool) is None]
print("root:", os.geteuid() == 0, "| missing programs:", missing or "none")
# Without root or dockerd, execution stops here; the saved outputs below show what
# every cell printed on a machine that has both.
if missing:
    raise FileNotFoundError(f"{', '.join(missing)} not installed: run .ci/docker.sh as root "
                            "(it installs the Debian package docker.io)")
if os.geteuid() != 0:
    raise PermissionError("starting Docker engines needs root: start JupyterLab with ./course.sh start")

# %% [markdown]
# ## 1. Two hosts, two engines

# %%
import json
import tempfile
from pathlib import Path

import pandas as pd

from labkit import plots, to_frame
from labkit.capture import Capture
from labkit.docker.hosts import DockerHosts, running_hosts

CAPTURES = Path(tempfile.mkdtemp(prefix="labkit-21-"))

hosts = DockerHosts("21-docker-overlay",
                    {"node1": "192.168.99.103/24", "node2": "192.168.99.104/24"})
pd.DataFrame([{"host": h.name, "docker -H": h.base_url, "engine": h.client.version()["Version"],
               "hostname (docker info)": h.client.info()["Name"]} for h in hosts])

# %% [markdown]
# How node1's engine was started (the `docker -H` address above is its socket):

# %%
cmd = hosts["node1"].command()
print(" ".join(cmd[:13]))                         # new namespaces, killed with their owner
print("  sh -c", repr(cmd[15]))                   # mount a tmpfs, set the hostname, start dockerd
print("  with $1 =", cmd[17], " $2 =", cmd[18], " $3 =", cmd[19])

# %% [markdown]
# Each host has its own network stack: an `eth0` on the cable between the hosts, and its
# own `docker0`. `hosts.node(NAME)` is that stack as a labkit `Node`.

# %% tags=["nbval-check-output"]
rows = []
for name in ("node1", "node2"):
    node = hosts.node(name)                       # nsenter --net --target <dockerd's pid>
    for a in node.addresses():
        if a.family == "inet" and a.ifname != "lo":
            rows.append({"host": name, "interface": a.ifname, "address": a.cidr})
pd.DataFrame(rows)

# %%
print(hosts.node("node1").ping("192.168.99.104", count=2))   # node1$ ping -c 2 192.168.99.104

# %% [markdown]
# ## 2. Two default bridges do not make one network
#
# **Predict.** Start one container on each host's default bridge. Which addresses do they
# get? Can the first reach the second?

# %% tags=["nbval-check-output"]
# docker -H node1 run -d --name a1 labkit/busybox:1 ;  docker -H node2 run -d --name a2 labkit/busybox:1
a1 = hosts["node1"].run("a1")
a2 = hosts["node2"].run("a2")
pd.DataFrame([{"container": c.name, "host": h, "address": c.ip("bridge"), "MAC": c.mac("bridge")}
              for c, h in ((a1, "node1"), (a2, "node2"))])

# %%
result = a1.ping(a2.ip("bridge"), count=1)    # docker -H node1 exec a1 ping -c 1 172.17.0.2
print(result)
print("a1's own address:", a1.ip("bridge"))

# %% [markdown]
# The same address, and a reply: from `a1` itself. Each engine allocates from its own
# `docker0` subnet, knowing nothing of the other host, and 172.17.0.2 is local on both.
# Cross-host container networking needs one address space shared by the hosts, and a
# way to carry the containers' frames between them.

# %%
a1.container.remove(force=True); a2.container.remove(force=True)   # docker rm -f a1 / a2

# %% [markdown]
# ## 3. A swarm and an overlay network
#
# `docker swarm init` makes node1 a manager; `docker swarm join` with the token it gives
# makes node2 a worker. The managers keep the cluster's state (nodes, networks,
# services) in their replicated store: the role Consul played in the thesis.

# %% tags=["nbval-check-output"]
# node1$ docker swarm init --advertise-addr 192.168.99.103
# node2$ docker swarm join --token <worker token> 192.168.99.103:2377
manager = hosts.swarm("node1")
# node1$ docker node ls
pd.DataFrame(sorted(({"HOSTNAME": n.attrs["Description"]["Hostname"],
                      "ADDRESS": n.attrs["Status"]["Addr"],
                      "STATUS": n.attrs["Status"]["State"],
                      "MANAGER STATUS": n.attrs.get("ManagerStatus", {}).get("Leader") and "Leader" or "",
                      "ROLE": n.attrs["Spec"]["Role"]}
                     for n in hosts[manager].client.nodes.list()), key=lambda r: r["HOSTNAME"]))

# %% [markdown]
# Now the thesis' network. `--attachable` lets plain containers (not only swarm services)
# join it.

# %% tags=["nbval-check-output"]
# node1$ docker network create --driver overlay --attachable --subnet 10.10.3.0/24 demonet
demonet = hosts.overlay("demonet", subnet="10.10.3.0/24")
{k: demonet.attrs[k] for k in ("Name", "Driver", "Scope", "Attachable")} | {"IPAM": demonet.attrs["IPAM"]["Config"]}


# %% [markdown]
# **Predict.** node1 created `demonet`. Does node2's `docker network ls` show it already?

# %% tags=["nbval-check-output"]
def networks(host):     # docker -H HOST network ls
    return sorted(f"{n.name} ({n.attrs['Driver']}, {n.attrs['Scope']})" for n in hosts[host].client.networks.list())

{"node1": networks("node1"), "node2": networks("node2")}

# %% [markdown]
# Not yet: node2 sees none of the swarm's overlay networks, not even `ingress` (the
# overlay swarm services use for published ports). A worker learns of an overlay network
# only when something attached to it is placed on that worker. With the key-value store
# of the thesis, every engine saw every `global` network at once. Start one container on
# each host:

# %%
# node1$ docker run -d --name c1 --net demonet labkit/busybox:1
# node2$ docker run -d --name c2 --net demonet labkit/busybox:1
c1 = hosts["node1"].run("c1", network="demonet")
c2 = hosts["node2"].run("c2", network="demonet")
print("node2 now has:", [n for n in networks("node2") if n.startswith("demonet")])
pd.DataFrame([{"container": c.name, "host": h, "demonet address": c.ip("demonet"), "MAC": c.mac("demonet")}
              for c, h in ((c1, "node1"), (c2, "node2"))])

# %% [markdown]
# ## 4. Across the hosts
#
# **Predict.** Will `c1` reach `c2` by name? What TTL will the replies have: were they routed?

# %% tags=["nbval-check-output"]
result = c1.ping("c2", count=3)       # node1$ docker exec c1 ping -c 3 c2
print(result)
result.received, result.replies[0].ttl

# %% [markdown]
# Three replies with TTL 64: no router decremented it. For `c1` and `c2`, demonet is one
# Ethernet segment, although they run on two hosts, and the swarm's DNS knows `c2` on
# both. Look inside `c1`:

# %%
c1_ns = hosts.netns(c1)     # nsenter --net --target <c1's pid>
to_frame(c1_ns.interfaces())[["ifname", "kind", "address", "mtu"]]

# %%
to_frame(c1_ns.routes("inet"))[["dst", "gateway", "dev", "prefsrc"]]

# %% [markdown]
# Two interfaces: `eth0` on demonet, with an **MTU of 1450**, and `eth1` on
# `docker_gwbridge`, which carries the default route (a container reaches the outside
# world through its own host, never through the overlay). 1450 = 1500 - 50: the 50 bytes
# VXLAN adds to every packet (outer IPv4 20, UDP 8, VXLAN 8, and the *inner* Ethernet
# header 14, which travels inside the tunnel), so that the encapsulated packet still fits
# the 1500-byte MTU of the hosts' link. The outer Ethernet header is not counted: an MTU
# counts from the IP header (notebook 06 draws the headers).
#
# ## 5. The VXLAN device behind demonet
#
# Docker keeps, on each host, a network namespace for each overlay network, holding a
# bridge `br0`, the containers' veth ends and a VXLAN device. Here is node1's:

# %%
# node1$ nsenter --net=/run/docker/netns/1-<network id> ip -d -j link
links = json.loads(hosts["node1"].overlay_run(demonet, ["ip", "-d", "-j", "link"]).stdout)
def vxlan(link, key):
    return link.get("linkinfo", {}).get("info_data", {}).get(key)

pd.DataFrame([{"ifname": l["ifname"], "kind": l.get("linkinfo", {}).get("info_kind"),
               "master": l.get("master"), "mtu": l["mtu"], "VNI": vxlan(l, "id"),
               "port": vxlan(l, "port"), "group": vxlan(l, "group"), "ARP proxy": vxlan(l, "proxy")}
              for l in links if l["ifname"] != "lo"]).astype({"VNI": "Int64", "port": "Int64"})

# %% [markdown]
# The same kind of device as in notebook 06: `type vxlan`, a 24-bit VNI (here 4097, chosen
# by Docker), destination port 4789. One difference: **no multicast group**. In 06 the
# kernel flooded unknown frames to a group and learnt from the answers where each MAC
# lives. Docker's engines tell each other where every container is (over their gossip
# protocol, on port 7946) and write the answers into the kernel in advance: permanent
# forwarding entries on `vxlan0`, and neighbour entries that let the device answer ARP
# requests itself (`ARP proxy`), so nothing ever needs to be flooded:

# %%
# node1$ nsenter --net=... bridge fdb show dev vxlan0
fdb = hosts["node1"].overlay_run(demonet, ["bridge", "fdb", "show", "dev", "vxlan0"]).stdout
print("\n".join(line for line in fdb.splitlines() if " dst " in line))
print("c2's MAC:", c2.mac("demonet"))

# %% [markdown]
# `c2`'s MAC address is reached through the VTEP `192.168.99.104`: node2's address.
# (The other entry is node2's own endpoint on demonet, which swarm uses to balance
# traffic to services.)
#
# ## 6. The packets on the wire between the hosts
#
# **Predict.** A capture on node1's `eth0` while `c1` pings `c2`: which addresses are in
# the outer IP header, and which in the inner one? How many bytes of overhead?

# %%
# node1$ tcpdump -i eth0 udp port 4789
with Capture(hosts.node("node1"), "eth0", filter="udp port 4789", path=CAPTURES / "wire.pcap") as wire:
    c1.ping("c2", count=2)
table = wire.table()
table[["src_ip", "dst_ip", "dport", "vni", "inner_src_ip", "inner_dst_ip", "stack", "overhead_bytes"]]

# %% tags=["nbval-check-output"]
{"packets": len(table), "tunnel": sorted(set(table["tunnel"])), "outer": sorted(set(table["src_ip"])),
 "VNI": sorted(int(v) for v in set(table["vni"])), "overhead bytes": sorted(int(v) for v in set(table["overhead_bytes"]))}

# %%
plots.overhead(table, title="demonet: inner packet and VXLAN encapsulation, bytes per packet")

# %% [markdown]
# Outer header: host to host (192.168.99.103 <-> 192.168.99.104, UDP port 4789, VNI
# 4097); inner frame: container to container (10.10.3.x), untouched. The hosts' network
# only ever sees the hosts' addresses.
#
# ## 7. Docker's overlay and the kernel's VXLAN
#
# | | kernel VXLAN (notebook 06, by hand) | Docker overlay (here) |
# |---|---|---|
# | device | `ip link add vxlan0 type vxlan id 42 group 239.1.1.1 dev enp0s8 dstport 4789`, port of bridge `lxdbr0` | the same kind of device, port of bridge `br0`, in a namespace the engine keeps per network |
# | VNI | chosen by you (42) | chosen by Docker (from 4097 up) |
# | finding remote MACs | flooding to a multicast group, then learning | engines tell each other (gossip) and write permanent FDB and ARP entries; no group |
# | container addressing | by hand | the swarm's IPAM gives each container an address of the subnet |
# | names | none | the swarm's DNS (`ping c2`) |
# | shared state | none | swarm managers' store (Consul / etcd in the thesis' era) |
# | MTU | 1450, set by hand | 1450, set by the engine on each container's interface |
#
# The kernel lab built the data plane (the tunnel); the engine adds a control plane that
# decides addresses, names and where every MAC lives.
#
# ## Summary
#
# * Each engine's `docker0` subnet is private to its host: two hosts can hand out the same
#   address, and nothing carries frames between them.
# * An overlay network spans engines that share state (a swarm today; a key-value store in
#   the thesis). Its scope is `swarm` (`global` in the key-value store days).
# * Containers on demonet are one Ethernet segment: TTL 64 across hosts, names resolve on
#   both, interface MTU 1450.
# * The data plane is a kernel VXLAN device (VNI 4097, UDP 4789) bridged with the
#   containers' veths in a namespace per network; its forwarding and ARP entries are
#   written by the engines, so no multicast group is needed.

# %% [markdown]
# ## Questions to think about
#
# 1. Both engines' `docker0` subnets are 172.17.0.0/16. Why is that harmless for
#    containers on `docker0`, and why could demonet not work that way?
# 2. The kernel lab of notebook 06 flooded the first ARP request to a multicast group;
#    the engines wrote permanent FDB and ARP entries instead. What does each approach need
#    from the network between the hosts?
# 3. A container on demonet has two interfaces. Which one carries a ping to a container
#    on the other host, and which one a download from the internet?
#
# <details><summary>Answers (open after you have thought about them)</summary>
#
# 1. A `docker0` address never leaves its host: traffic to the outside is masqueraded to
#    the host's address, so the same private subnet can repeat on every host. demonet is
#    one Ethernet segment across hosts: every container on it needs an address unique in
#    the whole network, so one IPAM (the swarm's) must hand them out.
# 2. Flooding to a group needs multicast routing between the hosts (IGMP on the switches,
#    PIM across routers), which clouds and many data centres do not offer. Written entries
#    need only unicast UDP between hosts, plus a control plane that knows every container
#    (the swarm's gossip, formerly a key-value store).
# 3. `eth0` (demonet, MTU 1450) carries the ping, inside VXLAN between the hosts. `eth1`
#    (`docker_gwbridge`) holds the default route: a download leaves through the
#    container's own host, masqueraded, never through the overlay.
# </details>
#
# ### Clean-up

# %% tags=["nbval-check-output"]
hosts.close()      # docker swarm leave --force; stop both engines (their namespaces go with them)
shutil.rmtree(CAPTURES, ignore_errors=True)
running_hosts()
