"""BIRD, the real BGP daemon calico/node runs, as a lab process in one machine.

Debian's ``bird`` package (BIRD 1.6) is used rather than ``bird2``: Calico's confd
writes BIRD 1.x syntax, which ``bird`` runs unchanged, while BIRD 2 would need every
file rewritten (channels, ``ipv4 { ... }`` blocks). The two packages conflict; ``labkit
doctor`` says which one is installed.

Files are where calico/node keeps them, inside the machine's state folder::

    /etc/calico/confd/config/bird.cfg     (and bird_aggr.cfg, bird_ipam.cfg)
    /var/run/calico/bird.ctl              the control socket ``birdc -s`` talks to
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import CommandTimeout, ToolMissing

if TYPE_CHECKING:
    from ..cluster import ClusterNode
    from ..process import Process
    from ..results import CommandResult

CONFDIR = "/etc/calico/confd/config"
SOCKET = "/var/run/calico/bird.ctl"
_ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$")


@dataclass(frozen=True)
class Protocol:
    """One row of ``birdc show protocols``."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str

    @property
    def established(self) -> bool:
        return self.proto == "BGP" and self.info.startswith("Established")


def confdir(machine: "ClusterNode") -> str:
    return machine.path(CONFDIR)


def socket_path(machine: "ClusterNode") -> str:
    return machine.path(SOCKET)


def argv(machine: "ClusterNode") -> list[str]:
    """``bird -f -c /etc/calico/confd/config/bird.cfg -s /var/run/calico/bird.ctl`` (real paths)."""
    return ["bird", "-f", "-c", confdir(machine) + "/bird.cfg", "-s", socket_path(machine)]


def birdc(machine: "ClusterNode", *args: str, timeout: float = 30.0) -> "CommandResult":
    """``birdc -s SOCKET ARGS`` in ``machine`` (e.g. ``show protocols``, ``show route``)."""
    return machine.node.run(["birdc", "-s", socket_path(machine), *args], timeout=timeout)


def protocols(machine: "ClusterNode") -> list[Protocol]:
    """``birdc show protocols``, parsed (empty if BIRD does not answer)."""
    result = birdc(machine, "show", "protocols")
    rows = []
    for line in result.stdout.splitlines()[2:] if result.ok else []:
        match = _ROW.match(line.strip())
        if match:
            rows.append(Protocol(*[g.strip() for g in match.groups()]))
    return rows


def start(machine: "ClusterNode", timeout: float = 30.0) -> "Process":
    """Start BIRD in ``machine`` once confd has written its configuration; wait until
    ``birdc`` answers."""
    if machine.node.run(["sh", "-c", "command -v bird"]).returncode != 0:
        raise ToolMissing("BIRD (`bird`) is not installed", obj="bird", op="start BIRD",
                          remedy="apt-get install bird (BIRD 1.6; see apt.txt), then `labkit doctor`")
    config = confdir(machine) + "/bird.cfg"
    end = time.monotonic() + timeout
    while machine.node.run(["test", "-s", config]).returncode != 0:
        if time.monotonic() > end:
            raise CommandTimeout(f"no {CONFDIR}/bird.cfg on {machine.name} after {timeout} s",
                                 obj=machine.name, op="start BIRD",
                                 remedy="is the calico agent running there? read its log")
        time.sleep(0.1)
    machine.node.run(["mkdir", "-p", socket_path(machine).rsplit("/", 1)[0]], check=True)
    process = machine.node.spawn(argv(machine))
    while birdc(machine, "show", "status").returncode != 0:
        if not process.running:
            raise CommandTimeout(f"BIRD on {machine.name} exited ({process.returncode}): "
                                 f"{process.stderr_text().strip()[-400:]}", obj=machine.name,
                                 op="start BIRD", remedy=f"check {CONFDIR}/bird.cfg with `bird -p -c`")
        if time.monotonic() > end:
            raise CommandTimeout(f"BIRD on {machine.name} does not answer on its socket",
                                 obj=machine.name, op="start BIRD", remedy="read its log")
        time.sleep(0.1)
    return process
