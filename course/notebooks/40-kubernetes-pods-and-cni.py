# %% [markdown]
# # 40 · Kubernetes networking: pods and CNI plugins
#
# The Docker notebooks (20, 21) showed one engine wiring its containers its own way
# (Docker's CNM: sandbox, endpoint, network). Kubernetes does not wire pods itself: the
# kubelet asks a container runtime for a *pod sandbox*, and the runtime hands the
# network work to **CNI plugins**, small programs called with a few environment
# variables and a JSON document. Here the plugins are the real ones (Debian's
# `containernetworking-plugins`, in `/usr/lib/cni`); the kubelet and the runtime are
# played by labkit, calling them exactly as containerd does.
#
# **Objectives.** By the end you can
#
# 1. say what a pod is on the network: one namespace, held by a *pause* process, shared
#    by all its containers (one `localhost`, one port space);
# 2. call a CNI plugin by hand (ADD, CHECK, DEL) and read its JSON result and its errors;
# 3. explain a *configuration list*: plugins run in order, each given the previous
#    result (`prevResult`), and DEL runs them in reverse;
# 4. follow Kubernetes' network rules (seed 004): every pod gets its own IP, pods reach
#    each other across nodes **without NAT**, and the address a pod sees for itself is
#    the one others see;
# 5. put CNM and CNI side by side, and map the control plane's ports onto the lab.
#
# Sources: seed 004 (Kubernetes networking: the four kinds of traffic, its rules, its
# ports), seed 001 §3.1.4 (CNM vs CNI) and §3.7, and the CNI specification.

# %% [markdown]
# ## 1 · The plan
#
# The cluster layer of notebook 30 gives us three machines on one network (seed 001's
# VirtualBox host-only network): `host` (the control plane, running the real etcd),
# and two workers. Each worker gets a **pod CIDR** of its own, as the controller manager
# hands them out (`--cluster-cidr=10.244.0.0/16`, one /24 per node):
#
# ```
#              underlay 192.168.99.0/24 (switch "underlay")
#      ┌──────────────────┬───────────────────────────┬───────────────────────────┐
#   host .100          node1 .101                   node2 .102
#   etcd :2379     cni0 10.244.1.1/24              cni0 10.244.2.1/24
#                   ├─ web-1  10.244.1.2           ├─ web-2  10.244.2.2
#                   └─ shell  10.244.1.3           │
# ```

# %%
import json
import sys

import pandas as pd

from labkit import Lab, to_frame
from labkit.capture import Capture
from labkit.cluster import Cluster
from labkit.kubernetes import Attachment, CniError, Kubernetes

lab = Lab("k8s-pods")
cluster = Cluster(lab)                 # host .100, node1 .101, node2 .102 on the underlay
etcd = cluster.start_etcd()            # the control plane's store (real etcd 3.4)
k8s = Kubernetes(cluster.nodes)        # a kubelet per worker, pod CIDRs 10.244.1.0/24, .2.0/24
k8s

# %% [markdown]
# Each node now has the CNI configuration a real node keeps in `/etc/cni/net.d/`. The
# runtime reads the file with the lowest name and runs its plugins in order.

# %% tags=["nbval-check-output"]
node1 = cluster["node1"]
print(node1.read_text("/etc/cni/net.d/10-labkit.conflist"))   # cat /etc/cni/net.d/10-labkit.conflist

# %% [markdown]
# Read it before going on: the `bridge` plugin makes the node's bridge `cni0`, gives it
# the gateway address (`isGateway`), and delegates the addresses to its `ipam` plugin,
# `host-local`, which hands out the node's pod CIDR and keeps its leases as files in
# `dataDir`. `portmap` then publishes host ports (`hostPort` in a pod spec). `ipMasq`
# is false: pod traffic inside the cluster is never NATed.

# %% [markdown]
# ## 2 · A CNI call by hand
#
# A plugin is an executable. The runtime runs it with:
#
# | variable | meaning |
# |---|---|
# | `CNI_COMMAND` | `ADD`, `CHECK`, `DEL` or `VERSION` |
# | `CNI_CONTAINERID` | the sandbox's ID |
# | `CNI_NETNS` | the path of the network namespace to wire (`/run/netns/...`) |
# | `CNI_IFNAME` | the interface to create inside it (`eth0`) |
# | `CNI_ARGS` | extra `KEY=VALUE;...` (Kubernetes passes the pod's namespace and name) |
# | `CNI_PATH` | where to find other plugins (the IPAM plugin, here `/usr/lib/cni`) |
#
# and the network configuration as JSON on stdin. It answers with a JSON **result**
# on stdout, or a JSON **error** and a non-zero exit status.
#
# We make an empty namespace `by-hand` (`ip netns add by-hand`) and ask the `bridge`
# plugin to wire it. **Predict:** what address will it get, and which interfaces will
# the result list?

# %%
lab.add_host("by-hand")                                       # ip netns add by-hand
conf = {"cniVersion": "1.0.0", "name": "handmade", "type": "bridge", "bridge": "cni-hand",
        "isGateway": True,
        "ipam": {"type": "host-local", "subnet": "10.99.0.0/24",
                 "dataDir": node1.path("/var/lib/cni/networks")}}
by_hand = Attachment(container_id="by-hand-0001", netns="/run/netns/by-hand", ifname="eth0",
                     args={"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "by-hand"})
runtime = k8s.kubelet("node1").cni
answer = runtime.exec_plugin("bridge", "ADD", conf, by_hand)
print(runtime.calls[-1].command_line())

# %% tags=["nbval-check-output"]
print(json.dumps({k: v for k, v in answer.items() if k != "interfaces"}, indent=2))
[("in the sandbox: " if "sandbox" in i else "on the node: ")
 + ("veth..." if i["name"].startswith("veth") else i["name"]) for i in answer["interfaces"]]

# %% [markdown]
# Three interfaces: the bridge `cni-hand` on the node, the node's end of the veth, and
# `eth0` in the sandbox (the one with a `sandbox` key). `host-local` chose the first
# free address and recorded it as a file named after it:

# %% tags=["nbval-check-output"]
print(node1.run(["ls", node1.path("/var/lib/cni/networks/handmade")]).stdout)   # ls /var/lib/cni/networks/handmade
[(a.ifname, a.cidr) for a in lab["by-hand"].addresses()]                           # ip -n by-hand addr

# %% [markdown]
# **CHECK** asks the plugin whether what it made is still there; it needs the result of
# ADD (`prevResult`). **DEL** undoes it. Then the namespace is empty again and the lease
# file is gone (the bridge stays, as on a real node: other sandboxes may use it).

# %%
runtime.exec_plugin("bridge", "CHECK", {**conf, "prevResult": answer}, by_hand)
runtime.exec_plugin("bridge", "DEL", conf, by_hand)
print([i.ifname for i in lab["by-hand"].interfaces()])
print(node1.run(["ls", node1.path("/var/lib/cni/networks/handmade")]).stdout)

# %% [markdown]
# **Errors are the plugin's own.** Predict what happens with `cniVersion` 2.0.0, and
# with a `CNI_ARGS` key the plugin does not know (without `IgnoreUnknown=1`):

# %% tags=["nbval-check-output"]
for bad_conf, bad_args in (({**conf, "cniVersion": "2.0.0"}, by_hand.args),
                           (conf, {"K8S_POD_NAME": "by-hand"})):
    try:
        runtime.exec_plugin("bridge", "ADD", bad_conf,
                            Attachment("by-hand-0002", "/run/netns/by-hand", "eth0", bad_args))
    except CniError as err:
        print(f"code {err.code} ({err.meaning}): {err.msg}\n    {err.details}")

# %% [markdown]
# Code 1 is the specification's "incompatible CNI version" (these plugins speak up to
# 1.0.0). Code 999 is libcni's "internal error": the plugins' common skeleton (`skel`)
# wraps any plain error a plugin returns in it, here the unknown `CNI_ARGS` key (codes
# 100 and up are left to plugins for errors of their own). A runtime shows these messages in the
# pod's events (`kubectl describe pod`): learning to read them is most of debugging CNI.

# %%
lab.remove_node("by-hand")                                   # ip netns del by-hand
node1.run(["ip", "link", "del", "cni-hand"], check=True)     # the bridge plugin leaves its bridge

# %% [markdown]
# ## 3 · Pods: a sandbox and its containers
#
# `run_pod` does what the kubelet asks the runtime to do for a pod: make a network
# namespace, start the **pause** process in it, call CNI ADD (first `loopback`, then
# the pod network's list: `bridge`, then `portmap`), then start the containers. Here
# each pod's one container is a small echo server on port 8080 that answers with the
# pod's name and the address it saw the client come from.

# %%
web1 = k8s.run_pod("web-1", node="node1", labels={"app": "web"})
web2 = k8s.run_pod("web-2", node="node2", labels={"app": "web"})
shell = k8s.run_pod("shell", node="node1", echo_port=None)

# %% tags=["nbval-check-output"]
pd.DataFrame([{"pod": p.name, "node": p.kubelet.name, "ip": p.ip, "gateway": p.result.gateway,
           "netns": p.netns} for p in (web1, web2, shell)])

# %% [markdown]
# The plugin calls the runtime made for `web-1`, in order. Look at `prevResult`: the
# second plugin of the list was given the first one's result.

# %% tags=["nbval-check-output"]
calls = [c for c in k8s.kubelet("node1").cni.calls if c.env.get("CNI_NETNS") == web1.netns]
pd.DataFrame([{"command": c.command, "plugin": c.plugin, "network": c.stdin["name"],
           "pod (from CNI_ARGS)": c.env["CNI_ARGS"].split(";")[2],
           "prevResult": "ips" in c.stdin.get("prevResult", {})} for c in calls])

# %% [markdown]
# The pause process holds the pod's namespace while containers come and go. Its
# containers share that namespace: the same interfaces, the same `localhost`, the same
# ports. **Predict:** a second container in `web-1` tries to listen on 8080 as well.

# %%
print(web1.pause)                                                  # ps: the pause process
second = web1.start_container("second", [sys.executable, "-m", "labkit.kubernetes.echo",
                                         "serve", "--port", "8080", "--name", "second"])
second.wait(timeout=30)
print("exit status", second.returncode, "|", second.stderr_text().strip())
print(web1.hit("127.0.0.1", 8080))                                 # curl localhost:8080 from inside the pod

# %% [markdown]
# `EADDRINUSE`: one port space per pod. Containers of a pod talk over `localhost`, and
# must agree on their ports, like processes on one machine.

# %% [markdown]
# ## 4 · Pod to pod, on a node and across nodes, without NAT
#
# On one node, pods share the bridge `cni0`. Across nodes, each node must know where
# the other node's pod CIDR is. An overlay (Flannel, notebook 30) or routes (Calico,
# notebook 31) does that; here we add plain routes between the machines, "host-gw"
# style: `ip route add 10.244.2.0/24 via 192.168.99.102` on node1 and its mirror.
# (`Kubernetes.on_flannel(flannel)` builds the same pods over notebook 30's Flannel
# instead: each node's pod CIDR is then its lease from `/run/flannel/subnet.env`, as
# the flannel CNI plugin reads it, and `flannel.1` carries the traffic.)

# %% tags=["nbval-check-output"]
k8s.route_pod_cidrs()
to_frame(node1.routes("inet"))[["dst", "gateway", "dev"]]            # ip -n node1 route

# %% [markdown]
# The route to 10.244.2.0/24 via node2 is the one just added. The first one,
# `10.96.0.0/12 dev eth1`, was there before: it covers the Service range of notebook 41.
# A connection opened by the node itself to a Service address is routed before
# kube-proxy's NAT rewrites it, and with no route at all the kernel refuses it at once
# (`Network is unreachable`). Real nodes have a default route that covers the range;
# these machines have none, so labkit adds this one when it sets up each kubelet.

# %% [markdown]
# **Predict:** `shell` (10.244.1.3) connects to `web-2` on node2. Which source address
# will `web-2` see: the pod's, or node1's 192.168.99.101?

# %% tags=["nbval-check-output"]
with Capture(cluster["node2"].node, "eth1", filter="tcp port 8080") as cap:
    reply = shell.hit(web2.ip, 8080, count=2)
print("web-2 saw the client as", list(reply["sources"]))
cap.table()[["src_ip", "dst_ip", "dport"]].head(1)           # the SYN, as it crossed the underlay

# %% [markdown]
# The pod's own address, end to end, even on the wire between the nodes: Kubernetes'
# rule that pods reach each other without NAT, and that the IP a pod sees for itself is
# the IP others see. (Docker's default bridge breaks that rule: a container leaving its
# host is masqueraded behind the host's address.)

# %% [markdown]
# ## 5 · CNM and CNI side by side
#
# | | Docker's CNM (libnetwork) | CNI (Kubernetes, Podman, containerd) |
# |---|---|---|
# | objects | **sandbox** (the namespace), **endpoint** (a veth), **network** (a bridge, an overlay) | a network **configuration** (JSON) and an **attachment** (container ID + netns + ifname) |
# | who calls | the Docker engine, through its driver API: the built-in drivers (bridge, overlay, macvlan) run inside dockerd, only remote drivers are separate plugin daemons | any runtime, by **executing** a binary per operation |
# | operations | create network, create endpoint, join, leave, delete ... | `ADD`, `CHECK`, `DEL`, `VERSION` |
# | state | kept by the engine and its key-value store | kept by the plugins (host-local's lease files) and the runtime's result cache |
# | chaining | one driver per network | a list of plugins, each given `prevResult` (bridge, then portmap, ...) |
# | in this course | notebooks 20, 21: `docker network create`, the overlay driver | this notebook: `/usr/lib/cni/*` called by hand and by the kubelet |

# %% [markdown]
# ## 6 · The control plane's ports, in this lab
#
# Seed 004 lists the ports a cluster listens on: the control plane's on the control-plane
# machine (`host` here), the kubelet's and the NodePorts on every worker. In this lab,
# etcd is real (a process in `host`, listening on 2379 for clients and 2380 for peers);
# the other components are played by labkit inside the notebook and the machines, so
# nothing listens on their ports. `ss -ltn` on `host` and on `node1` shows which is which:

# %% tags=["nbval-check-output"]
def listening(machine) -> set[int]:
    out = machine.run(["ss", "-ltnH"]).stdout                     # ss -ltn on that machine
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


on = {"host": listening(cluster["host"]), "node1": listening(node1)}
rows = [("host", "kube-apiserver", "6443"), ("host", "etcd, clients", "2379"),
        ("host", "etcd, peers", "2380"), ("host", "kube-controller-manager", "10257"),
        ("host", "kube-scheduler", "10259"), ("node1", "kubelet", "10250"),
        ("node1", "NodePort Services", "30000-32767")]
pd.DataFrame([{"machine": m, "component": c, "port(s)": p,
               "listening in the lab": any(int(p.split("-")[0]) <= port <= int(p.split("-")[-1])
                                           for port in on[m])} for m, c, p in rows])

# %% [markdown]
# NodePorts are not sockets at all: kube-proxy answers them with NAT rules, the subject
# of notebook 41.
#
# ## 7 · Summary
#
# * A pod is one network namespace, pinned by the runtime and held by a pause process;
#   its containers share it.
# * The network comes from CNI plugins: executables given `CNI_*` variables and JSON,
#   answering with a result or an error; a list runs in order with `prevResult`, and in
#   reverse on DEL.
# * Pods on different nodes talk with their own addresses: routes (or an overlay) carry
#   each node's pod CIDR; no NAT.

# %% [markdown]
# ## Questions to think about
#
# 1. `web-2` saw `shell` as 10.244.1.3. Predict what it would see if node1's
#    configuration list said `"ipMasq": true`, and which of Kubernetes' network rules
#    that would break.
# 2. ADD ran `bridge`, then `portmap`; DEL runs them the other way round. What could go
#    wrong if DEL released the pod's veth and address before `portmap` removed its
#    rules?
# 3. A second container in `web-1` could not listen on 8080, yet `web-1` and `web-2`
#    both listen on 8080 without trouble. Why? And what keeps `web-1`'s address when
#    its only application container crashes and is restarted?
# 4. `host-local` keeps its leases as files on each node and never talks to the other
#    nodes. What prevents node1 and node2 from giving two pods the same address?
#
# Exercise 40 ([exercises/40-kubernetes.ipynb](../exercises/40-kubernetes.ipynb)) runs
# pods and a Service on a cluster of your own addresses; its solution answers these
# questions. Its tasks 2 to 5 (a Service, kube-proxy, conntrack, a NodePort, nftables)
# need notebook 41 ([41-kubernetes-services.ipynb](41-kubernetes-services.ipynb)): do
# it after that one.

# %%
lab.close()
