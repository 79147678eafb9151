# %% [markdown]
# # 04 · Two hosts as routers: the routed scenario
#
# **Objectives.**
#
# 1. turn each host into a router for its own containers (IP forwarding on);
# 2. give each host's containers their own subnet: one host keeps its bridge (the bridge's
#    address is the containers' gateway), the other uses point-to-point /30 links and no
#    bridge at all;
# 3. follow the hops with `traceroute` and `ping -R`, and see the TTL drop at each router;
# 4. break the path by turning forwarding off, and by removing a route.
#
# Compared with notebook 03 the drawing barely changes, but now no container frame
# crosses the LAN: only routed IP packets between the two hosts' own addresses.

# %% [markdown]
# ## 1 · The plan
#
# | subnet | on | gateway (the host's end) | container |
# |---|---|---|---|
# | 172.16.1.0/24 | the LAN `lan` | | host1 `enp0s8` .1, host2 `enp0s8` .2 |
# | 10.1.1.0/24 | host1's bridge `lxdbr0` | 10.1.1.1 on `lxdbr0` | `c1` 10.1.1.2 |
# | 10.2.2.0/30 | host2 `veth-c2` ↔ `c2` | 10.2.2.1 on `veth-c2` | `c2` 10.2.2.2 |
# | 10.2.2.4/30 | host2 `veth-c3` ↔ `c3` | 10.2.2.5 on `veth-c3` | `c3` 10.2.2.6 |
#
# The lab is drawn once it is built (end of section 3). Layer 3 view: three subnets of containers (10.1.1.0/24, 10.2.2.0/30, 10.2.2.4/30), one
# subnet between the hosts (172.16.1.0/24), and each host's default route pointing at the other.

# %%
from labkit import Lab, diagrams, to_frame
from labkit.capture import Capture

lab = Lab("b2-routed")
lan = lab.add_switch("lan")
host1 = lab.add_router("host1")               # ip netns add host1; sysctl -w net.ipv4.ip_forward=1
host2 = lab.add_router("host2")
for h, ip in ((host1, "172.16.1.1/24"), (host2, "172.16.1.2/24")):
    lab.link(h, lan, names=("enp0s8", None))
    h.add_address("enp0s8", ip)               # ip -n hostN addr add 172.16.1.N/24 dev enp0s8
print(host1.ping("172.16.1.2", count=1))      # the hosts reach each other first

# %% [markdown]
# ## 2 · host1: a bridge whose address is the gateway

# %%
host1.add_bridge("lxdbr0", address="10.1.1.1/24")   # ip -n host1 addr add 10.1.1.1/24 dev lxdbr0
c1 = lab.add_host("c1")
lab.link(c1, host1, names=("eth0", "veth-c1"), bridges=(None, "lxdbr0"))
c1.add_address("eth0", "10.1.1.2/24")
c1.add_route("default", via="10.1.1.1")       # ip -n c1 route add default via 10.1.1.1

# %% [markdown]
# ## 3 · host2: point-to-point links, no bridge
#
# Each container gets its own /30: four addresses, two usable, one for each end of the
# veth. The host's end is the container's gateway.

# %%
for name, host_ip, ct_ip in (("c2", "10.2.2.1", "10.2.2.2"), ("c3", "10.2.2.5", "10.2.2.6")):
    c = lab.add_host(name)
    lab.link(c, host2, names=("eth0", f"veth-{name}"))
    host2.add_address(f"veth-{name}", f"{host_ip}/30")   # ip -n host2 addr add 10.2.2.1/30 dev veth-c2
    c.add_address("eth0", f"{ct_ip}/30")
    c.add_route("default", via=host_ip)
c2, c3 = lab["c2"], lab["c3"]

# %% [markdown]
# **Predict.** Everything is addressed and both hosts forward. Does `c1` reach `c2` yet?

# %%
print(c1.ping("10.2.2.2", count=1, wait=0.5))

# %% [markdown]
# No: `host1` does not know where 10.2.2.0/30 is. In the lab guide each host simply points
# its default route at the other host.

# %%
host1.add_route("default", via="172.16.1.2")  # ip -n host1 route add default via 172.16.1.2
host2.add_route("default", via="172.16.1.1")  # ip -n host2 route add default via 172.16.1.1

# %% tags=["nbval-check-output"]
to_frame(host2.routes())[["dst", "gateway", "dev", "protocol", "scope"]]   # ip -n host2 route

# %% [markdown]
# The whole lab, drawn from the lab itself:

# %%
diagrams.topology(lab)

# %% [markdown]
# ## 4 · Follow the hops
#
# **Predict.** How many routers lie between `c1` and `c2`? What TTL will `c1` see in the
# replies (Linux starts at 64)?

# %% tags=["nbval-check-output"]
result = c1.ping("10.2.2.2", count=3)
print(result)
[hop.address for hop in c1.traceroute("10.2.2.2")]           # traceroute -n 10.2.2.2

# %%
rr = c1.ping("10.2.2.2", count=1, record_route=True)            # ping -R -c 1 10.2.2.2
rr.route

# %% [markdown]
# Two routers: TTL 64 − 2 = 62. `traceroute` lists the *incoming* interface of each
# router; `ping -R` records the *outgoing* address of every hop there and back, so the
# return path appears too.
#
# On the LAN between the hosts the frames now carry the hosts' MACs, not the
# containers', and the IP addresses are still the containers' own: routing, not NAT.

# %%
with Capture(lan, "eth0") as cap:
    c1.ping("10.2.2.6", count=1)
cap.table()[["direction", "src_mac", "dst_mac", "stack", "src_ip", "dst_ip", "ttl"]]

# %%
print("host1's card:", host1.interface("enp0s8").address, " host2's card:", host2.interface("enp0s8").address)

# %% [markdown]
# ## 5 · Break it
#
# **Forwarding off on host2.** Predict: can `c1` still ping host2's own LAN address
# (172.16.1.2)? And `c2`?

# %% tags=["nbval-check-output"]
host2.set_forwarding(False)                                   # sysctl -w net.ipv4.ip_forward=0
print("c1 -> host2 :", c1.ping("172.16.1.2", count=1, wait=0.5).received, "reply")
print("c1 -> c2    :", c1.ping("10.2.2.2", count=1, wait=0.5).received, "reply")
host2.set_forwarding(True)

# %% [markdown]
# The host itself still answers (the packet is *for* it); packets *through* it are dropped.
#
# **A missing route.** Remove host1's default route and look at what `c1` is told:

# %%
host1.del_route("default", via="172.16.1.2")
broken = c1.ping("10.2.2.2", count=1, wait=0.5)
print(broken)
host1.add_route("default", via="172.16.1.2")

# %% [markdown]
# `host1` answers with an ICMP *Destination Net Unreachable* message: a router that has no
# route says so to the sender.

# %% [markdown]
# ## 6 · Summary
#
# * Each host routes for its own container subnets; containers on different hosts are in
#   different subnets and every hop lowers the TTL.
# * A bridge is optional: point-to-point /30 links, with the host end as gateway, work as well.
# * The LAN between hosts only carries the hosts' MACs: no container MAC leaks out, but
#   every host must know (or default-route towards) every other host's container subnets.

# %% [markdown]
# ## Questions to think about
#
# 1. `traceroute` showed host1's `lxdbr0` address and host2's `enp0s8` address. Why
#    these two, and not host1's `enp0s8`?
# 2. With forwarding off on host2, `c1` still reached 172.16.1.2. What is the difference,
#    for host2's kernel, between a packet *for* it and a packet *through* it?
# 3. Each host points its default route at the other. What goes wrong when a third host
#    with its own container subnet joins the LAN?
#
# Exercise 04 ([exercises/04-two-hosts-routed.ipynb](../exercises/04-two-hosts-routed.ipynb))
# builds this scenario with its own addresses; its solution answers these questions.

# %%
lab.close()
