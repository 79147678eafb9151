# %% [markdown]
# # 01 · A container's network: namespaces and veth pairs
#
# **Objectives.** By the end of this notebook you can
#
# 1. say what a *network namespace* is and why a container's network is one;
# 2. connect two namespaces with a *veth pair*, the virtual cable every container runtime uses;
# 3. read `ip link` output such as `eth0@if2` and find the other end of a cable;
# 4. watch the first ping between two containers packet by packet (ARP, then ICMP);
# 5. break the cable on purpose and recognise the symptoms.
#
# Everything here is built for real in the Linux kernel, inside a private *lab*: a bubble
# of namespaces that disappears, with everything in it, when the lab is closed.
# Next to each Python call you will see the `ip` command that does the same on a Linux
# machine, so you can repeat any step in a terminal.

# %% [markdown]
# ## 0 · Can this machine run labs?
#
# `labkit doctor` tries everything the course needs and says what is missing and how to
# fix it. If the last line says *Labs cannot run here*, the notebooks still show every
# result (they were run before being published), but to build labs yourself you need a
# Linux machine or VM you control: run `./course.sh start` there (see the README).

# %%
from labkit import Lab, doctor, to_frame

report = doctor.run()
print("lab mode:", report.mode, "| basic labs work:", report.ok)

# %% [markdown]
# ## 1 · The address plan
#
# Two containers, `c1` and `c2`, joined by one cable:
#
# ```
#   c1                              c2
#  ┌───────────────┐              ┌───────────────┐
#  │ eth0          │   veth pair  │          eth0 │
#  │ 10.0.0.1/24   ├──────────────┤   10.0.0.2/24 │
#  └───────────────┘              └───────────────┘
# ```
#
# A *network namespace* is a complete, separate copy of the kernel's network stack:
# its own interfaces, addresses, routing table, ARP table and firewall. A container
# runtime gives each container one; "the container's network" *is* that namespace.

# %%
lab = Lab("a1-veth")        # a private bubble for this notebook
c1 = lab.add_host("c1")     # ip netns add c1
c2 = lab.add_host("c2")     # ip netns add c2
lab

# %% [markdown]
# **Predict.** A brand-new namespace: which interfaces does it have? Write your guess
# down, then run the next cell.

# %% tags=["nbval-check-output"]
to_frame(c1.interfaces())[["ifindex", "ifname", "kind", "operstate", "up"]]   # ip -n c1 link

# %% [markdown]
# Only `lo`, the loopback interface. Nothing else from the machine is visible inside:
# that is the isolation containers rely on. (labkit brings `lo` up for you, as container
# runtimes do; by hand it would be `ip -n c1 link set lo up`, and without it even
# `ping 127.0.0.1` fails inside the container.)

# %%
print(c1.ping("127.0.0.1", count=1))                  # ip netns exec c1 ping -c 1 127.0.0.1

# %% [markdown]
# ## 2 · A cable between two namespaces
#
# A *veth pair* is two interfaces joined back to back: whatever enters one comes out of
# the other. Put one end in each namespace and you have a cable between two containers.
#
# So that the two ends get different interface numbers (each namespace counts from
# `lo` = 1), `c2` first gets a spare pair of its own, as a container already attached to
# another network would have:

# %%
c2.run("ip link add spare0 type veth peer name spare1", check=True)   # ip -n c2 link add spare0 type veth peer name spare1

# %% tags=["nbval-check-output"]
cable = lab.link(c1, c2)   # ip link add eth0 netns c1 type veth peer name eth0 netns c2
print(cable)

# %% [markdown]
# **Predict.** `ip link` in `c1` will show the new interface as `eth0@ifN`. What is `N`?
#
# Run the real command inside `c1`, then compare with `c2`'s interface index.

# %%
print(c1.run("ip -br link").stdout)                   # ip -n c1 -br link
print(c2.run("ip -br link").stdout)                   # ip -n c2 -br link

# %% tags=["nbval-check-output"]
c1_eth0, c2_eth0 = c1.interface("eth0"), c2.interface("eth0")
print(f"c1:eth0 has index {c1_eth0.ifindex} and its peer's index is {c1_eth0.link_index}")
print(f"c2:eth0 has index {c2_eth0.ifindex}")

# %% [markdown]
# `c1` shows `eth0@if4` and `c2` shows `eth0@if2`: `@ifN` names the *peer's* interface
# index, in the other namespace (`c2`'s `eth0` is its 4th interface, after `lo` and the
# spare pair). When both ends live in the same namespace, `ip` can name the peer
# instead: `spare1@spare0`. The index is how you find which host-side `veth…` belongs to
# which container on a real Docker host.

# %% [markdown]
# ## 3 · Addresses and the first ping
#
# Give each end an address in the same /24 subnet.

# %% tags=["nbval-check-output"]
c1.add_address("eth0", "10.0.0.1/24")                 # ip -n c1 addr add 10.0.0.1/24 dev eth0
c2.add_address("eth0", "10.0.0.2/24")                 # ip -n c2 addr add 10.0.0.2/24 dev eth0
to_frame(c1.routes())[["dst", "dev", "protocol", "scope", "prefsrc"]]   # ip -n c1 route

# %% [markdown]
# Adding the address also made a *connected route*: `10.0.0.0/24` is reachable directly
# through `eth0` (`protocol kernel`, `scope link`). No router is needed.
#
# **Predict.** `c1` pings `c2` once. How many packets cross the cable, and of which kinds?
# (Hint: `c1` knows `c2`'s IP address, but not its MAC address.)

# %%
from labkit.capture import Capture

with Capture(c2, "eth0") as cap:                      # ip netns exec c2 tcpdump -i eth0 -w ...
    result = c1.ping("10.0.0.2", count=1)             # ip netns exec c1 ping -c 1 10.0.0.2
print(result)
cap.table()[["time", "direction", "src_mac", "dst_mac", "stack", "src_ip", "dst_ip", "arp_op", "icmp_type"]]

# %% [markdown]
# Four frames: `c1` first broadcasts an **ARP request** ("who has 10.0.0.2?") to
# `ff:ff:ff:ff:ff:ff`, `c2` answers with its MAC, and only then do the **ICMP echo request
# and reply** travel, addressed MAC to MAC. The same capture as a ladder, one arrow per
# frame from sender to receiver, time running down:

# %%
from labkit import diagrams

diagrams.ladder(cap.table(), lab=lab)

# %% [markdown]
# The pcap file is kept; open it in Wireshark or read it with `tcpdump -r`:

# %%
print(cap.path.name)
print(cap.summary())

# %% [markdown]
# **Observe.** `c1` now remembers `c2`'s MAC in its ARP table, so a second ping needs no ARP.

# %%
to_frame(c1.neighbours())                             # ip -n c1 neigh

# %% [markdown]
# ## 4 · Break it
#
# **Take the cable down on one side.** Predict what `c1` sees when `c2`'s end goes down.

# %%
c2.set_down("eth0")                                   # ip -n c2 link set eth0 down
print(c1.run("ip -br link show eth0").stdout)         # ip -n c1 -br link show eth0
print(c1.ping("10.0.0.2", count=1, wait=0.5))

# %% [markdown]
# `c1`'s end is still *up* administratively (`UP` in the flags) but it has `NO-CARRIER`
# and its operational state is `DOWN`: the other end of the cable is unplugged. Plug it
# back in (the first reply may take a moment while the link comes back):

# %%
c2.set_up("eth0")                                     # ip -n c2 link set eth0 up
print(c1.ping("10.0.0.2", count=2))

# %% [markdown]
# **A wrong subnet.** Move `c2` to `10.0.1.2/24`. Same cable, different subnets: predict
# whether the ping works, and what error you get.

# %% tags=["nbval-check-output"]
c2.del_address("eth0", "10.0.0.2/24")                 # ip -n c2 addr del 10.0.0.2/24 dev eth0
c2.add_address("eth0", "10.0.1.2/24")                 # ip -n c2 addr add 10.0.1.2/24 dev eth0
wrong = c1.ping("10.0.1.2", count=1, wait=0.5)
print(wrong)
print(wrong.errors)

# %% [markdown]
# `c1` has no route to `10.0.1.0/24`, so the kernel refuses before sending anything:
# `Network is unreachable`. Being on the same cable is not enough; IP needs a route.
# (Notebook 02 adds the router that makes such subnets talk.)

# %% [markdown]
# ## 5 · Summary
#
# * A container's network is a **network namespace**: its own interfaces, routes, ARP table.
# * A **veth pair** is the cable; `eth0@ifN` points at the peer's index in the other namespace.
# * The first packet to a neighbour is an **ARP request**; ICMP follows once the MAC is known.
# * A link down shows as `NO-CARRIER` (state `DOWN`); a wrong subnet as *Network is unreachable*.
#
# Closing the lab removes both namespaces, the cable and every process it started.

# %% [markdown]
# ## Questions to think about
#
# 1. Inside `c1`, `eth0@if4` names an index in *another* namespace. Why can `ip` not
#    print the peer's name, as it does for `spare1@spare0`?
# 2. The first ping needed four frames. How many frames does a second ping, one second
#    later, need, and why?
# 3. After `c2` moved to 10.0.1.2/24, `c1`'s ping failed at once with *Network is
#    unreachable*, while with the cable down it waited and lost the packet. What is
#    different about where each failure happens?
#
# Exercise 01 ([exercises/01-namespaces-and-veth.ipynb](../exercises/01-namespaces-and-veth.ipynb))
# practises all of this with checkpoints; its solution answers these questions.

# %%
lab.close()                                           # ip netns del c1; ip netns del c2
lab
