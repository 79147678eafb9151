"""Checkpoints: the student-facing API, its recording, and checks against real labs."""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest

from labkit import checkpoints as cpmod
from labkit.checkpoints import (
    MIME_TYPE,
    Checkpoint,
    CheckpointResult,
    CheckResult,
    address_matches,
    checks,
    route_matches,
)
from labkit.model import Address, Route


@pytest.fixture(autouse=True)
def _fresh_registry():
    cpmod._RESULTS.clear()
    yield
    cpmod._RESULTS.clear()


# -- the Checkpoint object -------------------------------------------------------------

def test_with_block_passes_when_every_check_passes(capsys):
    with Checkpoint("1.1", "two checks", points=2, hint="look again") as cp:
        cp.check(CheckResult(True, "first"), checks.expect(1 + 1 == 2, "arithmetic works"))
    result = cp.result
    assert result is not None and result.passed and result.score == 2
    assert result.reason == "first; arithmetic works"
    text = capsys.readouterr().out  # no IPython here: printed
    assert text.startswith("PASS  Checkpoint 1.1 (2/2 points): two checks")
    assert "Hint" not in text


def test_with_block_fails_and_shows_hint(capsys):
    with Checkpoint("1.2", "one fails", points=3, hint="look again") as cp:
        cp.check(CheckResult(True, "fine"))
        cp.check(checks.expect(False, "h1 forwards"))
    assert cp.result is not None and not cp.result.passed and cp.result.score == 0
    assert cp.result.reason == "h1 forwards: not the case"
    text = capsys.readouterr().out
    assert "FAIL  Checkpoint 1.2 (0/3 points)" in text
    assert "[FAILED] h1 forwards: not the case" in text and "Hint: look again" in text


def test_error_inside_block_fails_the_checkpoint_instead_of_raising():
    with Checkpoint("1.3", "uses an undefined host") as cp:
        cp.check(checks.ping(undefined_host, "10.0.0.2"))  # type: ignore[name-defined]  # noqa: F821
    assert cp.result is not None and not cp.result.passed
    assert cp.result.reason == "could not check: NameError: name 'undefined_host' is not defined"


def test_keyboard_interrupt_is_not_swallowed():
    with pytest.raises(KeyboardInterrupt), Checkpoint("1.4", "interrupted"):
        raise KeyboardInterrupt


def test_empty_block_fails():
    with Checkpoint("1.5", "nothing checked") as cp:
        pass
    assert cp.result is not None and cp.result.reason == "no requirement was checked"


def test_standalone_check_records_at_once_and_accepts_callables_and_bools():
    cp = Checkpoint("2.1", "standalone")
    cp.check(lambda: checks.expect(True, "lazy"), True)
    assert cp.result is not None and cp.result.passed
    cp.check(lambda: 1 / 0)
    assert cp.result is not None and not cp.result.passed
    assert cp.result.reason == "could not check: ZeroDivisionError: division by zero"
    cp.check("yes")  # type: ignore[arg-type]
    assert cp.result is not None and "must return a CheckResult or a bool" in cp.result.reason
    assert cpmod.results()["2.1"] is cp.result  # the latest result per id


@pytest.mark.parametrize("kwargs", [{"id": ""}, {"id": 3}, {"points": -1}, {"points": "2"}])
def test_invalid_checkpoint_arguments(kwargs):
    args = {"id": "1", "title": "t", **kwargs}
    with pytest.raises(ValueError):
        Checkpoint(args.pop("id"), args.pop("title"), **args)


def test_record_and_renderings():
    result = CheckpointResult("3.1", "a <title>", 1.5,
                              (CheckResult(True, "ok & fine"), CheckResult(False, "bad <b>")),
                              hint="try")
    record = result.record()
    assert record == {"schema": 1, "id": "3.1", "title": "a <title>", "points": 1.5, "score": 0,
                      "passed": False, "reason": "bad <b>",
                      "checks": [{"passed": True, "reason": "ok & fine"},
                                 {"passed": False, "reason": "bad <b>"}], "hint": "try"}
    json.dumps(record)  # JSON-serialisable as stored in the notebook
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {MIME_TYPE, "text/html", "text/plain"}
    assert "&lt;b&gt;" in bundle["text/html"] and "<b>FAIL</b>" in bundle["text/html"]
    assert "0 / 1.5 points" in bundle["text/html"]
    assert bundle["text/plain"].splitlines()[0] == "FAIL  Checkpoint 3.1 (0/1.5 points): a <title>"


def test_long_reasons_are_clipped():
    with Checkpoint("3.2", "long") as cp:
        cp.check(CheckResult(False, "x" * 2000))
    assert cp.result is not None and len(cp.result.reason) == 500


def test_summary_table():
    Checkpoint("a", "first", points=2).check(True)
    Checkpoint("b", "second").check(False)
    table = cpmod.summary()
    assert list(table["checkpoint"]) == ["a", "b"]
    assert list(table["score"]) == [2, 0]


# -- pure matching helpers -------------------------------------------------------------

def _route(dst, gateway=None, dev="eth0"):
    return Route("inet", dst, gateway, dev, "unicast", "static", "global", None, None, False)


@pytest.mark.parametrize("route, want, ok", [
    (_route("default", "10.0.0.254"), ("default", "10.0.0.254", None), True),
    (_route("default", "10.0.0.254"), ("0.0.0.0/0", None, "eth0"), True),
    (_route("default", "10.0.0.254"), ("default", "10.0.0.1", None), False),
    (_route("10.1.0.0/24", None, "eth1"), ("10.1.0.0/24", None, "eth0"), False),
    (_route("10.1.0.0/24", None, "eth1"), ("10.1.0.7/24", None, None), True),
    (_route("10.1.0.5"), ("10.1.0.5/32", None, None), True),
    (_route("fe80::/64"), ("default", None, None), False),
])
def test_route_matches(route, want, ok):
    assert route_matches(route, *want) is ok


@pytest.mark.parametrize("cidr, dev, ok", [
    ("10.0.0.1/24", None, True), ("10.0.0.1", "eth0", True), ("10.0.0.1/16", None, False),
    ("10.0.0.2", None, False), ("10.0.0.1/24", "eth1", False), ("nonsense", None, False),
])
def test_address_matches(cidr, dev, ok):
    addr = Address("eth0", "inet", "10.0.0.1", 24, "global")
    assert address_matches(addr, cidr, dev) is ok


def test_capture_check_on_a_table():
    table = pd.DataFrame({"stack": ["eth/arp", "eth/ipv4/udp/vxlan(vni=42)/eth/ipv4/icmp",
                                    "eth/ipv4/udp/vxlan(vni=42)/eth/arp"]})
    ok = checks.capture(table, "udp/vxlan(vni=42)/eth")
    assert ok.passed and ok.reason == "2 of 3 captured packets match 'udp/vxlan(vni=42)/eth'"
    assert not checks.capture(table, "gre/eth").passed
    assert checks.capture(table, "gre/eth", absent=True).passed
    assert checks.capture(table, pattern=r"vxlan\(vni=\d+\)/eth/ipv4/icmp$").passed
    assert not checks.capture(table, "vxlan", min_count=3).passed
    with pytest.raises(ValueError):
        checks.capture(table)


def test_docker_checks_fail_cleanly_without_an_engine():
    class NoEngine:
        class networks:
            @staticmethod
            def list(names):
                raise ConnectionError("no daemon at /var/run/docker.sock")
    result = checks.docker_network("bridge_test", client=NoEngine())
    assert not result.passed and "cannot reach the Docker engine" in result.reason


# -- checks against real labs ----------------------------------------------------------

@pytest.fixture(scope="module")
def net():
    from labkit import Lab

    with Lab("checks") as lab:
        h1, h2, sw = lab.add_host("h1"), lab.add_host("h2"), lab.add_switch("sw")
        lab.link(h1, sw)
        lab.link(h2, sw)
        h1.add_address("eth0", "10.0.0.1/24")
        h2.add_address("eth0", "10.0.0.2/24")
        h1.add_route("default", via="10.0.0.254")
        yield lab


def test_ping_success_and_failure(net):
    h1 = net["h1"]
    ok = checks.ping(h1, "10.0.0.2", expect="success")
    assert ok.passed and ok.reason == "ping h1 -> 10.0.0.2: 2 of 2 echo requests answered"
    bad = checks.ping(h1, "10.0.0.9", expect="success", count=1)
    assert not bad.passed and bad.reason.endswith("0 of 1 echo requests answered (expected replies)")
    assert checks.ping(h1, "10.0.0.9", expect="failure", count=1).passed
    assert not checks.ping(h1, "10.0.0.2", expect="failure", count=1).passed
    with pytest.raises(ValueError):
        checks.ping(h1, "10.0.0.2", expect="maybe")  # type: ignore[arg-type]


def test_route_present_and_absent(net):
    h1 = net["h1"]
    assert checks.route(h1, "default", via="10.0.0.254").reason == \
        "h1: route to default via 10.0.0.254 is present"
    missing = checks.route(h1, "10.9.0.0/16")
    assert not missing.passed and missing.reason == "h1: route to 10.9.0.0/16 is missing"
    assert checks.route(h1, "10.9.0.0/16", present=False).passed
    assert not checks.route(h1, "default", present=False).passed
    assert checks.route(h1, "10.0.0.0/24", dev="eth0").passed


def test_address_interface_sysctl_command(net):
    h1, sw = net["h1"], net["sw"]
    assert checks.address(h1, "10.0.0.1/24", dev="eth0").passed
    assert not checks.address(h1, "10.0.0.3/24").passed
    assert checks.interface(h1, "eth0", up=True).reason == "h1: eth0 is up"
    assert checks.interface(sw, "eth0", master="br0").passed
    wrong = checks.interface(sw, "eth0", master="br9", mtu=9000)
    assert not wrong.passed and "has master br0 (expected br9)" in wrong.reason
    assert not checks.interface(h1, "eth7").passed
    assert checks.sysctl(h1, "net.ipv4.ip_forward", 0).passed
    assert not checks.sysctl(h1, "net.ipv4.ip_forward", 1).passed
    assert checks.command(h1, ["ip", "-br", "addr"], stdout_contains="10.0.0.1/24").passed
    assert checks.command(h1, ["ip", "-br", "addr"], stdout_lacks="10.0.0.2/24").passed
    hidden = checks.command(h1, ["ip", "-br", "addr"], stdout_lacks="10.0.0.1/24")
    assert not hidden.passed and "printed '10.0.0.1/24', which it should not" in hidden.reason
    assert not checks.command(h1, ["false"]).passed


def test_neighbour_and_fdb_after_traffic(net):
    h1, h2, sw = net["h1"], net["h2"], net["sw"]
    assert h1.ping("10.0.0.2", count=1).received == 1
    mac = h2.interface("eth0").address
    assert checks.neighbour(h1, "10.0.0.2", lladdr=mac, dev="eth0").passed
    assert not checks.neighbour(h1, "10.0.0.77").passed
    assert checks.fdb(sw, mac).passed
    assert checks.fdb(sw, "02:00:00:00:00:99", present=False).passed


def test_tcp_open_and_closed_by_a_firewall_rule(net):
    h1, h2 = net["h1"], net["h2"]
    server = h2.spawn(["python3", "-m", "http.server", "8080", "--bind", "10.0.0.2"])
    try:
        deadline = time.monotonic() + 10
        while not checks.tcp(h1, "10.0.0.2", 8080).passed and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checks.tcp(h1, "10.0.0.2", 8080, expect="open").passed
        assert checks.tcp(h1, "10.0.0.2", 8081, expect="closed").passed  # refused
        h2.iptables("-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP").check()
        closed = checks.tcp(h1, "10.0.0.2", 8080, expect="closed", timeout=1)
        assert closed.passed and closed.reason == "TCP h1 -> 10.0.0.2:8080: filtered"
        assert not checks.tcp(h1, "10.0.0.2", 8080, timeout=1).passed
    finally:
        h2.iptables("-F", "INPUT")
        server.stop()


def test_vxlan_encapsulation_in_a_real_capture(tmp_path):
    from labkit import Lab
    from labkit.capture import Capture

    with Lab("vx") as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.link(a, b)
        a.add_address("eth0", "172.16.1.1/24")
        b.add_address("eth0", "172.16.1.2/24")
        for node, local, remote, inner in ((a, "172.16.1.1", "172.16.1.2", "10.4.0.1/24"),
                                           (b, "172.16.1.2", "172.16.1.1", "10.4.0.2/24")):
            node.add_vxlan("vxlan0", 42, remote=remote, local=local, dev="eth0")
            node.add_address("vxlan0", inner)
        with Capture(a, "eth0", path=tmp_path / "a.pcap") as cap:
            assert a.ping("10.4.0.2", count=2).received == 2
        assert checks.capture(cap, "udp/vxlan(vni=42)/eth/ipv4/icmp").passed
        assert checks.capture(tmp_path / "a.pcap", "udp/vxlan(vni=42)/eth").passed
        assert checks.capture(cap, "gre", absent=True).passed


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_agrees_with_the_capture_check(tmp_path):
    """Cross-check: the encapsulation the check sees is what tshark dissects."""
    import subprocess

    from labkit import Lab
    from labkit.capture import Capture

    with Lab("vx2") as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.link(a, b)
        a.add_address("eth0", "172.16.1.1/24")
        b.add_address("eth0", "172.16.1.2/24")
        for node, remote, inner in ((a, "172.16.1.2", "10.4.0.1/24"),
                                    (b, "172.16.1.1", "10.4.0.2/24")):
            node.add_vxlan("vxlan0", 7, remote=remote, dev="eth0")
            node.add_address("vxlan0", inner)
        with Capture(a, "eth0", path=tmp_path / "a.pcap"):
            a.ping("10.4.0.2", count=1)
    out = subprocess.run(["tshark", "-r", str(tmp_path / "a.pcap"), "-T", "fields",
                          "-e", "vxlan.vni", "-Y", "icmp"], capture_output=True, text=True).stdout
    assert "7" in out.split()
    assert checks.capture(tmp_path / "a.pcap", "vxlan(vni=7)/eth/ipv4/icmp").passed
