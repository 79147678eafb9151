# %% [markdown]
# # Exercise 04 · Two hosts as routers
#
# **Objectives.** Build the routed scenario of the lab practical and show it working:
#
# 1. the hosts reach each other on the internal network, and both forward IP packets;
# 2. host1 keeps a bridge whose address is its container's gateway;
# 3. host2 uses no bridge: one point-to-point /30 link per container, the host's end
#    being the container's gateway;
# 4. each host's default route points at the other host; a ping across arrives with TTL
#    62, and `traceroute` names both routers;
# 5. forwarding off on one host stops traffic *through* it, not traffic *to* it.
#
# ```
#          host1 (router)                          host2 (router)
#  ┌──────────────────────────────┐       ┌───────────────────────────────────────┐
#  │ c1 10.1.1.2 ─ lxdbr0 10.1.1.1│       │ veth-c2 10.2.2.1/30 ── c2 10.2.2.2/30 │
#  │                              │       │                                       │
#  │           enp0s8 172.16.1.1 ─┼─ lan ─┼─ enp0s8 172.16.1.2                    │
#  │                              │       │                                       │
#  │                              │       │ veth-c3 10.2.2.5/30 ── c3 10.2.2.6/30 │
#  └──────────────────────────────┘       └───────────────────────────────────────┘
# ```
#
# (The addresses drawn are those of the default parameters: the underlay's first two
# addresses for the hosts; in `c1_subnet` the gateway first and `c1` second; in each /30
# the host's end first and the container second.)
#
# Your subnets are in the parameters cell (your instructor may give you others); the
# setup cell prints every address. The setup builds the internal network `lan`, the two
# hosts with their cards `enp0s8` cabled to it (no addresses yet, forwarding *off*), and
# the three containers, each already cabled to its host: `eth0` in the container,
# `veth-c1`, `veth-c2`, `veth-c3` in the host. No addresses, no bridge, no routes.
#
# Keep those names: the checkpoints look for them. Replace the `...` in every cell marked
# `# YOUR CODE HERE`, then run the checkpoint cell after it. Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
underlay = "172.16.1.0/24"   # the internal network: host1 1st address, host2 2nd
c1_subnet = "10.1.1.0/24"    # host1's bridge: gateway 1st address, c1 2nd
c2_link = "10.2.2.0/30"      # host2 <-> c2: host end 1st address, c2 2nd
c3_link = "10.2.2.4/30"      # host2 <-> c3: the same

# %%
import ipaddress

from labkit import Lab, to_frame
from labkit.capture import Capture
from labkit.checkpoints import Checkpoint, checks


def first_two(network):
    net = ipaddress.ip_network(network)
    a, b = list(net.hosts())[:2]
    return str(a), str(b), net.prefixlen


host1_ip, host2_ip, under_len = first_two(underlay)
gw1, c1_ip, c1_len = first_two(c1_subnet)
gw2, c2_ip, c2_len = first_two(c2_link)
gw3, c3_ip, c3_len = first_two(c3_link)

lab = Lab("ex04-routed")
lan = lab.add_switch("lan")
host1, host2 = lab.add_host("host1"), lab.add_host("host2")   # forwarding off: that is your job
for h in (host1, host2):
    lab.link(h, lan, names=("enp0s8", None))
for name, h in (("c1", host1), ("c2", host2), ("c3", host2)):
    lab.link(lab.add_host(name), h, names=("eth0", f"veth-{name}"))
c1, c2, c3 = lab["c1"], lab["c2"], lab["c3"]
print(f"host1 enp0s8 {host1_ip}/{under_len}, lxdbr0 {gw1}/{c1_len}, c1 {c1_ip}/{c1_len}")
print(f"host2 enp0s8 {host2_ip}/{under_len}, veth-c2 {gw2}/{c2_len} - c2 {c2_ip}, "
      f"veth-c3 {gw3}/{c3_len} - c3 {c3_ip}")

# %% [markdown]
# ## Task 1 · The hosts, as routers (2 points)
#
# Give both cards their underlay addresses, check that host1 pings host2, and switch IP
# forwarding on in both hosts (`sysctl -w net.ipv4.ip_forward=1`).

# %%
# BEGIN SOLUTION
host1.add_address("enp0s8", f"{host1_ip}/{under_len}")
host2.add_address("enp0s8", f"{host2_ip}/{under_len}")
for h in (host1, host2):
    h.set_forwarding(True)                    # sysctl -w net.ipv4.ip_forward=1
print(host1.ping(host2_ip, count=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("4.1", "The hosts reach each other and both forward", points=2,
                hint="addresses on enp0s8, then host.set_forwarding(True) on both") as cp:
    cp.check(checks.address(host1, f"{host1_ip}/{under_len}", dev="enp0s8"))
    cp.check(checks.address(host2, f"{host2_ip}/{under_len}", dev="enp0s8"))
    cp.check(checks.sysctl(host1, "net.ipv4.ip_forward", 1))
    cp.check(checks.sysctl(host2, "net.ipv4.ip_forward", 1))
    cp.check(checks.ping(host1, host2_ip))

# %% [markdown]
# ## Task 2 · host1: the bridge is the gateway (2 points)
#
# Give host1 a bridge `lxdbr0` with the gateway address of `c1_subnet`, plug `veth-c1`
# into it, and give `c1` its address and a default route via the bridge's address.

# %%
# BEGIN SOLUTION
host1.add_bridge("lxdbr0", address=f"{gw1}/{c1_len}")
host1.attach("veth-c1", "lxdbr0")             # ip -n host1 link set veth-c1 master lxdbr0
c1.add_address("eth0", f"{c1_ip}/{c1_len}")
c1.add_route("default", via=gw1)              # ip -n c1 route add default via GW1
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("4.2", "c1 behind host1's bridge, its gateway the bridge's address", points=2,
                hint="add_bridge('lxdbr0', address=...), attach('veth-c1', 'lxdbr0'), c1's default route") as cp:
    cp.check(checks.address(host1, f"{gw1}/{c1_len}", dev="lxdbr0"))
    cp.check(checks.interface(host1, "veth-c1", master="lxdbr0"))
    cp.check(checks.address(c1, f"{c1_ip}/{c1_len}", dev="eth0"))
    cp.check(checks.route(c1, "default", via=gw1))
    cp.check(checks.ping(c1, gw1))

# %% [markdown]
# ## Task 3 · host2: point-to-point /30 links, no bridge (2 points)
#
# For `c2` and `c3`: the host's end of the cable (`veth-c2`, `veth-c3`) takes the first
# address of the container's /30, the container's `eth0` the second, and the container's
# default route points at the host's end. host2 has no bridge at all.

# %%
# BEGIN SOLUTION
for name, gw, ip, length in (("c2", gw2, c2_ip, c2_len), ("c3", gw3, c3_ip, c3_len)):
    host2.add_address(f"veth-{name}", f"{gw}/{length}")   # ip -n host2 addr add GW/30 dev veth-cN
    lab[name].add_address("eth0", f"{ip}/{length}")
    lab[name].add_route("default", via=gw)
print(c2.ping(gw2, count=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("4.3", "c2 and c3 on their own point-to-point links to host2", points=2,
                hint="address the host's end of each veth, then the container's end and its default route") as cp:
    for name, gw, ip, length in (("c2", gw2, c2_ip, c2_len), ("c3", gw3, c3_ip, c3_len)):
        cp.check(checks.address(host2, f"{gw}/{length}", dev=f"veth-{name}"))
        cp.check(checks.address(lab[name], f"{ip}/{length}", dev="eth0"))
        cp.check(checks.route(lab[name], "default", via=gw))
        cp.check(checks.ping(lab[name], gw))
    bridges = [i.ifname for i in host2.interfaces() if i.kind == "bridge"]
    cp.check(checks.expect(not bridges, f"host2 has no bridge ({bridges or 'none'})"))

# %% [markdown]
# ## Task 4 · Default routes, and the hops (3 points)
#
# Point each host's default route at the other host. Then ping `c2` from `c1`: what TTL
# do the replies carry, and why? Run `traceroute` from `c1` to `c2` and keep the list of
# addresses it shows, in order, in `hops` (`[hop.address for hop in c1.traceroute(c2_ip)]`).
# Try `ping -R` too (`record_route=True`).

# %%
# BEGIN SOLUTION
host1.add_route("default", via=host2_ip)      # ip -n host1 route add default via HOST2_IP
host2.add_route("default", via=host1_ip)
print(c1.ping(c2_ip, count=2))
hops = [hop.address for hop in c1.traceroute(c2_ip)]   # traceroute -n C2_IP
print(hops)
c1.ping(c2_ip, count=1, record_route=True).route
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("4.4", "c1 reaches c2 and c3 across two routers: TTL 62, three hops", points=3,
                hint="each host's default route via the other host's underlay address; "
                     "traceroute shows each router's incoming interface") as cp:
    cp.check(checks.route(host1, "default", via=host2_ip))
    cp.check(checks.route(host2, "default", via=host1_ip))
    cp.check(checks.ping(c1, c3_ip))
    across = c1.ping(c2_ip, count=2)
    ttls = sorted({reply.ttl for reply in across.replies})
    cp.check(checks.expect(across.received > 0 and ttls == [62],
                           f"c1 -> {c2_ip}: {across.received} replies with TTL {ttls} (64 minus two routers)"))
    expected = [gw1, host2_ip, c2_ip]
    cp.check(checks.expect(list(hops) == expected, f"hops is {list(hops)} (traceroute shows {expected})"))

# %% [markdown]
# ## Task 5 · Forwarding off on host2 (1 point)
#
# Switch forwarding off on host2. Predict: does `c1` still reach host2's own underlay
# address? And `c2`? Check, and leave forwarding off for the checkpoint.

# %%
# BEGIN SOLUTION
host2.set_forwarding(False)                   # sysctl -w net.ipv4.ip_forward=0
print("c1 -> host2:", c1.ping(host2_ip, count=1, wait=0.5).received, "reply")
print("c1 -> c2:   ", c1.ping(c2_ip, count=1, wait=0.5).received, "reply")
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("4.5", "host2 no longer forwards: packets to it arrive, packets through it do not",
                points=1, hint="host2.set_forwarding(False); keep the routes") as cp:
    cp.check(checks.sysctl(host2, "net.ipv4.ip_forward", 0))
    cp.check(checks.route(host1, "default", via=host2_ip))
    cp.check(checks.ping(c1, host2_ip))
    cp.check(checks.ping(c1, c2_ip, expect="failure"))

# %% [markdown]
# ## To think about (not graded)
#
# * On the LAN between the hosts, whose MAC addresses do the frames of c1's ping carry
#   now? Compare with exercise 03 (capture on `lan`'s `eth0` to check).
# * With ten hosts instead of two, "each host's default route points at the other" no
#   longer works. What would each host need instead?

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 04
#
# 1. **The addresses `traceroute` shows.** Each router answers the expiring probe with
#    an ICMP *time exceeded* whose source is the address of the interface it *received*
#    the probe on (more exactly, the one it would use to reply to `c1`): host1 received it
#    on `lxdbr0` (10.1.1.1), host2 on `enp0s8` (172.16.1.2). host1's `enp0s8` is where
#    the probe *left* host1, which `traceroute` never sees; `ping -R` records it.
# 2. **For it, or through it.** A packet whose destination is one of host2's own
#    addresses is delivered locally (the `local` routing table), whatever `ip_forward`
#    says. A packet for another address must be forwarded, and with `ip_forward = 0` the
#    kernel drops it (and sends no ICMP error).
# 3. **A third host.** Default routes point at one single neighbour each. A third host's
#    container subnet is known to nobody: host1 sends it to host2 by default, host2 sends
#    it back to host1, until the TTL runs out. Each host then needs one route per other
#    host's subnet (`ip route add 10.3.3.0/24 via 172.16.1.3`), which is what a routing
#    protocol (BGP in Calico, notebooks 30 onwards) keeps up to date.

# %% [markdown]
# ## Clean-up

# %%
lab.close()
