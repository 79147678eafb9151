"""Flannel against the real etcd and the real kernel: leases, routes, traffic, mistakes.

Short TTLs and two or three nodes keep this to well under a minute; as root and, through
``test_flannel_suite_as_an_unprivileged_user``, as the student.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time

import pytest

from labkit import Lab
from labkit.cluster import Cluster
from labkit.errors import AgentExited, InvalidTopology
from labkit.flannel import Flannel, parse_config
from labkit.flannel.agent import duration, go_duration, parse_args
from labkit.flannel.config import ConfigError, pick_subnet, subnet_env
from labkit.flannel.ipmasq import masq_rules

from helpers import usage_error, wait_until

TTL = 4


# -- pure rules -------------------------------------------------------------------------------

def test_config_defaults_and_range() -> None:
    cfg = parse_config('{"Network": "10.4.0.0/16", "Backend": {"Type": "vxlan"}}')
    assert (cfg.subnet_len, str(cfg.subnet_min), str(cfg.subnet_max)) == (24, "10.4.1.0", "10.4.255.0")
    assert (cfg.backend, cfg.vni, len(cfg.candidates())) == ("vxlan", 1, 255)
    assert parse_config('{"Network": "10.4.0.0/24"}').subnet_len == 26  # small: split in four
    assert parse_config('{"Network": "10.4.0.0/16"}').backend == "udp"  # flannel's default
    small = parse_config('{"Network": "10.5.0.0/22", "SubnetLen": 24}')
    assert [str(s) for s in small.candidates()] == ["10.5.1.0/24", "10.5.2.0/24", "10.5.3.0/24"]
    taken = [ipaddress.ip_network("10.5.1.0/24"), ipaddress.ip_network("10.5.3.0/24")]
    assert str(pick_subnet(small, taken)) == "10.5.2.0/24"
    assert pick_subnet(small, small.candidates()) is None
    picks = {str(pick_subnet(cfg, [], random.Random(seed))) for seed in range(20)}
    assert len(picks) > 10 and "10.4.0.0/24" not in picks  # random, never the network's first
    assert subnet_env(cfg, ipaddress.ip_network("10.4.41.0/24"), 1450, False) == (
        "FLANNEL_NETWORK=10.4.0.0/16\nFLANNEL_SUBNET=10.4.41.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n")
    rules = masq_rules(cfg.network, ipaddress.ip_network("10.4.41.0/24"))
    assert rules[0].startswith("-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000")
    assert "MASQUERADE" in rules[-1] and len(rules) == 6
    assert duration("1h30m", 1) == 5400 and duration("90", 60) == 5400 and duration("500ms", 1) == 0.5
    assert go_duration(82805.0) == "23h0m5s"


@pytest.mark.parametrize("text, message", [
    ('{"Network": "10.4.0.0/16"', "invalid JSON"),
    ('{"SubnetLen": 24}', "please define a correct Network"),
    ('{"Network": "10.4.0.0/23", "SubnetLen": 24}', "at least four subnets"),
    ('{"Network": "10.4.0.0/29"}', "too small"),
    ('{"Network": "10.4.0.0/16", "SubnetLen": 31}', "less than /31"),
    ('{"Network": "10.4.0.0/16", "Backend": {"Type": "ipip"}}', "no ipip module"),
    ('{"Network": "10.4.0.0/16", "Backend": {"Type": "vxlam"}}', "unknown backend type: vxlam"),
    ('{"Network": "10.4.0.0/16", "SubnetMin": "10.5.0.0"}', "not in the range"),
    ('{"Network": "10.4.0.0/16", "SubnetMin": "10.4.0.7"}', "boundary"),
    ('{"Network": "10.4.0.0/16", "Backend": {"Type": "vxlan", "VNI": 0}}', "VNI"),
    ('{"Network": "10.4.1.0/16"}', "not an IPv4 network"),
])
def test_config_mistakes(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


# -- flanneld's arguments: refused at startup, checked alike in Flannel.start ------------------

@pytest.mark.parametrize("argv, message", [
    (["-etcd-endpoints="], "no etcd endpoint given"),
    (["-etcd-endpoints=,"], "no etcd endpoint given"),
    (["-etcd-endpoints=192.168.99.100:2379"], "is not a URL such as http://"),
    (["-public-ip=bogus"], "'bogus' is not an IPv4 address"),
    (["-etcd-prefix=noslash/"], "is not a key path"),
    (["-subnet-file=subnet.env"], "absolute path without '..'"),
    (["-subnet-file=/run/../../etc/x"], "absolute path without '..'"),
    (["-subnet-lease-ttl=0"], "at least 1 s"),
    (["-subnet-lease-ttl=0.4"], "at least 1 s"),
    (["-subnet-lease-ttl=1.5"], "whole number of seconds"),
    (["-subnet-lease-ttl=" + "9" * 400], "not a finite number"),
    (["-subnet-lease-ttl=10000000000s"], "at most 9e+09 s"),
    (["-subnet-lease-ttl=10", "-subnet-lease-renew-margin=10s"], "not shorter than the lease TTL"),
    (["-resync-period=0"], "at least 0.1 s"),
    (["-resync-period=-1"], "not a positive duration"),
    (["-resync-period=nan"], "not a positive duration"),
])
def test_flanneld_refuses_bad_arguments_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert message in usage_error(parse_args, argv, capsys)


def test_flanneld_arguments_that_work() -> None:
    args = parse_args(["-etcd-endpoints=http://192.168.99.100:2379,http://192.168.99.101:2379",
                       "-subnet-lease-ttl=1000000", "-subnet-lease-renew-margin=2", "-public-ip=10.0.0.1"])
    assert args.etcd_endpoints == ["http://192.168.99.100:2379", "http://192.168.99.101:2379"]
    assert args.subnet_lease_ttl == 1e6 and args.subnet_lease_renew_margin == 120  # bare margin: minutes
    assert parse_args(["-subnet-lease-ttl=5"]).subnet_lease_renew_margin is None  # default: 2/3 TTL


def _unstarted() -> tuple[Flannel, object]:
    """A Flannel whose cluster is only what Flannel.args reads: the checks run before any
    agent starts, so no lab is needed to see them."""
    from types import SimpleNamespace

    etcd = SimpleNamespace(running=True, endpoint="http://192.168.99.100:2379")
    return Flannel(SimpleNamespace(etcd=etcd)), SimpleNamespace(name="node1", nic="eth1")


def test_flannel_start_options_are_seconds_and_read_back_by_the_agent() -> None:
    flannel, machine = _unstarted()
    argv = flannel.args(machine, ttl=1_000_000, renew_margin=2, resync=0.5, ip_masq=True)
    assert "-subnet-lease-ttl=1000000s" in argv and "-subnet-lease-renew-margin=2s" in argv
    args = parse_args(argv)                      # the agent reads exactly what was meant
    assert (args.subnet_lease_ttl, args.subnet_lease_renew_margin, args.resync_period,
            args.ip_masq) == (1e6, 2, 0.5, True)


@pytest.mark.parametrize("options, message", [
    ({"ttl": "30s"}, "ttl='30s' is not a number of seconds"),
    ({"ttl": float("nan")}, "not a finite number"),
    ({"ttl": True}, "ttl=True is not a number of seconds"),
    ({"ttl": 0}, "at least 1 s"),
    ({"ttl": 1e10}, "at most"),
    ({"ttl": 10, "renew_margin": 10}, "not shorter than the lease TTL"),
    ({"resync": 0}, "resync=0"),
    ({"resync": -1}, "resync=-1"),
    ({"ip_masq": "yes"}, "ip_masq must be True or False"),
    ({"iface": ""}, "not an interface name"),
    ({"ttl": 30, "tll": 5}, "flanneld has no option 'tll'.*use ttl, renew_margin"),
])
def test_flannel_start_refuses_bad_options_before_anything_starts(options, message) -> None:
    flannel, machine = _unstarted()
    with pytest.raises(InvalidTopology, match=message):
        flannel.start(machine, **options) if "tll" in options else flannel.args(machine, **options)
    assert flannel.agents == {}


# -- the real thing ---------------------------------------------------------------------------

def _subnet(flannel: Flannel, node: str) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(flannel.subnet_env(node)["FLANNEL_SUBNET"], strict=False)


def _containers(cluster: Cluster, flannel: Flannel) -> dict[str, tuple[object, str]]:
    out = {}
    for i, machine in enumerate(cluster.nodes, 1):
        flannel.docker_bridge(machine)
        sn = _subnet(flannel, machine.name)
        ip = str(sn.network_address + 2)
        out[machine.name] = (machine.add_container(f"c{i}", address=f"{ip}/{sn.prefixlen}"), ip)
    return out


def test_vxlan_leases_routes_traffic_expiry_and_return(lab: Lab) -> None:
    cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
    cluster.start_etcd()
    flannel = Flannel(cluster, prefix="/docker-test/network")
    flannel.configure("10.4.0.0/16", backend="vxlan")
    flannel.start_all(ttl=TTL, ip_masq=True)
    flannel.wait_converged()
    leases = flannel.leases()
    assert len(leases) == 3 and len({l["subnet"] for l in leases}) == 3
    assert {l["PublicIP"] for l in leases} == {m.ip for m in cluster.nodes}
    node1 = cluster["node1"]
    env = flannel.subnet_env("node1")
    mine = _subnet(flannel, "node1")
    assert env["FLANNEL_NETWORK"] == "10.4.0.0/16" and env["FLANNEL_MTU"] == "1450"
    assert env["FLANNEL_SUBNET"] == f"{mine.network_address + 1}/24" and env["FLANNEL_IPMASQ"] == "true"
    # flannel.1 as flanneld makes it
    dev = node1.interface("flannel.1")
    assert dev.mtu == 1450 and dev.vxlan["id"] == 1 and dev.vxlan["port"] == 8472
    assert dev.vxlan["learning"] is False and dev.vxlan["local"] == node1.ip
    assert [a.cidr for a in node1.addresses("flannel.1")] == [f"{mine.network_address}/32"]
    # one route, neighbour and FDB entry per other lease
    others = [l for l in leases if l["PublicIP"] != node1.ip]
    routes = {r.dst: r for r in node1.routes("inet")}
    neigh = {n.dst: n.lladdr for n in node1.neighbours() if n.dev == "flannel.1"}
    fdb = {(e.mac, e.dst) for e in node1.fdb("flannel.1")}
    for lease in others:
        gw = lease["subnet"].split("/")[0]
        route = routes[lease["subnet"]]
        assert (route.gateway, route.dev, route.onlink) == (gw, "flannel.1", True)
        assert neigh[gw] == lease["VtepMAC"] and (lease["VtepMAC"], lease["PublicIP"]) in fdb
    # ip-masq chains, as flanneld installs them
    nat = node1.run(["iptables", "-t", "nat", "-S", "FLANNEL-POSTRTG"], check=True).stdout
    assert f"-A FLANNEL-POSTRTG -s {mine} -d 10.4.0.0/16" in nat and "MASQUERADE" in nat
    assert "-j FLANNEL-POSTRTG" in node1.run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).stdout
    assert "-A FLANNEL-FWD -s 10.4.0.0/16" in node1.run(["iptables", "-S", "FLANNEL-FWD"]).stdout
    # containers on docker0 (--bip/--mtu from subnet.env) talk across hosts: ICMP inside VXLAN VNI 1
    conts = _containers(cluster, flannel)
    c1 = conts["node1"][0]
    assert c1.interface("eth0").mtu == 1450
    with node1.capture("eth1", filter="udp port 8472") as cap:
        reply = c1.ping(conts["node2"][1], count=2)
    assert reply.received == 2 and reply.replies[0].ttl == 62
    table = cap.table()
    assert set(table["vni"].dropna()) == {1} and set(table["dport"].dropna()) <= {8472}
    assert conts["node2"][1] in set(table["inner_dst_ip"])
    hops = [h.addresses[0] for h in c1.traceroute(conts["node3"][1])]
    node3_subnet = _subnet(flannel, "node3")
    assert hops == [str(mine.network_address + 1), str(node3_subnet.network_address), conts["node3"][1]]
    # renewal: a fresh etcd lease is bound to the key before the old one would expire
    first = {l["subnet"]: l["lease"] for l in flannel.leases()}
    time.sleep(TTL + 0.5)
    later = {l["subnet"]: l["lease"] for l in flannel.leases()}
    assert set(later) == set(first) and all(later[s] != first[s] for s in first)
    assert "Lease renewed, new expiration" in flannel.log("node1")
    # break it: node3's agent stops, its lease expires, the others drop its route
    flannel.stop("node3")
    gone = str(node3_subnet)
    assert wait_until(lambda: gone not in {l["subnet"] for l in flannel.leases()}, timeout=TTL + 10)
    for name in ("node1", "node2"):
        assert wait_until(lambda: gone not in flannel.routes_to_others(name), timeout=10), name
    assert f"removing subnet: {gone}" in flannel.log("node1")
    assert c1.ping(conts["node3"][1], count=1, wait=0.5).received == 0
    # and back: the restarted agent takes its previous subnet again (subnet.env), routes return
    flannel.start("node3", ttl=TTL)
    flannel.wait_converged()
    assert _subnet(flannel, "node3") == node3_subnet
    assert f"Found previously leased subnet ({gone}), reusing" in flannel.log("node3")
    assert c1.ping(conts["node3"][1]).received == 3


def test_ten_agents_at_once_get_unique_leases(lab: Lab) -> None:
    cluster = Cluster.sized(lab, 10)
    cluster.start_etcd()
    flannel = Flannel(cluster)
    flannel.configure("10.4.0.0/20", backend="vxlan")   # 15 subnets for 10 agents: races are likely
    flannel.start_all(ttl=30)
    flannel.wait_converged(timeout=120)
    subnets = [l["subnet"] for l in flannel.leases()]
    assert len(subnets) == 10 and len(set(subnets)) == 10
    envs = {m.name: flannel.subnet_env(m) for m in cluster.nodes}
    assert len({e["FLANNEL_SUBNET"] for e in envs.values()}) == 10
    assert len(flannel.routes_to_others("node7")) == 9


def test_waiting_for_flannel_notices_an_agent_that_died(lab: Lab) -> None:
    cluster = Cluster(lab)
    cluster.start_etcd()
    flannel = Flannel(cluster)
    with pytest.raises(InvalidTopology, match="no flanneld is running"):
        flannel.wait_converged(timeout=5)                  # nothing started: never "converged"
    flannel.configure("10.4.0.0/16", backend="vxlan")
    flannel.start_all(ttl=30)
    flannel.wait_converged()
    flannel.stop("node2")                                  # systemctl stop: on purpose, not an error
    flannel.wait_converged(timeout=5)
    flannel.agents["node1"].signal("KILL")                 # dies on its own
    assert wait_until(lambda: not flannel.agents["node1"].running, timeout=10)
    with pytest.raises(AgentExited, match=r"flanneld on node1 exited \(status"):
        flannel.wait_converged(timeout=5)


def test_udp_backend_carries_traffic(lab: Lab) -> None:
    cluster = Cluster(lab)
    cluster.start_etcd()
    flannel = Flannel(cluster)
    flannel.configure("10.5.0.0/16", backend="udp")
    flannel.start_all(ttl=TTL)
    flannel.wait_converged()
    node1 = cluster["node1"]
    assert flannel.subnet_env("node1")["FLANNEL_MTU"] == "1472"
    assert node1.interface("flannel0").mtu == 1472
    assert flannel.routes_to_others("node1") == {"10.5.0.0/16": "flannel0"}
    conts = _containers(cluster, flannel)
    src, dst = conts["node1"][0], conts["node2"][1]
    # the udp daemons re-read their peer tables on SIGHUP, after the routes appear:
    # wait until the path carries a packet, as a student would retry the first ping
    assert wait_until(lambda: src.ping(dst, count=1, wait=1).received == 1, timeout=20)
    with node1.capture("eth1", filter="udp port 8285") as cap:
        assert src.ping(dst, count=2).received == 2
    table = cap.table()
    assert len(table) >= 4 and set(table["dport"].dropna()) | set(table["sport"].dropna()) >= {8285}
    assert "Subnet added: " in flannel.log("node1")


def test_seed_commands_v2_keyspace_and_host_gw(lab: Lab) -> None:
    cluster = Cluster(lab)
    etcd = cluster.start_etcd()
    config = '{"Network": "10.4.0.0/16", "SubnetLen": 24, "Backend": {"Type": "host-gw"}}'
    # the 2017 command of the seed, in node1: etcdctl set (v2)
    etcd.etcdctl("node1", "set", "/docker-test/network/config", config, api=2, check=True)
    v3 = Flannel(cluster, prefix="/docker-test/network")
    hinted = v3.start("node1", ttl=TTL)
    hinted.wait_for_output("a config exists in etcd's v2 keyspace", timeout=20)
    v3.stop("node1")
    flannel = Flannel(cluster, prefix="/docker-test/network", api=2)
    flannel.start_all(ttl=TTL)
    flannel.wait_converged()
    listing = etcd.etcdctl("host", "ls", "/docker-test/network/subnets", api=2, check=True).stdout.split()
    assert sorted(listing) == sorted(f"/docker-test/network/subnets/{l['subnet'].replace('/', '-')}"
                                     for l in flannel.leases())
    node2 = _subnet(flannel, "node2")
    route = next(r for r in cluster["node1"].routes("inet") if r.dst == str(node2))
    assert (route.gateway, route.dev) == ("192.168.99.102", "eth1")  # host-gw: no tunnel
    conts = _containers(cluster, flannel)
    assert conts["node1"][0].ping(conts["node2"][1]).received == 3


def test_students_mistakes_get_flanneld_messages(lab: Lab) -> None:
    cluster = Cluster(lab, nodes=["node1", "node2", "node3", "node4"])
    # etcd not started yet: the agent keeps retrying and says so, then carries on
    endpoint = f"http://{cluster.store.ip}:2379"
    proc = cluster["node1"].spawn_agent("labkit.flannel.agent", f"-etcd-endpoints={endpoint}",
                                        "-iface=eth1", "-etcd-prefix=/early", "-subnet-lease-ttl=5")
    proc.wait_for_output("is unreachable", timeout=20)
    assert "is etcd running? Trying again in 1s" in proc.stderr_text()
    etcd = cluster.start_etcd()
    proc.wait_for_output("/early/config not found in etcd (v3 API)", timeout=20)
    etcd.put("/early/config", '{"Network": "10.6.0.0/16", "Backend": {"Type": "vxlan"}}')
    proc.wait_for_output("Allocated lease (10.6.", timeout=20)
    # etcd goes away while the agent runs: it says so, keeps its routes, and carries on after
    etcd.stop()
    proc.wait_for_output("Watch of subnet leases failed: etcd at", timeout=20)
    renewed = proc.stderr_text().count("Lease renewed")
    etcd.start()
    assert wait_until(lambda: proc.stderr_text().count("Lease renewed") > renewed, timeout=20)
    assert proc.running
    proc.stop()

    def agent(node: str, prefix: str, *extra: str):
        return cluster[node].spawn_agent("labkit.flannel.agent", f"-etcd-endpoints={etcd.endpoint}",
                                         f"-etcd-prefix={prefix}", "-subnet-lease-ttl=5", *extra)

    cases = {
        "/bad-json": ('{"Network": "10.7.0.0/16"', "invalid JSON in the network config"),
        "/too-small": ('{"Network": "10.8.0.0/23", "SubnetLen": 24}', "at least four subnets"),
    }
    for prefix, (text, message) in cases.items():
        etcd.put(f"{prefix}/config", text)
        bad = agent("node2", prefix, "-iface=eth1")
        bad.wait_for_output(message, timeout=20)
        assert "Couldn't fetch network config: " in bad.stderr_text() and bad.running  # retrying
        bad.stop()
    no_iface = agent("node3", "/early")
    assert no_iface.wait(timeout=20) == 1
    assert "Unable to find default route (pass -iface=eth1)" in no_iface.stderr_text()
    wrong_iface = agent("node3", "/early", "-iface=ens33")
    assert wrong_iface.wait(timeout=20) == 1
    assert "Failed to find interface to use" in wrong_iface.stderr_text()
    # no free subnet left: a /22 holds three /24 leases for four nodes
    flannel = Flannel(cluster, prefix="/full")
    flannel.configure("10.9.0.0/22", backend="vxlan")
    flannel.start_all(ttl=30)
    assert wait_until(lambda: len(flannel.leases()) == 3, timeout=30)
    assert wait_until(lambda: any("out of subnets" in flannel.log(n) for n in flannel.running()),
                      timeout=20)
    with pytest.raises(InvalidTopology, match="at least four subnets"):
        Flannel.config_json("10.4.0.0/23", subnet_len=24)


def test_an_agent_that_exits_at_startup_is_reported_as_such(lab: Lab) -> None:
    cluster = Cluster(lab, nodes=["node1"], store=None)
    flannel = Flannel(cluster)
    # started by hand with a usage error (Flannel.start would refuse it first)
    flannel.agents["node1"] = cluster["node1"].spawn_agent(
        "labkit.flannel.agent", "-etcd-endpoints=192.168.99.100:2379", "-iface=eth1")
    with pytest.raises(AgentExited, match=r"flanneld on node1 exited at startup \(status 2\): "
                                          r".*error: argument -etcd-endpoints.*is not a URL") as exc:
        flannel.wait_for_lease("node1", timeout=60)
    assert "fix what that line names" in str(exc.value) and "Traceback" not in str(exc.value)
    flannel.stop("node1")                      # ended on purpose: said so, not as a failure
    with pytest.raises(InvalidTopology, match="was stopped \\(flannel.stop\\) before it wrote subnet.env"):
        flannel.wait_for_lease("node1", timeout=60)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the student account needs root")
def test_flannel_suite_as_an_unprivileged_user() -> None:
    from test_cluster import passes_as_student

    passes_as_student("tests/test_flannel.py")
