# %% [markdown]
# # Exercise 03 · Two hosts, one LAN
#
# **Objectives.** Build the first two-host scenario of the lab practical ("bridged
# across the LAN") and show it working, as the practical's checkpoint asks:
#
# 1. each host's network card goes into the host's bridge, so the two bridges and the
#    LAN between them become one Ethernet segment;
# 2. containers on both hosts, all in one subnet, reach each other with no routing;
# 3. a capture on the LAN shows the containers' own MAC addresses;
# 4. the host's address goes on the bridge, not on the card;
# 5. taking one card out of its bridge cuts that host's containers off.
#
# | node | interface | address | plugged into |
# |---|---|---|---|
# | `c1`, `c3` (on host1) | `eth0` | `.11`, `.12` | host1's bridge `lxdbr0` |
# | `c2` (on host2) | `eth0` | `.21` | host2's bridge `lxdbr0` |
# | `host1` | `lxdbr0` | `.1` (task 4) | |
# | `host1`, `host2` | `enp0s8` | none: a bridge port | the switch `lan` |
#
# Every address is in `subnet` (parameters cell; your instructor may give you another):
# `.11` means the 11th address of it, and so on; the setup cell prints them. The setup
# builds the internal network `lan`, the two hosts, each host's card `enp0s8` cabled to
# `lan`, and an empty bridge `lxdbr0` on each host. The rest is yours.
#
# Keep the names `c1`, `c2`, `c3`, `eth0` (in the containers), `enp0s8` and `lxdbr0`:
# the checkpoints look for them. Replace the `...` in every cell marked
# `# YOUR CODE HERE`, then run the checkpoint cell after it. Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
subnet = "10.0.0.0/24"       # one subnet for everything: host1 .1, c1 .11, c3 .12, c2 .21

# %%
import ipaddress

from labkit import Lab, to_frame
from labkit.capture import Capture, MultiCapture
from labkit.checkpoints import Checkpoint, checks

net = ipaddress.ip_network(subnet)
prefix = net.prefixlen
host1_ip, c1_ip, c3_ip, c2_ip = (str(net.network_address + n) for n in (1, 11, 12, 21))

lab = Lab("ex03-bridged")
lan = lab.add_switch("lan")                       # the internal network
host1, host2 = lab.add_host("host1"), lab.add_host("host2")
for h in (host1, host2):
    lab.link(h, lan, names=("enp0s8", None))      # the host's card, cabled to the LAN
    h.add_bridge("lxdbr0")                        # ip link add lxdbr0 type bridge; ... up
print(f"c1 {c1_ip}/{prefix}, c3 {c3_ip}/{prefix} on host1;  c2 {c2_ip}/{prefix} on host2;"
      f"  host1 itself {host1_ip}/{prefix} (task 4)")

# %% [markdown]
# ## Task 1 · The cards into the bridges (2 points)
#
# On both hosts, make `enp0s8` a port of `lxdbr0` (the practical's
# `brctl addif lxdbr0 eth0`). The cards get no address.

# %%
# BEGIN SOLUTION
for h in (host1, host2):
    h.attach("enp0s8", "lxdbr0")              # ip -n hostN link set enp0s8 master lxdbr0
print(host1.run("bridge link").stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("3.1", "Each host's card is a port of its bridge, with no address", points=2,
                hint="host.attach('enp0s8', 'lxdbr0') on both hosts") as cp:
    for h in (host1, host2):
        cp.check(checks.interface(h, "enp0s8", master="lxdbr0"))
        on_card = [a.cidr for a in h.addresses("enp0s8") if a.family == "inet"]
        cp.check(checks.expect(not on_card, f"{h.name}'s enp0s8 has no IPv4 address ({on_card or 'none'})"))

# %% [markdown]
# ## Task 2 · Containers on both hosts (3 points)
#
# Create `c1` and `c3` on host1 and `c2` on host2: each a namespace whose `eth0` is
# joined by a veth pair to its host, the host's end plugged into `lxdbr0`. Give each its
# address with the prefix of `subnet`. Then ping `c2` (other host) and `c3` (same host)
# from `c1`.

# %%
# BEGIN SOLUTION
for name, h, ip in (("c1", host1, c1_ip), ("c3", host1, c3_ip), ("c2", host2, c2_ip)):
    c = lab.add_host(name)
    lab.link(c, h, names=("eth0", f"veth-{name}"), bridges=(None, "lxdbr0"))
    c.add_address("eth0", f"{ip}/{prefix}")
c1, c2, c3 = lab["c1"], lab["c2"], lab["c3"]
print(c1.ping(c2_ip, count=1))
print(c1.ping(c3_ip, count=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("3.2", "c1 reaches c3 on its own host and c2 on the other, in one subnet", points=3,
                hint="one veth per container, host end in lxdbr0, addresses in one subnet") as cp:
    for name, ip in (("c1", c1_ip), ("c2", c2_ip), ("c3", c3_ip)):
        cp.check(checks.address(lab[name], f"{ip}/{prefix}", dev="eth0"))
    cp.check(checks.ping(lab["c1"], c3_ip))
    cp.check(checks.ping(lab["c1"], c2_ip))
    cp.check(checks.expect(all(r.gateway is None for r in lab["c1"].routes()),
                           "c1 needs no gateway: every route is a connected one"))

# %% [markdown]
# ## Task 3 · Look at the LAN (2 points)
#
# Capture on the internal network while `c1` pings `c2`, and keep the capture in
# `lan_capture` (`with Capture(lan, "eth0") as lan_capture: ...`: `lan`'s `eth0` is the
# cable from host1). Whose MAC addresses do the frames carry: the cards', or the
# containers'?

# %%
# BEGIN SOLUTION
with Capture(lan, "eth0") as lan_capture:
    print(c1.ping(c2_ip, count=2))
lan_capture.table()[["direction", "src_mac", "dst_mac", "stack", "src_ip", "dst_ip"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("3.3", "On the LAN: plain ICMP between the containers' own MACs", points=2,
                hint="capture on lan's eth0 (or a host's enp0s8) while c1 pings c2, in lan_capture") as cp:
    with lan.capture("eth0", filter="icmp") as seen:   # the checkpoint's own capture of a ping
        lab["c1"].ping(c2_ip, count=2)
    frames = seen.table()
    cp.check(checks.capture(frames, "eth/ipv4/icmp"))
    icmp = frames[frames["stack"] == "eth/ipv4/icmp"]
    pairs = set(zip(icmp["src_ip"], icmp["dst_ip"]))
    cp.check(checks.expect((c1_ip, c2_ip) in pairs and (c2_ip, c1_ip) in pairs,
                           f"the capture holds echo packets between {c1_ip} and {c2_ip}"))
    macs = {lab["c1"].interface("eth0").address, lab["c2"].interface("eth0").address}
    seen = set(icmp["src_mac"]) | set(icmp["dst_mac"])
    cp.check(checks.expect(macs <= seen, "those frames carry c1's and c2's own MAC addresses"))

# %% [markdown]
# ## Task 4 · The host's own address (1 point)
#
# host1 needs an address in the containers' LAN (`host1_ip`). Its card is a switch port
# now, so put the address where a layer 2/3 switch puts it: on the bridge. Check that
# `c2`, on the other host, reaches it.

# %%
# BEGIN SOLUTION
host1.add_address("lxdbr0", f"{host1_ip}/{prefix}")  # ip -n host1 addr add HOST1_IP/PREFIX dev lxdbr0
print(c2.ping(host1_ip, count=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("3.4", "host1's address on its bridge, reachable from host2's container", points=1,
                hint="the address goes on lxdbr0, not on enp0s8") as cp:
    cp.check(checks.address(host1, f"{host1_ip}/{prefix}", dev="lxdbr0"))
    cp.check(checks.ping(lab["c2"], host1_ip))

# %% [markdown]
# ## Task 5 · Unplug host2 (2 points)
#
# Take host2's card out of its bridge (`brctl delif lxdbr0 enp0s8`). Predict which of
# c1 → c3 and c1 → c2 still works, then check. Leave it unplugged for the checkpoint.

# %%
# BEGIN SOLUTION
host2.detach("enp0s8")                        # ip -n host2 link set enp0s8 nomaster
print("c1 -> c3:", c1.ping(c3_ip, count=1, wait=0.5).received, "reply")
print("c1 -> c2:", c1.ping(c2_ip, count=1, wait=0.5).received, "reply")
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("3.5", "Card out of the bridge: host2's container is cut off, host1's are not",
                points=2, hint="host2.detach('enp0s8'); leave host1 as it is") as cp:
    cp.check(checks.expect(host2.interface("enp0s8").master is None, "host2's enp0s8 is in no bridge"))
    cp.check(checks.interface(host1, "enp0s8", master="lxdbr0"))
    cp.check(checks.ping(lab["c1"], c3_ip))
    cp.check(checks.ping(lab["c1"], c2_ip, expect="failure"))

# %% [markdown]
# ## To think about (not graded)
#
# * The lab guide asks for promiscuous mode on the VMs' cards. Which frames would a card
#   in normal mode drop in this scenario, and why?
# * How many container MACs must the physical switch learn with 50 hosts of 30
#   containers each? What does notebook 04 change about that?

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 03
#
# 1. **What the physical switch learns.** Every container's MAC address, in its
#    forwarding table, on the port of the host the container lives on. A switch's table
#    is finite (a few thousand to a few hundred thousand entries); once it is full it
#    floods frames for unknown MACs to every port, as a hub would, and every host's card
#    must accept frames for MACs that are not its own (hence promiscuous mode).
# 2. **An address on a bridge port.** The kernel hands a frame received on a bridge
#    port to the bridge (the port's `rx_handler`), not to the port's own IP stack. The
#    bridge delivers frames for the host to the bridge device itself, so the address
#    must be on `lxdbr0`; on `enp0s8` it is never reached. `labkit.scenarios.join_bridged`
#    moves it there for this reason.
# 3. **Who forwarded what.** host1's bridge `lxdbr0` carried c1's frame to c3: both are
#    its ports. To reach c2, host1's bridge must send the frame out of `enp0s8`, through
#    `lan`, into host2's `enp0s8` and host2's bridge; with host2's card out of its bridge
#    the frame reaches host2's `enp0s8` and stops there.

# %% [markdown]
# ## Clean-up

# %%
lab.close()
