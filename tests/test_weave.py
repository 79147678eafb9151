"""Weave Net on a cluster with no store: peers, ethwe, weaveDNS, WEAVE_CIDR isolation, expose.

One three-machine Weave network is built for the module (node1 launched alone, node2
pointed at node1, node3 pointed at node2 only) and each test looks at one property of
it in the real kernel, or through real tools (dnsmasq, busybox nslookup, iptables-save,
bridge fdb). The IPAM's pure logic is tested first, without a lab.
"""

from __future__ import annotations

import ipaddress
from typing import Iterator

import pytest

from labkit import InvalidAddress, InvalidName, InvalidTopology, Lab, NotFound
from labkit.cluster import Cluster
from labkit.weave import Weave, ipam
from labkit.weave.consts import VXLAN_DEVICE

from helpers import usage_error, wait_until

N = ipaddress.IPv4Network


# -- IPAM (pure) ------------------------------------------------------------------------------

def test_first_peer_owns_the_range_and_donates_halves() -> None:
    whole = ipam.allocation_range()
    assert whole == N("10.32.0.0/12")
    gift, kept = ipam.donate([whole], [])
    assert (gift, kept) == (N("10.40.0.0/13"), [N("10.32.0.0/13")])
    # the upper half is used: the lower one goes instead
    gift, kept = ipam.donate([whole], ["10.41.0.1"])
    assert (gift, kept) == (N("10.32.0.0/13"), [N("10.40.0.0/13")])
    # both halves used: nothing to give from this block
    assert ipam.donate([N("10.32.0.0/30")], []) is None
    assert ipam.donate([N("10.32.0.0/29")], ["10.32.0.1", "10.32.0.5"]) is None


def test_space_inside_a_subnet_is_donated_by_its_owner() -> None:
    gift, kept = ipam.donate_within([N("10.32.0.0/13")], [], N("10.32.2.0/24"))
    assert gift == N("10.32.2.0/24")
    assert N("10.32.2.0/24") not in kept and sum(b.num_addresses for b in kept) == 2 ** 19 - 256
    gift, _ = ipam.donate_within([N("10.32.0.0/13")], ["10.32.2.1"], N("10.32.2.0/24"))
    assert gift == N("10.32.2.128/25")
    assert ipam.donate_within([N("10.40.0.0/13")], [], N("10.32.2.0/24")) is None


def test_allocation_skips_network_and_broadcast_and_stays_in_owned_blocks() -> None:
    owned = [N("10.32.0.0/13")]
    assert str(ipam.allocate(N("10.32.0.0/12"), owned, [])) == "10.32.0.1"
    assert str(ipam.allocate(N("10.32.0.0/12"), owned, ["10.32.0.1"])) == "10.32.0.2"
    assert str(ipam.allocate(N("10.32.0.0/12"), [N("10.40.0.0/13")], [])) == "10.40.0.0"
    assert str(ipam.allocate(N("10.32.2.0/24"), owned, [])) == "10.32.2.1"
    assert ipam.allocate(N("10.32.2.0/24"), [N("10.40.0.0/13")], []) is None
    full = [str(ip) for ip in N("10.32.2.0/30")]
    assert ipam.allocate(N("10.32.2.0/30"), owned, full) is None


def test_weave_cidr_values_are_checked() -> None:
    rng = N("10.32.0.0/12")
    assert [str(r) for r in ipam.parse_weave_cidr(None, rng)] == ["net:10.32.0.0/12"]
    assert [str(r) for r in ipam.parse_weave_cidr("net:10.32.2.0/24 ip:10.32.3.7/24", rng)] == \
        ["net:10.32.2.0/24", "ip:10.32.3.7/24"]
    for bad in ("10.32.2.0/24", "net:10.32.2.1/24", "net:192.168.0.0/24", "ip:10.32.2.0/24",
                "net:fd00::/64", "host:10.32.0.1"):
        with pytest.raises(InvalidAddress):
            ipam.parse_weave_cidr(bad, rng)
    with pytest.raises(InvalidAddress, match="too small"):
        ipam.allocation_range("10.32.0.0/31")


# -- a real Weave network ------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--host", "bogus"], "argument --host: 'bogus' is not an IPv4 address"),
    (["--host", "192.168.99.101", "--ipalloc-range", "bogus"], "argument --ipalloc-range: IP allocation range"),
    (["--host", "192.168.99.101", "--ipalloc-range", "10.32.0.0/31"], "too small"),
    (["--host", "192.168.99.101", "--dns-address", "docker0"], "argument --dns-address"),
    (["--host", "192.168.99.101", "192.168.99.300"], "argument peers: '192.168.99.300'"),
    (["--host", "192.168.99.101", "192.168.99.101"], "cannot peer with itself"),
    (["--host", "192.168.99.101", "--iface", "no such"], "argument --iface"),
])
def test_router_refuses_bad_addresses_with_one_line(argv: list[str], message: str, capsys) -> None:
    from labkit.weave.router import parse_args

    base = ["--nickname", "node1", "--dns-address", "172.17.0.1", "--state-dir", "/nonexistent"]
    assert message in usage_error(parse_args, base + argv, capsys)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weave]:
    with Lab("weave", workdir=tmp_path_factory.mktemp("weave")) as lab:
        cluster = Cluster(lab, nodes=["node1", "node2", "node3"], store=None)
        weave = Weave(cluster)
        weave.launch("node1")
        weave.launch("node2", "192.168.99.101")
        weave.launch("node3", "node2")                      # told about node2 only
        weave.wait_connected(timeout=30)
        weave.run("node1", "bbox1")
        weave.run("node1", "bbox2")
        weave.run("node2", "bbox3")
        yield weave


def test_peers_find_each_other_with_no_store(net: Weave) -> None:
    cluster = net.cluster
    assert cluster.store is None and cluster.etcd is None
    # node3 was only told about node2, and learnt node1 from node2's gossip
    assert sorted(net.router("node3").connected_peers()) == ["node1", "node2"]
    assert sorted(net.router("node1").connected_peers()) == ["node2", "node3"]
    # the connections are real TCP connections to port 6783
    sockets = cluster["node3"].run(["ss", "-Htn", "state", "established"]).stdout
    assert "192.168.99.101:6783" in sockets or "192.168.99.103:6783" in sockets, sockets
    # and each peer is one flood entry in the kernel's VXLAN FDB, UDP 6784
    for machine in cluster.nodes:
        vx = machine.node.interface(VXLAN_DEVICE)
        assert vx.master == "weave" and vx.vxlan and vx.vxlan.get("port") == 6784, vx
        floods = sorted(str(e.dst) for e in machine.node.fdb(VXLAN_DEVICE)
                        if e.mac == "00:00:00:00:00:00")
        assert floods == sorted(m.ip for m in cluster.nodes if m is not machine), floods
    # address space was shared out by donation, no two peers own the same block
    owned = [ipaddress.IPv4Network(b) for m in ("node1", "node2", "node3")
             for b in net.router(m).status()["owned"]]
    assert sum(b.num_addresses for b in owned) <= 2 ** 20
    assert all(not a.overlaps(b) for i, a in enumerate(owned) for b in owned[i + 1:]), owned


def test_containers_have_ethwe_with_mtu_1376_beside_eth0(net: Weave) -> None:
    bbox1 = net.cluster.lab["bbox1"]
    ethwe, eth0 = bbox1.interface("ethwe"), bbox1.interface("eth0")
    assert (ethwe.mtu, eth0.mtu) == (1376, 1500)
    assert net.address(bbox1) == "10.32.0.1"
    assert any(a.local == "10.32.0.1" and a.prefixlen == 12 for a in bbox1.addresses("ethwe"))
    node1 = net.cluster["node1"].node
    assert node1.interface("weave").mtu == 1376
    ports = node1.bridge_ports("weave")
    assert VXLAN_DEVICE in ports and any(p.startswith("vethwepl") for p in ports), ports
    assert any(r.dst == "default" and r.gateway == "172.17.0.1" for r in bbox1.routes())


def test_containers_reach_each_other_across_machines_over_vxlan_6784(net: Weave) -> None:
    lab = net.cluster.lab
    bbox1, bbox3 = lab["bbox1"], lab["bbox3"]
    with net.cluster["node1"].node.capture("eth1", filter="udp port 6784") as cap:
        result = bbox3.ping(net.address(bbox1), count=2)
    assert result.received == 2, result
    frames = cap.table()
    assert len(frames) >= 4 and set(frames["dport"]) | set(frames["sport"]) >= {6784}, frames


def test_weavedns_answers_names_and_nxdomain(net: Weave) -> None:
    lab = net.cluster.lab
    bbox3 = lab["bbox3"]                   # on node2: asks node2's dnsmasq on 172.17.0.1
    found = net.lookup(bbox3, "bbox1")
    assert found.returncode == 0 and "bbox1.weave.local" in found.stdout, found.stdout
    assert net.resolve(bbox3, "bbox1") == net.address(lab["bbox1"])
    assert net.resolve(lab["bbox1"], "bbox3") == net.address(bbox3)
    missing = net.lookup(bbox3, "nobody")
    assert missing.returncode != 0 and "NXDOMAIN" in missing.stdout + missing.stderr
    assert "nobody.weave.local is NXDOMAIN" in net.router("node2").dns_log()


def test_weave_cidr_isolates_by_subnet_only(net: Weave) -> None:
    lab = net.cluster.lab
    iso1 = net.run("node1", "iso1", cidr="net:10.32.2.0/24")
    iso3 = net.run("node3", "iso3", cidr="net:10.32.2.0/24")   # node3 owns none of it: asks node1
    iso2 = net.run("node2", "iso2", cidr="ip:10.32.2.30/24")
    try:
        assert net.address(iso1) == "10.32.2.1"
        assert ipaddress.IPv4Address(net.address(iso3)) in ipaddress.IPv4Network("10.32.2.0/24")
        assert not iso1.ping(net.address(lab["bbox1"]), count=1, wait=0.5).received
        assert iso1.ping(net.address(iso3), count=1).received        # same subnet, other machine
        assert iso3.ping("10.32.2.30", count=1).received
        # no rule enforces it: nothing in any machine's ruleset names the subnet ...
        for machine in net.cluster.nodes:
            assert "10.32.2." not in machine.node.run(["iptables-save"]).stdout
        # ... so a route in the container is enough to cross over
        iso1.add_route("10.32.0.0/12", dev="ethwe")
        assert iso1.ping(net.address(lab["bbox1"]), count=1).received
    finally:
        for c in (iso1, iso2, iso3):
            net.remove(c)


def test_expose_and_an_outside_host_routed_via_the_exposing_machine(net: Weave) -> None:
    cluster, lab = net.cluster, net.cluster.lab
    outside = lab.add_host("outside")
    lab.link(outside, cluster.switch, names=("eth1", None))
    outside.add_address("eth1", "192.168.99.50/24")
    outside.add_route("10.32.0.0/12", via="192.168.99.101")    # ip route add 10.32.0.0/12 via node1
    bbox3 = lab["bbox3"]
    try:
        assert not outside.ping(net.address(bbox3), count=1, wait=0.5).received
        exposed = net.expose("node1")
        assert ipaddress.IPv4Interface(exposed).network == ipaddress.IPv4Network("10.32.0.0/12")
        node1 = cluster["node1"].node
        assert any(f"{a.local}/{a.prefixlen}" == exposed for a in node1.addresses("weave"))
        rules = node1.run(["iptables-save"]).stdout
        assert "-A FORWARD -o weave -j WEAVE-EXPOSE" in rules
        assert "-A WEAVE-EXPOSE -d 10.32.0.0/12 -j ACCEPT" in rules
        assert "-A WEAVE ! -s 10.32.0.0/12 -d 10.32.0.0/12 -j MASQUERADE" in rules
        assert node1.ping(net.address(bbox3), count=1).received          # the host itself
        reply = outside.ping(net.address(bbox3), count=2)               # a host without Weave
        assert reply.received == 2 and reply.replies[0].ttl == 63, reply
    finally:
        lab.remove_node("outside")


def test_a_peer_that_goes_away_loses_its_fdb_entry_and_names(net: Weave) -> None:
    node1 = net.cluster["node1"].node
    lab = net.cluster.lab
    c = net.run("node3", "gone3")
    assert wait_until(lambda: net.resolve(lab["bbox1"], "gone3") is not None, timeout=10)
    net.router("node3").stop()
    assert wait_until(lambda: "192.168.99.103" not in
                      {str(e.dst) for e in node1.fdb(VXLAN_DEVICE) if e.mac == "00:00:00:00:00:00"},
                      timeout=15)
    assert wait_until(lambda: net.resolve(lab["bbox1"], "gone3") is None, timeout=10)
    assert "peer lost" in net.router("node1").log()
    net.remove(c)


def test_a_router_given_another_machines_address_exits_at_once(net: Weave) -> None:
    machine = net.cluster["node3"]
    state = machine.path("/var/lib/weave-wrong")
    proc = machine.spawn_agent("labkit.weave.router", "--nickname", "node3", "--host", "192.168.99.101",
                               "--iface", machine.nic, "--dns-address", "172.17.0.1", "--state-dir", state)
    assert proc.wait(timeout=30) == 2
    err = proc.stderr_text().strip().splitlines()
    assert err[-1].startswith("weave-router: error: --host 192.168.99.101 is not an address of eth1")
    assert "Traceback" not in proc.stderr_text() and machine.read_text("/var/lib/weave-wrong/dnsmasq.log") is None


def test_bad_input_gives_clear_errors_and_builds_nothing(net: Weave) -> None:
    lab = net.cluster.lab
    with pytest.raises(NotFound, match="192.168.99.250 is no machine"):
        net.launch("node3", "192.168.99.250")
    with pytest.raises(NotFound, match="neither an address nor a machine"):
        net.launch("node3", "node9")
    with pytest.raises(InvalidTopology, match="already running"):
        net.launch("node1")
    before = set(lab.nodes)
    with pytest.raises(InvalidAddress, match="outside the allocation range"):
        net.run("node1", "bad1", cidr="net:192.168.5.0/24")
    with pytest.raises(InvalidName):
        net.run("node1", "Bad_Name")
    assert set(lab.nodes) == before
    assert not any(i.ifname.startswith("vethwepl") and i.master is None
                   for i in net.cluster["node1"].node.interfaces())
