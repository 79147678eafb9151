"""Calico's pure logic: IPAM over a store, BIRD configuration as confd renders it, felix's
names and chains. No lab here: the lab tests are in test_calico.py."""

from __future__ import annotations

import hashlib
import shutil
import ipaddress
import json

import pytest

from labkit.calico import birdcfg, felix, keys
from labkit.calico.ipam import IPAM, Block, make_pool
from labkit.errors import InvalidAddress, InvalidTopology, NotFound


class DictStore:
    """The store interface of EtcdClient over a dict (pure IPAM logic only)."""

    def __init__(self) -> None:
        self.kv: dict[str, str] = {}

    def get(self, key):
        return self.kv.get(key)

    def get_prefix(self, prefix):
        return {k: v for k, v in self.kv.items() if k.startswith(prefix)}

    def put(self, key, value):
        self.kv[key] = value

    def create(self, key, value):
        if key in self.kv:
            return False
        self.kv[key] = value
        return True

    def delete(self, key):
        self.kv.pop(key, None)


@pytest.fixture
def ipam():
    store = IPAM(DictStore())
    store.add_pool("192.168.0.0/16")
    return store


def test_blocks_are_26_with_node_affinity_and_lowest_free_address(ipam):
    ip1, b1 = ipam.auto_assign("node1", "default.bbox1")
    ip2, b2 = ipam.auto_assign("node1", "default.bbox3")
    ip3, b3 = ipam.auto_assign("node2", "default.bbox2")
    assert b1.cidr == b2.cidr and b1.cidr.prefixlen == 26 and b1.cidr.subnet_of(ipaddress.ip_network("192.168.0.0/16"))
    assert (ip1, ip2) == (b1.cidr[0], b1.cidr[1])
    assert b3.cidr != b1.cidr and ip3 in b3.cidr
    kv = ipam.store.kv
    assert keys.affinity("node1", b1.cidr) in kv and keys.affinity("node2", b3.cidr) in kv
    block = json.loads(kv[keys.block(b1.cidr)])
    assert block["affinity"] == "host:node1" and block["allocations"][:3] == [0, 1, None]
    assert ipam.host_blocks("node1") == [b1.cidr]


def test_a_full_block_makes_the_node_claim_another(ipam):
    ipam.add_pool("17.2.0.0/24", 30)
    got = [ipam.auto_assign("node1", f"w{i}", pool="17.2.0.0/24") for i in range(5)]
    blocks = {b.cidr for _, b in got}
    assert len(blocks) == 2 and all(b.prefixlen == 30 for b in blocks)
    assert len({ip for ip, _ in got}) == 5


def test_release_frees_the_address_and_keeps_the_block(ipam):
    ip, block = ipam.auto_assign("node1", "h1")
    assert ipam.release("h1") == [ip]
    again, block2 = ipam.auto_assign("node1", "h2")
    assert again == ip and block2.cidr == block.cidr
    assert keys.handle("h1") not in ipam.store.kv


def test_chosen_address_and_address_outside_every_pool(ipam):
    block = ipam.assign_ip("node3", "web", "192.168.7.10")
    assert block.cidr == ipaddress.ip_network("192.168.7.0/26") and block.host == "node3"
    with pytest.raises(InvalidAddress, match="outside every IP pool"):
        ipam.assign_ip("node3", "x", "10.9.9.9")
    with pytest.raises(InvalidAddress, match="already in use"):
        ipam.assign_ip("node3", "y", "192.168.7.10")


@pytest.mark.parametrize("cidr,size,message", [
    ("192.168.10.0/24", 26, "overlaps the existing pool 192.168.0.0/16"),
    ("10.0.0.0/16", 19, "outside 20-32"),
    ("10.0.0.0/16", 33, "outside 20-32"),
    ("10.0.0.0/28", 26, "larger than IP pool"),
    ("10.0.0.1/16", 26, "not an IPv4 network"),
    ("fd00::/48", 26, "not an IPv4 network"),
])
def test_bad_pools_are_refused_with_the_reason(ipam, cidr, size, message):
    with pytest.raises(InvalidAddress, match=message):
        ipam.add_pool(cidr, size)
    assert len(ipam.pools()) == 1


def test_reserved_ranges_are_never_handed_out(ipam):
    ipam.reserve("192.168.0.0/17", "underlay")
    for i in range(20):
        ip, block = ipam.auto_assign(f"node{i}", f"h{i}")
        assert not block.cidr.overlaps(ipaddress.ip_network("192.168.0.0/17"))
    with pytest.raises(InvalidAddress, match="reserved range 192.168.0.0/17"):
        ipam.assign_ip("node1", "x", "192.168.99.101")


def test_unknown_pool_and_exhausted_pool(ipam):
    with pytest.raises(NotFound, match="17.2.0.0/16 does not exist"):
        ipam.auto_assign("node1", "a", pool="17.2.0.0/16")
    ipam.add_pool("10.1.0.0/31", 31)
    ipam.auto_assign("node1", "a", pool="10.1.0.0/31")
    ipam.auto_assign("node1", "b", pool="10.1.0.0/31")
    with pytest.raises(InvalidTopology, match="no free /31 block"):
        ipam.auto_assign("node2", "c", pool="10.1.0.0/31")


def test_block_json_round_trip():
    block = Block(ipaddress.ip_network("192.168.119.0/26"), "node1")
    block.assign("a")
    block.assign("b", ipaddress.ip_address("192.168.119.7"))
    back = Block.from_json(block.to_json())
    assert back == block and back.free == 62
    assert make_pool("17.2.0.0/16").blocks()[1] == ipaddress.ip_network("17.2.0.64/26")


PEERS = [birdcfg.Peer("node1", "192.168.99.101"), birdcfg.Peer("node2", "192.168.99.102"),
         birdcfg.Peer("node3", "192.168.99.103")]


def test_mesh_sessions_named_by_peer_ip_passive_toward_higher_addresses():
    cfg = birdcfg.render_bird_cfg(PEERS[1], PEERS)
    assert "router id 192.168.99.102;" in cfg and "local as 64512;" in cfg
    assert "# Skipping ourselves (192.168.99.102)" in cfg
    mesh101 = cfg.split("protocol bgp Mesh_192_168_99_101")[1].split("}")[0]
    mesh103 = cfg.split("protocol bgp Mesh_192_168_99_103")[1].split("}")[0]
    assert "neighbor 192.168.99.101 as 64512;" in mesh101 and "passive on" not in mesh101
    assert "neighbor 192.168.99.103 as 64512;" in mesh103 and "passive on;" in mesh103
    for part in ("protocol kernel", "protocol device", "protocol direct", 'interface -"cali*", "*";',
                 "export filter calico_kernel_programming;", "export filter calico_export_to_bgp_peers;",
                 "gateway recursive;", "source address 192.168.99.102;"):
        assert part in cfg
    # exactly one side of each pair is passive: one TCP connection per session
    passive = sum(extra != [] for me in PEERS for _, _, extra in birdcfg.sessions(me, PEERS, mesh=True))
    assert passive == 3


def test_route_reflector_turns_n_squared_sessions_into_n():
    rr = [birdcfg.Peer(p.name, p.ip, "244.0.0.1" if p.name == "node1" else None) for p in PEERS * 1]
    many = [birdcfg.Peer(f"n{i}", f"10.0.0.{i}", "244.0.0.1" if i == 1 else None) for i in range(1, 31)]
    total = sum(len(birdcfg.sessions(me, many, mesh=False)) for me in many) // 2
    assert total == 29
    assert sum(len(birdcfg.sessions(me, many, mesh=True)) for me in many) // 2 == 30 * 29 // 2
    reflector = birdcfg.render_bird_cfg(rr[0], rr, mesh=False)
    client = birdcfg.render_bird_cfg(rr[2], rr, mesh=False)
    assert reflector.count("rr client;") == 2 and "rr cluster id 244.0.0.1;" in reflector
    assert "protocol bgp Node_192_168_99_101" in client and "Node_192_168_99_102" not in client
    assert "protocol bgp Node_192_168_99_103" in reflector and "Not a route reflector" not in reflector
    assert "Mesh_" not in reflector + client


def test_static_blackhole_per_block_and_filters():
    blocks = [ipaddress.ip_network("192.168.119.0/26"), ipaddress.ip_network("17.2.0.64/26")]
    aggr = birdcfg.render_bird_aggr(blocks)
    assert "route 17.2.0.64/26 blackhole;" in aggr and "route 192.168.119.0/26 blackhole;" in aggr
    assert "if ( net ~ 192.168.119.0/26 ) then { reject; }" in aggr
    ipam_cfg = birdcfg.render_bird_ipam([ipaddress.ip_network("192.168.0.0/16")])
    assert "filter calico_export_to_bgp_peers" in ipam_cfg and "calico_aggr();" in ipam_cfg
    assert "if ( net ~ 192.168.0.0/16 ) then" in ipam_cfg


def test_felix_interface_name_is_cali_plus_sha1_of_namespace_and_pod():
    name = felix.interface_name("default", "bbox1")
    assert name == "cali" + hashlib.sha1(b"default.bbox1").hexdigest()[:11] and len(name) == 15
    assert felix.host_sysctls(name)[f"net.ipv4.neigh.{name}.proxy_delay"] == "0"
    assert len(felix.ipset_name("a-very-long-tag-name-indeed")) <= 31


def test_felix_chains_for_the_seed_profiles():
    web = felix.Profile("cal_web", inbound=({"action": "allow", "protocol": "tcp", "src_tag": "cal_net2",
                                             "dst_ports": [80]},), outbound=({"action": "allow"},),
                        tags=("cal_web",))
    profiles = {"cal_net2": felix.Profile.network("cal_net2"), "cal_web": web}
    eps = [felix.Endpoint("node1", "web1", "caliaaaaaaaaaaa", "192.168.119.7/32", ("cal_web",)),
           felix.Endpoint("node1", "bbox3", "calibbbbbbbbbbb", "192.168.119.5/32", ("cal_net2",))]
    chains = felix.chains_for(eps, profiles)
    assert {"cali-tw-caliaaaaaaaaaaa", "cali-fw-caliaaaaaaaaaaa", "cali-pri-cal_web",
            "cali-pro-cal_web", "cali-pri-cal_net2"} <= set(chains)
    pri = "\n".join(chains["cali-pri-cal_web"])
    assert f"-p tcp -m set --match-set {felix.ipset_name('cal_net2')} src -m multiport --dports 80" in pri
    assert chains["cali-tw-caliaaaaaaaaaaa"][-1].endswith('"Drop if no profiles matched" -j DROP')
    members = felix.tag_members(eps, profiles)
    assert members == {"cal_net2": ["192.168.119.5"], "cal_web": ["192.168.119.7"]}
    script = felix.render_filter(chains, stale=["cali-tw-caliold"])
    assert script.startswith("*filter\n") and "-X cali-tw-caliold" in script and script.endswith("COMMIT\n")


@pytest.mark.parametrize("rule,message", [
    ({"action": "maybe"}, "action"),
    ({"action": "allow", "protocol": "gre"}, "protocol"),
    ({"action": "allow", "dst_ports": [80]}, "without protocol"),
    ({"action": "allow", "protocol": "tcp", "dst_ports": [0]}, "dst_ports"),
    ({"action": "allow", "colour": "red"}, "unknown field"),
])
def test_bad_rules_are_refused(rule, message):
    with pytest.raises(InvalidTopology, match=message):
        felix.check_rule(rule, "cal_web")


def test_the_agent_reads_its_state_from_calicos_keys():
    from labkit.calico.agent import parse_state

    ep = felix.Endpoint("node2", "bbox2", "cali0123456789a", "192.168.41.128/32", ("cal_net1",))
    kv = {keys.AS_NUM: "64512", keys.NODE_MESH: '{"enabled": false}',
          keys.host_ip("node1"): "192.168.99.101", keys.host_ip("node2"): "192.168.99.102",
          keys.rr_cluster_id("node1"): "244.0.0.1",
          keys.pool("192.168.0.0/16"): make_pool("192.168.0.0/16").to_json(),
          keys.affinity("node2", "192.168.41.128/26"): '{"state": "confirmed"}',
          keys.endpoint("node2", "libnetwork", "bbox2", ep.name): ep.to_json(),
          keys.profile_rules("cal_net1"): felix.Profile.network("cal_net1").rules_json(),
          keys.profile_tags("cal_net1"): '["cal_net1"]'}
    reflector = parse_state(kv, "node1")
    assert reflector["me"] == birdcfg.Peer("node1", "192.168.99.101", "244.0.0.1")
    assert reflector["mesh"] is False and reflector["blocks"] == []
    client = parse_state(kv, "node2")
    assert client["blocks"] == [ipaddress.ip_network("192.168.41.128/26")]
    assert client["endpoints"] == [ep] and set(client["profiles"]) == {"cal_net1"}
    assert [name for name, _, _ in birdcfg.sessions(client["me"], client["peers"], mesh=False)] == \
        ["Node_192_168_99_101"]


@pytest.mark.skipif(shutil.which("bird", path="/usr/sbin:/usr/bin:/sbin:/bin") is None,
                    reason="BIRD is not installed")
def test_doctor_says_which_bird_is_installed():
    from labkit import doctor

    check = doctor._bird_check()
    assert check.ok == check.detail.startswith("BIRD version 1."), check
    assert "Calico" in check.detail or "BIRD 2" in check.detail


def test_the_agent_ignores_a_malformed_key_and_keeps_the_rest():
    from labkit.calico.agent import parse_state

    ep = felix.Endpoint("node1", "bbox1", "cali0123456789a", "192.168.41.2/32", ("cal_net1",))
    kv = {keys.AS_NUM: "sixty", keys.NODE_MESH: "{not json",
          keys.host_ip("node1"): "192.168.99.101", keys.host_ip("node2"): "bogus",
          keys.BGP_HOSTS + "node3": "no field",
          keys.pool("192.168.0.0/16"): make_pool("192.168.0.0/16").to_json(),
          keys.pool("10.0.0.0/8"): "[]",
          keys.endpoint("node1", "libnetwork", "bbox1", ep.name): ep.to_json(),
          keys.endpoint("node1", "libnetwork", "bad", "x"): '{"name": "cali1"}',
          keys.profile_rules("cal_net1"): felix.Profile.network("cal_net1").rules_json(),
          keys.profile_rules("broken"): '{"inbound_rules": [{"action": "maybe"}]}'}
    state = parse_state(kv, "node1")
    # every good key is read; each bad one is named with its reason, its default in place
    assert state["me"] == birdcfg.Peer("node1", "192.168.99.101") and len(state["peers"]) == 1
    assert state["as_num"] == birdcfg.DEFAULT_AS and state["mesh"] is True
    assert state["pools"] == [ipaddress.ip_network("192.168.0.0/16")]
    assert state["endpoints"] == [ep] and set(state["profiles"]) == {"cal_net1"}
    reasons = dict(state["ignored"])
    assert set(reasons) == {keys.AS_NUM, keys.NODE_MESH, keys.host_ip("node2"), keys.BGP_HOSTS + "node3",
                            keys.pool("10.0.0.0/8"), keys.endpoint("node1", "libnetwork", "bad", "x"),
                            keys.profile_rules("broken")}
    assert "'sixty'" in reasons[keys.AS_NUM] and "missing field 'ipv4_nets'" in reasons[
        keys.endpoint("node1", "libnetwork", "bad", "x")]
    assert "action 'maybe'" in reasons[keys.profile_rules("broken")]


def test_calico_agent_and_api_refuse_bad_resync_and_endpoints(capsys):
    from labkit.calico import Calico
    from labkit.calico.agent import main

    from helpers import usage_error

    base = ["--node", "node1", "--confdir", "/x", "--bird-socket", "/x", "--status-file", "/x"]
    for bad, message in [(["--etcd-endpoints", "192.168.99.100:2379"], "is not a URL"),
                         (["--etcd-endpoints", ","], "no etcd endpoint given"),
                         (["--etcd-endpoints", "http://h:2379", "--resync", "0"], "at least 0.1 s"),
                         (["--etcd-endpoints", "http://h:2379", "--resync", "nan"], "not a positive duration")]:
        assert message in usage_error(main, base + bad, capsys)
    for resync in (0, -1, float("nan"), "5"):
        with pytest.raises(InvalidTopology, match="resync="):
            Calico(None, resync=resync)  # type: ignore[arg-type]  # refused before the cluster is read
