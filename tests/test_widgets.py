"""The widgets, driven directly (no browser) against real labs.

Buttons are clicked with ``Button.click()`` (what the front end's click does: the
callbacks run, long work goes to a worker thread) and the tests wait for that work
with ``wait()``. Every test closes what it built; the autouse ``no_residue`` fixture
checks that no process, interface or mount is left.
"""

from __future__ import annotations

import html

import pytest

from helpers import wait_until
from labkit import Lab, LabkitError
from labkit.errors import GatewayUnreachable, InvalidAddress, InvalidName, KernelError, NotFound
from labkit.widgets import (CapturePanel, PingPanel, Plan, TopologyBuilder, TopologyDiagram, Workbench,
                            diagnose, explain, templates, workbench)
from labkit.widgets.plan import NodeRef, Step

PLOTLY = "application/vnd.plotly.v1+json"

# a ping that must succeed in each template: (source, destination, expected TTL)
TEMPLATE_PINGS = {
    "veth": ("c1", "10.0.0.2", 64),
    "docker0": ("c1", "172.17.0.3", 64),
    "bridged": ("c1", "10.0.0.21", 64),
    "routed": ("c1", "10.2.2.2", 62),
}


def _html(widget_output) -> str:
    return "".join(o["data"].get("text/html", "") for o in widget_output.outputs)


def _has_plot(widget_output) -> bool:
    return any(PLOTLY in o["data"] for o in widget_output.outputs)


# ------------------------------------------------------------------ plan and templates


def test_plan_checks_and_renders_without_a_kernel() -> None:
    plan = Plan("docker0")
    templates.docker0(plan)
    code = plan.python()
    assert code.splitlines()[:4] == ["from labkit import Lab", "", 'lab = Lab("docker0")',
                                     'host = lab.add_router("host")']
    assert 'lab.link(c1, host, names=("eth0", "veth1"), bridges=(None, "docker0"))' in code
    ip = plan.ip_commands().splitlines()
    assert "ip link add eth0 netns c1 type veth peer name veth1 netns host" in ip
    assert "ip -n host link set veth1 master docker0" in ip
    assert "ip -n c1 route add default via 172.17.0.1" in ip
    drawn = plan.describe()
    assert [n["name"] for n in drawn["nodes"]] == ["host", "c1", "c2"]
    assert {"a": "c2", "a_ifname": "eth0", "b": "host", "b_ifname": "veth2"} in drawn["links"]

    # the checks a lab would make, before anything exists
    with pytest.raises(InvalidName, match="IFNAMSIZ"):
        plan.link("c1", "c2", names=("container-eth0-long", None))
    with pytest.raises(NotFound, match="nodes: c1, c2, host"):
        plan.link("c1", "c9")
    with pytest.raises(InvalidAddress):
        plan["c1"].add_address("eth0", "172.17.0.300/16")
    with pytest.raises(LabkitError, match="already exists"):
        plan.add_host("c1")
    assert len(plan.steps) == 10  # failed calls record nothing

    # default interface names follow the lab's rule (eth0, eth1, ...), switch ends join br0
    lan = Plan("x")
    sw = lan.add_switch("sw")
    h = lan.add_host("h")
    assert lan.link(h, sw) == ("eth0", "eth0")
    assert lan.link(h, sw) == ("eth1", "eth1")
    assert "ip -n sw link set eth1 master br0" in lan.ip_commands()
    odd = Step(None, "link", (NodeRef("my-host"), NodeRef("sw")), {})
    assert odd.python() == 'lab.link(lab["my-host"], sw)'


@pytest.mark.parametrize("short", list(TEMPLATE_PINGS))
def test_templates_build_real_labs_and_the_code_shown_does_the_same(short: str, tmp_path) -> None:
    _, func = templates.by_name(short)
    src, dst, ttl = TEMPLATE_PINGS[short]
    with Lab(short, workdir=tmp_path) as lab:           # the template on a real lab
        func(lab)
        result = lab[src].ping(dst, count=1)
        assert result.ok and result.replies[0].ttl == ttl, result.raw
    plan = Plan(short)
    func(plan)
    space: dict[str, object] = {}
    exec(plan.python(), space)                         # the Python the builder shows
    lab = space["lab"]
    try:
        assert isinstance(lab, Lab)
        assert lab[src].ping(dst, count=1).ok
    finally:
        lab.close()
    script = "set -e\n" + plan.ip_commands() + f"\nip netns exec {src} ping -n -c 1 -W 2 {dst}\n"
    with Lab("shell", workdir=tmp_path) as shell:      # the ip commands it shows, run by real ip
        if shell.mode != "full":
            pytest.skip("`ip netns add` needs the private /run/netns of a full-mode lab")
        out = shell.add_host("sh").run(["sh", "-c", script], timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"ttl={ttl}" in out.stdout


# ------------------------------------------------------------------ builder


def test_builder_click_build_ping_and_tear_down(tmp_path) -> None:
    b = TopologyBuilder("two containers on a bridge (docker0)", workdir=tmp_path, watch=None)
    pinger = PingPanel(b, watch=None)
    try:
        assert "10 steps planned" in b.status_text
        assert b.lab is None and not b.build_button.disabled and b.teardown_button.disabled
        assert pinger.ping_button.disabled and not pinger.src.options
        assert 'c1.add_route("default", via="172.17.0.1")' in html.unescape(b.python_view.value)
        assert "ip -n host link set veth1 master docker0" in b.ip_view.value

        b.build_button.click()
        assert b.wait(60)
        lab = b.lab
        assert lab is not None and b.error is None, b.status_text
        assert sorted(lab.nodes) == ["c1", "c2", "host"] and len(lab.links) == 2
        assert "is up" in b.status_text and "labkit-ok" in b.status.value
        assert b.build_button.disabled and not b.teardown_button.disabled and b.template.disabled
        assert b.progress.value == b.progress.max

        # the ping panel's pickers are filled from the lab
        assert [v for _, v in pinger.src.options] == ["host", "c1", "c2"]
        assert ("172.17.0.3  (c2 eth0)", "172.17.0.3") in pinger.dst.options
        assert (pinger.src.value, pinger.dst.value) == ("c1", "172.17.0.3")
        pinger.count.value = 2
        pinger.ping_button.click()
        assert pinger.wait(30)
        assert pinger.result is not None and pinger.result.received == 2, pinger.status.value
        assert "2/2 replies from 172.17.0.3" in pinger.status.value and "no router on the way" in pinger.status.value
        assert "rtt_ms" in _html(pinger.table) and _has_plot(pinger.plot)
        assert 'c1.ping("172.17.0.3", count=2)' in html.unescape(pinger.code.value)

        supervisor = lab.supervisor_pid
        b.teardown_button.click()
        assert b.wait(30)
        assert b.lab is None and lab.closed and "torn down" in b.status_text
        assert wait_until(lambda: not _alive(supervisor))
        assert not pinger.src.options and pinger.ping_button.disabled
        assert not b.build_button.disabled  # the plan is kept: Build makes it again
    finally:
        pinger.close()
        b.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_builder_forms_plan_then_change_the_running_lab(tmp_path) -> None:
    with TopologyBuilder(workdir=tmp_path, watch=None) as b:
        assert b.build_button.disabled  # nothing planned
        b.node_name.value = "a"
        b.add_node_button.click()
        b.node_name.value = "b"
        b.node_kind.value = "router"
        b.add_node_button.click()
        assert list(b.plan.nodes) == ["a", "b"] and b.lab is None
        assert list(b.link_a.options) == ["a", "b"] and (b.link_a.value, b.link_b.value) == ("a", "b")
        b.add_link_button.click()
        for node, cidr in (("a", "10.0.0.1/24"), ("b", "10.0.0.2/24")):
            b.addr_node.value = node
            assert b.addr_if.value == "eth0"  # the interface picker follows the node
            b.addr_cidr.value = cidr
            b.add_addr_button.click()
        assert b.error is None, b.status_text
        assert "Planned:" in b.status_text
        assert 'lab.link(a, b)' in b.code() and 'a.add_address("eth0", "10.0.0.1/24")' in b.code()

        # errors in plain words, and the plan is unchanged
        steps = len(b.plan.steps)
        b.node_name.value = "2bad name"
        b.add_node_button.click()
        assert isinstance(b.error, InvalidName)
        assert "node name '2bad name' is not valid" in html.unescape(b.status.value) and "What to do:" in b.status.value
        b.addr_cidr.value = "10.0.0.300/24"
        b.add_addr_button.click()
        assert isinstance(b.error, InvalidAddress) and len(b.plan.steps) == steps
        b.link_a_if.value = "container-eth0-long"
        b.add_link_button.click()
        assert "IFNAMSIZ" in b.status.value and len(b.plan.steps) == steps
        b.link_a_if.value = ""

        b.build_button.click()
        assert b.wait(60) and b.lab is not None, b.status_text
        assert b.lab["a"].ping("10.0.0.2", count=1).ok

        # once built, a form changes the running lab at once
        b.node_name.value = "c"
        b.node_kind.value = "host"
        b.add_node_button.click()
        assert b.wait(30)
        assert "c" in b.lab.nodes and "Done: add host c" in b.status_text
        b.link_a.value, b.link_b.value = "c", "b"
        b.add_link_button.click()
        assert b.wait(30)
        b.add_address("c", "eth0", "10.0.1.2/24")       # the same from code
        b.add_address("b", "eth1", "10.0.1.1/24")
        b.add_route("c", "default", via="10.0.1.1")
        b.add_route("a", "default", via="10.0.0.2")
        assert b.error is None, b.status_text
        assert b.lab["c"].ping("10.0.0.1", count=1).ok
        assert [i.ifname for i in b.lab["b"].interfaces()] == ["lo", "eth0", "eth1"]
        lab = b.lab
    assert lab.closed  # leaving the with-block closed the builder, and so the lab


def test_builder_shows_a_failing_step_and_its_remedy(tmp_path) -> None:
    with TopologyBuilder(name="broken", workdir=tmp_path, watch=None) as b:
        b.add_node("a")
        b.add_node("b")
        b.add_link("a", "b")
        b.add_address("a", "eth0", "10.0.0.1/24")
        b.add_route("a", "10.9.0.0/16", via="192.168.5.1")  # not on any subnet of a
        assert b.error is None  # well-formed, so the plan takes it
        b.build()  # from code: waits
        assert isinstance(b.error, (KernelError, GatewayUnreachable)), b.status_text
        assert "a: add route 10.9.0.0/16" in b.status.value and "failed" in b.status.value
        assert "What went wrong:" in b.status.value
        assert b.error.remedy and b.error.remedy in html.unescape(b.status.value)
        assert b.lab is not None and sorted(b.lab.nodes) == ["a", "b"]  # the steps before it
        assert b.progress.bar_style == "danger"
        b.teardown()
        assert b.lab is None


def test_builder_error_creating_the_lab_is_shown(tmp_path) -> None:
    with TopologyBuilder("veth", mode="nonsense", workdir=tmp_path, watch=None) as b:
        b.build_button.click()
        assert b.wait(30)
        assert b.lab is None and "creating the lab failed" in b.status.value.lower()
        assert "lab mode 'nonsense' is not known" in html.unescape(b.status.value)
        assert not b.build_button.disabled


def test_builder_template_menu_replaces_the_plan(tmp_path) -> None:
    with TopologyBuilder(workdir=tmp_path, watch=None) as b:
        b.template.value = "two hosts routed"
        assert b.plan.name == "routed" and b.name.value == "routed" and len(b.plan.steps) == 19
        assert "Notebook 04" in b.status_text
        b.name.value = "my-routed"
        assert 'lab = Lab("my-routed")' in b.code()
        b.template.value = "empty lab (build it with the forms)"
        assert b.plan.steps == [] and b.build_button.disabled


# ------------------------------------------------------------------ ping panel


@pytest.fixture
def three(lab: Lab) -> Lab:
    """a --- r --- b, r routes; b has no route back yet."""
    a, r, b = lab.add_host("a"), lab.add_router("r"), lab.add_host("b")
    lab.link(a, r)
    lab.link(b, r)
    a.add_address("eth0", "10.0.0.1/24")
    r.add_address("eth0", "10.0.0.254/24")
    r.add_address("eth1", "10.0.1.254/24")
    b.add_address("eth0", "10.0.1.2/24")
    a.add_route("default", via="10.0.0.254")
    return lab


def test_ping_panel_explains_failures(three: Lab) -> None:
    lab = three
    with PingPanel(lab, watch=None) as p:
        assert [v for _, v in p.src.options] == ["a", "r", "b"]
        assert p.src.value == "a" and p.dst.value == "10.0.1.2"   # another host's address

        p.ping("a", "10.0.1.2", count=1)          # no route back from b
        assert not p.result.ok
        text = " ".join(p.explanation)
        assert "b has no route back to 10.0.0.1" in text, text
        assert "labkit-error" in p.status.value

        p.ping("b", "10.0.0.1", count=1)          # no route at all on b
        assert "Network is unreachable" in p.explanation[0] and "no route" in p.explanation[0]

        p.ping("a", "10.0.0.99", count=1)         # nobody has that address: no ARP reply
        assert "asked by ARP for the destination (10.0.0.99)" in " ".join(p.explanation)

        p.ping("a", "10.7.7.7", count=1)          # the router has no route: it says so
        assert "Destination Net Unreachable" in p.explanation[0]
        assert "router 10.0.0.254 answered that it has no route" in p.explanation[0]

        lab["b"].add_route("default", via="10.0.1.254")
        lab["r"].iptables("-A", "FORWARD", "-d", "10.0.1.2", "-j", "REJECT",
                          "--reject-with", "icmp-admin-prohibited")
        p.ping("a", "10.0.1.2", count=1)
        assert "Packet filtered" in p.explanation[0] and "firewall" in p.explanation[0]
        lab["r"].iptables("-F", "FORWARD")

        lab["r"].set_forwarding(False)
        p.ping("a", "10.0.1.2", count=1)
        assert "forwarding is off" in " ".join(p.explanation)
        lab["r"].set_forwarding(True)

        lab["b"].set_down("eth0")
        p.ping("a", "10.0.1.2", count=1)
        assert "r's interface eth1 has no carrier" in " ".join(p.explanation)
        lab["b"].set_up("eth0")
        assert wait_until(lambda: lab["r"].interface("eth1").operstate == "UP")
        p.ping("a", "10.0.1.2", count=1)           # the kernel dropped b's route with its link
        assert "b has no route back to 10.0.0.1" in " ".join(p.explanation)
        lab["b"].add_route("default", via="10.0.1.254")

        p.dst.value = "__other__"                  # a typed address that is not one
        p.other.value = "10.0.1"
        p.ping_button.click()
        assert p.wait(30)
        assert isinstance(p.error, InvalidAddress) and "What to do:" in p.status.value

        result = p.ping("a", "10.0.1.2", count=2)
        assert result.ok and "1 router on the way" in p.status.value
        assert explain(result) == []
        assert len(p.results) == 9


def test_diagnose_walks_the_path(three: Lab) -> None:
    findings = diagnose(three, "a", "10.0.1.2")
    assert findings == ["the request can reach b, but b has no route back to 10.0.0.1 (RTNETLINK answers: "
                        "Network is unreachable): the reply is never sent; add a route back (or NAT)"]


# ------------------------------------------------------------------ capture panel


def test_capture_panel_live_count_table_and_plots(three: Lab) -> None:
    lab = three
    lab["b"].add_route("default", via="10.0.1.254")
    with CapturePanel(lab, watch=None) as c:
        assert [v for _, v in c.node.options] == ["a", "r", "b"]
        c.node.value = "r"
        assert list(c.iface.options) == ["eth0", "eth1"]  # filled from the node
        c.iface.value = "eth1"

        c.filter.value = "icmp or"                 # a filter libpcap refuses
        c.start_button.click()
        assert c.wait(30)
        assert "invalid capture filter" in c.status.value and "pcap-filter" in c.status.value
        assert not c.running and not c.start_button.disabled

        c.filter.value = "icmp or arp"
        c.start_button.click()
        assert c.wait(30) and c.running, c.status.value
        assert c.stop_button.disabled is False and c.start_button.disabled
        lab["a"].ping("10.0.1.2", count=3)
        assert wait_until(lambda: c.capture.count >= 6)
        assert wait_until(lambda: "packets" in c.count.value and "\u25cf" in c.count.value)  # live
        c.stop_button.click()
        assert c.wait(30) and not c.running
        table = c.table
        assert table is not None and len(table) >= 6
        assert set(table["interface"]) == {"eth1"}
        assert "ICMP echo" in c.summary.value
        assert "10.0.1.2" in _html(c.rows)
        assert _has_plot(c.timeline) and _has_plot(c.breakdown)
        assert c.capture.path.exists() and c.capture.path.parent == lab.workdir / "captures"
        assert 'Capture(r, "eth1", filter="icmp or arp").start()' in html.unescape(c.code.value)

        c.start("b", "eth0", filter="arp")         # from code; the lab's close ends it
        assert c.running


# ------------------------------------------------------------------ diagram and workbench


def test_diagram_redraws_when_the_lab_changes(lab: Lab) -> None:
    lab.add_host("h1")
    with TopologyDiagram(lab, watch=0.2) as d:
        assert d.data is not None and [n["name"] for n in d.data["nodes"]] == ["h1"]
        assert d.figure is not None
        h2 = lab.add_host("h2")                    # from code: the watcher sees it
        lab.link("h1", h2)
        assert wait_until(lambda: d.data is not None and len(d.data["links"]) == 1, timeout=10)
        drawn = d.redraws
        lab["h1"].add_address("eth0", "10.0.0.1/24")
        assert wait_until(lambda: "eth0 10.0.0.1/24" in str(d.figure.to_dict()), timeout=10)
        assert wait_until(lambda: d.redraws > drawn, timeout=5)  # the counter follows the figure


def test_workbench_plan_build_close(tmp_path) -> None:
    wb = workbench("two hosts routed", workdir=tmp_path, watch=None)
    try:
        assert isinstance(wb, Workbench) and "labkit-workbench" in wb.widget._dom_classes
        assert wb.diagram.data is not None and wb.diagram.data.get("planned")
        assert wb.builder.views.titles[0] == "Diagram"
        assert wb.build() is wb and wb.lab is not None
        assert not wb.diagram.data.get("planned") and len(wb.diagram.data["nodes"]) == 5
        assert wb.ping_panel.src.value == "c1" and wb.ping_panel.dst.value == "10.2.2.2"
        result = wb.ping_panel.ping()
        assert result is not None and result.ok and "2 routers on the way" in wb.ping_panel.status.value
        assert [v for _, v in wb.capture_panel.node.options] == ["lan", "host1", "host2", "c1", "c2"]
        lab = wb.lab
    finally:
        wb.close()
    assert lab.closed and wb.lab is None
