# %% [markdown]
# # Exercise 40 · Pods, CNI and a Service
#
# **Objectives.** On a two-node cluster, show that you can
#
# 1. run pods through the CNI plugins and connect the nodes' pod networks without NAT;
# 2. expose them with a Service whose ClusterIP answers from every pod;
# 3. find kube-proxy's DNAT of your connections in conntrack;
# 4. reach the Service from outside the cluster through its NodePort;
# 5. switch kube-proxy to its nftables mode and find your Service in its verdict map.
#
# Task 1 needs walkthrough 40 ([40-kubernetes-pods-and-cni](../notebooks/40-kubernetes-pods-and-cni.ipynb));
# tasks 2 to 5 need walkthrough 41 ([41-kubernetes-services](../notebooks/41-kubernetes-services.ipynb)):
# Services, `start_proxy`, conntrack, NodePorts and the nftables mode.
#
# ```
#                      underlay 192.168.99.0/24
#   outside .50 ───────────┬──────────────────────────┐
#                     node1 .101                  node2 .102
#                     web-1, client               web-2, web-3
#   Service "web": ClusterIP and NodePort from your parameters -> app=web pods, port 8080
# ```
#
# The setup cell builds the cluster (`cluster`, with `node1` and `node2`), the host
# `outside`, and `k8s` (a `labkit.kubernetes.Kubernetes` over the two nodes, pod CIDRs
# carved from your `cluster_cidr`). No pods, no Service, no kube-proxy yet. Replace the
# `...` in every cell marked `# YOUR CODE HERE`, then run the checkpoint after it. Run
# the cells in order; keep the names: the checkpoints look for them.

# %% tags=["parameters"]
student_id = "anonymous"
cluster_cidr = "10.244.0.0/16"   # node1 gets the 2nd /24 of it, node2 the 3rd
cluster_ip = "10.96.0.50"        # the Service's ClusterIP
node_port = 30080                # the Service's NodePort
target_port = 8080               # the pods' echo servers listen here

# %%
import ipaddress
import sys

from labkit import Lab
from labkit.checkpoints import Checkpoint, checks
from labkit.cluster import Cluster
from labkit.kubernetes import Kubernetes, ServicePort, svc_chain

lab = Lab("ex40-kubernetes")
cluster = Cluster(lab, store=None)
outside = lab.add_host("outside")
lab.link(outside, cluster.switch, names=("eth1", None))
outside_ip = "192.168.99.50"
outside.add_address("eth1", f"{outside_ip}/24")
k8s = Kubernetes(cluster.nodes, cluster_cidr=cluster_cidr)
node1, node2 = cluster["node1"], cluster["node2"]
pod_cidrs = [str(k.pod_cidr) for k in k8s.kubelets.values()]
print("pod CIDRs: node1", pod_cidrs[0], " node2", pod_cidrs[1])


def nth(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + n)


# The addresses host-local will hand out, in the order the task asks for:
web1_ip, client_ip = nth(pod_cidrs[0], 2), nth(pod_cidrs[0], 3)
web2_ip, web3_ip = nth(pod_cidrs[1], 2), nth(pod_cidrs[1], 3)
hit = [sys.executable, "-m", "labkit.kubernetes.echo", "hit"]   # the echo client
print("web-1", web1_ip, " client", client_ip, " web-2", web2_ip, " web-3", web3_ip)

# %% [markdown]
# ## Task 1 · Pods on two nodes, reachable without NAT (3 points)
#
# Run, in this order: `web-1` on node1, `client` on node1 (no server: `echo_port=None`),
# `web-2` and `web-3` on node2. The three `web-*` pods carry the label `app=web` and
# keep the default echo server on `target_port` (`echo_port=target_port`). Then give each
# node a route to the other node's pod CIDR (`k8s.route_pod_cidrs()`).

# %%
# BEGIN SOLUTION
k8s.run_pod("web-1", node="node1", labels={"app": "web"}, echo_port=target_port)
k8s.run_pod("client", node="node1", echo_port=None)
k8s.run_pod("web-2", node="node2", labels={"app": "web"}, echo_port=target_port)
k8s.run_pod("web-3", node="node2", labels={"app": "web"}, echo_port=target_port)
k8s.route_pod_cidrs()                        # ip route add <other pod CIDR> via <other node>
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("40.1", "Four pods with their CNI addresses; pods reach pods across nodes", points=3,
                hint="k8s.run_pod(name, node=..., labels=..., echo_port=...) in the order given, "
                     "then k8s.route_pod_cidrs()") as cp:
    for pod, ip in (("web-1", web1_ip), ("client", client_ip), ("web-2", web2_ip), ("web-3", web3_ip)):
        cp.check(checks.address(lab[pod], f"{ip}/24", dev="eth0"))
    cp.check(checks.route(node1, pod_cidrs[1], via=node2.ip))
    cp.check(checks.ping(lab["client"], web2_ip))
    cp.check(checks.command(lab["client"], [*hit, web3_ip, str(target_port)],
                            stdout_contains=f'"sources": {{"{client_ip}": 1}}'))

# %% [markdown]
# ## Task 2 · A Service answering from every pod (3 points)
#
# Create the Service `web` in namespace `default`: type `NodePort`, selector `app=web`,
# one port named `http`, port 80 to `target_port`, with your `cluster_ip` and
# `node_port`: `k8s.create_service(name, selector=..., type=..., cluster_ip=...,
# ports=[ServicePort(port, target, name=..., node_port=...)])` (without `cluster_ip=`
# one is allocated for you, and the checkpoint will not find it). Start kube-proxy in
# its iptables mode (`k8s.start_proxy("iptables")`). From `client`, open some
# connections to the ClusterIP (`k8s.pod("client").hit(cluster_ip, 80, count=30)`) and
# look at who answers.

# %%
# BEGIN SOLUTION
web = k8s.create_service("web", selector={"app": "web"}, type="NodePort", cluster_ip=cluster_ip,
                         ports=[ServicePort(80, target_port, name="http", node_port=node_port)])
k8s.start_proxy("iptables")
print(k8s.pod("client").hit(cluster_ip, 80, count=30))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("40.2", "The ClusterIP answers from every pod, through kube-proxy's chain", points=3,
                hint="create_service(..., type='NodePort', cluster_ip=..., ports=[ServicePort(80, "
                     "target_port, name='http', node_port=...)]), then start_proxy('iptables')") as cp:
    cp.check(checks.command(node1, ["iptables", "-t", "nat", "-S", "KUBE-SERVICES"],
                            stdout_contains=f"-d {cluster_ip}/32"))
    cp.check(checks.command(node1, ["iptables", "-t", "nat", "-S", svc_chain("default/web:http", "tcp")],
                            stdout_contains="--probability 0.33333333349"))
    for pod in ("web-1", "web-2", "web-3"):
        cp.check(checks.command(lab["client"], [*hit, cluster_ip, "80", "--count", "60"],
                                stdout_contains=f'"{pod}":'))

# %% [markdown]
# ## Task 3 · The DNAT, in conntrack (1 point)
#
# Connections through the ClusterIP are rewritten by the first packet's DNAT and
# remembered by conntrack on the client's node, for two minutes after they close
# (`TIME_WAIT`). The connections of Task 2 and of its checkpoint are still listed, so:
#
# 1. delete node1's entries to your ClusterIP (`conntrack -D -p tcp --orig-dst
#    CLUSTER_IP`, run in node1 with `node1.run([...])`);
# 2. open **one** connection from `client` to the ClusterIP;
# 3. list node1's entries again (`conntrack -L -p tcp --orig-dst CLUSTER_IP`) and read
#    your connection's two tuples.
#
# Then set `client_port` (an `int`) to the source port `client` used, and `dnat_to` (a
# `str`) to the address of the pod the DNAT sent it to. Run the checkpoint within two
# minutes, while the entry still exists (if it has gone, run this cell again).

# %%
# BEGIN SOLUTION
node1.run(["conntrack", "-D", "-p", "tcp", "--orig-dst", cluster_ip])      # conntrack -D ...
k8s.pod("client").hit(cluster_ip, 80)
flow = node1.run(["conntrack", "-L", "-p", "tcp", "--orig-dst", cluster_ip]).stdout.strip()
print(flow)                                                                # one line, two tuples
values = [f.split("=", 1)[1] for f in flow.split() if f.startswith(("src=", "sport="))]
client_port = int(values[1])        # original tuple: src=CLIENT dst=CLUSTER_IP sport=PORT ...
dnat_to = values[2]                 # reply tuple:    src=POD dst=CLIENT sport=8080 ...
print("client port", client_port, "-> pod", dnat_to)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("40.3", "conntrack on node1 shows your connection's DNAT to a pod", points=1,
                hint="delete the entries, open one connection, list them again: client_port is "
                     "the first sport=, dnat_to the second src=; entries last two minutes") as cp:
    cp.check(checks.command(node1, ["conntrack", "-L", "-p", "tcp", "--orig-dst", cluster_ip],
                            stdout_contains=f"src={client_ip} dst={cluster_ip} sport={client_port} "
                                            f"dport=80 src={dnat_to} dst={client_ip} "
                                            f"sport={target_port} dport={client_port} "))

# %% [markdown]
# ## Task 4 · From outside, through the NodePort (2 points)
#
# `outside` is not part of the cluster. From it, connect to the NodePort of **node2**
# (`outside.run([*hit, node2.ip, str(node_port), "--count", "20"])`). Which source
# addresses did the pods see, and why not 192.168.99.50?

# %%
# BEGIN SOLUTION
print(outside.run([*hit, node2.ip, str(node_port), "--count", "20"]).stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("40.4", "The NodePort answers outside the cluster, masqueraded", points=2,
                hint="the Service must be type NodePort with your node_port, and kube-proxy running") as cp:
    for node in (node1, node2):      # every pod answers, and none sees outside's own address
        cp.check(checks.command(outside, [*hit, node.ip, str(node_port), "--count", "20"],
                                stdout_contains='"errors": {}', stdout_lacks=f'"{outside_ip}"'))
    cp.check(checks.command(node2, ["iptables", "-t", "nat", "-S", "KUBE-NODEPORTS"],
                            stdout_contains=f"--dport {node_port}"))

# %% [markdown] tags=["solution-only"]
# **Why not 192.168.99.50?** The pods saw node2's addresses: `10.244.2.1` (node2's `cni0`)
# for the pods on node2, and `192.168.99.102` (node2's underlay address) for `web-1` on
# node1. kube-proxy's KUBE-EXT chain marks every NodePort packet (KUBE-MARK-MASQ) and
# KUBE-POSTROUTING masquerades it behind the address of the interface it leaves by.
# It must: a pod on node1 that saw 192.168.99.50 would answer it directly, the reply
# would not pass through node2 where the DNAT was done, and `outside` would get an
# answer from a pod address it never wrote to, and drop it.

# %% [markdown]
# ## Task 5 · kube-proxy in nftables mode (1 point)
#
# Restart kube-proxy in its nftables mode. Your Service must now be an element of the
# verdict map `service-ips` of table `ip kube-proxy` (`nft list map ip kube-proxy
# service-ips`), and still answer.

# %%
# BEGIN SOLUTION
k8s.start_proxy("nftables")
print(node1.run(["nft", "list", "map", "ip", "kube-proxy", "service-ips"]).stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("40.5", "The Service is found through the nftables verdict map", points=1,
                hint="k8s.start_proxy('nftables')") as cp:
    cp.check(checks.command(node1, ["nft", "list", "map", "ip", "kube-proxy", "service-ips"],
                            stdout_contains=f"{cluster_ip} . tcp . 80 : goto service-"))
    cp.check(checks.command(lab["client"], [*hit, cluster_ip, "80", "--count", "10"],
                            stdout_contains='"errors": {}'))
    cp.check(checks.command(lab["client"], [*hit, cluster_ip, "80", "--count", "10"],
                            stdout_contains='"count": 10, "replies": {"web-'))

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 40
#
# 1. **node1's address.** With `ipMasq` the `bridge` plugin adds a masquerade rule for
#    traffic from the pod CIDR to anything outside it, so the connection would leave
#    node1 with source 192.168.99.101 and `web-2` would see the node, not the pod. That
#    breaks the rule that pods reach each other without NAT: `web-2` could no longer
#    tell which pod called it, answer it directly, or be protected by a policy written
#    for pods, and the address `shell` sees for itself is no longer the one others see.
#    That is why the configuration sets it to false.
# 2. **Rules pointing at a stranger.** `portmap` builds on `bridge`'s result: its DNAT
#    rules send a host port to the pod's address. Were the address released first,
#    `host-local` could hand it to a new pod while those rules still existed, and the
#    host port would, for a while, lead to the wrong pod. Undoing in reverse order (the
#    last thing built is the first removed) means no plugin's work outlives what it
#    depended on.
# 3. **One namespace per pod.** A port belongs to a network namespace. The two
#    containers of `web-1` share one namespace, so only one can bind 8080; `web-1` and
#    `web-2` each have their own, with their own 8080. The namespace lives as long as
#    a process holds it: the `pause` process does, so when the application container
#    dies and restarts, it joins the same namespace, with the same `eth0` and the same
#    address, and no CNI call is needed.
# 4. **Disjoint ranges.** The controller manager hands every node its own pod CIDR from
#    `--cluster-cidr` (10.244.1.0/24 for node1, 10.244.2.0/24 for node2), and each
#    node's configuration lets `host-local` allocate only inside its own range. The
#    ranges never overlap, so no coordination is needed when a pod starts; the one
#    decision that needs the whole cluster (which node gets which range) is taken once,
#    by the control plane, when the node joins.
