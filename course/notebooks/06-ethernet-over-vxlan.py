# %% [markdown]
# # 06 · Ethernet over VXLAN: a LAN over UDP, with a multicast group
#
# **Objectives.**
#
# 1. join two hosts' bridges with VXLAN, exactly as the lab practical does:
#    `ip link add vxlan0 type vxlan id <VNI> group <239.x.y.z> dev <nic> dstport 4789`;
# 2. know what each parameter means: the 24-bit **VNI**, the **multicast group** that
#    carries broadcast/unknown/multicast (BUM) traffic, the underlay **dev**, and UDP port
#    **4789** (assigned by IANA, RFC 7348);
# 3. watch the first exchange: the ARP request travels to the *group*, the rest is unicast
#    between the two hosts once each side has learnt where the other's MACs live;
# 4. see what a wrong VNI does.
#
# Same starting point as notebook 05: two hosts on an internal network, a bridge and a
# container on each, nothing joining the bridges.

# %%
from labkit import Lab, diagrams, plots, to_frame
from labkit.scenarios import two_hosts
from labkit.tunnels import vxlan_group

lab = Lab("b4-vxlan")
s = two_hosts(lab)            # lan, host1 172.16.1.1, host2 172.16.1.2, lxdbr0 on each, c1, c2
host1, host2, c1, c2 = s.host1, s.host2, s.c1, s.c2

# %% [markdown]
# ## 1 · The VXLAN devices
#
# One `vxlan0` per host, VNI 42, multicast group 239.1.1.1 over each host's `enp0s8`
# (172.16.1.1 and 172.16.1.2), UDP port 4789, plugged into the host's bridge `lxdbr0`
# beside the container (`c1` 10.0.0.11 on host1, `c2` 10.0.0.21 on host2).

# %%
VNI, GROUP = 42, "239.1.1.1"
ends = [vxlan_group(h, "vxlan0", vni=VNI, group=GROUP, dev="enp0s8", bridge="lxdbr0")
        for h in (host1, host2)]
# ip -n hostN link add vxlan0 type vxlan id 42 group 239.1.1.1 dev enp0s8 dstport 4789
# ip -n hostN link set vxlan0 mtu 1450 master lxdbr0 up
ends[0]

# %% [markdown]
# The lab now, drawn from the lab itself: the two kernel VXLAN devices with the same
# VNI are the dashed tunnel.

# %%
diagrams.topology(lab)

# %% tags=["nbval-check-output"]
info = host1.interface("vxlan0")                      # ip -d -n host1 link show vxlan0
print("VNI", info.vxlan["id"], "| group", info.vxlan["group"], "| dev", info.vxlan["link"],
      "| port", info.vxlan["port"], "| MTU", info.mtu)

# %% [markdown]
# **Predict.** `c1` pings `c2` for the first time. `c1` must first ask, by ARP
# broadcast, who has 10.0.0.21. Where does host1 send that broadcast: to host2's
# address, or somewhere else? Start the capture *before* the first ping, or you miss it.

# %%
with host2.capture("enp0s8", filter="udp port 4789") as cap:   # ip netns exec host2 tcpdump -i enp0s8 udp port 4789
    print(c1.ping("10.0.0.21", count=2))
wire = cap.table()
wire[["direction", "src_ip", "dst_ip", "dport", "vni", "stack", "inner_dst_mac", "overhead_bytes"]]

# %% [markdown]
# The ARP request leaves host1 addressed to **239.1.1.1**, the group every VTEP of VNI 42
# has joined: that is how VXLAN floods BUM traffic without knowing the other hosts in
# advance. The answer and the echo packets then go **unicast** from host to host: each
# `vxlan0` has learnt, from the outer source address, behind which VTEP each MAC sits.
# (A row whose inner stack ends in `igmp`, if yours has one, is an IGMP membership report
# from a container's interface, flooded through the group like any multicast. The hosts'
# own IGMP reports, which join 239.1.1.1 on the LAN, are not VXLAN: this capture's filter,
# `udp port 4789`, leaves them out. Capture without a filter to see them.)
#
# The same packets as a ladder, between the two VTEPs and the group:

# %%
diagrams.ladder(wire, lab=lab)

# %%
to_frame(host1.fdb("vxlan0"))[["mac", "dst", "state", "flags"]]    # bridge -n host1 fdb show dev vxlan0

# %% [markdown]
# The entry with MAC `00:00:00:00:00:00` and the group address is the default flooding
# destination; the learnt entry points `c2`'s MAC at 172.16.1.2.

# %%
plots.protocol_breakdown(wire)

# %% [markdown]
# ## 2 · The cost
#
# Outer Ethernet is not counted (every frame has one anyway). VXLAN adds outer IPv4 (20) +
# UDP (8) + VXLAN header (8) + the inner Ethernet header (14) = **50 bytes**, so the
# device's MTU is 1500 − 50 = **1450**, the same MTU Flannel's `flannel.1` uses. One
# captured echo request, header by header:

# %%
request = wire[wire["inner_icmp_type"] == 8].iloc[0]
diagrams.headers(request.to_dict(), title="A captured echo request inside VXLAN")

# %% tags=["nbval-check-output"]
print("overhead:", int(wire["overhead_bytes"].max()), "bytes | vxlan0 MTU:", host1.interface("vxlan0").mtu)

# %% [markdown]
# ## 3 · Break it: a wrong VNI
#
# **Predict.** host2's device is recreated with VNI 43. The packets still reach host2:
# what does host2 do with them?

# %%
ends[1].delete()                                      # ip -n host2 link del vxlan0
ends[1] = vxlan_group(host2, "vxlan0", vni=43, group=GROUP, dev="enp0s8", bridge="lxdbr0")
with host2.capture("enp0s8") as cap:
    print(c1.ping("10.0.0.21", count=1, wait=0.5))
cap.table()[["direction", "src_ip", "dst_ip", "vni", "stack"]]

# %% [markdown]
# host2 receives VXLAN packets for VNI 42 but only has a VTEP for VNI 43: the kernel drops
# them. The VNI is what keeps up to 16 million separate LANs apart on one network
# (802.1Q VLAN IDs have 12 bits: 4094 LANs).

# %% [markdown]
# ## 4 · Summary
#
# * VXLAN carries Ethernet frames in UDP port 4789, tagged with a 24-bit VNI.
# * In group mode, BUM traffic (the first ARP!) goes to a multicast group; known
#   destinations go unicast to the VTEP learnt from earlier packets.
# * 50 bytes of overhead: MTU 1450 on a 1500-byte underlay.
# * A VNI mismatch silently isolates the two sides.
#
# Next, notebook 07 compares the four two-host scenarios side by side.

# %% [markdown]
# ## Questions to think about
#
# 1. Why did the first ARP request go to 239.1.1.1 and the reply straight to 172.16.1.1?
#    What had host2's `vxlan0` learnt from the request?
# 2. VXLAN and GRE with Ethernet both stretch one LAN between hosts. Why is VXLAN's
#    overhead 12 bytes larger, and what does UDP buy a tunnel on a real network?
# 3. With VNI 43 on host2 the packets still arrived. How would you show, with a capture
#    and an `ip` command, that host2 dropped them rather than the network?
#
# Exercise 06 ([exercises/06-ethernet-over-vxlan.ipynb](../exercises/06-ethernet-over-vxlan.ipynb))
# builds VXLAN with its own VNI and group; its solution answers these questions.

# %%
lab.close()
