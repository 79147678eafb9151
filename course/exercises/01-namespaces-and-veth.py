# %% [markdown]
# # Exercise 01 · Two containers and a cable
#
# **Objectives.** Build, by yourself, what notebook 01 showed:
#
# 1. two "containers" `c1` and `c2`, each a network namespace;
# 2. a veth pair between them, `eth0` at both ends, and what `eth0@ifN` means;
# 3. addresses in one subnet, and a first ping (with its ARP);
# 4. two ways to break it: an unplugged cable, and a wrong subnet.
#
# This is the first scenario of the lab practical: a container is a process in its own
# network namespace, and a veth pair is the cable that joins it to the rest.
#
# ```
#   c1                               c2
#  ┌────────────────┐              ┌────────────────┐
#  │ eth0           │  veth pair   │           eth0 │
#  │ C1_IP/PREFIX   ├──────────────┤   C2_IP/PREFIX │
#  └────────────────┘              └────────────────┘
# ```
#
# Your addresses come from the parameters cell below (your instructor may give you
# others): `c1` takes the first address of `subnet`, `c2` the second. The setup cell
# prints them.
#
# Work with the `lab` object as notebook 01 does (`lab.add_host`, `lab.link`,
# `node.add_address`, `node.ping`, `node.set_down`, ...). Keep the names `c1`, `c2` and
# `eth0`: the checkpoints look for them. Replace the `...` in every cell marked
# `# YOUR CODE HERE`, then run the checkpoint cell after it. A checkpoint shows PASS or
# FAIL with its reason; run it as often as you like. Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
subnet = "10.0.0.0/24"          # c1 and c2 take its first two addresses
other_subnet = "10.0.1.0/24"    # task 5 moves c2 to the second address of this one

# %%
import ipaddress

from labkit import Lab, to_frame
from labkit.checkpoints import Checkpoint, checks

net, other = ipaddress.ip_network(subnet), ipaddress.ip_network(other_subnet)
c1_ip, c2_ip = (str(ip) for ip in list(net.hosts())[:2])
c2_other_ip = str(list(other.hosts())[1])
prefix = net.prefixlen
lab = Lab("ex01-veth")          # a private bubble for this exercise
print(f"c1: {c1_ip}/{prefix}   c2: {c2_ip}/{prefix}   (task 5: c2 moves to {c2_other_ip}/{other.prefixlen})")

# %% [markdown]
# ## Task 1 · Two namespaces and a cable (2 points)
#
# Create the two containers `c1` and `c2` (`ip netns add`). As in notebook 01, give `c2`
# a spare veth pair of its own first, `spare0` and `spare1` (`ip -n c2 link add spare0
# type veth peer name spare1`), so that the two ends of the cable get different index
# numbers. Then join `c1` and `c2` with a veth pair whose ends are both called `eth0`
# (`ip link add eth0 netns c1 type veth peer name eth0 netns c2`).

# %%
# BEGIN SOLUTION
c1 = lab.add_host("c1")        # ip netns add c1
c2 = lab.add_host("c2")        # ip netns add c2
c2.run("ip link add spare0 type veth peer name spare1", check=True)
lab.link(c1, c2, names=("eth0", "eth0"))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("1.1", "c1 and c2 joined by a veth pair", points=2,
                hint="lab.add_host('c1'), lab.add_host('c2'), then lab.link(c1, c2)") as cp:
    end1, end2 = lab["c1"].interface("eth0"), lab["c2"].interface("eth0")
    cp.check(checks.interface(lab["c1"], "eth0", kind="veth"))
    cp.check(checks.interface(lab["c2"], "eth0", kind="veth"))
    cp.check(checks.interface(lab["c2"], "spare0", kind="veth", up=None))
    cp.check(checks.expect(end1.link_index == end2.ifindex and end2.link_index == end1.ifindex,
                           "c1's eth0 and c2's eth0 are the two ends of one pair"))

# %% [markdown]
# ## Task 2 · Read `eth0@ifN` (1 point)
#
# Run `ip -br link` inside `c1` (`c1.run(...)`) and read the line of `eth0`: it looks
# like `eth0@ifN`. Put that `N` in `peer_index` (an `int`). Then say, for yourself, what
# it is the index of, and check it against `c2.interface("eth0")`.

# %%
# BEGIN SOLUTION
print(c1.run("ip -br link").stdout)                   # ip -n c1 -br link
peer_index = int(c1.run("ip -br link show eth0").stdout.split()[0].split("@if")[1])
peer_index, c2.interface("eth0").ifindex
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("1.2", "eth0@ifN: the peer's interface index", points=1,
                hint="N is the ifindex of the other end of the cable, in the other namespace") as cp:
    cp.check(checks.expect(int(peer_index) == lab["c1"].interface("eth0").link_index,
                           f"peer_index ({peer_index}) is what `ip link` shows after eth0@if"))
    cp.check(checks.expect(int(peer_index) == lab["c2"].interface("eth0").ifindex,
                           "peer_index is the index of c2's eth0"))

# %% [markdown]
# ## Task 3 · Addresses and the first ping (3 points)
#
# Give `c1` and `c2` their addresses (with the prefix length of `subnet`) on `eth0`,
# and ping `c2` from `c1`. The ping leaves something behind in `c1`: its neighbour (ARP)
# table now holds `c2`'s MAC address (`ip -n c1 neigh`). Look at it.

# %%
# BEGIN SOLUTION
c1.add_address("eth0", f"{c1_ip}/{prefix}")          # ip -n c1 addr add C1_IP/PREFIX dev eth0
c2.add_address("eth0", f"{c2_ip}/{prefix}")
print(c1.ping(c2_ip, count=1))                        # ip netns exec c1 ping -c 1 C2_IP
to_frame(c1.neighbours())                             # ip -n c1 neigh
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("1.3", "c1 pings c2, and knows its MAC address", points=3,
                hint="both addresses in the same subnet, on eth0; then c1.ping(c2_ip)") as cp:
    cp.check(checks.address(lab["c1"], f"{c1_ip}/{prefix}", dev="eth0"))
    cp.check(checks.address(lab["c2"], f"{c2_ip}/{prefix}", dev="eth0"))
    cp.check(checks.ping(lab["c1"], c2_ip, expect="success"))
    cp.check(checks.neighbour(lab["c1"], c2_ip, lladdr=lab["c2"].interface("eth0").address))

# %% [markdown]
# ## Task 4 · Unplug the cable (2 points)
#
# Take `c2`'s end of the cable down (`ip -n c2 link set eth0 down`). `c1`'s end stays
# administratively up, but it has lost its carrier (`NO-CARRIER` in `ip -n c1 link`, state
# `DOWN`), and the ping must fail. Leave it down for the checkpoint.

# %%
# BEGIN SOLUTION
c2.set_down("eth0")                                   # ip -n c2 link set eth0 down
print(c1.run("ip -br link show eth0").stdout)
print(c1.ping(c2_ip, count=1, wait=0.5))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("1.4", "An unplugged cable: no carrier, no ping", points=2,
                hint="set c2's eth0 down (only c2's end)") as cp:
    cp.check(checks.interface(lab["c2"], "eth0", up=False))
    cp.check(checks.interface(lab["c1"], "eth0", up=True))
    cp.check(checks.command(lab["c1"], ["ip", "-br", "link", "show", "eth0"],
                            stdout_contains="NO-CARRIER"))
    cp.check(checks.ping(lab["c1"], c2_ip, expect="failure"))

# %% [markdown]
# ## Task 5 · The wrong subnet (2 points)
#
# Plug the cable back in (`c2`'s `eth0` up), then move `c2` to `c2_other_ip` (the second
# address of `other_subnet`): remove its old address and add the new one. Same cable,
# different subnets: the ping from `c1` to `c2_other_ip` fails before any packet leaves,
# with *Network is unreachable*. Why? (Look at `c1`'s routes.)

# %%
# BEGIN SOLUTION
c2.set_up("eth0")                                     # ip -n c2 link set eth0 up
c2.del_address("eth0", f"{c2_ip}/{prefix}")           # ip -n c2 addr del C2_IP/PREFIX dev eth0
c2.add_address("eth0", f"{c2_other_ip}/{other.prefixlen}")
wrong = c1.ping(c2_other_ip, count=1, wait=0.5)
print(wrong, wrong.errors)
to_frame(c1.routes())[["dst", "dev", "scope"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("1.5", "Same cable, wrong subnet: no route, no ping", points=2,
                hint="c2's eth0 up again, with only the new address; c1 keeps its own") as cp:
    cp.check(checks.interface(lab["c2"], "eth0", up=True))
    cp.check(checks.address(lab["c2"], f"{c2_other_ip}/{other.prefixlen}", dev="eth0"))
    cp.check(checks.address(lab["c2"], f"{c2_ip}/{prefix}", present=False))
    cp.check(checks.route(lab["c1"], other_subnet, present=False))
    outcome = lab["c1"].ping(c2_other_ip, count=1, wait=0.5)
    cp.check(checks.expect(outcome.received == 0 and any("unreachable" in e for e in outcome.errors),
                           f"c1 -> {c2_other_ip} fails with 'Network is unreachable'"))

# %% [markdown]
# ## To think about (not graded)
#
# * Both ends of your cable are called `eth0`, with different indexes. On a Docker host
#   one end is `eth0` in the container and the other a `vethXXXX` in the host: which of
#   the two would show `@ifN` with the *container's* index?
# * In task 4, which end would you have to take down for `c2` to see `NO-CARRIER`?
#
# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 01
#
# 1. **Why `eth0@if4` and not a name?** An interface name is only unique inside its own
#    namespace: `c2` could have its own `eth0`, and `c1` has no way to look into `c2`'s
#    list. The kernel gives `c1` the peer's *index* (the `IFLA_LINK` attribute) and the
#    peer's namespace id; `ip` prints the index. When both ends are in one namespace,
#    `ip` can look the index up and prints the name (`spare1@spare0`).
# 2. **A second ping, one second later:** two frames, the echo request and its reply.
#    `c1` keeps `c2`'s MAC in its neighbour table (state `REACHABLE`, then `STALE`), so
#    it does not ask again; when the entry goes stale, the kernel confirms it with a
#    unicast ARP probe later, not with a broadcast before sending.
# 3. **Where each failure happens:** with 10.0.1.2 there is no route in `c1`, so the
#    kernel refuses in `c1` itself, before any frame exists (`connect: Network is
#    unreachable`, nothing sent). With the cable down, `c1` has a route and even the MAC,
#    so the request is built and sent into its own `eth0`; the peer end is down, the frame
#    goes nowhere, and `ping` only sees silence until its timeout.

# %% [markdown]
# ## Clean-up

# %%
lab.close()
