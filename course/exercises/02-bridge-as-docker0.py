# %% [markdown]
# # Exercise 02 · docker0 by hand
#
# **Objectives.** Rebuild, without looking back at notebook 02 if you can, what Docker
# builds for its default `bridge` network, and prove that each piece works:
#
# 1. a bridge `docker0` holding the containers' gateway address, two containers plugged
#    into it, with the MAC addresses Docker would give them;
# 2. MAC learning in the bridge's forwarding database;
# 3. masquerade (source NAT), so that the containers reach a host outside;
# 4. a published port (DNAT), so that the outside host reaches a container's web server;
# 5. the `br_netfilter` pitfall, reproduced and then repaired.
#
# ```
#                           host  (ip_forward = 1, given)
#   c1 ─ eth0 ── veth1 ─┐ ┌──────────────────────────┐
#   2nd address         ├─┤ docker0  1st address of  │ eth0 HOST_IP ──── outside OUTSIDE_IP
#   c2 ─ eth0 ── veth2 ─┘ │          subnet          │   (uplink, given)
#   3rd address           └──────────────────────────┘
# ```
#
# The parameters cell holds your subnets and ports (your instructor may give you others):
# the gateway on `docker0` is the first address of `subnet`, `c1` the second, `c2` the
# third; `outside` is the first address of `uplink` and the host's `eth0` the second.
# The setup cell builds `host`, `outside` and the uplink between them, and prints your
# address plan.
#
# Keep the names `docker0`, `c1`, `c2`, `eth0` (in the containers), `veth1` and `veth2`
# (their ends in the host): the checkpoints look for them. Replace the `...` in every
# cell marked `# YOUR CODE HERE`, then run the checkpoint cell after it. Run the cells in
# order.

# %% tags=["parameters"]
student_id = "anonymous"
subnet = "172.17.0.0/16"     # docker0's network: gateway 1st address, c1 2nd, c2 3rd
uplink = "10.9.0.0/24"       # the host's LAN: outside 1st address, host 2nd
host_port = 8080             # published port on the host ...
container_port = 80          # ... forwarded to this port of c1

# %%
import ipaddress
import sys
import time

from labkit import Lab, to_frame
from labkit.capture import Capture
from labkit.checkpoints import Checkpoint, checks

net, lan = ipaddress.ip_network(subnet), ipaddress.ip_network(uplink)
gateway, c1_ip, c2_ip = (str(ip) for ip in list(net.hosts())[:3])
outside_ip, host_ip = (str(ip) for ip in list(lan.hosts())[:2])
prefix = net.prefixlen

lab = Lab("ex02-docker0")
host = lab.add_router("host")                     # forwarding on, as on any Docker host
outside = lab.add_host("outside")
lab.link(host, outside)                           # host:eth0 <-> outside:eth0
host.add_address("eth0", f"{host_ip}/{lan.prefixlen}")
outside.add_address("eth0", f"{outside_ip}/{lan.prefixlen}")
FETCH = "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=3).status)"
print(f"docker0 {gateway}/{prefix}   c1 {c1_ip}   c2 {c2_ip}   host eth0 {host_ip}   outside {outside_ip}")
print(f"publish: {host_ip}:{host_port} -> {c1_ip}:{container_port}")

# %% [markdown]
# ## Task 1 · The bridge and two containers (2 points)
#
# 1. Give `host` a bridge `docker0` with the gateway address (prefix of `subnet`).
# 2. Create `c1` and `c2`, each joined to `host` by a veth pair: `eth0` in the container,
#    `veth1` (`veth2`) in the host, plugged into `docker0`.
# 3. Give each container its address, and the MAC address Docker derives from it:
#    `02:42` followed by the four bytes of the address in hex (`172.17.0.2` →
#    `02:42:ac:11:00:02`); `lab.link` takes `macs=(...)`.
# 4. A default route in each container via the gateway.

# %%
# BEGIN SOLUTION
host.add_bridge("docker0", address=f"{gateway}/{prefix}")   # ip -n host link add docker0 type bridge ...
for n, ip in ((1, c1_ip), (2, c2_ip)):
    c = lab.add_host(f"c{n}")
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    lab.link(c, host, names=("eth0", f"veth{n}"), macs=(mac, None), bridges=(None, "docker0"))
    c.add_address("eth0", f"{ip}/{prefix}")
    c.add_route("default", via=gateway)
c1, c2 = lab["c1"], lab["c2"]
host.bridge_ports("docker0")
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("2.1", "docker0 with the gateway, c1 and c2 plugged in the Docker way", points=2,
                hint="bridge address = gateway; lab.link(c, host, names=('eth0', 'vethN'), "
                     "macs=(mac, None), bridges=(None, 'docker0')") as cp:
    cp.check(checks.interface(host, "docker0", kind="bridge"))
    cp.check(checks.address(host, f"{gateway}/{prefix}", dev="docker0"))
    for n, ip in ((1, c1_ip), (2, c2_ip)):
        node = lab[f"c{n}"]
        want = "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        cp.check(checks.interface(host, f"veth{n}", master="docker0"))
        cp.check(checks.address(node, f"{ip}/{prefix}", dev="eth0"))
        have = node.interface("eth0").address
        cp.check(checks.expect(have == want, f"c{n}'s eth0 has MAC {have} (Docker's would be {want})"))
        cp.check(checks.route(node, "default", via=gateway))

# %% [markdown]
# ## Task 2 · MAC learning (2 points)
#
# Ping `c2` and the gateway from `c1`, then look at the bridge's forwarding database
# (`bridge -n host fdb show br docker0`, i.e. `host.fdb("docker0")`): behind which port
# did the bridge learn each container's MAC?

# %%
# BEGIN SOLUTION
print(c1.ping(c2_ip, count=1))
print(c1.ping(gateway, count=1))
fdb = to_frame(host.fdb("docker0"))
fdb[fdb["mac"].str.startswith("02:42")][["mac", "ifname", "state"]]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("2.2", "c1 reaches c2 and the gateway; the bridge learnt both MACs", points=2,
                hint="if task 1 passed, ping c2 from c1 and read host.fdb('docker0')") as cp:
    cp.check(checks.ping(lab["c1"], c2_ip))
    cp.check(checks.ping(lab["c1"], gateway))
    cp.check(checks.fdb(host, lab["c1"].interface("eth0").address, ifname="veth1"))
    cp.check(checks.fdb(host, lab["c2"].interface("eth0").address, ifname="veth2"))

# %% [markdown]
# ## Task 3 · Masquerade (2 points)
#
# `c1` pings `outside`: the requests arrive there from a private address `outside` has no
# route to, so no reply comes back (try it). Add the masquerade rule Docker adds, so that
# packets from `subnet` leaving by any interface other than `docker0` take the host's
# address. Do **not** give `outside` a route to `subnet`: a real outside host never has one.

# %%
# BEGIN SOLUTION
print("before:", c1.ping(outside_ip, count=1, wait=0.5))
host.iptables("-t", "nat", "-A", "POSTROUTING", "-s", subnet, "!", "-o", "docker0",
              "-j", "MASQUERADE")
# ip netns exec host iptables -t nat -A POSTROUTING -s SUBNET ! -o docker0 -j MASQUERADE
print("after: ", c1.ping(outside_ip, count=2))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("2.3", "c1 reaches outside, which only ever sees the host's address", points=2,
                hint="iptables -t nat -A POSTROUTING -s SUBNET ! -o docker0 -j MASQUERADE") as cp:
    cp.check(checks.route(outside, subnet, present=False))
    with Capture(outside, "eth0", filter="icmp") as seen:
        cp.check(checks.ping(lab["c1"], outside_ip))
    frames = seen.table()
    sources = sorted(set(frames[frames["icmp_type"] == 8]["src_ip"]))
    cp.check(checks.expect(sources == [host_ip],
                           f"outside sees echo requests from {sources} (the host's address is {host_ip})"))

# %% [markdown]
# ## Task 4 · Publish a port (2 points)
#
# Start a web server in `c1` on `container_port`
# (`c1.spawn([sys.executable, "-m", "http.server", str(container_port)])`), and publish it
# as `docker run -p HOST_PORT:CONTAINER_PORT` does: a DNAT rule in the host's `nat` table
# (`PREROUTING`) for TCP packets to `host_port` arriving on `eth0`. Then fetch
# `http://HOST_IP:HOST_PORT/` from `outside` (`outside.run([sys.executable, "-c", FETCH,
# url])` prints the HTTP status; the server may need a moment to start).

# %%
# BEGIN SOLUTION
web = c1.spawn([sys.executable, "-m", "http.server", str(container_port)])
host.iptables("-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp", "--dport", str(host_port),
              "-j", "DNAT", "--to-destination", f"{c1_ip}:{container_port}")
for _ in range(50):
    got = outside.run([sys.executable, "-c", FETCH, f"http://{host_ip}:{host_port}/"])
    if got.ok:
        break
    time.sleep(0.1)
print("HTTP status:", got.stdout.strip())
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("2.4", "outside reaches c1's web server through the published port", points=2,
                hint="a DNAT rule in PREROUTING: -p tcp --dport HOST_PORT -j DNAT "
                     "--to-destination C1_IP:CONTAINER_PORT; is the server running?") as cp:
    rules = host.run(["iptables", "-t", "nat", "-S", "PREROUTING"]).stdout
    cp.check(checks.expect(f"--dport {host_port}" in rules
                           and f"--to-destination {c1_ip}:{container_port}" in rules,
                           f"the host's PREROUTING chain sends port {host_port} to {c1_ip}:{container_port}"))
    cp.check(checks.tcp(outside, host_ip, host_port, expect="open"))
    cp.check(checks.tcp(outside, c1_ip, container_port, expect="closed"))

# %% [markdown]
# ## Task 5 · The pitfall (1 point)
#
# Do what a Docker host does: set the policy of the host's `FORWARD` chain to `DROP`,
# and switch `br_netfilter` on in the host
# (`net.bridge.bridge-nf-call-iptables = 1`). Now `c1` no longer reaches `c2`, although
# both sit on the same bridge. Leave it broken for the checkpoint.

# %%
# BEGIN SOLUTION
host.iptables("-P", "FORWARD", "DROP")                               # iptables -P FORWARD DROP
host.set_sysctl("net.bridge.bridge-nf-call-iptables", 1)
print("c1 -> c2:", c1.ping(c2_ip, count=1, wait=0.5))
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("2.5", "FORWARD DROP plus br_netfilter cuts c1 off from c2", points=1,
                hint="iptables -P FORWARD DROP, and the sysctl net.bridge.bridge-nf-call-iptables") as cp:
    cp.check(checks.sysctl(host, "net.bridge.bridge-nf-call-iptables", 1))
    cp.check(checks.command(host, ["iptables", "-S", "FORWARD"], stdout_contains="-P FORWARD DROP"))
    cp.check(checks.ping(lab["c1"], c2_ip, expect="failure"))

# %% [markdown]
# ## Task 6 · Repair it the Docker way (1 point)
#
# Keep the `DROP` policy and `br_netfilter`, and add `ACCEPT` rules to `FORWARD` (as
# Docker does) so that everything works again: `c1` reaches `c2` and `outside`, and
# `outside` still reaches the published port.

# %%
# BEGIN SOLUTION
host.iptables("-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT")
host.iptables("-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT")
host.iptables("-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
              "-j", "ACCEPT")
host.iptables("-A", "FORWARD", "-o", "docker0", "-p", "tcp", "-d", c1_ip, "--dport", str(container_port),
              "-j", "ACCEPT")
print(host.run(["iptables", "-S", "FORWARD"]).stdout)
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("2.6", "Policy DROP kept, and everything works again", points=1,
                hint="ACCEPT docker0 -> docker0, docker0 -> elsewhere, replies back, and the published port") as cp:
    cp.check(checks.sysctl(host, "net.bridge.bridge-nf-call-iptables", 1))
    cp.check(checks.command(host, ["iptables", "-S", "FORWARD"], stdout_contains="-P FORWARD DROP"))
    cp.check(checks.ping(lab["c1"], c2_ip))
    cp.check(checks.ping(lab["c1"], outside_ip))
    cp.check(checks.tcp(outside, host_ip, host_port, expect="open"))

# %% [markdown]
# ## To think about (not graded)
#
# * In task 3, which rule would let `outside` ping `c1` directly, and why does Docker not
#   write it?
# * In task 4, which client address does `c1`'s web server log: `outside`'s or the host's?
#   Why is the masquerade rule not applied to that connection?

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 02
#
# 1. **Flooding and learning.** A learning bridge sends a frame for an unknown or
#    broadcast destination out of every port, and one for a known unicast destination out
#    of the single port where that MAC was last seen. The ARP request is a broadcast, so it
#    went everywhere, including up to `docker0` (the host's own port). The echo request
#    came after the bridge had learnt `c2`'s MAC from the ARP reply, so it crossed only
#    `veth1` and `veth2`.
# 2. **A route instead of NAT.** `ip -n outside route add 172.17.0.0/16 via 10.9.0.2`
#    sends the replies back to the host, which forwards them to `c1`. Docker prefers NAT
#    because it cannot program the machines of your LAN (nor your ISP's): every host would
#    need a route to every Docker host's private subnet, and those subnets repeat (every
#    Docker host uses 172.17.0.0/16).
# 3. **Which `ACCEPT` rule.** `-i docker0 -o docker0` lets `c1` reach `c2` (a bridged
#    frame enters and leaves by `docker0` when `br_netfilter` shows it to iptables).
#    `-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED` lets the replies from
#    `outside` back in; `-i docker0 ! -o docker0` lets the requests out.

# %% [markdown]
# ## Clean-up

# %%
lab.close()
