# %% [markdown]
# # 05 · Ethernet over GRE: one LAN across routed hosts
#
# **Objectives.**
#
# 1. stretch one layer-2 LAN across two hosts that only have IP between them, by
#    carrying whole Ethernet frames inside GRE packets (a *gretap* tunnel);
# 2. read the encapsulation in a capture: outer IP (protocol 47), GRE with protocol type
#    `0x6558` (Transparent Ethernet Bridging), then the inner Ethernet frame;
# 3. count what the tunnel costs per packet and why the tunnel's MTU is 1462;
# 4. break the tunnel (stop it, use mismatched keys) and see why traffic stops.
#
# Notebook 03 bridged the containers straight onto the hosts' LAN; notebook 04 routed
# them. Here the containers share one subnet again, but their frames never touch the
# hosts' LAN as such: they travel *inside* IP packets between 172.16.1.1 and 172.16.1.2,
# so there could be any number of routers between the hosts.

# %% [markdown]
# ## 1 · The plan
#
# | node | interface | address | role |
# |---|---|---|---|
# | `host1` | `enp0s8` | 172.16.1.1/24 | the tunnel's local end (underlay, on the switch `lan`) |
# | `host2` | `enp0s8` | 172.16.1.2/24 | the tunnel's remote end |
# | `host1`, `host2` | `lxdbr0` | none | a bridge holding the container's cable and `eltunelgre` |
# | `c1` (on host1) | `eth0` | 10.0.0.11/24 | |
# | `c2` (on host2) | `eth0` | 10.0.0.21/24 | |
#
# The GRE tunnel `eltunelgre` joins the two bridges; section 1 draws the lab once the
# tunnel exists. (`eltunelgre`, "the GRE tunnel", is the name the original lab guide uses.)

# %% [markdown]
# The hosts, their bridges and the containers are built the way notebook 03 did by hand,
# except that the hosts' cards stay *out* of the bridges (`labkit.scenarios.two_hosts`
# does those steps; read its source to see them).

# %%
from labkit import Lab, diagrams, plots, to_frame
from labkit.scenarios import two_hosts
from labkit.tunnels import gretap

lab = Lab("b3-gre")
s = two_hosts(lab)            # lan, host1 172.16.1.1, host2 172.16.1.2, lxdbr0 on each, c1, c2
host1, host2, c1, c2 = s.host1, s.host2, s.c1, s.c2
{n.name: [a.cidr for a in n.addresses() if a.scope == "global"] for n in (host1, host2, c1, c2)}

# %% [markdown]
# **Predict.** The hosts reach each other (172.16.1.0/24); the containers are in one
# subnet on two separate bridges. Does `c1` reach `c2`?

# %% tags=["nbval-check-output"]
print("host1 -> host2:", host1.ping("172.16.1.2", count=1).received, "reply")
print("c1 -> c2      :", c1.ping("10.0.0.21", count=1, wait=0.5).received, "reply")

# %% [markdown]
# No: nothing joins the two bridges. Now the tunnel, one end per host, each end plugged
# into that host's bridge:

# %%
t1 = gretap(host1, "eltunelgre", remote="172.16.1.2", local="172.16.1.1", bridge="lxdbr0")
t2 = gretap(host2, "eltunelgre", remote="172.16.1.1", local="172.16.1.2", bridge="lxdbr0")
# ip -n host1 link add eltunelgre type gretap remote 172.16.1.2 local 172.16.1.1
# ip -n host1 link set eltunelgre master lxdbr0 up          (and the mirror image on host2)
print("implementation:", t1.implementation)
t1

# %% [markdown]
# This machine's kernel has no `gretap` module, so labkit carries the frames in a small
# userspace program instead (it reads the frames that enter `eltunelgre` and sends them
# in real GRE packets over a raw IP socket). On the wire and for the containers it is
# the same tunnel; on a kernel with GRE support `implementation` says `kernel`.
#
# The lab now, drawn from the lab itself (the dashed line is the tunnel, given as
# `tunnels=`: a userspace tunnel is a program, not a kernel device `lab.describe()` sees):

# %%
diagrams.topology(lab, tunnels=[t1, t2])

# %% [markdown]
# ## 2 · Through the tunnel
#
# **Predict.** `c1` pings `c2` once. On host2's card (`enp0s8`), what do you expect to see
# first: an ARP request in the clear, or something else?

# %%
with host2.capture("enp0s8") as cap:                 # ip netns exec host2 tcpdump -i enp0s8
    print(c1.ping("10.0.0.21", count=2))
wire = cap.table()
wire[["direction", "src_ip", "dst_ip", "proto", "gre_proto", "stack", "inner_src_mac", "inner_dst_mac", "overhead_bytes"]]

# %% [markdown]
# Every packet between the hosts is `172.16.1.1 ↔ 172.16.1.2`, IP protocol 47, GRE
# protocol type `0x6558` (25944): a whole Ethernet frame follows. The first one carries
# `c1`'s ARP broadcast (`ff:ff:ff:ff:ff:ff` inside!), then the echo request and reply.
# To the containers the two bridges are one LAN.
# (You may count one echo request more than `ping` sent: the kernel kept the packet of
# the failed ping above in its ARP queue, and sends it once the address finally resolves.)

# %%
plots.overhead(wire)

# %% [markdown]
# ## 3 · What it costs
#
# Each frame gains an outer IPv4 header (20 bytes), a GRE header (4) and, because the
# payload is a whole frame, the inner Ethernet header (14): **38 bytes**. For a 1500-byte
# underlay the largest inner packet that fits is 1500 − 38 = **1462** bytes, which is
# why the tunnel device's MTU is set to 1462. The echo request captured above, header
# by header:

# %%
request = wire[wire["inner_icmp_type"] == 8].iloc[0]
diagrams.headers(request.to_dict(), title="A captured echo request inside GRE")

# %% tags=["nbval-check-output"]
print("tunnel MTU:", host1.interface("eltunelgre").mtu, " overhead per frame:", int(wire["overhead_bytes"].max()), "bytes")

# %% [markdown]
# Counters of the tunnel end on host1 (packets and bytes each way):

# %%
t1.counters()

# %% [markdown]
# ## 4 · Break it
#
# **Stop host2's end.** Predict, then check:

# %% tags=["nbval-check-output"]
t2.stop()
print("tunnel down:", c1.ping("10.0.0.21", count=1, wait=0.5).received, "reply")
t2.start()
print("tunnel up:  ", c1.ping("10.0.0.21", count=2).received, "replies")

# %% [markdown]
# **Mismatched keys.** GRE can carry a 32-bit *key*; an end only accepts packets whose
# key matches its own. Rebuild host2's end with key 7 while host1 sends without one:

# %%
t2.delete()
t2 = gretap(host2, "eltunelgre", remote="172.16.1.1", local="172.16.1.2", bridge="lxdbr0", key=7)
with host2.capture("enp0s8") as cap:
    print(c1.ping("10.0.0.21", count=1, wait=0.5))
cap.table()[["direction", "src_ip", "dst_ip", "gre_proto", "gre_key", "stack"]]

# %% [markdown]
# The GRE packets from host1 still arrive at host2's card (the capture shows them, with
# no key), but host2's tunnel end drops them: its key is 7. Nothing comes back.

# %% [markdown]
# ## 5 · Summary
#
# * A gretap tunnel turns "IP connectivity between hosts" into "one Ethernet LAN between
#   bridges": containers on both hosts share a subnet, and ARP broadcasts cross too.
# * On the wire: outer IPv4 (proto 47) + GRE (type 0x6558) + the whole inner frame;
#   38 bytes of overhead, hence MTU 1462 inside.
# * Both ends must agree (addresses, key); a stopped end or a key mismatch silently
#   black-holes the LAN's traffic.

# %% [markdown]
# ## Questions to think about
#
# 1. The first GRE packet carried `c1`'s ARP broadcast. What would you see on the LAN
#    if a third host also had a gretap end towards host1: who receives that broadcast?
# 2. Why does a tunnel carrying whole Ethernet frames cost 14 bytes more than one
#    carrying IP packets (`ip link add ... type gre`)? What do you gain for them?
# 3. With mismatched keys host2 still *received* the GRE packets. Where exactly were they
#    dropped, and how would you prove it from host2's counters?
#
# Exercise 05 ([exercises/05-ethernet-over-gre.ipynb](../exercises/05-ethernet-over-gre.ipynb))
# builds the tunnel with its own addresses and key; its solution answers these questions.

# %%
lab.close()
