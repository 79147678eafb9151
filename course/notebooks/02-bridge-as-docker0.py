# %% [markdown]
# # 02 · The Linux bridge as `docker0`
#
# **Objectives.** Build by hand what Docker builds when it starts a container on its
# default network, and see each piece work:
#
# 1. a Linux bridge with a private subnet, used by containers as their default gateway;
# 2. one veth pair per container, with one end plugged into the bridge;
# 3. MAC learning: the bridge's forwarding database (`bridge fdb`);
# 4. NAT (masquerade) so containers reach a host outside, and port publishing (DNAT);
# 5. the classic pitfall: `br_netfilter` plus a `FORWARD DROP` policy silently drops bridged frames.
#
# Notebook 01 joined two namespaces with one cable. A bridge is a virtual *switch*:
# many cables, one LAN.

# %% [markdown]
# ## 1 · The plan
#
# The same four steps a Docker host takes for its default `bridge` network:
# (1) give the host a bridge, (2) give each container a namespace, (3) plug each
# container's interface into the bridge, (4) use NAT rules to map between containers and
# the host's public interface.
#
# ```
#                         host  (ip_forward = 1)
#   c1 ─ eth0 ── veth1 ─┐ ┌─────────────────────┐
#   172.17.0.2          ├─┤ docker0 172.17.0.1  │ eth0 10.9.0.2 ──── outside 10.9.0.1
#   c2 ─ eth0 ── veth2 ─┘ │        /16          │      /24
#   172.17.0.3            └─────────────────────┘
# ```
#
# `outside` stands for any machine on the host's LAN. The 10.9.0.0 network is the one
# the university report this course draws on ran its Kubernetes pilot on (three machines
# on the department's subnet). `outside` knows nothing about 172.17.0.0/16.

# %%
from labkit import Lab, diagrams, to_frame
from labkit.capture import Capture, MultiCapture

lab = Lab("a2-docker0")
host = lab.add_router("host")                 # ip netns add host; sysctl -w net.ipv4.ip_forward=1
outside = lab.add_host("outside")             # ip netns add outside
lab.link(host, outside)                       # the host's uplink: eth0 <-> outside's eth0
host.add_address("eth0", "10.9.0.2/24")       # ip -n host addr add 10.9.0.2/24 dev eth0
outside.add_address("eth0", "10.9.0.1/24")

# %% [markdown]
# ## 2 · Step 1: the bridge

# %%
host.add_bridge("docker0", address="172.17.0.1/16")
# ip -n host link add docker0 type bridge
# ip -n host addr add 172.17.0.1/16 dev docker0; ip -n host link set docker0 up
print(host.run("ip -br addr show docker0").stdout)

# %% [markdown]
# ## 3 · Steps 2 and 3: a namespace per container, plugged into the bridge
#
# Docker derives each container's MAC address from its IP address: `02:42` followed by
# the four bytes of the address (`172.17.0.2` → `02:42:ac:11:00:02`). We do the same.

# %%
containers = {}
for n, ip in ((1, "172.17.0.2"), (2, "172.17.0.3")):
    c = lab.add_host(f"c{n}")                                        # ip netns add cN
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    lab.link(c, host, names=("eth0", f"veth{n}"), macs=(mac, None),
             bridges=(None, "docker0"))
    # ip link add eth0 netns cN address MAC type veth peer name vethN netns host
    # ip -n host link set vethN master docker0 up
    c.add_address("eth0", f"{ip}/16")                                # ip -n cN addr add IP/16 dev eth0
    c.add_route("default", via="172.17.0.1")                         # ip -n cN route add default via 172.17.0.1
    containers[f"c{n}"] = c
c1, c2 = containers["c1"], containers["c2"]

# %% tags=["nbval-check-output"]
host.bridge_ports("docker0")                  # bridge -n host link / ip -n host link show master docker0

# %% [markdown]
# The lab as it stands, drawn from the lab itself (`lab.describe()`): every namespace,
# cable, bridge and address.

# %%
diagrams.topology(lab)

# %% [markdown]
# **Predict.** `c1` pings `c2`. We listen on `c1`'s cable end (`veth1`), on `c2`'s
# (`veth2`) and on the bridge device itself (`docker0`, which is also the host's own
# interface on this LAN). On which of the three will you see the ARP request? And the
# ICMP echo request?

# %%
with MultiCapture([(host, "veth1"), (host, "veth2"), (host, "docker0")]) as cap:
    print(c1.ping("172.17.0.3", count=1))
frames = cap.table()
frames[["interface", "direction", "src_mac", "dst_mac", "stack", "arp_op", "icmp_type"]]

# %%
diagrams.ladder(frames, lab=lab)      # one arrow per frame; a frame seen on several ports is drawn once

# %% [markdown]
# The ARP request is a broadcast, so the bridge *floods* it out of every port and up
# to `docker0` itself. The echo request and reply are unicast: once the bridge has learnt
# where each MAC lives, they only cross `veth1` and `veth2`; the host's own `docker0`
# interface never sees them. That table of "MAC → port" is the forwarding database:

# %%
fdb = to_frame(host.fdb("docker0"))           # bridge -n host fdb show br docker0
fdb[fdb["mac"].str.startswith("02:42")][["mac", "ifname", "master", "state"]]

# %% [markdown]
# ## 4 · Step 4: NAT to the outside
#
# **Predict.** `c1`'s default route points at the host, and the host forwards. Will
# `c1` reach `outside` (10.9.0.1)? Think about the *reply*: where does `outside` send it?

# %%
with Capture(outside, "eth0") as seen:
    print(c1.ping("10.9.0.1", count=2, wait=0.5))
seen.table()[["direction", "stack", "src_ip", "dst_ip", "icmp_type"]]

# %% [markdown]
# The requests arrive at `outside` from `172.17.0.2`, a private address `outside` has no
# route to, so no reply ever leaves. Docker solves this with one masquerade rule: packets
# from the container subnet that leave by any interface other than `docker0` get the
# host's own address as their source.

# %%
host.iptables("-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0",
              "-j", "MASQUERADE")
# ip netns exec host iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
with Capture(outside, "eth0") as seen:
    print(c1.ping("10.9.0.1", count=2))
seen.table()[["direction", "stack", "src_ip", "dst_ip", "icmp_type"]]

# %% [markdown]
# Now `outside` sees the host (10.9.0.2) asking, answers it, and the host's connection
# tracking turns the reply back into one for `172.17.0.2`.
#
# ## 5 · Publishing a port
#
# `docker run -p 8080:80` makes a container's port 80 reachable on the host's port 8080.
# Underneath it is a DNAT rule. Start a small web server in `c1`:

# %%
import sys

web = c1.spawn([sys.executable, "-m", "http.server", "80"])   # ip netns exec c1 python3 -m http.server 80
host.iptables("-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp", "--dport", "8080",
              "-j", "DNAT", "--to-destination", "172.17.0.2:80")
# ip netns exec host iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
print(host.run(["iptables", "-t", "nat", "-S"]).stdout)

# %% [markdown]
# **Predict.** `outside` asks for `http://10.9.0.2:8080/`. Which address will the web
# server's log show for the client: 10.9.0.1 or 10.9.0.2?

# %%
FETCH = "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).status)"
import time

for _ in range(20):                               # give the server a moment to start
    got = outside.run([sys.executable, "-c", FETCH, "http://10.9.0.2:8080/"])
    if got.ok:
        break
    time.sleep(0.2)
print("HTTP status:", got.stdout.strip())
web.stop()
print(web.stderr_text().strip().splitlines()[-1])

# %% [markdown]
# The server saw `10.9.0.1`: DNAT rewrote only the destination. (The masquerade rule
# does not apply: the packet leaves by `docker0`.)
#
# ## 6 · The pitfall: `br_netfilter` and `FORWARD DROP`
#
# Docker sets the host's `FORWARD` policy to `DROP` and then allows, rule by rule, the
# traffic it wants. On such a host the kernel's `br_netfilter` is usually on
# (`net.bridge.bridge-nf-call-iptables = 1`): frames *bridged* between two ports are then
# also run through iptables' `FORWARD` chain. Labs start with it off, as on a machine
# without Docker.

# %% tags=["nbval-check-output"]
host.iptables("-P", "FORWARD", "DROP")                                    # iptables -P FORWARD DROP
print("bridge-nf-call-iptables =", host.get_sysctl("net.bridge.bridge-nf-call-iptables"))
print("c1 -> c2     :", c1.ping("172.17.0.3", count=1, wait=0.5))
print("c1 -> outside:", c1.ping("10.9.0.1", count=1, wait=0.5))

# %% [markdown]
# Routed traffic (to `outside`) is dropped by the policy; bridged traffic (c1 to c2)
# still flows. **Predict** what happens when `br_netfilter` is switched on:

# %% tags=["nbval-check-output"]
host.set_sysctl("net.bridge.bridge-nf-call-iptables", 1)   # sysctl -w net.bridge.bridge-nf-call-iptables=1
print("c1 -> c2     :", c1.ping("172.17.0.3", count=1, wait=0.5))
print(host.run(["iptables", "-L", "FORWARD", "-v", "-n"]).stdout)

# %% [markdown]
# Two containers on the *same* bridge can no longer talk, and nothing says why except
# the policy's packet counter. Docker avoids this with explicit `ACCEPT` rules; add the
# three it writes for its bridge (container to container, container to the outside,
# and replies coming back):

# %% tags=["nbval-check-output"]
host.iptables("-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT")
host.iptables("-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT")
host.iptables("-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
              "-j", "ACCEPT")
print("c1 -> c2     :", c1.ping("172.17.0.3", count=1))
print("c1 -> outside:", c1.ping("10.9.0.1", count=1))

# %% [markdown]
# ## 7 · Break it yourself
#
# Try these and explain what you see before repairing each:
#
# * `host.set_forwarding(False)`: `c1` still reaches `c2` (bridged) but not `outside` (routed).
# * `c1.del_route("default", via="172.17.0.1")`: `c1` reaches `c2` but not `outside`.
# * `host.detach("veth2")`: `c2` is unplugged from the switch.

# %% tags=["nbval-check-output"]
host.set_forwarding(False)                                  # sysctl -w net.ipv4.ip_forward=0
print("c1 -> c2     :", c1.ping("172.17.0.3", count=1, wait=0.5))
print("c1 -> outside:", c1.ping("10.9.0.1", count=1, wait=0.5))
host.set_forwarding(True)

# %% [markdown]
# ## 8 · Summary
#
# * `docker0` is a Linux bridge holding the containers' gateway address; each container
#   is a namespace with one end of a veth pair, the other end a port of the bridge.
# * The bridge learns which MAC is behind which port (`bridge fdb`) and floods only
#   broadcasts and unknown destinations.
# * Reaching the outside needs forwarding on the host **and** a masquerade rule;
#   publishing a port is a DNAT rule in `PREROUTING`.
# * With `br_netfilter` on, bridged frames meet the `FORWARD` chain: a `DROP` policy
#   silently cuts containers on the same bridge apart unless rules accept them.
#
# Notebook 20 shows that a real Docker engine builds exactly these objects.

# %% [markdown]
# ## Questions to think about
#
# 1. In the ladder of section 3, the ARP request was seen on `veth1`, `veth2` and
#    `docker0`, the echo request only on two of them. Which rule of a learning switch
#    explains the difference?
# 2. Without the masquerade rule, `outside` received the echo requests but never
#    answered. What single route on `outside` would also have made the pings work, and
#    why does Docker prefer NAT?
# 3. With `br_netfilter` on and `FORWARD DROP`, which of the three `ACCEPT` rules lets
#    `c1` reach `c2`, and which one lets the replies from `outside` back in?
#
# Exercise 02 ([exercises/02-bridge-as-docker0.ipynb](../exercises/02-bridge-as-docker0.ipynb))
# builds the same network with its own addresses; its solution answers these questions.

# %%
lab.close()
