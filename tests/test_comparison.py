"""The comparison's figures come from real traffic: two cheap networks measured end to end,
the path-MTU search against a link whose MTU is known, and bad input."""

from __future__ import annotations

import os
import shutil

import pytest

from labkit import InvalidTopology, Lab
from labkit.comparison import NETWORKS, available, compare, path_mtu


def test_path_mtu_is_found_by_pings_with_df_set(lab: Lab) -> None:
    a, r, b = lab.add_host("a"), lab.add_router("r"), lab.add_host("b")
    lab.link(a, r)                                          # 1500
    lab.link(r, b, mtu=1321)                                # a narrower hop behind the router
    a.add_address("eth0", "10.1.0.2/24")
    r.add_address("eth0", "10.1.0.1/24")
    r.add_address("eth1", "10.2.0.1/24")
    b.add_address("eth0", "10.2.0.2/24")
    a.add_route("default", via="10.1.0.1")
    b.add_route("default", via="10.2.0.1")
    assert path_mtu(a, "10.2.0.2") == 1321                 # learnt from the router's ICMP, not configured on a
    assert path_mtu(a, "10.1.0.1") == 1500


def test_two_networks_measured_with_real_traffic(tmp_path) -> None:
    rows = {m.network: m for m in compare(["Romana", "Weave"], runs=2, seconds=1,
                                          workdir=str(tmp_path))}
    romana, weave = rows["Romana"], rows["Weave"]
    # a capture on the underlay: routed packets travel bare, Weave's are in VXLAN (50 bytes)
    assert (romana.overhead_bytes, weave.overhead_bytes) == (0, 50)
    # the measured path MTU is what the containers' interfaces allow
    assert (romana.configured_mtu, romana.path_mtu) == (1500, 1500)
    assert (weave.configured_mtu, weave.path_mtu) == (1376, 1376)
    for m in (romana, weave):
        assert len(m.tcp_runs) == 2 and all(x > 1 for x in m.tcp_runs), m.tcp_runs
        assert 0 < m.rtt_ms < 50 and m.setup_s > 0 and m.other_protocol
        assert not m.store
        row = m.row()
        assert row["tcp_mbit_min"] <= row["tcp_mbit_median"] <= row["tcp_mbit_max"]
    assert romana.addresses == "10.0.17.1/16, 10.1.17.1/16"
    assert weave.addresses.startswith("10.32.0.1/12, 10.40.")


def test_unknown_networks_are_refused() -> None:
    with pytest.raises(InvalidTopology, match="unknown network"):
        compare(["Flannel host-gw"])
    with pytest.raises(InvalidTopology, match="whole seconds"):
        compare(["Romana"], seconds=0.5)
    assert list(NETWORKS) == ["underlay", "Docker overlay", "Flannel vxlan", "Flannel udp", "Weave",
                              "Calico", "Romana"]
    assert available("Flannel host-gw") == (False, "unknown network 'Flannel host-gw'")
    if os.geteuid() != 0:
        assert not available("Docker overlay")[0]
        with pytest.raises(InvalidTopology, match="Docker overlay cannot be built here: .*root"):
            compare(["Docker overlay"])


@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dockerd"), reason="needs root and dockerd")
def test_docker_overlay_measured_on_the_same_cluster(tmp_path) -> None:
    from labkit.docker.hosts import running_hosts

    [m] = compare(["Docker overlay"], runs=1, seconds=1, workdir=str(tmp_path))
    # VXLAN on the underlay (50 bytes), the overlay's MTU as configured and as measured
    assert (m.overhead_bytes, m.configured_mtu, m.path_mtu) == (50, 1450, 1450)
    assert m.other_protocol and not m.store and m.setup_s > 0 and m.tcp_runs[0] > 1
    assert all(a.startswith("10.10.3.") for a in m.addresses.split(", ")), m.addresses
    # the engines (dockerd in node1 and node2) ended with their lab
    assert not [h for h in running_hosts() if h["owner_pid"] == os.getpid()]
