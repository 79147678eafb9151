# %% [markdown]
# # 07 · Four ways to join two hosts, measured, and what Docker automates
#
# **Objectives.**
#
# 1. put the four two-host scenarios of notebooks 03 to 06 side by side: bridged LAN,
#    routed, Ethernet over GRE, Ethernet over VXLAN;
# 2. measure what each costs: bytes added per packet, the MTU left for containers,
#    round-trip time and TCP throughput, all in this lab;
# 3. see what each exposes on the hosts' network (container MACs? container addresses?);
# 4. map every manual step you did to what Docker (or LXD's profiles) does for you.
#
# The lab practical ends with a short essay comparing manual container networking with
# Docker's; this notebook gives that essay its numbers.

# %% [markdown]
# ## 1 · Build and measure each scenario
#
# Each scenario is built in its own fresh lab with `labkit.scenarios` (the same steps as
# notebooks 03 to 06, in library form), then measured from `c1` to `c2`:
#
# * **overhead**: bytes the path adds to each packet, read from a capture on host1's card;
# * **path MTU**: the largest IP packet that reaches `c2` whole, *measured* with
#   `ping -M do -s SIZE` (Don't Fragment) by bisection, not read from a setting;
# * **RTT**: `ping -c 20 -i 0.01`, average;
# * **throughput**: `iperf3 -t 1` over TCP, three runs: the median and the range (one
#   run alone can reorder the ranking on a busy machine).
#
# **Predict** the ranking for each column before running the cells below.

# %%
import pandas as pd

from labkit import Lab, measure
from labkit.capture import Capture
from labkit.scenarios import join_bridged, join_gretap, join_vxlan, routed_hosts, two_hosts


def bridged(lab, fit=True):
    s = two_hosts(lab)
    join_bridged(s)          # brctl addif lxdbr0 enp0s8 (and the host's address moves to lxdbr0)
    return s, []


def routed(lab, fit=True):
    return routed_hosts(lab), []


def gre(lab, fit=True):
    s = two_hosts(lab)
    return s, join_gretap(s, fit=fit)   # ip link add eltunelgre type gretap remote ... local ...


def vxlan(lab, fit=True):
    s = two_hosts(lab)
    return s, join_vxlan(s, fit=fit)    # ip link add vxlan0 type vxlan id 42 group 239.1.1.1 dev enp0s8 dstport 4789


SCENARIOS = {"B1 bridged LAN": bridged, "B2 routed": routed, "B3 GRE (gretap)": gre, "B4 VXLAN": vxlan}

# %% [markdown]
# What the hosts' LAN gets to see of the containers, read from the capture:

# %%
def seen_on_lan(s, table: pd.DataFrame) -> str:
    """What the hosts' LAN sees of the containers' own identities."""
    macs = {c.interface("eth0").address for c in s.containers}
    ips = {s.address(c) for c in s.containers}
    outer_mac = bool(macs & set(table["src_mac"].dropna()))
    outer_ip = bool(ips & set(table["src_ip"].dropna()))
    return ("container MACs and IPs" if outer_mac else
            "container IPs, hosts' MACs" if outer_ip else "only the hosts' addresses")


def measure_scenario(name: str, build) -> dict:
    with Lab("b5") as lab:
        s, tunnels = build(lab)
        dst = s.address(s.c2)
        with s.host1.capture("enp0s8") as cap:                    # tcpdump -i enp0s8
            s.c1.ping(dst, count=2)
        icmp = cap.table()
        icmp = icmp[icmp["stack"].str.endswith("icmp")]
        rtt = measure.latency(s.c1, dst)                          # ping -c 20 -i 0.01
        tcp = measure.throughput_runs(s.c1, s.c2, dst, runs=3)    # iperf3 -c DST -t 1, three times
        return {
            "scenario": name,
            "overhead_bytes": int(icmp["overhead_bytes"].fillna(0).max()),
            "path_mtu": measure.path_mtu(s.c1, dst),              # ping -M do -s SIZE, bisected
            "lan_sees": seen_on_lan(s, icmp),
            "ttl_at_c1": rtt.replies[0].ttl,
            "rtt_avg_ms": rtt.rtt_avg,
            "tcp_mbit_s": round(tcp.median, 1),
            "tcp_low": round(tcp.low, 1),
            "tcp_high": round(tcp.high, 1),
        }

# %%
results = pd.DataFrame([measure_scenario(name, build) for name, build in SCENARIOS.items()]).set_index("scenario")
results

# %% [markdown]
# The deterministic part of the table (the numbers above vary from run to run, these
# do not):

# %% tags=["nbval-check-output"]
results[["overhead_bytes", "path_mtu", "lan_sees", "ttl_at_c1"]]

# %% [markdown]
# The same as bars; the throughput bars show the median, the whiskers the slowest and
# fastest of the three runs.

# %%
import plotly.graph_objects as go
from plotly.subplots import make_subplots

fig = make_subplots(rows=1, cols=3, subplot_titles=("overhead per packet (bytes)",
                                                    "round-trip time (ms)", "TCP throughput (Mbit/s)"))
fig.add_trace(go.Bar(x=results.index, y=results["overhead_bytes"], showlegend=False), row=1, col=1)
fig.add_trace(go.Bar(x=results.index, y=results["rtt_avg_ms"], showlegend=False), row=1, col=2)
fig.add_trace(go.Bar(x=results.index, y=results["tcp_mbit_s"], showlegend=False,
                     error_y=dict(type="data", symmetric=False,
                                  array=results["tcp_high"] - results["tcp_mbit_s"],
                                  arrayminus=results["tcp_mbit_s"] - results["tcp_low"])), row=1, col=3)
fig.update_layout(height=380, margin=dict(t=60, b=10))
fig

# %% [markdown]
# ## 2 · Reading the numbers
#
# * **Bridged (B1)** adds nothing and is among the fastest, but the hosts' LAN carries every
#   container's MAC and broadcast: the physical network must learn and accept them.
# * **Routed (B2)** adds nothing either and hides container MACs, but every router on the
#   way (TTL 62: two hops) must know every container subnet.
# * **GRE (B3)** and **VXLAN (B4)** hide everything inside host-to-host packets and keep
#   the containers in one subnet across any IP network, at the price of 38 and 50 bytes
#   per packet and a smaller MTU. Here GRE runs in userspace (this kernel has no
#   `gretap`), which is why its latency and throughput trail the kernel's VXLAN; with a
#   kernel device the two would be close.
# * For B3 and B4 the builders also lowered the containers' MTU to the tunnel's
#   (`labkit.scenarios.fit_mtu`, what `dockerd --mtu` does under Flannel). Section 3
#   shows what happens without it.

# %% [markdown]
# ## 3 · When the containers' MTU does not fit the tunnel
#
# **Predict.** Build B3 and B4 again with `fit=False`: the containers keep `eth0` at
# 1500 while the tunnel carries at most 1462 (GRE) or 1450 (VXLAN). What is the path
# MTU now? Does a full-size ping get through? Does TCP?

# %%
def unfitted(name: str, build) -> dict:
    with Lab("b5-mtu") as lab:
        s, _ = build(lab, fit=False)
        dst = s.address(s.c2)
        full = s.c1.run(["ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", dst])   # a 1500-byte packet
        # headers only (snaplen 128): the lengths are the wire's, the file stays small
        with Capture(s.lan, "eth0", filter="udp port 4789 or proto 47", snaplen=128) as cap:
            tcp = measure.throughput_runs(s.c1, s.c2, dst, runs=1)
        wire = cap.table()
        return {"scenario": name, "eth0_mtu": s.c1.interface("eth0").mtu,
                "path_mtu": measure.path_mtu(s.c1, dst), "ping_1500": "reply" if full.ok else "lost",
                "tcp_mbit_s": round(tcp.median, 1),
                "largest_on_lan": int(wire["length"].max()) if len(wire) else 0}


mtu = pd.DataFrame([unfitted("B3 GRE (gretap)", gre), unfitted("B4 VXLAN", vxlan)]).set_index("scenario")
mtu

# %% [markdown]
# Both paths measure the tunnel's MTU (1462, 1450), whatever `eth0` says, and a single
# 1500-byte packet is lost in both: the bridge drops a frame larger than the MTU of the
# port it must leave by, silently (a bridge does not fragment, and sends no ICMP error).
#
# TCP differs. Over the kernel's VXLAN it runs at full speed; over the userspace GRE
# path it stalls. The reason is in the last column: the "packets" on the LAN under
# VXLAN are tens of kilobytes long. Linux hands TCP data down the stack as large
# *GSO* (generic segmentation offload) packets, up to 64 KB, to be cut into MTU-sized
# segments as late as possible, ideally by the network card. A bridge lets a GSO packet
# through without the per-frame size check, the VXLAN device wraps it whole, and a veth
# carries it whole to the next namespace: nothing on this all-virtual path ever cuts it.
# On real hardware the card would cut it into 1550-byte frames, too big for a
# 1500-byte network, and TCP would stall as it does here under GRE. labkit's userspace
# GRE reads and sends one frame at a time, like a real link, so it meets the limit.
#
# So do not trust a fast `iperf3` to prove the MTU right: measure the path MTU (it
# counts single packets) and fit the containers' MTU to the tunnel, as Docker's overlay
# and Flannel do (1450).
#
# ## 4 · What Docker automates
#
# | What you did by hand | In notebook | What Docker does |
# |---|---|---|
# | create a bridge, give it the gateway address | 02 | `docker0` (or `docker network create -d bridge --subnet ...`) |
# | a namespace per container, a veth into the bridge, an address, a default route | 01, 02 | `docker run` (IPAM picks the address; MAC `02:42:` + the IP) |
# | masquerade to reach the outside, `FORWARD` rules | 02 | iptables rules written at network creation |
# | publish a port with a DNAT rule | 02 | `docker run -p 8080:80` |
# | name resolution between containers | — | an embedded DNS server on user-defined networks (notebook 20) |
# | join hosts: card in the bridge, routes, GRE or VXLAN by hand | 03–06 | an `overlay` network: VXLAN between hosts, with swarm (or, formerly, a key-value store) as the control plane (notebook 21) |
#
# What Docker does **not** offer out of the box: bridging containers straight onto the
# hosts' LAN (B1) needs the `macvlan`/`ipvlan` drivers, and plain routed container subnets
# (B2) are what Calico and Romana build for orchestrators (the orchestrator notebooks, 30 onwards).
#
# **For your essay.** Pick two scenarios and argue which one you would deploy for (a) a
# lab of 3 hosts on one switch, (b) 200 hosts in different data-centre racks. Use the
# table above, and say what the physical network must know in each case.

# %% [markdown]
# ## 5 · Summary
#
# * Layer 2 across hosts (B1, B3, B4) keeps one subnet; B1 pays with exposure, B3/B4 with
#   bytes and MTU.
# * Layer 3 (B2) costs nothing per packet but needs routes everywhere.
# * Docker bundles notebook 02 into one command per container, and notebooks 05/06 into
#   an overlay network.
# * Measure a path's MTU with packets (`ping -M do`); a fast TCP test on veth can hide
#   an MTU that does not fit, because GSO carries 64 KB packets uncut.

# %% [markdown]
# ## Questions to think about
#
# 1. B1 and B2 both add 0 bytes per packet. Why is the TTL seen at `c1` 64 in one and
#    62 in the other?
# 2. The throughput of the userspace GRE path trails the kernel's VXLAN by far. Which
#    part of the difference is GRE against VXLAN, and which part is userspace against
#    kernel? How would you find out on a kernel with `gretap`?
# 3. Why does a bridge drop an oversized frame silently, while a router sends back
#    *fragmentation needed*? What does that mean for path MTU discovery across a
#    bridged tunnel?
#
# <details><summary>Answers (open after you have thought about them)</summary>
#
# 1. In B1 the two containers are on one LAN: no router, the reply keeps TTL 64. In B2
#    the reply crosses two routers (host2, then host1), each lowering the TTL by one.
# 2. The protocols differ by 12 bytes a packet, which is negligible; the gap is almost
#    all userspace: every frame is copied from the kernel to a program and back (twice,
#    once per host), one system call each. On a kernel with `gretap`,
#    `labkit.tunnels.gretap` uses the kernel device (`implementation == "kernel"`); run
#    this notebook there and compare.
# 3. A bridge is a layer 2 device: it has no IP address on the path to answer from, and
#    Ethernet has no "too big" message. A router is a layer 3 device and ICMP gives it one
#    (type 3, code 4). Across a bridged tunnel the sender never learns the smaller MTU, so
#    path MTU discovery cannot work: the MTU must be configured to fit (hence `fit_mtu`,
#    `dockerd --mtu`, Flannel's 1450).
# </details>
