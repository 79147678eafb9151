# %% [markdown]
# # 30 · Flannel: one subnet per host, leased from a real etcd
#
# **Objectives.**
#
# 1. build seed 001's cluster: `host` runs **etcd**, `node1` and `node2` run **flanneld**;
# 2. write flannel's network config into etcd and watch each node **lease** a subnet
#    (`etcdctl`), bound to an etcd lease with a TTL that flanneld keeps renewing;
# 3. read what flanneld leaves on a node: `/run/flannel/subnet.env`, the `flannel.1`
#    VXLAN device (VNI 1, UDP 8472, MTU 1450), one route + neighbour + FDB entry per
#    other host; start Docker's bridge from subnet.env (`--bip`, `--mtu`);
# 4. follow a ping from container to container: traceroute, and captures on `docker0`,
#    `flannel.1` and `eth1` side by side (plain ICMP inside, VXLAN outside);
# 5. compare the `vxlan` and `udp` backends, measured;
# 6. break it: stop one node's flanneld and watch its lease expire and its routes vanish
#    from the other node; restart it and watch it come back.
#
# **What is real here.** etcd is Debian's etcd 3.4, started in `host`; `etcdctl`, `ip`,
# `bridge`, `iptables` and the captures are the real tools; routes, devices and packets
# are the kernel's. No flanneld binary can be installed on this machine, so each node runs
# `python -m labkit.flannel.agent`, a lab process that plays flanneld faithfully: the same
# flags, keys, lease values, devices, routes, chains, `subnet.env` and log lines.
#
# ```
#                  underlay 192.168.99.0/24 (seed 001's VirtualBox host-only network)
#     ┌────────────────────────┬─────────────────────────────┬───────────────────────────┐
#  eth1 .100                 eth1 .101                     eth1 .102
#   host: etcd :2379         node1: flanneld               node2: flanneld
#                            flannel.1 10.4.X.0/32         flannel.1 10.4.Y.0/32
#                            docker0 10.4.X.1/24 ─ c1      docker0 10.4.Y.1/24 ─ c2
# ```

# %%
import ipaddress
import time

import pandas as pd

from labkit import Lab, measure, to_frame
from labkit.cluster import Cluster
from labkit.flannel import Flannel

lab = Lab("flannel")
cluster = Cluster(lab)                 # host .100, node1 .101, node2 .102, card eth1
host, node1, node2 = cluster.machines
pd.DataFrame(cluster.describe()["machines"])

# %% [markdown]
# ## 1 · etcd, for real
#
# The seed starts etcd on `host` listening on its underlay address. We enable the v2 API
# too, because the seed's 2017 commands (`etcdctl set`) use it.

# %%
etcd = cluster.start_etcd()
print(" ".join(etcd.argv))
print(etcd.etcdctl(node1, "endpoint", "health"))      # from node1: etcdctl --endpoints http://192.168.99.100:2379 endpoint health

# %% [markdown]
# ## 2 · The network config
#
# Flannel reads one key, `<prefix>/config`. The seed uses the prefix `/docker-test/network`
# and this value: the whole overlay is 10.4.0.0/16, each host gets a /24, packets travel
# in VXLAN.
#
# **Predict.** We start node1's flanneld *before* writing the config. What does it do?

# %%
PREFIX = "/docker-test/network"
flannel = Flannel(cluster, prefix=PREFIX)
TTL = 6                                  # seconds; flanneld's own leases last 24 h
flannel.start(node1, ttl=TTL)            # node1# flanneld -etcd-endpoints=http://192.168.99.100:2379 -iface=eth1 -etcd-prefix=/docker-test/network
time.sleep(1.5)
print(flannel.log(node1))

# %% [markdown]
# It waits, and says why, every second. Now write the config. The seed typed
# `etcdctl set` (etcd's **v2** API); flannel since 0.18 reads the **v3** keyspace, which is
# separate. Watch what happens if we write with the old command:

# %%
CONFIG = '{"Network": "10.4.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}'
print(etcd.etcdctl(host, "set", f"{PREFIX}/config", CONFIG, api=2))     # ETCDCTL_API=2 etcdctl set ...
time.sleep(1.5)
print(flannel.log(node1).splitlines()[-1])

# %% [markdown]
# flanneld found the key in the *other* keyspace and tells us so. Write it with the v3
# command (`etcdctl put`); the waiting flanneld picks it up within a second.

# %%
print(etcd.etcdctl(host, "put", f"{PREFIX}/config", CONFIG))          # ETCDCTL_API=3 etcdctl put ...
flannel.wait_for_lease(node1)
log = flannel.log(node1).splitlines()
waited = [line for line in log if line.startswith("E")]
print(len(waited), "error lines while there was no usable config; then:")
print("\n".join(line for line in log if line.startswith("I")))

# %% [markdown]
# These are the lines of seed 001 §4.3.4: the config found, the range it picks from
# (10.4.1.0 … 10.4.255.0: never the first /24), the lease allocated **at random** among
# the free ones, the subnet file written, then the forwarding and masquerading rules.
# Now node2:

# %%
flannel.start(node2, ttl=TTL)
flannel.wait_converged()
pd.DataFrame(flannel.leases())          # etcdctl get --prefix /docker-test/network/subnets

# %%
print(etcd.etcdctl(host, "get", "--prefix", f"{PREFIX}/subnets"))

# %% [markdown]
# Each lease is a key `…/subnets/10.4.X.0-24` whose value names the host (`PublicIP`)
# and its VXLAN endpoint (`VtepMAC`). It is bound to an etcd **lease** (`lease` column,
# `etcdctl lease timetolive`): when the lease runs out, etcd deletes the key. flanneld
# renews it well before that, by binding the key to a fresh lease (watch the ID change):

# %%
before = {r["subnet"]: r["lease"] for r in flannel.leases()}
time.sleep(TTL / 2 + 1)
after = {r["subnet"]: r["lease"] for r in flannel.leases()}
pd.DataFrame({"lease before": before, "lease now": after})

# %% [markdown]
# ## 3 · What flanneld leaves on a node
#
# ### subnet.env, and Docker's bridge from it

# %%
print(node1.read_text("/run/flannel/subnet.env"))       # node1$ cat /run/flannel/subnet.env

# %% [markdown]
# **Predict.** Why is `FLANNEL_SUBNET` the **.1** address and not the .0 of the lease?
#
# The seed then restarts Docker with `--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU`: the
# bridge `docker0` takes the .1 (the containers' gateway) and the MTU 1450. The .0 is
# already taken, by `flannel.1`.

# %%
def second_address(fl: Flannel, node) -> str:
    """The .2 of a node's flannel subnet: the first container's address."""
    bip = ipaddress.ip_interface(fl.subnet_env(node)["FLANNEL_SUBNET"])
    return f"{bip.ip + 1}/{bip.network.prefixlen}"


for node in cluster.nodes:
    print(node.name, "docker0", flannel.docker_bridge(node))    # dockerd --bip=10.4.X.1/24 --mtu=1450
c1 = node1.add_container("c1", address=second_address(flannel, node1))   # docker run on node1
c2 = node2.add_container("c2", address=second_address(flannel, node2))
c1_ip, c2_ip = (c.addresses("eth0")[0].local for c in (c1, c2))
print("c1", c1_ip, "| c2", c2_ip, "| c1's eth0 MTU", c1.interface("eth0").mtu)

# %% [markdown]
# ### flannel.1

# %% tags=["nbval-check-output"]
dev = node1.interface("flannel.1")               # ip -d link show flannel.1
print("kind", dev.kind, "| VNI", dev.vxlan["id"], "| UDP port", dev.vxlan["port"],
      "| learning", dev.vxlan["learning"], "| local", dev.vxlan["local"], "| MTU", dev.mtu)

# %%
print(node1.run("ip -d link show flannel.1").stdout)
print(node1.run("ip addr show flannel.1").stdout)

# %% [markdown]
# One VXLAN device per host, VNI 1, port **8472** (the Linux kernel's historical VXLAN
# port, not IANA's 4789), no MAC learning: flanneld tells the kernel everything. Its
# address is the lease's **.0**, as a /32.
#
# ### Per other host: a route, a neighbour, an FDB entry

# %%
print(node1.run("ip route").stdout)
print(node1.run("ip neigh show dev flannel.1").stdout)
print(node1.run("bridge fdb show dev flannel.1").stdout)

# %% [markdown]
# Read them together, for node2's subnet 10.4.Y.0/24:
#
# * `ip route`: `10.4.Y.0/24 via 10.4.Y.0 dev flannel.1 onlink`: send it into the tunnel,
#   next hop node2's flannel.1 (onlink: no connected route covers 10.4.Y.0);
# * `ip neigh`: 10.4.Y.0 has node2's flannel.1 MAC, **PERMANENT**: no ARP crosses the tunnel;
# * `bridge fdb`: that MAC lives behind `dst 192.168.99.102`: where the VXLAN packet goes.
#
# That is the whole data plane: three kernel entries per remote host, all written from
# the leases in etcd.

# %% [markdown]
# ## 4 · A ping across hosts
#
# **Predict** the traceroute from c1 to c2: how many hops, and which addresses?

# %%
print(c1.ping(c2_ip))
for hop in c1.traceroute(c2_ip):                 # c1$ traceroute -n 10.4.Y.2
    print(hop.ttl, hop.addresses, hop.rtts_ms)

# %% [markdown]
# As in seed 000 §2.6: the gateway (docker0, 10.4.X.1), then **10.4.Y.0**, node2's
# `flannel.1`, then the container. The underlay (192.168.99.x) never shows: it is hidden
# inside VXLAN. Now three captures at once on node1: the bridge, the tunnel device, the card.

# %%
with lab.capture([(node1, "docker0"), (node1, "flannel.1"), (node1, "eth1")],
                 filter="icmp or udp port 8472") as mc:
    c1.ping(c2_ip, count=1)
trace = mc.table()
trace[["interface", "direction", "src_ip", "dst_ip", "dport", "vni", "inner_src_ip", "inner_dst_ip",
       "stack", "length"]]

# %% tags=["nbval-check-output"]
request = trace[(trace["direction"] == "out") & ((trace["dst_ip"] == c2_ip) | (trace["inner_dst_ip"] == c2_ip))]
print(request.groupby("interface")["stack"].first().to_string())
print("bytes added on eth1:", int(trace["overhead_bytes"].max()))

# %% [markdown]
# On `docker0` and `flannel.1` the echo request is plain ICMP from 10.4.X.2 to 10.4.Y.2.
# On `eth1` the same packet is inside Ethernet + IPv4 (192.168.99.101 → .102) + UDP 8472
# + VXLAN (VNI 1): **50 bytes** more. That is why FLANNEL_MTU is 1500 − 50 = **1450**, and
# why Docker must be given that MTU: a container sending 1500-byte packets would see them
# refused or fragmented at flannel.1.

# %% [markdown]
# ## 5 · vxlan or udp?
#
# flannel's first backend, `udp`, had a daemon read every packet from a TUN device
# `flannel0` and send it in UDP port 8285 (MTU 1500 − 28 = 1472). We build the same
# cluster with `"Backend": {"Type": "udp"}` in a second lab and measure both.
# **Predict**: which has the lower round-trip time, and the higher throughput? Why?

# %%
def backend_numbers(kind: str) -> dict:
    with Lab(f"flannel-{kind}") as other:
        cl = Cluster(other)
        cl.start_etcd()
        fl = Flannel(cl)
        fl.configure("10.5.0.0/16", backend=kind)        # etcdctl put /coreos.com/network/config '{... "Type": "<kind>"}'
        fl.start_all(ttl=30)
        fl.wait_converged()
        a, b = cl.nodes
        for n in cl.nodes:
            fl.docker_bridge(n)
        x = a.add_container("x", address=second_address(fl, a))
        y = b.add_container("y", address=second_address(fl, b))
        y_ip = y.addresses("eth0")[0].local
        return {"backend": kind, "device": "flannel.1" if kind == "vxlan" else "flannel0",
                "MTU": int(fl.subnet_env(a)["FLANNEL_MTU"]),
                "RTT ms": round(measure.latency(x, y_ip, count=20).rtt_avg, 3),
                "TCP Mbit/s": round(measure.throughput_mbit(x, y, y_ip, seconds=2), 0)}


pd.DataFrame([backend_numbers("vxlan"), backend_numbers("udp")]).set_index("backend")

# %% [markdown]
# VXLAN is done by the kernel; `udp` copies every packet to userspace and back on both
# hosts. That is why flannel made `vxlan` its recommended backend. (Numbers vary with
# the machine; the ratio is the lesson.)

# %% [markdown]
# ## 6 · Break it: a node's flanneld stops
#
# **Predict.** We stop node2's flanneld (`systemctl stop flanneld`). Its devices and
# routes stay. What happens to its lease in etcd, and to node1's route to node2's
# subnet? How long does it take?

# %%
node2_subnet = str(ipaddress.ip_interface(flannel.subnet_env(node2)["FLANNEL_SUBNET"]).network)
flannel.stop(node2)
rows, start = [], time.monotonic()
while time.monotonic() - start < TTL + 4:
    t = round(time.monotonic() - start, 1)
    routed = node2_subnet in flannel.routes_to_others(node1)     # node1$ ip route
    rows.append({"t (s)": t, "node1 routes to node2": routed,
                 "leases in etcd": len(flannel.leases())})        # etcdctl get --prefix .../subnets
    time.sleep(0.5)
timeline = pd.DataFrame(rows)
timeline.groupby(["node1 routes to node2", "leases in etcd"], sort=False)["t (s)"].agg(["min", "max"])

# %%
print("\n".join(l for l in flannel.log(node1).splitlines() if "removing subnet" in l))
print(c1.ping(c2_ip, count=1, wait=0.5))

# %% [markdown]
# Nothing happened on node1 until the lease ran out (at most TTL seconds after the last
# renewal); then etcd deleted the key, every flanneld watching `…/subnets/` saw the
# deletion, and node1 removed the route, neighbour and FDB entry. With flanneld's real
# 24-hour leases, a dead node's subnet stays reserved for a day, on purpose: a node that
# reboots gets its subnet back.
#
# Restart node2's flanneld: it reads its old subnet.env and asks for the same subnet.

# %%
flannel.start(node2, ttl=TTL)
flannel.wait_converged()
print([l for l in flannel.log(node2).splitlines() if "lease" in l.lower()][:3])
print(c1.ping(c2_ip))

# %% [markdown]
# ## 7 · Summary
#
# * flanneld turns one JSON config in etcd into one **subnet per host**, leased with a
#   TTL and renewed; a random free subnet, never the network's first.
# * It tells Docker what to use through `/run/flannel/subnet.env` (`--bip` the .1,
#   `--mtu` 1450).
# * The vxlan backend is the kernel's VXLAN: `flannel.1` (VNI 1, port 8472, .0/32) and
#   three entries per remote host (route onlink, permanent neighbour, FDB).
# * etcd is the only coordination: when a lease expires, every node drops the routes.
#
# Where Docker itself can run (root, `docker.io` installed), notebook 35 starts a real
# `dockerd` on each node with the options derived from `subnet.env`, as the seed does.
#
# Next: notebook 31, Calico, where hosts announce their subnets with BGP instead.

# %% [markdown]
# ## Questions to think about
#
# 1. The replies from c2 arrived with TTL 62, and the traceroute's second hop was
#    10.4.Y.0. Which machines decremented the TTL, and why does no 192.168.99.x address
#    appear anywhere in the traceroute?
# 2. Delete only the FDB entry for node2's VTEP on node1 (`bridge fdb del <MAC> dev
#    flannel.1 dst 192.168.99.102`) and ping c2 from c1. Predict what happens, and where
#    the packet ends. Compare with notebook 06's VXLAN device: why is there no
#    multicast group to fall back on?
# 3. After node2's flanneld stopped, node1 kept its route to node2 for a few seconds and
#    then, in a moment, dropped it. What decided that delay, and what did node1 itself
#    do to notice the change?
# 4. Restarted, node2 got the very same subnet back. Where did flanneld find which
#    subnet to ask for, and what would its containers have to go through if another
#    node had taken that subnet in the meantime?
#
# Exercise 30 ([exercises/30-flannel.ipynb](../exercises/30-flannel.ipynb)) builds
# Flannel with its own network and prefix; its solution answers these questions.

# %%
lab.close()
