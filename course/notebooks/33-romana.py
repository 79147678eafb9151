# %% [markdown]
# # 33 · Romana: the address is the route, and the policy
#
# **Objectives.**
#
# 1. read Romana's hierarchical layout: a 10/8 network split into **8 host bits,
#    4 tenant bits, 4 segment bits and 8 endpoint bits** (and the 172.16/12 variant),
#    and compose and decompose addresses both ways;
# 2. see why it needs **no encapsulation** and few routes: each host owns one block,
#    `10.h.0.0/16`, reached by one plain route through that host;
# 3. find the pieces on a host: the gateway `romana-gw`, **proxy ARP** on each pod's
#    veth, one /32 route per pod;
# 4. watch **isolation by filtering**: chains that match tenant and segment *bits* in
#    the addresses, so pods of one tenant and segment talk and no others.
#
# **What is real here.** Routes, veths, proxy ARP, iptables rules with non-contiguous
# masks. **What is played.** The Romana agent of each host (`python -m
# labkit.romana.agent`, a lab process) and the Romana daemon's decisions (this notebook
# numbers the hosts, hands out addresses and writes each agent's
# `/etc/romana/agent.json`; the real daemon keeps that state in its own etcd).
#
# ```
#   pod a 10.0.17.1 ─ romanaXXXXXXX ┐                       ┌ romanaXXXXXXX ─ pod b 10.1.17.1
#                      romana-gw 10.0.0.1/16               romana-gw 10.1.0.1/16
#   node1 (host 0): 10.0.0.0/16 ── eth1 192.168.99.101 ─ underlay ─ .102 eth1 ── node2 (host 1): 10.1.0.0/16
#               10.1.0.0/16 via 192.168.99.102          10.0.0.0/16 via 192.168.99.101
# ```

# %%
import pandas as pd

from labkit import Lab, to_frame
from labkit.cluster import Cluster
from labkit.romana import Layout, Romana

# %% [markdown]
# ## 1 · An address is a place
#
# **Predict.** In the default layout, which host, tenant, segment and endpoint is
# 10.1.18.7? Write the third byte, 18, in binary first.

# %% tags=["nbval-check-output"]
layout = Layout()                                  # 10.0.0.0/8: host 8, tenant 4, segment 4, endpoint 8
print(layout)
pd.DataFrame(layout.bits_table("10.1.18.7"))

# %% tags=["nbval-check-output"]
print(layout.decompose("10.1.18.7"))
print(layout.compose(host=1, tenant=1, segment=2, endpoint=7))

# %% [markdown]
# Each field is a block inside the one before it, so every level has one prefix:

# %% tags=["nbval-check-output"]
pd.DataFrame([
    ("host 1", str(layout.host_block(1)), layout.capacity("host")),
    ("tenant 1 on host 1", str(layout.tenant_block(1, 1)), layout.capacity("tenant")),
    ("segment 2 of tenant 1 on host 1", str(layout.segment_block(1, 1, 2)), layout.capacity("segment")),
], columns=["block", "prefix", "how many of these"])

# %% [markdown]
# The curriculum's variant keeps the 172.16/12 private range: only 4 bits are left for
# hosts (16 of them), each still a /16.

# %% tags=["nbval-check-output"]
small = Layout.variant_172()
print(small)
print(small.compose(3, 1, 2, 7), small.host_block(15), small.decompose("172.31.255.254"))

# %% [markdown]
# A layout that does not add up to 32 bits, or a tenant that does not fit its bits, is
# refused before anything is built:

# %% tags=["raises-exception"]
Layout(host_bits=9)

# %% tags=["raises-exception"]
layout.compose(host=0, tenant=16, segment=0, endpoint=1)

# %% [markdown]
# ## 2 · Two hosts, two blocks, two routes
#
# Real Romana stores its topology in etcd; the routing itself needs no store at run
# time, so the cluster here has none.

# %%
lab = Lab("romana")
cluster = Cluster(lab, store=None)                 # node1 .101 (host 0), node2 .102 (host 1)
node1, node2 = cluster["node1"], cluster["node2"]
romana = Romana(cluster, layout)
romana.start()                                     # romana-agent on each host
print(romana.agent("node1").stdout_text())

# %% [markdown]
# This kernel has no `dummy` device, which Romana uses for `romana-gw`; the agent fell
# back to a bridge without ports, which holds an address just the same.

# %% tags=["nbval-check-output"]
print(node1.run(["ip", "route"]).stdout)           # ip -n node1 route

# %% [markdown]
# One route for the whole other host, through its underlay address: no tunnel device,
# no extra header. With all 256 hosts, 255 such routes per host.
#
# ## 3 · Pods of tenants and segments
#
# **Predict.** Pod `a` is tenant 1, segment 1, on node1. What address will it get?

# %%
a = romana.add_pod("node1", "a", tenant=1, segment=1)
a2 = romana.add_pod("node1", "a2", tenant=1, segment=1)
b = romana.add_pod("node2", "b", tenant=1, segment=1)
c = romana.add_pod("node2", "c", tenant=2, segment=1)
d = romana.add_pod("node1", "d", tenant=1, segment=2)

# %% tags=["nbval-check-output"]
pd.DataFrame(romana.table()).drop(columns=["veth"])

# %%
print(a.run(["ip", "addr", "show", "eth0"]).stdout)     # docker exec a ip addr show eth0
print(a.run(["ip", "route"]).stdout)

# %% [markdown]
# Pod `a` believes the whole host block 10.0.0.0/16 is on its link, so to reach `a2` it
# asks by ARP. The host answers for `a2` with its own veth's MAC (**proxy ARP**) and
# routes the packet with the /32 route the agent added: same-host traffic goes through
# the host's IP layer too, where it can be filtered.

# %%
print(a.ping(romana.address(a2), count=1))
veth_a = next(row["veth"] for row in romana.table() if row["pod"] == "a")
print(node1.run(["ip", "route"]).stdout)                             # ip -n node1 route: a /32 per pod
print(veth_a, "proxy_arp =", node1.get_sysctl(f"net.ipv4.conf.{veth_a}.proxy_arp"))  # sysctl net.ipv4.conf.VETH.proxy_arp
to_frame(a.neighbours())[["dst", "lladdr", "state"]]     # ip neigh: a2's address, the host veth's MAC

# %% [markdown]
# ## 4 · Across hosts, without encapsulation
#
# **Predict.** `a` pings `b` on node2. What does node2's card see?

# %%
with node2.capture("eth1", filter="icmp") as cap:
    print(a.ping(romana.address(b), count=2))
cap.table()[["src_ip", "dst_ip", "stack", "overhead_bytes"]]

# %% [markdown]
# The pods' own addresses on the wire, 0 bytes added: plain routing.
#
# ## 5 · Isolation by the address bits
#
# **Predict.** Which of these pings get an answer?

# %% tags=["nbval-check-output"]
pairs = [(a, b), (a, a2), (a, c), (a, d), (c, b), (d, a2)]
rows = []
for src, dst in pairs:
    p, q = romana.parts(src), romana.parts(dst)
    ok = src.ping(romana.address(dst), count=1, wait=1.0).received > 0
    rows.append((src.name, dst.name, f"t{p.tenant}/s{p.segment}", f"t{q.tenant}/s{q.segment}",
                 "answers" if ok else "dropped"))
pd.DataFrame(rows, columns=["from", "to", "from tenant/seg", "to tenant/seg", "ping"])

# %% tags=["nbval-check-output"]
rules = node1.run(["iptables-save", "-t", "filter"]).stdout      # iptables-save -t filter
print("\n".join(l for l in rules.splitlines() if "ROMANA" in l))

# %% [markdown]
# Every packet forwarded to a pod (`-o romana+`) enters **ROMANA-FORWARD**, which sends
# it, by the *destination's* tenant and segment bits, to that segment's chain; there
# only *sources* with the same bits are accepted. The masks skip the host byte
# (255.**0**.255.0), so one rule covers the segment on every host. nftables shows the
# same match as a bitwise AND:

# %%
print(node1.run(["nft", "list", "chain", "ip", "filter", "ROMANA-T1-S1"]).stdout)

# %% [markdown]
# ## 6 · The agent keeps the host as decided
#
# **Predict.** Delete node1's route to node2's block by hand. What happens within a
# few seconds?

# %%
node1.del_route("10.1.0.0/16", via="192.168.99.102")       # ip route del 10.1.0.0/16 via 192.168.99.102
import time; time.sleep(6)
print([r.dst for r in node1.routes() if r.dst == "10.1.0.0/16"])
print(romana.agent("node1").stdout_text().splitlines()[-1])

# %% [markdown]
# ## Summary: seed 001's tables, for Romana
#
# | property (seed §5) | Romana | seen in |
# |---|---|---|
# | network model | pure layer 3 | §4: 0 bytes added |
# | isolation | by address hierarchy (tenant/segment bits), enforced by iptables | §5 |
# | name service | none | — |
# | distributed store | its own etcd for the topology; none on the data path | §2 |
# | container subnet | each host a block, each tenant/segment a sub-block | §1, §3 |

# %% [markdown]
# ## Questions to think about
#
# 1. Pods `a` and `a2` share a host and a segment, and `a`'s table puts the whole
#    10.0.0.0/16 on its link; yet the reply from `a2` came back with TTL 63. Who answered
#    `a`'s ARP for 10.0.17.2, and why does Romana want the packet to take that path?
# 2. Follow `c`'s ping to `b` (both on node2) through node2's chains. Which rule drops
#    it? What would have to be added, and where, so that tenant 2's segment 1 may
#    reach `b`?
# 3. The segment rules match `10.0.17.0/255.0.255.0`, a mask with a hole in it. How many
#    rules per segment would a host need with an ordinary prefix mask and 256 hosts, and
#    why could a routing table never use a mask like this one?
# 4. The agent put back the route you deleted within seconds. Flannel (notebook 30) and
#    Calico (notebook 31) also rebuild a host's routes. Where does each of the three
#    find the truth it restores, and what happens to each when that source is
#    unreachable?
#
# Exercise 33 ([exercises/33-romana.ipynb](../exercises/33-romana.ipynb)) builds Romana
# with its own layout; its solution answers these questions.

# %%
lab.close()
