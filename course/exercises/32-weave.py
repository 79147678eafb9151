# %% [markdown]
# # Exercise 32 · Weave Net
#
# **Objectives.** Build a two-machine Weave network as seed 001 does, and show the
# instructor what each checkpoint asks for:
#
# 1. the routers of `node1` and `node2` connected over TCP 6783, with no store;
# 2. a container on each machine, reaching the other through ethwe (MTU 1376);
# 3. one more name in weaveDNS, and NXDOMAIN for names nobody registered;
# 4. a container isolated by `WEAVE_CIDR`;
# 5. `weave expose`, and a host without Weave reaching a container through node1.
#
# ```
#   APP (ethwe) ─ weave ─ vxlan-6784 ╌╌ UDP 6784 ╌╌ vxlan-6784 ─ weave ─ (ethwe) CLIENT
#   node1 eth1 (.101 of underlay) ──────── underlay ──────── node2 eth1 (.102)
#                                  outside eth1 (.50)
# ```
#
# The setup cell builds the cluster with your parameters (no store machine), the host
# `outside` on the underlay (no route to Weave yet), and `weave = Weave(cluster,
# ipalloc_range=weave_range)`. Use its methods: `weave.launch(machine, *peers)`,
# `weave.wait_connected()`, `weave.run(machine, name, cidr=None)`, `weave.address(c)`,
# `weave.dns_add(machine, name, ip)`, `weave.lookup(container, name)`,
# `weave.expose(machine)`. Replace the `...` in every cell marked `# YOUR CODE HERE`,
# then run the checkpoint cell after it. Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
underlay = "192.168.99.0/24"   # node1 .101, node2 .102, outside .50
weave_range = "10.32.0.0/12"   # Weave's --ipalloc-range
app = "web"                    # the container on node1
client = "shop"                # the container on node2
alias = "api"                  # the extra name of the app in weaveDNS
iso_subnet = "10.32.2.0/24"    # the isolated container's WEAVE_CIDR subnet

# %%
import ipaddress
import sys

from labkit import Lab
from labkit.checkpoints import Checkpoint, checks
from labkit.cluster import Cluster
from labkit.weave import Weave

lab = Lab("ex32-weave")
cluster = Cluster(lab, underlay=underlay, store=None)
node1, node2 = cluster["node1"], cluster["node2"]
outside = lab.add_host("outside")
lab.link(outside, cluster.switch, names=("eth1", None))
net = ipaddress.ip_network(underlay)
outside_ip = str(net.network_address + 50)
outside.add_address("eth1", f"{outside_ip}/{net.prefixlen}")
weave = Weave(cluster, ipalloc_range=weave_range)
# what Weave's IPAM will hand out first on node1 (it owns the lower half of the range)
first_ip = str(ipaddress.ip_network(weave_range).network_address + 1)
# ... and on node2, which is given the upper half of the range when it joins (and, as
# real Weave, hands out its block's first address too: only the range's ends are reserved)
client_ip = str(list(ipaddress.ip_network(weave_range).subnets(1))[1].network_address)
iso_ip = str(ipaddress.ip_network(iso_subnet).network_address + 1)
WEAVE = [sys.executable, "-m", "labkit.weave"]        # the weave command inside a machine
print(f"node1 {node1.ip}, node2 {node2.ip}, outside {outside_ip}; range {weave_range}")

# %% [markdown]
# ## Task 1 · Launch (2 points)
#
# `weave launch` on node1, then on node2 pointed at node1's underlay address (as
# the seed's `weave launch 192.168.99.100`, where the first host is .100). Wait until they are connected. Look at
# `weave status` on node2: `weave.router("node2").weave("status").stdout`.

# %%
# BEGIN SOLUTION
weave.launch("node1")                              # node1# weave launch
weave.launch("node2", node1.ip)                    # node2# weave launch 192.168.99.101
weave.wait_connected()
print(weave.router("node2").weave("status").stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("32.1", "node1 and node2 peer over TCP 6783; each floods to the other on UDP 6784",
                points=2, hint="weave.launch('node1'), then weave.launch('node2', node1.ip)") as cp:
    cp.check(checks.command(node2, [*WEAVE, "status", "peers"], stdout_contains="established"))
    cp.check(checks.interface(node1, "vxlan-6784", kind="vxlan", master="weave"))
    cp.check(checks.command(node1, ["bridge", "fdb", "show", "dev", "vxlan-6784"],
                            stdout_contains=f"00:00:00:00:00:00 dst {node2.ip}"))

# %% [markdown]
# ## Task 2 · Two containers (3 points)
#
# Run the container named `app` on node1 and the one named `client` on node2 (the
# values of the parameters, e.g. `weave.run("node1", app)`). Which address did each
# get, and why does the one on node2 start elsewhere in the range?

# %%
# BEGIN SOLUTION
web = weave.run("node1", app)
shop = weave.run("node2", client)
print(weave.address(web), weave.address(shop))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("32.2", "app on node1 and client on node2, each with ethwe (MTU 1376), reach each other",
                points=3, hint="weave.run('node1', app); weave.run('node2', client)") as cp:
    cp.check(checks.interface(lab[app], "ethwe", mtu=1376))
    cp.check(checks.interface(lab[client], "ethwe", mtu=1376))
    cp.check(checks.address(lab[app], first_ip, dev="ethwe"))
    cp.check(checks.ping(lab[client], first_ip))

# %% [markdown]
# ## Task 3 · weaveDNS (2 points)
#
# Give the app a second name, `alias` (the parameter), on node1 with `weave.dns_add`.
# From the client, look it up (`weave.lookup(container, name)`, i.e. `nslookup
# NAME.weave.local 172.17.0.1`), then look up a name nobody registered.

# %%
# BEGIN SOLUTION
weave.dns_add("node1", alias, weave.address(web))
print(weave.lookup(shop, alias).stdout)
print(weave.lookup(shop, "nobody").stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("32.3", "client resolves alias.weave.local to the app; unknown names are NXDOMAIN",
                points=2, hint="weave.dns_add('node1', alias, weave.address(web))") as cp:
    cp.check(checks.command(lab[client], ["busybox", "nslookup", f"{alias}.weave.local", "172.17.0.1"],
                            stdout_contains=first_ip))
    cp.check(checks.command(lab[client], ["busybox", "nslookup", f"not-{alias}.weave.local",
                                          "172.17.0.1"], returncode=1, stdout_contains="NXDOMAIN"))

# %% [markdown]
# ## Task 4 · Isolated by subnet (1 point)
#
# Run a container named `iso` on node2 with `WEAVE_CIDR=net:<iso_subnet>` (`cidr=`).
# Predict, then check: can it ping the app? Is there any iptables rule about it?

# %%
# BEGIN SOLUTION
iso = weave.run("node2", "iso", cidr=f"net:{iso_subnet}")
print(iso.ping(weave.address(web), count=1, wait=0.5))
print([l for l in node2.run(["iptables-save"]).stdout.splitlines() if iso_subnet.rsplit(".", 1)[0] in l])
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("32.4", "iso has an address of iso_subnet on ethwe and cannot reach the app",
                points=1, hint="weave.run('node2', 'iso', cidr=f'net:{iso_subnet}')") as cp:
    cp.check(checks.address(lab["iso"], f"{iso_ip}/{ipaddress.ip_network(iso_subnet).prefixlen}",
                            dev="ethwe"))
    cp.check(checks.ping(lab["iso"], first_ip, expect="failure"))

# %% [markdown]
# ## Task 5 · Expose (2 points)
#
# `weave expose` node1, and give `outside` a route to the whole Weave range via node1
# (`outside.add_route(weave_range, via=node1.ip)`). Ping the client (on node2!) from
# outside. What TTL comes back, and why does the client not need a route to `outside`?

# %%
# BEGIN SOLUTION
print(weave.expose("node1"))                      # node1# weave expose
outside.add_route(weave_range, via=node1.ip)      # ip route add 10.32.0.0/12 via 192.168.99.101
print(outside.ping(weave.address(shop), count=2))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("32.5", "node1 exposed (WEAVE-EXPOSE accepts the range); outside reaches the client",
                points=2, hint="weave.expose('node1'); outside.add_route(weave_range, via=node1.ip)") as cp:
    cp.check(checks.command(node1, ["iptables", "-S", "WEAVE-EXPOSE"],
                            stdout_contains=f"-d {weave_range} -j ACCEPT"))
    cp.check(checks.route(outside, weave_range, via=node1.ip))
    cp.check(checks.ping(outside, client_ip))

# %% [markdown]
# ## To think about (not graded)
#
# * Which address blocks does each router own (`weave status ipam`), and what would
#   happen to addresses if node1 disappeared for good?
# * Why is `WEAVE_CIDR` isolation not a security boundary? What would a container need
#   to do to cross it?
# * Compare with Flannel: where is the state each system needs, and what happens when
#   it is unreachable?
#
# ## Clean-up

# %%
lab.close()

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 32
#
# 1. **The subnet is a /12.** `ethwe` carries 10.32.0.0/12: its network address is
#    10.32.0.0 and its broadcast 10.47.255.255, and 10.40.0.0 lies in between, an
#    address like any other. The /13 halves that node1 and node2 own are the IPAM's
#    record of who may hand out which addresses, not subnets on the wire. node2's range
#    starts at 10.40.0.0, and it hands out its addresses from the start.
# 2. **No router at all.** `ethwe` → `weave` bridge → `vxlan-6784` → underlay →
#    `vxlan-6784` → `weave` bridge → `ethwe` is switching all the way: the bridges and
#    the VXLAN devices forward frames by MAC and never touch the IP header. A traceroute
#    shows one hop, bbox1 itself. Flannel and Calico route the packet at both hosts,
#    and each router takes one off the TTL.
# 3. **It is one LAN.** bbox1's address is on-link for bbox3 (10.32.0.0/12 dev ethwe),
#    so bbox3 must learn bbox1's MAC itself. Its broadcast reached node1 through the
#    all-zeros FDB entry of `vxlan-6784`, which sends a copy of every broadcast and
#    unknown frame to each peer, and the kernel learnt from the replies behind which
#    peer each MAC sits. Flannel routes at the host and writes a permanent neighbour
#    entry for each remote `flannel.1`, so a container only ever ARPs for its own
#    gateway. With 50 hosts, every broadcast leaves the sender as 49 unicast copies.
# 4. **Ownership moves only by donation.** Each address block belongs to exactly one
#    peer; a peer allocates from its own blocks without asking anyone, and a block
#    changes hands only when its owner donates part of its range over the gossip
#    connection (node1 gave node2 10.40.0.0/13). No address can be owned twice, so a
#    partition changes nothing: each side keeps allocating from what it owns. (Related to,
#    but not the same as, the "partially connected networks: yes" of seed 001's table,
#    which is about routers relaying traffic between peers that cannot reach each other
#    directly.) The price: the blocks
#    of a peer that is gone for good stay reserved until someone reclaims them
#    (`weave rmpeer`).
