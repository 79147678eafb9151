# ---
# jupyter:
#   labkit:
#     requires:
#     - docker
#     - root
# ---

# %% [markdown]
# # 20 · Docker networking with the real engine
#
# In notebook 02 ([The Linux bridge as `docker0`](02-bridge-as-docker0.ipynb)) you built
# `docker0` by hand: a Linux bridge with the address 172.17.0.1/16, one veth pair per
# "container", a default route through the bridge, a MASQUERADE rule for the way out and
# a DNAT rule for a published port. Here the real
# Docker engine builds the same things for you. You drive it from Python with
# **docker-py** (the library behind many Docker tools; each call is the `docker` command
# shown in the comment beside it), and you look at what it built with the **same labkit
# tools** as in the kernel labs: interfaces, routes, bridge ports, captures.
#
# **Objectives.** By the end you can
#
# 1. name Docker's three default networks and say what each one gives a container;
# 2. read `docker network inspect`: the IPAM block, the gateway, each container's MAC and address;
# 3. create a user-defined bridge, see that networks isolate containers, and join them with `docker network connect`;
# 4. explain why names resolve on user-defined networks and not on the default bridge, and what `--link` does instead;
# 5. publish a port and find the DNAT rule Docker wrote for it;
# 6. point at `docker0`, its veths and its NAT rules and say which hand-made object of notebook 02 each one is.
#
# Sources: the UPV thesis, section 3.1 (default and custom networks, `--link`) and the UPC
# thesis, sections 3.2 and 4.2 (the four network types, the `bridge_test` walk-through).
#
# **Address plan** (what you will have built by the end of section 5):
#
# ```
#                          this machine (the "host")
#    docker0  172.17.0.1/16                           br-<id>  172.18.0.1/16  = network bridge_test
#      |veth     |veth       |veth                      |veth               |veth
#     test      other        web:eth0                   db                  web:eth1
#   172.17.0.2 172.17.0.3  172.17.0.4                 172.18.0.2          172.18.0.3
# ```
#
# This notebook needs a running Docker engine and root (to look inside the containers'
# network namespaces). The first cell checks both.

# %%
import os
from labkit.docker import check

engine = check()      # docker version
display(engine)
# Everything below needs the engine and root. Without them execution stops here, and the
# outputs saved in this notebook show what each cell printed on a machine that has both.
engine.raise_if_unreachable()
if os.geteuid() != 0:
    raise PermissionError("looking inside containers' network namespaces needs root: "
                          "start JupyterLab with ./course.sh start")

# %% [markdown]
# ### Setup
#
# `DockerLab` labels every container and network this notebook creates
# (`io.labkit.course=container-networking-labs`, `io.labkit.session=20-docker-networks`),
# removes what an earlier, interrupted run left behind, and builds the course image
# `labkit/busybox:1` if it is missing. No image registry is needed: the image is a
# statically linked busybox from Debian, packed into a tarball and given to
# `docker import`. It holds `sh`, `ping`, `ip`, `nc`, `wget`, `httpd`, `nslookup` and
# about 300 other small tools.

# %%
import json
import shutil
import tempfile
import urllib.request
from pathlib import Path

import pandas as pd

from labkit import to_frame
from labkit.docker import BASE_IMAGE, DockerLab, gateway_of, network_summary, peer_interface

CAPTURES = Path(tempfile.mkdtemp(prefix="labkit-20-"))

dl = DockerLab("20-docker-networks")   # docker ps -a --filter label=io.labkit.session=20-docker-networks
client = dl.client                     # a docker.DockerClient: the API the docker command uses
host = dl.host()                       # this machine's own network namespace, as a labkit Node
image = client.images.get(BASE_IMAGE)  # docker image inspect labkit/busybox:1
print(BASE_IMAGE, image.short_id, image.labels["io.labkit.image"])

# %% [markdown]
# ## 1 · The three default networks
#
# **Predict.** A freshly installed engine already has some networks, before you create
# any. How many, and what are they called?

# %% tags=["nbval-check-output"]
# docker network ls --filter name=... (only the three built-in ones)
defaults = pd.DataFrame([{"NAME": n.name, "DRIVER": n.attrs["Driver"], "SCOPE": n.attrs["Scope"]}
                         for n in client.networks.list() if n.name in ("bridge", "host", "none")])
defaults.sort_values("NAME").reset_index(drop=True)

# %% [markdown]
# The engine creates them when it starts, and they cannot be removed:
#
# * **bridge** (driver `bridge`): the Linux bridge `docker0`. A container started without
#   `--net` lands here;
# * **host** (driver `host`): no network namespace of its own: the container uses the host's;
# * **none** (driver `null`): a network namespace with only loopback.
#
# `SCOPE` is `local`: these networks exist on this engine only. Notebook 21 shows a
# network whose scope spans several machines.

# %% [markdown]
# ## 2 · `--net=none`: loopback only
#
# **Predict.** Which interfaces does a container started with `--net=none` have?

# %% tags=["nbval-check-output"]
# docker run -d --name lonely --net=none labkit/busybox:1 sleep 86400
lonely = dl.run("lonely", network="none")
lonely_ns = dl.netns(lonely)    # nsenter --net --target $(docker inspect -f '{{.State.Pid}}' lonely)
[i.ifname for i in lonely_ns.interfaces()]     # ip -j link, in the container's namespace

# %% [markdown]
# `dl.netns(...)` gives the container's network namespace as a labkit `Node`, the same kind
# of object as a host of a kernel lab: its methods run the host's own `ip`, `ping` and
# capture tools *inside the container's namespace*, so the image needs none of them.
# The container's own busybox agrees:

# %% tags=["nbval-check-output"]
print(lonely.run("ip -4 addr").stdout)     # docker exec lonely ip -4 addr

# %% [markdown]
# Such a container cannot talk to anything but itself: useful for jobs that must not
# use the network, or as a blank namespace to be wired by hand later (what the
# `pipework` tool in the UPV thesis does).

# %% [markdown]
# ## 3 · `--net=host`: the host's own stack
#
# **Predict.** With `--net=host`, does the container get an `eth0` of its own? What happens
# when two such containers want the same port?

# %% tags=["nbval-check-output"]
# docker run -d --name hosted --net=host labkit/busybox:1 sleep 86400
hosted = dl.run("hosted", network="host")
same = os.stat(f"/proc/{hosted.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
print("same network namespace as the host:", same)
print("same interfaces as the host:",
      sorted(i.ifname for i in dl.netns(hosted).interfaces()) == sorted(i.ifname for i in host.interfaces()))

# %% [markdown]
# No namespace, no veth, no NAT: the fastest path, and no isolation at all. Ports are
# shared with the host and with every other host-mode container. Two web servers that
# both want port 18080 (on loopback, so nothing is exposed outside this machine):

# %%
import time
import urllib.error


def fetch(url: str, seconds: float = 10.0) -> str:
    """``curl URL``, waiting up to ``seconds`` for a server that is still starting."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5).read().decode()
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

# %% tags=["nbval-check-output"]
# docker run -d --name web1 --net=host labkit/busybox:1 httpd -f -p 127.0.0.1:18080 -h /var/www
web1 = dl.run("web1", "httpd -f -p 127.0.0.1:18080 -h /var/www", network="host")
print(fetch("http://127.0.0.1:18080/"))                                                # curl

# %% tags=["nbval-check-output"]
# docker run -d --name web2 --net=host labkit/busybox:1 httpd -f -p 127.0.0.1:18080 -h /var/www
web2 = client.containers.run(BASE_IMAGE, "httpd -f -p 127.0.0.1:18080 -h /var/www", name="web2",
                             network_mode="host", labels=dl.labels, detach=True)
print("exit status:", web2.wait(timeout=10)["StatusCode"])     # docker wait web2
print(web2.logs().decode().strip())                             # docker logs web2

# %% [markdown]
# ## 4 · The default bridge
#
# **Predict.** The first container on the default bridge: which address does it get, and
# which MAC address? Which default gateway?

# %%
# docker run -itd --name=test labkit/busybox:1      (the UPC thesis' "test" container)
test = dl.run("test")
bridge = client.networks.get("bridge")               # docker network inspect bridge
print(json.dumps({k: bridge.attrs[k] for k in ("Name", "Driver", "Scope", "IPAM", "Options")},
                 indent=2))

# %% [markdown]
# `com.docker.network.bridge.name` says which Linux bridge stands behind the network:
# `docker0`. `IPAM` (IP address management) holds the subnet. This engine (Docker 20.10)
# lists no `Gateway` for the default bridge; the gateway is the bridge's own address,
# the subnet's first one, and each container's endpoint records it. Now the containers
# on the network, with their MAC and IPv4 addresses:

# %%
summary = network_summary(bridge)     # docker network inspect bridge (the "Containers" part)
pd.DataFrame(summary["Containers"])

# %%
# docker inspect --format '{{json .NetworkSettings.Networks}}' test
endpoint = test.networks()["bridge"]
{k: endpoint[k] for k in ("IPAddress", "IPPrefixLen", "MacAddress", "Gateway")}

# %% [markdown]
# Look at the MAC address: `02:42` followed by the four bytes of the IPv4 address in
# hexadecimal (172 = `ac`, 17 = `11`, 0 = `00`, 2 = `02`). Docker derives the MAC from the
# address, so an address always comes with the same MAC, and there is no MAC collision
# on the bridge as long as there is no address collision.

# %%
ip, mac = test.ip("bridge"), test.mac("bridge")
print(ip, mac, "derived from the address:",
      mac == "02:42:" + ":".join(f"{int(byte):02x}" for byte in ip.split(".")))

# %% [markdown]
# ### Inside the container, with labkit
#
# Everything Docker did can be read from the kernel, exactly as in the kernel labs:

# %%
test_ns = dl.netns(test)
links = to_frame(test_ns.interfaces()).astype({"link_index": "Int64"})     # ip -n test link
links[["ifindex", "ifname", "kind", "address", "mtu", "link_index"]]

# %%
to_frame(test_ns.routes("inet"))[["dst", "gateway", "dev", "protocol", "prefsrc"]]            # ip -n test route

# %% [markdown]
# `eth0` is one end of a veth pair (`link_index` is the interface index of the other end,
# the `@ifN` in `ip link`). The other end lives in the host's namespace and is a port of
# `docker0`:

# %%
veth = peer_interface(test_ns, host)   # ip link | grep "^<link_index>:"
print(f"test:eth0 (index {test_ns.interface('eth0').ifindex}) <-> host:{veth.ifname} "
      f"(index {veth.ifindex}, kind {veth.kind}, master {veth.master})")
print("ports of docker0:", host.bridge_ports("docker0"))    # ip link show master docker0
print("docker0's address:", [a.cidr for a in host.addresses("docker0") if a.family == "inet"])

# %% [markdown]
# **Predict.** A second container pings `test`. Which MAC addresses does `docker0` learn,
# and on which ports?

# %%
# docker run -d --name other labkit/busybox:1 ; docker exec other ping -c 1 172.17.0.2
other = dl.run("other")
print(other.ping(test.ip("bridge")))
learnt = [e for e in host.fdb() if e.master == "docker0" and e.mac.startswith("02:42:ac")]
to_frame(learnt)[["mac", "ifname"]]         # bridge fdb show br docker0

# %% [markdown]
# ## 5 · A user-defined bridge: `bridge_test`
#
# The UPC thesis creates `bridge_test` and Docker gives it the next free private
# subnet, 172.18.0.0/16. We name the subnet explicitly so that this notebook prints the
# same addresses as the thesis on any machine.

# %% tags=["nbval-check-output"]
# docker network create -d bridge --subnet 172.18.0.0/16 bridge_test
bridge_test = dl.network("bridge_test", subnet="172.18.0.0/16")
summary = network_summary(bridge_test)          # docker network inspect bridge_test
{k: summary[k] for k in ("Name", "Driver", "Scope", "IPAM", "Containers")}

# %%
# Behind it, a new Linux bridge named after the network's id:  ip -br link show type bridge
print(summary["Bridge"], "is a", host.interface(summary["Bridge"]).kind)

# %% [markdown]
# Now the thesis' two containers: a database `db` on `bridge_test`, and a web server
# `web` started without `--net`, so on the default bridge. (The thesis runs PostgreSQL
# and nginx images from Docker Hub; here busybox's `httpd` serves the page, and `db`
# only needs to exist.)

# %% tags=["nbval-check-output"]
# docker run -d --net=bridge_test --name db labkit/busybox:1
db = dl.run("db", network="bridge_test")
# docker run -d --name web labkit/busybox:1 httpd -f -p 80 -h /var/www
web = dl.run("web", "httpd -f -p 80 -h /var/www")
# docker inspect --format='{{json .NetworkSettings.Networks}}' db
{net: {k: e[k] for k in ("IPAddress", "MacAddress", "Gateway")} for net, e in db.networks().items()}

# %% [markdown]
# The same address and MAC as in the thesis: `172.18.0.2`, `02:42:ac:12:00:02`.
#
# **Predict.** Can `db` reach `web` at its address on the default bridge?

# %% tags=["nbval-check-output"]
# docker exec db ping -c 2 <web's address on the default bridge>
result = db.ping(web.ip("bridge"), count=2)
print(result)
result.received

# %% [markdown]
# No. `db`'s packet does leave: its default route points at 172.18.0.1, the host, which
# routes between its two bridges. But Docker wrote firewall rules that drop traffic
# from one Docker network to another:

# %%
rules = host.run(["iptables", "-S"]).stdout        # iptables -S
print("\n".join(line for line in rules.splitlines() if "ISOLATION" in line))

# %% [markdown]
# Stage 1 sends everything that enters from one Docker bridge and leaves by another to
# stage 2; stage 2 drops it if it is about to leave by a Docker bridge. Networks are
# Docker's unit of isolation. These chains hang off `FORWARD`, whose policy Docker set to
# `DROP` when it started (the pitfall of notebook 02, section 6); the `ACCEPT` rules after
# them are the ones you added there by hand:

# %%
print(host.run(["iptables", "-S", "FORWARD"]).stdout)     # iptables -S FORWARD

# %% [markdown]
# The fix in the thesis: connect `web` to `bridge_test` as well.
# **Predict.** What changes inside `web`?

# %%
dl.connect("bridge_test", web)          # docker network connect bridge_test web
web_ns = dl.netns(web)
to_frame(web_ns.addresses())[["ifname", "family", "local", "prefixlen"]]   # ip -n web -br addr

# %% tags=["nbval-check-output"]
result = db.ping("web", count=2)       # docker exec db ping -c 2 web   (by name!)
print(result)
result.received

# %% [markdown]
# `web` got a second interface, `eth1`, with the address 172.18.0.3 on `bridge_test`, and
# `db` now reaches it, even by name.
#
# ## 6 · Names: embedded DNS on user networks, `--link` on the default bridge
#
# Where did the name `web` come from?

# %% tags=["nbval-check-output"]
print(db.run("cat /etc/resolv.conf").stdout)     # docker exec db cat /etc/resolv.conf
print("db resolves web to", db.resolve("web"))    # docker exec db nslookup web

# %% [markdown]
# On a user-defined network the engine runs a DNS server for the containers at
# 127.0.0.11, inside each container's namespace; it knows every container of the
# networks the asker is on, by name. The default bridge has no such server.
# **Predict.** `other` and `test` are both on the default bridge. Can `other` find `test` by name?

# %% tags=["nbval-check-output"]
print("other resolves test to", other.resolve("test"))   # docker exec other nslookup test
print(other.ping("test", count=1))                        # docker exec other ping -c 1 test
print(other.run("cat /etc/resolv.conf").stdout)

# %% [markdown]
# No: `other` uses the nameserver of its `/etc/resolv.conf`, and it does not know
# container names. (Every course container is started with `--dns 127.0.0.1`: a name
# Docker does not know is sent to the container's own loopback, where nothing answers,
# instead of to the host's real resolvers. The lessons never send a packet off this
# machine.)
#
# Before user-defined networks existed, Docker's answer was `--link NAME:ALIAS`, as in the
# UPV thesis' `--link db:db`: it writes the name into the new container's `/etc/hosts`,
# and a few environment variables.

# %%
# docker run -d --name linked --link web:webserver labkit/busybox:1
linked = dl.run("linked", links={"web": "webserver"})
hosts = linked.hosts_entries()                               # docker exec linked cat /etc/hosts
print({name: hosts[name] for name in ("web", "webserver")})
print(linked.ping("webserver", count=1).received, "reply from webserver")
print(sorted(v for v in linked.run("env").stdout.split() if v.startswith("WEBSERVER_")))

# %% [markdown]
# A link is one-way (only `linked` knows `webserver`), fixed at start (a restarted `web`
# with a new address breaks it) and works on the default bridge only. Docker calls it
# legacy; use user-defined networks instead.
#
# ## 7 · Publishing a port, and the rules Docker writes
#
# **Predict.** `-p 172.17.0.1:8080:80` makes the container's port 80 reachable at the
# host's address 172.17.0.1, port 8080. Which iptables rule does that take? (Notebook 02
# wrote one by hand.) We publish on `docker0`'s address rather than on every address of
# the machine (`-p 8080:80`), so the server is not exposed outside this machine.

# %%
gateway = gateway_of(bridge)                          # docker0's own address
before = set(host.run(["iptables-save"]).stdout.splitlines())
# docker run -d --name pub -p 172.17.0.1:8080:80 labkit/busybox:1 httpd -f -p 80 -h /var/www
pub = dl.run("pub", "httpd -f -p 80 -h /var/www", ports={"80/tcp": (gateway, 8080)})
after = host.run(["iptables-save"]).stdout.splitlines()
print("\n".join(line for line in after if line not in before and line.startswith("-A")))

# %% [markdown]
# Three new rules:
#
# * in the `nat` table, chain `DOCKER` (reached from `PREROUTING` and `OUTPUT` for
#   packets addressed to this machine): **DNAT** of `172.17.0.1:8080` to the container's
#   port 80;
# * in the `filter` table, chain `DOCKER` (reached from `FORWARD`): **ACCEPT** the
#   forwarded packets to that port (the default `FORWARD` policy Docker sets is `DROP`);
# * in `nat` `POSTROUTING`: a **MASQUERADE** for the container talking to its own
#   published port (hairpin).
#
# `docker port` and the page itself:

# %%
print(client.api.port(pub.container.id, 80))                        # docker port pub 80
print(fetch(f"http://{gateway}:8080/"))                              # curl
print(host.run(["iptables", "-t", "nat", "-L", "DOCKER", "-n", "-v", "-x"]).stdout)

# %% [markdown]
# The packet counter of the DNAT rule went up: our request went through it. The
# `MASQUERADE` rule for the way out has been there since the engine started: it is the
# one you wrote in notebook 02.

# %%
nat = host.run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).stdout   # iptables -t nat -S POSTROUTING
print("\n".join(line for line in nat.splitlines() if "docker0" in line))

# %% [markdown]
# ## 8 · Side by side: `docker0` by hand and by Docker
#
# The UPC thesis lists four steps Docker takes for the bridge network: (1) a bridge on
# the host, (2) a network namespace per container, (3) the container's interface mapped
# onto a port of the bridge, (4) iptables NAT between each container and the host's
# public interface. Notebook 02 took the same four steps by hand. Build its lab again
# here, in a labkit bubble (private namespaces, so it cannot collide with Docker's
# 172.17.0.0/16 on this machine), with the very commands of notebook 02, and compare
# its `c1` with Docker's `test` field by field.

# %%
from labkit import Lab

a2 = Lab("a2-docker0")
a2_host = a2.add_router("host")                 # ip netns add host; sysctl -w net.ipv4.ip_forward=1
outside = a2.add_host("outside")
a2.link(a2_host, outside)                        # the host's uplink: eth0 <-> outside's eth0
a2_host.add_address("eth0", "10.9.0.2/24")
outside.add_address("eth0", "10.9.0.1/24")
a2_host.add_bridge("docker0", address="172.17.0.1/16")            # step 1: the bridge
c1 = a2.add_host("c1")                                             # step 2: a namespace
a2.link(c1, a2_host, names=("eth0", "veth1"), macs=("02:42:ac:11:00:02", None),
        bridges=(None, "docker0"))                                 # step 3: a veth into the bridge
c1.add_address("eth0", "172.17.0.2/16")
c1.add_route("default", via="172.17.0.1")
a2_host.iptables("-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0",
                 "-j", "MASQUERADE")                               # step 4: NAT out ...
a2_host.iptables("-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp", "--dport", "8080",
                 "-j", "DNAT", "--to-destination", "172.17.0.2:80")  # ... and in
print(c1.ping("10.9.0.1", count=1))


# %%
def describe(container, host_node):
    """The objects of steps 1 to 4, read back from the kernel."""
    eth0 = container.interface("eth0")
    peer = peer_interface(container, host_node)
    bridge_if = host_node.interface(peer.master)
    nat = host_node.run(["iptables", "-t", "nat", "-S"]).stdout.splitlines()
    return {
        "container interface": f"{eth0.ifname} ({eth0.kind})",
        "container MAC": eth0.address,
        "container address": ", ".join(a.cidr for a in container.addresses("eth0") if a.family == "inet"),
        "container routes": "; ".join(sorted(f"{r.dst} via {r.gateway}" if r.gateway else f"{r.dst} dev {r.dev}"
                                             for r in container.routes("inet"))),
        "host end of the veth": f"{peer.kind}, port of {peer.master}",
        "bridge": f"{bridge_if.ifname} ({bridge_if.kind})",
        "bridge address": ", ".join(a.cidr for a in host_node.addresses(bridge_if.ifname) if a.family == "inet"),
        "masquerade rule": next(l for l in nat if "MASQUERADE" in l and "! -o docker0" in l),
        "DNAT rule": next(l for l in nat if "DNAT" in l and "--dport 8080" in l),
    }

side_by_side = pd.DataFrame({"notebook 02: c1 (by hand)": describe(c1, a2_host),
                             "Docker: test": describe(test_ns, host)})
side_by_side["same"] = side_by_side.iloc[:, 0] == side_by_side.iloc[:, 1]
side_by_side

# %% tags=["nbval-check-output"]
print("identical:", list(side_by_side.index[side_by_side["same"]]))
print("different:", list(side_by_side.index[~side_by_side["same"]]))

# %% [markdown]
# Every object is of the same kind, with the same addresses, MAC and routes, and the
# masquerade rule is character for character the one of notebook 02. What differs is
# detail: Docker's DNAT rule sits in a chain of its own (`DOCKER`, jumped to from
# `PREROUTING` and `OUTPUT`), matches only the address it was published on instead of an
# incoming interface, and points at `pub`, the container that asked for it.

# %%
a2.close()     # the bubble and everything in it are gone

# %% [markdown]
# ## 9 · Capturing on `docker0` and on a veth
#
# **Predict.** `other` pings `test` twice, then `test` pings the gateway once. A capture
# runs on `docker0` and one on `test`'s host-side veth. Which one sees which packets?

# %%
from labkit import plots
from labkit.capture import MultiCapture

# tcpdump -i docker0 icmp   and   tcpdump -i vethXXXX icmp, at the same time
with MultiCapture([(host, "docker0"), (host, veth.ifname)], filter="icmp", directory=CAPTURES) as mc:
    other.ping(test.ip("bridge"), count=2)    # container to container: bridged
    test.ping(gateway, count=1)               # container to the host: up through docker0
table = mc.table()
table[["interface", "src_ip", "dst_ip", "icmp_type", "icmp_seq"]]

# %% tags=["nbval-check-output"]
# Echo requests and replies seen on each interface, per conversation
seen_on = table["interface"].where(table["interface"] == "docker0", "test's veth")
talk = ["test <-> gateway" if gateway in (s, d) else "other <-> test"
        for s, d in zip(table["src_ip"], table["dst_ip"])]
table.assign(seen_on=seen_on, conversation=talk).groupby(["seen_on", "conversation"]).size().rename("packets").reset_index()

# %%
plots.timeline(table, title="Who sees what: docker0 and test's veth")

# %% [markdown]
# The veth carries everything `test` sends and receives. `docker0`, as an interface,
# sees only what the bridge hands up to the host itself (the ping to 172.17.0.1): frames
# the bridge forwards from one port to another never pass through it. To watch
# container-to-container traffic, capture on a veth (or inside a container).
#
# ## Summary
#
# * Docker's three built-in networks: `bridge` (the Linux bridge `docker0`), `host` (the
#   host's own namespace: fast, no isolation, shared ports) and `none` (loopback only).
# * `docker network inspect` shows the IPAM subnet and gateway and, per container, its
#   MAC (`02:42` + the IPv4 address) and address.
# * A user-defined bridge is a new Linux bridge `br-<id>` with its own subnet. Containers
#   on different networks cannot reach each other (iptables `DOCKER-ISOLATION` rules);
#   `docker network connect` adds an interface on the other network.
# * User-defined networks resolve container names (DNS at 127.0.0.11); the default
#   bridge does not, and `--link` patches `/etc/hosts` instead.
# * `-p` writes a DNAT rule (and an ACCEPT in `FORWARD`); the masquerade rule for the
#   way out is the one from notebook 02. `docker0`, its veths and its NAT rules are the
#   objects you built by hand.
#
# Next: notebook 21 joins Docker engines on two hosts with an overlay network.

# %% [markdown]
# ## Questions to think about
#
# 1. `docker network inspect` gave each container a MAC address starting with `02:42`.
#    What do the next four bytes encode, and why is a MAC derived that way unique on the
#    network?
# 2. On the default bridge, `ping db` fails; on `bridge_test` it works. Which server
#    answers the name, and why does the default bridge not have one?
# 3. `-p 8080:80` wrote a DNAT rule. Which address does the web server log for a client
#    on another machine, and which for a client on the same host that uses 127.0.0.1?
#
# Exercise 20 ([exercises/20-docker-networks.ipynb](../exercises/20-docker-networks.ipynb))
# is the UPC thesis' db/web task, with checkpoints; its solution answers these questions.
#
# ### Clean-up

# %%
report = dl.close()      # docker rm -f ...; docker network rm bridge_test  (by label)
print(report)
shutil.rmtree(CAPTURES, ignore_errors=True)
dl.resources()           # docker ps -a / docker network ls --filter label=io.labkit.session=20-docker-networks

# %% tags=["nbval-check-output"]
len(dl.resources())
