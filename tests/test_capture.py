"""Capture real traffic in a lab and check the decoder against tshark, packet by packet.

The lab (addresses from the curriculum's B3/B4/D1 scenarios)::

    c1 eth0 192.168.7.2 --- eth1 192.168.7.1  h1  eth0 172.16.1.1 ---- eth0 172.16.1.2  h2
                                          fd00:1::1                        fd00:1::2
        vxlan42   VNI 42, group 239.1.1.1, UDP 4789:  10.0.0.1/24   <->   10.0.0.2/24
        flannel.1 VNI 1, unicast, UDP 8472 (flannel):  10.4.1.0/24   <->   10.4.1.1/24

The kernel here has no gretap/ipip, so h1 runs a userspace relay: every real frame
it sees on eth1 (c1's pings, ARP, IPv6 chatter) is sent to h2 as GRE/Ethernet
(0x6558) through a raw protocol-47 socket and, for IPv4, also as GRE/IPv4 (0x0800,
with a key), IP-in-IP (raw protocol-4 socket) and IPv4-in-UDP port 8285 (flannel's
udp backend). h2 runs a sink so those are not answered with ICMP errors. TCP goes to
a small echo server on h2; one UDP datagram to a closed port draws a real ICMP
port unreachable.

tshark is the referee: it dissects every file we write, and every field we decode
must equal its dissection of the same packet.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tshark_referee import referee
from labkit.capture import Capture, CaptureError, FilterError, MultiCapture, SnifferError, read_pcap

try:
    from labkit import Lab
except ImportError:  # the core is not there yet
    Lab = None  # type: ignore[assignment,misc]

needs_lab = pytest.mark.skipif(Lab is None, reason="labkit.Lab (the core) is not available")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

RELAY = r"""
import socket, struct, sys
src, dst, iface = sys.argv[1], sys.argv[2], sys.argv[3]
frames = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
frames.bind((iface, 0))
gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
ipip = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((src, 8285))
print("ready", flush=True)
while True:
    frame = frames.recv(65535)
    gre.sendto(struct.pack("!HH", 0, 0x6558) + frame, (dst, 0))
    if frame[12:14] == b"\x08\x00":
        packet = frame[14:]
        gre.sendto(struct.pack("!HHI", 0x2000, 0x0800, 7) + packet, (dst, 0))
        ipip.sendto(packet, (dst, 0))
        udp.sendto(packet, (dst, 8285))
"""

SINK = r"""
import socket
raw = [socket.socket(socket.AF_INET, socket.SOCK_RAW, p) for p in (47, 4)]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 8285))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8080))
srv.listen()
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(conn.recv(100))
    conn.close()
"""

CLIENT = r"""
import socket
c = socket.create_connection(("172.16.1.2", 8080), timeout=5)
c.sendall(b"hello")
c.recv(100)
c.close()
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("172.16.1.2", 9))
"""


def build_lab(name: str, workdir: Path) -> Any:
    """The lab drawn in the module docstring (without traffic)."""
    lab = Lab(name, ipv6=True, workdir=workdir)
    try:
        h1, h2, c1 = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("c1")
        lab.link(h1, h2)
        lab.link(h1, c1)
        h1.add_address("eth0", "172.16.1.1/24")
        h2.add_address("eth0", "172.16.1.2/24")
        h1.add_address("eth1", "192.168.7.1/24")
        c1.add_address("eth0", "192.168.7.2/24")
        for host, cidr in ((h1, "fd00:1::1/64"), (h2, "fd00:1::2/64")):
            host.run(["ip", "-6", "addr", "add", cidr, "dev", "eth0", "nodad"], check=True)
        for host, addr in ((h1, "10.0.0.1/24"), (h2, "10.0.0.2/24")):
            host.add_vxlan("vxlan42", 42, group="239.1.1.1", dev="eth0", port=4789)
            host.add_address("vxlan42", addr)
        for host, peer, local, addr in ((h1, "172.16.1.2", "172.16.1.1", "10.4.1.0/24"),
                                        (h2, "172.16.1.1", "172.16.1.2", "10.4.1.1/24")):
            host.add_vxlan("flannel.1", 1, remote=peer, local=local, dev="eth0", port=8472)
            host.add_address("flannel.1", addr)
    except BaseException:
        lab.close()
        raise
    return lab


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build the lab, capture on four interfaces while traffic of every kind flows."""
    if Lab is None:
        pytest.skip("labkit.Lab (the core) is not available")
    out = tmp_path_factory.mktemp("captures")
    with build_lab("captest", out) as lab:
        h1, h2, c1 = lab.node("h1"), lab.node("h2"), lab.node("c1")
        sink = h2.spawn([sys.executable, "-c", SINK])
        sink.wait_for_output("ready", timeout=10)
        mc = MultiCapture([(h1, "eth0"), (h1, "eth1"), (h1, "vxlan42"), (h2, "eth0")], directory=out)
        with mc:
            relay = h1.spawn([sys.executable, "-c", RELAY, "172.16.1.1", "172.16.1.2", "eth1"])
            relay.wait_for_output("ready", timeout=10)
            pings = {
                "vxlan": h1.ping("10.0.0.2", count=3),
                "flannel": h1.ping("10.4.1.1", count=2),
                "relayed": c1.ping("192.168.7.1", count=2),
                "ipv6": h1.ping("fd00:1::2", count=2),
            }
            h1.run([sys.executable, "-c", CLIENT], check=True)
            time.sleep(0.3)
            relay.stop()
            live_count = mc.count
        procs = [cap._proc for cap in mc.captures]
        sink.stop()
    return {"mc": mc, "pings": pings, "live_count": live_count, "procs": procs, "dir": out}


# ------------------------------------------------------------------------ tests

@needs_lab
@needs_tshark
def test_tshark_agrees_on_every_packet_and_every_protocol(traffic: dict[str, Any]) -> None:
    mc: MultiCapture = traffic["mc"]
    stacks: set[str] = set()
    total = 0
    for cap in mc.captures:
        table = cap.table()
        assert len(table) == cap.count > 0
        total += referee(cap.path, table)
        stacks |= set(table["stack"])
    assert total > 1000
    joined = "\n".join(sorted(stacks))
    expected = [
        r"^eth/arp$", r"^eth/ipv4/icmp$", r"^eth/ipv6/icmpv6$", r"^eth/ipv4/udp$", r"^eth/ipv4/tcp$",
        r"udp/vxlan\(vni=42\)/eth/arp", r"udp/vxlan\(vni=42\)/eth/ipv4/icmp",
        r"udp/vxlan\(vni=1\)/eth/ipv4/icmp",  # flannel's UDP 8472
        r"ipv4/gre/eth/ipv4/icmp", r"ipv4/gre/eth/arp", r"ipv4/gre/ipv4/icmp",
        r"^eth/ipv4/ipv4/icmp$", r"^eth/ipv4/udp/ipv4/icmp$",
    ]
    for pattern in expected:
        assert re.search(pattern, joined, re.M), f"no packet matched {pattern}:\n{joined}"


@needs_lab
def test_overhead_and_tunnel_columns(traffic: dict[str, Any]) -> None:
    table = traffic["mc"].captures[0].table()  # h1:eth0, where the tunnels run
    by_stack = table.groupby("stack")["overhead_bytes"].unique()
    expected = {
        "eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp": 50,
        "eth/ipv4/udp/vxlan(vni=1)/eth/ipv4/icmp": 50,
        "eth/ipv4/gre/eth/ipv4/icmp": 38,
        "eth/ipv4/gre/ipv4/icmp": 28,  # GRE with a 4-byte key
        "eth/ipv4/ipv4/icmp": 20,
        "eth/ipv4/udp/ipv4/icmp": 28,
        "eth/ipv4/icmp": 0,
    }
    for stack, overhead in expected.items():
        assert list(by_stack[stack]) == [overhead], stack
    tunnels = table.drop_duplicates("stack").set_index("stack")["tunnel"]
    assert tunnels["eth/ipv4/gre/ipv4/icmp"] == "gre"
    assert tunnels["eth/ipv4/ipv4/icmp"] == "ipip"
    assert tunnels["eth/ipv4/udp/ipv4/icmp"] == "udp"
    assert pd.isna(tunnels["eth/ipv4/icmp"])
    vx = table[(table["vni"] == 42) & (table["inner_proto"] == 1)]
    assert set(vx["inner_src_ip"].dropna()) == {"10.0.0.1", "10.0.0.2"}
    assert set(table.loc[table["gre_key"].notna(), "gre_key"]) == {7}


@needs_lab
def test_multicapture_follows_one_ping_across_interfaces(traffic: dict[str, Any]) -> None:
    mc: MultiCapture = traffic["mc"]
    table = mc.table()
    assert table["time"].is_monotonic_increasing
    assert len(table) == sum(len(c.table()) for c in mc.captures) == mc.count
    assert traffic["live_count"] > 0
    seq1 = table[(table["icmp_type"] == 8) & (table["icmp_seq"] == 1) & (table["dst_ip"] == "10.0.0.2")]
    seq1_inner = table[(table["inner_icmp_type"] == 8) & (table["inner_icmp_seq"] == 1)
                       & (table["inner_dst_ip"] == "10.0.0.2")]
    journey = pd.concat([seq1, seq1_inner]).sort_values("time")
    places = list(journey["node"] + ":" + journey["interface"])
    assert places == ["h1:vxlan42", "h1:eth0", "h2:eth0"], places
    assert list(journey["direction"]) == ["out", "out", "in"]
    assert first_row(journey, "h1:eth0")["overhead_bytes"] == 50


def first_row(table: pd.DataFrame, place: str) -> pd.Series:
    return table[(table["node"] + ":" + table["interface"]) == place].iloc[0]


@needs_lab
@needs_tshark
def test_merged_pcapng_keeps_interfaces_and_directions(traffic: dict[str, Any]) -> None:
    mc: MultiCapture = traffic["mc"]
    merged = mc.merge()
    assert merged.parent == traffic["dir"] and merged.suffix == ".pcapng"
    ours = read_pcap(merged)
    expected = mc.table()
    keys = ["time", "node", "interface", "direction", "stack", "length", "src_ip", "inner_src_ip"]
    pd.testing.assert_frame_equal(ours[keys], expected[keys])
    out = subprocess.run(["tshark", "-r", str(merged), "-T", "fields", "-e", "frame.interface_name",
                          "-e", "frame.packet_flags_direction"], capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [r[0] for r in rows] == list(expected["node"] + ":" + expected["interface"])
    assert [{"0x00000001": "in", "0x00000002": "out"}.get(r[1]) for r in rows] == list(expected["direction"])
    assert referee(merged, ours) > 1000


@needs_lab
def test_direction_and_summary(traffic: dict[str, Any]) -> None:
    cap = traffic["mc"].captures[2]  # h1:vxlan42
    table = cap.table()
    echo = table[table["proto"] == 1]
    assert set(echo.loc[echo["icmp_type"] == 8, "direction"]) == {"out"}
    assert set(echo.loc[echo["icmp_type"] == 0, "direction"]) == {"in"}
    text = cap.summary()
    assert text.startswith(f"{len(table)} frames on h1:vxlan42")
    assert "6 ICMP echo request/reply between 10.0.0.1 and 10.0.0.2" in text
    outer = traffic["mc"].captures[0].summary()
    assert "ICMP echo request/reply inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2" in outer
    assert "ARP request inside VXLAN VNI 42 between 10.0.0.1 and 10.0.0.2, via multicast 239.1.1.1" in outer


@needs_lab
def test_no_sniffer_outlives_its_capture(traffic: dict[str, Any]) -> None:
    for proc in traffic["procs"]:
        assert proc.returncode == 0
    for cap in traffic["mc"].captures:
        assert not cap.running
        assert cap.dropped == 0
        assert cap.path.parent == traffic["dir"]


# -------------------------------------------------------------- single captures, bounds


@pytest.fixture
def pair(tmp_path: Path) -> Any:
    """Two hosts on one cable: h1 eth0 10.0.0.1/24 --- h2 eth0 10.0.0.2/24."""
    if Lab is None:
        pytest.skip("labkit.Lab (the core) is not available")
    with Lab("cappair", workdir=tmp_path) as lab:
        h1, h2 = lab.add_host("h1"), lab.add_host("h2")
        lab.link(h1, h2)
        h1.add_address("eth0", "10.0.0.1/24")
        h2.add_address("eth0", "10.0.0.2/24")
        yield lab


@needs_lab
@needs_tshark
def test_filter_count_and_context_manager(pair: Any, tmp_path: Path) -> None:
    h1 = pair.node("h1")
    with Capture(h1, "eth0", filter="icmp", path=tmp_path / "icmp.pcap") as cap:
        assert cap.running
        h1.ping("10.0.0.2", count=2)
    assert not cap.running
    table = cap.table()
    assert list(table["icmp_type"]) == [8, 0, 8, 0]
    assert referee(cap.path, table) > 0
    assert cap.path.read_bytes()[:4] == bytes.fromhex("4d3cb2a1")  # nanosecond pcap


@needs_lab
def test_count_bound_ends_the_capture(pair: Any, tmp_path: Path) -> None:
    h1 = pair.node("h1")
    cap = Capture(h1, "eth0", filter="icmp", count=3, path=tmp_path / "three.pcap").start()
    h1.ping("10.0.0.2", count=4)
    cap.wait(timeout=10)
    assert not cap.running and cap.count == 3 and len(cap.table()) == 3
    cap.stop()  # harmless after the end


@needs_lab
def test_duration_and_size_bounds(pair: Any, tmp_path: Path) -> None:
    h1 = pair.node("h1")
    started = time.monotonic()
    timed = Capture(h1, "eth0", duration=0.5, path=tmp_path / "timed.pcap").start()
    timed.wait(timeout=10)
    assert 0.4 < time.monotonic() - started < 5
    sized = Capture(h1, "eth0", max_bytes=400, path=tmp_path / "sized.pcap").start()
    h1.ping("10.0.0.2", count=5, interval=0.05)
    sized.wait(timeout=10)
    assert sized.path.stat().st_size <= 400
    assert 1 <= sized.count <= 4


@needs_lab
def test_live_count_grows_while_running(pair: Any, tmp_path: Path) -> None:
    h1 = pair.node("h1")
    with Capture(h1, "eth0", filter="icmp", path=tmp_path / "live.pcap") as cap:
        h1.ping("10.0.0.2", count=2)
        deadline = time.monotonic() + 5
        while cap.count < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cap.count == 4
        assert len(cap.table()) == 4  # readable while the sniffer still runs


@needs_lab
def test_missing_interface_is_a_clear_error_and_leaves_no_process(pair: Any, tmp_path: Path) -> None:
    h1 = pair.node("h1")
    cap = Capture(h1, "eth9", path=tmp_path / "none.pcap")
    with pytest.raises(SnifferError, match=r"h1:eth9.*no such interface.*eth0"):
        cap.start()
    assert not cap.running
    assert not cap._proc.running


@needs_lab
def test_invalid_filter_fails_before_any_process(pair: Any, tmp_path: Path) -> None:
    with pytest.raises(FilterError, match=r"'udp port nope'.*unknown port"):
        Capture(pair.node("h1"), "eth0", filter="udp port nope", path=tmp_path / "x.pcap")
    with pytest.raises(ValueError):
        Capture(pair.node("h1"), "eth0", filter="tcp and (", path=tmp_path / "x.pcap")
    assert not (tmp_path / "x.pcap").exists()


@needs_lab
def test_link_down_pauses_the_capture_and_deleting_it_ends_it(pair: Any, tmp_path: Path) -> None:
    """Students break links on purpose: the capture must survive `ip link set eth0 down`."""
    h1 = pair.node("h1")
    cap = Capture(h1, "eth0", filter="icmp", path=tmp_path / "flap.pcap").start()
    h1.ping("10.0.0.2", count=1)
    h1.run(["ip", "link", "set", "eth0", "down"], check=True)
    h1.run(["ip", "link", "set", "eth0", "up"], check=True)
    assert h1.ping("10.0.0.2", count=1, wait=2).received == 1
    deadline = time.monotonic() + 5
    while cap.count < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cap.running and cap.count == 4
    assert "went down" in cap._proc.stderr_text()
    h1.run(["ip", "link", "del", "eth0"], check=True)
    cap.wait(timeout=10)  # ends by itself, without an error
    assert "reason=interface-deleted" in cap._proc.stdout_text()
    assert list(cap.table()["icmp_type"]) == [8, 0, 8, 0]


@needs_lab
def test_default_files_go_to_the_lab_workdir(pair: Any, tmp_path: Path) -> None:
    h1 = pair.node("h1")
    first = Capture(h1, "eth0", duration=0.1).start().wait(timeout=10)
    second = Capture(h1, "eth0", duration=0.1).start().wait(timeout=10)
    assert first.path == tmp_path / "captures" / "h1-eth0-1.pcap"
    assert second.path == tmp_path / "captures" / "h1-eth0-2.pcap"
    assert first.path.exists() and Path(f"{second.path}.dir").exists()
    with pytest.raises(CaptureError, match="'h1' is not a node"):
        Capture("h1", "eth0")  # type: ignore[arg-type]
    with pytest.raises(CaptureError, match="interface name 'this-name-is-too-long'"):
        Capture(h1, "this-name-is-too-long")
    with pytest.raises(CaptureError, match="count must be positive"):
        Capture(h1, "eth0", count=0)


@needs_lab
def test_capture_cannot_restart(pair: Any, tmp_path: Path) -> None:
    cap = Capture(pair.node("h1"), "eth0", path=tmp_path / "once.pcap")
    cap.start().stop()
    with pytest.raises(Exception, match="already started"):
        cap.start()


@needs_lab
def test_closing_the_lab_ends_the_sniffer(tmp_path: Path) -> None:
    lab = Lab("capclose", workdir=tmp_path)
    try:
        h1 = lab.add_host("h1")
        cap = Capture(h1, "lo", path=tmp_path / "lo.pcap").start()
        pid_running = cap.running
    finally:
        lab.close()
    assert pid_running
    # The sniffer lived in the lab's PID namespace: nothing named like it is left.
    deadline = time.monotonic() + 5
    while _processes_mentioning(str(tmp_path / "lo.pcap")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_mentioning(str(tmp_path / "lo.pcap")) == []


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


TUN = r"""
import fcntl, os, struct
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"flannel0", 0x0001 | 0x1000))  # TUNSETIFF: TUN, no PI
print("ready", flush=True)
while True:
    os.read(fd, 65535)  # flanneld would wrap these in UDP 8285; we drop them
"""


@needs_lab
@needs_tshark
def test_raw_ip_capture_on_a_tun_device(pair: Any, tmp_path: Path) -> None:
    """flannel's udp backend routes pod traffic into a TUN device, flannel0: no Ethernet."""
    h1 = pair.node("h1")
    tun = h1.spawn([sys.executable, "-c", TUN])
    try:
        tun.wait_for_output("ready", timeout=10)
    except Exception as exc:  # noqa: BLE001 - /dev/net/tun is often closed to unprivileged users
        pytest.skip(f"no TUN device here: {exc}")
    h1.run(["ip", "link", "set", "flannel0", "up"], check=True)
    h1.run(["ip", "addr", "add", "10.4.1.0/16", "dev", "flannel0"], check=True)
    with Capture(h1, "flannel0", path=tmp_path / "flannel0.pcap") as cap:
        h1.ping("10.4.2.2", count=2, wait=0.2)
    table = cap.table()
    assert cap.path.read_bytes()[20:24] == (101).to_bytes(4, "little")  # LINKTYPE_RAW
    echo = table[table["icmp_type"] == 8]
    assert list(echo["stack"]) == ["ipv4/icmp"] * 2
    assert set(echo["direction"]) == {"out"} and set(echo["dst_ip"]) == {"10.4.2.2"}
    assert echo["src_mac"].isna().all()
    assert referee(cap.path, table) > 0
    tun.stop()


# ------------------------------------------------------------------------ unprivileged


@pytest.mark.unprivileged
@needs_tshark
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root to become nobody")
def test_sniffer_works_unprivileged_in_a_user_namespace(tmp_path: Path) -> None:
    """Debian's tcpdump fails in an unprivileged user namespace; the sniffer does not."""
    with tempfile.TemporaryDirectory(prefix="labkit-nobody-") as name:  # tmp_path is root-only
        workdir = Path(name)
        workdir.chmod(0o777)
        _capture_as_nobody(workdir / "lo.pcap")


def _capture_as_nobody(out: Path) -> None:
    script = (
        "ip link set lo up && "
        f"{{ {sys.executable} -m labkit.capture.sniffer --iface lo --out {out} --filter icmp --count 2 & }} && "
        "for i in $(seq 100); do [ -s " + f"{out}.dir" + " ] && break; sleep 0.05; done; "
        "ping -c 1 -W 2 127.0.0.1 >/dev/null; wait"
    )
    res = subprocess.run(
        ["su", "-s", "/bin/sh", "nobody", "-c", f"unshare -Urn sh -c '{script}'"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "ready" in res.stdout and "done packets=2" in res.stdout
    table = read_pcap(out)
    assert list(table["icmp_type"]) == [8, 0]
    assert referee(out, table) > 0
    assert out.stat().st_uid != 0  # written by nobody, not by root


UNPRIVILEGED_LAB = r"""
import sys
from labkit import Lab
from labkit.capture import MultiCapture
out = sys.argv[1]
with Lab("nobodylab") as lab:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    lab.link(h1, h2)
    h1.add_address("eth0", "10.0.0.1/24")
    h2.add_address("eth0", "10.0.0.2/24")
    with MultiCapture([(h1, "eth0"), (h2, "eth0")], filter="icmp", directory=out) as mc:
        h1.ping("10.0.0.2", count=2)
    print(mc.summary())
"""


@pytest.mark.unprivileged
@needs_lab
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_lab_capture_as_an_unprivileged_user() -> None:
    with tempfile.TemporaryDirectory(prefix="labkit-nobody-") as name:
        Path(name).chmod(0o777)
        res = subprocess.run(
            ["su", "-s", "/bin/sh", "nobody", "-c", f"{sys.executable} -c '{UNPRIVILEGED_LAB}' {name}"],
            capture_output=True, text=True, timeout=120, cwd=name,
        )
        if "NamespacesUnavailable" in res.stderr:
            pytest.skip("this host does not allow unprivileged user namespaces")
        assert res.returncode == 0, res.stderr
        assert "8 frames on 2 interfaces (h1:eth0, h2:eth0)" in res.stdout
        assert "- 8 ICMP echo request/reply between 10.0.0.1 and 10.0.0.2" in res.stdout
        files = sorted(p.name for p in Path(name).iterdir())
        assert files == ["h1-eth0-1.pcap", "h1-eth0-1.pcap.dir", "h2-eth0-1.pcap", "h2-eth0-1.pcap.dir"]
        assert all(p.stat().st_uid != 0 for p in Path(name).iterdir())


def test_sniffer_rejects_bad_arguments(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "labkit.capture.sniffer", "--iface", "nosuch0", "--out", str(tmp_path / "x.pcap")],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sniffer: ") and "no such interface" in lines[0]
    res = subprocess.run(
        [sys.executable, "-m", "labkit.capture.sniffer", "--iface", "lo", "--out", str(tmp_path / "x.pcap"),
         "--filter", "tcp and ("],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 2 and "syntax error" in res.stderr


def test_capture_in_this_namespace_stops_cleanly(tmp_path: Path) -> None:
    """``node=None``: a sniffer in this process's own namespace (on lo), SIGTERM to stop."""
    if os.geteuid() != 0:
        pytest.skip("capturing outside a lab needs CAP_NET_RAW")
    import socket

    cap = Capture(None, "lo", filter="udp port 9", path=tmp_path / "lo.pcap")
    with cap:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", ("127.0.0.1", 9))
        deadline = time.monotonic() + 5
        while cap.count < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert cap._proc.returncode == 0 and not cap.running
    assert cap.dropped == 0
    table = cap.table()
    assert len(table) == 1 and table.loc[0, "dport"] == 9 and table.loc[0, "node"] == "local"
    assert table.loc[0, "direction"] == "in"  # loopback: each packet once, not twice


def test_node_and_lab_capture_shortcuts(tmp_path) -> None:
    with Lab("shortcuts", workdir=tmp_path) as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.link(a, b)
        a.add_address("eth0", "10.0.0.1/24")
        b.add_address("eth0", "10.0.0.2/24")
        with b.capture("eth0", filter="icmp") as one, lab.capture([("a", "eth0"), (b, "eth0")]) as both:
            a.ping("10.0.0.2", count=2)
        assert list(one.table()["icmp_type"]) == [8, 0, 8, 0]
        assert one.path.parent == tmp_path / "captures"
        table = both.table()
        assert set(table["node"]) == {"a", "b"} and len(table[table["stack"] == "eth/ipv4/icmp"]) == 8
