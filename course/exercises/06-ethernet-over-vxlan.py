# %% [markdown]
# # Exercise 06 · Ethernet over VXLAN
#
# **Objectives.** Join two hosts' bridges with VXLAN in multicast-group mode, as the lab
# practical does, and show the instructor what its checkpoint asks for: the scenario
# working, and a trace with VXLAN-encapsulated packets, started before the first ping so
# that it holds the ARP request sent to the group.
#
# 1. `ip link add vxlan0 type vxlan id VNI group GROUP dev enp0s8 dstport 4789` on each
#    host, the device plugged into the host's bridge;
# 2. the trace: the first ARP request goes to the multicast group, the rest is unicast;
# 3. the VXLAN forwarding table: where host1 now sends `c2`'s frames;
# 4. a VNI mismatch isolates the two sides.
#
# ```
#   c1 (.11) ─ lxdbr0 ─ vxlan0 ╌╌ UDP 4789, VNI vni, group GROUP ╌╌ vxlan0 ─ lxdbr0 ─ c2 (.21)
#          host1 (enp0s8, 1st of underlay) ─── lan ─── host2 (enp0s8, 2nd of underlay)
# ```
#
# The setup cell builds the starting point of notebook 06 with your parameters
# (`labkit.scenarios.two_hosts`): the internal network `lan`, `host1` and `host2` with
# their underlay addresses on `enp0s8`, a bridge `lxdbr0` on each, `c1` (11th address of
# `subnet`) on host1's bridge and `c2` (21st) on host2's. Nothing joins the bridges yet.
# Your VNI and multicast group are parameters too (your instructor may give you others).
#
# Create the VXLAN devices with `labkit.tunnels.vxlan_group` (imported below), one call
# per host; it returns the end (a `Tunnel`: `.delete()`, `.vni`, `.group`). Keep the device
# name `vxlan0`. **Do not ping between the containers before task 2**: the first ARP
# request is what task 2 must catch. Replace the `...` in every cell marked
# `# YOUR CODE HERE`, then run the checkpoint cell after it. Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
underlay = "172.16.1.0/24"    # host1 and host2 take its first two addresses
subnet = "10.0.0.0/24"        # the containers' LAN: c1 11th address, c2 21st
vni = 42                      # the VXLAN network identifier (24 bits)
group = "239.1.1.1"           # the multicast group (in 239.0.0.0/8)

# %%
from labkit import Lab, to_frame
from labkit.capture import Capture
from labkit.checkpoints import Checkpoint, checks
from labkit.scenarios import two_hosts
from labkit.tunnels import vxlan_group

lab = Lab("ex06-vxlan")
s = two_hosts(lab, underlay=underlay, subnet=subnet)
host1, host2, c1, c2 = s.host1, s.host2, s.c1, s.c2
host1_ip, host2_ip, c1_ip, c2_ip = (s.address(n) for n in (host1, host2, c1, c2))
print(f"host1 {host1_ip}, host2 {host2_ip} on enp0s8;  c1 {c1_ip}, c2 {c2_ip} on eth0;"
      f"  VNI {vni}, group {group}")

# %% [markdown]
# ## Task 1 · The VXLAN devices (2 points)
#
# On each host create `vxlan0` with your VNI and group, over `enp0s8`, UDP port 4789,
# plugged into `lxdbr0`. Keep the two ends in a list `ends`. Look at what the kernel
# made (`host1.interface("vxlan0").vxlan`, `ip -d link show vxlan0`). No ping yet!

# %%
# BEGIN SOLUTION
ends = [vxlan_group(h, "vxlan0", vni=vni, group=group, dev="enp0s8", bridge="lxdbr0")
        for h in (host1, host2)]
# ip -n hostN link add vxlan0 type vxlan id VNI group GROUP dev enp0s8 dstport 4789
# ip -n hostN link set vxlan0 master lxdbr0 up
host1.interface("vxlan0").vxlan
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("6.1", "vxlan0 on both hosts: your VNI and group, over enp0s8, port 4789",
                points=2, hint="vxlan_group(host, 'vxlan0', vni=vni, group=group, dev='enp0s8', "
                               "bridge='lxdbr0') on each host") as cp:
    for h in (host1, host2):
        cp.check(checks.interface(h, "vxlan0", kind="vxlan", master="lxdbr0"))
        info = h.interface("vxlan0").vxlan or {}
        have = (info.get("id"), info.get("group"), info.get("link"), info.get("port"))
        cp.check(checks.expect(have == (vni, group, "enp0s8", 4789),
                               f"{h.name}'s vxlan0 has VNI, group, dev, port {have}"))

# %% [markdown]
# ## Task 2 · The first ping, traced (4 points)
#
# Start a capture on host2's card (`enp0s8`), then ping `c2` from `c1`, and keep the
# capture in `vxlan_capture`. In `vxlan_capture.table()`, find the ARP request (columns
# `stack`, `src_ip`, `dst_ip`, `vni`, `inner_dst_mac`): to which address did host1 send it?
# And the echo request that followed?
#
# (If you pinged before, `c1` already knows `c2`'s MAC and sends no ARP request: make it
# forget with `c1.run("ip neigh flush dev eth0")`, before the capture.)

# %%
# BEGIN SOLUTION
with host2.capture("enp0s8", filter="udp port 4789") as vxlan_capture:   # tcpdump -i enp0s8 udp port 4789
    print(c1.ping(c2_ip, count=2))
vxlan_capture.table()[["src_ip", "dst_ip", "dport", "vni", "stack", "inner_dst_mac"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("6.2", "c1 reaches c2; the trace shows the ARP request sent to the group", points=4,
                hint="start the capture before the first ping: with host2.capture('enp0s8') as "
                     "vxlan_capture: c1.ping(c2_ip)") as cp:
    c1.run(["ip", "neigh", "flush", "dev", "eth0"])   # so that the first ping needs ARP again
    with host2.capture("enp0s8", filter="udp port 4789") as seen:   # the checkpoint's own capture
        c1.ping(c2_ip, count=2)
    frames = seen.table()
    cp.check(checks.capture(frames, f"eth/ipv4/udp/vxlan(vni={vni})/eth/ipv4/icmp"))
    arp = frames[frames["stack"] == f"eth/ipv4/udp/vxlan(vni={vni})/eth/arp"]
    to_group = arp[(arp["dst_ip"] == group) & (arp["inner_dst_mac"] == "ff:ff:ff:ff:ff:ff")]
    cp.check(checks.expect(len(to_group) > 0 and set(to_group["src_ip"]) == {host1_ip},
                           f"host1 sent the broadcast ARP request in VXLAN (VNI {vni}) to the group {group}"))
    cp.check(checks.expect(set(to_group["dport"]) == {4789}, "to UDP port 4789"))
    cp.check(checks.ping(c1, c2_ip))

# %% [markdown]
# ## Task 3 · What host1 learnt (2 points)
#
# Read host1's VXLAN forwarding table (`bridge -n host1 fdb show dev vxlan0`, i.e.
# `host1.fdb("vxlan0")`). Find the entry for `c2`'s MAC address, and put in `c2_vtep` (a
# string) the underlay address host1 now sends `c2`'s frames to. What is the entry
# with MAC `00:00:00:00:00:00` for?

# %%
# BEGIN SOLUTION
table = to_frame(host1.fdb("vxlan0"))
print(table[["mac", "dst", "state"]])
c2_mac = c2.interface("eth0").address
c2_vtep = table[table["mac"] == c2_mac]["dst"].dropna().iloc[0]
c2_vtep
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("6.3", "host1 learnt behind which VTEP c2's MAC sits", points=2,
                hint="the learnt entry for c2's MAC on vxlan0 has a dst") as cp:
    c1.ping(c2_ip, count=1)              # refresh what was learnt (entries age out after 300 s)
    mac = c2.interface("eth0").address
    learnt = sorted({str(e.dst) for e in host1.fdb("vxlan0") if e.mac == mac and e.dst})
    cp.check(checks.expect(learnt == [host2_ip], f"host1's vxlan0 sends {mac} to {learnt or 'nowhere yet'}"))
    cp.check(checks.expect(str(c2_vtep) == host2_ip, f"c2_vtep ({c2_vtep}) is that address"))

# %% [markdown]
# ## Task 4 · A wrong VNI (2 points)
#
# Delete host2's device and create it again with VNI `vni + 1`. Predict: do VXLAN
# packets still reach host2's card? Does `c1` reach `c2`? Check, and leave it broken for
# the checkpoint.

# %%
# BEGIN SOLUTION
ends[1].delete()                                      # ip -n host2 link del vxlan0
ends[1] = vxlan_group(host2, "vxlan0", vni=vni + 1, group=group, dev="enp0s8", bridge="lxdbr0")
with host2.capture("enp0s8", filter="udp port 4789") as cap:
    print(c1.ping(c2_ip, count=1, wait=0.5))
cap.table()[["src_ip", "dst_ip", "vni", "stack"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("6.4", "Different VNIs: the packets arrive, the LAN is cut", points=2,
                hint="ends[1].delete(), then vxlan_group(host2, ..., vni=vni + 1, ...)") as cp:
    have = (host2.interface("vxlan0").vxlan or {}).get("id")
    cp.check(checks.expect(have == vni + 1, f"host2's vxlan0 has VNI {have} (vni + 1 = {vni + 1})"))
    with host2.capture("enp0s8", filter="udp port 4789") as probe:
        cp.check(checks.ping(c1, c2_ip, expect="failure"))
    cp.check(checks.capture(probe, f"vxlan(vni={vni})/eth"))

# %% [markdown]
# ## To think about (not graded)
#
# * How many bytes does VXLAN add to each frame, and what MTU did `vxlan0` get?
# * In task 4 host2 still receives the packets. Where exactly are they dropped?
# * The practical's GRE tunnel (exercise 05) needed the other host's address; this
#   device did not. Why not, and what would replace the group where multicast is
#   not available?

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 06
#
# 1. **Group first, then unicast.** host1's `vxlan0` had no forwarding entry for the
#    broadcast MAC except the default one (all zeros, to the group), so the ARP request
#    went to 239.1.1.1. host2's `vxlan0` learnt from it that `c1`'s MAC is behind the
#    VTEP 172.16.1.1 (the outer source address) and sent the reply straight there;
#    `bridge fdb show dev vxlan0` lists that learnt entry.
# 2. **12 bytes more than GRE.** UDP (8) and the VXLAN header (8) against GRE's 4 bytes.
#    UDP is what networks handle best: it crosses NAT and firewalls that drop unknown IP
#    protocols, and its source port is a hash of the inner flow, so routers that balance
#    traffic over several links (ECMP) spread the tunnel's flows instead of pinning them
#    to one path.
# 3. **Proving host2 dropped them.** Capture on host2's `enp0s8`: the VXLAN packets with
#    VNI 42 arrive. Then `ip -d -n host2 link show vxlan0` shows VNI 43, and a capture on
#    host2's `lxdbr0` (or the bridge's FDB, which learns nothing about `c1`) shows that
#    nothing left the tunnel device: the kernel's VXLAN receive path found no VTEP for
#    VNI 42 and dropped the packets.

# %% [markdown]
# ## Clean-up

# %%
lab.close()
