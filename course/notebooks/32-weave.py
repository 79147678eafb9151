# %% [markdown]
# # 32 · Weave Net: a switch across hosts, with no store
#
# **Objectives.**
#
# 1. launch Weave on two machines the way seed 001 does (`weave launch`, then
#    `weave launch PEER` on the second: the seed's `weave launch 192.168.99.100`; here
#    the first machine is node1, 192.168.99.101) and see that the routers find each
#    other over **TCP 6783** with **no etcd**: they gossip;
# 2. find what Weave builds on a host: the `weave` bridge, containers with a second
#    interface **`ethwe` (MTU 1376)** beside `eth0` on docker0, addresses from
#    **10.32.0.0/12** shared out between the peers, and a **VXLAN data path on UDP 6784**
#    with one forwarding entry per peer;
# 3. resolve containers by name with **weaveDNS** (`NAME.weave.local`);
# 4. isolate containers with `WEAVE_CIDR` and see that *no rule* enforces it;
# 5. `weave expose` a host, and reach containers from a machine that runs no Weave.
#
# **What is real here.** Bridges, veths, the kernel's VXLAN, TCP connections, dnsmasq
# answering DNS, iptables rules. **What is played.** The Weave router itself (a lab
# process per machine, `python -m labkit.weave.router`) and the `weave` command
# (`python -m labkit.weave`). Real Weave's fast data path is an Open vSwitch datapath;
# this kernel has no `openvswitch` module (real Weave then falls back to its slower
# "sleeve" mode), so a Linux bridge with kernel VXLAN plays the fast path: the packets
# on the wire are the same.
#
# ```
#  bbox1 10.32.0.1 ┐                                               ┌ bbox3 10.40.0.0
#  bbox2 10.32.0.2 ┴ ethwe ─ weave ─ vxlan-6784 ╌╌ UDP 6784 ╌╌ vxlan-6784 ─ weave ─ ethwe
#   (eth0 ─ docker0 172.17.0.1: weaveDNS)        TCP 6783 (gossip)      (eth0 ─ docker0)
#        node1 eth1 192.168.99.101 ──────── underlay 192.168.99.0/24 ──────── node2 eth1 .102
# ```

# %%
import time

import pandas as pd

from labkit import Lab, to_frame
from labkit.cluster import Cluster
from labkit.weave import Weave

lab = Lab("weave")
cluster = Cluster(lab, store=None)      # node1 .101, node2 .102 on 192.168.99.0/24; no store machine
node1, node2 = cluster["node1"], cluster["node2"]
weave = Weave(cluster)
cluster

# %% [markdown]
# ## 1 · `weave launch` on the first host
#
# **Predict.** Flannel and Calico first needed etcd. What will the first Weave router
# connect to?

# %%
r1 = weave.launch("node1")              # node1# weave launch
print(r1.log())                         # docker logs weave

# %% [markdown]
# Alone, the router takes the whole allocation range for itself. Look at what `weave
# launch` built on node1:

# %% tags=["nbval-check-output"]
rows = [(i.ifname, i.kind, i.mtu, i.master or "") for i in node1.interfaces()
        if i.ifname in ("docker0", "weave", "vxlan-6784")]
pd.DataFrame(rows, columns=["device", "kind", "mtu", "master"])      # ip -d link show

# %% tags=["nbval-check-output"]
vx = node1.interface("vxlan-6784").vxlan                             # ip -d link show vxlan-6784
print("VNI", vx["id"], "| UDP port", vx["port"], "| underlay", vx["link"], vx["local"])

# %% [markdown]
# The router also started **weaveDNS**: a real `dnsmasq` listening on docker0's address
# (172.17.0.1, port 53) — where Weave's Docker integration points containers' resolvers
# (`docker run --dns 172.17.0.1 --dns-search weave.local`, from `weave dns-args`).

# %%
print(node1.run(["ss", "-lntu"]).stdout)        # 6783 (peers), 6784 (API, 127.0.0.1), 53 (DNS)

# %% [markdown]
# ## 2 · The second host joins: `weave launch 192.168.99.101`
#
# **Predict.** node2 is only told node1's address. After launch, which address blocks
# will each peer own? (Nobody can hand out an address another peer hands out too.)

# %%
r2 = weave.launch("node2", "192.168.99.101")     # node2# weave launch 192.168.99.101
weave.wait_connected()

# %% tags=["nbval-check-output"]
print(r1.weave("status", "ipam").stdout)          # node1# weave status ipam

# %% [markdown]
# node1 **donated** half of its range to node2 over their TCP connection. Each peer now
# allocates only from its own blocks: no store, no collisions. The data path follows
# the peers: one flooding entry per peer in the VXLAN forwarding table.

# %% tags=["nbval-check-output"]
fdb = to_frame(node1.fdb("vxlan-6784"))            # bridge -n node1 fdb show dev vxlan-6784
fdb[fdb["mac"] == "00:00:00:00:00:00"][["mac", "dst", "state"]].reset_index(drop=True)

# %% [markdown]
# ## 3 · Containers with two interfaces
#
# `eval $(weave env); docker run --name bbox1 busybox` gives a container its usual
# `eth0` on docker0 *and* `ethwe` on the weave bridge.

# %%
bbox1 = weave.run("node1", "bbox1")
bbox2 = weave.run("node1", "bbox2")
bbox3 = weave.run("node2", "bbox3")

# %% tags=["nbval-check-output"]
rows = [(c.name, i.ifname, i.mtu, ", ".join(f"{a.local}/{a.prefixlen}" for a in c.addresses(i.ifname)))
        for c in (bbox1, bbox2, bbox3) for i in c.interfaces() if i.ifname != "lo"]
pd.DataFrame(rows, columns=["container", "interface", "mtu", "address"])   # docker exec bboxN ip addr

# %%
print(bbox3.run(["ip", "route"]).stdout)           # docker exec bbox3 ip route

# %% [markdown]
# As in the seed: the default route leaves by eth0 (docker0), the whole 10.32.0.0/12 is
# *on-link* through ethwe — one big LAN — and multicast goes to ethwe too. Why MTU
# 1376? Weave leaves room for its encapsulation (and for the extra bytes of its
# encrypted mode) so that no container packet ever needs fragmenting.
#
# ## 4 · Across hosts, through UDP 6784
#
# **Predict.** bbox3 (on node2) pings bbox1. What crosses the underlay?

# %%
with node1.capture("eth1", filter="udp port 6784") as cap:    # tcpdump -i eth1 udp port 6784
    print(bbox3.ping(weave.address(bbox1), count=3))
wire = cap.table()
wire[["src_ip", "dst_ip", "dport", "vni", "stack", "inner_src_mac", "overhead_bytes"]]

# %% tags=["nbval-check-output"]
print("bytes added per packet:", sorted({int(b) for b in wire["overhead_bytes"]}))

# %% [markdown]
# Ethernet frames inside VXLAN inside UDP port 6784: 50 bytes per packet. bbox3's ARP
# request was flooded from node2 to node1 by node2's `00:00:00:00:00:00` entry; the
# kernels then learnt behind which peer each container MAC sits:

# %%
to_frame(node1.fdb("vxlan-6784"))[["mac", "dst", "state"]]

# %% [markdown]
# ## 5 · weaveDNS: `NAME.weave.local`
#
# Every router gossips the names of its containers; each machine's dnsmasq answers
# for all of them. Ask node2's weaveDNS, from bbox3, for a container on node1:

# %% tags=["nbval-check-output"]
print(weave.lookup(bbox3, "bbox1").stdout)        # docker exec bbox3 nslookup bbox1.weave.local 172.17.0.1

# %% tags=["nbval-check-output"]
answer = weave.lookup(bbox3, "nobody")
print(answer.stdout.strip().splitlines()[-1], "| exit status", answer.returncode)

# %%
print(r2.dns_log()[-600:])                        # dnsmasq --log-queries on node2

# %% [markdown]
# ## 6 · Isolation by subnet: `WEAVE_CIDR=net:10.32.2.0/24`
#
# **Predict.** A container started with `-e WEAVE_CIDR=net:10.32.2.0/24` pings bbox1
# (10.32.0.1). Same bridge, same VXLAN. Does it get an answer?

# %%
iso = weave.run("node1", "iso", cidr="net:10.32.2.0/24")   # docker run -e WEAVE_CIDR=net:10.32.2.0/24
print(iso.run(["ip", "route"]).stdout)
print(iso.ping(weave.address(bbox1), count=1, wait=0.5))

# %% [markdown]
# No: `iso` has no on-link route to 10.32.0.1 (its ethwe covers only 10.32.2.0/24); only
# its default route matches, and it leaves through eth0 to docker0, which does not lead
# to the weave network. That is **all** there is to it — look for a rule:

# %% tags=["nbval-check-output"]
rules = node1.run(["iptables-save"]).stdout
print("rules naming 10.32.2.0/24:", [l for l in rules.splitlines() if "10.32.2." in l])

# %%
iso.add_route("10.32.0.0/12", dev="ethwe")        # docker exec iso ip route add 10.32.0.0/12 dev ethwe
print(iso.ping(weave.address(bbox1), count=1))

# %% [markdown]
# One route inside the container and the "isolation" is gone: the frames were always
# on the same LAN. Weave's subnet isolation keeps well-behaved applications apart; it
# is not a security boundary (Weave's network policy controller adds real rules).

# %%
weave.remove(iso)

# %% [markdown]
# ## 7 · `weave expose`, and a host without Weave
#
# A machine outside the cluster, `outside` (192.168.99.50 on the underlay), routes
# 10.32.0.0/12 via node1: `ip route add 10.32.0.0/12 via 192.168.99.101`.
# **Predict.** Can it reach bbox3 before `weave expose`?

# %%
outside = lab.add_host("outside")
lab.link(outside, cluster.switch, names=("eth1", None))
outside.add_address("eth1", "192.168.99.50/24")
outside.add_route("10.32.0.0/12", via="192.168.99.101")
print(outside.ping(weave.address(bbox3), count=1, wait=0.5))

# %%
exposed = weave.expose("node1")                   # node1# weave expose
print("node1 joins the weave network as", exposed)
print(outside.ping(weave.address(bbox3), count=2))

# %% tags=["nbval-check-output"]
rules = node1.run(["iptables-save"]).stdout       # iptables-save | grep -i weave
print("\n".join(l for l in rules.splitlines() if "WEAVE" in l))

# %% [markdown]
# `weave expose` gave node1 an address on the bridge (so node1 itself is on the LAN, and
# has a route into 10.32.0.0/12: before it, node1 answered "Net Unreachable"), accepted
# the range in **WEAVE-EXPOSE** ahead of the `FORWARD -o weave -j DROP` rule, and
# **masqueraded** traffic entering the range from
# outside (nat chain **WEAVE**): bbox3 answers node1's weave address, and needs no route
# back to 192.168.99.50. TTL 63 in the reply: one routed hop, node1.
#
# ## 8 · A peer goes away
#
# **Predict.** node2's router stops (`weave stop`). What changes on node1?

# %%
r2.stop()                                         # node2# weave stop
time.sleep(1.5)
fdb = to_frame(node1.fdb("vxlan-6784"))
print("flood entries on node1:", list(fdb[fdb["mac"] == "00:00:00:00:00:00"]["dst"]))
print(weave.resolve(bbox1, "bbox3"))

# %% [markdown]
# The connection closed, node1 removed node2's flood entry and its DNS names. bbox3 still
# exists and keeps its address (node2 still owns its block): relaunch node2's router
# and it would come back.
#
# ## Summary: seed 001's tables, for Weave
#
# | property (seed §5) | Weave | seen in |
# |---|---|---|
# | network model | VXLAN (fast path) or UDP (sleeve) | §4: UDP 6784, 50 bytes |
# | isolation | by CIDR (subnet) | §6, and no rule enforces it |
# | name service | yes: `NAME.weave.local` | §5 |
# | distributed store | none: peers gossip over TCP 6783 | §1–2 |
# | container subnet | one subnet for all hosts (10.32.0.0/12) | §3 |

# %% [markdown]
# ## Questions to think about
#
# 1. bbox3 got the address 10.40.0.0. On the /24 networks of the earlier notebooks an
#    address ending in .0 names the network. Why is it an ordinary container address
#    here, and why was it the first one node2 handed out?
# 2. bbox3's ping to bbox1 came back with TTL 64; across Flannel (notebook 30) and
#    Calico (notebook 31) the replies carried 62. Predict what a traceroute from bbox3
#    to bbox1 shows, and explain the difference.
# 3. The first frames across the underlay were ARP, inside VXLAN. A Flannel container
#    never sends an ARP request to another host. Why does Weave's have to, how does the
#    request reach node1, and what does that cost in a cluster of 50 hosts?
# 4. Flannel needed etcd so that no two hosts lease the same subnet. How does Weave
#    avoid handing out one address twice without any store, and what happens to
#    allocation when node1 and node2 lose contact for a while?
#
# Exercise 32 ([exercises/32-weave.ipynb](../exercises/32-weave.ipynb)) builds Weave with
# its own range; its solution answers these questions.

# %%
lab.close()
