# %% [markdown]
# # 41 · Kubernetes Services: what kube-proxy writes in the kernel
#
# Pods come and go, and their addresses with them (notebook 40). A **Service** gives a
# set of pods one stable virtual address, the **ClusterIP** (from 10.96.0.0/12), and
# optionally a port on every node, the **NodePort** (30000-32767). Nothing listens on a
# ClusterIP: on every node, **kube-proxy** turns each Service into NAT rules, and the
# kernel rewrites the first packet of each connection towards one of the Service's pods.
#
# There is no kube-proxy binary on these machines: labkit plays it, as a lab process per
# node that writes kube-proxy's own rules (same chains, same names, same hash, same
# probabilities) with the real `iptables-restore` and `nft`, rewriting all of them from
# the Service state on every change, as kube-proxy does.
#
# **Objectives.** By the end you can
#
# 1. read kube-proxy's iptables chains (KUBE-SERVICES, KUBE-SVC-…, KUBE-SEP-…, KUBE-NODEPORTS,
#    KUBE-MARK-MASQ, KUBE-POSTROUTING) and compute a chain's name yourself;
# 2. predict how connections spread over endpoints (`statistic --mode random`), and
#    measure it;
# 3. walk one connection through the rules and find its DNAT in conntrack;
# 4. reach a Service from outside the cluster through a NodePort, and explain why the
#    pod then sees a node's address;
# 5. watch endpoints come and go, and a Service without endpoints refuse connections;
# 6. read the nftables mode (verdict maps, `numgen`) and explain, with a measurement,
#    why it scales better than the chain walk.
#
# Sources: seed 004 (pod-to-Service and external-to-Service traffic), seed 001 §3.7,
# Kubernetes' pkg/proxy (the chain structure), systems.md.

# %% [markdown]
# ## 1 · The plan
#
# ```
#                       underlay 192.168.99.0/24
#     outside .50 ─────────┬───────────────────────────┐
#                     node1 .101                    node2 .102
#                     cni0 10.244.1.1               cni0 10.244.2.1
#                      ├─ web-1 10.244.1.2           ├─ web-2 10.244.2.2
#                      └─ shell 10.244.1.3           └─ web-3 10.244.2.3
#     Service "web": ClusterIP 10.96.0.1:80 -> pods labelled app=web, port 8080
#                    NodePort 30080 on every node
# ```

# %%
import base64
import hashlib
import json
import re
import sys

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit import Lab
from labkit.cluster import Cluster
from labkit.kubernetes import Kubernetes, ServicePort, svc_chain

lab = Lab("k8s-services")
cluster = Cluster(lab, store=None)                     # node1 .101, node2 .102
outside = lab.add_host("outside")                      # a machine on the LAN, not in the cluster
lab.link(outside, cluster.switch, names=("eth1", None))
outside.add_address("eth1", "192.168.99.50/24")
k8s = Kubernetes(cluster.nodes)
k8s.route_pod_cidrs()
web1 = k8s.run_pod("web-1", node="node1", labels={"app": "web"})
shell = k8s.run_pod("shell", node="node1", echo_port=None)
web2 = k8s.run_pod("web-2", node="node2", labels={"app": "web"})
web3 = k8s.run_pod("web-3", node="node2", labels={"app": "web"})
node1 = cluster["node1"]

# %% [markdown]
# ## 2 · A Service, and the name of its chain
#
# `create_service` is `kubectl apply` of a Service: the API server checks it, allocates
# the ClusterIP (and here a fixed NodePort), and the endpoints controller lists the
# ready pods whose labels match the selector.

# %% tags=["nbval-check-output"]
web = k8s.create_service("web", selector={"app": "web"}, type="NodePort",
                         ports=[ServicePort(80, 8080, name="http", node_port=30080)])
print(web.key, web.type, web.cluster_ip, [(p.port, p.target, p.node_port) for p in web.ports])
print("endpoints:", [(e.pod, e.ip) for e in web.endpoints])

# %% [markdown]
# `web` got the first address of the range, 10.96.0.1. On a real cluster that one is
# taken: the API server gives it to the Service `default/kubernetes` (its own address,
# for pods to reach it), and other Services get random addresses from the range. This
# lab has no API server Service, and allocates in order so that its outputs stay the
# same from run to run.
#
# kube-proxy names a Service port's chain after a hash: the first 16 characters of
# base32(sha256(`namespace/name:port` + protocol)). Compute it yourself, and check it
# against two names every cluster has (`kubectl -n kube-system get svc kube-dns` and
# `default/kubernetes`):

# %% tags=["nbval-check-output"]
def chain_for(port_name: str, protocol: str) -> str:
    digest = hashlib.sha256((port_name + protocol).encode()).digest()
    return "KUBE-SVC-" + base64.b32encode(digest).decode()[:16]


for name, proto in (("kube-system/kube-dns:dns", "udp"), ("default/kubernetes:https", "tcp"),
                    ("default/web:http", "tcp")):
    print(f"{name:28} {proto}  {chain_for(name, proto)}  (labkit: {svc_chain(name, proto)})")

# %% [markdown]
# ## 3 · kube-proxy in iptables mode
#
# We start kube-proxy on both nodes and read what it wrote in node1's `nat` table: every
# rule of a `KUBE-` chain, and the jumps into them from the built-in chains.

# %%
k8s.start_proxy("iptables")
print(k8s.proxy_log("node1").splitlines()[-1])

# %% tags=["nbval-check-output"]
nat = node1.run(["iptables-save", "-t", "nat"]).stdout            # iptables-save -t nat
for line in nat.splitlines():
    if line.startswith("-A") and "KUBE-" in line:
        print(line)

# %% [markdown]
# Read it as the kernel does for the first packet of a connection to 10.96.0.1:80:
#
# 1. PREROUTING (from a pod) or OUTPUT (from the node) jumps to **KUBE-SERVICES**;
# 2. the rule matching `-d 10.96.0.1/32 --dport 80` jumps to **KUBE-SVC-…**;
# 3. there, a packet from outside the pod network (`! -s 10.244.0.0/16`) is first sent
#    to **KUBE-MARK-MASQ**, which sets the mark `0x4000` and returns; then the first
#    KUBE-SEP jump takes the packet with probability 1/3; if not, the second with
#    probability 1/2 (of the remaining 2/3); else the last one: 1/3 each;
# 4. the chosen **KUBE-SEP-…** DNATs to that pod's `ip:8080` (its first rule marks a pod
#    that reaches itself through the Service, the "hairpin" case, for masquerade too).
#
# The last rule of KUBE-SERVICES sends packets addressed to the node itself
# (`addrtype --dst-type LOCAL`) to **KUBE-NODEPORTS**, whose KUBE-EXT-… chain marks
# every packet for masquerade before the same KUBE-SVC-… choice. On the way out,
# **KUBE-POSTROUTING** returns unmarked packets untouched, clears the mark of marked
# ones and masquerades them (`--random-fully`).
#
# **Predict.** `shell` opens 300 new connections to the ClusterIP. How many will each
# pod answer?

# %%
spread = shell.hit(web.cluster_ip, 80, count=300)
counts = pd.Series(spread["replies"]).sort_index()
fig = go.Figure(go.Bar(x=counts.index, y=counts.values))
fig.add_hline(y=100, line_dash="dash", line_color="gray")
fig.update_layout(title="300 connections to 10.96.0.1:80", yaxis_title="connections", height=300)
fig.show()
counts

# %% [markdown]
# About 100 each, give or take the spread of a random draw (its standard deviation is
# about 8, so 85 or 115 is nothing unusual). The pods saw the client as itself:
# `shell`'s address, not a node's:

# %% tags=["nbval-check-output"]
spread["sources"].keys()

# %% [markdown]
# ## 4 · One connection, in conntrack
#
# Only the first packet walks the chains. Its decision is stored in the connection
# tracking table; every later packet, and every reply, is rewritten from there. The 300
# connections above still have entries (closed, in `TIME_WAIT`), so we first delete the
# entries to the ClusterIP, then open one connection and ask conntrack on node1 for it:

# %%
node1.run(["conntrack", "-D", "-p", "tcp", "--orig-dst", web.cluster_ip])   # conntrack -D -p tcp --orig-dst 10.96.0.1
one = shell.hit(web.cluster_ip, 80)
flows = node1.run(["conntrack", "-L", "-p", "tcp", "--orig-dst", web.cluster_ip]).stdout
print(flows.strip())                                # conntrack -L -p tcp --orig-dst 10.96.0.1
pod_ips = {e.pod: e.ip for e in web.endpoints}
print("answered by", [(pod, pod_ips[pod]) for pod in one["replies"]])

# %% [markdown]
# Two tuples: the original (`src=shell dst=10.96.0.1 dport=80`) and the reply expected
# from the chosen pod (`src=<pod> ... sport=8080`), the pod that answered: the DNAT is
# the difference between them. The counters of the KUBE-SVC chain show where all the
# connections so far went. They count packets, but the `nat` table sees only the first
# packet of each connection (the rest follow conntrack), so here packets = connections:
# the 300 of section 3 and this one.

# %%
print(node1.run(["iptables", "-t", "nat", "-L", svc_chain("default/web:http", "tcp"),
                 "-v", "-n"]).stdout)               # iptables -t nat -L KUBE-SVC-... -v -n

# %% [markdown]
# ## 5 · From outside the cluster: the NodePort
#
# `outside` is not in the cluster: no pod routes, no kube-proxy. It connects to port
# 30080 of node1. **Predict:** which source address will the pods see?

# %%
out = outside.run([sys.executable, "-m", "labkit.kubernetes.echo", "hit", "192.168.99.101",
                   "30080", "--count", "60"]).check()      # curl 192.168.99.101:30080, 60 times
external = json.loads(out.stdout)
print("replies:", external["replies"])
print("sources seen by the pods:", external["sources"])

# %% [markdown]
# The node's own addresses, never 192.168.99.50: KUBE-EXT-… marked the packet for
# masquerade, and KUBE-POSTROUTING rewrote its source on the way to the pod (node1's
# `cni0` address for a pod on node1, node1's underlay address for a pod on node2). The
# reply must come back through node1 to be un-NATed, so kube-proxy must masquerade.
#
# ## 6 · Endpoints come and go
#
# Delete `web-3`. The endpoints controller removes it from the Service, and every
# kube-proxy rewrites its rules. **Predict** the new probabilities.

# %%
k8s.delete_pod("web-3")
k8s.sync()                                               # wait until both kube-proxies applied it
print(node1.run(["iptables", "-t", "nat", "-S", svc_chain("default/web:http", "tcp")]).stdout)
print(shell.hit(web.cluster_ip, 80, count=100)["replies"])

# %% [markdown]
# A Service whose selector matches no pod has no endpoints. kube-proxy then adds a
# REJECT rule to the *filter* table: clients get "connection refused" at once instead
# of waiting for a timeout.

# %% tags=["nbval-check-output"]
lonely = k8s.create_service("lonely", selector={"app": "nobody"}, ports=[ServicePort(80, 8080)])
k8s.sync()
print(node1.run(["iptables", "-S", "KUBE-SERVICES"]).stdout)     # iptables -S KUBE-SERVICES
print(shell.hit(lonely.cluster_ip, 80, count=3)["errors"])

# %% [markdown]
# ## 7 · The nftables mode
#
# Recent kube-proxy has an nftables mode: one table `ip kube-proxy`, where a Service is
# found with **one lookup in a verdict map** (`service-ips`, keyed by address . protocol
# . port) instead of a walk down KUBE-SERVICES, and an endpoint is picked with
# `numgen random mod N`.

# %%
k8s.start_proxy("nftables")                                     # kube-proxy --proxy-mode=nftables
table = node1.run(["nft", "list", "table", "ip", "kube-proxy"]).stdout
for chain in ("services", "service-ips"):
    block = re.search(rf"\t(chain|map) {chain} {{.*?\n\t}}", table, re.S)
    print(block.group(0) if block else f"{chain}: missing")

# %%
service_chain = re.search(r"\tchain (service-\S+default/web/tcp/http) {.*?\n\t}", table, re.S)
print(service_chain.group(0))
print(shell.hit(web.cluster_ip, 80, count=100)["replies"])
print("iptables chains left:", node1.run(["iptables-save", "-t", "nat"]).stdout.count(":KUBE-"))

# %% [markdown]
# ## 8 · Why nftables: the scaling story
#
# In iptables mode a new connection to the *last* Service added walks KUBE-SERVICES
# rule by rule; with thousands of Services that walk, and rewriting thousands of
# chains on every change, gets slow. In nftables mode the map lookup costs the same for
# any number of Services. We measure it: for 10, 100 and 300 Services (three endpoints
# each), the time kube-proxy's sync took (its own log line) and the median time of a
# new connection to the last Service, next to a connection straight to a pod
# (`direct_us`; `ratio` is connect over direct).
#
# **Predict** before you run it: a rule that does not match costs the kernel well under
# a microsecond. Will the walk past 300 rules show next to a connect of about 100 µs on
# a machine shared with other work?
#
# `bench/services.py` runs the same measurement up to 5000 Services, too slow for a
# notebook; on this machine it measured (one run): a sync of 5000 Services took about
# 47 s in iptables mode and 121 s in nftables mode, and a new connection to the 1000th
# and 5000th Service took about 0.45 times as long through nftables as through
# iptables.

# %%
from labkit.kubernetes.scaling import measure

rows = pd.DataFrame(measure(k8s, shell, [web1, web2], [10, 100, 300], connections=300))
rows

# %%
fig = make_subplots(rows=1, cols=2, subplot_titles=("programming the rules: sync (ms)",
                                                    "new connection to the last Service (µs, median)"))
for mode, part in rows.groupby("mode"):
    fig.add_trace(go.Scatter(x=part["services"], y=part["sync_ms"], name=f"{mode} sync"), 1, 1)
    fig.add_trace(go.Scatter(x=part["services"], y=part["connect_us"], name=f"{mode} connect"), 1, 2)
fig.update_xaxes(type="log", title="Services")
fig.update_yaxes(type="log", row=1, col=1)
fig.update_layout(height=350)
fig.show()

# %% [markdown]
# Read both panels. The sync grows with the number of Services in both modes (every
# rule is rewritten); on this machine a lab applies big syncs in several transactions
# (its netlink socket is capped, see `labkit/kubernetes/_batches.py`), which adds to
# both, and this lab's kube-proxy replaces its whole nftables table on every sync where
# the real one sends only what changed: here the nftables sync becomes the slower one as
# the Services grow, which says more about the lab than about nftables.
#
# The connection times are another matter: up to 300 Services, expect no clear trend in
# either mode, and no clear winner. The walk past 300 non-matching rules adds at most
# some tens of microseconds, about as much as the run-to-run noise of a connect on a
# shared machine (compare the rows, and the `direct_us` column, which no Service rule
# touches), so the measurement cannot separate it. The walk's cost stands out from
# about a thousand Services: that is where `bench/services.py` measured nftables at
# about half the connection time of iptables.
#
# ## 9 · Summary
#
# * A ClusterIP is a NAT rule, not a socket: kube-proxy programs it on every node.
# * iptables mode: KUBE-SERVICES → KUBE-SVC-<hash> (random choice: 1/(n-i) for the
#   i-th of n rules, counting from 0) →
#   KUBE-SEP-<hash> (DNAT); KUBE-NODEPORTS for NodePorts; KUBE-MARK-MASQ and
#   KUBE-POSTROUTING for the masquerade external traffic needs.
# * conntrack keeps the decision: only a connection's first packet walks the rules.
# * nftables mode: one verdict-map lookup per connection, `numgen` for the endpoint.
#
# **Practise:** [exercise 40](../exercises/40-kubernetes.ipynb) covers notebooks 40 and
# 41: pods and CNI, then a Service of your own through kube-proxy's iptables mode,
# conntrack, a NodePort from outside, and the nftables mode.
#
# ## Questions to think about
#
# 1. Scale `web` to four pods. Predict the `--probability` of each rule in its
#    KUBE-SVC chain, and explain why they are not all 0.25.
# 2. The 60 connections from `outside` reached the pods from two different source
#    addresses, 10.244.1.1 and 192.168.99.101. Which pods saw which, and what would go
#    wrong for a pod on node2 if kube-proxy did not masquerade?
# 3. Without its REJECT rule, what would a client of `lonely` (a Service without
#    endpoints) experience, and why?
# 4. Up to 300 Services the connection times of the two modes differed by no more than
#    the noise, and the nftables *sync* was the slower one at 100 and 300 here;
#    `bench/services.py` measured nftables connections at about half the time of
#    iptables ones from a thousand Services on. Which of the two costs, the
#    connection or the sync, does a client of a busy cluster feel, and which does the
#    cluster's operator feel?
#
# <details><summary>Answers (open after you have thought about them)</summary>
#
# 1. 0.25, 0.333…, 0.5, and no probability on the last rule. The rules are tried in
#    order, so each one draws only among the packets the earlier rules left: the first
#    takes 1/4 of all, the second 1/3 of the remaining 3/4 (another 1/4), the third 1/2
#    of the remaining 1/2, and the last takes whatever is left. In general the i-th of n
#    rules, counting from 0, has probability 1/(n-i) (the last one, i = n-1, would have
#    1, which is why it carries no `statistic` match).
# 2. `web-1`, on node1 itself, saw 10.244.1.1, node1's `cni0` address: the packet left
#    node1 towards the pod through `cni0`, and masquerade takes the outgoing interface's
#    address. `web-2` and `web-3`, on node2, saw 192.168.99.101, node1's underlay
#    address. Without masquerade, `web-2` would answer 192.168.99.50 directly from
#    node2, with its own source 10.244.2.2: the reply never passes through node1, so
#    nothing undoes the DNAT, and `outside` receives an answer from an address it never
#    wrote to and drops it. The connection never opens.
# 3. A wait until the client gives up. Nothing listens on 10.96.0.2 and no DNAT rule
#    matches it, so on a real cluster the SYN follows the node's default route towards
#    its gateway, and no machine owns that address: no answer, repeated
#    retransmissions, a timeout after tens of seconds. The REJECT rule answers at once with ICMP port unreachable, which
#    the client reports as "connection refused" (`ECONNREFUSED` above).
# 4. The client feels the connection time: every new connection walks KUBE-SERVICES
#    in iptables mode, so thousands of Services mean thousands of rules tried before the
#    right one, on every node, for every connection; at a few hundred the walk is still
#    lost in the noise, as measured here. The operator feels the sync: how
#    long a change (a pod gone, a Service added) takes to reach the kernels. Here this
#    lab's nftables proxy rewrites its whole table each time, so its sync grows faster
#    than it would with the real kube-proxy, which sends only what changed.
# </details>

# %%
lab.close()
