"""Ready-made scenarios build what their docstrings promise."""

from __future__ import annotations

import pytest

from labkit import InvalidAddress, Lab
from labkit.scenarios import two_hosts


def test_two_hosts_default_plan(lab: Lab) -> None:
    s = two_hosts(lab)
    assert [s.address(n) for n in (s.host1, s.host2, s.c1, s.c2)] == \
        ["172.16.1.1", "172.16.1.2", "10.0.0.11", "10.0.0.21"]
    assert s.host1.bridge_ports("lxdbr0") == ["veth-c1"]  # the card stays out of the bridge
    assert s.host1.ping("172.16.1.2", count=1).received == 1
    assert s.c1.ping("10.0.0.21", count=1, wait=0.3).received == 0  # nothing joins the bridges


def test_two_hosts_parameters_and_errors(lab: Lab) -> None:
    s = two_hosts(lab, underlay="192.168.56.0/24", subnet="10.7.0.0/16", nic="eth1", bridge="br0")
    assert s.address(s.c2) == "10.7.0.21" and s.host1.interface("eth1").master is None
    with pytest.raises(InvalidAddress, match="/26 or larger"):
        two_hosts(lab, subnet="10.0.0.0/30")


@pytest.mark.parametrize("join", ["bridged", "gretap", "vxlan"])
def test_the_ways_of_joining_two_hosts(lab: Lab, join: str) -> None:
    from labkit import scenarios

    s = two_hosts(lab)
    {"bridged": scenarios.join_bridged, "gretap": scenarios.join_gretap,
     "vxlan": scenarios.join_vxlan}[join](s)
    result = s.c1.ping("10.0.0.21", count=2)
    assert result.received >= 1 and result.replies[-1].ttl == 64   # one LAN: no router


def test_routed_hosts(lab: Lab) -> None:
    from labkit.scenarios import routed_hosts

    s = routed_hosts(lab)
    assert s.address(s.c2) == "10.2.2.2"
    result = s.c1.ping("10.2.2.2", count=2)
    assert result.received == 2 and result.replies[0].ttl == 62


def test_tunnel_joins_fit_the_containers_mtu_so_tcp_works(lab: Lab) -> None:
    from labkit import measure
    from labkit.scenarios import join_gretap

    s = two_hosts(lab)
    ends = join_gretap(s)
    assert s.c1.interface("eth0").mtu == ends[0].mtu == 1462
    assert measure.throughput_mbit(s.c1, s.c2, "10.0.0.21", seconds=1) > 1


def test_join_bridged_moves_each_hosts_address_to_the_bridge(lab: Lab) -> None:
    """Seed 002 (B1): the card becomes a bridge port and the host's address goes on the bridge."""
    from labkit.scenarios import join_bridged

    s = two_hosts(lab)
    join_bridged(s)
    for host, ip in ((s.host1, "172.16.1.1/24"), (s.host2, "172.16.1.2/24")):
        where = {(a.ifname, a.cidr) for a in host.addresses() if a.family == "inet" and a.scope == "global"}
        assert where == {("lxdbr0", ip)}
        assert host.bridge_ports("lxdbr0") == sorted(["enp0s8", f"veth-c{host.name[-1]}"])
    assert s.address(s.host1) == "172.16.1.1"
    assert s.host1.ping("172.16.1.2", count=1).received == 1      # the hosts still reach each other
    assert s.c1.ping("10.0.0.21", count=1).received == 1
