"""A real dockerd per cluster machine, configured from flannel's subnet.env (seed 001 §4.3.5).

Root only (the engine runs in the initial user namespace and enters the node's network
namespace), marked ``docker``; each test checks that nothing of the engines is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import Lab
from labkit.cluster import Cluster
from labkit.docker.hosts import STATE_DIR, DockerHost, running_hosts
from labkit.docker.machine import engine_on
from labkit.errors import DuplicateName, InvalidTopology, NotFound
from labkit.flannel import Flannel

from helpers import cmdline, wait_until

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dockerd"),
                                 reason="a Docker engine per machine needs root and dockerd")]


def _records(session: str) -> set[str]:
    """This session's engine records (other labs on the machine may have their own)."""
    found = os.listdir(STATE_DIR) if STATE_DIR.is_dir() else []
    return {name for name in found if name.startswith(f"{session}-")}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "dockerd" in cmdline(pid)


def test_flannel_drives_one_real_dockerd_per_node(tmp_path) -> None:
    with Lab("fdock", workdir=tmp_path) as lab:
        cluster = Cluster(lab)
        cluster.start_etcd()
        flannel = Flannel(cluster, prefix="/docker-test/network")
        flannel.configure("10.4.0.0/16", backend="vxlan")
        flannel.start_all(ip_masq=True)
        flannel.wait_converged()
        engines = {n.name: flannel.start_docker(n) for n in cluster.nodes}
        assert flannel.start_docker("node1") is engines["node1"]   # started once, kept
        subnets = {n: flannel.subnet_env(n)["FLANNEL_SUBNET"] for n in engines}
        for name, engine in engines.items():
            # the flags mk-docker-opts.sh would give, on dockerd's own command line (ps)
            argv = engine.dockerd_argv()
            assert argv[0] == "dockerd" and argv[-3:] == [f"--bip={subnets[name]}", "--mtu=1450",
                                                          "--ip-masq=false"]
            # docker network inspect bridge: the lease is Docker's subnet
            inspect = engine.cli("network", "inspect", "bridge", "--format",
                                 "{{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}}")
            net, gw = inspect.stdout.split()
            assert gw == subnets[name].split("/")[0] and subnets[name].startswith(net.split(".0/")[0])
        c1 = engines["node1"].run("c1")
        c2 = engines["node2"].run("c2")
        node1, node2 = cluster["node1"], cluster["node2"]
        # dockerd made docker0 in the machine's own stack, from the lease
        bridge = node1.interface("docker0")
        assert bridge.kind == "bridge" and bridge.mtu == 1450
        assert [a.cidr for a in node1.addresses("docker0") if a.family == "inet"] == [subnets["node1"]]
        assert c1.ip() .startswith(subnets["node1"].rsplit(".", 1)[0] + ".")
        assert engines["node1"].cli("exec", "c1", "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1450"
        # across the hosts in VXLAN VNI 1, with the container's own address inside (no NAT)
        with node2.capture("eth1", filter="udp port 8472") as cap:
            reply = c1.ping(c2.ip(), count=2)
        assert reply.received == 2
        table = cap.table()
        assert set(table["vni"].dropna()) == {1}
        assert c1.ip() in set(table["inner_src_ip"]) and c2.ip() in set(table["inner_dst_ip"])
        # Docker left masquerading to flannel (--ip-masq=false): no rule of Docker's for docker0
        nat = node1.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], check=True).stdout
        assert "-j FLANNEL-POSTRTG" in nat and "MASQUERADE" not in nat
        assert "-j DOCKER-USER" in node1.run(["iptables", "-S", "FORWARD"], check=True).stdout
        pids = [e.dockerd_pid for e in engines.values()]
        assert all(pid and _alive(pid) for pid in pids)
        session = engines["node1"].session
        assert _records(session) == {f"{session}-node1", f"{session}-node2"}
    # closing the lab stopped the engines first: no dockerd, no record, no socket
    assert wait_until(lambda: not any(_alive(p) for p in pids), timeout=15)
    assert _records(session) == set()
    assert not [r for r in running_hosts() if r["session"] == session]


def test_engine_options_and_mistakes_are_checked(tmp_path) -> None:
    with pytest.raises(InvalidTopology, match="not of the form --name"):
        DockerHost("s", "node1", args=["--bip 10.4.1.1/24"])
    with pytest.raises(InvalidTopology, match="set by the Docker host itself"):
        DockerHost("s", "node1", args=["--data-root=/tmp/x"])
    with pytest.raises(InvalidTopology, match="must be a list"):
        DockerHost("s", "node1", args="--mtu=1450")  # type: ignore[arg-type]
    with Lab("fdock2", workdir=tmp_path) as lab:
        cluster = Cluster(lab, nodes=["node1"])
        cluster.start_etcd()
        flannel = Flannel(cluster)
        with pytest.raises(NotFound, match="no complete /run/flannel/subnet.env"):
            flannel.start_docker("node1")                      # before flanneld's lease
        flannel.configure("10.5.0.0/16", backend="vxlan")
        flannel.start_all()
        flannel.wait_for_lease("node1")
        assert flannel.docker_opts("node1")[1:] == ["--mtu=1450"]   # FLANNEL_IPMASQ=false: Docker masquerades
        flannel.docker_bridge("node1")                          # the hand-made docker0 ...
        with pytest.raises(InvalidTopology, match="already has a docker0"):
            flannel.start_docker("node1")                      # ... and dockerd's would clash
        cluster["node1"].delete_link("docker0")
        engine = flannel.start_docker("node1")
        with pytest.raises(DuplicateName, match="already runs a Docker engine"):
            engine_on(cluster["node1"])                        # never a second engine, never the first killed
        assert engine.running and engine.client.ping()
        session = engine.session
        with pytest.raises(InvalidTopology, match="not a node of lab"):
            engine_on(_stranger(lab))
    assert _records(session) == set()


def _stranger(lab: Lab):
    """A node object of another lab with a name this lab also has."""
    other = Lab("fdock3")
    try:
        node = other.add_host("node1")
        node.lab = lab  # claims to be of `lab`, but lab.nodes["node1"] is another object
        return node
    finally:
        other.close()


def test_an_engine_dies_with_the_notebook_that_started_it(tmp_path) -> None:
    script = ("import sys, time\n"
              "from labkit import Lab\n"
              "from labkit.docker.machine import engine_on\n"
              f"lab = Lab('fdock4', workdir={str(tmp_path)!r})\n"
              "node = lab.add_router('node1')\n"
              "engine = engine_on(node)\n"
              "engine.run('c1')\n"
              "print(engine.dockerd_pid, engine.dir, flush=True)\n"
              "time.sleep(120)\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid_text, folder = owner.stdout.readline().split()
        dockerd = int(pid_text)
        assert _alive(dockerd)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert wait_until(lambda: not _alive(dockerd), timeout=20)
    # the kernel ended the engine's PID namespace: no containerd or container survives it
    def survivors() -> list[str]:
        return [p for p in os.listdir("/proc") if p.isdigit() and folder in cmdline(int(p))]

    assert wait_until(lambda: not survivors(), timeout=20), [cmdline(int(p)) for p in survivors()]
    shutil.rmtree(folder, ignore_errors=True)   # the record outlives a SIGKILL (labkit clean tidies it)
