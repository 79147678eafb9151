"""Decoder, filter compiler, summaries and plots, on pcaps built in the test.

Frames are built with scapy (a packet library no one here wrote), written as pcap
or pcapng files of each flavour, and decoded; tshark referees the synthetic files
as well (the real-traffic comparison is in test_capture.py).
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from scapy.all import (
    ARP, GRE, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoReply, ICMPv6EchoRequest,
    ICMPv6MLReport2, ICMPv6ND_NS, IPv6, IPv6ExtHdrHopByHop, Raw,
)
from scapy.layers.vxlan import VXLAN

from tshark_referee import referee
from labkit import plots
from labkit.capture import COLUMNS, CaptureError, FilterError, PcapFormatError, compile_filter, read_pcap, summarize
from labkit.capture.decode import empty_table, innermost

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
T0 = 1_700_000_000_123_456_789  # ns


def eth() -> Ether:
    return Ether(src=MAC1, dst=MAC2)


def inner_eth() -> Ether:
    return Ether(src="02:42:0a:00:00:01", dst="02:42:0a:00:00:02")


def catalogue() -> list[tuple[str, bytes]]:
    """(expected stack, frame) for every protocol and encapsulation we decode."""
    ping = IP(src="10.0.0.1", dst="10.0.0.2", ttl=63) / ICMP(type=8, id=0x1234, seq=7) / Raw(b"p" * 56)
    outer = IP(src="172.16.1.1", dst="172.16.1.2")
    frames = [
        ("eth/arp", eth() / ARP(op=1, hwsrc=MAC1, psrc="10.0.0.1", pdst="10.0.0.2")),
        ("eth/arp", eth() / ARP(op=2, hwsrc=MAC2, psrc="10.0.0.2", hwdst=MAC1, pdst="10.0.0.1")),
        ("eth/ipv4/icmp", eth() / ping),
        ("eth/ipv4/icmp", eth() / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=0x1234, seq=7)),
        ("eth/ipv4/icmp", eth() / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=3) / bytes(ping)[:28]),
        ("eth/ipv6/icmpv6", eth() / IPv6(src="fd00:1::1", dst="fd00:1::2", hlim=64) / ICMPv6EchoRequest(id=5, seq=9)),
        ("eth/ipv6/icmpv6", eth() / IPv6(src="fd00:1::2", dst="fd00:1::1") / ICMPv6EchoReply(id=5, seq=9)),
        ("eth/ipv6/icmpv6", eth() / IPv6(src="fd00:1::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="fd00:1::2")),
        ("eth/ipv6/icmpv6", eth() / IPv6(src="::", dst="ff02::16") / IPv6ExtHdrHopByHop() / ICMPv6MLReport2()),
        ("eth/ipv4/udp", eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=53) / Raw(b"q" * 20)),
        ("eth/ipv4/tcp", eth() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S")),
        ("eth/ipv6/tcp", eth() / IPv6(src="fd00:1::1", dst="fd00:1::2") / TCP(sport=40001, dport=443, flags="SA")),
        ("eth/ipv4/udp/vxlan(vni=42)/eth/arp",
         eth() / outer / UDP(sport=51000, dport=4789) / VXLAN(vni=42) / inner_eth()
         / ARP(op=1, hwsrc="02:42:0a:00:00:01", psrc="10.0.0.1", pdst="10.0.0.2")),
        ("eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp",
         eth() / outer / UDP(sport=51000, dport=4789) / VXLAN(vni=42) / inner_eth() / ping),
        ("eth/ipv4/udp/vxlan(vni=1)/eth/ipv4/icmp",
         eth() / outer / UDP(sport=51000, dport=8472) / VXLAN(vni=1) / inner_eth() / ping),
        ("eth/ipv4/gre/eth/ipv4/icmp", eth() / outer / GRE(proto=0x6558) / inner_eth() / ping),
        ("eth/ipv4/gre/ipv4/icmp", eth() / outer / GRE(proto=0x0800) / ping),
        ("eth/ipv4/gre/ipv4/icmp",
         eth() / outer / GRE(proto=0x0800, key_present=1, key=99, seqnum_present=1, sequence_number=5) / ping),
        ("eth/ipv4/ipv4/icmp", eth() / IP(src="172.16.1.1", dst="172.16.1.2", proto=4) / ping),
        ("eth/ipv4/udp/ipv4/icmp", eth() / outer / UDP(sport=8285, dport=8285) / ping),
        ("eth/vlan(id=5)/ipv4/icmp", eth() / Dot1Q(vlan=5) / ping),
    ]
    return [(stack, bytes(frame)) for stack, frame in frames]


def unknowns() -> list[tuple[str, bytes]]:
    """Frames we do not decode fully: each must still give one row that says so."""
    ping = bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / Raw(b"p" * 20))
    lldp = Ether(src=MAC1, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"l" * 40)
    stp = Ether(src=MAC1, dst="01:80:c2:00:00:00", type=38) / Raw(b"\x42\x42\x03" + b"s" * 35)
    ospf = eth() / IP(src="10.0.0.1", dst="224.0.0.5", proto=89) / Raw(b"o" * 40)
    erspan = eth() / IP(src="1.1.1.1", dst="2.2.2.2") / GRE(proto=0x880B) / Raw(b"x" * 20)
    return [
        ("eth/unknown(ethertype=0x88cc)", bytes(lldp)),
        ("eth/llc", bytes(stp)),
        ("eth/ipv4/unknown(ip-proto=89)", bytes(ospf)),
        ("eth/ipv4/gre/unknown(gre-proto=0x880b)", bytes(erspan)),
        ("eth/ipv4/fragment", bytes(eth() / IP(src="10.0.0.1", dst="10.0.0.2", frag=185, proto=1) / Raw(b"f" * 40))),
        ("eth/ipv4(truncated)", ping[:30]),
        ("eth/ipv4/icmp(truncated)", ping[:37]),
        ("eth(truncated)", ping[:10]),
        ("eth/ipv4(truncated)", ping[:14]),
        ("eth/ipv4/igmp", bytes(eth() / IP(src="10.0.0.1", dst="224.0.0.22", proto=2) / Raw(b"\x22\x00" + b"g" * 14))),
    ]


# ------------------------------------------------------------------------ file writers


def write_pcap(path: Path, frames: list[bytes], *, endian: str = "<", nanos: bool = True,
               linktype: int = 1, snaplen: int = 262144, origlens: list[int] | None = None) -> Path:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = bytearray(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for i, frame in enumerate(frames):
        ts = T0 + i * 1_000_001
        sec, ns = divmod(ts, 10**9)
        frac = ns if nanos else ns // 1000
        orig = origlens[i] if origlens else len(frame)
        out += struct.pack(endian + "IIII", sec, frac, len(frame), orig) + frame
    path.write_bytes(bytes(out))
    return path


def write_pcapng(path: Path, frames: list[bytes], flags: list[int], *, ifname: str = "veth-a",
                 tsresol: int = 9) -> Path:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        length = len(body) + 12
        return struct.pack("<II", btype, length) + body + struct.pack("<I", length)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 262144) + option(2, ifname.encode()) + option(9, bytes([tsresol]))
                 + option(0, b""))
    for i, (frame, flag) in enumerate(zip(frames, flags)):
        ts = (T0 + i * 1_000_001) // 10 ** (9 - tsresol)
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
        body += frame + b"\0" * (-len(frame) % 4)
        if flag:
            body += option(2, struct.pack("<I", flag)) + option(0, b"")
        out += block(6, body)
    out += block(0x0BAD, b"custom block we skip")
    path.write_bytes(out)
    return path


# ------------------------------------------------------------------------ decoding


@pytest.fixture
def mix(tmp_path: Path) -> tuple[Path, list[str]]:
    items = catalogue()
    return write_pcap(tmp_path / "mix.pcap", [f for _, f in items]), [s for s, _ in items]


def test_every_protocol_gives_its_stack(mix: tuple[Path, list[str]]) -> None:
    path, stacks = mix
    table = read_pcap(path, node="h1", interface="eth0")
    assert list(table.columns) == list(COLUMNS)
    assert list(table["stack"]) == stacks
    assert list(table["no"]) == list(range(1, len(stacks) + 1))
    assert set(table["node"]) == {"h1"} and set(table["interface"]) == {"eth0"}
    assert table["direction"].isna().all()  # no sidecar: unknown


def test_fields_of_each_layer(mix: tuple[Path, list[str]]) -> None:
    t = read_pcap(mix[0])
    req = t.iloc[0]
    assert (req.src_mac, req.dst_mac, req.ethertype, req.arp_op) == (MAC1, MAC2, 0x0806, 1)
    assert (req.arp_sender_ip, req.arp_target_ip, req.arp_sender_mac) == ("10.0.0.1", "10.0.0.2", MAC1)
    assert pd.isna(req.src_ip) and pd.isna(req.proto)
    ping = t.iloc[2]
    assert (ping.src_ip, ping.dst_ip, ping.proto, ping.ttl, ping.ip_version) == ("10.0.0.1", "10.0.0.2", 1, 63, 4)
    assert (ping.icmp_type, ping.icmp_code, ping.icmp_id, ping.icmp_seq) == (8, 0, 0x1234, 7)
    assert ping.length == ping.caplen == 14 + 20 + 8 + 56
    unreach = t.iloc[4]
    assert (unreach.icmp_type, unreach.icmp_code) == (3, 3) and pd.isna(unreach.icmp_id)
    assert pd.isna(unreach.inner_src_ip)  # the quoted header is not a tunnel
    v6 = t.iloc[5]
    assert (v6.src_ip, v6.dst_ip, v6.proto, v6.ttl, v6.ip_version) == ("fd00:1::1", "fd00:1::2", 58, 64, 6)
    assert (v6.icmp_type, v6.icmp_id, v6.icmp_seq) == (128, 5, 9)
    mld = t.iloc[8]
    assert (mld.proto, mld.icmp_type) == (58, 143)  # found behind the hop-by-hop header
    udp, tcp, tcp6 = t.iloc[9], t.iloc[10], t.iloc[11]
    assert (udp.sport, udp.dport, tcp.sport, tcp.dport, tcp.tcp_flags) == (40000, 53, 40000, 80, 0x002)
    assert (tcp6.dport, tcp6.tcp_flags) == (443, 0x012)


def test_tunnel_columns(mix: tuple[Path, list[str]]) -> None:
    t = read_pcap(mix[0]).set_index("no")
    arp = t.loc[13]
    assert (arp.tunnel, arp.vni, arp.dst_ip, arp.dport) == ("vxlan", 42, "172.16.1.2", 4789)
    assert (arp.inner_src_mac, arp.inner_arp_op, arp.inner_arp_target_ip) == ("02:42:0a:00:00:01", 1, "10.0.0.2")
    assert pd.isna(arp.arp_op) and pd.isna(arp.inner_src_ip)
    for no in (14, 15, 16, 17, 18, 19, 20):
        row = t.loc[no]
        assert (row.inner_src_ip, row.inner_dst_ip, row.inner_proto, row.inner_ttl) == ("10.0.0.1", "10.0.0.2", 1, 63)
        assert (row.inner_icmp_type, row.inner_icmp_id, row.inner_icmp_seq) == (8, 0x1234, 7)
        assert (row.src_ip, row.dst_ip) == ("172.16.1.1", "172.16.1.2")
    assert t.loc[15, "vni"] == 1 and t.loc[15, "dport"] == 8472
    assert t.loc[16, "gre_proto"] == 0x6558 and t.loc[16, "inner_dst_mac"] == "02:42:0a:00:00:02"
    assert t.loc[17, "gre_proto"] == 0x0800 and pd.isna(t.loc[17, "gre_key"])
    assert t.loc[18, "gre_key"] == 99
    assert t.loc[19, "proto"] == 4 and t.loc[19, "tunnel"] == "ipip"
    assert t.loc[20, "tunnel"] == "udp" and t.loc[20, "sport"] == 8285
    assert t.loc[21, "vlan"] == 5 and t.loc[21, "ethertype"] == 0x8100


def test_overhead_bytes_per_encapsulation(mix: tuple[Path, list[str]]) -> None:
    t = read_pcap(mix[0])
    overhead = dict(zip(t["stack"], t["overhead_bytes"]))
    assert overhead["eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp"] == 50  # 14 + 20 + 8 + 8
    assert overhead["eth/ipv4/gre/eth/ipv4/icmp"] == 38  # 14 + 20 + 4
    assert overhead["eth/ipv4/ipv4/icmp"] == 20
    assert overhead["eth/ipv4/udp/ipv4/icmp"] == 28  # flannel udp: 20 + 8
    assert overhead["eth/ipv4/icmp"] == 0
    assert list(t.loc[t["stack"] == "eth/ipv4/gre/ipv4/icmp", "overhead_bytes"]) == [24, 32]  # plain, key+seq
    tunnelled = t[t["tunnel"].notna() & (t["inner_proto"] == 1)]
    inner_frame = 14 + 20 + 8 + 56
    assert ((tunnelled["length"] - tunnelled["overhead_bytes"]) == inner_frame).all()


@needs_tshark
def test_tshark_agrees_on_synthetic_frames(mix: tuple[Path, list[str]], tmp_path: Path) -> None:
    assert referee(mix[0], read_pcap(mix[0])) > 200
    path = write_pcap(tmp_path / "odd.pcap", [f for _, f in unknowns()])
    assert referee(path, read_pcap(path)) > 10


def test_unknown_and_broken_frames_are_kept(tmp_path: Path) -> None:
    items = unknowns()
    t = read_pcap(write_pcap(tmp_path / "odd.pcap", [f for _, f in items]))
    assert list(t["stack"]) == [s for s, _ in items]
    assert t.loc[6, "src_ip"] == "10.0.0.1" and t.loc[6, "proto"] == 1  # what was there is decoded


def test_every_prefix_of_a_tunnelled_frame_decodes(tmp_path: Path) -> None:
    """Cut a VXLAN frame at every length: one row each, never an exception."""
    frame = dict((s, f) for s, f in catalogue())["eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp"]
    cuts = [frame[:n] for n in range(len(frame) + 1)]
    t = read_pcap(write_pcap(tmp_path / "cuts.pcap", cuts, origlens=[len(frame)] * len(cuts)))
    assert len(t) == len(cuts)
    assert (t["length"] == len(frame)).all() and list(t["caplen"]) == list(range(len(frame) + 1))
    assert t["stack"].iloc[-1] == "eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp"
    assert t["stack"].iloc[0] == "eth(truncated)"
    assert t["stack"].iloc[:14].eq("eth(truncated)").all()
    assert t["stack"].iloc[14 + 19] == "eth/ipv4(truncated)"
    assert t["stack"].iloc[14 + 20 + 7] == "eth/ipv4/udp(truncated)"
    assert t["stack"].iloc[14 + 20 + 8 + 7] == "eth/ipv4/udp/vxlan(truncated)"
    assert t["stack"].iloc[14 + 20 + 8 + 8 + 14 + 20 + 3] == "eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp(truncated)"
    assert t["stack"].str.contains("truncated").sum() == 14 + 20 + 8 + 8 + 14 + 20 + 4


def test_random_bytes_never_break_the_decoder(tmp_path: Path) -> None:
    rng = random.Random(7)
    good = [f for _, f in catalogue()]
    frames = []
    for _ in range(3000):
        base = bytearray(rng.choice(good))
        for _ in range(rng.randrange(1, 6)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        frames.append(bytes(base[: rng.randrange(len(base) + 1)]))
    frames += [rng.randbytes(rng.randrange(0, 200)) for _ in range(1000)]
    for linktype in (1, 101, 113):
        t = read_pcap(write_pcap(tmp_path / f"fuzz{linktype}.pcap", frames, linktype=linktype))
        assert len(t) == len(frames)
        assert t["stack"].notna().sum() >= len(frames) - frames.count(b"")


def test_raw_ip_and_linux_cooked_link_types(tmp_path: Path) -> None:
    ping = bytes(IP(src="10.4.1.2", dst="10.4.2.2") / ICMP(seq=1))
    v6 = bytes(IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest())
    raw = read_pcap(write_pcap(tmp_path / "tun.pcap", [ping, v6], linktype=101))  # e.g. flannel0 (TUN)
    assert list(raw["stack"]) == ["ipv4/icmp", "ipv6/icmpv6"]
    assert raw["src_mac"].isna().all() and list(raw["src_ip"]) == ["10.4.1.2", "fd00::1"]
    sll = [struct.pack("!HHH8sH", kind, 1, 6, bytes.fromhex("020000000001") + b"\0\0", 0x0800) + ping
           for kind in (0, 4)]
    cooked = read_pcap(write_pcap(tmp_path / "sll.pcap", sll, linktype=113))
    assert list(cooked["stack"]) == ["sll/ipv4/icmp"] * 2
    assert list(cooked["direction"]) == ["in", "out"]
    assert list(cooked["src_mac"]) == [MAC1, MAC1]


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nanos", [True, False])
def test_pcap_flavours_decode_alike(tmp_path: Path, endian: str, nanos: bool) -> None:
    frames = [f for _, f in catalogue()]
    t = read_pcap(write_pcap(tmp_path / "f.pcap", frames, endian=endian, nanos=nanos))
    ref = read_pcap(write_pcap(tmp_path / "ref.pcap", frames))
    first = T0 if nanos else T0 // 1000 * 1000
    assert t["time"].iloc[0].value == first
    pd.testing.assert_frame_equal(t.drop(columns=["time", "t"]), ref.drop(columns=["time", "t"]))


def test_pcapng_interface_names_directions_and_resolution(tmp_path: Path) -> None:
    frames = [f for _, f in catalogue()][:4]
    t = read_pcap(write_pcapng(tmp_path / "f.pcapng", frames, [1, 2, 0, 2], tsresol=6))
    assert list(t["stack"]) == [s for s, _ in catalogue()][:4]
    assert list(t["interface"]) == ["veth-a"] * 4
    assert list(t["direction"].fillna("?")) == ["in", "out", "?", "out"]
    assert t["time"].iloc[0].value == T0 // 1000 * 1000
    t9 = read_pcap(write_pcapng(tmp_path / "g.pcapng", frames, [0] * 4, tsresol=9), interface="x")
    assert t9["time"].iloc[1].value == T0 + 1_000_001 and set(t9["interface"]) == {"x"}


@needs_tshark
def test_pcapng_written_by_editcap(mix: tuple[Path, list[str]], tmp_path: Path) -> None:
    ng = tmp_path / "mix.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(mix[0]), str(ng)], check=True, capture_output=True)
    a, b = read_pcap(mix[0]), read_pcap(ng)
    pd.testing.assert_frame_equal(a.drop(columns=["interface"]), b.drop(columns=["interface"]))


def test_sidecar_gives_direction(mix: tuple[Path, list[str]]) -> None:
    path, stacks = mix
    Path(f"{path}.dir").write_bytes(b"LKPKTTY1" + bytes([4, 0, 1, 2, 3]))  # shorter: still being written
    t = read_pcap(path)
    assert list(t["direction"].iloc[:6].fillna("?")) == ["out", "in", "in", "in", "in", "?"]


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    t = read_pcap(write_pcap(tmp_path / "none.pcap", []))
    assert len(t) == 0 and list(t.columns) == list(COLUMNS)
    full = read_pcap(write_pcap(tmp_path / "one.pcap", [catalogue()[0][1]]))
    assert dict(t.dtypes) == dict(full.dtypes) == dict(empty_table().dtypes)
    assert summarize(t) == "No frames captured."


# ------------------------------------------------------------------------ bad input


def test_not_a_capture(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a pcap\n")
    with pytest.raises(PcapFormatError, match=r"notes\.txt: not a pcap or pcapng file .*offset 0"):
        read_pcap(bad)
    (tmp_path / "tiny").write_bytes(b"\xd4\xc3")
    with pytest.raises(ValueError, match="too short"):
        read_pcap(tmp_path / "tiny")
    (tmp_path / "hdr").write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 10)
    with pytest.raises(CaptureError, match="too short for a pcap header"):
        read_pcap(tmp_path / "hdr")
    with pytest.raises(FileNotFoundError):
        read_pcap(tmp_path / "missing.pcap")


def test_truncated_pcap_names_the_offset(mix: tuple[Path, list[str]], tmp_path: Path) -> None:
    data = mix[0].read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-5])
    with pytest.raises(PcapFormatError, match=r"cut\.pcap: truncated pcap: record 21 needs \d+ bytes") as info:
        read_pcap(cut)
    assert info.value.offset == len(data) - 16 - len(catalogue()[-1][1])
    assert len(read_pcap(cut, allow_partial=True)) == 20
    half_header = tmp_path / "half.pcap"
    half_header.write_bytes(data + b"\0" * 7)
    with pytest.raises(PcapFormatError, match=r"7 trailing bytes .* offset " + str(len(data))):
        read_pcap(half_header)
    assert len(read_pcap(half_header, allow_partial=True)) == 21


def test_corrupt_record_length(mix: tuple[Path, list[str]], tmp_path: Path) -> None:
    data = bytearray(mix[0].read_bytes())
    second = 24 + 16 + len(catalogue()[0][1])
    data[second + 8:second + 12] = struct.pack("<I", 0x7FFFFFFF)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    with pytest.raises(PcapFormatError, match=rf"record 2 claims 2147483647 captured bytes.*offset {second}\)"):
        read_pcap(bad)


def test_truncated_pcapng(mix: tuple[Path, list[str]], tmp_path: Path) -> None:
    ng = write_pcapng(tmp_path / "a.pcapng", [f for _, f in catalogue()], [0] * 21)
    data = ng.read_bytes()
    (tmp_path / "b.pcapng").write_bytes(data[:-30])
    with pytest.raises(PcapFormatError, match="truncated pcapng"):
        read_pcap(tmp_path / "b.pcapng")
    assert len(read_pcap(tmp_path / "b.pcapng", allow_partial=True)) == 21


# ------------------------------------------------------------------------ BPF


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("expr", ["icmp or arp", "udp port 4789", "ip proto 47", "ip6 and icmp6",
                                  "tcp[tcpflags] & tcp-syn != 0", "ether host 02:00:00:00:00:01"])
def test_filter_compiles_like_tcpdump(expr: str, mix: tuple[Path, list[str]]) -> None:
    out = subprocess.run(["tcpdump", "-r", str(mix[0]), "-ddd", expr], capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    count = int(lines[0])
    expected = tuple(tuple(int(x) for x in line.split()) for line in lines[1:1 + count])
    program = compile_filter(expr)
    assert program.instructions == expected
    assert len(program.pack()) == 8 * count


def test_filter_errors_name_the_expression() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter("udp port nope")
    assert isinstance(info.value, ValueError)
    assert "'udp port nope'" in str(info.value) and "unknown port" in str(info.value)
    assert info.value.expression == "udp port nope"
    with pytest.raises(ValueError, match="syntax error"):
        compile_filter("tcp and (")
    with pytest.raises(ValueError, match="NUL"):
        compile_filter("icmp\0")
    try:
        from labkit.errors import LabkitError
    except ImportError:
        return
    assert isinstance(info.value, LabkitError)


def test_raw_ip_filter() -> None:
    assert compile_filter("ip", linktype=101).instructions[0] == (0x30, 0, 0, 0)  # ldb [0]: no link header


# ------------------------------------------------------------------------ summaries


def summary_table(tmp_path: Path) -> pd.DataFrame:
    ping = IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=1, seq=1)
    pong = IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=1, seq=1)
    vx = IP(src="172.16.1.1", dst="172.16.1.2") / UDP(sport=50000, dport=4789) / VXLAN(vni=42)
    group = IP(src="172.16.1.1", dst="239.1.1.1") / UDP(sport=50000, dport=4789) / VXLAN(vni=42)
    frames = [
        eth() / group / inner_eth() / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.2"),
        eth() / vx / inner_eth() / ARP(op=2, psrc="10.0.0.2", pdst="10.0.0.1"),
    ] + [eth() / vx / inner_eth() / p for _ in range(3) for p in (ping, pong)]
    frames.append(eth() / IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=40000, dport=80))
    path = write_pcap(tmp_path / "s.pcap", [bytes(f) for f in frames])
    Path(f"{path}.dir").write_bytes(b"LKPKTTY1" + bytes([4, 0] * 4 + [4]))
    return read_pcap(path, node="h1", interface="eth0")


def test_summary_reads_like_the_lab_guide(tmp_path: Path) -> None:
    text = summarize(summary_table(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "9 frames on h1:eth0 over 0.008 s (4 in, 5 out):"
    assert lines[1] == "- 1 ARP request inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2, via multicast 239.1.1.1"
    assert lines[2] == "- 1 ARP reply inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2"
    assert lines[3] == "- 6 ICMP echo request/reply inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2"
    assert lines[4] == "- 1 TCP port 80 between 10.9.0.1 and 10.9.0.2"


def test_summary_counts_the_rest(mix: tuple[Path, list[str]]) -> None:
    text = summarize(read_pcap(mix[0]), max_groups=3)
    assert text.splitlines()[-1].startswith("- and ")
    assert "ICMPv6 neighbor solicitation" in summarize(read_pcap(mix[0]))


def test_innermost_prefers_the_tunnelled_value(mix: tuple[Path, list[str]]) -> None:
    t = read_pcap(mix[0])
    src = innermost(t, "src_ip")
    assert src.iloc[13] == "10.0.0.1" and src.iloc[2] == "10.0.0.1" and pd.isna(src.iloc[0])


# ------------------------------------------------------------------------ plots


def multi_interface_table(tmp_path: Path) -> pd.DataFrame:
    """One ping seen on a container veth, the VXLAN underlay, and the far end."""
    ping = IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8, id=1, seq=1) / Raw(b"x" * 56)
    vx = IP(src="172.16.1.1", dst="172.16.1.2") / UDP(sport=50000, dport=4789) / VXLAN(vni=42) / inner_eth()
    a = read_pcap(write_pcap(tmp_path / "a.pcap", [bytes(eth() / ping)]), node="c1", interface="eth0")
    b = read_pcap(write_pcap(tmp_path / "b.pcap", [bytes(eth() / vx / ping)]), node="h1", interface="eth0")
    c = read_pcap(write_pcap(tmp_path / "c.pcap", [bytes(eth() / vx / ping)]), node="h2", interface="eth0")
    b["time"] += pd.Timedelta(microseconds=20)
    c["time"] += pd.Timedelta(microseconds=45)
    return pd.concat([a, b, c], ignore_index=True)


def test_timeline_has_one_lane_per_interface_and_a_journey(tmp_path: Path) -> None:
    table = multi_interface_table(tmp_path)
    fig = plots.timeline(table)
    assert isinstance(fig, go.Figure)
    lanes = list(fig.layout.yaxis.categoryarray)
    assert lanes == ["c1:eth0", "h1:eth0", "h2:eth0"]
    journeys = [tr for tr in fig.data if tr.mode == "lines"]
    assert len(journeys) == 1 and list(journeys[0].y) == lanes
    markers = [tr for tr in fig.data if tr.mode == "markers"]
    assert sum(len(tr.x) for tr in markers) == 3


def test_protocol_and_overhead_charts(mix: tuple[Path, list[str]]) -> None:
    t = read_pcap(mix[0])
    fig = plots.protocol_breakdown(t)
    assert isinstance(fig, go.Figure)
    assert sum(sum(tr.x) for tr in fig.data) == len(t)
    sun = plots.protocol_breakdown(t, kind="sunburst")
    assert "eth" in list(sun.data[0].labels)
    over = plots.overhead(t)
    bars = {tr.name: dict(zip(tr.x, tr.y)) for tr in over.data}
    assert bars["encapsulation overhead"]["vxlan"] == 50
    assert bars["encapsulation overhead"]["ipip"] == 20
    assert bars["encapsulation overhead"]["udp"] == 28


def test_rtt_plot_from_ping_results() -> None:
    from types import SimpleNamespace as NS

    result = NS(destination="10.0.0.2", sent=4, received=3,
                replies=[NS(seq=1, ttl=64, rtt_ms=0.2, source="10.0.0.2"),
                         NS(seq=2, ttl=64, rtt_ms=0.1, source="10.0.0.2"),
                         NS(seq=4, ttl=64, rtt_ms=0.3, source="10.0.0.2")])
    fig = plots.rtt({"vxlan": result, "direct": result})
    assert [tr.name for tr in fig.data if tr.mode != "markers"] == ["vxlan", "direct"]
    first = fig.data[0]
    assert list(first.x) == [1, 2, 3, 4] and first.y[2] is None  # seq 3 was lost: a gap
    lost = [tr for tr in fig.data if tr.mode == "markers"]
    assert lost and list(lost[0].x) == [3]


def test_topology_diagram_from_plain_data() -> None:
    topo = {
        "nodes": [
            {"name": "h1", "kind": "host", "addresses": ["172.16.1.1/24"]},
            {"name": "h2", "kind": "host", "addresses": ["172.16.1.2/24"]},
            {"name": "sw", "kind": "switch"},
            {"name": "c1", "kind": "container", "addresses": ["10.0.0.1/24"], "group": "h1"},
        ],
        "links": [
            {"a": "h1:eth0", "b": "sw:p1"},
            {"a": "h2:eth0", "b": "sw:p2"},
            {"a": "c1:eth0", "b": "h1:veth0"},
            {"a": "h1:vxlan42", "b": "h2:vxlan42", "kind": "vxlan", "label": "VNI 42"},
        ],
    }
    fig = plots.topology(topo)
    text = " ".join(str(t) for tr in fig.data for t in (tr.text or []) if t)
    for word in ("h1", "h2", "sw", "c1", "172.16.1.1/24", "VNI 42"):
        assert word in text, word
    dashed = [tr for tr in fig.data if tr.line and tr.line.dash == "dash"]
    assert len(dashed) == 1
    again = plots.topology(topo)
    assert again.to_json() == fig.to_json()  # the layout is deterministic
    with pytest.raises(ValueError, match="unknown node 'zz'"):
        plots.topology({"nodes": [{"name": "a"}], "links": [{"a": "a:eth0", "b": "zz:eth0"}]})


def test_topology_accepts_lab_describe_output() -> None:
    described = {
        "name": "demo",
        "nodes": [
            {"name": "h1", "kind": "host", "interfaces": [{"name": "eth0", "addresses": ["10.0.0.1/24"]}]},
            {"name": "h2", "kind": "host", "interfaces": [{"name": "eth0", "addresses": ["10.0.0.2/24"]}]},
        ],
        "links": [{"a": "h1", "a_ifname": "eth0", "b": "h2", "b_ifname": "eth0"}],
    }
    fig = plots.topology(described)
    text = " ".join(str(t) for tr in fig.data for t in (tr.text or []) if t)
    assert "10.0.0.1/24" in text and "eth0" in text


def test_figures_export_to_static_images_when_kaleido_can(tmp_path: Path, mix: tuple[Path, list[str]]) -> None:
    fig = plots.protocol_breakdown(read_pcap(mix[0]))
    try:
        fig.write_image(tmp_path / "p.png")
    except Exception as exc:  # noqa: BLE001 - kaleido needs a Chrome it may not find
        pytest.skip(f"static export unavailable here: {exc}")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_large_table_is_vectorised(tmp_path: Path) -> None:
    """Not a timing test: 20,000 packets decode to the same rows as 20 copies of 1,000."""
    frames = [f for _, f in catalogue()] * 1000
    big = read_pcap(write_pcap(tmp_path / "big.pcap", frames))
    assert len(big) == len(frames)
    counts = big["stack"].value_counts()
    assert counts["eth/ipv4/gre/ipv4/icmp"] == 2000
    assert np.array_equal(big["no"].to_numpy(), np.arange(1, len(frames) + 1))
