"""Pure logic: name and address checks, tool-output parsers, error transport."""

from __future__ import annotations

import ipaddress

import pytest

from labkit import errors, validate
from labkit.results import parse_ping, parse_traceroute

PING_OK = """PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.
64 bytes from 10.0.2.2: icmp_seq=1 ttl=62 time=0.081 ms
64 bytes from 10.0.2.2: icmp_seq=2 ttl=62 time=0.052 ms

--- 10.0.2.2 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1001ms
rtt min/avg/max/mdev = 0.052/0.066/0.081/0.014 ms
"""

PING_UNREACH = """PING 10.0.99.1 (10.0.99.1) 56(84) bytes of data.
From 10.0.1.1 icmp_seq=1 Destination Net Unreachable

--- 10.0.99.1 ping statistics ---
1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms
"""

PING_RR = """PING 10.0.2.2 (10.0.2.2) 56(124) bytes of data.
64 bytes from 10.0.2.2: icmp_seq=1 ttl=62 time=0.101 ms
RR: \t10.0.1.2
\t10.0.12.1
\t10.0.2.1
\t10.0.2.2
\t10.0.12.2
\t10.0.1.1
\t10.0.1.2


--- 10.0.2.2 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.101/0.101/0.101/0.000 ms
"""

TRACE = """traceroute to 10.4.2.3 (10.4.2.3), 10 hops max, 60 byte packets
 1  10.4.1.1  0.050 ms  0.020 ms  0.018 ms
 2  10.4.2.0  0.100 ms * 10.4.2.9  0.3 ms
 3  * * *
 4  10.4.2.3  0.200 ms !H
"""


def test_parse_ping() -> None:
    result = parse_ping(PING_OK, "10.0.2.2", "h1")
    assert (result.sent, result.received, result.loss) == (2, 2, 0.0)
    assert [(r.seq, r.ttl, r.rtt_ms) for r in result.replies] == [(1, 62, 0.081), (2, 62, 0.052)]
    assert (result.rtt_min, result.rtt_avg, result.rtt_max) == (0.052, 0.066, 0.081)
    assert "2/2 replies" in str(result) and "ttl 62" in str(result)


def test_parse_ping_errors_and_route() -> None:
    result = parse_ping(PING_UNREACH, "10.0.99.1")
    assert (result.sent, result.received, result.loss) == (1, 0, 1.0)
    assert result.errors == ["From 10.0.1.1 icmp_seq=1 Destination Net Unreachable"]
    assert result.rtt_avg is None and not result
    rr = parse_ping(PING_RR, "10.0.2.2")
    assert rr.route == ["10.0.1.2", "10.0.12.1", "10.0.2.1", "10.0.2.2", "10.0.12.2",
                        "10.0.1.1", "10.0.1.2"]


def test_parse_traceroute() -> None:
    hops = parse_traceroute(TRACE)
    assert [h.ttl for h in hops] == [1, 2, 3, 4]
    assert hops[0].addresses == ["10.4.1.1"] and hops[0].rtts_ms == [0.05, 0.02, 0.018]
    assert hops[1].addresses == ["10.4.2.0", "10.4.2.9"]
    assert hops[2].address is None and hops[2].rtts_ms == []
    assert hops[3].annotations == ["!H"]


@pytest.mark.parametrize("name", ["eth0", "a", "veth1234567890a", "flannel.1", "cali-x_1"])
def test_valid_ifnames(name: str) -> None:
    assert validate.ifname(name) == name


@pytest.mark.parametrize("name", ["", "x" * 16, "has space", "a/b", "a:b", ".."])
def test_invalid_ifnames(name: str) -> None:
    with pytest.raises(errors.InvalidName):
        validate.ifname(name)


def test_networks_and_gateways() -> None:
    assert str(validate.network("default")) == "0.0.0.0/0"
    assert str(validate.network("10.4.1.0/24")) == "10.4.1.0/24"
    assert str(validate.network("10.4.1.7")) == "10.4.1.7/32"
    connected = [ipaddress.ip_interface("10.0.0.1/24")]
    assert validate.gateway_is_connected(ipaddress.ip_address("10.0.0.254"), connected)
    assert not validate.gateway_is_connected(ipaddress.ip_address("10.0.1.254"), connected)
    assert not validate.gateway_is_connected(ipaddress.ip_address("10.0.0.1"), connected)
    assert validate.mac("02:42:AC:11:00:02") == "02:42:ac:11:00:02"
    with pytest.raises(errors.InvalidAddress):
        validate.mtu(67)


def test_errors_cross_the_wire_intact() -> None:
    original = errors.KernelError("add link h1:eth0: kernel said EEXIST", errno=17, obj="h1:eth0",
                                  op="add link", remedy="pick another name")
    copy = errors.from_wire(errors.to_wire(original))
    assert type(copy) is errors.KernelError and copy.errno == 17 and str(copy) == str(original)
    assert isinstance(copy, OSError)
    failed = errors.from_wire(errors.to_wire(errors.CommandFailed(
        "x failed", returncode=2, stdout="o", stderr="e")))
    assert (failed.returncode, failed.stdout, failed.stderr) == (2, "o", "e")
    translated = errors.kernel_error(19, obj="h1:eth9", op="set link")
    assert "ENODEV" in str(translated) and "node.interfaces()" in str(translated)
