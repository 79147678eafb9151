"""A lab is a bubble: it builds real namespaces and leaves nothing when it ends, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from labkit import InvalidTopology, Lab, LabClosed

from helpers import descendants, wait_until


def netns_inode(node) -> str:
    """The inode of a node's network namespace, as a process inside it sees it."""
    return node.run(["readlink", "/proc/self/ns/net"], check=True).stdout.strip()


def holders(inode: str) -> list[str]:
    """Every /proc entry on the host that still refers to network namespace ``inode``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        paths = [f"/proc/{pid}/ns/net"]
        try:
            paths += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for path in paths:
            try:
                if os.readlink(path) == inode:
                    found.append(path)
            except OSError:
                pass
    return found


def small_lab(lab: Lab) -> None:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    lab.link(h1, h2)
    h1.add_address("eth0", "10.0.0.1/24")
    h2.add_address("eth0", "10.0.0.2/24")


def test_ping_inside_a_bubble_and_host_untouched(lab: Lab) -> None:
    small_lab(lab)
    result = lab["h1"].ping("10.0.0.2", count=2)
    assert result.received == 2 and result.sent == 2
    assert all(r.ttl == 64 for r in result.replies)
    # The host's own namespace is not the nodes' namespace.
    assert netns_inode(lab["h1"]) != os.readlink("/proc/self/ns/net")


def test_close_frees_namespaces_and_processes() -> None:
    lab = Lab("closing")
    small_lab(lab)
    inode = netns_inode(lab["h1"])
    lab["h1"].spawn(["sleep", "300"])
    pids = descendants(os.getpid())
    assert pids, "the supervisor should be running"
    lab.close()
    assert lab.closed
    assert wait_until(lambda: not (descendants(os.getpid()) & pids))
    assert wait_until(lambda: not holders(inode)), holders(inode)
    with pytest.raises(LabClosed, match="closed"):
        lab.add_host("h3")
    lab.close()  # a second close is harmless


def test_exception_inside_with_cleans_up() -> None:
    with pytest.raises(ZeroDivisionError):
        with Lab("boom") as lab:
            small_lab(lab)
            inode = netns_inode(lab["h1"])
            1 / 0
    assert lab.closed
    assert wait_until(lambda: not holders(inode))


OWNER = textwrap.dedent("""
    import sys, time
    from labkit import Lab
    lab = Lab("owned")
    h1 = lab.add_host("h1"); h2 = lab.add_host("h2"); lab.link(h1, h2)
    h1.spawn(["sleep", "300"])
    print(h1.run(["readlink", "/proc/self/ns/net"]).stdout.strip(), flush=True)
    time.sleep(300)
""")


def test_sigkill_of_the_owner_ends_the_lab() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        inode = owner.stdout.readline().strip()
        assert inode.startswith("net:[")
        lab_pids = descendants(owner.pid)
        assert len(lab_pids) >= 3  # unshare, supervisor, sleep
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert wait_until(lambda: not (descendants(1) & lab_pids), timeout=10)
        assert wait_until(lambda: not holders(inode))
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()


def test_sigkill_of_the_supervisor_ends_the_lab() -> None:
    lab = Lab("victim")
    try:
        small_lab(lab)
        sleeper = lab["h1"].spawn(["sleep", "300"])
        inode = netns_inode(lab["h1"])
        lab_pids = descendants(os.getpid())
        supervisor = [p for p in lab_pids if p != lab.supervisor_pid
                      and open(f"/proc/{p}/cmdline").read().find("labkit._supervisor") >= 0]
        assert len(supervisor) == 1
        os.kill(supervisor[0], signal.SIGKILL)
        assert wait_until(lambda: not (descendants(os.getpid()) & lab_pids), timeout=10)
        assert wait_until(lambda: not holders(inode))
        assert wait_until(lambda: lab.closed)
        with pytest.raises(LabClosed, match="supervisor"):
            lab["h1"].ping("10.0.0.2", count=1)
        with pytest.raises(LabClosed):
            sleeper.stop()
    finally:
        lab.close()


def test_two_labs_with_the_same_names_in_one_process() -> None:
    with Lab("twin") as one, Lab("twin") as two:
        for lab, last in ((one, 1), (two, 2)):
            h1, h2 = lab.add_host("h1"), lab.add_host("h2")
            lab.link(h1, h2)
            h1.add_address("eth0", "10.0.0.1/24")
            h2.add_address("eth0", f"10.0.0.{10 + last}/24")
        assert netns_inode(one["h1"]) != netns_inode(two["h1"])
        assert one["h1"].ping("10.0.0.11", count=1).received == 1
        assert one["h1"].ping("10.0.0.12", count=1, wait=0.5).received == 0
        assert two["h1"].ping("10.0.0.12", count=1).received == 1
        assert two["h1"].ping("10.0.0.11", count=1, wait=0.5).received == 0


OTHER = textwrap.dedent("""
    from labkit import Lab
    with Lab("twin") as lab:
        h1 = lab.add_host("h1"); h2 = lab.add_host("h2"); lab.link(h1, h2)
        h1.add_address("eth0", "10.0.0.1/24"); h2.add_address("eth0", "10.0.0.2/24")
        print(h1.ping("10.0.0.2", count=3, interval=0.2).received)
""")


def test_two_labs_with_the_same_names_in_two_processes() -> None:
    other = subprocess.Popen([sys.executable, "-c", OTHER], stdout=subprocess.PIPE, text=True)
    with Lab("twin") as lab:
        small_lab(lab)
        assert lab["h1"].ping("10.0.0.2", count=3, interval=0.2).received == 3
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 0 and out.strip() == "3"


@pytest.mark.parametrize("mode", ["full", "restricted"])
def test_modes(mode: str) -> None:
    with Lab(f"mode-{mode}", mode=mode) as lab:
        if mode == "full":
            assert lab.named_namespaces and lab.sysctl_via == "proc"
        else:
            assert not lab.named_namespaces and lab.sysctl_via == "netlink"
        h1, r, h2 = lab.add_host("h1"), lab.add_router("r"), lab.add_host("h2")
        lab.link(h1, r)
        lab.link(r, h2)
        h1.add_address("eth0", "10.0.1.2/24")
        r.add_address("eth0", "10.0.1.1/24")
        r.add_address("eth1", "10.0.2.1/24")
        h2.add_address("eth0", "10.0.2.2/24")
        h1.add_route("default", via="10.0.1.1")
        h2.add_route("default", via="10.0.2.1")
        result = h1.ping("10.0.2.2", count=2)
        assert result.received == 2 and result.replies[0].ttl == 63
        listing = r.run(["ip", "netns", "list"]).stdout
        if mode == "full":
            assert {"h1", "r", "h2"} <= set(line.split()[0] for line in listing.splitlines())
        else:  # no private /run: the lab's nodes are held by fd only, never named
            assert not {"h1", "r", "h2"} & set(line.split()[0] for line in listing.splitlines())
        # Turning forwarding off on the router breaks the path, in either mode.
        r.set_forwarding(False)
        assert h1.ping("10.0.2.2", count=1, wait=0.5).received == 0
        r.set_sysctl("net.ipv4.conf.eth0.proxy_arp", 1)
        assert r.get_sysctl("net.ipv4.conf.eth0.proxy_arp") == "1"


@pytest.mark.skipif(os.geteuid() != 0, reason="host-mode labs need root")
def test_host_mode_adopts_without_owning() -> None:
    # A process in a namespace of its own, standing in for a Docker container.
    outside = subprocess.Popen(["unshare", "--net", "sh", "-c",
                                "ip link set lo up; ip link add dummy-br type bridge; exec sleep 300"])
    try:
        assert wait_until(lambda: os.readlink(f"/proc/{outside.pid}/ns/net")
                          != os.readlink("/proc/self/ns/net"))
        assert wait_until(lambda: subprocess.run(
            ["nsenter", f"--net=/proc/{outside.pid}/ns/net", "ip", "link", "show", "dummy-br"],
            capture_output=True).returncode == 0)
        with Lab("view", mode="host") as lab:
            box = lab.adopt("box", pid=outside.pid)
            me = lab.adopt("me", pid=os.getpid())
            assert {"lo", "dummy-br"} <= {i.ifname for i in box.interfaces()}
            assert box.ping("127.0.0.1", count=1).received == 1
            host_names = {i.ifname for i in me.interfaces()}
            assert "lo" in host_names
            with pytest.raises(InvalidTopology, match="host-mode"):
                lab.add_host("new")
        # The adopted namespace and its owner are untouched by the lab's end.
        assert outside.poll() is None
        still = subprocess.run(["nsenter", f"--net=/proc/{outside.pid}/ns/net", "ip", "link",
                                "show", "dummy-br"], capture_output=True)
        assert still.returncode == 0
    finally:
        outside.kill()
        outside.wait()
