# %% [markdown]
# # Exercise 31 · Calico with your own pool
#
# **Objectives.** Run Calico on three nodes with the IP pool and block size your
# instructor gave you, and show what notebook 31 showed:
#
# 1. BIRD's BGP sessions Established in a full mesh;
# 2. containers on two nodes, each with a /32 from its node's block, reaching each other
#    through two routers (ttl 62), the blocks routed by BGP;
# 3. proxy ARP answering the container's ARP for 169.254.1.1, in a capture;
# 4. a profile that lets exactly one TCP port in, from one network;
# 5. BIRD stopped on a node, and its block gone from the others' tables.
#
# ```
#        underlay 192.168.99.0/24 (eth1)
#   host .100 (etcd)   node1 .101        node2 .102        node3 .103
#                      fe1 (frontend)    fe2 (frontend)    db1 (db)
#   pool: your `pool`, cut into /`block_size` blocks, one per node
# ```
#
# The setup cell builds the cluster (the `host` machine runs etcd) and imports what you
# need: `Calico` (`labkit.calico`). Use these names: networks `frontend` and `db`,
# containers `fe1` (node1), `fe2` (node2), `db1` (node3). Replace the `...` in every cell
# marked `# YOUR CODE HERE`, then run the checkpoint cell after it. Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
pool = "10.48.0.0/16"        # your IP pool
block_size = 26              # the prefix length of each node's block (20 to 32)
db_port = 5432               # the port the db network accepts from frontend

# %%
from labkit import Lab
from labkit.calico import Calico, interface_name
from labkit.calico.bird import SOCKET
from labkit.checkpoints import Checkpoint, checks
from labkit.cluster import Cluster

lab = Lab("ex31-calico")
cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
node1, node2, node3 = cluster.nodes
# `ss -Htn state established '( sport = :179 or dport = :179 )'`: the node's BGP sessions (TCP)
BGP_SESSIONS = ["ss", "-Htn", "state", "established", "(", "sport", "=", ":179", "or",
                "dport", "=", ":179", ")"]
print(f"pool {pool} in /{block_size} blocks; db port {db_port}")

# %% [markdown]
# ## Task 1 · Calico on the three nodes (2 points)
#
# Start Calico on the cluster's nodes with your `pool` and `block_size`, in a full mesh,
# and keep the handle in `calico`: `Calico(cluster, pool=..., block_size=...).start()`
# (the pool is Calico's default IP pool, so every workload takes its address from it). Look at `calico.birdc("node1", "show", "protocols")`:
# how many BGP sessions does each node have?

# %%
# BEGIN SOLUTION
calico = Calico(cluster, pool=pool, block_size=block_size).start()
print(calico.birdc("node1", "show", "protocols"))   # birdc -s /var/run/calico/bird.ctl show protocols
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("31.1", "BGP full mesh Established; your pool in etcd", points=2,
                hint="Calico(cluster, pool=pool, block_size=block_size).start()") as cp:
    for me in cluster.nodes:
        cp.check(checks.command(me, ["ss", "-Hltn", "sport", "=", ":179"], stdout_contains=":179"))
        for peer in cluster.nodes:
            if peer.name != me.name:   # one BGP session (TCP, port 179) to each peer, Established
                cp.check(checks.command(me, BGP_SESSIONS, stdout_contains=f"{peer.ip}:"))
                mesh = "Mesh_" + peer.ip.replace(".", "_")
                cp.check(checks.command(me, ["birdc", "-s", me.path(SOCKET), "show", "protocols", mesh],
                                        stdout_contains="Established"))
    cp.check(checks.command(cluster.store, ["etcdctl", "--endpoints", "http://127.0.0.1:2379", "get",
                                            "/calico/v1/ipam/v4/pool/" + pool.replace("/", "-")],
                            stdout_contains=f'"block_size": {block_size}'))

# %% [markdown]
# ## Task 2 · Two containers, two nodes (3 points)
#
# Create the network `frontend`, then the containers `fe1` on node1 and `fe2` on node2 on
# it (`calico.add_workload`). Read node2's `ip route`: which line is node1's block, and
# which is node2's own? Ping fe2 from fe1 and read the TTL.

# %%
# BEGIN SOLUTION
calico.add_network("frontend")
fe1 = calico.add_workload("node1", "fe1", network="frontend")
fe2 = calico.add_workload("node2", "fe2", network="frontend")
calico.wait_routes()
print(node2.run("ip route").stdout)
print(fe1.node.ping(fe2.ip, count=2))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("31.2", "fe1 and fe2 in your pool, blocks routed by BGP, ttl 62 across nodes",
                points=3, hint="calico.add_network('frontend'), then calico.add_workload('node1', "
                               "'fe1', network='frontend') and the same for fe2 on node2") as cp:
    for name in ("fe1", "fe2"):
        cp.check(checks.command(lab[name], ["ip", "-4", "-o", "addr", "show", "to", pool],
                                stdout_contains="/32"))
        cp.check(checks.route(lab[name], "default", via="169.254.1.1"))
    cp.check(checks.command(node1, ["ip", "route", "show", "root", pool, "proto", "bird", "type",
                                    "blackhole"], stdout_contains=f"/{block_size}"))
    cp.check(checks.command(node2, ["ip", "route", "show", "root", pool, "proto", "bird"],
                            stdout_contains=f"via {node1.ip} dev eth1"))
    fe2_ip = lab["fe2"].addresses("eth0")[0].local
    cp.check(checks.command(lab["fe1"], ["ping", "-c", "1", "-W", "2", fe2_ip], stdout_contains="ttl=62"))

# %% [markdown]
# ## Task 3 · Who answers for 169.254.1.1? (2 points)
#
# Make fe1 forget its gateway's MAC (`ip neigh flush dev eth0` in fe1), then capture ARP on
# fe1's `eth0` while it pings fe2, and keep the capture in `arp_capture`. Which MAC answers?
# Which sysctl on node1's `cali` interface makes node1 answer?

# %%
# BEGIN SOLUTION
fe1.node.run("ip neigh flush dev eth0")
with fe1.node.capture("eth0", filter="arp") as arp_capture:
    fe1.node.ping(fe2.ip, count=1)
print(arp_capture.table()[["arp_op", "arp_sender_ip", "arp_target_ip", "arp_sender_mac"]])
print(node1.get_sysctl(f"net.ipv4.conf.{fe1.ifname}.proxy_arp"))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("31.3", "fe1's ARP for 169.254.1.1 answered by node1's proxy ARP", points=2,
                hint="fe1 needs its default route via 169.254.1.1 and node1 proxy_arp=1 on fe1's cali "
                     "interface: calico.add_workload('node1', 'fe1', network='frontend') does both; "
                     "this checkpoint makes its own capture") as cp:
    fe2_ip = lab["fe2"].addresses("eth0")[0].local
    lab["fe1"].run(["ip", "neigh", "flush", "dev", "eth0"])   # so that the ping needs ARP again
    with lab["fe1"].capture("eth0", filter="arp") as seen:      # the checkpoint's own capture
        lab["fe1"].ping(fe2_ip, count=1)
    cp.check(checks.capture(seen, "eth/arp", min_count=2))
    cp.check(checks.neighbour(lab["fe1"], "169.254.1.1", lladdr="ee:ee:ee:ee:ee:ee"))
    cp.check(checks.sysctl(node1, f"net.ipv4.conf.{interface_name('default', 'fe1')}.proxy_arp", 1))

# %% [markdown]
# ## Task 4 · A database only the frontend reaches (2 points)
#
# Create the network `db` and the container `db1` on node3, and run a TCP server on
# `db_port` in it (for example `db1.node.spawn(["python3", "-m", "http.server", str(db_port)])`).
# Then change the `db` profile so that it accepts **tcp `db_port` from the `frontend`
# network only** (`calico.set_profile`), and wait for the agents (`calico.wait_synced()`).
# Predict, then check: can fe2 connect? Can fe2 ping db1?

# %%
# BEGIN SOLUTION
calico.add_network("db")
db1 = calico.add_workload("node3", "db1", network="db")
db1.node.spawn(["python3", "-m", "http.server", str(db_port)])
calico.set_profile("db", inbound=[{"action": "allow", "protocol": "tcp", "src_tag": "frontend",
                                   "dst_ports": [db_port]}])
calico.wait_synced()
calico.wait_routes()
print(fe2.node.run(["curl", "-sS", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://{db1.ip}:{db_port}/"]).stdout)
print(fe2.node.ping(db1.ip, count=1, wait=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("31.4", "db1 accepts tcp db_port from frontend, and nothing else", points=2,
                hint="calico.set_profile('db', inbound=[{'action': 'allow', 'protocol': 'tcp', "
                     "'src_tag': 'frontend', 'dst_ports': [db_port]}])") as cp:
    db1_ip = lab["db1"].addresses("eth0")[0].local
    cp.check(checks.tcp(lab["fe2"], db1_ip, db_port, expect="open"))
    cp.check(checks.ping(lab["fe2"], db1_ip, expect="failure", count=1))
    cp.check(checks.command(node3, ["iptables-save", "-t", "filter"],
                            stdout_contains=f"-m multiport --dports {db_port} -j MARK"))

# %% [markdown]
# ## Task 5 · BIRD stops on node2 (1 point)
#
# Stop BIRD on node2 and wait until the other nodes have dropped node2's block
# (`calico.wait_withdrawn`). What does node1's table look like now? Can fe1 reach fe2?
# Leave BIRD stopped for the checkpoint.

# %%
# BEGIN SOLUTION
calico.stop_bird("node2")
calico.wait_withdrawn("node2")
print(node1.run("ip route show proto bird").stdout)
print(fe1.node.ping(fe2.ip, count=1, wait=1))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("31.5", "node2's block withdrawn from node1 and node3", points=1,
                hint="calico.stop_bird('node2'), then calico.wait_withdrawn('node2')") as cp:
    cp.check(checks.command(node2, ["ip", "route", "show", "root", pool, "type", "blackhole"],
                            stdout_contains=f"/{block_size}"))   # node2 still owns its block
    block2 = next(r.dst for r in node2.routes("inet") if r.type == "blackhole")
    # BIRD is gone from node2: nothing listens on port 179 there, and no session is up
    cp.check(checks.command(node2, ["sh", "-c", 'out=$(ss -Htn state listening state established '
                                    '"( sport = :179 or dport = :179 )") && test -z "$out"']))
    for other in (node1, node3):
        cp.check(checks.route(other, block2, present=False))
        cp.check(checks.command(other, ["ip", "route", "show", "proto", "bird", "type", "blackhole"],
                                stdout_contains=f"/{block_size}"))

# %%
lab.close()

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 31
#
# 1. **Through node1's routing table, then its filter.** bbox1 has only a /32 and a
#    default route via 169.254.1.1, so even a neighbour's address goes to node1 (proxy
#    ARP answers with `ee:ee:ee:ee:ee:ee`). node1 routes it by the /32 route
#    `192.168.223.129 dev calic7f…` into bbox3's veth. On the way, the forward path
#    sends it through `cali-tw-calic7f…`, which runs `cali-pri-cal_net2`: bbox1's address
#    is not in the `cal_net2` ipset, no profile marks the packet, and the last rule
#    ("Drop if no profiles matched") drops it. There is no shared layer 2 to slip
#    through.
# 2. **A loop instead of a drop.** With no /32 for .140 and no blackhole, node1 would
#    follow its default route to `host` (192.168.99.100). In a real data centre the
#    routers learnt the /26 via node1 and would send it back: the packet would bounce
#    until its TTL ran out. The blackhole drops it on the spot. It is also what BIRD
#    announces: its static protocol holds the blackhole, and that route is the
#    `192.168.223.128/26 via 192.168.99.101 proto bird` the other nodes install.
# 3. **conntrack.** The first rule of every `cali-tw-…` chain accepts packets of
#    RELATED or ESTABLISHED connections. node1 created a conntrack entry when it
#    forwarded bbox3's SYN out (node3 accepted the SYN by `cal_web`'s profile); web1's
#    replies reach `cali-tw-calic7f…` on node1 as ESTABLISHED and are accepted by its
#    first rule, before any profile is asked. A profile speaks
#    about who may *open* a connection, not about its replies.
# 4. **On the reflector.** It is now every node's only BGP peer: if it stops, each node
#    withdraws the routes learnt from it, and the cluster's cross-node routes vanish as
#    in §7 (graceful restart only delays it). Real clusters therefore run two or more
#    reflectors with the same cluster id. The data traffic does not pass through it: a
#    reflector passes routes on with the next hop unchanged, so node2 still sends
#    node3's block to 192.168.99.103 directly, not to the reflector 192.168.99.101.
