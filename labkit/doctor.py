"""``labkit doctor``: what this machine can do for the course, and how to fix what it can't.

It tries things for real rather than guessing from versions: it starts a lab in each
mode, creates each kind of device the course uses inside it, and looks for every tool.
Each check says what a failure disables and the exact remedy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Callable

SETUP_REMEDY = "run the README's first command (./course.sh start) on a Debian/Ubuntu machine or VM you control"


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    disables: str = ""
    remedy: str = ""
    essential: bool = False
    optional: bool = False  # nothing is lost without it (labkit has another way): never marked missing


@dataclass
class Report:
    """Everything doctor found; ``ok`` is True when a basic lab can run here."""

    mode: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.essential)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def text(self) -> str:
        lines = [f"labkit doctor: labs run here in mode: {self.mode}"]
        for c in self.checks:
            mark = "ok  " if c.ok else ("FAIL" if c.essential else "opt " if c.optional else "miss")
            lines.append(f"  [{mark}] {c.name}: {c.detail}")
            if not c.ok and not c.optional:
                if c.disables:
                    lines.append(f"         without it: {c.disables}")
                if c.remedy:
                    lines.append(f"         fix: {c.remedy}")
        verdict = ("Basic labs work here." if self.ok else
                   "Labs cannot run here. " + SETUP_REMEDY[0].upper() + SETUP_REMEDY[1:] + ".")
        lines.append(verdict)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for c in self.checks:
            colour = "#1a7f37" if c.ok else ("#cf222e" if c.essential else "#777" if c.optional else "#9a6700")
            mark = "✔" if c.ok else ("✘" if c.essential else "·" if c.optional else "–")
            fix = "" if c.ok or c.optional else (f"<br><small>without it: {escape(c.disables)}<br>"
                                   f"fix: {escape(c.remedy)}</small>")
            rows.append(f"<tr><td style='color:{colour}'>{mark}</td><td>{escape(c.name)}</td>"
                        f"<td style='text-align:left'>{escape(c.detail)}{fix}</td></tr>")
        verdict = ("<b style='color:#1a7f37'>Basic labs work here.</b>" if self.ok else
                   f"<b style='color:#cf222e'>Labs cannot run here.</b> {escape(SETUP_REMEDY)}.")
        return (f"<div><p>Lab mode on this machine: <b>{escape(self.mode)}</b></p>"
                f"<table>{''.join(rows)}</table><p>{verdict}</p></div>")


# Tools: (program, what it is for, Debian package).
TOOLS = [
    ("ip", "building and inspecting every lab", "iproute2", True),
    ("bridge", "inspecting bridge ports and forwarding databases", "iproute2", False),
    ("ping", "every connectivity check", "iputils-ping", True),
    ("traceroute", "the routed and overlay hop-by-hop lessons", "traceroute", False),
    ("nft", "firewall and NAT lessons (nftables)", "nftables", False),
    ("iptables", "NAT and port publishing (notebooks 02 and 20)", "iptables", False),
    ("tcpdump", "reading captures on the command line (labkit captures without it)", "tcpdump", False),
    ("tshark", "dissecting captures like Wireshark", "tshark", False),
    ("iperf3", "throughput measurements", "iperf3", False),
    ("dockerd", "the Docker lessons (20, 21), an engine per node (35), Docker overlay in 34",
     "docker.io", False),
    # the orchestrator lessons' real daemons and tools: optional, each names its lesson
    ("etcd", "lesson 30 (Flannel): the real etcd holding the network config and leases", "etcd-server", False),
    ("etcdctl", "lesson 30 (Flannel): etcdctl set/get/watch from the nodes", "etcd-client", False),
    ("bird", "lesson 31 (Calico): BGP between hosts with BIRD 1.6", "bird", False),
    ("birdc", "lesson 31 (Calico): birdc show protocols / show route", "bird", False),
    ("dnsmasq", "lesson 32 (Weave): weaveDNS answering NAME.weave.local", "dnsmasq-base", False),
    ("conntrack", "lessons 40-41 (Kubernetes Services): the connection-tracking table", "conntrack", False),
]
CNI_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]


def _mode_checks(report: Report) -> tuple[str | None, list[Check]]:
    """Start a lab in each mode; return the best mode that works and the checks."""
    from .errors import LabkitError
    from .lab import Lab

    checks = []
    best = None
    who = "root" if os.geteuid() == 0 else f"unprivileged user (uid {os.geteuid()})"
    for mode in ("full", "restricted"):
        try:
            with Lab("doctor", mode=mode) as lab:
                got = lab.mode
            ok = got == mode
            detail = (f"works as {who}" if ok else
                      f"falls back to {got} ({'; '.join(lab.notes) or 'sysctl writes refused'})")
        except LabkitError as exc:
            ok, detail = False, str(exc)
        if ok and best is None:
            best = mode
        checks.append(Check(
            f"lab mode {mode}", ok, detail,
            disables=("`ip netns exec` inside labs and sysctls other than forwarding"
                      if mode == "full" else "every lab"),
            remedy=("allow mount and /proc/sys writes in user namespaces (a VM, or a JupyterHub "
                    "spawner without the AppArmor profile)" if mode == "full" else
                    "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 "
                    "and user.max_user_namespaces>0), or " + SETUP_REMEDY),
            essential=False))
    checks.append(Check("user and network namespaces", best is not None,
                        f"a lab can be built ({best} mode)" if best else
                        "no lab can be built on this machine",
                        disables="every lab in the course",
                        remedy="enable unprivileged user namespaces, or " + SETUP_REMEDY,
                        essential=True))
    return best, checks


def _device_checks(mode: str) -> list[Check]:
    """Create each kind of device the course uses inside a throwaway lab."""
    from .lab import Lab

    checks = []
    with Lab("doctor", mode=mode) as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        probes: list[tuple[str, Callable[[], object], str, str, bool]] = [
            ("veth pairs", lambda: lab.link(a, b), "every lab", "a kernel with veth (CONFIG_VETH)", True),
            ("Linux bridges", lambda: a.add_bridge("br0"), "switches and docker0 lessons",
             "a kernel with bridge support", True),
            ("VXLAN devices", lambda: a.add_vxlan("vx0", 42, group="239.1.1.1", dev="eth0"),
             "the VXLAN, Flannel and overlay lessons", "a kernel with CONFIG_VXLAN", False),
        ]
        for name, probe, disables, remedy, essential in probes:
            try:
                probe()
                checks.append(Check(name, True, "created in a lab"))
            except Exception as exc:  # noqa: BLE001 - each failure is reported, not raised
                checks.append(Check(name, False, str(exc), disables, remedy, essential))
        gre = a.run(["ip", "link", "add", "gre0x", "type", "gretap", "remote", "10.9.9.9",
                     "local", "10.9.9.8"]) if shutil.which("ip") else None
        gre_ok = gre is not None and gre.ok
        checks.append(Check("kernel gretap", gre_ok,
                            "available" if gre_ok else "absent: labkit carries GRE in userspace instead",
                            "nothing: the userspace GRE path is used", "optional (CONFIG_NET_IPGRE)",
                            optional=True))
        tun = a.run(["ip", "tuntap", "add", "mode", "tun", "name", "tun0x"]) if shutil.which("ip") else None
        tun_ok = tun is not None and tun.ok
        checks.append(Check("TUN devices", tun_ok,
                            "can be created in a lab" if tun_ok else
                            "cannot be created: userspace tunnels read veth ends with AF_PACKET instead",
                            "nothing essential", "optional (/dev/net/tun access)", optional=True))
        for tool, args in (("nft", ["nft", "list", "ruleset"]), ("iptables", ["iptables", "-S"])):
            if shutil.which(tool):
                res = a.run(args)
                checks.append(Check(f"{tool} inside a lab", res.ok,
                                    "works" if res.ok else res.stderr.strip()[-200:],
                                    "firewall and NAT lessons", f"install {tool} and check the kernel's netfilter"))
    return checks


def _tool_checks() -> list[Check]:
    checks = []
    for tool, purpose, package, essential in TOOLS:
        path = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        checks.append(Check(f"tool {tool}", path is not None, path or "not installed",
                            disables=purpose, remedy=f"apt-get install {package}",
                            essential=essential))
    cni = next((d for d in CNI_DIRS if os.path.exists(os.path.join(d, "bridge"))), None)
    checks.append(Check("CNI plugins", cni is not None, cni or "not installed",
                        disables="lesson 40 (Kubernetes pods and CNI): the reference CNI plugins",
                        remedy="apt-get install containernetworking-plugins"))
    checks.append(_bird_check())
    checks.append(_docker_check())
    return checks


def _bird_check() -> Check:
    """Which BIRD is installed: Calico's confd writes BIRD 1.x syntax (Debian's ``bird``);
    ``bird2`` (BIRD 2.x, which conflicts with it) would refuse those files."""
    path = shutil.which("bird", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    version = ""
    if path:
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
            out = (done.stdout + done.stderr).strip()
            version = out.splitlines()[0] if out else ""
        except (OSError, subprocess.TimeoutExpired):
            version = ""
    ok = version.startswith("BIRD version 1.")
    detail = (f"{version} (package bird: runs Calico's configuration unchanged)" if ok else
              f"{version}: BIRD 2 syntax differs from the BIRD 1.x files Calico writes" if version
              else "not installed")
    return Check("BIRD for Calico", ok, detail, disables="the Calico lesson's BGP (notebook 31)",
                 remedy="apt-get install bird (it replaces bird2)")


def _etcd_check(mode: str) -> Check:
    """Start the real etcd in a throwaway cluster, as lesson 30 does."""
    from .cluster import Cluster
    from .lab import Lab

    try:
        with Lab("doctor", mode=mode) as lab:
            etcd = Cluster(lab, nodes=["node1"]).start_etcd(v2=True)
            version = etcd.etcdctl("node1", "version").stdout.split("\n")[0].strip()
            detail = f"starts in a lab with the v2 and v3 APIs ({version})"
            ok = True
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        ok, detail = False, str(exc)[-300:]
    return Check("etcd in a lab", ok, detail,
                 disables="lesson 30 (Flannel) and every lesson that keeps state in etcd",
                 remedy="apt-get install etcd-server etcd-client, then run labkit doctor again")


def _neighbour_table_check() -> Check | None:
    """Room left in the kernel's ARP table, which every namespace of the machine shares:
    past ``gc_thresh3`` entries, new neighbours fail with ENOBUFS ("No buffer space
    available") and pings between lab nodes stop working."""
    try:
        with open("/proc/net/stat/arp_cache") as f:
            used = int(f.read().splitlines()[1].split()[0], 16)
        with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as f:
            limit = int(f.read())
    except (OSError, ValueError, IndexError):
        return None
    ok = used < 0.9 * limit
    return Check("ARP table room", ok, f"{used} of {limit} entries in use (permanent ones included), "
                                       "machine-wide (gc_thresh3)",
                 disables="new neighbours in any lab: pings fail with 'No buffer space available'",
                 remedy="close other labs, or raise the limit on this machine: sysctl -w "
                        "net.ipv4.neigh.default.gc_thresh3=32768 net.ipv4.neigh.default.gc_thresh2=16384")


def _docker_check() -> Check:
    path = "/var/run/docker.sock"
    detail = "no Docker engine socket at /var/run/docker.sock"
    ok = False
    if os.path.exists(path):
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                ok = b"OK" in sock.recv(1024)
                detail = "engine answers" if ok else "socket exists but the engine did not answer"
        except OSError as exc:
            detail = f"cannot talk to the engine: {exc.strerror}"
    return Check("Docker engine reachable", ok, detail,
                 disables="the Docker notebooks (20 and 21)",
                 remedy="start dockerd (the README's commands do) and run those notebooks as root: they "
                        "enter the containers' network namespaces, which the docker group does not allow")


def run() -> Report:
    """Run every check and return the report."""
    best, mode_checks = _mode_checks(Report("none"))
    report = Report(best or "none", mode_checks)
    if best is not None:
        report.checks += _device_checks(best)
        if shutil.which("etcd"):
            report.checks.append(_etcd_check(best))
    report.checks += _tool_checks()
    neigh = _neighbour_table_check()
    if neigh is not None:
        report.checks.append(neigh)
    return report


def main(as_json: bool = False) -> int:
    report = run()
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.text())
    return 0 if report.ok else 1
