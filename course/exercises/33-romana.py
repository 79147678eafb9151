# %% [markdown]
# # Exercise 33 · Romana
#
# **Objectives.** Build a two-host Romana network on *your* address layout and show
# the instructor:
#
# 1. the agents running with your layout: each host's gateway and one plain route to
#    the other host's block;
# 2. two pods of one tenant and segment, on different hosts, reaching each other;
# 3. a pod of another segment of the same tenant, cut off by the isolation chains;
# 4. a capture proving there is no encapsulation on the underlay.
#
# ```
#   web1 ─ romanaXXXXXXX ─ node1 (host 0) ── eth1 ─ underlay ─ eth1 ── node2 (host 1) ─ romanaXXXXXXX ─ web2, db
# ```
#
# The setup cell builds the cluster (no store machine). Build a
# `Layout(network, host_bits=..., tenant_bits=..., segment_bits=..., endpoint_bits=...)`
# from your parameters, then a `Romana(cluster, layout)`, and use `romana.start()`,
# `romana.add_pod(machine, name, tenant=, segment=)`, `romana.address(pod)`. Replace the
# `...` in every cell marked `# YOUR CODE HERE`, then run the checkpoint cell after it.

# %% tags=["parameters"]
student_id = "anonymous"
network = "10.0.0.0/8"         # the Romana network
host_bits = 8                  # the four fields of the layout, most significant first
tenant_bits = 4
segment_bits = 4
endpoint_bits = 8
tenant = 3                     # the web application's tenant
web_segment = 1                # web1 and web2
db_segment = 2                 # db (same tenant)

# %%
from labkit import Lab
from labkit.checkpoints import Checkpoint, checks
from labkit.cluster import Cluster
from labkit.romana import Layout, Romana

lab = Lab("ex33-romana")
cluster = Cluster(lab, store=None)
node1, node2 = cluster["node1"], cluster["node2"]
# what your layout means (the checkpoints compare the lab with these)
expected = Layout(network, host_bits=host_bits, tenant_bits=tenant_bits, segment_bits=segment_bits,
                  endpoint_bits=endpoint_bits)
gw1 = f"{expected.gateway(0)}/{expected.host_block(0).prefixlen}"
block2 = str(expected.host_block(1))
web1_ip, web2_ip = (str(expected.compose(h, tenant, web_segment, 1)) for h in (0, 1))
db_ip = str(expected.compose(1, tenant, db_segment, 1))
db_match = expected.segment_match(tenant, db_segment)   # the source match of db's segment chain
print(f"node1 gateway {gw1}; node2's block {block2}; web1 {web1_ip}, web2 {web2_ip}, db {db_ip}")

# %% [markdown]
# ## Task 1 · The layout and the agents (2 points)
#
# Build `layout` from the parameters, `romana = Romana(cluster, layout)`, and start the
# agents. Look at `node1.run(["ip", "route"]).stdout`: which route leads to node2's pods?

# %%
# BEGIN SOLUTION
layout = Layout(network, host_bits=host_bits, tenant_bits=tenant_bits, segment_bits=segment_bits,
                endpoint_bits=endpoint_bits)
romana = Romana(cluster, layout)
romana.start()
print(node1.run(["ip", "route"]).stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("33.1", "node1 holds its gateway on romana-gw and routes node2's block via node2",
                points=2, hint="romana = Romana(cluster, layout); romana.start()") as cp:
    cp.check(checks.address(node1, gw1, dev="romana-gw"))
    cp.check(checks.route(node1, block2, via=node2.ip, dev="eth1"))

# %% [markdown]
# ## Task 2 · Two pods of one segment (3 points)
#
# Add `web1` on node1 and `web2` on node2, both in your tenant and `web_segment`.
# Predict their addresses before you look. Ping web2 from web1.

# %%
# BEGIN SOLUTION
web1 = romana.add_pod("node1", "web1", tenant=tenant, segment=web_segment)
web2 = romana.add_pod("node2", "web2", tenant=tenant, segment=web_segment)
print(romana.table())
print(web1.ping(romana.address(web2), count=2))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("33.2", "web1 and web2 have their layout addresses and reach each other",
                points=3, hint="romana.add_pod('node1', 'web1', tenant=tenant, segment=web_segment)") as cp:
    cp.check(checks.address(lab["web1"], web1_ip, dev="eth0"))
    cp.check(checks.address(lab["web2"], web2_ip, dev="eth0"))
    cp.check(checks.ping(lab["web1"], web2_ip))

# %% [markdown]
# ## Task 3 · Another segment (3 points)
#
# Add `db` on node2: same tenant, `db_segment`. Can web1 reach it? Find the chain that
# decides (`node2.run(["iptables-save", "-t", "filter"]).stdout`) and the mask it uses.

# %%
# BEGIN SOLUTION
db = romana.add_pod("node2", "db", tenant=tenant, segment=db_segment)
print(web1.ping(romana.address(db), count=1, wait=1))
print(node2.run(["iptables", "-S", f"ROMANA-T{tenant}-S{db_segment}"]).stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("33.3", "db (another segment) has its address, and web1 cannot reach it",
                points=3, hint="romana.add_pod('node2', 'db', tenant=tenant, segment=db_segment)") as cp:
    cp.check(checks.address(lab["db"], db_ip, dev="eth0"))
    cp.check(checks.command(node2, ["iptables", "-S", f"ROMANA-T{tenant}-S{db_segment}"],
                            stdout_contains=f"-s {db_match}"))
    cp.check(checks.ping(lab["web1"], db_ip, expect="failure"))

# %% [markdown]
# ## Task 4 · Nothing added on the wire (2 points)
#
# Capture ICMP on node2's `eth1` while web1 pings web2
# (`with node2.capture("eth1", filter="icmp or udp") as romana_capture:`). Which addresses
# does the underlay see, and how many bytes were added? The checkpoint then makes its own
# capture of the same traffic.

# %%
# BEGIN SOLUTION
with node2.capture("eth1", filter="icmp or udp") as romana_capture:
    web1.ping(romana.address(web2), count=2)
romana_capture.table()[["src_ip", "dst_ip", "stack", "overhead_bytes"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("33.4", "the underlay carries the pods' own ICMP packets, no tunnel header",
                points=2, hint="web1 and web2 must exist and reach each other (Task 2)") as cp:
    with node2.capture("eth1", filter="icmp or udp") as seen:   # the checkpoint's own capture
        lab["web1"].ping(web2_ip, count=2)
    cp.check(checks.capture(seen, pattern=r"^eth/ipv4/icmp$", min_count=2))
    cp.check(checks.capture(seen, "udp", absent=True))

# %% [markdown]
# ## To think about (not graded)
#
# * How many routes does each host need with 100 hosts? With Flannel host-gw? With Calico?
# * A tenant needs a 17th segment. What has to change, and for whom?
# * Why does a pod's address have the host block's prefix length, not /32 or /24?
#
# ## Clean-up

# %%
lab.close()

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 33
#
# 1. **The host, by proxy ARP.** node1 answered for 10.0.17.2 with the MAC of `a`'s own
#    veth, because proxy ARP is on for that veth and node1 routes 10.0.17.2 elsewhere
#    (the /32 route into `a2`'s veth). `a` then hands the frame to node1, which routes
#    it: one hop, TTL 63. Romana wants every packet, even between neighbours, to cross
#    the host's IP layer, because that is where its FORWARD chains filter by tenant and
#    segment: with a shared bridge, same-host traffic would slip past them.
# 2. **`romana: isolation` in ROMANA-T1-S1.** On node2 the packet goes out a `romana…`
#    veth, so FORWARD sends it to ROMANA-FORWARD; its destination 10.1.17.1 masked by
#    255.0.255.0 is 10.0.17.0, so it jumps to ROMANA-T1-S1; its source 10.1.33.1 masks
#    to 10.0.33.0, not 10.0.17.0, so the last rule drops it. To let tenant 2 segment 1
#    in, ROMANA-T1-S1 needs an ACCEPT for `-s 10.0.33.0/255.0.255.0` before the DROP
#    (what a Romana policy adds), on every host that holds tenant 1 segment 1 pods:
#    filtering happens on the destination's host.
# 3. **256 rules instead of one.** A prefix mask cannot skip the host byte, so each
#    segment would need one source rule per host block (`10.h.17.0/24` for every h).
#    The non-contiguous mask ignores the host byte, so one rule matches the segment on
#    every host. A routing table looks up the *longest matching prefix*: a route is a
#    prefix by definition, and the kernel refuses masks with holes. The filter only
#    tests a bitwise AND (`ip saddr & 255.0.255.0 == 10.0.17.0` in nftables), so any
#    mask works there.
# 4. **Three sources of truth.** Romana's agent rewrites the host from the decisions of
#    the Romana daemon (here the file `/etc/romana/agent.json` the notebook wrote; real
#    Romana keeps them in its etcd): if the daemon is unreachable, the host keeps
#    working as last decided, only changes stop. Flannel rebuilds from the leases in
#    etcd: if etcd is unreachable, routes stay but no lease can be renewed or taken, and
#    a node cut off for longer than its lease loses its subnet, the others dropping
#    their routes to it. Calico
#    learns the others' blocks over BGP from the peers themselves: if a session drops,
#    the routes learnt over it are withdrawn at once (graceful restart aside); losing
#    etcd stops new containers and policy changes, not the routes.
