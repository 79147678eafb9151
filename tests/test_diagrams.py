"""The SVG drawings show what the lab and the captures hold: every node and cable, one arrow per packet."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from labkit import Lab, diagrams
from labkit.capture import Capture, MultiCapture
from labkit.scenarios import join_vxlan, two_hosts

SVG = "{http://www.w3.org/2000/svg}"


def groups(drawing: diagrams.Drawing, cls: str) -> list[ET.Element]:
    root = ET.fromstring(drawing.svg())  # also proves the SVG is well-formed XML
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def test_topology_draws_every_node_cable_address_and_tunnel(lab: Lab) -> None:
    s = two_hosts(lab, subnet="10.5.0.0/24")
    join_vxlan(s, vni=77)
    data = lab.describe()
    drawing = diagrams.topology(lab)
    nodes = {g.get("data-name"): g for g in groups(drawing, "topology-node")}
    assert set(nodes) == {n["name"] for n in data["nodes"]}
    for node in data["nodes"]:  # every global address is written in its node's box
        shown = " ".join(texts(nodes[node["name"]]))
        for iface in node["interfaces"]:
            for cidr in iface["addresses"]:
                assert cidr in shown, (node["name"], cidr, shown)
    assert "lxdbr0 bridge" in " ".join(texts(nodes["host1"]))
    links = {(g.get("data-a"), g.get("data-b")) for g in groups(drawing, "topology-link")}
    assert links == {(f"{ln['a']}:{ln['a_ifname']}", f"{ln['b']}:{ln['b_ifname']}") for ln in data["links"]}
    tunnels = groups(drawing, "topology-tunnel")
    assert [(t.get("data-a"), t.get("data-b"), t.get("data-label")) for t in tunnels] == \
        [("host1", "host2", "VXLAN VNI 77")]


def test_ladder_one_arrow_per_packet_in_time_order(lab: Lab) -> None:
    c1, c2 = lab.add_host("c1"), lab.add_host("c2")
    lab.link(c1, c2)
    c1.add_address("eth0", "10.0.0.1/24")
    c2.add_address("eth0", "10.0.0.2/24")
    with Capture(c2, "eth0", filter="icmp or arp") as cap:
        assert c1.ping("10.0.0.2", count=2).received == 2
    table = cap.table()
    drawing = diagrams.ladder(table, lab=lab)
    arrows = groups(drawing, "ladder-arrow")
    assert len(arrows) == len(table) == len(drawing.rows)
    times = [float(a.get("data-t")) for a in arrows]
    assert times == sorted(times) and times == pytest.approx(list(table["t"] - table["t"].min()), abs=1e-6)
    labels = [" ".join(texts(a)) for a in arrows]
    assert "ARP who-has 10.0.0.2? tell 10.0.0.1" in labels[0]
    assert (arrows[0].get("data-src"), arrows[0].get("data-dst")) == ("c1", "c2")
    requests = [a for a, text in zip(arrows, labels) if "echo request" in text]
    replies = [a for a, text in zip(arrows, labels) if "echo reply" in text]
    assert [("c1", "c2")] * 2 == [(a.get("data-src"), a.get("data-dst")) for a in requests]
    assert [("c2", "c1")] * 2 == [(a.get("data-src"), a.get("data-dst")) for a in replies]
    assert ["seq 1" in " ".join(texts(a)) for a in requests] == [True, False]
    assert drawing.columns == ["c1", "c2"]


def test_ladder_merges_one_packet_seen_at_two_points_and_names_the_tunnel(lab: Lab) -> None:
    s = two_hosts(lab)
    join_vxlan(s, vni=42)
    s.c1.ping("10.0.0.21", count=1)  # ARP done: the capture holds only the pings
    points = [(s.c1, "eth0"), (s.c2, "eth0"), (s.lan, "eth0")]
    with MultiCapture(points, filter="icmp or udp port 4789") as mc:
        assert s.c1.ping("10.0.0.21", count=2).received == 2
    table = mc.table()
    tunnelled = table[table["tunnel"] == "vxlan"]
    plain = table[table["tunnel"].isna() & table["icmp_type"].notna()]
    assert len(plain) == 8 and len(tunnelled) >= 4  # 4 pings each seen at c1 and at c2
    drawing = diagrams.ladder(table, lab=lab)
    arrows = groups(drawing, "ladder-arrow")
    rows = drawing.rows
    assert len(arrows) == len(rows) == len(table) - 4  # the 4 plain pings seen twice are drawn once
    merged = rows[rows["seen_at"].str.contains(",")]
    assert len(merged) == 4 and set(merged["seen_at"]) == {"c1:eth0, c2:eth0", "c2:eth0, c1:eth0"}
    vx = rows[rows["kind"] == "tunnel"]
    assert len(vx) == len(tunnelled) and all(label.startswith("VXLAN VNI 42 · ") for label in vx["label"])
    echo = vx[vx["label"].str.contains("ICMP echo")]
    assert len(echo) == 4  # each ping once between the hosts' addresses (the VTEPs)
    assert sorted(zip(echo["src"], echo["dst"])) == [("host1", "host2")] * 2 + [("host2", "host1")] * 2
    # columns run left to right as the topology is laid out: c1 next to host1, c2 next to host2
    cols = drawing.columns
    assert abs(cols.index("c1") - cols.index("host1")) == 1 and abs(cols.index("c2") - cols.index("host2")) == 1


def test_headers_of_a_captured_vxlan_packet_and_of_each_tunnel_kind(lab: Lab) -> None:
    assert {k: diagrams.headers(k).overhead for k in ("vxlan", "gretap", "gre", "udp", "ipip")} == \
        {"vxlan": 50, "gretap": 38, "gre": 24, "udp": 28, "ipip": 20}
    assert diagrams.headers("gretap", key=True).overhead == 42
    s = two_hosts(lab)
    join_vxlan(s)
    with Capture(s.lan, "eth0", filter="udp port 4789") as cap:
        s.c1.ping("10.0.0.21", count=1)
    row = cap.table().iloc[-1]
    drawing = diagrams.headers(row.to_dict())
    boxes = [(g.get("data-name"), int(g.get("data-bytes"))) for g in groups(drawing, "header")]
    assert boxes[:5] == [("outer Ethernet", 14), ("outer IPv4", 20), ("UDP", 8), ("VXLAN VNI 42", 8),
                         ("inner Ethernet", 14)]
    assert sum(b for _, b in boxes) == row["length"] and drawing.overhead == row["overhead_bytes"] == 50
