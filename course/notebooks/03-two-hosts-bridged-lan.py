# %% [markdown]
# # 03 · Two hosts, one LAN: the bridged scenario
#
# **Objectives.**
#
# 1. build the lab practical's first two-host scenario: containers on two hosts, all in
#    one IP subnet, because each host's bridge also holds the host's network card;
# 2. see on the wire that container frames cross the LAN with the containers' own MACs;
# 3. understand why the host's address belongs on the bridge, not on its network card
#    (the layer 2/3 switch analogy);
# 4. break the scenario by unplugging the card from the bridge.
#
# In the original lab the two hosts are VirtualBox VMs on an *internal network* and the
# containers are LXD containers. Here every one of them is a network namespace; the
# internal network is a switch node called `lan`.

# %% [markdown]
# ## 1 · The plan
#
# | node | where | interface | address | plugged into |
# |---|---|---|---|---|
# | `c1` | on host1 | `eth0` | 10.0.0.11/24 | host1's bridge `lxdbr0` |
# | `c3` | on host1 | `eth0` | 10.0.0.12/24 | host1's bridge `lxdbr0` |
# | `c2` | on host2 | `eth0` | 10.0.0.21/24 | host2's bridge `lxdbr0` |
# | `host1` | | `lxdbr0` | 10.0.0.1/24 (section 4) | |
# | `host1`, `host2` | | `enp0s8` | none: a port of `lxdbr0` | the switch `lan` |
#
# All containers share 10.0.0.0/24. The hosts' cards (`enp0s8`) carry no address: they are
# switch ports now. Section 3 draws the lab once it is built.

# %%
from labkit import Lab, diagrams, to_frame
from labkit.capture import Capture, MultiCapture

lab = Lab("b1-bridged")
lan = lab.add_switch("lan")                   # the internal network: a bridge of its own
hosts = {}
for name in ("host1", "host2"):
    h = lab.add_host(name)                    # ip netns add hostN
    lab.link(h, lan, names=("enp0s8", None))  # the host's network card, cabled to the LAN
    h.add_bridge("lxdbr0")                    # ip link add lxdbr0 type bridge; ip link set lxdbr0 up
    hosts[name] = h
host1, host2 = hosts["host1"], hosts["host2"]

# %% [markdown]
# ## 2 · Put the card into the bridge
#
# The lab guide's `brctl addif lxdbr0 eth0`; with iproute2: `ip link set enp0s8 master lxdbr0`.

# %%
for h in (host1, host2):
    h.attach("enp0s8", "lxdbr0")              # ip -n hostN link set enp0s8 master lxdbr0
print(host1.run("bridge link").stdout)        # brctl show lxdbr0, the modern way

# %% [markdown]
# ## 3 · Containers on both hosts

# %%
plan = [("c1", host1, "10.0.0.11"), ("c3", host1, "10.0.0.12"), ("c2", host2, "10.0.0.21")]
for name, h, ip in plan:
    c = lab.add_host(name)
    lab.link(c, h, names=("eth0", f"veth-{name}"), bridges=(None, "lxdbr0"))
    # ip link add eth0 netns cN type veth peer name veth-cN netns hostN; ... master lxdbr0
    c.add_address("eth0", f"{ip}/24")         # ip -n cN addr add IP/24 dev eth0
c1, c2, c3 = lab["c1"], lab["c2"], lab["c3"]

# %% tags=["nbval-check-output"]
{h.name: h.bridge_ports("lxdbr0") for h in (host1, host2)}

# %% [markdown]
# The lab as built, drawn from the lab itself (`lab.describe()`):

# %%
diagrams.topology(lab)

# %% [markdown]
# **Predict.** `c1` (on host1) pings `c2` (on host2). Listening on the LAN side of the
# switch, whose MAC addresses will you see in the frames: the hosts' cards, or the
# containers' own?

# %%
with MultiCapture([(lan, "eth0"), (host2, "enp0s8")]) as cap:   # the LAN cable from host1, and host2's card
    print(c1.ping("10.0.0.21", count=2))      # ip netns exec c1 ping -c 2 10.0.0.21
frames = cap.table()
frames[["node", "interface", "direction", "src_mac", "dst_mac", "stack", "src_ip", "dst_ip"]]

# %%
macs = {c.name: c.interface("eth0").address for c in (c1, c2)}
cards = {h.name: h.interface("enp0s8").address for h in (host1, host2)}
print("containers:", macs)
print("host cards:", cards)
seen = set(frames["src_mac"]) | set(frames["dst_mac"])
print("container MACs on the LAN:", sorted(m for m in macs.values() if m in seen))
print("card MACs on the LAN:     ", sorted(m for m in cards.values() if m in seen))

# %% [markdown]
# The frames on the LAN carry the **containers'** MAC addresses; the hosts' cards are
# transparent switch ports. On real hardware this traffic would cross your physical
# switch, which would learn every container's MAC.

# %% [markdown]
# As a ladder (a frame seen at both capture points is one arrow). Rows whose stack ends
# in `igmp`, if your capture has any, are IGMP (IP protocol 2): an interface that has
# just come up tells multicast routers which groups it listens to (IGMPv3 reports go to
# 224.0.0.22). They have nothing to do with the ping; a real switch sees them too.

# %%
diagrams.ladder(frames, lab=lab)

# %% [markdown]
# ## 4 · Where does the host's own address go?
#
# The cards are bridge ports, so an address on `enp0s8` would be ignored for traffic
# arriving through the bridge. As on a layer 2/3 switch, where the address goes on the
# VLAN interface and not on a physical port, the host's address goes on the bridge.

# %%
host1.add_address("lxdbr0", "10.0.0.1/24")    # ip -n host1 addr add 10.0.0.1/24 dev lxdbr0
print(c2.ping("10.0.0.1", count=1))           # a container on host2 reaches host1 itself

# %% [markdown]
# ## 5 · Break it
#
# **Predict.** Take host2's card out of its bridge (`brctl delif lxdbr0 enp0s8`). Which
# pings still work: c1→c3 (same host), c1→c2 (other host)?

# %% tags=["nbval-check-output"]
host2.detach("enp0s8")                        # ip -n host2 link set enp0s8 nomaster
print("c1 -> c3 (same host): ", c1.ping("10.0.0.12", count=1, wait=0.5).received, "reply")
print("c1 -> c2 (other host):", c1.ping("10.0.0.21", count=1, wait=0.5).received, "reply")
host2.attach("enp0s8", "lxdbr0")
print("repaired, c1 -> c2:   ", c1.ping("10.0.0.21", count=2).received, "replies")

# %% [markdown]
# ## 6 · Summary
#
# * With the host's card inside the bridge, the bridge spans both hosts: one LAN, one
#   subnet, containers reachable across hosts with **no routing** at all.
# * The physical network sees (and must accept) every container's MAC: this is why the
#   lab guide asks for promiscuous mode on the VMs' cards, and why large deployments
#   prefer routing or tunnels (notebooks 04 to 06).
# * The host's address lives on the bridge, like a switch's VLAN interface.

# %% [markdown]
# ## Questions to think about
#
# 1. The LAN carried the containers' own MAC addresses. What must a physical switch
#    between two real hosts learn, and what happens when it can hold no more entries?
# 2. Why does an address left on `enp0s8`, once the card is a bridge port, stop
#    answering? Where does a frame arriving on a bridge port go?
# 3. With host2's card out of its bridge, c1 still reached c3. Which device forwarded
#    that frame, and which one would have had to forward c1's frame to c2?
#
# Exercise 03 ([exercises/03-two-hosts-bridged-lan.ipynb](../exercises/03-two-hosts-bridged-lan.ipynb))
# builds this scenario with its own addresses; its solution answers these questions.

# %%
lab.close()
