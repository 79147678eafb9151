"""Kubernetes networking for real: CNI plugins, pods, and kube-proxy's two modes.

The CNI plugins are Debian's binaries in /usr/lib/cni; the rules are in the kernel; the
traffic is real TCP and UDP between namespaces. Runs as root and (through
``test_kubernetes_as_an_unprivileged_user``) again as an unprivileged user.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from labkit import InvalidTopology, Lab, Node
from labkit.cluster import Cluster, ClusterNode
from labkit.kubernetes import (Attachment, CniError, Kubernetes, ServiceError, ServicePort,
                               ServiceTable, names)
from labkit.kubernetes import iptables_rules, nftables_rules
from labkit.kubernetes.kubelet import LOOPBACK, NETWORK_NAME
from labkit.kubernetes.services import Endpoint

from helpers import usage_error, wait_until

pytestmark = pytest.mark.skipif(not os.path.isfile("/usr/lib/cni/bridge"),
                                reason="containernetworking-plugins is not installed")


def build(lab: Lab, workdir: Path, count: int) -> tuple[list[ClusterNode], Node]:
    """A cluster of ``count`` workers on 192.168.99.0/24 (no store), plus a host outside it."""
    cluster = Cluster(lab, nodes=[f"node{i}" for i in range(1, count + 1)], store=None)
    outside = lab.add_host("outside")
    lab.link(outside, cluster.switch, names=("eth1", None))
    outside.add_address("eth1", "192.168.99.50/24")
    return cluster.nodes, outside


# -- names and validation (no lab) --------------------------------------------------------

def test_chain_names_are_kube_proxys() -> None:
    assert names.svc_chain("kube-system/kube-dns:dns", "udp") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert names.svc_chain("default/kubernetes:https", "tcp") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert names.svc_chain("kube-system/kube-dns:dns-tcp", "TCP") == "KUBE-SVC-ERIFXISQEP7F7OF4"
    assert names.nft_service_chain("ns1", "svc1", "tcp", "p80") == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert names.nft_endpoint_chain("ns1", "svc1", "tcp", "p80", "10.180.0.1:80") == \
        "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    table = ServiceTable()
    dns = table.create("kube-dns", namespace="kube-system", cluster_ip="10.96.0.10",
                       ports=[ServicePort(53, protocol="UDP", name="dns"), ServicePort(53, name="dns-tcp")])
    assert names.svc_chain(dns.port_name(dns.ports[0]), "udp") == "KUBE-SVC-TCOU7JCQXEZGVUNU"


def test_services_are_validated_as_the_api_server_does() -> None:
    table = ServiceTable()
    web = table.create("web", type="NodePort", ports=[ServicePort(80, 8080, node_port=30080)])
    assert web.cluster_ip == "10.96.0.1" and web.ports[0].node_port == 30080
    with pytest.raises(ServiceError, match="not in the valid range.*30000-32767"):
        table.create("low", type="NodePort", ports=[ServicePort(80, node_port=8080)])
    with pytest.raises(ServiceError, match="provided port is already allocated"):
        table.create("again", type="NodePort", ports=[ServicePort(80, node_port=30080)])
    with pytest.raises(ServiceError, match="provided IP is not in the valid range"):
        table.create("out", cluster_ip="10.0.0.5", ports=[ServicePort(80)])
    with pytest.raises(ServiceError, match="provided IP is already allocated"):
        table.create("dup", cluster_ip="10.96.0.1", ports=[ServicePort(80)])
    with pytest.raises(ServiceError, match=r"spec.ports\[0\].name: .*Required value"):
        table.create("two", ports=[ServicePort(80), ServicePort(443)])
    with pytest.raises(ServiceError, match="DNS-1035"):
        table.create("Web_1", ports=[ServicePort(80)])
    with pytest.raises(ServiceError, match="may not be used when `type` is 'ClusterIP'"):
        table.create("cip", ports=[ServicePort(80, node_port=30090)])
    with pytest.raises(ServiceError, match="already exists"):
        table.create("web", ports=[ServicePort(80)])
    assert list(table.services) == ["default/web"]  # nothing half-made by the refusals


def test_iptables_rules_pick_endpoints_with_kube_proxys_probabilities() -> None:
    table = ServiceTable()
    web = table.create("web", ports=[ServicePort(80, 8080, name="http")])
    empty = table.create("empty", type="NodePort", ports=[ServicePort(80, node_port=30500)])
    table.set_endpoints(web, [Endpoint(f"10.244.1.{i}") for i in (4, 2, 3)])
    text = iptables_rules.render(table.services.values(), cluster_cidr="10.244.0.0/16")
    svc = names.svc_chain("default/web:http", "tcp")
    picks = re.findall(rf"^-A {svc} .*-> (\S+)\" (?:-m statistic --mode random --probability (\S+) )?-j (KUBE-SEP-\w+)",
                       text, re.M)
    assert [(ep, p) for ep, p, _ in picks] == [("10.244.1.2:8080", "0.3333333333"),
                                               ("10.244.1.3:8080", "0.5000000000"),
                                               ("10.244.1.4:8080", "")]
    assert picks[0][2] == names.sep_chain("default/web:http", "tcp", "10.244.1.2:8080")
    nat = text.split("*nat", 1)[1]
    services_rules = [l for l in nat.splitlines() if l.startswith("-A KUBE-SERVICES")]
    assert "-j KUBE-NODEPORTS" in services_rules[-1] and "--dst-type LOCAL" in services_rules[-1]
    assert f'-A KUBE-SERVICES -d {empty.cluster_ip}/32 -p tcp -m comment --comment "default/empty has no endpoints"' in text
    assert "-j REJECT" in text.split("*nat")[0] and "30500" in text.split("*nat")[0]
    nft = nftables_rules.render(table.services.values(), cluster_cidr="10.244.0.0/16",
                                service_cidr="10.96.0.0/12")
    assert "numgen random mod 3 vmap" in nft and "add map ip kube-proxy service-ips" in nft
    assert f"{empty.cluster_ip} . tcp . 80 comment \"default/empty\" : goto reject-chain" in nft


# -- CNI ------------------------------------------------------------------------------------

def _cni_leftovers(kubelet) -> dict[str, object]:
    return {
        "leases": kubelet.leases(),
        "cache": kubelet.cni.cached(),
        "veths": [i.ifname for i in kubelet.node.interfaces() if i.ifname.startswith("veth")],
        "chains": re.findall(r"^:(CNI-DN-\w+)", kubelet.node.run("iptables-save -t nat").stdout, re.M),
    }


def test_cni_add_check_del_round_trip_leaves_nothing(tmp_path: Path) -> None:
    with Lab("cni", workdir=tmp_path) as lab:
        machines, outside = build(lab, tmp_path, 1)
        k8s = Kubernetes(machines)
        kubelet = k8s.kubelet("node1")
        conf = kubelet.read_config()
        assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]
        assert conf["plugins"][0]["ipam"]["dataDir"] == machines[0].path("/var/lib/cni/networks")

        pod = kubelet.run_pod("web-1", namespace="shop")
        assert pod.ip == "10.244.1.2" and pod.result and pod.result.gateway == "10.244.1.1"
        assert pod.node.addresses("eth0")[0].cidr == "10.244.1.2/24"
        assert kubelet.leases() == {"10.244.1.2": pod.sandbox_id}
        adds = [c for c in kubelet.cni.calls if c.command == "ADD"]
        assert [c.plugin for c in adds] == ["loopback", "bridge", "portmap"]
        assert "prevResult" not in adds[1].stdin and adds[2].stdin["prevResult"]["ips"][0]["address"] == "10.244.1.2/24"
        args = dict(kv.split("=") for kv in adds[1].env["CNI_ARGS"].split(";"))
        assert args["K8S_POD_NAMESPACE"] == "shop" and args["K8S_POD_NAME"] == "web-1"
        assert adds[1].env["CNI_NETNS"] == "/run/netns/web-1" and adds[1].env["CNI_IFNAME"] == "eth0"

        kubelet.check_pod("web-1")
        assert [c.plugin for c in kubelet.cni.calls if c.command == "CHECK"] == ["bridge", "portmap"]

        # a hostPort through portmap: reachable from outside the cluster, then gone
        hp = kubelet.run_pod("hostport", host_ports=[(8081, 8080, "tcp")])
        hp.start_echo(port=8080)
        assert len(_cni_leftovers(kubelet)["chains"]) == 1
        out = outside.run([sys.executable, "-m", "labkit.kubernetes.echo", "hit",
                           "192.168.99.101", "8081", "--count", "2"]).check()
        assert json.loads(out.stdout)["replies"] == {"hostport": 2}

        before = len(kubelet.cni.calls)
        kubelet.delete_pod("hostport")
        kubelet.delete_pod("web-1")
        dels = [c.plugin for c in kubelet.cni.calls[before:] if c.command == "DEL"]
        assert dels == ["portmap", "bridge", "loopback"] * 2  # each list in reverse
        assert _cni_leftovers(kubelet) == {"leases": {}, "cache": [], "veths": [], "chains": []}
        assert "web-1" not in lab.nodes and "hostport" not in lab.nodes


def test_cni_errors_are_the_plugins_own(tmp_path: Path) -> None:
    with Lab("cnierr", workdir=tmp_path) as lab:
        machines, _ = build(lab, tmp_path, 1)
        kubelet = Kubernetes(machines).kubelet("node1")
        runtime = kubelet.cni
        lab.add_host("sandbox")
        att = Attachment("c0ffee", "/run/netns/sandbox", "eth0", {"K8S_POD_NAME": "sandbox"})
        ipam = {"type": "host-local", "subnet": "10.9.0.0/24", "dataDir": machines[0].path("/ipam")}

        with pytest.raises(CniError, match='failed to find plugin "flannel" in path') as err:
            runtime.add({"cniVersion": "1.0.0", "name": "x", "type": "flannel"}, att)
        assert "bridge" in (err.value.remedy or "")
        with pytest.raises(CniError, match="error parsing configuration") as err:
            runtime.add('{"cniVersion": "1.0.0", "name": ', att)
        assert err.value.code == 6
        with pytest.raises(CniError, match="incompatible CNI versions") as err:
            runtime.add({"cniVersion": "2.0.0", "name": "x", "type": "bridge", "bridge": "b0",
                         "ipam": ipam}, att)
        assert err.value.code == 1 and '"1.0.0"' in err.value.details
        with pytest.raises(CniError) as err:
            runtime.add({"cniVersion": "1.0.0", "name": "x", "type": "bridge", "bridge": "b0",
                         "ipam": ipam}, Attachment("c0ffee", "/run/netns/missing", "eth0"))
        assert err.value.plugin == "bridge" and "missing" in err.value.msg
        with pytest.raises(CniError, match="no valid type"):
            runtime.add({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "../bin/sh"}]}, att)
        # the refused ADDs left no lease and no interface behind
        assert machines[0].run(["find", machines[0].path("/ipam"), "-name", "10.*"]).stdout == ""
        assert [i.ifname for i in lab.node("sandbox").interfaces()] == ["lo"]

        # ptp, by hand: a veth with a host route per pod instead of a bridge
        ptp = {"cniVersion": "1.0.0", "name": "ptp-net", "type": "ptp", "ipam": ipam}
        with pytest.raises(CniError, match=r'unknown args \["K8S_POD_NAME=sandbox"\]'):
            runtime.add(ptp, att)  # CNI_ARGS the plugin does not know, without IgnoreUnknown=1
        att.args = {"IgnoreUnknown": "1", "K8S_POD_NAME": "sandbox"}
        result = runtime.add(ptp, att)
        assert result.ip == "10.9.0.2"
        leases = ["find", machines[0].path("/ipam"), "-name", "10.*"]
        assert machines[0].run(leases).stdout.strip().endswith("/ptp-net/10.9.0.2")
        assert any(r.dst.split("/")[0] == "10.9.0.2" for r in kubelet.node.routes("inet"))
        runtime.delete(ptp, att)
        assert not any(r.dst.split("/")[0] == "10.9.0.2" for r in kubelet.node.routes("inet"))
        assert machines[0].run(leases).stdout == ""
        assert runtime.version("ptp")["supportedVersions"][-1] == "1.0.0"


def test_containers_of_a_pod_share_one_network_namespace(tmp_path: Path) -> None:
    with Lab("pod", workdir=tmp_path) as lab:
        machines, _ = build(lab, tmp_path, 1)
        pod = Kubernetes(machines).kubelet("node1").run_pod("two-containers")
        first = pod.start_echo("app", port=9000)
        second = pod.start_container("sidecar", [sys.executable, "-m", "labkit.kubernetes.echo",
                                                 "serve", "--port", "9000"])
        assert second.wait(timeout=30) == 1
        assert "Address already in use" in second.stderr_text()
        assert first.running
        assert pod.hit("127.0.0.1", 9000)["replies"] == {"two-containers": 1}  # localhost


@pytest.mark.parametrize("argv, message", [
    (["serve", "--port", "70000"], "port 70000 is out of range (1 to 65535)"),
    (["serve", "--port", "http"], "port 'http' is not a whole number"),
    (["hit", "10.96.0.10", "70000"], "port 70000 is out of range"),
    (["hit", "10.96.0.10", "80", "--count", "-5"], "count -5 is out of range"),
    (["hit", "10.96.0.10", "80", "--count", "0"], "count 0 is out of range"),
    (["hit", "10.96.0.10", "80", "--timeout", "-1"], "not a positive duration"),
    (["hit", "10.96.0.10", "80", "--timeout", "0"], "too short"),
])
def test_echo_refuses_bad_arguments_with_one_line(argv: list[str], message: str, capsys) -> None:
    from labkit.kubernetes.echo import main

    assert message in usage_error(main, argv, capsys)


def test_kube_proxy_refuses_a_sync_period_that_would_spin(capsys) -> None:
    from labkit.kubernetes.proxy import main

    for period, message in (("0", "at least 0.1 s"), ("-1", "not a positive duration"),
                            ("nan", "not a positive duration")):
        line = usage_error(main, ["--services", "/nonexistent.json", "--sync-period", period], capsys)
        assert line.startswith("kube-proxy: error: argument --sync-period") and message in line


def test_pod_and_proxy_arguments_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with Lab("args", workdir=tmp_path) as lab:
        machines, _ = build(lab, tmp_path, 1)
        k8s = Kubernetes(machines)
        for period in (0, -1, float("nan"), "30"):
            with pytest.raises(InvalidTopology, match="sync_period="):
                k8s.start_proxy("iptables", sync_period=period)  # type: ignore[arg-type]
        assert k8s.proxies == {}
        with pytest.raises(InvalidTopology, match="echo_port=70000 is not a whole number from 1 to 65535"):
            k8s.run_pod("web-1", node="node1", echo_port=70000)
        assert "web-1" not in lab.nodes and k8s.pods == {}
        pod = k8s.run_pod("client", node="node1", echo_port=None)
        for bad, message in (({"count": -5}, "count=-5"), ({"count": 0}, "count=0"),
                             ({"timeout": -1}, "timeout=-1"), ({"timeout": True}, "timeout=True")):
            with pytest.raises(InvalidTopology, match=message):
                pod.hit("10.96.0.10", 80, **bad)
        with pytest.raises(InvalidTopology, match="port=70000"):
            pod.hit("10.96.0.10", 70000)
        with pytest.raises(InvalidTopology, match="port=0"):
            pod.start_echo(port=0)
        assert pod.containers == {}


# -- Services ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["iptables", "nftables"])
def test_services_in_both_proxy_modes(tmp_path: Path, mode: str) -> None:
    with Lab("svc", workdir=tmp_path) as lab:
        machines, outside = build(lab, tmp_path, 2)
        k8s = Kubernetes(machines)
        k8s.route_pod_cidrs()
        pods = [k8s.run_pod(f"web-{i}", node=node, labels={"app": "web"})
                for i, node in ((1, "node1"), (2, "node2"), (3, "node1"))]
        client = k8s.run_pod("client", node="node1", echo_port=None)
        # pod to pod across nodes, without NAT: the server sees the client's own address
        direct = client.hit(pods[1].ip, 8080)
        assert direct["sources"] == {client.ip: 1}
        web = k8s.create_service("web", selector={"app": "web"}, type="NodePort",
                                 ports=[ServicePort(80, 8080, name="http"),
                                        ServicePort(53, 8080, "UDP", name="dns")])
        if mode == "nftables":  # switching modes removes the other mode's rules
            k8s.start_proxy("iptables", sync_period=1.0)
        k8s.start_proxy(mode, sync_period=1.0)
        node1 = machines[0].node
        if mode == "nftables":
            assert "KUBE-" not in node1.run("iptables-save").stdout
        rules = node1.run("iptables-save" if mode == "iptables" else "nft list table ip kube-proxy").stdout
        if mode == "iptables":
            assert names.svc_chain("default/web:http", "tcp") in rules
            assert "-j KUBE-MARK-MASQ" in rules and "KUBE-POSTROUTING" in rules
        else:
            assert "service-ips" in rules and "numgen random mod 3 vmap" in rules

        spread = client.hit(web.cluster_ip, 80, count=150)
        assert sum(spread["replies"].values()) == 150, spread
        assert set(spread["replies"]) == {"web-1", "web-2", "web-3"}
        assert min(spread["replies"].values()) >= 15, spread  # 1/3 each; ~50 +- 6
        udp = client.hit(web.cluster_ip, 53, count=30, udp=True)
        assert sum(udp["replies"].values()) == 30, udp

        ct = node1.run(["conntrack", "-L", "-p", "tcp", "--orig-dst", web.cluster_ip]).stdout
        assert re.search(rf"src={client.ip} dst={web.cluster_ip} .* src=10\.244\.\d+\.\d+ dst={client.ip} sport=8080", ct)

        node_port = web.ports[0].node_port
        assert node_port is not None and 30000 <= node_port <= 32767
        out = outside.run([sys.executable, "-m", "labkit.kubernetes.echo", "hit", "192.168.99.102",
                           str(node_port), "--count", "30"]).check()
        external = json.loads(out.stdout)
        assert sum(external["replies"].values()) == 30
        assert "192.168.99.50" not in external["sources"]  # masqueraded, as kube-proxy does

        k8s.delete_pod("web-2")
        k8s.sync()
        after = client.hit(web.cluster_ip, 80, count=40)
        assert sum(after["replies"].values()) == 40 and "web-2" not in after["replies"]

        empty = k8s.create_service("empty", selector={"app": "nothing"}, ports=[ServicePort(80)])
        k8s.sync()
        assert client.hit(empty.cluster_ip, 80, count=2)["errors"] == {"ECONNREFUSED": 2}
        k8s.stop_proxy()


def test_pods_across_nodes_over_flannel(tmp_path: Path) -> None:
    from labkit.capture import Capture
    from labkit.flannel import Flannel

    with Lab("flpods", workdir=tmp_path) as lab:
        cluster = Cluster(lab)
        cluster.start_etcd()
        flannel = Flannel(cluster)
        flannel.configure("10.244.0.0/16", subnet_len=24, backend="vxlan")
        flannel.start_all(ttl=30)
        flannel.wait_converged()
        k8s = Kubernetes.on_flannel(flannel)
        leases = {n: flannel.subnet_env(n)["FLANNEL_SUBNET"] for n in ("node1", "node2")}
        for name, kubelet in k8s.kubelets.items():  # the pod CIDR is the node's flannel lease
            assert leases[name].startswith(kubelet.gateway + "/")
        a = k8s.run_pod("a", node="node1")
        b = k8s.run_pod("b", node="node2")
        assert any(r.dev == "flannel.1" and r.dst == str(k8s.kubelet("node2").pod_cidr)
                   for r in cluster["node1"].routes("inet"))
        with Capture(cluster["node2"].node, "eth1", filter="udp port 8472") as cap:
            reply = a.hit(b.ip, 8080, count=3)
        assert reply["sources"] == {a.ip: 3}  # no NAT between pods
        table = cap.table()
        assert len(table) > 0 and (table["inner_src_ip"] == a.ip).any()  # inside VXLAN


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a test user needs root")
def test_kubernetes_as_an_unprivileged_user() -> None:
    from test_doctor_and_unprivileged import as_student
    out = as_student([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      "tests/test_kubernetes.py", "-k", "not unprivileged"], timeout=900)
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0 and " passed" in out.stdout and "failed" not in out.stdout, tail
