"""The topology model against the kernel: what labkit builds and reports is what iproute2 sees."""

from __future__ import annotations

import json

import pytest

from labkit import Lab, Node


def ip_json(node: Node, *args: str) -> list[dict]:
    return json.loads(node.run(["ip", "-j", *args], check=True).stdout or "[]")


def bridge_json(node: Node, *args: str) -> list[dict]:
    return json.loads(node.run(["bridge", "-j", *args], check=True).stdout or "[]")


@pytest.fixture
def two_hosts_on_a_switch(lab: Lab) -> Lab:
    h1, h2, sw = lab.add_host("h1"), lab.add_host("h2"), lab.add_switch("sw")
    lab.link(h1, sw, macs=("02:00:00:00:00:01", None), mtu=1400)
    lab.link(h2, sw, names=("eth0", "port2"))
    h1.add_address("eth0", "10.0.0.1/24")
    h2.add_address("eth0", "10.0.0.2/24")
    h1.add_address("eth0", "fd00::1/64")
    h2.add_address("eth0", "fd00::2/64")
    return lab


def test_interfaces_agree_with_ip_link(two_hosts_on_a_switch: Lab) -> None:
    lab = two_hosts_on_a_switch
    for node in lab.nodes.values():
        ours = {i.ifname: i for i in node.interfaces()}
        theirs = {i["ifname"]: i for i in ip_json(node, "link")}
        assert set(ours) == set(theirs)
        for name, link in theirs.items():
            mine = ours[name]
            assert mine.ifindex == link["ifindex"]
            assert mine.mtu == link["mtu"]
            assert mine.address == link["address"]
            assert mine.operstate == link["operstate"]
            assert mine.master == link.get("master")
            assert mine.up == ("UP" in link["flags"])
    h1 = lab["h1"].interface("eth0")
    assert h1.address == "02:00:00:00:00:01" and h1.mtu == 1400 and h1.kind == "veth"
    assert sorted(lab["sw"].bridge_ports("br0")) == ["eth0", "port2"]


def test_addresses_agree_with_ip_addr(two_hosts_on_a_switch: Lab) -> None:
    node = two_hosts_on_a_switch["h1"]
    ours = {(a.ifname, a.local, a.prefixlen) for a in node.addresses()}
    theirs = {(i["ifname"], a["local"], a["prefixlen"])
              for i in ip_json(node, "addr") for a in i["addr_info"]}
    assert ours == theirs
    assert ("eth0", "10.0.0.1", 24) in ours and ("eth0", "fd00::1", 64) in ours


def test_ipv4_and_ipv6_pings(two_hosts_on_a_switch: Lab) -> None:
    h1 = two_hosts_on_a_switch["h1"]
    assert h1.ping("10.0.0.2", count=2).received == 2
    assert h1.ping("fd00::2", count=2).received == 2


def test_routes_of_every_kind_agree_with_ip_route(two_hosts_on_a_switch: Lab) -> None:
    h1 = two_hosts_on_a_switch["h1"]
    h1.add_route("default", via="10.0.0.254")
    h1.add_route("10.9.0.0/16", via="10.0.0.2", metric=50)
    h1.add_route("10.4.2.0/24", via="10.4.2.0", dev="eth0", onlink=True)
    h1.add_route("10.8.0.0/26", kind="blackhole")
    h1.add_route("192.168.5.0/24", dev="eth0")
    h1.add_route("fd01::/64", via="fd00::2")
    theirs = {r["dst"]: r for r in ip_json(h1, "route")}
    ours = {r.dst: r for r in h1.routes(family="inet")}
    assert set(ours) == set(theirs)
    for dst, route in theirs.items():
        assert ours[dst].gateway == route.get("gateway")
        assert ours[dst].dev == route.get("dev")
        assert ours[dst].metric == route.get("metric")
        assert ours[dst].type == route.get("type", "unicast")
        assert ours[dst].onlink == ("onlink" in route.get("flags", []))
    assert ours["10.8.0.0/26"].type == "blackhole"
    assert ours["10.4.2.0/24"].onlink
    six = {r.dst: r for r in h1.routes(family="inet6")}
    assert six["fd01::/64"].gateway == "fd00::2"
    # The kernel really uses them: the blackhole swallows, the metric route reaches h2.
    lookup = h1.run(["ip", "-j", "route", "get", "10.9.1.1"], check=True).stdout
    assert json.loads(lookup)[0]["gateway"] == "10.0.0.2"
    h1.del_route("10.9.0.0/16", via="10.0.0.2", metric=50)
    assert "10.9.0.0/16" not in {r.dst for r in h1.routes()}


def test_neighbours_and_fdb_agree(two_hosts_on_a_switch: Lab) -> None:
    lab = two_hosts_on_a_switch
    h1, sw = lab["h1"], lab["sw"]
    h1.add_neighbour("eth0", "10.0.0.9", "02:00:00:00:00:09")
    h1.ping("10.0.0.2", count=1)
    ours = {(n.dst, n.lladdr) for n in h1.neighbours() if n.dst and n.lladdr}
    theirs = {(n["dst"], n.get("lladdr")) for n in ip_json(h1, "neigh") if n.get("lladdr")}
    assert ours == theirs
    assert ("10.0.0.9", "02:00:00:00:00:09") in ours
    assert any("PERMANENT" in n.state for n in h1.neighbours() if n.dst == "10.0.0.9")
    # MAC learning: the switch has learnt h1's MAC on its port towards h1.
    learnt = {(e.mac, e.ifname) for e in sw.fdb() if "self" not in e.flags}
    theirs_fdb = {(e["mac"], e["ifname"]) for e in bridge_json(sw, "fdb", "show")
                  if "self" not in e.get("flags", [])}
    assert learnt == theirs_fdb
    assert ("02:00:00:00:00:01", "eth0") in learnt
    sw.add_fdb("port2", "02:00:00:00:00:77", master=True)
    assert any(e.mac == "02:00:00:00:00:77" and e.ifname == "port2" for e in sw.fdb())


def test_break_and_repair(two_hosts_on_a_switch: Lab) -> None:
    lab = two_hosts_on_a_switch
    h1, sw = lab["h1"], lab["sw"]
    sw.set_down("eth0")
    assert h1.interface("eth0").operstate in ("DOWN", "LOWERLAYERDOWN")
    assert h1.ping("10.0.0.2", count=1, wait=0.5).received == 0
    sw.set_up("eth0")
    assert h1.ping("10.0.0.2", count=2).received >= 1
    sw.detach("port2")
    assert sw.interface("port2").master is None
    assert h1.ping("10.0.0.2", count=1, wait=0.5).received == 0
    sw.attach("port2", "br0")
    assert h1.ping("10.0.0.2", count=2).received >= 1
    lab["h2"].delete_link("eth0")
    assert "port2" not in {i.ifname for i in sw.interfaces()}  # the peer went with it


def test_bridge_inside_a_host_and_moving_interfaces(lab: Lab) -> None:
    host, c1, c2 = lab.add_router("host"), lab.add_host("c1"), lab.add_host("c2")
    host.add_bridge("docker0", address="172.17.0.1/16")
    lab.link(c1, host, names=("eth0", "veth1"), bridges=(None, "docker0"))
    lab.link(c2, host, names=("eth0", "veth2"), bridges=(None, "docker0"))
    c1.add_address("eth0", "172.17.0.2/16")
    c1.add_route("default", via="172.17.0.1")
    c2.add_address("eth0", "172.17.0.3/16")
    assert c1.ping("172.17.0.1", count=1).received == 1
    assert c1.ping("172.17.0.3", count=1).received == 1
    assert host.get_sysctl("net.ipv4.ip_forward") == "1"
    assert c1.get_sysctl("net.ipv4.ip_forward") == "0"
    # Move c2's end into c1 under another name: c2 loses it, c1 gains it.
    final = c2.move_link("eth0", c1, name="eth9")
    assert final == "eth9"
    assert "eth0" not in {i.ifname for i in c2.interfaces()}
    assert c1.interface("eth9").kind == "veth"


def test_vxlan_device_is_reported(lab: Lab) -> None:
    h = lab.add_host("h")
    other = lab.add_host("o")
    lab.link(h, other)
    h.add_address("eth0", "172.16.1.1/24")
    h.add_vxlan("vxlan0", 42, group="239.1.1.1", dev="eth0", port=4789)
    h.add_fdb("vxlan0", "00:00:00:00:00:00", dst="172.16.1.2")
    info = h.interface("vxlan0")
    assert info.kind == "vxlan" and info.mtu == 1450
    assert info.vxlan["id"] == 42 and info.vxlan["group"] == "239.1.1.1"
    assert info.vxlan["link"] == "eth0" and info.vxlan["port"] == 4789
    detail = ip_json(h, "-d", "link", "show", "vxlan0")[0]["linkinfo"]["info_data"]
    assert detail["id"] == 42 and detail["group"] == "239.1.1.1" and detail["port"] == 4789
    dsts = {e.dst for e in h.fdb("vxlan0")}
    assert {"239.1.1.1", "172.16.1.2"} <= dsts


def test_batch_builds_a_star(lab: Lab) -> None:
    with lab.batch():
        sw = lab.add_switch("sw")
        hosts = [lab.add_host(f"h{i}") for i in range(1, 21)]
        for i, host in enumerate(hosts, start=1):
            lab.link(host, sw)
            host.add_address("eth0", f"10.0.0.{i}/24")
    assert len(sw.bridge_ports("br0")) == 20
    assert hosts[0].ping("10.0.0.20", count=1).received == 1


@pytest.mark.parametrize("mode", ["full", "restricted"])
@pytest.mark.parametrize("ipv6", [False, True])
def test_ipv6_link_local_only_when_asked(mode: str, ipv6: bool) -> None:
    with Lab("six", mode=mode, ipv6=ipv6) as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        lab.link(a, b)
        lab["a"].add_bridge("br0")
        link_local = {x.ifname for x in a.addresses() if x.local.startswith("fe80:")}
        assert link_local == ({"eth0", "br0"} if ipv6 else set())
        a.add_address("eth0", "fd00::1/64")
        b.add_address("eth0", "fd00::2/64")
        assert a.ping("fd00::2", count=1).received == 1


def test_bridged_frames_skip_iptables_unless_br_netfilter_is_on(lab: Lab) -> None:
    host, c1, c2 = lab.add_router("host"), lab.add_host("c1"), lab.add_host("c2")
    host.add_bridge("docker0", address="172.17.0.1/16")
    lab.link(c1, host, names=("eth0", "veth1"), bridges=(None, "docker0"))
    lab.link(c2, host, names=("eth0", "veth2"), bridges=(None, "docker0"))
    c1.add_address("eth0", "172.17.0.2/16")
    c2.add_address("eth0", "172.17.0.3/16")
    host.iptables("-P", "FORWARD", "DROP")
    # Set explicitly at node creation, whatever the host machine uses.
    assert host.get_sysctl("net.bridge.bridge-nf-call-iptables") == "0"
    assert c1.ping("172.17.0.3", count=1).received == 1
    host.set_sysctl("net.bridge.bridge-nf-call-iptables", 1)   # what Docker hosts have
    assert c1.ping("172.17.0.3", count=1, wait=0.5).received == 0
    host.iptables("-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT")
    assert c1.ping("172.17.0.3", count=1).received == 1
