"""Benchmark: latency, TCP throughput and small-packet rate over each kind of path.

Paths, each in its own lab (containers c1 and c2; hosts host1/host2 on a switch):

* ``veth``: c1 and c2 joined by one veth pair (no host at all);
* ``bridge``: c1 and c2 on one Linux bridge;
* ``vxlan``: kernel VXLAN between two hosts (unicast, VNI 42, port 4789), containers
  on each host's bridge;
* ``gretap``: Ethernet over GRE between two hosts, userspace daemon where the kernel
  has no gretap (``labkit.tunnels.gretap``, implementation shown);
* ``udp``: flannel's udp backend (``labkit.tunnels.udp_encap``: TUN device, daemon
  sending IP in UDP port 8285), containers routed through their hosts;
* with ``--all``, also the userspace fallbacks on a veth end read with AF_PACKET
  (``gretap-tap`` uses a TAP device instead, ``udp-veth``/``gre-veth`` a veth end).

For each it prints: ping RTT (``ping -c 50 -i 0.01``, avg and min), TCP throughput
(``iperf3 -t 2``), and the packet rate each way with small UDP packets
(``iperf3 -u -l 64``): at a fixed offered rate (``--pps``, default 25,000/s) the rate
delivered and the loss, one way and then both ways at once (``--bidir``), and unlimited
(``-b 0``) the most that got through. "Delivered"
counts packets arriving at the receiving container's ``eth0`` (``ip -s link``), i.e.
what the path carried, whether or not the iperf3 server then kept up; iperf3's own
count is shown beside it. For userspace tunnels the daemons' own counters are given
too. The per-packet overhead is the tunnel's (``Tunnel.overhead``) and the one
measured on the underlay by ``labkit.capture`` (outer frame minus inner packet).

This machine is shared: keep runs few. ``--seconds`` sets each iperf3 run's length;
``--workers 2`` runs each userspace daemon as two processes (one per direction).

    .venv/bin/python bench/tunnels.py [--paths veth,bridge,vxlan,gretap,udp] [--all]
                                      [--seconds 2] [--pps 25000] [--workers 1|2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit import Lab, Node
from labkit import measure as measure_tools
from labkit.tunnels import Tunnel, gre, gretap, udp_encap, vxlan_unicast

PAYLOAD = 64  # UDP payload bytes in the packet-rate runs


# -- topologies ----------------------------------------------------------------------------

class Path_:
    def __init__(self, name: str, client: Node, server: Node, dst: str,
                 tunnels: list[Tunnel], underlay: tuple[Node, str] | None) -> None:
        self.name, self.client, self.server, self.dst = name, client, server, dst
        self.tunnels, self.underlay = tunnels, underlay


def plain_veth(lab: Lab, _: str) -> Path_:
    c1, c2 = lab.add_host("c1"), lab.add_host("c2")
    lab.link(c1, c2, names=("eth0", "eth0"))
    c1.add_address("eth0", "10.0.0.1/24")
    c2.add_address("eth0", "10.0.0.2/24")
    return Path_("veth", c1, c2, "10.0.0.2", [], None)


def bridge(lab: Lab, _: str) -> Path_:
    sw = lab.add_switch("sw")
    c1, c2 = lab.add_host("c1"), lab.add_host("c2")
    lab.link(c1, sw, names=("eth0", None))
    lab.link(c2, sw, names=("eth0", None))
    c1.add_address("eth0", "10.0.0.1/24")
    c2.add_address("eth0", "10.0.0.2/24")
    return Path_("bridge", c1, c2, "10.0.0.2", [], None)


def two_hosts(lab: Lab, routed: bool, mtu: int) -> tuple[list[Node], list[Node]]:
    lan = lab.add_switch("lan")
    hosts, cs = [], []
    for i in (1, 2):
        h = lab.add_router(f"host{i}") if routed else lab.add_host(f"host{i}")
        lab.link(h, lan, names=("eth1", None))
        h.add_address("eth1", f"172.16.1.{i}/24")
        c = lab.add_host(f"c{i}")
        if routed:
            h.add_bridge("docker0", address=f"10.4.{i}.1/24", mtu=mtu)
            lab.link(c, h, names=("eth0", f"veth{i}"), bridges=(None, "docker0"), mtu=mtu)
            c.add_address("eth0", f"10.4.{i}.2/24")
            c.add_route("default", via=f"10.4.{i}.1")
        else:
            h.add_bridge("br0", mtu=mtu)
            lab.link(c, h, names=("eth0", f"veth{i}"), bridges=(None, "br0"), mtu=mtu)
            c.add_address("eth0", f"10.0.0.{i}/24")
        hosts.append(h)
        cs.append(c)
    return hosts, cs


def vxlan(lab: Lab, _: str) -> Path_:
    hosts, cs = two_hosts(lab, routed=False, mtu=1450)
    ends = [vxlan_unicast(hosts[0], "vxlan0", vni=42, remotes=["172.16.1.2"], bridge="br0"),
            vxlan_unicast(hosts[1], "vxlan0", vni=42, remotes=["172.16.1.1"], bridge="br0")]
    return Path_("vxlan", cs[0], cs[1], "10.0.0.2", ends, (hosts[0], "eth1"))


def gretap_path(lab: Lab, variant: str) -> Path_:
    device = {"gretap": "auto", "gretap-tap": "tap"}[variant]
    hosts, cs = two_hosts(lab, routed=False, mtu=1462)
    ends = [gretap(hosts[0], "gretap0", remote="172.16.1.2", bridge="br0", device=device),
            gretap(hosts[1], "gretap0", remote="172.16.1.1", bridge="br0", device=device)]
    return Path_(variant, cs[0], cs[1], "10.0.0.2", ends, (hosts[0], "eth1"))


def gre_path(lab: Lab, variant: str) -> Path_:
    device = {"gre": "auto", "gre-veth": "veth"}[variant]
    hosts, cs = two_hosts(lab, routed=True, mtu=1476)
    ends = [gre(hosts[0], "gre1", remote="172.16.1.2", address="192.168.100.1/30", device=device),
            gre(hosts[1], "gre1", remote="172.16.1.1", address="192.168.100.2/30", device=device)]
    hosts[0].add_route("10.4.2.0/24", via="192.168.100.2")
    hosts[1].add_route("10.4.1.0/24", via="192.168.100.1")
    return Path_(variant, cs[0], cs[1], "10.4.2.2", ends, (hosts[0], "eth1"))


def udp_path(lab: Lab, variant: str) -> Path_:
    device = {"udp": "auto", "udp-veth": "veth"}[variant]
    hosts, cs = two_hosts(lab, routed=True, mtu=1472)
    ends = [udp_encap(hosts[0], "flannel0", subnet="10.4.1.0/24", network="10.4.0.0/16",
                      local="172.16.1.1", peers={"10.4.2.0/24": "172.16.1.2"}, device=device),
            udp_encap(hosts[1], "flannel0", subnet="10.4.2.0/24", network="10.4.0.0/16",
                      local="172.16.1.2", peers={"10.4.1.0/24": "172.16.1.1"}, device=device)]
    return Path_(variant, cs[0], cs[1], "10.4.2.2", ends, (hosts[0], "eth1"))


PATHS: dict[str, Callable[[Lab, str], Path_]] = {
    "veth": plain_veth, "bridge": bridge, "vxlan": vxlan, "gretap": gretap_path,
    "udp": udp_path, "gretap-tap": gretap_path, "gre": gre_path, "gre-veth": gre_path,
    "udp-veth": udp_path,
}
DEFAULT = ["veth", "bridge", "vxlan", "gretap", "udp"]
EXTRA = ["gretap-tap", "gre", "gre-veth", "udp-veth"]


# -- measurements --------------------------------------------------------------------------

def rx_packets(node: Node, ifname: str = "eth0") -> int:
    out = node.run(["ip", "-s", "-j", "link", "show", "dev", ifname], check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["packets"])


def iperf(path: Path_, args: list[str], seconds: float) -> dict[str, Any]:
    return measure_tools.iperf3(path.client, path.server, path.dst, seconds=seconds,
                                args=tuple(args))


def packet_rate(path: Path_, seconds: float, rate: int | None, reverse: bool) -> dict[str, Any]:
    """Small UDP packets one way; what reached the receiving container's eth0."""
    receiver = path.client if reverse else path.server
    bits = "0" if rate is None else str(rate * PAYLOAD * 8)
    before = rx_packets(receiver)
    daemons_before = [t.counters() for t in path.tunnels if t.implementation == "userspace"]
    data = iperf(path, ["-u", "-l", str(PAYLOAD), "-b", bits, "-w", "4M", *(["-R"] if reverse else [])],
                 seconds)
    delivered = rx_packets(receiver) - before
    daemons_after = [t.counters() for t in path.tunnels if t.implementation == "userspace"]
    sent, got = data["end"]["sum_sent"], data["end"]["sum_received"]
    secs = float(sent["seconds"]) or seconds
    row = {"offered_pps": round(sent["packets"] / secs), "delivered_pps": round(delivered / secs),
           "iperf3_received_pps": round((got["packets"] - got["lost_packets"]) / secs),
           "loss_pct": round(100.0 * max(0, sent["packets"] - delivered) / max(1, sent["packets"]), 2)}
    if daemons_before:
        # sender's daemon encapsulates (tx), receiver's daemon decapsulates (rx)
        send_i, recv_i = (1, 0) if reverse else (0, 1)
        row["daemon_tx_pps"] = round((daemons_after[send_i]["tx_packets"]
                                      - daemons_before[send_i]["tx_packets"]) / secs)
        row["daemon_rx_pps"] = round((daemons_after[recv_i]["rx_packets"]
                                      - daemons_before[recv_i]["rx_packets"]) / secs)
    return row


def packet_rate_both_ways(path: Path_, seconds: float, rate: int) -> dict[str, Any]:
    """Small UDP packets both ways at once (``iperf3 --bidir``), ``rate`` each way."""
    before = rx_packets(path.server), rx_packets(path.client)
    daemons_before = [t.counters() for t in path.tunnels if t.implementation == "userspace"]
    data = iperf(path, ["-u", "-l", str(PAYLOAD), "-b", str(rate * PAYLOAD * 8), "-w", "4M",
                        "--bidir"], seconds)
    fwd = rx_packets(path.server) - before[0]
    rev = rx_packets(path.client) - before[1]
    daemons_after = [t.counters() for t in path.tunnels if t.implementation == "userspace"]
    end = data["end"]
    reverse = end.get("sum_sent_bidir_reverse", {})
    secs = float(end["sum_sent"]["seconds"]) or seconds
    secs_rev = float(reverse.get("seconds") or secs)
    offered_fwd = end["sum_sent"]["packets"]
    offered_rev = reverse.get("packets", 0)
    row = {"offered_pps": f"{round(offered_fwd / secs)}/{round(offered_rev / secs_rev)}",
           "delivered_fwd_pps": round(fwd / secs), "delivered_rev_pps": round(rev / secs_rev),
           "loss_pct": round(100.0 * max(0, offered_fwd + offered_rev - fwd - rev)
                             / max(1, offered_fwd + offered_rev), 2)}
    if daemons_before:
        for i, name in enumerate(("host1", "host2")):
            tx = daemons_after[i]["tx_packets"] - daemons_before[i]["tx_packets"]
            rx = daemons_after[i]["rx_packets"] - daemons_before[i]["rx_packets"]
            row[f"daemon_{name}_tx_rx_pps"] = f"{round(tx / secs)}/{round(rx / secs)}"
    return row


def measured_overhead(path: Path_, workdir: Path) -> int | None:
    if path.underlay is None:
        return 0
    node, ifname = path.underlay
    return measure_tools.overhead_bytes(node, ifname, path.client, path.dst,
                                        filter="ip proto 47 or udp")


def measure(name: str, seconds: float, pps: int, workdir: Path,
            workers: str = "1") -> dict[str, Any]:
    with Lab(f"bench-{name}") as lab:
        t0 = time.perf_counter()
        path = PATHS[name](lab, name)
        setup = time.perf_counter() - t0
        if workers != "1":
            for t in path.tunnels:
                if t.implementation == "userspace":
                    t.daemon_options = ["--workers", workers]
                    t.restart()
        warm = path.client.ping(path.dst, count=3, interval=0.05)
        if not warm.ok:
            raise RuntimeError(f"{name}: no connectivity ({warm})")
        ping = path.client.ping(path.dst, count=50, interval=0.01)
        tcp = iperf(path, [], seconds)["end"]["sum_received"]["bits_per_second"] / 1e6
        row: dict[str, Any] = {
            "path": name,
            "implementation": ",".join(sorted({f"{t.implementation}/{t.device_type}" for t in path.tunnels})) or "-",
            "daemon_workers": workers if any(
                t.implementation == "userspace" for t in path.tunnels) else "-",
            "setup_s": round(setup, 2),
            "rtt_avg_ms": ping.rtt_avg, "rtt_min_ms": ping.rtt_min,
            "tcp_mbit_s": round(tcp, 1),
            "mtu": path.tunnels[0].mtu if path.tunnels else 1500,
            "overhead_bytes": path.tunnels[0].overhead if path.tunnels else 0,
            "overhead_measured": measured_overhead(path, workdir),
        }
        for label, rate in (("fixed", pps), ("max", None)):
            for direction, reverse in (("fwd", False), ("rev", True)):
                row[f"{label}_{direction}"] = packet_rate(path, seconds, rate, reverse)
        row["fixed_bidir"] = packet_rate_both_ways(path, seconds, pps)
        return row


def show(rows: list[dict[str, Any]], pps: int) -> None:
    print(f"\n{'path':<11}{'implementation':<20}{'ovh B':>6}{'meas':>6}{'mtu':>6}{'rtt avg':>9}"
          f"{'rtt min':>9}{'TCP Mb/s':>10}  {'@' + str(pps) + ' pps: delivered fwd/rev (loss %)':<40}"
          f"{'max pps fwd/rev':>18}")
    for r in rows:
        ff, fr, mf, mr = r["fixed_fwd"], r["fixed_rev"], r["max_fwd"], r["max_rev"]
        fixed = f"{ff['delivered_pps']}/{fr['delivered_pps']} ({ff['loss_pct']}/{fr['loss_pct']})"
        print(f"{r['path']:<11}{r['implementation']:<20}{r['overhead_bytes']:>6}"
              f"{r['overhead_measured']!s:>6}{r['mtu']:>6}{r['rtt_avg_ms']:>9.3f}"
              f"{r['rtt_min_ms']:>9.3f}{r['tcp_mbit_s']:>10.1f}  {fixed:<40}"
              f"{str(mf['delivered_pps']) + '/' + str(mr['delivered_pps']):>18}")
    print(f"\nboth ways at once (iperf3 --bidir), {pps} pps offered each way:")
    for r in rows:
        b = r["fixed_bidir"]
        extra = "".join(f", {k[7:12]} daemon tx/rx {v}" for k, v in b.items() if k.startswith("daemon_"))
        print(f"  {r['path']:<11}offered {b['offered_pps']}, delivered {b['delivered_fwd_pps']} c1->c2 "
              f"and {b['delivered_rev_pps']} c2->c1 pps (loss {b['loss_pct']} %){extra}")
    daemons = [r for r in rows if "daemon_tx_pps" in r["fixed_fwd"]]
    if daemons:
        print("\nuserspace daemons (their own counters, packets/s): encapsulated by the sender's "
              "daemon / decapsulated by the receiver's")
        for r in daemons:
            parts = []
            for key in ("fixed_fwd", "fixed_rev", "max_fwd", "max_rev"):
                d = r[key]
                parts.append(f"{key} {d['daemon_tx_pps']}/{d['daemon_rx_pps']}")
            print(f"  {r['path']:<11}" + ", ".join(parts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paths", default=",".join(DEFAULT),
                    help=f"comma-separated, from {', '.join(PATHS)}")
    ap.add_argument("--all", action="store_true", help="also " + ", ".join(EXTRA))
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--pps", type=int, default=25000, help="offered rate of the fixed-rate runs")
    ap.add_argument("--json", action="store_true", help="print one JSON object per path too")
    ap.add_argument("--workers", choices=("1", "2"), default="1",
                    help="processes per userspace daemon (2: one per direction)")
    args = ap.parse_args()
    names = [n for n in args.paths.split(",") if n] + (EXTRA if args.all else [])
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        ap.error(f"unknown path(s) {unknown}; choose from {', '.join(PATHS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        for name in names:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            row = measure(name, args.seconds, args.pps, Path(tmp), args.workers)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    show(rows, args.pps)
    slow = [(r["path"], key, r[key]["delivered_pps"]) for r in rows
            for key in ("max_fwd", "max_rev")
            if "userspace" in r["implementation"] and r[key]["delivered_pps"] < 20000]
    slow += [(r["path"], "bidir", r["fixed_bidir"][k]) for r in rows
             for k in ("delivered_fwd_pps", "delivered_rev_pps")
             if "userspace" in r["implementation"] and r["fixed_bidir"][k] < 20000]
    print("\nuserspace paths at or above 20,000 packets/s each way: "
          + ("yes" if not slow else f"NO: {slow}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
