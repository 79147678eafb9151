# ---
# jupyter:
#   labkit:
#     requires:
#     - dockerd
#     - root
# ---

# %% [markdown]
# # 42 · Other orchestrators: Swarm, Compose and Mesos (reading)
#
# Kubernetes (notebooks 40 and 41) is one answer to "run many containers on many hosts
# and let them find each other". This notebook reads three others against the
# networking you have built by hand earlier in the course, and runs one of them for
# real: **Docker Swarm** services, on two Docker engines of this machine (as in
# notebook 21).
#
# **Objectives.** By the end you can
#
# 1. start a Swarm service, scale it and drain a node, and see each change in the
#    service's DNS answers (`--endpoint-mode dnsrr`, which runs here);
# 2. explain Swarm's two endpoint modes, why its default (a virtual IP) and its routing
#    mesh need the kernel's IPVS, and why only `--endpoint-mode dnsrr` runs here;
# 3. say which networks a Compose file creates and how its services find each other;
# 4. place Mesos and Marathon (seed 001 §3.6, §4.6) next to the others: two-level
#    scheduling, and containers networked by the engine underneath.

# %%
import os

from labkit.docker import missing_requirements

missing = missing_requirements(["dockerd", "root"])     # root, and dockerd/unshare/nsenter
print("missing:", missing or "nothing")
# Without them, execution stops here; the saved outputs below show what every cell
# printed on a machine that has both (./course.sh start runs JupyterLab as root).
if missing:
    raise RuntimeError(f"this notebook needs {', '.join(missing)}")

# %% [markdown]
# ## 1 · Swarm: services over an overlay
#
# Two engines stand for two hosts, joined in a swarm (`docker swarm init` / `join`),
# with an attachable overlay network `appnet` (VXLAN between them, notebook 21). A Swarm
# **service** is a desired state: an image, a number of **replicas**, networks. The
# manager turns it into **tasks** (one container each) and places them on the nodes.

# %%
import time

import pandas as pd
from docker.types import EndpointSpec, ServiceMode

from labkit.docker import BASE_IMAGE, COURSE_LABEL, COURSE_VALUE
from labkit.docker.hosts import DockerHosts, scale_service

hosts = DockerHosts("42-swarm", {"node1": "192.168.99.103/24", "node2": "192.168.99.104/24"})
for host in hosts:
    host.docker                                   # each engine gets the course's offline image
hosts.swarm()                                     # docker swarm init; docker swarm join ...
appnet = hosts.overlay("appnet", subnet="10.10.9.0/24")   # docker network create -d overlay --attachable
manager = hosts["node1"].client
node_names = {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}


def tasks(service) -> pd.DataFrame:
    """docker service ps NAME: running tasks, their node and overlay address."""
    rows = []
    for t in service.tasks(filters={"desired-state": "running"}):
        addrs = [a for n in t.get("NetworksAttachments", []) for a in n.get("Addresses", [])]
        rows.append({"task": t["ID"][:10], "node": node_names.get(t.get("NodeID"), "?"),
                     "state": t["Status"]["State"], "address": ", ".join(addrs)})
    return pd.DataFrame(rows).sort_values(["node", "address"]).reset_index(drop=True)


def wait_running(service, count: int, timeout: float = 60) -> pd.DataFrame:
    end = time.monotonic() + timeout
    while True:
        table = tasks(service)
        if len(table) == count and (table["state"] == "running").all() or time.monotonic() > end:
            return table
        time.sleep(0.5)

# %% [markdown]
# `docker service create --name web --replicas 3 --network appnet --endpoint-mode dnsrr
# labkit/busybox:1 httpd -f -p 80 -h /var/www`. **Predict:** where will the three tasks run?

# %%
web = manager.services.create(BASE_IMAGE, ["httpd", "-f", "-p", "80", "-h", "/var/www"], name="web",
                              networks=["appnet"], endpoint_spec=EndpointSpec(mode="dnsrr"),
                              mode=ServiceMode("replicated", replicas=3),
                              labels={COURSE_LABEL: COURSE_VALUE})
wait_running(web, 3)

# %% [markdown]
# Spread over both nodes (Swarm's default strategy balances tasks across nodes). With
# `dnsrr`, the service name resolves to **every task's address**: Docker's embedded DNS
# server (127.0.0.11 inside each container, notebook 20) answers with the list. We ask
# from a container `probe` attached to `appnet`:

# %%
probe = hosts["node2"].run("probe", network="appnet")      # docker run --network appnet ...


def answers(name: str) -> list[str]:
    out = probe.run(["nslookup", "-type=a", name], timeout=3).stdout
    return sorted(line.split()[-1] for line in out.splitlines()
                  if line.startswith("Address") and "127.0.0.11" not in line and ":53" not in line)


print("web       ->", answers("web"))
print("tasks.web ->", answers("tasks.web"))


# %% [markdown]
# **Scale** to 5 (`docker service scale web=5`), then **drain** node2 (`docker node
# update --availability drain node2`: its tasks are stopped and rescheduled elsewhere).
# Predict the DNS answers after each step.
#
# (`scale_service` does what the CLI does: it sends the service's stored spec back with
# only the replica count changed. docker-py's own `Service.scale` sends the spec with
# the engine's defaults filled in; the manager sees a changed task template and
# replaces every task in a rolling update, which is not what scaling means.)

# %%
before = set(tasks(web)["task"])
scale_service(web, 5)                                       # docker service scale web=5
after = wait_running(web, 5)
print(after.assign(new=~after["task"].isin(before)))
print("web ->", answers("web"))

# %%
worker = next(n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == "node2")
spec = worker.attrs["Spec"]
spec["Availability"] = "drain"
worker.update(spec)                                         # docker node update --availability drain node2
time.sleep(2)
drained = wait_running(web, 5)
print(drained.assign(new=~drained["task"].isin(after["task"])))
print("web ->", answers("web"))

# %% [markdown]
# Scaling kept the three running tasks and started two more (`new`). Draining node2
# stopped its tasks and started replacements on node1, with new addresses: every task
# now runs on node1, and the name follows them. In dnsrr mode the client sees the tasks
# come and go (and must retry, or re-resolve), and connects to the tasks' own
# addresses, with no load balancer in between.
#
# ## 2 · Why no virtual IP here
#
# Swarm's default endpoint mode is `vip`: the service gets one virtual IP on the
# overlay, and **IPVS** (the kernel's layer-4 load balancer, `ip_vs`) inside every
# container's network namespace spreads connections over the tasks. Publishing a port
# adds the **routing mesh**: the `ingress` overlay, and IPVS in an `ingress_sbox`
# namespace on every node, so any node's published port reaches any task. Kubernetes'
# IPVS proxy mode uses the same kernel module.
#
# This kernel has no `ip_vs`, and no loadable modules at all:

# %%
print("/proc/net/ip_vs exists:", os.path.exists("/proc/net/ip_vs"))     # cat /proc/net/ip_vs
print("loadable modules:", os.path.exists("/proc/modules"))              # lsmod

# %% [markdown]
# A `vip` service can still be created: the manager allocates the virtual IP, the task
# starts, and the name resolves to the VIP. **Predict:** does a connection to it work?

# %%
vip = manager.services.create(BASE_IMAGE, ["httpd", "-f", "-p", "80", "-h", "/var/www"], name="vip-web",
                              networks=["appnet"], labels={COURSE_LABEL: COURSE_VALUE})
vip_tasks = wait_running(vip, 1)
print(vip_tasks)
print("vip-web ->", answers("vip-web"), "| VIP allocated:",
      [e.get("Addr") for e in manager.services.get(vip.id).attrs.get("Endpoint", {}).get("VirtualIPs", [])])
out = probe.run(["sh", "-c", "printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 vip-web 80"],
                timeout=8)                          # an HTTP request by hand, with nc
print("HEAD http://vip-web/ ->", (out.stdout or out.stderr).strip()[:80] or "no answer",
      f"(exit {out.returncode})")
where = vip_tasks["node"][0] if len(vip_tasks) and vip_tasks["node"][0] in ("node1", "node2") else "node1"
ipvs_lines = [line for line in hosts[where].log_tail(400).splitlines() if "ipvs" in line.lower()]
print(f"dockerd on {where} about IPVS:", ipvs_lines[-1][:200] if ipvs_lines else "nothing")
removed = vip.remove()                                      # docker service rm vip-web

# %% [markdown]
# The VIP is allocated and the name resolves to it, as it would anywhere, but nothing
# answers on it, and dockerd says why: it could not talk to IPVS. On a kernel with
# `ip_vs`, `ipvsadm -ln` inside a container lists the tasks behind the VIP, and the
# request above succeeds. Compare with notebook 41: kube-proxy's iptables and nftables modes do the
# same job with NAT rules instead of IPVS, which is why they run here.

# %%
web.remove()
probe.container.remove(force=True)
hosts.close()

# %% [markdown]
# ## 3 · Compose: one file, its own networks
#
# Docker Compose describes an application as services in one YAML file:
#
# ```yaml
# services:
#   web:
#     image: nginx
#     ports: ["8080:80"]
#     networks: [frontend]
#   api:
#     image: myapi
#     networks: [frontend, backend]
#   db:
#     image: postgres
#     networks: [backend]
# networks:
#   frontend: {}
#   backend: {}
# ```
#
# `docker compose -p shop up` creates, on one engine, exactly what notebook 20 built by
# hand:
#
# | Compose | what the engine creates | where you built it |
# |---|---|---|
# | `networks: frontend`, `backend` | two user-defined **bridge** networks `shop_frontend`, `shop_backend` (labels `com.docker.compose.project=shop`) | notebook 20, `docker network create` |
# | no `networks:` at all | one network `shop_default` | same |
# | service names | DNS names on those networks (embedded DNS, 127.0.0.11); `api` is reachable from `web` and from `db`, `web` and `db` cannot reach each other | notebook 20: DNS on user-defined bridges, isolation between networks |
# | `ports: ["8080:80"]` | a DNAT rule in the `DOCKER` chain, as `docker run -p` | notebook 20, section 7 |
# | `deploy:` with `docker stack deploy` | Swarm services and overlay networks | section 1 above |
#
# Compose itself is a client: it only calls the engine's API. (The `docker compose`
# plugin is not installed on this machine, which is why this section is reading.)
#
# ## 4 · Mesos and Marathon (seed 001 §3.6 and §4.6)
#
# Mesos is a **cluster resource manager**: a master (kept highly available with
# ZooKeeper) and agents ("slaves") on every machine. The master makes **resource
# offers** to *frameworks* (Hadoop, Spark, and for long-running containers **Marathon**),
# and each framework's scheduler decides what to run where: **two-level scheduling**.
# In seed 001 §4.6 three machines run ZooKeeper, mesos-master, mesos-slave and Marathon,
# all as Docker containers with `--net host`, and an application is published through
# Marathon's REST API as JSON:
#
# ```json
# {"id": "tomcat", "instances": 1, "cpus": 1, "mem": 512,
#  "container": {"type": "DOCKER",
#                "docker": {"image": "davidcaste/alpine-tomcat", "network": "BRIDGE",
#                           "portMappings": [{"containerPort": 8080, "protocol": "tcp"}]}}}
# ```
#
# On the network, Mesos adds little of its own: `"network": "BRIDGE"` is Docker's
# `docker0` with a published port (notebooks 02 and 20), `"HOST"` is the machine's own
# namespace; cross-host container traffic is left to whatever the engines use (an
# overlay, Calico, Weave: notebooks 21, 30-33). Later versions added CNI support
# (the plugins of notebook 40).
#
# | | Kubernetes | Swarm | Mesos + Marathon |
# |---|---|---|---|
# | unit | pod (shared namespace) | task (one container) | task (one container) |
# | addresses | one per pod, no NAT (CNI plugin) | one per task on each overlay | per engine: bridge + port mapping, or host |
# | service discovery | Service ClusterIP (kube-proxy NAT / IPVS), DNS | DNS: VIP (IPVS) or dnsrr | Marathon-lb / Mesos-DNS (add-ons) |
# | external traffic | NodePort, LoadBalancer | routing mesh (IPVS) on published ports | host ports through the engine |
# | control-plane state | etcd | Raft store in the managers | ZooKeeper |
#
# ## 5 · Summary
#
# * Swarm services are tasks on an overlay; the name resolves to every task (dnsrr) or
#   to one virtual IP balanced by IPVS (vip, the default). This kernel lacks IPVS, so
#   here only dnsrr works: the VIP is allocated and resolves, but nothing answers on it.
# * Compose creates per-project bridge networks on one engine; the service names are
#   DNS names on them.
# * Mesos schedules in two levels and leaves the container network to the engine.

# %% [markdown]
# ## Questions to think about
#
# 1. When node2 was drained, its two tasks were replaced by new ones on node1, with new
#    addresses, and the name followed them. A client that resolved `web` once at
#    start-up and kept the list: what happens to its connections? What would `vip`
#    mode change for that client?
# 2. `vip-web` resolved to 10.10.9.15, yet nothing answered. In `vip` mode, where would
#    the packet to the VIP have been rewritten, and by what? Compare with a ClusterIP of
#    notebook 41: what is the same idea, and what differs?
# 3. In the Compose file, can `web` reach `db`? How many interfaces does `api`'s
#    container have? What would you change so that `web` reaches `db`, and what would
#    you lose by doing it?
# 4. Seed 001's Marathon app uses `"network": "BRIDGE"`. Two instances of it, on two
#    hosts, must talk to each other. Which addresses do they use, and which of
#    Kubernetes' network rules (notebook 40) does that setup not satisfy?
#
# <details><summary>Answers (open after you have thought about them)</summary>
#
# 1. The connections to the two drained addresses fail: nothing owns them any more,
#    so new connections time out (or are refused, if another task later gets the same
#    address), until the client resolves the name again. In `dnsrr` mode the client is
#    the load balancer and must re-resolve and retry. In `vip` mode the name resolves
#    to one address that does not change while the service exists; IPVS behind it is
#    updated by the engine as tasks come and go, so a client keeping the address keeps
#    working.
# 2. On the client's own node, before the packet enters the overlay: the engine marks
#    packets to the VIP and hands them to IPVS, which picks a task (round robin) and
#    rewrites the destination. The same idea as a ClusterIP: a virtual address that no
#    socket owns, and a kernel on the client's side that sends each new connection to
#    one backend and remembers the choice, so no central balancer carries the traffic.
#    The differences: kube-proxy writes NAT rules (iptables or nftables) and picks at
#    random; Swarm uses IPVS, a load balancer with its own connection table and
#    scheduling algorithms. Without `ip_vs` in this kernel the VIP has nothing behind
#    it, while kube-proxy's rules ran.
# 3. No: `web` is only on `shop_frontend` and `db` only on `shop_backend`, two separate
#    bridges. `web`'s packet to `db` leaves by its default route to the host, where
#    Docker's `DOCKER-ISOLATION` chains drop traffic from one bridge network to another
#    (notebook 20); the name `db` does not even resolve on `shop_frontend`. `api` has
#    two interfaces, one on each network, but it does not route between them (a
#    container does not forward packets). Adding `backend` to `web`'s networks lets `web` reach `db` by
#    name; it also puts the public-facing service on the database's network, which is
#    exactly the separation the two networks were there to give.
# 4. Each instance's own address is on its host's `docker0` (172.17.0.0/16 on every
#    host), private to that host and repeated on the others, so they cannot use it.
#    They talk through the published ports: the other host's address and the mapped
#    host port, which Marathon chose and must tell them (Mesos-DNS or Marathon-lb).
#    Traffic is NATed on the way in (the `DOCKER` chain's DNAT) and on the way out
#    (masquerade): the rule "pods reach each other without NAT, and see the address
#    others see" does not hold.
# </details>
