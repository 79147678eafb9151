"""The shared cluster layer against the real network and the real etcd.

Runs as root and (``test_cluster_suite_as_an_unprivileged_user``) as the student.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from labkit import Lab
from labkit.errors import DuplicateName, InvalidAddress, InvalidName, InvalidTopology, NotFound
from labkit.cluster import Cluster, StoreUnreachable

from helpers import cmdline, descendants, kill_owner


def run_py(machine, code: str, *args: str, timeout: float = 60) -> str:
    """Run a Python snippet inside a cluster machine (as an agent would) and return stdout."""
    result = machine.run([sys.executable, "-c", textwrap.dedent(code), *args], timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_seed_layout_and_underlay(lab: Lab) -> None:
    cluster = Cluster(lab)
    assert [m.name for m in cluster.machines] == ["host", "node1", "node2"]
    assert [m.name for m in cluster.nodes] == ["node1", "node2"]
    assert cluster.store is cluster["host"] and cluster["host"].ip == "192.168.99.100"
    node2 = cluster.node("node2")
    assert node2.ip == "192.168.99.102" and node2.nic == "eth1"
    # the kernel agrees: the address on eth1, forwarding on, MTU 1500
    assert "192.168.99.102/24" in [a.cidr for a in node2.addresses("eth1")]
    assert node2.get_sysctl("net.ipv4.ip_forward") == "1"
    assert node2.interface("eth1").mtu == 1500
    reach = cluster.ping_all()
    assert len(reach) == 6 and all(reach.values()), reach
    assert cluster.describe()["machines"][1] == {
        "name": "node1", "role": "worker", "ip": "192.168.99.101", "nic": "eth1", "containers": []}


def test_sized_cluster_other_underlay_and_mtu(lab: Lab) -> None:
    cluster = Cluster.sized(lab, 4, store=None, underlay="10.99.0.0/24", mtu=1400, nic="ens3")
    assert cluster.store is None and len(cluster.machines) == 4
    assert cluster["node4"].ip == "10.99.0.104"
    assert cluster["node4"].interface("ens3").mtu == 1400
    assert all(cluster.ping_all(sources=["node1"]).values())
    with pytest.raises(InvalidTopology, match="no store machine"):
        cluster.start_etcd()


def test_ping_all_again_and_again(lab: Lab) -> None:
    # dozens of processes ending in the same instant while their status is asked for: the
    # supervisor once read a stream it had just drained and closed, and died
    cluster = Cluster.sized(lab, 8, store=None)
    for _ in range(6):
        reach = cluster.ping_all(count=1, wait=1)
        assert len(reach) == 56 and all(reach.values())


def test_bad_cluster_requests_build_nothing(lab: Lab) -> None:
    with pytest.raises(DuplicateName):
        Cluster(lab, nodes=["node1", "node1"])
    with pytest.raises(InvalidName):
        Cluster(lab, nodes=["bad name"])
    with pytest.raises(InvalidAddress, match="no room"):
        Cluster(lab, nodes=[f"n{i}" for i in range(200)])
    with pytest.raises(InvalidAddress, match="IPv4"):
        Cluster(lab, underlay="fd00::/64")
    assert lab.nodes == {}
    cluster = Cluster(lab)
    with pytest.raises(NotFound, match="not a machine"):
        cluster["node9"]
    with pytest.raises(DuplicateName):  # a second cluster with the same names
        Cluster(lab)


def test_containers_on_a_bridge(lab: Lab) -> None:
    cluster = Cluster(lab, store=None)
    node1, node2 = cluster.nodes
    node1.add_bridge("docker0", address="10.4.41.1/24", mtu=1450)
    c1 = node1.add_container("c1", address="10.4.41.2/24")
    assert c1.interface("eth0").mtu == 1450  # the bridge's MTU, as dockerd --mtu
    assert [r.gateway for r in c1.routes() if r.dst == "default"] == ["10.4.41.1"]
    assert len(node1.bridge_ports("docker0")) == 1 and node1.containers == [c1]
    node2.add_bridge("docker0", address="10.4.42.1/24")
    c2 = node2.add_container("c2", address="10.4.42.2/24")
    assert c1.ping("10.4.42.2").received == 0  # no route between the hosts yet
    cluster.static_routes({"node1": "10.4.41.0/24", "node2": "10.4.42.0/24"})
    assert c1.ping("10.4.42.2").received == 3
    hops = c1.traceroute("10.4.42.2")
    assert [h.address for h in hops] == ["10.4.41.1", "192.168.99.102", "10.4.42.2"]
    # mistakes: nothing half-built is left
    before = set(lab.nodes)
    with pytest.raises(InvalidTopology, match="not a bridge"):
        node1.add_container("c3", address="10.4.41.3/24", bridge="eth1")
    with pytest.raises(NotFound):
        node1.add_container("c3", address="10.4.41.3/24", bridge="cbr0")
    with pytest.raises(InvalidAddress):
        node1.add_container("c3", address="10.4.41.300/24")
    with pytest.raises(DuplicateName):
        node1.add_container("c1", address="10.4.41.3/24")
    assert set(lab.nodes) == before and len(node1.bridge_ports("docker0")) == 1


def test_machine_files_and_agents(lab: Lab) -> None:
    cluster = Cluster(lab, store=None)
    node1, node2 = cluster.nodes
    real = node1.write_text("/run/flannel/subnet.env", "FLANNEL_SUBNET=10.4.41.1/24\n")
    assert real == node1.path("/run/flannel/subnet.env") and real.startswith(node1.state_dir)
    assert node1.run(["cat", real]).stdout == "FLANNEL_SUBNET=10.4.41.1/24\n"
    assert node2.read_text("/run/flannel/subnet.env") is None  # each machine has its own /run
    with pytest.raises(InvalidAddress):
        node1.path("run/x")
    with pytest.raises(InvalidAddress):
        node1.path("/run/../../etc/passwd")
    proc = node1.spawn_agent("labkit.cluster.etcd", "nonsense")
    assert proc.wait(timeout=30) == 2 and "usage" in proc.stdout_text()
    with pytest.raises(InvalidTopology, match="module"):
        node1.spawn_agent("labkit; rm -rf /")


def test_real_etcd_from_every_machine(lab: Lab) -> None:
    cluster = Cluster(lab)
    etcd = cluster.start_etcd()
    assert etcd.endpoint == "http://192.168.99.100:2379" and etcd.running
    config = '{"Network": "10.4.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan"}}'
    # the seed's 2017 command (v2), from node1
    etcd.etcdctl("node1", "set", "/docker-test/network/config", config, api=2, check=True)
    assert etcd.etcdctl("node2", "get", "/docker-test/network/config", api=2).stdout.strip() == config
    assert etcd.get_v2("/docker-test") == {"/docker-test/network/config": config}
    # v2 and v3 keyspaces are separate
    assert etcd.get("/docker-test/network/config") is None
    etcd.etcdctl("node2", "put", "/coreos.com/network/config", config, check=True)
    assert etcd.get_prefix("/coreos.com/") == {"/coreos.com/network/config": config}
    out = etcd.etcdctl("node1", "get", "--prefix", "/coreos.com", check=True).stdout
    assert out.splitlines() == ["/coreos.com/network/config", config]
    etcd.put("/x/-dash", "-v")
    assert etcd.get("/x/-dash") == "-v" and etcd.delete("/x", prefix=True) == 1
    # a restart keeps the keys; a stopped etcd is reported clearly
    etcd.stop()
    assert not etcd.running
    with pytest.raises(StoreUnreachable, match="etcdctl get"):
        etcd.get_prefix("/")
    etcd.start()
    assert etcd.get("/coreos.com/network/config") == config
    assert "etcd" in etcd.argv[0] and "--enable-v2=true" in etcd.argv


def test_v3_client_inside_the_lab(lab: Lab) -> None:
    cluster = Cluster(lab)
    etcd = cluster.start_etcd()
    out = run_py(cluster["node1"], """
        import json, sys, threading
        from labkit.cluster import EtcdClient
        s = EtcdClient(sys.argv[1])
        lease = s.lease_grant(30)
        first = s.create("/net/subnets/a", "1", lease=lease)
        second = s.create("/net/subnets/a", "2")
        s.put("/net/config", "c")
        values, rev = s.get_prefix_with_revision("/net/")
        ttl = s.lease_keepalive(lease)
        short = s.lease_grant(1)
        s.put("/net/subnets/b", "x", lease=short)
        stop = threading.Event()
        seen = []
        for ev in s.watch("/net/subnets/", rev + 1, stop=stop):
            seen.append([ev.type, ev.key, ev.value])
            if ev.type == "PUT" and ev.key == "/net/subnets/b":
                s.delete("/net/subnets/a")
            if len(seen) == 3:   # put b, delete a, then b expires with its lease
                stop.set()
        s.lease_revoke(lease)
        print(json.dumps({"first": first, "second": second, "values": values, "ttl": ttl,
                          "seen": seen, "get": s.get("/net/subnets/a"),
                          "gone": s.lease_ttl(short)}))
    """, etcd.endpoint)
    data = json.loads(out)
    assert data["first"] is True and data["second"] is False
    assert data["values"] == {"/net/config": "c", "/net/subnets/a": "1"}
    assert 0 < data["ttl"] <= 30
    assert data["seen"] == [["PUT", "/net/subnets/b", "x"], ["DELETE", "/net/subnets/a", ""],
                            ["DELETE", "/net/subnets/b", ""]]
    assert data["get"] is None and data["gone"] == -1
    assert etcd.leases() == []  # the revoked lease and the expired one are gone
    etcd.stop()
    err = cluster["node2"].run([sys.executable, "-c",
                                "import sys\nfrom labkit.cluster import EtcdClient\n"
                                "EtcdClient(sys.argv[1], timeout=2).get('/k')", etcd.endpoint])
    assert err.returncode == 1
    assert "StoreUnreachable: etcd at http://192.168.99.100:2379 is unreachable" in err.stderr


def test_v2_client_inside_the_lab(lab: Lab) -> None:
    cluster = Cluster(lab)
    etcd = cluster.start_etcd()
    out = run_py(cluster["node2"], """
        import json, sys, threading
        from labkit.cluster import EtcdV2Client
        s = EtcdV2Client(sys.argv[1])
        s.set("/docker-test/network/config", "cfg")
        made = [s.create("/docker-test/network/subnets/10.4.1.0-24", "l", ttl=30),
                s.create("/docker-test/network/subnets/10.4.1.0-24", "m", ttl=30)]
        values, index = s.get_prefix_with_index("/docker-test/network")
        refreshed = s.refresh("/docker-test/network/subnets/10.4.1.0-24", 30)
        s.create("/docker-test/network/subnets/10.4.2.0-24", "n", ttl=1)
        stop = threading.Event()
        seen = []
        for ev in s.watch("/docker-test/network/subnets", index + 1, stop=stop):
            seen.append([ev.type, ev.key])
            if len(seen) == 2:
                stop.set()
        print(json.dumps({"made": made, "values": values, "refreshed": refreshed, "seen": seen,
                          "missing": s.refresh("/docker-test/network/subnets/none", 5)}))
    """, etcd.endpoint)
    data = json.loads(out)
    assert data["made"] == [True, False] and data["refreshed"] is True and data["missing"] is False
    assert data["values"] == {"/docker-test/network/config": "cfg",
                              "/docker-test/network/subnets/10.4.1.0-24": "l"}
    key2 = "/docker-test/network/subnets/10.4.2.0-24"
    # created, then expired; a TTL refresh does not wake watchers (etcd's own rule)
    assert data["seen"] == [["PUT", key2], ["DELETE", key2]]
    # and the real etcdctl (v2) sees what the client wrote
    listing = etcd.etcdctl("host", "ls", "--recursive", "/docker-test", api=2).stdout.split()
    assert "/docker-test/network/subnets/10.4.1.0-24" in listing and key2 not in listing


def test_nothing_left_after_the_owner_is_killed(tmp_path) -> None:
    script = textwrap.dedent("""
        import sys, time
        from labkit import Lab
        from labkit.cluster import Cluster
        from labkit.flannel import Flannel
        lab = Lab("killed", workdir=sys.argv[1])
        cluster = Cluster(lab)
        cluster.start_etcd()
        flannel = Flannel(cluster)
        flannel.configure("10.4.0.0/16")
        flannel.start("node1")
        flannel.wait_for_lease("node1")
        print("ready", flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True)
    tree: set[int] = set()
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        tree = descendants(owner.pid)
        assert len([p for p in tree if cmdline(p).startswith("etcd")]) == 1
        assert len([p for p in tree if "labkit.flannel.agent" in cmdline(p)]) == 1
    finally:
        left = kill_owner(owner, tree)
    assert left == []
    assert list(tmp_path.iterdir()) == []  # the etcd data and the state folders were not there


def passes_as_student(test_file: str) -> None:
    """Run ``test_file`` (except its own unprivileged test) as the unprivileged student."""
    from test_doctor_and_unprivileged import as_student

    out = as_student([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      test_file, "-k", "not unprivileged"], timeout=600)
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0, tail
    assert " passed" in out.stdout and "failed" not in out.stdout, tail


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the student account needs root")
def test_cluster_suite_as_an_unprivileged_user() -> None:
    passes_as_student("tests/test_cluster.py")


def test_doctor_reports_etcd_and_the_orchestrator_tools() -> None:
    from labkit import doctor

    checks = {c.name: c for c in doctor.run().checks}
    assert checks["etcd in a lab"].ok and "v2 and v3" in checks["etcd in a lab"].detail
    for tool, lesson in (("etcdctl", "lesson 30"), ("bird", "lesson 31"), ("dnsmasq", "lesson 32"),
                         ("conntrack", "lessons 40-41")):
        check = checks[f"tool {tool}"]
        assert lesson in check.disables and not check.essential
    assert "lesson 40" in checks["CNI plugins"].disables
    room = checks["ARP table room"]   # shared by every namespace of the machine
    assert "machine-wide (gc_thresh3)" in room.detail and "No buffer space" in room.disables


def test_etcd_under_a_small_address_space_limit_says_what_to_do(tmp_path) -> None:
    script = ("import sys\nfrom labkit import Lab\nfrom labkit.cluster import Cluster\n"
              "with Lab('small', workdir=sys.argv[1]) as lab:\n"
              "    Cluster(lab, nodes=['node1']).start_etcd()\n")
    out = subprocess.run(["prlimit", f"--as={1 << 30}", sys.executable, "-c", script, str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "StoreUnreachable: etcd cannot start under this process's address-space limit" in out.stderr
    assert "labkit grade --memory 2G" in out.stderr


# -- the agents' shared argument checks (pure) -------------------------------------------------

def test_agent_durations_are_finite_positive_and_bounded() -> None:
    import argparse

    from labkit.cluster.agent import MAX_SECONDS, RESYNC, Seconds, positive_seconds

    assert positive_seconds("1h30m") == 5400 and positive_seconds("500ms") == 0.5
    assert RESYNC("0.5") == 0.5 and Seconds("margin", unit=60)("2") == 120
    for bad in ["0", "-1", "nan", "inf", "1" * 400, "1e3", "5 s", "", "10000000000"]:
        with pytest.raises(argparse.ArgumentTypeError):
            positive_seconds(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="at least 0.1 s"):
        RESYNC("0.05")
    with pytest.raises(argparse.ArgumentTypeError, match="whole number of seconds"):
        Seconds("lease TTL", least=1, whole=True)("1.5")
    # the notebook side: numbers only, the same bounds, a remedy naming the keyword
    for bad in [0, -1, float("nan"), float("inf"), True, "30s", None, MAX_SECONDS * 2]:
        with pytest.raises(InvalidTopology, match=r"resync=.*give resync in seconds, e\.g\. resync=5"):
            RESYNC.check(bad, name="resync", op="start agent", example=5)
    # what the notebook side writes, the agent reads back exactly (never 1e+06s)
    for value in (0.1, 0.5, 1, 30, 1_000_000, 86400.25, MAX_SECONDS):
        assert positive_seconds(Seconds.flag(value)) == value
    assert Seconds.flag(1_000_000) == "1000000s"


def test_reconciler_refuses_a_period_that_would_spin() -> None:
    from labkit.cluster.agent import Reconciler

    for resync in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="must be finite and > 0"):
            Reconciler(object(), snapshot=lambda: ({}, 0), watch=lambda r, s: iter(()),  # type: ignore[arg-type]
                       sync=lambda s: None, resync=resync)


def test_agent_address_and_path_flags() -> None:
    import argparse

    from labkit.cluster.agent import etcd_endpoints, ipv4, machine_file, machine_path

    assert etcd_endpoints("http://192.168.99.100:2379, http://192.168.99.101:2379") == [
        "http://192.168.99.100:2379", "http://192.168.99.101:2379"]
    for bad in ["", ",", "192.168.99.100:2379", "http://h:99999", "etcd://h:2379"]:
        with pytest.raises(argparse.ArgumentTypeError):
            etcd_endpoints(bad)
    assert ipv4("192.168.99.101") == "192.168.99.101"
    with pytest.raises(argparse.ArgumentTypeError, match="'bogus' is not an IPv4 address"):
        ipv4("bogus")
    assert machine_file("/run/flannel/subnet.env") == "/run/flannel/subnet.env"
    for bad in ["subnet.env", "run/x", "/run/../../etc/passwd"]:
        with pytest.raises(argparse.ArgumentTypeError, match="absolute path without '..'"):
            machine_file(bad)
        with pytest.raises(ValueError):
            machine_path(bad)


def test_first_reachable_endpoint_is_used() -> None:
    import http.server
    import socket
    import threading

    from labkit.cluster.agent import first_reachable

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:                       # etcd answers /version with its JSON
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"etcdserver": "3.4.23"}')

        def log_message(self, *args: object) -> None:
            pass

    with socket.socket() as probe:                      # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alive = f"http://127.0.0.1:{server.server_port}"
        assert first_reachable([dead, alive], timeout=2) == alive
        assert first_reachable([dead], timeout=2) == dead   # none answers: the first
    finally:
        server.shutdown()
        server.server_close()
