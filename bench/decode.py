"""Benchmark: decode a 100,000-packet pcap with labkit, scapy, dpkt and tshark.

    python bench/decode.py [--packets 100000] [--scapy-packets 100000] [--keep FILE]

The file mixes every protocol the decoder knows (ARP, ICMP, ICMPv6, UDP, TCP,
VXLAN on 4789 and 8472, GRE with Ethernet and IPv4, IP-in-IP, flannel's UDP
backend), built once with scapy and repeated with changing addresses and sequence
numbers. Each tool produces the same fields (addresses, protocol, ports, ICMP
type/id/seq, TTL, VNI, inner addresses) for every packet:

* labkit: ``labkit.capture.read_pcap`` (a DataFrame);
* scapy: ``rdpcap`` and one attribute lookup per field and packet;
* dpkt: ``dpkt.pcap.Reader`` and the same per-packet walk;
* tshark: ``tshark -T fields -e ...`` to /dev/null.

Every run reports the best of ``--repeat`` runs; ratios are "times slower than labkit".
Nothing here asserts a time: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


def build_templates() -> list[bytes]:
    from scapy.all import ARP, GRE, ICMP, IP, TCP, UDP, Ether, ICMPv6EchoRequest, IPv6, Raw
    from scapy.layers.vxlan import VXLAN

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    inner = (Ether(src="02:42:0a:00:00:01", dst="02:42:0a:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
             / ICMP(id=1, seq=1) / Raw(b"x" * 56))
    outer = IP(src="172.16.1.1", dst="172.16.1.2")
    frames = [
        e / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.2", hwsrc="02:00:00:00:00:01"),
        e / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=1, seq=1) / Raw(b"x" * 56),
        e / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest(id=1, seq=1, data=b"x" * 56),
        e / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="PA") / Raw(b"y" * 100),
        e / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=53) / Raw(b"z" * 40),
        e / outer / UDP(sport=50000, dport=4789) / VXLAN(vni=42) / inner,
        e / outer / UDP(sport=50000, dport=8472) / VXLAN(vni=1) / inner,
        e / outer / GRE(proto=0x6558) / inner,
        e / outer / GRE(proto=0x0800) / inner[IP],
        e / IP(src="172.16.1.1", dst="172.16.1.2", proto=4) / inner[IP],
        e / outer / UDP(sport=8285, dport=8285) / inner[IP],
    ]
    return [bytes(f) for f in frames]


def write_pcap(path: Path, packets: int, seed: int = 1) -> None:
    """``packets`` frames cycling through the templates, addresses and seqs varied."""
    rng = random.Random(seed)
    templates = build_templates()
    out = bytearray(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
    t0 = int(time.time()) * 10**9
    for i in range(packets):
        frame = bytearray(templates[i % len(templates)])
        # vary the last byte of every IPv4 source (outer) and the seq of the frame tail
        if frame[12:14] == b"\x08\x00":
            frame[29] = rng.randrange(1, 250)
            frame[24:26] = b"\x00\x00"  # checksum no longer valid; nobody here checks it
        ts = t0 + i * 10_000
        out += struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_labkit(path: Path) -> object:
    from labkit.capture import read_pcap

    return read_pcap(path)


def run_scapy(path: Path, limit: int) -> object:
    from scapy.all import ARP, ICMP, IP, TCP, UDP, IPv6, PcapReader
    from scapy.layers.vxlan import VXLAN

    rows = []
    with PcapReader(str(path)) as reader:
        for n, pkt in enumerate(reader):
            if n >= limit:
                break
            row: dict[str, object] = {"time": pkt.time, "length": len(pkt), "src_mac": pkt.src, "dst_mac": pkt.dst}
            if ARP in pkt:
                row["arp_op"] = pkt[ARP].op
            if IP in pkt:
                ip = pkt[IP]
                row.update(src_ip=ip.src, dst_ip=ip.dst, proto=ip.proto, ttl=ip.ttl)
                inner = ip.payload.getlayer(IP)
                if inner is not None:
                    row.update(inner_src_ip=inner.src, inner_dst_ip=inner.dst)
            elif IPv6 in pkt:
                row.update(src_ip=pkt[IPv6].src, dst_ip=pkt[IPv6].dst)
            if UDP in pkt:
                row.update(sport=pkt[UDP].sport, dport=pkt[UDP].dport)
            elif TCP in pkt:
                row.update(sport=pkt[TCP].sport, dport=pkt[TCP].dport)
            if ICMP in pkt:
                icmp = pkt[ICMP]
                row.update(icmp_type=icmp.type, icmp_id=icmp.id, icmp_seq=icmp.seq)
            if VXLAN in pkt:
                row["vni"] = pkt[VXLAN].vni
            rows.append(row)
    return rows


def run_dpkt(path: Path) -> object:
    import dpkt

    rows = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            row: dict[str, object] = {"time": ts, "length": len(buf), "src_mac": eth.src, "dst_mac": eth.dst}
            ip = eth.data
            if isinstance(ip, dpkt.arp.ARP):
                row["arp_op"] = ip.op
            elif isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                family = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
                row.update(src_ip=socket.inet_ntop(family, ip.src), dst_ip=socket.inet_ntop(family, ip.dst),
                           proto=ip.p)
                l4 = ip.data
                if isinstance(l4, (dpkt.udp.UDP, dpkt.tcp.TCP)):
                    row.update(sport=l4.sport, dport=l4.dport)
                    if isinstance(l4, dpkt.udp.UDP) and l4.dport in (4789, 8472):
                        row["vni"] = int.from_bytes(bytes(l4.data)[4:7], "big")
                elif isinstance(l4, dpkt.icmp.ICMP):
                    row["icmp_type"] = l4.type
                elif isinstance(l4, dpkt.ip.IP):
                    row.update(inner_src_ip=l4.src, inner_dst_ip=l4.dst)
            rows.append(row)
    return rows


TSHARK_FIELDS = [
    "frame.time_epoch", "frame.len", "eth.src", "eth.dst", "arp.opcode", "ip.src", "ip.dst",
    "ip.proto", "ip.ttl", "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport", "tcp.srcport",
    "tcp.dstport", "icmp.type", "icmp.ident", "icmp.seq", "vxlan.vni", "gre.proto",
]


def run_tshark(path: Path) -> object:
    argv = ["tshark", "-n", "-r", str(path), "-d", "udp.port==8472,vxlan", "-d", "udp.port==8285,ip",
            "-T", "fields"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--scapy-packets", type=int, default=None,
                        help="let scapy parse only this many packets and scale its time up")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="also save the test pcap here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pcap"
        write_pcap(path, args.packets)
        if args.keep:
            shutil.copy(path, args.keep)
        size = path.stat().st_size
        print(f"{args.packets} packets, {size / 1e6:.1f} MB, Python {sys.version.split()[0]}")
        results: list[tuple[str, float, str]] = []
        table = run_labkit(path)
        assert len(table) == args.packets  # type: ignore[arg-type]
        lab = best(lambda: run_labkit(path), args.repeat)
        results.append(("labkit read_pcap", lab, ""))
        if shutil.which("tshark"):
            results.append(("tshark -T fields", best(lambda: run_tshark(path), args.repeat), ""))
        try:
            import dpkt  # noqa: F401

            results.append(("dpkt, per packet", best(lambda: run_dpkt(path), 1), ""))
        except ImportError:
            pass
        try:
            import scapy  # noqa: F401

            limit = args.scapy_packets or args.packets
            t = best(lambda: run_scapy(path, limit), 1)
            note = ""
            if limit < args.packets:
                note = f"(measured on {limit}, scaled)"
                t *= args.packets / limit
            results.append(("scapy PcapReader, per packet", t, note))
        except ImportError:
            pass
    print(f"{'decoder':32} {'seconds':>9} {'x labkit':>9}  {'packets/s':>11}")
    for name, seconds, note in results:
        print(f"{name:32} {seconds:9.3f} {seconds / lab:9.1f}  {args.packets / seconds:11,.0f} {note}")
    budget = args.packets / 100_000
    verdict = "within" if lab <= budget else "OVER"
    print(f"labkit: {lab:.3f} s for {args.packets} packets ({verdict} the budget of {budget:.3g} s: 1 s per 100k)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
