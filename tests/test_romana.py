"""Romana: the hierarchical layout both ways (pure), then a two-host Romana network whose
routes, gateway, proxy ARP and isolation chains are checked in the real kernel."""

from __future__ import annotations

import ipaddress
from typing import Iterator

import pytest

from labkit import InvalidAddress, InvalidTopology, Lab, NotFound
from labkit.cluster import Cluster
from labkit.romana import Layout, Parts, Romana

from helpers import usage_error, wait_until


# -- the layout (pure) ---------------------------------------------------------------------------

def test_the_default_layout_composes_and_decomposes_both_ways() -> None:
    layout = Layout()
    assert layout.network == ipaddress.IPv4Network("10.0.0.0/8")
    assert str(layout.compose(host=1, tenant=1, segment=2, endpoint=7)) == "10.1.18.7"
    assert layout.decompose("10.1.18.7") == Parts(host=1, tenant=1, segment=2, endpoint=7)
    assert layout.decompose("10.255.255.255/16") == Parts(255, 15, 15, 255)
    for parts in [(0, 0, 0, 1), (3, 15, 0, 9), (200, 7, 9, 254), (255, 15, 15, 255)]:
        assert tuple(layout.decompose(layout.compose(*parts)).as_dict().values()) == parts
    assert str(layout.host_block(3)) == "10.3.0.0/16"
    assert str(layout.tenant_block(3, 2)) == "10.3.32.0/20"
    assert str(layout.segment_block(3, 2, 5)) == "10.3.37.0/24"
    assert layout.segment_match(1, 2) == "10.0.18.0/255.0.255.0"
    assert layout.tenant_match(1) == "10.0.16.0/255.0.240.0"
    assert str(layout.gateway(2)) == "10.2.0.1"
    rows = layout.bits_table("10.1.18.7")
    assert [(r["field"], r["bits"]) for r in rows] == [
        ("network", "00001010"), ("host", "00000001"), ("tenant", "0001"), ("segment", "0010"),
        ("endpoint", "00000111")]


def test_the_172_16_variant() -> None:
    layout = Layout.variant_172()
    assert (str(layout.network), layout.bits["host"], layout.capacity("host")) == ("172.16.0.0/12", 4, 16)
    assert str(layout.compose(3, 1, 2, 7)) == "172.19.18.7"
    assert layout.decompose("172.31.255.254") == Parts(15, 15, 15, 254)
    assert str(layout.host_block(15)) == "172.31.0.0/16"
    assert layout.segment_match(1, 2) == "172.16.18.0/255.240.255.0"
    assert Layout.from_dict(layout.to_dict()) == layout


def test_bad_layouts_and_values_give_clear_errors() -> None:
    with pytest.raises(InvalidTopology, match="does not fit 32 bits.*= 33 bits"):
        Layout(host_bits=9)
    with pytest.raises(InvalidTopology, match="does not fit 32 bits"):
        Layout("172.16.0.0/12")                              # 12 + 8 + 4 + 4 + 8 = 36
    with pytest.raises(InvalidTopology, match="positive"):
        Layout(tenant_bits=0, host_bits=12)
    with pytest.raises(InvalidAddress, match="IPv6"):
        Layout("fd00::/8")
    with pytest.raises(InvalidAddress, match="not a valid IPv4 prefix"):
        Layout("10.0.0.1/8")
    layout = Layout()
    with pytest.raises(InvalidAddress, match=r"tenant 16 is out of range: 4 tenant bits hold 0\.\.15"):
        layout.compose(0, 16, 0, 1)
    with pytest.raises(InvalidAddress, match="endpoint -1 is out of range"):
        layout.compose(0, 0, 0, -1)
    with pytest.raises(InvalidAddress, match="outside the Romana network"):
        layout.decompose("192.168.1.1")


# -- a real Romana network ------------------------------------------------------------------------

def test_agent_refuses_a_config_path_that_can_never_be_read(tmp_path, capsys) -> None:
    from labkit.romana.agent import main

    assert "is a directory" in usage_error(main, ["--config", str(tmp_path)], capsys)
    assert "does not exist, so the file can never appear" in usage_error(
        main, ["--config", str(tmp_path / "nowhere" / "agent.json")], capsys)


@pytest.fixture(scope="module")
def romana(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Romana]:
    with Lab("romana", workdir=tmp_path_factory.mktemp("romana")) as lab:
        net = Romana(Cluster(lab, store=None))
        net.start()
        net.add_pod("node1", "a", tenant=1, segment=1)
        net.add_pod("node1", "a2", tenant=1, segment=1)
        net.add_pod("node2", "b", tenant=1, segment=1)
        net.add_pod("node2", "c", tenant=2, segment=1)
        net.add_pod("node1", "d", tenant=1, segment=2)
        yield net


def test_addresses_say_where_the_pod_is(romana: Romana) -> None:
    assert {r["pod"]: r["address"] for r in romana.table()} == {
        "a": "10.0.17.1", "a2": "10.0.17.2", "b": "10.1.17.1", "c": "10.1.33.1", "d": "10.0.18.1"}
    lab = romana.cluster.lab
    assert any(a.local == "10.1.33.1" and a.prefixlen == 16 for a in lab["c"].addresses("eth0"))
    assert romana.parts("c") == Parts(host=1, tenant=2, segment=1, endpoint=1)


def test_host_blocks_are_routed_without_encapsulation(romana: Romana) -> None:
    cluster, lab = romana.cluster, romana.cluster.lab
    node1 = cluster["node1"].node
    routes = {(r.dst, r.gateway, r.dev) for r in node1.routes()}
    assert ("10.1.0.0/16", "192.168.99.102", "eth1") in routes
    veth = romana.endpoints["a"]["ifname"]
    assert any(r.dst in ("10.0.17.1", "10.0.17.1/32") and r.dev == veth for r in node1.routes())
    gw = node1.interface("romana-gw")
    assert gw.kind in ("dummy", "bridge") and not node1.bridge_ports("romana-gw")
    assert any(a.local == "10.0.0.1" and a.prefixlen == 16 for a in node1.addresses("romana-gw"))
    assert node1.get_sysctl(f"net.ipv4.conf.{veth}.proxy_arp").strip() == "1"
    assert not any(i.kind in ("vxlan", "ipip", "gre", "tun") for i in node1.interfaces())
    with cluster["node2"].node.capture("eth1", filter="icmp") as cap:
        assert lab["a"].ping("10.1.17.1", count=2).received == 2
    frames = cap.table()
    requests = frames[(frames["src_ip"] == "10.0.17.1") & (frames["dst_ip"] == "10.1.17.1")]
    assert len(requests) == 2 and set(requests["stack"]) == {"eth/ipv4/icmp"}, frames


@pytest.mark.parametrize("src, dst, reaches", [
    ("a", "b", True),      # same tenant and segment, other host
    ("a", "a2", True),     # same tenant and segment, same host (through proxy ARP)
    ("b", "a2", True),
    ("a", "c", False),     # another tenant
    ("c", "b", False),
    ("a", "d", False),     # same tenant, another segment, same host
    ("d", "b", False),
])
def test_isolation_between_tenants_and_segments_not_within(romana: Romana, src: str, dst: str,
                                                            reaches: bool) -> None:
    result = romana.cluster.lab[src].ping(romana.address(dst), count=1, wait=1.0)
    assert bool(result.received) is reaches, result


def test_isolation_is_done_by_rules_on_the_address_bits(romana: Romana) -> None:
    rules = romana.cluster["node2"].node.run(["iptables-save", "-t", "filter"]).stdout
    assert "-A FORWARD -o romana+ -j ROMANA-FORWARD" in rules
    assert "-A ROMANA-FORWARD -d 10.0.33.0/255.0.255.0 -j ROMANA-T2-S1" in rules
    assert "-A ROMANA-T2-S1 -s 10.0.33.0/255.0.255.0" in rules
    nft = romana.cluster["node2"].node.run(["nft", "list", "chain", "ip", "filter", "ROMANA-T1-S1"]).stdout
    assert "ip saddr & 255.0.255.0 == 10.0.17.0" in nft


def test_the_agent_puts_back_what_is_removed_by_hand(romana: Romana) -> None:
    node1 = romana.cluster["node1"].node
    node1.del_route("10.1.0.0/16", via="192.168.99.102")
    assert wait_until(lambda: any(r.dst == "10.1.0.0/16" for r in node1.routes()), timeout=15)
    assert "route replace 10.1.0.0/16 via 192.168.99.102" in romana.agent("node1").stdout_text()


def test_bad_pods_give_clear_errors_and_build_nothing(romana: Romana) -> None:
    lab = romana.cluster.lab
    before = set(lab.nodes)
    with pytest.raises(InvalidAddress, match="tenant 16 is out of range"):
        romana.add_pod("node1", "x", tenant=16, segment=0)
    with pytest.raises(NotFound):
        romana.add_pod("node9", "x", tenant=1, segment=1)
    with pytest.raises(NotFound, match="is no Romana pod"):
        romana.address("nobody")
    assert set(lab.nodes) == before


def test_agent_waits_for_its_config_and_keeps_the_last_good_state(romana: Romana) -> None:
    from labkit.romana.net import CONFIG

    machine = romana.cluster["node1"]
    other = "/etc/romana/other.json"
    agent = machine.spawn_agent("labkit.romana.agent", "--config", machine.path(other))
    try:
        assert wait_until(lambda: "waiting for config" in agent.stdout_text(), timeout=20)
        machine.write_text(other, machine.read_text(CONFIG) or "")   # the same state as node1's own
        agent.wait_for_output("romana agent synced", timeout=30)
        machine.write_text(other, "[1, 2]")                            # a bad edit
        assert wait_until(lambda: "keeping the last good state" in agent.stdout_text(), timeout=20)
        assert "the top level is a JSON list, not an object" in agent.stdout_text()
        assert agent.running and agent.stdout_text().count("waiting for config") == 1
        assert agent.stdout_text().count("top level is a JSON list") == 1   # once, not every poll
    finally:
        agent.stop()
    assert "Traceback" not in agent.stderr_text()
