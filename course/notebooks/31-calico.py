# %% [markdown]
# # 31 · Calico: pure layer 3, with real BGP
#
# Flannel (notebook 30) gives every node a subnet and hides the containers' packets inside
# VXLAN. Calico takes the opposite road: **no bridge, no encapsulation**. Every node is a
# router, every container is one `/32` route, and the nodes tell each other where their
# containers are with **BGP**, the routing protocol of the Internet, spoken here by the real
# BIRD daemon.
#
# **Objectives.** By the end you can
#
# 1. start Calico on three nodes and read the BGP sessions BIRD opened (`birdc show protocols`);
# 2. explain the IPAM: IP pools cut into **/26 blocks** that belong to one node each;
# 3. read a Calico node's routing table: `blackhole BLOCK/26 proto bird` for its own block,
#    `BLOCK/26 via NODE dev eth1 proto bird` for the others', `IP dev caliXXXX scope link`
#    per container; and the container's: `default via 169.254.1.1`;
# 4. show, in a capture, who answers the container's ARP for 169.254.1.1 (proxy ARP) and
#    that nothing is encapsulated on the wire (side by side with Flannel's VXLAN);
# 5. isolate networks by default and open exactly tcp/80 between two of them with a profile;
# 6. break it: stop BIRD on a node and watch its block disappear from the others; remove
#    a node's default route and watch proxy ARP stop answering;
# 7. say why large clusters use a **route reflector** (N(N−1)/2 sessions become N−1).
#
# Source: the UPV thesis, sections 3.4 (Calico's components: Felix, etcd, the BGP client
# BIRD, the route reflector) and 4.5 (the experiment: `calicoctl node run`, networks
# `cal_net1`, `cal_net2`, `cal_web`, a profile for port 80, a custom pool 17.2.0.0/16).
#
# **What runs for real, what labkit plays.** Real: the kernel's routes and veths, proxy
# ARP, iptables and ipset rules, etcd, and **BIRD 1.6** with the configuration Calico's
# `confd` writes. Played faithfully, because calico/node is not packaged for this machine:
# *felix* (wires the node for each container, writes the `cali-*` chains), *confd* (renders
# BIRD's files from etcd), *calico-ipam* and *calicoctl*: a `calico agent` per node
# (`python -m labkit.calico.agent`) whose keys, routes, chains and log lines are Calico's.
#
# **Address plan.**
#
# ```
#                     underlay 192.168.99.0/24 (eth1 on every machine)
#        +------------------+------------------+------------------+
#     host .100          node1 .101         node2 .102         node3 .103
#     (etcd)           BIRD + agent       BIRD + agent       BIRD + agent
#                      cali… ── bbox1      cali… ── bbox2      cali… ── web1
#                      cali… ── bbox3
#   pool 192.168.0.0/16 → one /26 block per node; every container: eth0 = one /32
# ```

# %%
import pandas as pd

from labkit import Lab
from labkit.calico import Calico
from labkit.cluster import Cluster

lab = Lab("d3-calico")
cluster = Cluster(lab, nodes=["node1", "node2", "node3"])   # host .100 (etcd), node1-3 .101-.103
node1, node2, node3 = cluster.nodes
etcd = cluster.start_etcd()                                 # etcd --listen-client-urls http://192.168.99.100:2379 ...

# %% [markdown]
# ## 1 · `calicoctl node run`: BIRD on every node, BGP between them
#
# Starting Calico writes a few keys into etcd (the AS number 64512, "node-to-node mesh:
# on", each node's address), starts the calico agent on each node, which renders BIRD's
# configuration, and then BIRD itself (`bird -c /etc/calico/confd/config/bird.cfg`).
#
# **Predict.** In a *full mesh* every node talks BGP with every other node. How many BGP
# sessions does each of the three nodes have? And the cluster in total?

# %%
calico = Calico(cluster).start()          # calicoctl node run, on node1, node2, node3
print(etcd.etcdctl("host", "get", "--prefix", "/calico/bgp").stdout)   # ETCDCTL_API=3 etcdctl get --prefix /calico/bgp

# %% [markdown]
# confd turned those keys into `bird.cfg`. The part that matters: one `protocol bgp` per
# peer, named `Mesh_` + the peer's address. `passive on` toward the peers whose address
# is higher: they open the TCP connection (port 179), so each pair makes exactly one.

# %% tags=["nbval-check-output"]
cfg = node1.read_text("/etc/calico/confd/config/bird.cfg")     # cat /etc/calico/confd/config/bird.cfg
print(cfg[cfg.index("# ------------- Node-to-node mesh"):])

# %%
print(calico.birdc("node1", "show", "protocols"))   # birdc -s /var/run/calico/bird.ctl show protocols

# %% tags=["nbval-check-output"]
pd.DataFrame(calico.sessions()).fillna("-")          # every node's BGP sessions

# %% [markdown]
# Two sessions per node, three in total: N(N−1)/2 for N = 3. The static, kernel, device
# and direct protocols above them are BIRD's other sources and sinks of routes: `static1`
# holds the node's blackholes (below), `kernel1` writes routes into the kernel's table,
# `direct1` knows the connected networks (BGP's next hops are resolved through them).

# %% [markdown]
# ## 2 · Networks, IPAM and the first containers
#
# `docker network create --driver calico --ipam-driver calico-ipam cal_net1` creates a
# *profile* named after the network: its members may talk to each other. A container on
# it gets an address from the pool: the node first claims a free **/26 block** (64
# addresses) of the pool for itself, then takes addresses from it.

# %%
calico.add_network("cal_net1")                            # docker network create --driver calico ... cal_net1
bbox1 = calico.add_workload("node1", "bbox1", network="cal_net1")   # docker run --net cal_net1 --name bbox1 ...
bbox2 = calico.add_workload("node2", "bbox2", network="cal_net1")
calico.wait_routes()

# %% tags=["nbval-check-output"]
print(bbox1, bbox2, sep="\n")
pd.Series(calico.blocks(), name="node")      # etcdctl get --prefix /calico/ipam/v2/host/

# %% [markdown]
# The keys are Calico's own layout: the block, with its allocations, under
# `/calico/ipam/v2/assignment/ipv4/block/`, and the node's *affinity* to it under
# `/calico/ipam/v2/host/<node>/ipv4/block/`.

# %%
print(etcd.etcdctl("host", "get", "--prefix", "--keys-only", "/calico/ipam").stdout)

# %% [markdown]
# **Inside the container.** One address, a `/32`: there is no subnet, no neighbour to
# reach directly. The default route goes to 169.254.1.1, a link-local address that no
# machine has.

# %% tags=["nbval-check-output"]
print(bbox1.node.run("ip -4 addr show dev eth0").stdout)
print(bbox1.node.run("ip route").stdout)

# %% [markdown]
# **On the node.** The host side of the veth is `cali` + 11 hex digits (the SHA-1 of
# `namespace.name`), MAC `ee:ee:ee:ee:ee:ee`, no address. Read node1's table and find, as
# in the thesis: the container's `/32` route (felix added it), the **blackhole** for
# node1's own block (BIRD's static protocol: addresses of the block that no container
# uses are dropped here rather than sent anywhere), and node2's block **via node2**,
# learnt by BGP.

# %% tags=["nbval-check-output"]
print(node1.run("ip route").stdout)                      # ip route (on node1)

# %% tags=["nbval-check-output"]
print(node2.run("ip route").stdout)                      # ip route (on node2)

# %% [markdown]
# **Predict.** bbox1 pings bbox2. What TTL do the replies carry (a Linux host starts at
# 64)? Which hops does a traceroute show?

# %% tags=["nbval-check-output"]
reply = bbox1.node.ping(bbox2.ip, count=2)               # docker exec bbox1 ping -c 2 bbox2
print(reply.received, "replies, ttl", {r.ttl for r in reply.replies})
print([hop.address for hop in bbox1.node.traceroute(bbox2.ip, icmp=True)])   # traceroute -n -I

# %% [markdown]
# TTL **62**: two routers decrement it, node2 and node1 (the first hop answers from its
# underlay address: the `cali` interface has none). Exactly what the thesis measured.

# %% [markdown]
# ## 3 · Who is 169.254.1.1? Proxy ARP, in a capture
#
# bbox1 must send its packets to 169.254.1.1's MAC address, so it asks by ARP. Nobody owns
# that address, but felix turned on **proxy ARP** on the `cali` interface
# (`net.ipv4.conf.caliX.proxy_arp=1`, with `neigh.caliX.proxy_delay=0`): the node answers
# with its own MAC for any address it can route somewhere else.

# %% tags=["nbval-check-output"]
for key in ("conf.{}.proxy_arp", "neigh.{}.proxy_delay", "conf.{}.forwarding", "conf.{}.route_localnet"):
    name = "net.ipv4." + key.format(bbox1.ifname)
    print(name, "=", node1.get_sysctl(name))              # sysctl net.ipv4.conf.caliX.proxy_arp

# %%
bbox1.node.run("ip neigh flush dev eth0")                 # forget the gateway's MAC
with bbox1.node.capture("eth0", filter="arp") as arp:     # tcpdump -i eth0 arp (in bbox1)
    bbox1.node.ping(bbox2.ip, count=1)
arp.table()[["src_mac", "arp_op", "arp_sender_ip", "arp_target_ip", "arp_sender_mac"]]

# %% [markdown]
# The request asks for 169.254.1.1; the reply says it is at `ee:ee:ee:ee:ee:ee`, the MAC
# of the node's end of the veth. From then on bbox1 hands every packet to node1, which
# routes it.

# %% [markdown]
# ## 4 · Nothing on the wire but the packet
#
# **Predict.** Capture on node2's card while bbox1 pings bbox2. What addresses are in the
# IP header? Is there a UDP header anywhere?

# %%
with node2.capture("eth1", filter="icmp") as wire:        # tcpdump -i eth1 icmp (on node2)
    bbox1.node.ping(bbox2.ip, count=2)
calico_wire = wire.table()
calico_wire[["direction", "src_ip", "dst_ip", "ttl", "stack", "overhead_bytes"]]

# %% [markdown]
# The containers' own addresses travel on the underlay: the network between the nodes
# routes them (here it is one segment; in a data centre the routers learn the blocks by
# BGP too). Now the same ping across Flannel's VXLAN network (notebook 30), built on a
# cluster of its own:

# %%
from labkit.flannel import Flannel

with Lab("d3-flannel-compare") as flab:
    fcluster = Cluster(flab)                               # host, node1, node2
    fcluster.start_etcd()
    flannel = Flannel(fcluster, prefix="/docker-test/network")
    flannel.configure("10.4.0.0/16", subnet_len=24, backend="vxlan")
    flannel.start_all()
    flannel.wait_converged()
    ends = []
    for machine in fcluster.nodes:
        bip = flannel.docker_bridge(machine)              # dockerd --bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU
        ip = bip.split("/")[0].rsplit(".", 1)[0] + ".2"
        ends.append((machine.add_container(f"f{machine.name}", address=ip + "/24"), ip))
    with fcluster["node2"].capture("eth1", filter="udp port 8472") as fwire:
        ends[0][0].ping(ends[1][1], count=2)
    flannel_wire = fwire.table()

pd.DataFrame({
    "Calico": calico_wire.iloc[0][["src_ip", "dst_ip", "stack", "length", "overhead_bytes"]],
    "Flannel (vxlan)": flannel_wire.iloc[0][["src_ip", "dst_ip", "stack", "length", "overhead_bytes"]],
})

# %% [markdown]
# Flannel's packet is the container's packet wrapped in Ethernet + VXLAN + UDP + IP from
# node to node (50 bytes more, and an MTU of 1450 inside); Calico's *is* the container's
# packet. The price: the network between the nodes must route the containers' addresses
# (BGP on the same segment here; IP-in-IP mode exists for networks that cannot, and needs
# the `ipip` module, absent from this lab's kernel).

# %% [markdown]
# ## 5 · Networks are isolated; a profile opens one port
#
# A second network, `cal_net2`, with bbox3 on node1, and a web server `web1` on `cal_web`
# (node3). **Predict.** bbox1 and bbox3 sit on the same node, even in the same /26 block.
# Can they ping each other?

# %%
calico.add_network("cal_net2")
calico.add_network("cal_web")
bbox3 = calico.add_workload("node1", "bbox3", network="cal_net2")
web1 = calico.add_workload("node3", "web1", network="cal_web")
node3.write_text("/var/www/index.html", "It works!\n")
httpd = web1.node.spawn(["busybox", "httpd", "-f", "-p", "80", "-h", node3.path("/var/www")])  # docker run ... httpd
calico.wait_routes()
print(bbox3)

# %% tags=["nbval-check-output"]
def curl(client, server):
    """`docker exec CLIENT curl http://SERVER/`: the page, or why not."""
    result = client.node.run(["curl", "-sS", "-m", "2", f"http://{server.ip}/"])
    return result.stdout.strip() if result.ok else "no answer (timed out)"

print("bbox1 -> bbox3 ping:", bbox1.node.ping(bbox3.ip, count=1, wait=1).received, "replies")
print("bbox3 -> web1 http:", curl(bbox3, web1))

# %% [markdown]
# Neither. Felix wrote the policy into iptables: traffic to a container goes through
# `cali-tw-<its interface>` ("to workload"), which runs the container's profiles' inbound
# chains (`cali-pri-<profile>`) and drops what none of them accepted. `cal_net2`'s profile
# accepts only sources tagged `cal_net2` (an ipset of its members' addresses).

# %% tags=["nbval-check-output"]
saved = node1.run("iptables-save -t filter").stdout      # iptables-save -t filter (on node1)
print("\n".join(l for l in saved.splitlines() if l.startswith(f"-A cali-tw-{bbox3.ifname}")
                or l.startswith("-A cali-pri-cal_net2")))

# %% [markdown]
# Now the thesis's `web.yml`: the `cal_web` profile accepts **tcp port 80 from `cal_net2`**:
#
# ```yaml
# - apiVersion: v1
#   kind: profile
#   metadata: {name: cal_web}
#   spec:
#     ingress:
#     - action: allow
#       protocol: tcp
#       source: {tag: cal_net2}
#       destination: {ports: [80]}
# ```
#
# **Predict.** After `calicoctl apply -f web.yml`: can bbox3 fetch the page? Ping web1?
# Can bbox1 (cal_net1) fetch the page?

# %%
calico.set_profile("cal_web", inbound=[{"action": "allow", "protocol": "tcp",
                                        "src_tag": "cal_net2", "dst_ports": [80]}])   # calicoctl apply -f web.yml
calico.wait_synced()                                       # felix on every node has read it from etcd

# %% tags=["nbval-check-output"]
print("bbox3 -> web1 http:", curl(bbox3, web1))
print("bbox3 -> web1 ping:", bbox3.node.ping(web1.ip, count=1, wait=1).received, "replies")
print("bbox1 -> web1 http:", curl(bbox1, web1))
print("\n".join(l for l in node3.run("iptables-save -t filter").stdout.splitlines()
                if l.startswith("-A cali-pri-cal_web")))

# %% [markdown]
# Exactly port 80, exactly from `cal_net2`. The rule lives on **node3**, the destination's
# node: bbox3's packets cross the underlay and are filtered where they would be delivered.

# %% [markdown]
# ## 6 · A custom IP pool
#
# `calicoctl create` of an `ipPool` with `cidr: 17.2.0.0/16`, then a container in it.

# %%
calico.add_pool("17.2.0.0/16")                            # calicoctl create -f pool.yml
custom = calico.add_workload("node2", "custom1", network="cal_net1", pool="17.2.0.0/16")
calico.wait_routes()

# %% tags=["nbval-check-output"]
print(custom)
print(node1.run("ip route show proto bird").stdout)       # node1 learnt node2's new block

# %% [markdown]
# Overlapping pools, a block size outside 20–32 or an address outside every pool are
# refused before anything is built:

# %%
for attempt in (lambda: calico.add_pool("17.2.128.0/17"),
                lambda: calico.add_pool("10.8.0.0/16", block_size=19),
                lambda: calico.add_workload("node1", "stray", network="cal_net1", ip="10.9.9.9")):
    try:
        attempt()
    except ValueError as exc:
        print(type(exc).__name__, "-", exc)

# %% [markdown]
# ## 7 · Break it: stop BIRD on node2
#
# **Predict.** BIRD on node2 stops (SIGTERM: it closes its sessions properly). What
# happens to node2's blocks in node1's table? Does bbox1 still reach bbox2?

# %%
calico.stop_bird("node2")                                 # kill -TERM $(pidof bird) on node2
calico.wait_withdrawn("node2")                             # until node1 and node3 have dropped its blocks
print(node1.run("ip route show proto bird").stdout)
print(bbox1.node.ping(bbox2.ip, count=1, wait=1))

# %% [markdown]
# node1's BIRD lost the session and withdrew every route it had learnt from node2: only
# node3's block and node1's own blackhole are left, and bbox1's packets to bbox2 now follow node1's default
# route, which leads nowhere useful. (Had BIRD been killed without closing the session,
# *graceful restart* would have kept the routes for up to two minutes.) Start it again:

# %%
calico.start_bird("node2")                                # bird -c .../bird.cfg -s .../bird.ctl
calico.wait_established()
calico.wait_routes()
print(node1.run("ip route show proto bird").stdout)
print(bbox1.node.ping(bbox2.ip, count=1))

# %% [markdown]
# ## 8 · The pitfall: proxy ARP needs a route out
#
# Proxy ARP answers for an address only if the node can route that address **out of
# another interface**. Our nodes have a default route (via the `host` machine, like the
# thesis's VMs via their NAT card). **Predict.** Without it, what happens to a new
# container on node3?

# %%
node3.del_route("default")                                # ip route del default (on node3)
lonely = calico.add_workload("node3", "lonely", network="cal_net1")
print(lonely.node.ping(bbox1.ip, count=1, wait=1))
print(lonely.node.run("ip neigh").stdout)                 # the gateway never resolves

# %% [markdown]
# The ARP request for 169.254.1.1 gets no answer: node3 has no route for 169.254.1.1, so
# proxy ARP stays silent and the container cannot send anything, not even to a block that
# node3 does route. Put the default route back:

# %%
node3.add_route("default", via=cluster.store.ip)          # ip route add default via 192.168.99.100
lonely.node.run("ip neigh flush dev eth0")
print(lonely.node.ping(bbox1.ip, count=1))

# %% [markdown]
# ## 9 · Route reflectors
#
# A full mesh of N nodes needs N(N−1)/2 sessions; every node holds N−1. With a **route
# reflector**, the mesh is turned off and every node peers with the reflector only, which
# passes each node's routes on to the others (`rr client` in its configuration, next hop
# unchanged, so traffic still goes node to node). `bench/bgp.py` measures both on 5 to 30
# nodes.

# %%
pd.DataFrame([{"nodes": n, "full mesh sessions": n * (n - 1) // 2, "with one reflector": n - 1}
              for n in (3, 5, 10, 30, 50, 100)]).set_index("nodes")

# %%
lab.close()
with Lab("d3-calico-rr") as rlab:
    rr = Calico(Cluster(rlab, nodes=["node1", "node2", "node3"]), route_reflectors=["node1"]).start()
    sessions = pd.DataFrame(rr.sessions()).fillna("-")
    reflector_cfg = rr.cluster["node1"].read_text("/etc/calico/confd/config/bird.cfg")
print(reflector_cfg[reflector_cfg.index("# ------------- Node-to-node mesh"):])

# %% tags=["nbval-check-output"]
sessions

# %% [markdown]
# ## 10 · Summary
#
# * Calico makes every node a router: one `/32` route per container (`IP dev caliX scope
#   link`), one block route per node learnt by BGP (`BLOCK/26 via NODE proto bird`), and a
#   `blackhole` for the node's own block.
# * The container's gateway 169.254.1.1 exists nowhere: proxy ARP on the `cali` interface
#   answers with `ee:ee:ee:ee:ee:ee`, provided the node can route the address elsewhere.
# * Nothing is encapsulated: TTL 62 across nodes, no overhead; the underlay must route the
#   containers' addresses.
# * Policy is iptables on the destination's node: networks isolated by default, profiles
#   open exactly what they say.
# * BGP sessions are the control plane: lose one and the routes go with it; past a few
#   dozen nodes, a route reflector keeps the number of sessions linear.
#
# Next: exercise 31 (your own pool), then Weave (notebook 32).

# %% [markdown]
# ## Questions to think about
#
# 1. bbox1 and bbox3 sit on the same node, in the same /26 block, one address apart. On
#    Docker's bridge (notebook 02) they would have reached each other directly. Which
#    path does a packet from bbox1 to bbox3 take here, and where exactly is it dropped?
# 2. node1 holds `blackhole 192.168.223.128/26`. Predict what would become of a packet
#    for an unused address of that block, say 192.168.223.140, without that route. What
#    else does the blackhole do for the other nodes?
# 3. After `web.yml`, bbox3 fetched the page from web1. The reply travels from web1 to
#    bbox3 and goes through bbox3's `cali-tw-…` chain, whose profile accepts only
#    sources tagged `cal_net2`; web1 is not in `cal_net2`. Why does the reply get
#    through?
# 4. With one route reflector, 100 nodes need 99 sessions instead of 4950. What does the
#    cluster now depend on that the full mesh did not, and does the data traffic pass
#    through the reflector?
#
# Exercise 31 ([exercises/31-calico.ipynb](../exercises/31-calico.ipynb)) builds Calico
# with your own pool and block size; its solution answers these questions.
