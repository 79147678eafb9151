"""The Docker backend against a real engine: labels and clean-up, the offline base image,
the default networks, user-defined bridges, names, links, published ports and the
iptables rules behind them, container namespaces seen with labkit's own tools,
captures on docker0, a two-engine overlay, the guarded proxy for graded notebooks,
and the Docker exercise's student copy in step with its solution (the exercise graded
end to end is in tests/test_grading.py).

Every test that needs the engine is skipped, with the reason, when none answers
(``.ci/docker.sh`` starts one). Names and subnets carry this process's id, so a
notebook using ``db`` and ``web`` at the same time is not disturbed. Nothing labelled
by these tests may survive them: the module's last check says so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Iterator

import pytest

from labkit.docker import (BASE_IMAGE, COURSE_LABEL, COURSE_VALUE, IMAGE_LABEL, SESSION_LABEL,
                           WEB_PAGE,
                           DockerLab, check, clean, connect, ensure_base_image, gateway_of, labels,
                           list_resources, network_summary, parse_busybox_ping, parse_nslookup,
                           peer_interface)
from labkit.docker.images import _is_static, rootfs_tar

from helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
STATUS = check()
if not STATUS:
    # Shown in pytest's warnings summary even with -q, so the skip never goes unnoticed.
    warnings.warn(f"Docker tests skipped: {STATUS.reason}. {STATUS.remedy}", stacklevel=1)
_no_engine = pytest.mark.skipif(not STATUS, reason=f"no Docker engine: {STATUS.reason}")


def needs_engine(test):
    """Marked ``docker`` (select with ``-m docker``) and skipped, with the reason, without one."""
    return pytest.mark.docker(_no_engine(test))

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="looking inside containers needs root")

PID = os.getpid()
SESSION = f"pytest-{PID}"
NET = PID % 200  # third octet of this run's subnets: 10.77.NET.0/24, 10.78.NET.0/24


def name(short: str) -> str:
    """A container or network name unique to this test run."""
    return f"t{PID}-{short}"


def docker_cli(*args: str) -> str:
    """The docker command, as a cross-check of what docker-py made."""
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    if not STATUS:
        pytest.skip(f"no Docker engine: {STATUS.reason}")
    made = connect()
    yield made
    left = [r for r in list_resources(made).itertuples() if r.session.startswith(SESSION)]
    for session in {r.session for r in left}:
        clean(made, session=session)
    made.close()
    assert not left, f"tests left labelled Docker resources behind: {left}"


@pytest.fixture
def dl(client, request) -> Iterator[DockerLab]:
    with DockerLab(f"{SESSION}-{request.node.name[:24]}", client) as made:
        yield made
    assert len(list_resources(client, session=made.session)) == 0


# -- pure parsing (no engine needed) ---------------------------------------------------

def test_busybox_ping_output_is_parsed() -> None:
    text = ("PING web (172.18.0.3): 56 data bytes\n"
            "64 bytes from 172.18.0.3: seq=0 ttl=64 time=0.167 ms\n"
            "64 bytes from 172.18.0.3: seq=1 ttl=64 time=0.081 ms\n\n"
            "--- web ping statistics ---\n"
            "2 packets transmitted, 2 packets received, 0% packet loss\n"
            "round-trip min/avg/max = 0.081/0.124/0.167 ms\n")
    result = parse_busybox_ping(text, "web", "db")
    assert (result.sent, result.received, result.loss) == (2, 2, 0.0)
    assert [r.seq for r in result.replies] == [0, 1] and result.replies[0].source == "172.18.0.3"
    assert result.rtt_max == 0.167
    failed = parse_busybox_ping("ping: bad address 'web'\n", "web")
    assert not failed and failed.errors == ["ping: bad address 'web'"]


def test_nslookup_output_is_parsed() -> None:
    text = ("Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\n"
            "Name:\tweb\nAddress: 172.18.0.3\n\n")
    assert parse_nslookup(text) == ["172.18.0.3"]
    assert parse_nslookup(";; connection timed out; no servers could be reached\n") == []


def test_labels_say_course_and_session() -> None:
    assert labels("nb") == {COURSE_LABEL: COURSE_VALUE, SESSION_LABEL: "nb"}
    assert labels() == {COURSE_LABEL: COURSE_VALUE}


def test_missing_engine_is_explained(tmp_path) -> None:
    status = check(f"unix://{tmp_path}/no-such.sock")
    assert not status
    assert "not running" in status.reason or "not installed" in status.reason
    assert ".ci/docker.sh" in status.remedy or "VM" in status.remedy
    assert "cannot run" in str(status)
    with pytest.raises(ConnectionError):
        status.raise_if_unreachable()


def test_base_image_tar_is_deterministic_and_static() -> None:
    if not any(_is_static(Path(p)) for p in ("/bin/busybox", "/usr/bin/busybox")):
        pytest.skip("busybox-static is not installed")
    first, second = rootfs_tar(), rootfs_tar()
    assert first == second
    import io
    import tarfile

    names = tarfile.open(fileobj=io.BytesIO(first)).getnames()
    for tool in ("bin/sh", "bin/ping", "bin/ip", "bin/nc", "bin/wget", "bin/httpd",
                 "bin/nslookup", "bin/sleep", "etc/passwd", "var/www/index.html"):
        assert tool in names


# -- the engine and the base image ------------------------------------------------------

@needs_engine
def test_base_image_is_built_offline_and_cached(client) -> None:
    image = ensure_base_image(client)
    # The image is marked as the course's cache, not with the course label, which its
    # containers would inherit (that label must mean "made by the course").
    assert image.labels[IMAGE_LABEL] == "base" and COURSE_LABEL not in image.labels
    started = time.monotonic()
    assert ensure_base_image(client).id == image.id  # cached: no second build
    assert time.monotonic() - started < 2
    # A fresh build under another tag, to exercise the whole path even when cached.
    tag = f"labkit/busybox:test-{PID}"
    try:
        fresh = ensure_base_image(client, tag=tag)
        assert fresh.attrs["Config"]["Cmd"] == ["sh"]
        out = client.containers.run(tag, ["sh", "-c", "ls /bin | wc -l; cat /var/www/index.html"],
                                    network_mode="none", remove=True, labels=labels(SESSION))
        count, page = out.decode().split("\n", 1)
        assert int(count) > 100 and page == WEB_PAGE
        inspected = json.loads(docker_cli("image", "inspect", tag))[0]
        assert inspected["Id"] == fresh.id
        assert inspected["Config"]["Labels"][IMAGE_LABEL] == "base"
    finally:
        client.images.remove(tag, force=True)


@needs_engine
def test_clean_removes_labelled_resources_only(client) -> None:
    session = f"{SESSION}-clean"
    dl = DockerLab(session, client)
    dl.network(name("cleannet"), subnet=f"10.77.{NET}.0/24")
    dl.run(name("c1"), network=name("cleannet"))
    dl.run(name("c2"))
    stranger = client.containers.run(BASE_IMAGE, "sleep 60", name=name("stranger"), detach=True,
                                      network_mode="none", dns=["127.0.0.1"])
    try:
        table = list_resources(client, session=session)
        assert sorted(table["name"]) == sorted([name("c1"), name("c2"), name("cleannet")])
        # The docker command sees what docker-py created, labels included.
        seen = docker_cli("ps", "-a", "--filter", f"label={SESSION_LABEL}={session}",
                          "--format", "{{.Names}} {{.Label \"io.labkit.course\"}}").split("\n")
        assert sorted(filter(None, seen)) == sorted(f"{name(c)} {COURSE_VALUE}" for c in ("c1", "c2"))
        nets = docker_cli("network", "ls", "--filter", f"label={SESSION_LABEL}={session}",
                          "--format", "{{.Name}}").split()
        assert nets == [name("cleannet")]
        report = clean(client, session=session)
        assert sorted(report.containers) == sorted([name("c1"), name("c2")])
        assert report.networks == [name("cleannet")] and not report.failed
        assert len(list_resources(client, session=session)) == 0
        stranger.reload()
        assert stranger.status == "running"  # not labelled: not ours to remove
    finally:
        stranger.remove(force=True)


@needs_engine
def test_command_line_clean(client) -> None:
    session = f"{SESSION}-cli"
    dl = DockerLab(session, client)
    dl.run(name("cli1"))
    out = subprocess.run([sys.executable, "-m", "labkit.docker", "clean", "--session", session],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"1 containers ({name('cli1')})" in out.stdout
    assert len(list_resources(client, session=session)) == 0


# -- the three default networks ---------------------------------------------------------

@needs_engine
def test_the_three_default_networks(client) -> None:
    api = {n.name: n.attrs["Driver"] for n in client.networks.list()
           if n.name in ("bridge", "host", "none")}
    assert api == {"bridge": "bridge", "host": "host", "none": "null"}
    cli = dict(line.split() for line in docker_cli("network", "ls", "--format",
                                                   "{{.Name}} {{.Driver}}").splitlines())
    assert {k: cli[k] for k in api} == api


@needs_engine
@needs_root
def test_none_and_host_modes(dl) -> None:
    lonely = dl.run(name("none"), network="none")
    assert [i.ifname for i in dl.netns(lonely).interfaces()] == ["lo"]
    assert len(lonely.run("ip -o link").stdout.splitlines()) == 1  # busybox agrees
    hosted = dl.run(name("host"), network="host")
    host = dl.host()
    assert os.stat(f"/proc/{hosted.pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    assert {i.ifname for i in dl.netns(hosted).interfaces()} == {i.ifname for i in host.interfaces()}


@needs_engine
@needs_root
def test_default_bridge_is_docker0_with_a_veth_per_container(dl, client) -> None:
    bridge = client.networks.get("bridge")
    summary = network_summary(bridge)
    assert summary["Bridge"] == "docker0"
    subnet, gateway = summary["IPAM"][0]["Subnet"], gateway_of(bridge)
    one = dl.run(name("b1"))
    two = dl.run(name("b2"))
    ip, mac = one.ip("bridge"), one.mac("bridge")
    assert one.gateway("bridge") == gateway
    # Docker derives the MAC from the address: 02:42 then the four bytes of the IPv4.
    assert mac == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    inside = dl.netns(one)
    eth0 = inside.interface("eth0")
    assert eth0.kind == "veth" and eth0.address == mac
    assert any(a.local == ip for a in inside.addresses("eth0"))
    routes = {r.dst: r for r in inside.routes("inet")}
    assert routes["default"].gateway == gateway and routes[subnet].dev == "eth0"
    host = dl.host()
    peer = peer_interface(inside, host)
    assert peer.master == "docker0" and peer.ifname in host.bridge_ports("docker0")
    assert any(a.local == gateway for a in host.addresses("docker0"))
    assert two.ping(ip).received == 1                       # docker exec b2 ping b1's address
    assert inside.ping(two.ip("bridge"), count=1).received == 1  # host's ping in b1's namespace
    learnt = {(e.mac, e.ifname) for e in host.fdb() if e.master == "docker0"}
    assert (mac, peer.ifname) in learnt
    # ... and the docker command reports the same container on the same network.
    cli = json.loads(docker_cli("network", "inspect", "bridge"))[0]["Containers"]
    assert {c["Name"]: c["MacAddress"] for c in cli.values()}[one.name] == mac


# -- user-defined bridges, names, links ----------------------------------------------------

@needs_engine
def test_user_bridge_isolation_connect_and_names(dl, client) -> None:
    test_net = name("bt")
    subnet = f"10.78.{NET}.0/24"
    net = dl.network(test_net, subnet=subnet)
    db = dl.run(name("db"), network=test_net)
    web = dl.run(name("web"))  # on the default bridge
    summary = network_summary(net)
    assert summary["IPAM"] == [{"Subnet": subnet, "Gateway": f"10.78.{NET}.1"}]
    assert summary["Bridge"].startswith("br-") and summary["Driver"] == "bridge"
    assert db.ip(test_net) == f"10.78.{NET}.2" and db.mac(test_net) == f"02:42:0a:4e:{NET:02x}:02"
    # Different networks: no way through, by address or by name.
    assert db.ping(web.ip("bridge")).received == 0
    assert db.resolve(web.name) is None
    dl.connect(test_net, web)  # docker network connect bt web
    assert db.ping(web.name).received == 1
    assert db.resolve(web.name) == web.ip(test_net) == f"10.78.{NET}.3"
    assert set(web.networks()) == {"bridge", test_net}
    cli = json.loads(docker_cli("network", "inspect", test_net))[0]
    assert sorted(c["Name"] for c in cli["Containers"].values()) == sorted([db.name, web.name])
    assert cli["Labels"][COURSE_LABEL] == COURSE_VALUE
    dl.disconnect(test_net, web)
    assert db.ping(web.name).received == 0


@needs_engine
def test_names_resolve_on_user_networks_only_and_links(dl) -> None:
    a = dl.run(name("a"))
    b = dl.run(name("b"))
    assert b.ping(a.ip("bridge")).received == 1      # same bridge: addresses work
    assert b.resolve(a.name) is None                   # but the default bridge has no DNS
    assert b.ping(a.name).received == 0
    linked = dl.run(name("l"), links={a.name: "db"})  # docker run --link A:db
    assert linked.hosts_entries()["db"] == a.ip("bridge")
    assert linked.ping("db").received == 1
    assert linked.ping(a.name).received == 1           # --link also writes the real name


# -- published ports and the rules Docker writes -----------------------------------------

def _nat_rules() -> str:
    return subprocess.run(["iptables", "-t", "nat", "-S", "DOCKER"], capture_output=True,
                          text=True, check=True).stdout


@needs_engine
@needs_root
def test_port_publishing_writes_a_dnat_rule(dl, client) -> None:
    gateway = gateway_of(client.networks.get("bridge"))
    web = dl.run(name("pub"), "httpd -f -p 80 -h /var/www", ports={"80/tcp": (gateway, None)})
    web.reload()
    host_port = int(web.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    rule = (f"-A DOCKER -d {gateway}/32 ! -i docker0 -p tcp -m tcp --dport {host_port} "
            f"-j DNAT --to-destination {web.ip('bridge')}:80")
    assert rule in _nat_rules()
    assert docker_cli("port", web.name, "80/tcp").strip() == f"{gateway}:{host_port}"
    page = urllib.request.urlopen(f"http://{gateway}:{host_port}/", timeout=10).read().decode()
    assert page == WEB_PAGE
    filters = subprocess.run(["iptables", "-S", "DOCKER"], capture_output=True, text=True,
                             check=True).stdout
    assert f"-d {web.ip('bridge')}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT" in filters
    web.container.remove(force=True)
    assert wait_until(lambda: rule not in _nat_rules())


# -- captures on docker0 and on a container's veth ---------------------------------------

@needs_engine
@needs_root
def test_capture_on_docker0_and_on_the_host_side_veth(dl, tmp_path) -> None:
    from labkit.capture import Capture

    one, two = dl.run(name("cap1")), dl.run(name("cap2"))
    host = dl.host()
    veth = peer_interface(dl.netns(one), host).ifname
    with Capture(host, "docker0", filter="icmp", path=tmp_path / "br.pcap") as on_bridge, \
            Capture(host, veth, filter="icmp", path=tmp_path / "veth.pcap") as on_veth:
        assert one.ping(two.ip("bridge"), count=2).received == 2    # bridged between ports
        assert one.ping(one.gateway("bridge"), count=1).received == 1  # up to the host
    sent_to = {}
    for cap in (on_bridge, on_veth):
        table = cap.table()
        requests = table[table["icmp_type"] == 8]
        assert set(requests["src_ip"]) == {one.ip("bridge")}
        assert set(requests["src_mac"]) == {one.mac("bridge")}
        sent_to[cap.ifname] = sorted(requests["dst_ip"])
    # The veth carries everything the container sends; docker0 itself sees only what the
    # bridge delivers to the host, not frames it forwards from one port to another.
    gateway = one.gateway("bridge")
    assert sent_to[veth] == sorted([two.ip("bridge")] * 2 + [gateway])
    assert sent_to["docker0"] == [gateway]


# -- two engines, one overlay -------------------------------------------------------------

@needs_engine
@needs_root
@pytest.mark.slow
def test_overlay_between_two_engines_carries_vxlan(client, tmp_path) -> None:
    from labkit.capture import Capture
    from labkit.docker.hosts import STATE_DIR, DockerHosts, running_hosts

    session = f"t{PID}"
    with DockerHosts(session, {"node1": "192.168.99.103/24", "node2": "192.168.99.104/24"}) as hosts:
        assert {h["name"] for h in running_hosts() if h["session"] == session} == {"node1", "node2"}
        assert hosts["node1"].client.info()["Name"] == "node1"
        assert hosts.node("node1").ping("192.168.99.104", count=1).received == 1
        hosts.swarm()
        net = hosts.overlay("demonet", subnet="10.10.3.0/24")
        assert net.attrs["Driver"] == "overlay" and net.attrs["Scope"] == "swarm"
        c1 = hosts["node1"].run("c1", network="demonet")
        c2 = hosts["node2"].run("c2", network="demonet")
        with Capture(hosts.node("node1"), "eth0", filter="udp port 4789",
                     path=tmp_path / "wire.pcap") as wire:
            assert c1.ping("c2", count=2).received == 2
        table = wire.table()
        assert len(table) >= 4 and set(table["tunnel"]) == {"vxlan"}
        assert set(table["inner_src_ip"]) == {c1.ip("demonet"), c2.ip("demonet")}
        assert set(table["src_ip"]) == {"192.168.99.103", "192.168.99.104"}
        assert (table["overhead_bytes"] == 50).all()
        c2_ns = hosts.netns(c2)
        assert c2_ns.interface("eth0").address == c2.mac("demonet")
        ps = hosts["node2"].client.containers.list()
        assert [c.name for c in ps] == ["c2"]
        recorded = STATE_DIR / f"{session}-node1"
        assert recorded.is_dir()
    assert not recorded.exists()
    assert not [h for h in running_hosts() if h["session"] == session]



@needs_engine
@needs_root
def test_scaling_a_swarm_service_keeps_its_running_tasks() -> None:
    from docker.types import ServiceMode

    from labkit.docker.hosts import DockerHosts, scale_service
    from labkit.errors import InvalidTopology

    with DockerHosts(f"s{PID}", {"node1": "192.168.99.103/24", "node2": "192.168.99.104/24"}) as hosts:
        hosts.swarm()
        service = hosts["node1"].client.services.create(
            BASE_IMAGE, ["sleep", "600"], name="scaled", mode=ServiceMode("replicated", replicas=2),
            labels={COURSE_LABEL: COURSE_VALUE})

        def running() -> set[str]:
            return {t["ID"] for t in service.tasks(filters={"desired-state": "running"})
                    if t["Status"]["State"] == "running"}

        assert wait_until(lambda: len(running()) == 2, timeout=60)
        before = running()
        scale_service(service, 3)                  # docker service scale scaled=3
        assert wait_until(lambda: len(running()) == 3, timeout=60)
        assert before < running()                  # the two first tasks kept, one added
        spec = hosts["node1"].client.api.inspect_service(service.id)
        assert spec["Spec"]["Mode"] == {"Replicated": {"Replicas": 3}}
        assert "UpdateStatus" not in spec          # no rolling update was started
        with pytest.raises(InvalidTopology, match="replicas must be an integer"):
            scale_service(service, -1)

@needs_engine
@needs_root
def test_a_docker_host_dies_with_its_owner(tmp_path) -> None:
    from labkit.docker.hosts import STATE_DIR, clean_hosts

    session = f"k{PID}"
    script = ("import sys, time\n"
              "from labkit.docker.hosts import DockerHost\n"
              f"h = DockerHost({session!r}, 'solo').start()\n"
              "print(h.dockerd_pid, flush=True)\n"
              "time.sleep(120)\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        dockerd = int(owner.stdout.readline())
        assert Path(f"/proc/{dockerd}").exists()
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert wait_until(lambda: not Path(f"/proc/{dockerd}").exists(), timeout=15)
    assert (STATE_DIR / f"{session}-solo").exists()   # the record outlives a SIGKILL ...
    assert clean_hosts(session) == []                  # ... and clean only tidies it
    assert not (STATE_DIR / f"{session}-solo").exists()


# -- the guarded proxy for graded notebooks -------------------------------------------------

@needs_engine
def test_proxy_passes_the_lessons_and_refuses_the_rest(client, tmp_path) -> None:
    import docker

    from labkit.docker.proxy import DockerProxy

    with DockerProxy(str(tmp_path / "proxy.sock")) as proxy:
        guarded = docker.DockerClient(base_url=proxy.base_url)
        with DockerLab(f"{SESSION}-proxy", guarded) as lab:
            lab.network(name("pnet"), subnet=f"10.79.{NET}.0/24")
            db = lab.run(name("pdb"), network=name("pnet"))
            web = lab.run(name("pweb"))
            assert db.ping(web.ip("bridge")).received == 0
            lab.connect(name("pnet"), web)
            assert db.ping(web.name).received == 1
            stranger = client.containers.run(BASE_IMAGE, "sleep 60", name=name("pstr"),
                                             detach=True, network_mode="none")
            refused = {
                "bind mount": lambda: guarded.containers.run(
                    BASE_IMAGE, "true", volumes={"/": {"bind": "/h"}}, detach=True),
                "privileged": lambda: guarded.containers.run(BASE_IMAGE, "true", privileged=True),
                "host network": lambda: guarded.containers.run(BASE_IMAGE, "true",
                                                               network_mode="host"),
                "other image": lambda: guarded.containers.run("debian", "true"),
                "pull": lambda: guarded.images.pull("alpine"),
                "macvlan": lambda: guarded.networks.create("x", driver="macvlan"),
                "outside DNS": lambda: guarded.containers.run(BASE_IMAGE, "true", dns=["8.8.8.8"]),
                "public port": lambda: guarded.containers.run(BASE_IMAGE, "true",
                                                              ports={"80/tcp": 8080}),
                "stranger inspect": lambda: guarded.containers.get(name("pstr")),
                "stranger exec": lambda: guarded.api.exec_create(name("pstr"), "id"),
                "stranger rm": lambda: guarded.api.remove_container(name("pstr"), force=True),
                "link to stranger": lambda: guarded.containers.run(
                    BASE_IMAGE, "true", links={name("pstr"): "x"}, detach=True),
                "privileged exec": lambda: db.container.exec_run("id", privileged=True),
            }
            with pytest.raises(docker.errors.NotFound):      # as the engine itself says
                guarded.containers.get(name("nobody"))
            try:
                for what, attempt in refused.items():
                    with pytest.raises(docker.errors.APIError, match="labkit docker proxy"):
                        attempt()
                        pytest.fail(f"the proxy let through: {what}")
            finally:
                stranger.remove(force=True)
        guarded.close()


# -- the Docker exercise ------------------------------------------------------------------
# Graded end to end through the proxy (solution, untouched copy, forger, every checkpoint
# re-verified by the grader): test_docker_exercise_is_re_verified_by_the_grader in
# tests/test_grading.py.

def test_docker_exercise_and_solution_are_in_step() -> None:
    """The student copy is the solution with each solution block replaced by a prompt and
    ``...`` (the convention of tools/build_course.py), and is committed without outputs."""
    import nbformat

    exercise = nbformat.read(REPO / "exercises" / "20-docker-networks.ipynb", as_version=4)
    solution = nbformat.read(REPO / "solutions" / "20-docker-networks.ipynb", as_version=4)
    # the answers to the walkthrough's questions stay in the solution only
    solution.cells = [c for c in solution.cells if "solution-only" not in c.metadata.get("tags", [])]
    assert len(exercise.cells) == len(solution.cells)
    prompts = 0
    for mine, theirs in zip(exercise.cells, solution.cells, strict=True):
        assert (mine.cell_type, mine.metadata.get("tags")) == (theirs.cell_type, theirs.metadata.get("tags"))
        assert "# BEGIN SOLUTION" not in mine.source + theirs.source
        if mine.cell_type == "code" and "# YOUR CODE HERE" in mine.source:
            prompts += 1
            assert mine.source.rstrip().endswith("...") and mine.source != theirs.source
        else:
            assert mine.source == theirs.source
        if mine.cell_type == "code":
            assert not mine.outputs, "the student copy is committed without outputs"
    assert prompts == 7
    checkpoints = [c for c in exercise.cells if "checkpoint" in c.metadata.get("tags", [])]
    assert len(checkpoints) == 7
