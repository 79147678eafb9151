"""Calico on the shared cluster: real BIRD sessions, routes read back from the kernel,
felix's wiring and chains, policy with a real HTTP server, BIRD stopped and restarted.

Runs as root and, through ``UNPRIVILEGED_SUITE`` in test_doctor_and_unprivileged.py, as the
student.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from labkit import Lab
from labkit.calico import GATEWAY, WORKLOAD_MAC, Calico
from labkit.calico.bird import SOCKET
from labkit.cluster import Cluster
from labkit.errors import AgentExited, InvalidAddress, InvalidTopology, NotFound

from helpers import cmdline, descendants, kill_owner, wait_until


def bird_routes(machine) -> dict[str, tuple[str, str | None]]:
    """``ip route show proto bird``: {dst: (type, gateway)}."""
    return {r.dst: (r.type, r.gateway) for r in machine.node.routes("inet") if r.protocol == "bird"}


def serve_http(calico: Calico, workload) -> None:
    """busybox httpd on port 80 in the workload, serving one page from its machine's /var/www."""
    machine = workload.machine
    machine.write_text("/var/www/index.html", f"hello from {workload.name}\n")
    workload.node.spawn(["busybox", "httpd", "-f", "-p", "80", "-h", machine.path("/var/www")])
    assert wait_until(lambda: workload.node.run(["curl", "-sS", "-m", "2",
                                                 "http://127.0.0.1/"]).ok, timeout=10)


def fetch(client, ip: str) -> bool:
    return client.node.run(["curl", "-sS", "-m", "2", f"http://{ip}/"]).ok


def test_full_mesh_routes_policy_and_bird_restart(lab: Lab) -> None:
    cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
    calico = Calico(cluster).start()
    # every node: two Mesh_<ip> sessions, Established, one TCP connection per pair
    sessions = calico.sessions()
    assert sessions["node2"] == {"Mesh_192_168_99_101": "Established", "Mesh_192_168_99_103": "Established"}
    assert all(len(s) == 2 and set(s.values()) == {"Established"} for s in sessions.values()), sessions
    cfg = cluster["node2"].read_text("/etc/calico/confd/config/bird.cfg")
    assert cfg is not None and "passive on" in cfg.split("Mesh_192_168_99_103")[1].split("}")[0]
    assert "Established" in cluster["node1"].run(["birdc", "-s", cluster["node1"].path(SOCKET),
                                                             "show", "protocols"]).stdout

    for name in ("cal_net1", "cal_net2", "cal_web"):
        calico.add_network(name)
    bbox1 = calico.add_workload("node1", "bbox1", network="cal_net1")
    bbox2 = calico.add_workload("node2", "bbox2", network="cal_net1")
    bbox3 = calico.add_workload("node1", "bbox3", network="cal_net2")
    web1 = calico.add_workload("node3", "web1", network="cal_web")
    calico.wait_routes()

    # route shapes, read back from each kernel (seed 001 §4.5.2)
    blocks = calico.blocks()
    assert blocks[bbox1.block] == "node1" and bbox1.block == bbox3.block and bbox1.block.endswith("/26")
    node1, node2 = cluster["node1"], cluster["node2"]
    assert bird_routes(node1)[bbox1.block] == ("blackhole", None)
    assert bird_routes(node1)[bbox2.block] == ("unicast", node2.ip)
    assert bird_routes(node2)[bbox1.block] == ("unicast", node1.ip)
    assert [r.dev for r in node2.node.routes("inet") if r.dst == bbox1.block] == ["eth1"]
    host_route = [r for r in node1.node.routes("inet") if r.dst == f"{bbox1.ip}/32"]
    assert len(host_route) == 1 and host_route[0].dev == bbox1.ifname and host_route[0].scope == "link"
    assert "blackhole " + bbox1.block + " proto bird" in node1.run(["ip", "route"]).stdout

    # the workload side: eth0 with a /32, 169.254.1.1 scope link, default via it
    assert [a.cidr for a in bbox1.node.addresses("eth0")] == [f"{bbox1.ip}/32"]
    routes = {r.dst: r for r in bbox1.node.routes("inet")}
    assert routes[f"{GATEWAY}/32"].scope == "link" and routes["default"].gateway == GATEWAY
    assert node1.interface(bbox1.ifname).address == WORKLOAD_MAC
    assert bbox1.ifname.startswith("cali") and len(bbox1.ifname) == 15
    for key in ("proxy_arp", "forwarding", "route_localnet"):
        assert node1.get_sysctl(f"net.ipv4.conf.{bbox1.ifname}.{key}") == "1"
    assert node1.get_sysctl(f"net.ipv4.neigh.{bbox1.ifname}.proxy_delay") == "0"

    # across nodes: two routers on the way, so ttl 64 - 2 = 62; proxy ARP answered
    reply = bbox1.node.ping(bbox2.ip, count=2)
    assert reply.received == 2 and {r.ttl for r in reply.replies} == {62}
    neigh = [n for n in bbox1.node.neighbours() if n.dst == GATEWAY]
    assert neigh and neigh[0].lladdr == WORKLOAD_MAC

    # policy: networks isolated; cal_web's profile lets tcp/80 in from cal_net2 only
    assert bbox1.node.ping(bbox3.ip, count=1, wait=1).received == 0
    serve_http(calico, web1)
    assert not fetch(bbox3, web1.ip)
    calico.set_profile("cal_web", inbound=[{"action": "allow", "protocol": "tcp", "src_tag": "cal_net2",
                                            "dst_ports": [80]}])
    calico.wait_synced()
    assert fetch(bbox3, web1.ip)
    assert bbox3.node.ping(web1.ip, count=1, wait=1).received == 0
    assert not fetch(bbox1, web1.ip)
    saved = cluster["node3"].run(["iptables-save", "-t", "filter"]).stdout
    assert f"-A cali-tw-{web1.ifname} -j cali-pri-cal_web" in saved
    assert '"Drop if no profiles matched" -j DROP' in saved and "--dports 80" in saved
    assert f":cali-fw-{web1.ifname}" in saved and ":cali-pro-cal_web" in saved

    # BIRD stopped on node2: its peers withdraw its block; restarted: it comes back
    calico.stop_bird("node2")
    calico.wait_withdrawn("node2")
    assert bbox2.block not in bird_routes(cluster["node3"])
    assert bbox1.node.ping(bbox2.ip, count=1, wait=1).received == 0
    calico.start_bird("node2")
    calico.wait_established()
    calico.wait_routes()
    assert bird_routes(node1)[bbox2.block] == ("unicast", node2.ip)
    assert bbox1.node.ping(bbox2.ip, count=1).received == 1


def test_route_reflector_custom_pool_and_bad_input(lab: Lab) -> None:
    cluster = Cluster(lab, nodes=["node1", "node2", "node3"])
    with pytest.raises(InvalidAddress, match="outside 20-32"):
        Calico(cluster, block_size=19)
    with pytest.raises(NotFound, match="route reflector 'nodeX'"):
        Calico(cluster, route_reflectors=["nodeX"])
    calico = Calico(cluster, route_reflectors=["node1"]).start()
    # N-1 sessions instead of N(N-1)/2: the reflector holds one per client
    sessions = calico.sessions()
    assert sessions == {"node1": {"Node_192_168_99_102": "Established", "Node_192_168_99_103": "Established"},
                        "node2": {"Node_192_168_99_101": "Established"},
                        "node3": {"Node_192_168_99_101": "Established"}}
    assert "rr client;" in cluster["node1"].read_text("/etc/calico/confd/config/bird.cfg")

    calico.add_network("cal_net1")
    calico.add_pool("17.2.0.0/16")
    a = calico.add_workload("node2", "a", network="cal_net1", pool="17.2.0.0/16")
    b = calico.add_workload("node3", "b", network="cal_net1")
    assert a.ip.startswith("17.2.") and a.block.startswith("17.2.")
    calico.wait_routes()
    # reflected routes keep the originator as next hop: node3 reaches node2 directly
    assert bird_routes(cluster["node3"])[a.block] == ("unicast", cluster["node2"].ip)
    reply = b.node.ping(a.ip, count=1)
    assert reply.received == 1 and reply.replies[0].ttl == 62

    before = set(lab.nodes)
    with pytest.raises(InvalidAddress, match="overlaps the existing pool 17.2.0.0/16"):
        calico.add_pool("17.2.128.0/17")
    with pytest.raises(NotFound, match="profile \\(network\\) 'nope' does not exist"):
        calico.add_workload("node2", "c", network="nope")
    with pytest.raises(InvalidAddress, match="10.9.9.9 is outside every IP pool"):
        calico.add_workload("node2", "c", network="cal_net1", ip="10.9.9.9")
    with pytest.raises(InvalidTopology, match="not a Calico node"):
        calico.add_workload("host", "c", network="cal_net1")
    with pytest.raises(InvalidTopology, match="protocol"):
        calico.set_profile("cal_net1", inbound=[{"action": "allow", "dst_ports": [80]}])
    assert set(lab.nodes) == before and "c" not in calico.workloads
    handles = calico.keys("/calico/ipam/v2/handle/")
    assert sorted(handles) == ["/calico/ipam/v2/handle/default.a", "/calico/ipam/v2/handle/default.b"]


def test_a_malformed_key_is_logged_and_every_agent_keeps_running(lab: Lab) -> None:
    from labkit.calico import keys

    cluster = Cluster(lab, nodes=["node1", "node2"])
    calico = Calico(cluster).start(wait=False)
    calico.wait_synced(timeout=60)
    # what a student's mistyped `etcdctl put` leaves in the store
    calico.etcd.put(keys.AS_NUM, "sixty")
    calico.etcd.put(keys.BGP_HOSTS + "node9", "192.168.99.109")
    calico.wait_synced(timeout=60)        # every agent read it, and applied the rest
    for machine in cluster.nodes:
        agent = calico.agents[machine.name]
        assert agent.running, agent.stderr_text()[-1000:]
        log = agent.stderr_text()
        assert "[ERROR]" in log and f"ignoring key {keys.AS_NUM}: invalid literal for int()" in log
        assert f"ignoring key {keys.BGP_HOSTS}node9: not a key" in log
        assert "Traceback" not in log
    # the default AS is used meanwhile, and a correct put is taken up again
    assert "local as 64512" in cluster["node1"].read_text("/etc/calico/confd/config/bird.cfg")
    calico.etcd.put(keys.AS_NUM, "64513")
    calico.etcd.delete(keys.BGP_HOSTS + "node9")
    calico.wait_synced(timeout=60)
    assert wait_until(lambda: "local as 64513" in cluster["node1"].read_text(
        "/etc/calico/confd/config/bird.cfg"), timeout=30)
    # an agent that dies is reported at once by every wait, not as a timeout
    calico.agents["node2"].signal("KILL")
    assert wait_until(lambda: not calico.agents["node2"].running, timeout=10)
    with pytest.raises(AgentExited, match=r"calico agent on node2 exited \(status"):
        calico.wait_synced(timeout=60)


def test_nothing_left_after_the_owner_is_killed(tmp_path) -> None:
    script = textwrap.dedent("""
        import sys, time
        from labkit import Lab
        from labkit.cluster import Cluster
        from labkit.calico import Calico
        lab = Lab("killed", workdir=sys.argv[1])
        calico = Calico(Cluster(lab, nodes=["node1", "node2"])).start()
        print("ready", flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    tree: set[int] = set()
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        tree = descendants(owner.pid)
        names = [cmdline(p) for p in tree]
        assert sum(n.startswith("bird ") for n in names) == 2, names
        assert sum("labkit.calico.agent" in n for n in names) == 2, names
    finally:
        survivors = kill_owner(owner, tree)
    assert not survivors, survivors
    assert list(tmp_path.iterdir()) == []
