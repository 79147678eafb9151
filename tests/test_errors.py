"""Bad input gets a clear error that names the problem and the fix, and builds nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helpers import lab_state as state
from labkit import (DuplicateName, GatewayUnreachable, InvalidAddress, InvalidName,
                    InvalidTopology, Lab, LabClosed, LabkitError, NotFound, ToolMissing)


@pytest.fixture
def pair(lab: Lab) -> Lab:
    h1, h2 = lab.add_host("h1"), lab.add_host("h2")
    lab.link(h1, h2)
    h1.add_address("eth0", "10.0.0.1/24")
    return lab


def test_interface_name_too_long(pair: Lab) -> None:
    before = state(pair)
    with pytest.raises(InvalidName, match=r"'container-eth0-long'.*15 \(IFNAMSIZ\)") as info:
        pair.link("h1", "h2", names=("container-eth0-long", None))
    assert isinstance(info.value, ValueError) and isinstance(info.value, LabkitError)
    assert "shorten" in str(info.value)
    with pytest.raises(InvalidName):
        pair["h1"].add_bridge("a-very-long-bridge")
    assert state(pair) == before


def test_duplicates(pair: Lab) -> None:
    before = state(pair)
    with pytest.raises(DuplicateName, match="node 'h1' already exists"):
        pair.add_host("h1")
    with pytest.raises(DuplicateName, match="interface 'eth0' already exists on node 'h1'"):
        pair.link("h1", "h2", names=("eth0", "eth5"))
    with pytest.raises(DuplicateName, match="interface 'eth0' already exists on node 'h2'"):
        pair.link("h1", "h2", names=("eth7", "eth0"))
    with pytest.raises(DuplicateName, match="already exists"):
        pair["h1"].add_bridge("eth0")
    with pytest.raises(DuplicateName, match="address 10.0.0.1/24 is already"):
        pair["h1"].add_address("eth0", "10.0.0.1/24")
    pair["h1"].add_route("10.5.0.0/16", via="10.0.0.2")
    with pytest.raises(DuplicateName, match="replace=True"):
        pair["h1"].add_route("10.5.0.0/16", via="10.0.0.3")
    assert state(pair) == before


@pytest.mark.parametrize("bad", ["10.0.0.300/24", "10.0.0.1", "banana/8", "10.0.0.1/33"])
def test_invalid_addresses(pair: Lab, bad: str) -> None:
    with pytest.raises(InvalidAddress, match=repr(bad).replace(".", r"\.")):
        pair["h1"].add_address("eth0", bad)


def test_invalid_networks_macs_and_routes(pair: Lab) -> None:
    with pytest.raises(InvalidAddress, match="host bits set.*'10.1.0.0/16'"):
        pair["h1"].add_route("10.1.2.3/16", via="10.0.0.2")
    with pytest.raises(InvalidAddress, match="not six colon-separated"):
        pair.link("h1", "h2", macs=("02:00:00:00:00", None))
    with pytest.raises(InvalidAddress, match="multicast"):
        pair.link("h1", "h2", macs=("01:00:00:00:00:01", None))
    with pytest.raises(InvalidTopology, match="neither via= nor dev="):
        pair["h1"].add_route("10.7.0.0/16")
    with pytest.raises(InvalidAddress, match="VNI"):
        pair["h1"].add_vxlan("vx0", 2 ** 24, group="239.1.1.1", dev="eth0")
    with pytest.raises(InvalidAddress, match="not a multicast"):
        pair["h1"].add_vxlan("vx0", 42, group="10.0.0.9", dev="eth0")


def test_gateway_not_reachable(pair: Lab) -> None:
    with pytest.raises(GatewayUnreachable, match=r"gateway 192\.168\.1\.1 is on none.*10\.0\.0\.1/24") as info:
        pair["h1"].add_route("default", via="192.168.1.1")
    assert "onlink=True" in str(info.value)
    assert all(r.dst != "default" for r in pair["h1"].routes())


def test_link_to_itself_and_unknown_nodes(pair: Lab) -> None:
    with pytest.raises(InvalidTopology, match="cannot link node 'h1' to itself"):
        pair.link("h1", "h1")
    with pytest.raises(NotFound, match="node 'h9' does not exist.*nodes: h1, h2"):
        pair.link("h1", "h9")
    with pytest.raises(NotFound, match="interface 'eth4' does not exist on node 'h1'"):
        pair["h1"].add_address("eth4", "10.1.0.1/24")
    with pytest.raises(InvalidName):
        pair.add_host("9lives")


def test_failed_link_leaves_nothing(pair: Lab) -> None:
    before = state(pair)
    with pytest.raises(NotFound, match="'nobridge'"):
        pair.link("h1", "h2", bridges=(None, "nobridge"))
    # The veth is created, then enslaving the far end to a non-bridge fails: it is removed.
    with pytest.raises(LabkitError):
        pair.link("h1", "h2", names=("eth3", "eth3"), bridges=(None, "eth0"))
    assert state(pair) == before
    pair.link("h1", "h2", names=("eth3", "eth3"))  # the names are free again


def test_missing_tool_and_closed_lab() -> None:
    lab = Lab("short")
    h = lab.add_host("h")
    with pytest.raises(ToolMissing, match="'no-such-tool' is not installed.*labkit doctor"):
        h.run("no-such-tool --help")
    lab.close()
    with pytest.raises(LabClosed, match="closed.*new Lab"):
        h.ping("10.0.0.1")


NO_USERNS = textwrap.dedent("""
    from labkit import Lab, NamespacesUnavailable
    try:
        Lab()
    except NamespacesUnavailable as exc:
        print("refused:", exc)
""")


def test_no_permission_for_namespaces_points_to_doctor() -> None:
    # Inside a user namespace whose limit of nested user namespaces is 0, a lab cannot start.
    script = f"echo 0 > /proc/sys/user/max_user_namespaces && exec {sys.executable} -c '{NO_USERNS}'"
    out = subprocess.run(["unshare", "-Ur", "sh", "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert "refused:" in out.stdout, out.stderr
    assert "labkit doctor" in out.stdout
