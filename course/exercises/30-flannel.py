# %% [markdown]
# # Exercise 30 · Flannel with a real etcd
#
# **Objectives.** Run flannel on seed 001's cluster and show the instructor, from the real
# state of the lab, that each step worked:
#
# 1. the network config written into etcd under your prefix;
# 2. one lease per node in etcd, `subnet.env` on each node, the `flannel.1` device;
# 3. containers on Docker-style bridges configured from `subnet.env`, talking across
#    hosts, with a capture showing VXLAN (VNI 1) on the underlay;
# 4. a node's flanneld stopped: its lease expires and the other node drops its route.
#
# ```
#                    underlay (seed 001's host-only network), MTU underlay_mtu
#      ┌──────────────────────────┬──────────────────────────────┐
#   eth1 .100                   eth1 .101                      eth1 .102
#    host: etcd                 node1: flanneld, docker0, c1   node2: flanneld, docker0, c2
# ```
#
# The setup cell builds the cluster and starts etcd in `host` (`cluster.start_etcd()`);
# `etcd.etcdctl(machine, ...)` runs the real `etcdctl` in any machine. Your prefix,
# network, subnet length and the underlay's MTU are parameters (your instructor may give
# you others): every checkpoint reads them. Use `labkit.flannel.Flannel` (notebook 30) or
# the commands themselves. Replace the `...` in every cell marked `# YOUR CODE HERE`, then
# run the checkpoint cell after it. Run the cells in order.
#
# *Instructors:* etcd runs with a 100 MiB backend quota and needs about 1.5 GiB of address
# space, which the grader's default memory limit allows.

# %% tags=["parameters"]
student_id = "anonymous"
prefix = "/docker-test/network"   # flanneld -etcd-prefix
network = "10.4.0.0/16"           # the config's "Network"
subnet_len = 24                   # the config's "SubnetLen"
underlay_mtu = 1500               # MTU of the cards on the underlay
ttl = 4                           # lease TTL for this exercise, seconds (flanneld's: 24 h)

# %%
import ipaddress
import time

import pandas as pd

from labkit import Lab
from labkit.checkpoints import Checkpoint, checks
from labkit.cluster import Cluster
from labkit.flannel import SUBNET_FILE, Flannel, parse_subnet_env

lab = Lab("ex30-flannel")
cluster = Cluster(lab, mtu=underlay_mtu)       # host .100 (etcd), node1 .101, node2 .102, card eth1
host, node1, node2 = cluster.machines
etcd = cluster.start_etcd()


def flannel_subnet(node) -> ipaddress.IPv4Network:
    """The subnet a node leased, read from its /run/flannel/subnet.env."""
    env = parse_subnet_env(node.read_text(SUBNET_FILE) or "")
    return ipaddress.ip_interface(env["FLANNEL_SUBNET"]).network


print(f"etcd at {etcd.endpoint};  prefix {prefix}, network {network}, /{subnet_len}, "
      f"underlay MTU {underlay_mtu}")

# %% [markdown]
# ## Task 1 · The network config (2 points)
#
# Write flannel's config under your prefix with etcd's v3 API (`etcdctl put
# PREFIX/config '{...}'`): your network, your subnet length, the `vxlan` backend.
# Then read it back with `etcdctl get`.

# %%
# BEGIN SOLUTION
flannel = Flannel(cluster, prefix=prefix)
flannel.configure(network, subnet_len=subnet_len, backend="vxlan")
# etcdctl --endpoints http://192.168.99.100:2379 put PREFIX/config '{"Network": ..., "SubnetLen": ..., "Backend": {"Type": "vxlan"}}'
print(etcd.etcdctl(host, "get", f"{prefix}/config"))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("30.1", "The config is in etcd (v3) under your prefix", points=2,
                hint="etcd.etcdctl(host, 'put', f'{prefix}/config', JSON), or "
                     "Flannel(cluster, prefix=prefix).configure(network, subnet_len=subnet_len)") as cp:
    get = ["etcdctl", "--endpoints", etcd.endpoint, "get", f"{prefix}/config"]
    cp.check(checks.command(host, get, stdout_contains=network))
    cp.check(checks.command(host, get, stdout_contains="vxlan"))
    cp.check(checks.command(host, get, stdout_contains=f"{subnet_len}"))

# %% [markdown]
# ## Task 2 · flanneld on node1 and node2 (3 points)
#
# Start flanneld on both workers: etcd's endpoint, interface `eth1`, your prefix, and a
# lease TTL of `ttl` seconds (`Flannel.start(node, ttl=ttl)` passes
# `-subnet-lease-ttl`). Wait until both have a lease; look at the leases in etcd
# (`etcdctl get --prefix PREFIX/subnets`) and at node1's `subnet.env`. **Predict** its
# `FLANNEL_MTU` before you read it.

# %%
# BEGIN SOLUTION
flannel.start_all(ttl=ttl)     # on each node: flanneld -etcd-endpoints=... -iface=eth1 -etcd-prefix=PREFIX
flannel.wait_converged()
print(etcd.etcdctl(host, "get", "--prefix", f"{prefix}/subnets"))
print(node1.read_text(SUBNET_FILE))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("30.2", "A lease per node in etcd, subnet.env, flannel.1", points=3,
                hint="flannel.start(node1, ttl=ttl) and flannel.start(node2, ttl=ttl), then "
                     "flannel.wait_converged()") as cp:
    leases = ["etcdctl", "--endpoints", etcd.endpoint, "get", "--prefix", f"{prefix}/subnets/"]
    for node in (node1, node2):
        cp.check(checks.command(host, leases, stdout_contains=f'"PublicIP":"{node.ip}"'))
        env = ["cat", node.path(SUBNET_FILE)]
        cp.check(checks.command(node, env, stdout_contains=f"FLANNEL_NETWORK={network}"))
        cp.check(checks.command(node, env, stdout_contains=f"FLANNEL_MTU={underlay_mtu - 50}"))
        cp.check(checks.interface(node, "flannel.1", kind="vxlan", mtu=underlay_mtu - 50))

# %% [markdown]
# ## Task 3 · Containers across hosts, and the wire (3 points)
#
# Give each node its `docker0` from its `subnet.env` (`--bip=$FLANNEL_SUBNET
# --mtu=$FLANNEL_MTU`: `flannel.docker_bridge(node)`), then a container on it: `c1` on
# node1 and `c2` on node2, each with the **second** address of its node's subnet (the
# .2 when the subnet is a /24; the bridge has the .1). Capture on node1's `eth1` while
# `c1` pings `c2`, and keep the capture in `flannel_capture`. In its table, find the
# outer addresses, the UDP port and the VNI.

# %%
# BEGIN SOLUTION
for node in cluster.nodes:
    flannel.docker_bridge(node)                  # dockerd --bip=... --mtu=...
c1 = node1.add_container("c1", address=f"{flannel_subnet(node1).network_address + 2}/{subnet_len}")
c2 = node2.add_container("c2", address=f"{flannel_subnet(node2).network_address + 2}/{subnet_len}")
c2_ip = str(flannel_subnet(node2).network_address + 2)
with node1.capture("eth1", filter="udp port 8472") as flannel_capture:   # tcpdump -i eth1 udp port 8472
    print(c1.ping(c2_ip))
flannel_capture.table()[["src_ip", "dst_ip", "dport", "vni", "inner_src_ip", "inner_dst_ip", "stack"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("30.3", "c1 reaches c2 through flannel.1; VXLAN VNI 1 on the wire", points=3,
                hint="flannel.docker_bridge(node); node.add_container('c1', address=...); "
                     "with node1.capture('eth1') as flannel_capture: c1.ping(...)") as cp:
    far = flannel_subnet(node2)
    cp.check(checks.route(node1, str(far), via=str(far.network_address), dev="flannel.1"))
    cp.check(checks.address(lab.node("c1"), f"{flannel_subnet(node1).network_address + 2}", dev="eth0"))
    cp.check(checks.ping(lab.node("c1"), str(far.network_address + 2)))
    cp.check(checks.capture(flannel_capture, "udp/vxlan(vni=1)/eth/ipv4/icmp"))

# %% [markdown]
# ## Task 4 · A node's flanneld stops (2 points)
#
# Stop node2's flanneld (`flannel.stop(node2)`, as `systemctl stop flanneld`).
# **Predict**: what happens at once, and what after `ttl` seconds? Wait until node2's
# lease has gone from etcd, then look at node1's routes. Leave it stopped.

# %%
# BEGIN SOLUTION
flannel.stop(node2)
while any(lease["PublicIP"] == node2.ip for lease in flannel.leases()):
    time.sleep(0.5)
time.sleep(1)
print(node1.run("ip route").stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("30.4", "node2's lease expired, and node1 dropped its route", points=2,
                hint="flannel.stop(node2), then wait until flannel.leases() no longer lists node2") as cp:
    cp.check(checks.command(node2, ["cat", node2.path(SUBNET_FILE)], stdout_contains="FLANNEL_SUBNET="))
    gone = flannel_subnet(node2)
    key = f"{prefix}/subnets/{gone.network_address}-{gone.prefixlen}"
    cp.check(checks.command(host, ["sh", "-c", f'test -z "$(etcdctl --endpoints {etcd.endpoint} get {key})"']))
    cp.check(checks.route(node1, str(gone), present=False))

# %% [markdown]
# ## To think about (not graded)
#
# * Why is `FLANNEL_SUBNET` the .1 and `flannel.1`'s address the .0 of the lease?
# * What did node1 do during the `ttl` seconds after node2's flanneld stopped, and why
#   does flanneld really use 24-hour leases?
# * With `"Backend": {"Type": "udp"}`, which MTU would `subnet.env` give, and why?
#
# ## Clean-up

# %%
lab.close()

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 30
#
# 1. **Two routers, one hidden wire.** node1 routes the packet from `docker0` into
#    `flannel.1`, and node2 routes it from its `flannel.1` to its `docker0`: each
#    decrements the TTL once, so 64 becomes 62. The second hop answers from 10.4.Y.0,
#    node2's `flannel.1` address, the interface it replies through. The underlay is not
#    a hop at all: to the inner packet, VXLAN is one link between the two `flannel.1`
#    devices. The outer header (192.168.99.101 → .102) carries its own TTL, which the
#    inner traceroute never sees.
# 2. **Dropped inside node1.** The route and the permanent neighbour entry still send
#    the packet into `flannel.1` with node2's VTEP MAC as destination, but the device
#    has no forwarding entry for that MAC and, with `nolearning` and no default
#    (all-zeros) entry, nowhere else to send it: the kernel drops it (the TX dropped
#    counter of `ip -s link show flannel.1` grows) and the ping times out. Notebook 06
#    flooded unknown destinations to a multicast group and learnt from the answers;
#    flanneld turns both off because it knows every VTEP from etcd and writes them
#    itself, which needs only unicast between hosts.
# 3. **The etcd lease's TTL.** node1 received nothing from node2 and checked nothing
#    on the wire. node2's subnet key was bound to an etcd lease that node2 had stopped
#    renewing; when that lease ran out (at most `TTL` seconds after the last renewal),
#    etcd deleted the key. node1's flanneld watches the `…/subnets/` prefix, got the
#    deletion event at once, and removed the route, the neighbour and the FDB entry
#    ("removing subnet" in its log). With the real 24-hour leases, the same thing
#    happens a day later.
# 4. **In its own subnet.env.** flanneld reads the previous `FLANNEL_SUBNET` from
#    `/run/flannel/subnet.env` and asks for that subnet first ("Found previously leased
#    subnet … reusing"). Had another node leased it, node2 would get a new random /24:
#    `docker0` would need a new `--bip`, so Docker would have to restart and every
#    container on node2 would come back with a new address.
