"""Commands, daemons, ping, traceroute and firewalls inside nodes."""

from __future__ import annotations

import sys

import pytest

from labkit import CommandFailed, CommandTimeout, Lab


@pytest.fixture
def routed(lab: Lab) -> Lab:
    """h1 - r1 - r2 - h2 with static routes: three hops from h1 to h2."""
    h1, r1, r2, h2 = (lab.add_host("h1"), lab.add_router("r1"), lab.add_router("r2"),
                      lab.add_host("h2"))
    lab.link(h1, r1)
    lab.link(r1, r2)
    lab.link(r2, h2)
    h1.add_address("eth0", "10.0.1.2/24")
    r1.add_address("eth0", "10.0.1.1/24")
    r1.add_address("eth1", "10.0.12.1/30")
    r2.add_address("eth0", "10.0.12.2/30")
    r2.add_address("eth1", "10.0.2.1/24")
    h2.add_address("eth0", "10.0.2.2/24")
    h1.add_route("default", via="10.0.1.1")
    h2.add_route("default", via="10.0.2.1")
    r1.add_route("10.0.2.0/24", via="10.0.12.2")
    r2.add_route("10.0.1.0/24", via="10.0.12.1")
    return lab


def test_run_returns_status_and_output(lab: Lab) -> None:
    h = lab.add_host("h")
    ok = h.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (ok.returncode, ok.stdout, ok.stderr) == (3, "out\n", "err\n")
    with pytest.raises(CommandFailed, match="exited with status 3: err"):
        ok.check()
    assert h.run("cat", input="hello").stdout == "hello"
    assert h.run("hostname").ok
    with pytest.raises(CommandTimeout, match="longer than 0.5 s"):
        h.run("sleep 10", timeout=0.5)


def test_a_command_that_ignores_its_input_is_not_an_error(lab: Lab) -> None:
    # Like a CNI plugin answering VERSION: it exits without reading stdin, so writing
    # (or flushing) the input meets EPIPE; that once failed the run (seen in CI).
    node = lab.add_host("quick")
    for payload in ("{}", "x" * 300_000):
        results = [node.run(["true"], input=payload) for _ in range(40)]
        assert all(r.ok for r in results)


def test_spawned_process_lives_until_stopped(lab: Lab) -> None:
    h = lab.add_host("h")
    proc = h.spawn(["sh", "-c", "echo ready; exec sleep 300"])
    proc.wait_for_output("ready")
    assert proc.running
    assert proc.stop(grace=1.0) == -15
    assert not proc.running
    quick = h.spawn(["sh", "-c", "echo bye"])
    assert quick.wait(timeout=5) == 0 and quick.stdout_text() == "bye\n"
    with pytest.raises(CommandTimeout, match="exited with status 1"):
        h.spawn(["sh", "-c", "exit 1"]).wait_for_output("never")


def test_ping_counts_ttl_and_record_route(routed: Lab) -> None:
    h1 = routed["h1"]
    result = h1.ping("10.0.2.2", count=3, record_route=True)
    assert (result.sent, result.received, result.loss) == (3, 3, 0.0)
    assert [r.seq for r in result.replies] == [1, 2, 3]
    assert all(r.ttl == 62 for r in result.replies)  # two routers on the way
    assert result.rtt_min <= result.rtt_avg <= result.rtt_max
    assert "10.0.12.1" in result.route and "10.0.2.2" in result.route
    lost = h1.ping("10.0.9.9", count=2, wait=0.3)
    assert lost.received == 0 and lost.loss == 1.0 and not lost


def test_ping_reports_unreachable_errors(routed: Lab) -> None:
    routed["r1"].add_route("10.0.99.0/24", kind="unreachable")
    result = routed["h1"].ping("10.0.99.1", count=1, wait=0.5)
    assert result.received == 0
    assert any("Unreachable" in e for e in result.errors), result.raw


def test_traceroute_lists_the_hops(routed: Lab) -> None:
    hops = routed["h1"].traceroute("10.0.2.2")
    assert [h.address for h in hops] == ["10.0.1.1", "10.0.12.2", "10.0.2.2"]
    assert [h.ttl for h in hops] == [1, 2, 3]


def test_nftables_filter_and_masquerade(routed: Lab) -> None:
    r2, h1 = routed["r2"], routed["h1"]
    # h2 has no route back to 10.0.1.0/24 except via r2; masquerade on r2 hides h1.
    r2.nft("""
        table ip nat {
            chain postrouting { type nat hook postrouting priority 100; oifname "eth1" masquerade; }
        }
    """)
    routed["h2"].del_route("default", via="10.0.2.1")
    assert h1.ping("10.0.2.2", count=1).received == 1  # replies go to r2's own address
    r2.nft("""
        table inet filter {
            chain forward { type filter hook forward priority 0; icmp type echo-request drop; }
        }
    """)
    assert h1.ping("10.0.2.2", count=1, wait=0.5).received == 0
    listing = r2.run(["nft", "list", "ruleset"], check=True).stdout
    assert "masquerade" in listing and "echo-request" in listing


SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(1); print("ready", flush=True)
c, peer = s.accept(); c.sendall(f"hello {peer[0]}".encode()); c.close()
"""
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
print(c.recv(100).decode())
"""


def test_iptables_dnat_publishes_a_port(routed: Lab) -> None:
    r1, h1, h2 = routed["r1"], routed["h1"], routed["h2"]
    server = h2.spawn([sys.executable, "-c", SERVER])
    server.wait_for_output("ready")
    r1.iptables("-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp", "--dport", "8080",
                "-j", "DNAT", "--to-destination", "10.0.2.2:80")
    rules = r1.run(["iptables", "-t", "nat", "-S", "PREROUTING"], check=True).stdout
    assert "--to-destination 10.0.2.2:80" in rules
    got = h1.run([sys.executable, "-c", CLIENT, "10.0.1.1", "8080"], timeout=10, check=True)
    assert got.stdout.strip() == "hello 10.0.1.2"  # no SNAT: h2 sees h1's own address
    assert server.wait(timeout=5) == 0
