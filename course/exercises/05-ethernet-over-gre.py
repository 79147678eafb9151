# %% [markdown]
# # Exercise 05 · Ethernet over GRE
#
# **Objectives.** Join two hosts' bridges with a *gretap* tunnel, as the lab practical
# does, and show the instructor what its checkpoint asks for: the scenario working, and
# a trace with GRE-encapsulated packets.
#
# 1. one tunnel end per host, each plugged into that host's bridge;
# 2. the containers, in one subnet on two hosts, reach each other with no routing, and
#    without their frames ever touching the LAN as such;
# 3. a capture on the underlay shows IP protocol 47, GRE type `0x6558`, and a whole
#    Ethernet frame inside;
# 4. both ends must agree on the GRE key: break it, then repair it.
#
# ```
#        host1  (1st address of underlay)              host2  (2nd address of underlay)
#  ┌─────────────────────────────────────┐          ┌─────────────────────────────────────┐
#  │ c1 (.11) ─ lxdbr0 ─ TUNNEL ═════════╪═══ GRE ══╪═════════ TUNNEL ─ lxdbr0 ─ c2 (.21) │
#  │                 enp0s8 ─────────────┼── lan ───┼───────────── enp0s8                 │
#  └─────────────────────────────────────┘          └─────────────────────────────────────┘
# ```
#
# The setup cell builds the starting point of notebook 05 with your parameters
# (`labkit.scenarios.two_hosts`): the internal network `lan`, `host1` and `host2` with
# their underlay addresses on `enp0s8`, a bridge `lxdbr0` on each, `c1` (11th address of
# `subnet`) on host1's bridge and `c2` (21st) on host2's. Nothing joins the two bridges,
# and the cards stay out of them. `TUNNEL` is the tunnel device's name
# (`tunnel_name`, the lab guide's `eltunelgre`).
#
# Create the tunnel ends with `labkit.tunnels.gretap` (imported below): one call per host,
# like `ip link add NAME type gretap remote R local L` on each host; it returns the end
# (a `Tunnel`: `.delete()`, `.stop()`, `.start()`, `.implementation`). Replace the `...` in
# every cell marked `# YOUR CODE HERE`, then run the checkpoint cell after it. Run the
# cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
underlay = "172.16.1.0/24"    # host1 and host2 take its first two addresses
subnet = "10.0.0.0/24"        # the containers' LAN: c1 11th address, c2 21st
tunnel_name = "eltunelgre"    # the tunnel device on each host
gre_key = 7                   # the key of tasks 3 and 4

# %%
from labkit import Lab, to_frame
from labkit.capture import Capture
from labkit.checkpoints import Checkpoint, checks
from labkit.scenarios import two_hosts
from labkit.tunnels import gretap

lab = Lab("ex05-gre")
s = two_hosts(lab, underlay=underlay, subnet=subnet)
host1, host2, c1, c2 = s.host1, s.host2, s.c1, s.c2
host1_ip, host2_ip, c1_ip, c2_ip = (s.address(n) for n in (host1, host2, c1, c2))
print(f"host1 {host1_ip}, host2 {host2_ip} on enp0s8;  c1 {c1_ip}, c2 {c2_ip} on eth0;"
      f"  tunnel device: {tunnel_name}")

# %% [markdown]
# ## Task 1 · The tunnel (3 points)
#
# Create one gretap end on each host, named `tunnel_name`, between the two underlay
# addresses (`remote` is the *other* host, `local` this one), plugged into `lxdbr0`.
# Keep the two ends in `t1` and `t2`. Then `c1` should reach `c2`.

# %%
# BEGIN SOLUTION
t1 = gretap(host1, tunnel_name, remote=host2_ip, local=host1_ip, bridge="lxdbr0")
t2 = gretap(host2, tunnel_name, remote=host1_ip, local=host2_ip, bridge="lxdbr0")
# ip -n host1 link add eltunelgre type gretap remote HOST2_IP local HOST1_IP
# ip -n host1 link set eltunelgre master lxdbr0 up            (and the mirror image on host2)
print("implementation:", t1.implementation)
print(c1.ping(c2_ip, count=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("5.1", "c1 reaches c2 through a tunnel end in each host's bridge", points=3,
                hint="gretap(host1, tunnel_name, remote=host2_ip, local=host1_ip, bridge='lxdbr0'), "
                     "and the mirror image on host2") as cp:
    for h in (host1, host2):
        cp.check(checks.interface(h, tunnel_name, master="lxdbr0"))
        card = h.interface("enp0s8").master
        cp.check(checks.expect(card is None, f"{h.name}'s enp0s8 stays out of the bridge (master {card})"))
    cp.check(checks.ping(c1, c2_ip))

# %% [markdown]
# ## Task 2 · The trace (3 points)
#
# Capture on host2's card (`enp0s8`) while `c1` pings `c2`, and keep the capture in
# `gre_capture`. Look at the `stack`, `proto`, `gre_proto`, `inner_src_ip` and
# `inner_dst_ip` columns of `gre_capture.table()`: what is outside, what is inside?

# %%
# BEGIN SOLUTION
with host2.capture("enp0s8") as gre_capture:          # ip netns exec host2 tcpdump -i enp0s8
    print(c1.ping(c2_ip, count=2))
gre_capture.table()[["src_ip", "dst_ip", "proto", "gre_proto", "stack", "inner_src_ip", "inner_dst_ip"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("5.2", "The trace: the containers' ICMP inside GRE between the hosts", points=3,
                hint="with host2.capture('enp0s8') as gre_capture: c1.ping(c2_ip)") as cp:
    with host2.capture("enp0s8") as seen:   # the checkpoint's own capture of a ping
        c1.ping(c2_ip, count=2)
    frames = seen.table()
    cp.check(checks.capture(frames, "eth/ipv4/gre/eth/"))
    gre = frames[frames["stack"].str.startswith("eth/ipv4/gre/eth/")]
    ends = set(zip(gre["src_ip"], gre["dst_ip"]))
    cp.check(checks.expect(bool(ends) and ends <= {(host1_ip, host2_ip), (host2_ip, host1_ip)},
                           f"the GRE packets travel between {host1_ip} and {host2_ip} ({sorted(ends)})"))
    cp.check(checks.expect(bool(len(gre)) and set(gre["gre_proto"]) == {0x6558},
                           "their GRE protocol type is 0x6558 (Transparent Ethernet Bridging)"))
    echo = gre[gre["stack"] == "eth/ipv4/gre/eth/ipv4/icmp"]
    cp.check(checks.expect((c1_ip, c2_ip) in set(zip(echo["inner_src_ip"], echo["inner_dst_ip"])),
                           f"inside them: ICMP from {c1_ip} to {c2_ip}"))
    cp.check(checks.capture(frames, pattern=r"^eth/ipv4/icmp$", absent=True))

# %% [markdown]
# ## Task 3 · A key on one side only (2 points)
#
# GRE can carry a 32-bit key, and an end only accepts packets whose key matches its own.
# Delete host2's end and create it again with `key=gre_key`, host1's staying without
# one. Predict, then check: does `c1` still reach `c2`? Do GRE packets still arrive at
# host2's card? Leave it broken for the checkpoint.

# %%
# BEGIN SOLUTION
t2.delete()                                           # ip -n host2 link del eltunelgre
t2 = gretap(host2, tunnel_name, remote=host1_ip, local=host2_ip, bridge="lxdbr0", key=gre_key)
with host2.capture("enp0s8") as cap:
    print(c1.ping(c2_ip, count=1, wait=0.5))
cap.table()[["src_ip", "dst_ip", "gre_key", "stack"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("5.3", "Mismatched keys: GRE still flows, the LAN does not", points=2,
                hint="t2.delete(), then gretap(..., key=gre_key) on host2 only") as cp:
    cp.check(checks.ping(c1, c2_ip, expect="failure"))
    with host2.capture("enp0s8", filter="ip proto 47") as probe:
        c2.ping(c1_ip, count=1, wait=0.5)
    sent = probe.table()
    sent = sent[sent["src_ip"] == host2_ip]
    keys = sorted({int(k) for k in sent["gre_key"].dropna()})
    cp.check(checks.expect(len(sent) > 0 and keys == [int(gre_key)],
                           f"host2 sends GRE with key {gre_key} (seen: {keys or 'no GRE from host2'})"))
    cp.check(checks.interface(host1, tunnel_name, master="lxdbr0"))

# %% [markdown]
# ## Task 4 · Agree on the key (2 points)
#
# Repair the tunnel by giving host1's end the same key. Then `c1` reaches `c2` again, and
# every GRE packet, both ways, carries `gre_key`.

# %%
# BEGIN SOLUTION
t1.delete()
t1 = gretap(host1, tunnel_name, remote=host2_ip, local=host1_ip, bridge="lxdbr0", key=gre_key)
print(c1.ping(c2_ip, count=2))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("5.4", "Both ends use the key: the LAN works again", points=2,
                hint="delete host1's end and create it again with key=gre_key") as cp:
    with host2.capture("enp0s8", filter="ip proto 47") as probe:
        cp.check(checks.ping(c1, c2_ip))
    seen = probe.table()
    pairs = sorted({(src, int(k)) for src, k in zip(seen["src_ip"], seen["gre_key"].fillna(-1))})
    want = [(host1_ip, int(gre_key)), (host2_ip, int(gre_key))]
    cp.check(checks.expect(pairs == want, f"GRE both ways with key {gre_key} ({pairs})"))

# %% [markdown]
# ## To think about (not graded)
#
# * What does each GRE packet cost in bytes, compared with the frame it carries? What
#   MTU did the tunnel device get, and why (`host1.interface(tunnel_name).mtu`)?
# * Could there be routers between host1 and host2 here? And in exercise 03?

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 05
#
# 1. **A third gretap end.** A gretap tunnel is point to point: each end has one
#    `remote`. host1 would need a second gretap device towards the third host, in the
#    same bridge; host1's bridge then floods the broadcast into both tunnels, and each
#    remote host receives its own copy (head-end replication by the bridge).
# 2. **Why 14 bytes more.** A gretap payload is a whole Ethernet frame, so the inner
#    Ethernet header (14 bytes) rides along; plain GRE carries only the IP packet. In
#    exchange the two sides are one layer-2 LAN: ARP, broadcasts, one subnet, MACs kept,
#    anything that is not IP too; plain GRE needs a route and a subnet per side.
# 3. **Where mismatched keys drop.** In host2's tunnel end, after the packet arrived: the
#    capture on host2's `enp0s8` shows the GRE packets arriving, and the tunnel end's
#    counters (`t2.counters()`, or `ip -s link show` of a kernel device) do not count them
#    as received frames, while the bridge never sees them (no new FDB entry for `c1`).

# %% [markdown]
# ## Clean-up

# %%
lab.close()
