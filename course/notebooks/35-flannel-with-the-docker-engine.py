# ---
#   labkit:
#     requires:
#     - dockerd
#     - root
# ---

# %% [markdown]
# # 35 · Flannel and the real Docker engine
#
# In notebook 30 labkit made each node's `docker0` the way `dockerd --bip --mtu` would.
# Here each node runs Debian's **real `dockerd`**, started as seed 001 §4.3.5 configures
# it on its hosts, with the subnet and MTU that flanneld wrote into
# `/run/flannel/subnet.env` (`--bip`, `--mtu`), plus `--ip-masq=false` as on the CoreOS
# host of §3.2.2.
#
# **Objectives.**
#
# 1. derive dockerd's options from `subnet.env` as flannel's `mk-docker-opts.sh` does
#    (`--bip`, `--mtu`, and `--ip-masq=false` when flanneld masquerades itself);
# 2. start one real engine per node and see Docker take the lease: `docker0`, the
#    `bridge` network's subnet, the containers' addresses and MTU;
# 3. follow a ping from a Docker container on node1 to one on node2, inside VXLAN VNI 1,
#    with the container's own address (no NAT on the way);
# 4. read Docker's and flanneld's iptables rules side by side: who forwards, who
#    masquerades.
#
# **What is real here.** etcd, the kernel, the captures and every `dockerd`, `containerd`
# and container; flanneld is played by `python -m labkit.flannel.agent` as in notebook 30.
# Each engine lives in its node's network stack (`nsenter --net`), with its own process
# tree and a tmpfs for its images, and ends when the lab closes. This needs root and the
# `docker.io` package (`./course.sh start` installs it).
#
# ```
#                  underlay 192.168.99.0/24
#     ┌────────────────────────┬──────────────────────────────┬──────────────────────────────┐
#  eth1 .100                 eth1 .101                      eth1 .102
#   host: etcd :2379         node1: flanneld + dockerd      node2: flanneld + dockerd
#                            flannel.1 10.4.X.0/32          flannel.1 10.4.Y.0/32
#                            docker0 10.4.X.1/24 ─ c1       docker0 10.4.Y.1/24 ─ c2
# ```

# %%
import os
import shutil

from labkit.docker.machine import engine_status

ok, why = engine_status()
print("root:", os.geteuid() == 0, "| dockerd:", shutil.which("dockerd") or "missing")
if not ok:
    raise PermissionError(f"this notebook starts real Docker engines: {why}")

# %% [markdown]
# ## 1 · The cluster and flannel, as in notebook 30
#
# This time flanneld runs with `--ip-masq` (as on the seed's CoreOS hosts): it
# masquerades what leaves the flannel network, and writes `FLANNEL_IPMASQ=true`.

# %%
import pandas as pd

from labkit import Lab
from labkit.cluster import Cluster
from labkit.flannel import Flannel

lab = Lab("flannel-docker")
cluster = Cluster(lab)                           # host .100 (etcd), node1 .101, node2 .102
host, node1, node2 = cluster.machines
cluster.start_etcd()
flannel = Flannel(cluster, prefix="/docker-test/network")
flannel.configure("10.4.0.0/16", backend="vxlan")   # etcdctl put /docker-test/network/config '{...}'
flannel.start_all(ip_masq=True)                  # flanneld -etcd-prefix=/docker-test/network -ip-masq
flannel.wait_converged()
print(node1.read_text("/run/flannel/subnet.env"))   # node1$ cat /run/flannel/subnet.env

# %% [markdown]
# ## 2 · dockerd's options, from subnet.env
#
# **Predict.** Which options will Docker on node1 get, and why would one of them switch
# a Docker feature *off*?

# %%
for node in cluster.nodes:
    print(node.name, " ".join(flannel.docker_opts(node)))   # mk-docker-opts.sh -> DOCKER_OPTS

# %% [markdown]
# `--bip` gives `docker0` the **.1** of the lease (the containers' gateway) and tells
# Docker which addresses to hand out; `--mtu` makes every container interface 1450, so
# nothing a container sends is too big for `flannel.1`. `--ip-masq=false` is there
# because flanneld masquerades already: Docker's own rule would hide containers behind
# the node even on their way to *other nodes' containers*.
#
# Start the engines (`systemctl restart docker` after editing `/etc/docker/daemon.json`,
# on a real host). Seed 001 §3.2.2 shows the result with `ps aux | grep docker`:

# %%
engines = {node.name: flannel.start_docker(node) for node in cluster.nodes}
print(" ".join(engines["node1"].dockerd_argv()))            # node1$ ps -o args -C dockerd

# %% [markdown]
# (`--host`, `--data-root` and `--exec-root` keep each engine's socket and files apart
# from this machine's own Docker; the last options are flannel's.)

# %% [markdown]
# ## 3 · Docker takes the lease
#
# **Predict.** What subnet does Docker's default `bridge` network have on each node,
# and what address will the first container get?

# %%
rows = []
for name, engine in engines.items():
    subnet = engine.cli("network", "inspect", "bridge", "--format",          # docker network inspect bridge
                        "{{(index .IPAM.Config 0).Subnet}} gw {{(index .IPAM.Config 0).Gateway}}")
    rows.append({"node": name, "FLANNEL_SUBNET": flannel.subnet_env(name)["FLANNEL_SUBNET"],
                 "docker network inspect bridge": subnet.stdout.strip()})
pd.DataFrame(rows)

# %%
c1 = engines["node1"].run("c1")                  # docker -H node1 run -d --name c1 busybox sleep ...
c2 = engines["node2"].run("c2")
print("c1", c1.ip(), "| c2", c2.ip())
print(engines["node1"].cli("exec", "c1", "ip", "addr", "show", "eth0").stdout)   # docker exec c1 ip addr
print(node1.run(["ip", "-br", "addr"]).stdout)                                    # node1$ ip -br addr

# %% [markdown]
# `dockerd` made `docker0` in node1's own stack, next to `flannel.1`: the .1 of the lease
# on the bridge, the .0 on the VXLAN device. The container's `eth0` has MTU 1450.

# %% [markdown]
# ## 4 · A ping between Docker containers on two hosts
#
# **Predict.** A capture on node2's card while c1 pings c2: which port and VNI, and which
# *inner* source address — c1's, or node1's?

# %%
with node2.capture("eth1", filter="udp port 8472") as cap:   # node2$ tcpdump -i eth1 udp port 8472
    print(c1.ping(c2.ip(), count=2))                         # docker exec c1 ping -c 2 10.4.Y.2
table = cap.table()
table[["src_ip", "dst_ip", "dport", "vni", "inner_src_ip", "inner_dst_ip", "stack"]]

# %% tags=["nbval-check-output"]
request = table[table["inner_dst_ip"] == c2.ip()]
print("VNI:", sorted({int(v) for v in request["vni"]}), "| port:", sorted({int(p) for p in request["dport"]}))
print("inner source is c1's own address:", set(request["inner_src_ip"]) == {c1.ip()})

# %% [markdown]
# ## 5 · Two programs writing one firewall
#
# Both Docker and flanneld program iptables on each node. **Predict:** whose rules come
# first in `FORWARD`, and is there any `MASQUERADE` of Docker's in `POSTROUTING`?

# %%
print(node1.run(["iptables", "-S", "FORWARD"]).stdout)                 # node1$ iptables -S FORWARD
print(node1.run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).stdout)

# %% [markdown]
# Docker inserted its chains (`DOCKER-USER`, `DOCKER-ISOLATION-STAGE-1`, the `docker0`
# rules) at the top of `FORWARD` when it started, above flanneld's `FLANNEL-FWD`, which
# accepts anything from or to 10.4.0.0/16. Traffic from another node's container comes in
# on `flannel.1`, is not `RELATED,ESTABLISHED` the first time, finds no published port
# in `DOCKER`, and reaches `FLANNEL-FWD`. On a host where Docker also turned the
# `FORWARD` policy to `DROP` (it does when it had to switch forwarding on itself),
# `FLANNEL-FWD` is what lets that traffic through.
#
# In `POSTROUTING` only `FLANNEL-POSTRTG` masquerades, and it leaves traffic inside
# 10.4.0.0/16 alone: that is why node2 saw c1's own address.

# %% [markdown]
# ## 6 · Summary
#
# * flanneld decides the subnet; Docker is told through `subnet.env`:
#   `--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU`, and `--ip-masq=false` when flanneld
#   masquerades.
# * The real `dockerd` then builds what notebook 30 built by hand: `docker0` with the
#   .1, containers in the lease, MTU 1450; the data path between hosts is flannel's.
# * Two programs share the node's iptables; their order and their masquerading decide
#   whether container addresses survive the trip.
#
# Next: notebook 40, Kubernetes pods and CNI, where the container runtime asks a plugin
# for the network instead of being told at start.

# %% [markdown]
# ## Questions to think about
#
# 1. Suppose flanneld had run *without* `--ip-masq` (`FLANNEL_IPMASQ=false`), so Docker
#    kept its default masquerading. Which rule would Docker add to `POSTROUTING`, and
#    what inner source address would node2 see in §4?
# 2. node2's flanneld restarts and, its old lease having expired meanwhile, gets a
#    different subnet. What must happen to node2's Docker engine, and to the containers
#    already running there?
# 3. Why does a container's MTU have to be set by Docker (`--mtu`) at all? What would a
#    container with MTU 1500 experience when it sends a 1500-byte packet with DF set to
#    c2?
#
# <details><summary>Answers (open after you have thought about them)</summary>
#
# 1. `-A POSTROUTING -s 10.4.X.0/24 ! -o docker0 -j MASQUERADE`: everything leaving the
#    node's containers other than through `docker0` is rewritten to the address of the
#    interface it leaves by. c1's ping to c2 leaves through `flannel.1`, so node2 would
#    see **10.4.X.0** (node1's `flannel.1`) as the source, not c1's 10.4.X.2. Pings still
#    work, but c2 cannot tell which container talked to it, and policies based on source
#    addresses break. That is why the CoreOS host of seed 001 §3.2.2 runs Docker with
#    `--ip-masq=false`; the §4.3 hosts (`FLANNEL_IPMASQ=false`) are in this question's
#    situation.
# 2. Docker reads `--bip` only when it starts: the engine must be restarted with the new
#    options, which recreates `docker0` with the new .1. Containers keep their old
#    addresses until they are restarted too, and meanwhile no node routes the old subnet
#    to node2 any more. This is why flanneld tries hard to get its previous subnet back
#    (it reads it from `subnet.env` and asks for it first).
# 3. Because nothing else tells the container. With MTU 1500 the container would send
#    1500-byte packets; `flannel.1` can take only 1450 once VXLAN's 50 bytes are added,
#    so the node drops a packet with DF set and answers with ICMP "fragmentation needed"
#    (MTU 1450); the container's kernel learns the path MTU and retries smaller. Without
#    DF the node fragments. Either way the first big packets are lost or split, and where
#    ICMP is filtered a TCP connection can hang once it sends full-size segments.
# </details>

# %%
lab.close()                                      # stops both engines first, then the lab
from labkit.docker.hosts import running_hosts

print("engines of this lab still running:",
      [h["name"] for h in running_hosts() if h["session"].startswith(f"{lab.name[:12]}.")])
