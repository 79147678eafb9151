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
# * **MTU**: the largest IP packet `c1` can send to `c2` without fragmentation;
# * **RTT**: `ping -c 20 -i 0.01`, average;
# * **throughput**: `iperf3 -t 2` over TCP.
#
# **Predict** the ranking for each column before running the next cell.

# %%
import pandas as pd

from labkit import Lab, measure, plots
from labkit.scenarios import join_bridged, join_gretap, join_vxlan, routed_hosts, two_hosts

def bridged(lab):
    s = two_hosts(lab)
    join_bridged(s)          # brctl addif lxdbr0 enp0s8, on both hosts
    return s, []


def routed(lab):
    return routed_hosts(lab), []


def gre(lab):
    s = two_hosts(lab)
    return s, join_gretap(s)  # ip link add eltunelgre type gretap remote ... local ...


def vxlan(lab):
    s = two_hosts(lab)
    return s, join_vxlan(s)   # ip link add vxlan0 type vxlan id 42 group 239.1.1.1 dev enp0s8 dstport 4789


SCENARIOS = {"B1 bridged LAN": bridged, "B2 routed": routed, "B3 GRE (gretap)": gre,
             "B4 VXLAN": vxlan}


def seen_on_lan(s, table: pd.DataFrame) -> str:
    """What the hosts' LAN sees of the containers' own identities."""
    macs = {c.interface("eth0").address for c in s.containers}
    ips = {s.address(c) for c in s.containers}
    outer_mac = bool(macs & set(table["src_mac"].dropna()))
    outer_ip = bool(ips & set(table["src_ip"].dropna()))
    return ("container MACs and IPs" if outer_mac else
            "container IPs, hosts' MACs" if outer_ip else "only the hosts' addresses")


rows = []
for name, build in SCENARIOS.items():
    with Lab("b5") as lab:
        s, tunnels = build(lab)
        dst = s.address(s.c2)
        with s.host1.capture("enp0s8") as cap:                    # tcpdump -i enp0s8
            s.c1.ping(dst, count=2)
        table = cap.table()
        icmp = table[table["stack"].str.endswith("icmp")]
        rtt = measure.latency(s.c1, dst)                          # ping -c 20 -i 0.01
        rows.append({
            "scenario": name,
            "overhead_bytes": int(icmp["overhead_bytes"].fillna(0).max()),
            "path_mtu": min([s.c1.interface("eth0").mtu] + [t.mtu for t in tunnels]),
            "lan_sees": seen_on_lan(s, icmp),
            "ttl_at_c1": rtt.replies[0].ttl,
            "rtt_avg_ms": rtt.rtt_avg,
            "tcp_mbit_s": round(measure.throughput_mbit(s.c1, s.c2, dst), 1),   # iperf3 -c DST -t 2
        })
results = pd.DataFrame(rows).set_index("scenario")
results

# %% [markdown]
# The deterministic part of the table (the numbers above vary a little from run to run,
# these do not):

# %% tags=["nbval-check-output"]
results[["overhead_bytes", "path_mtu", "lan_sees", "ttl_at_c1"]]

# %%
import plotly.graph_objects as go
from plotly.subplots import make_subplots

fig = make_subplots(rows=1, cols=3, subplot_titles=("overhead per packet (bytes)",
                                                    "round-trip time (ms)", "TCP throughput (Mbit/s)"))
for col, field in enumerate(("overhead_bytes", "rtt_avg_ms", "tcp_mbit_s"), start=1):
    fig.add_trace(go.Bar(x=results.index, y=results[field], showlegend=False), row=1, col=col)
fig.update_layout(height=380, margin=dict(t=60, b=10))
fig

# %% [markdown]
# ## 2 · Reading the numbers
#
# * **Bridged (B1)** adds nothing and is the fastest, but the hosts' LAN carries every
#   container's MAC and broadcast: the physical network must learn and accept them.
# * **Routed (B2)** adds nothing either and hides container MACs, but every router on the
#   way (TTL 62: two hops) must know every container subnet.
# * **GRE (B3)** and **VXLAN (B4)** hide everything inside host-to-host packets and keep
#   the containers in one subnet across any IP network, at the price of 38 and 50 bytes
#   per packet and a smaller MTU. Here GRE runs in userspace (this kernel has no
#   `gretap`), which is why its latency and throughput trail the kernel's VXLAN; with a
#   kernel device the two would be close.
# * For B3 and B4 the builders also lowered the containers' MTU to the tunnel's
#   (`labkit.scenarios.fit_mtu`, what `dockerd --mtu` does under Flannel). A bridge does
#   not fragment: with `eth0` left at 1500, pings still work but full-size TCP segments
#   are dropped at the tunnel port. Try it: `join_gretap(s, fit=False)`, then `iperf3`.
#
# ## 3 · What Docker automates
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
# (B2) are what Calico and Romana build for orchestrators (later notebooks).
#
# **For your essay.** Pick two scenarios and argue which one you would deploy for (a) a
# lab of 3 hosts on one switch, (b) 200 hosts in different data-centre racks. Use the
# table above, and say what the physical network must know in each case.

# %% [markdown]
# ## 4 · Summary
#
# * Layer 2 across hosts (B1, B3, B4) keeps one subnet; B1 pays with exposure, B3/B4 with
#   bytes and MTU.
# * Layer 3 (B2) costs nothing per packet but needs routes everywhere.
# * Docker bundles notebook 02 into one command per container, and notebooks 05/06 into
#   an overlay network.
