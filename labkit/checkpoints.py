"""Checkpoints: automated checks of the real lab state, for exercise notebooks.

A checkpoint is the automated form of the lab guide's "show the working scenario to
the instructor": a named check with points, a description and a hint, that looks at
the lab the student built::

    from labkit.checkpoints import Checkpoint, checks

    with Checkpoint("2.1", "h1 reaches h2 through the bridge", points=2,
                    hint="Is the bridge up? Are both veth ends enslaved?") as cp:
        cp.check(checks.ping(h1, "10.0.0.2", expect="success"))
        cp.check(checks.route(h1, "default", via="10.0.0.254"))

When the ``with`` block ends the student sees one clear PASS or FAIL box with the
reason of every check (and the hint on failure), and the same result is recorded in
the notebook as a display output of MIME type :data:`MIME_TYPE` (plus HTML and plain
text renderings), which the grader reads back from the executed notebook. An error
inside the block (``h1`` not defined yet, a lab that was closed) fails the checkpoint
with that error as the reason instead of stopping the notebook.
``Checkpoint(...).check(...)`` outside a ``with`` block records at once.

Every function of :data:`checks` returns a :class:`CheckResult` (``passed``,
``reason``) and can also be used on its own in a cell to see where one stands.
Nodes are duck-typed: anything with the methods of :class:`labkit.Host`
(``ping``, ``routes``, ``addresses``, ``interfaces``, ``neighbours``, ``fdb``,
``get_sysctl``, ``run``) works.

How a checkpoint reaches its grade (rules for exercise authors)
--------------------------------------------------------------
What a checkpoint shows in the student's kernel is feedback only. When an exercise is
graded, the grader (:mod:`labkit.grading.evaluator`) runs the **instructor's** source
of every checkpoint cell again itself, outside the student's kernel, with its own
``labkit``, against the **real kernel state** of the student's labs (it adopts their
network namespaces), and *that* result is the grade. Redefining ``Checkpoint`` or
``checks``, monkeypatching labkit, display formatters, hooks that rewrite outputs:
none of it reaches the grade, and all of it is flagged (the grader compares what the
notebook displayed with its own result). So a checkpoint cell must be re-runnable
from the outside, and may read only:

1. **Parameters** (the ``parameters`` cell): always the instructor's values. A
   notebook that reassigns one is checked with the instructor's value, and flagged.
2. **What the setup defined**: the code cells tagged ``setup`` or, without that tag,
   the code cells right after the parameters cell up to the first prompt (``...``)
   or checkpoint. The grader runs them first, as written, and keeps a snapshot of
   their names (derived addresses, ``lab``, nodes, labkit imports such as
   ``Checkpoint``, ``checks``, ``Capture``); later reassignments are ignored, flagged.
3. **Labs and nodes**: a ``Lab`` and its ``Node`` objects, whoever made them;
   ``lab["c1"]`` / ``lab.node("c1")`` and every ``Node`` method (``ping``, ``routes``,
   ``interfaces``, ``run``, ``capture``, ...) work in the grader's view. Other ``Lab``
   attributes (``lab.nodes``, ``lab.links``) do not: use ``lab["name"]``.
   Cluster handles (:mod:`labkit.cluster`) work too: a ``ClusterNode`` (every Node
   method, ``name``, ``nic``, ``ip``, ``role``, ``path(p)``, ``read_text(p)``), a
   ``Cluster`` (``cluster["node2"]``, ``node()``, ``nodes``, ``store``,
   ``machines``) and ``Etcd`` (``endpoint``, ``etcdctl(machine, ...)``). Not their
   other attributes (``containers``, ``switch``, ``etcd.get(...)``): name containers
   by ``lab["c1"]`` and read etcd through ``checks.command(host, ["etcdctl",
   "--endpoints", etcd.endpoint, "get", KEY], stdout_contains=...)``. A machine
   file (``checks.command(node1, ["cat", node1.path("/run/flannel/subnet.env")],
   ...)``) is checked from a copy the grader makes (regular files up to 1 MiB; a
   link there counts as missing); a socket (``["birdc", "-s",
   node1.path("/var/run/calico/bird.ctl"), ...]``) through a relay of the grader's.
   Write such argv inline in the cell: functions the notebook defined (a ``birdc()``
   helper) cannot be called by the grader. Other systems' objects (a ``Weave``,
   ``Layout`` or ``Kubernetes`` helper) are not rebuilt: use their nodes.
   Docker handles (:mod:`labkit.docker`) are rebuilt on the instructor's engine
   (the ``docker_host`` parameter): the docker-py ``client`` (the grader's own
   connection: ``checks.docker_network(..., client=client)``, ``checks.container``,
   ``client.containers.get(NAME).attrs``), a ``DockerLab`` (only
   ``dl.container(NAME)``, ``dl.client``, ``dl.session``: the course-labelled
   container of that name) and a ``ContainerNode`` (by its name). Name containers
   by ``dl.container("db")`` in the cell; never create or remove anything there.
4. **The student's answers as data**: other names holding numbers, strings, IP
   addresses/networks, or lists/tuples/sets/dicts of those (``peer_index``,
   ``hops``). Compare them with what the check reads from the lab, never with
   another student value.
5. **Files** of the working copy by relative path (regular files, up to 1 MiB).

Anything else made by student code cannot be re-checked: a checkpoint that uses a
capture the student made (``lan_capture.table()``), a DataFrame or a function fails
with "cannot be re-checked by the grader". **Capture inside the checkpoint cell**
instead: ``with host2.capture("enp0s8") as seen: c1.ping(c2_ip, count=2)`` then
``checks.capture(seen, ...)``. ``checks.expect(<condition>, what)`` is allowed
(the grader evaluates the condition itself, with its own objects), but prefer a
library check; if a new kind of check is needed, add a small generic one here.
Write checks that can run twice without harm (they run in the kernel, then in the
grader): read, ping, capture; do not change the lab in a checkpoint cell. Do not
use IPython magics or ``display`` of results in checkpoint cells. Objects the
instructor's setup made that the grader cannot rebuild (anything that is not a
lab, a node or a registered handle) make that checkpoint fall back to the
notebook's displayed result, flagged "not re-verified": keep such checkpoints few.
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeAlias

__all__ = [
    "MIME_TYPE",
    "SCHEMA",
    "CheckResult",
    "Checkpoint",
    "CheckpointResult",
    "address_matches",
    "checks",
    "results",
    "route_matches",
    "summary",
]

MIME_TYPE = "application/vnd.labkit.checkpoint+json"
"""The MIME type under which checkpoint results are recorded in a notebook."""
SCHEMA = 1
"""Version of the recorded JSON (``{"schema": 1, "id": ..., "passed": ..., ...}``)."""

_MAX_REASON = 500


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: did the lab look as expected, and why (not)."""

    passed: bool
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}: {self.reason}"

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#cf222e"
        return (f'<span style="color:{colour};font-weight:bold">{"PASS" if self.passed else "FAIL"}'
                f"</span> {html.escape(self.reason)}")


Requirement: TypeAlias = "CheckResult | bool | Callable[[], CheckResult | bool]"
"""What :meth:`Checkpoint.check` accepts: a result, a bool, or a callable returning one."""


@dataclass(frozen=True)
class CheckpointResult:
    """A finished checkpoint: what the student sees and what the grader records."""

    id: str
    title: str
    points: float
    checks: tuple[CheckResult, ...]
    hint: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def score(self) -> float:
        return self.points if self.passed else 0

    @property
    def reason(self) -> str:
        """The failed checks' reasons (all reasons when it passed), in one line."""
        chosen = [c.reason for c in self.checks if c.passed == self.passed] or \
            [c.reason for c in self.checks]
        return "; ".join(chosen)

    def record(self) -> dict[str, Any]:
        """The machine-readable form stored under :data:`MIME_TYPE`."""
        return {"schema": SCHEMA, "id": self.id, "title": self.title, "points": self.points,
                "score": self.score, "passed": self.passed, "reason": self.reason,
                "checks": [{"passed": c.passed, "reason": c.reason} for c in self.checks],
                "hint": self.hint}

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}  Checkpoint {self.id} ({_num(self.score)}/{_num(self.points)} points):"
                 f" {self.title}"]
        lines += [f"  [{'ok' if c.passed else 'FAILED'}] {c.reason}" for c in self.checks]
        if not self.passed and self.hint:
            lines.append(f"  Hint: {self.hint}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        ok = self.passed
        border, back = ("#1a7f37", "#dafbe1") if ok else ("#cf222e", "#ffebe9")
        items = "".join(
            f'<li style="list-style:none">{"&#10004;" if c.passed else "&#10008;"} '
            f"{html.escape(c.reason)}</li>" for c in self.checks)
        hint = (f'<div style="margin-top:4px"><b>Hint:</b> {html.escape(self.hint)}</div>'
                if self.hint and not ok else "")
        return (f'<div class="labkit-checkpoint" style="border-left:6px solid {border};'
                f'background:{back};padding:6px 10px;margin:4px 0;color:#1f2328">'
                f'<b>{"PASS" if ok else "FAIL"}</b> &nbsp; '
                f"<b>Checkpoint {html.escape(self.id)}</b>: {html.escape(self.title)} "
                f'<span style="float:right">{_num(self.score)} / {_num(self.points)} points</span>'
                f'<ul style="margin:4px 0 0 0;padding-left:8px">{items}</ul>{hint}</div>')

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {MIME_TYPE: self.record(), "text/html": self._repr_html_(), "text/plain": str(self)}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_RESULTS: dict[str, CheckpointResult] = {}


def results() -> dict[str, CheckpointResult]:
    """Every checkpoint recorded in this kernel so far (the latest result per id)."""
    return dict(_RESULTS)


def summary() -> Any:
    """A table of the checkpoints recorded so far (a pandas DataFrame)."""
    import pandas as pd

    rows = [{"checkpoint": r.id, "title": r.title, "passed": r.passed, "score": r.score,
             "points": r.points} for r in _RESULTS.values()]
    return pd.DataFrame(rows, columns=["checkpoint", "title", "passed", "score", "points"])


def _show(result: CheckpointResult) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency of the course
        print(result)
        return
    if get_ipython() is None:
        print(result)
    else:
        display(result)


# --------------------------------------------------------------------------------------
# Checkpoint
# --------------------------------------------------------------------------------------

class Checkpoint:
    """A named, graded check of the lab state.

    Use it as a context manager and call :meth:`check` for each requirement; the
    checkpoint passes when every requirement passes, and is shown and recorded once,
    when the block ends. Outside a ``with`` block :meth:`check` records at once.

    ``id`` is the checkpoint's number in the exercise ("2.1"), ``title`` what the
    student must achieve, ``points`` its weight, ``hint`` what to look at on failure.
    """

    def __init__(self, id: str, title: str, *, points: float = 1, hint: str = "") -> None:
        if not isinstance(id, str) or not id.strip():
            raise ValueError(f"checkpoint id must be a non-empty string (got {id!r})")
        if not isinstance(points, (int, float)) or points < 0:
            raise ValueError(f"checkpoint {id!r}: points must be a number >= 0 (got {points!r})")
        self.id = id
        self.title = title
        self.points = points
        self.hint = hint
        self.result: CheckpointResult | None = None
        self._pending: list[CheckResult] | None = None

    def __repr__(self) -> str:
        return f"Checkpoint({self.id!r}, {self.title!r}, points={self.points!r})"

    def check(self, *requirements: Requirement) -> None:
        """Evaluate requirements; inside ``with`` collect them, otherwise record now."""
        evaluated = [_evaluate(req) for req in requirements]
        if self._pending is not None:
            self._pending.extend(evaluated)
        else:
            self._finish(evaluated or [CheckResult(False, "no requirement was given")])

    def __enter__(self) -> Checkpoint:
        self._pending = []
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        collected, self._pending = self._pending or [], None
        if exc is not None and not isinstance(exc, Exception):
            return False  # KeyboardInterrupt, SystemExit: not ours to swallow
        if exc is not None:
            collected.append(CheckResult(False, f"could not check: {_describe(exc)}"))
        elif not collected:
            collected.append(CheckResult(False, "no requirement was checked"))
        self._finish(collected)
        return True

    def _finish(self, collected: Sequence[CheckResult]) -> None:
        kept = tuple(CheckResult(r.passed, _clip(r.reason), r.details) for r in collected)
        self.result = CheckpointResult(self.id, self.title, self.points, kept, self.hint)
        _RESULTS[self.id] = self.result
        _show(self.result)


def _evaluate(requirement: Requirement) -> CheckResult:
    try:
        value = requirement() if callable(requirement) else requirement
    except Exception as exc:  # noqa: BLE001 - any failure of the check is the reason
        return CheckResult(False, f"could not check: {_describe(exc)}")
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(value, "condition holds" if value else "condition does not hold")
    return CheckResult(False, f"a check must return a CheckResult or a bool (got {type(value).__name__})")


def _describe(exc: BaseException) -> str:
    return _clip(f"{type(exc).__name__}: {exc}")


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def _node_name(node: Any) -> str:
    name = getattr(node, "name", None)
    return str(name) if name else str(node)


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """``"default"`` -> 0.0.0.0/0, ``"10.0.0.2"`` -> 10.0.0.2/32; None if not a prefix."""
    if text in ("default", "any"):
        return ipaddress.ip_network("0.0.0.0/0")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def route_matches(route: Any, dst: str, via: str | None = None, dev: str | None = None) -> bool:
    """Whether a route record (``dst``, ``gateway``, ``dev``) is the one described."""
    want, have = _network(dst), _network(str(getattr(route, "dst", "")))
    if want is None or have is None:
        if str(getattr(route, "dst", "")) != dst:
            return False
    elif want != have and not (want.prefixlen == 0 and have.prefixlen == 0
                               and want.version == have.version):
        return False
    if via is not None and str(getattr(route, "gateway", None)) != via:
        return False
    return dev is None or getattr(route, "dev", None) == dev


def address_matches(addr: Any, cidr: str, dev: str | None = None) -> bool:
    """Whether an address record (``local``, ``prefixlen``, ``ifname``) is ``cidr``."""
    if dev is not None and getattr(addr, "ifname", None) != dev:
        return False
    local = str(getattr(addr, "local", ""))
    try:
        if "/" in cidr:
            return (ipaddress.ip_interface(f"{local}/{getattr(addr, 'prefixlen', '')}")
                    == ipaddress.ip_interface(cidr))
        return ipaddress.ip_address(local) == ipaddress.ip_address(cidr)
    except ValueError:
        return False


def _present(found: bool, present: bool, what: str, where: str) -> CheckResult:
    """``h1: route to default via 10.0.0.254 is present`` (or missing, or unexpected)."""
    if found == present:
        return CheckResult(True, f"{where}: {what} is {'present' if found else 'absent'}")
    if present:
        return CheckResult(False, f"{where}: {what} is missing")
    return CheckResult(False, f"{where}: {what} is present (expected it absent)")


class _Checks:
    """The library of checks; each returns a :class:`CheckResult`."""

    @staticmethod
    def expect(condition: bool, what: str) -> CheckResult:
        """A plain condition, described by ``what`` ("r1 forwards IPv4")."""
        return CheckResult(bool(condition), what if condition else f"{what}: not the case")

    @staticmethod
    def ping(node: Any, destination: str, *, expect: Literal["success", "failure"] = "success",
             count: int = 2) -> CheckResult:
        """A ping from ``node`` to ``destination`` that must get replies (or must not)."""
        if expect not in ("success", "failure"):
            raise ValueError(f"expect must be 'success' or 'failure' (got {expect!r})")
        result = node.ping(destination, count=count)
        sent, received = int(getattr(result, "sent", count)), int(getattr(result, "received", 0))
        answered = received > 0
        errors = list(getattr(result, "errors", []) or [])
        text = (f"ping {_node_name(node)} -> {destination}: {received} of {sent} echo requests answered"
                if sent or not errors else  # nothing sent: say why, as ping did
                f"ping {_node_name(node)} -> {destination}: {errors[0].removeprefix('ping: ')}, no echo request sent")
        ok = answered if expect == "success" else not answered
        if not ok:
            text += " (expected replies)" if expect == "success" else " (expected no reply)"
        return CheckResult(ok, text, {"sent": sent, "received": received})

    @staticmethod
    def route(node: Any, dst: str, *, via: str | None = None, dev: str | None = None,
              present: bool = True) -> CheckResult:
        """A route to ``dst`` (``"default"``, a prefix) optionally via a gateway / device."""
        found = any(route_matches(r, dst, via, dev) for r in node.routes())
        what = f"route to {dst}" + (f" via {via}" if via else "") + (f" dev {dev}" if dev else "")
        return _present(found, present, what, _node_name(node))

    @staticmethod
    def address(node: Any, cidr: str, *, dev: str | None = None, present: bool = True) -> CheckResult:
        """An address (``10.0.0.1/24``, or just ``10.0.0.1``) on the node, optionally on ``dev``."""
        found = any(address_matches(a, cidr, dev) for a in node.addresses())
        return _present(found, present, f"address {cidr}" + (f" on {dev}" if dev else ""),
                        _node_name(node))

    @staticmethod
    def interface(node: Any, name: str, *, up: bool | None = True, master: str | None = None,
                  kind: str | None = None, mtu: int | None = None) -> CheckResult:
        """An interface in a given state: up/down, enslaved to ``master``, of ``kind``, ``mtu``."""
        where = _node_name(node)
        match = next((i for i in node.interfaces() if getattr(i, "ifname", None) == name), None)
        if match is None:
            return CheckResult(False, f"{where} has no interface {name}")
        problems = []
        if up is not None and bool(getattr(match, "up", False)) != up:
            problems.append("is down" if up else "is up")
        if master is not None and getattr(match, "master", None) != master:
            problems.append(f"has master {getattr(match, 'master', None)} (expected {master})")
        if kind is not None and getattr(match, "kind", None) != kind:
            problems.append(f"is of kind {getattr(match, 'kind', None)} (expected {kind})")
        if mtu is not None and getattr(match, "mtu", None) != mtu:
            problems.append(f"has MTU {getattr(match, 'mtu', None)} (expected {mtu})")
        if problems:
            return CheckResult(False, f"{where}: {name} " + ", ".join(problems))
        desc = ", ".join(x for x in ("up" if up else "down" if up is False else "",
                                     f"master {master}" if master else "",
                                     f"kind {kind}" if kind else "",
                                     f"MTU {mtu}" if mtu else "") if x)
        return CheckResult(True, f"{where}: {name} is {desc or 'present'}")

    @staticmethod
    def neighbour(node: Any, ip: str, *, lladdr: str | None = None, dev: str | None = None,
                  present: bool = True) -> CheckResult:
        """A resolved ARP/NDP entry for ``ip`` (optionally with a given MAC, on ``dev``)."""
        def ok(entry: Any) -> bool:
            states = {str(s).upper() for s in (getattr(entry, "state", None) or [])}
            return (str(getattr(entry, "dst", "")) == ip
                    and not states & {"FAILED", "INCOMPLETE"}
                    and (dev is None or getattr(entry, "dev", None) == dev)
                    and (lladdr is None
                         or str(getattr(entry, "lladdr", "")).lower() == lladdr.lower()))
        found = any(ok(e) for e in node.neighbours())
        what = f"neighbour entry for {ip}" + (f" at {lladdr}" if lladdr else "")
        return _present(found, present, what, _node_name(node))

    @staticmethod
    def fdb(node: Any, mac: str, *, ifname: str | None = None, present: bool = True) -> CheckResult:
        """A bridge forwarding-database entry for ``mac`` (optionally learnt on ``ifname``)."""
        found = any(str(getattr(e, "mac", "")).lower() == mac.lower()
                    and (ifname is None or getattr(e, "ifname", None) == ifname)
                    for e in node.fdb())
        what = f"FDB entry for {mac}" + (f" on {ifname}" if ifname else "")
        return _present(found, present, what, _node_name(node))

    @staticmethod
    def sysctl(node: Any, name: str, value: str | int) -> CheckResult:
        """A sysctl of the node's namespace has the given value."""
        have = str(node.get_sysctl(name)).strip()
        ok = have == str(value)
        return CheckResult(ok, f"{_node_name(node)}: {name} = {have}"
                               + ("" if ok else f" (expected {value})"))

    @staticmethod
    def command(node: Any, argv: Sequence[str], *, returncode: int | None = 0,
                stdout_contains: str | None = None,
                stdout_lacks: str | None = None) -> CheckResult:
        """A command run in the node exits with ``returncode``, prints ``stdout_contains``
        and does not print ``stdout_lacks`` (e.g. a client address a NAT must hide)."""
        result = node.run(list(argv))
        shown = " ".join(argv)
        rc, out = int(getattr(result, "returncode", -1)), str(getattr(result, "stdout", ""))
        if returncode is not None and rc != returncode:
            return CheckResult(False, f"{_node_name(node)}: `{shown}` exited with status {rc}"
                                      f" (expected {returncode})")
        if stdout_contains is not None and stdout_contains not in out:
            return CheckResult(False, f"{_node_name(node)}: `{shown}` did not print"
                                      f" {stdout_contains!r}")
        if stdout_lacks is not None and stdout_lacks in out:
            return CheckResult(False, f"{_node_name(node)}: `{shown}` printed"
                                      f" {stdout_lacks!r}, which it should not")
        return CheckResult(True, f"{_node_name(node)}: `{shown}` behaved as expected")

    @staticmethod
    def tcp(node: Any, host: str, port: int, *, expect: Literal["open", "closed"] = "open",
            timeout: float = 2.0) -> CheckResult:
        """A TCP connection from the node to ``host:port`` must succeed (or must not).

        Use ``expect="closed"`` to check the effect of a firewall rule: the connection
        is refused or times out.
        """
        script = ("import socket,sys\n"
                  f"s=socket.socket(socket.AF_INET6 if ':' in {host!r} else socket.AF_INET)\n"
                  f"s.settimeout({float(timeout)})\n"
                  "try:\n"
                  f"    s.connect(({host!r},{int(port)}));print('open')\n"
                  "except socket.timeout:\n    print('filtered')\n"
                  "except OSError as e:\n    print('refused' if e.errno==111 else 'error:'+str(e))\n")
        out = str(getattr(node.run(["python3", "-c", script]), "stdout", "")).strip() or "error"
        ok = (out == "open") == (expect == "open")
        text = f"TCP {_node_name(node)} -> {host}:{port}: {out}"
        return CheckResult(ok, text + ("" if ok else f" (expected {expect})"), {"state": out})

    @staticmethod
    def capture(packets: Any, contains: str | None = None, *, pattern: str | None = None,
                min_count: int = 1, absent: bool = False) -> CheckResult:
        """A capture holds packets whose layer stack contains ``contains`` (or matches
        the regex ``pattern``), e.g. ``"udp/vxlan(vni=42)/eth"`` or ``"gre/eth/ipv4/icmp"``.

        ``packets`` is a :class:`labkit.capture.Capture`, a pcap path, or a DataFrame
        from :func:`labkit.capture.decode.read_pcap` (with a ``stack`` column).
        """
        if (contains is None) == (pattern is None):
            raise ValueError("give exactly one of contains= or pattern=")
        if hasattr(packets, "table") and callable(packets.table):
            packets = packets.table()
        elif isinstance(packets, (str, Path)):
            from labkit.capture.decode import read_pcap  # lazy: only capture checks need it

            packets = read_pcap(packets)
        stacks: Iterable[str] = [str(s) for s in packets["stack"]]
        if contains is not None:
            hits = sum(contains in s for s in stacks)
            what = repr(contains)
        else:
            regex = re.compile(pattern or "")
            hits = sum(bool(regex.search(s)) for s in stacks)
            what = f"/{pattern}/"
        total = len(packets)
        ok = hits == 0 if absent else hits >= min_count
        text = f"{hits} of {total} captured packets match {what}"
        if not ok:
            text += " (expected none)" if absent else f" (expected at least {min_count})"
        return CheckResult(ok, text, {"matches": hits, "packets": total})

    @staticmethod
    def docker_network(name: str, *, subnet: str | None = None, present: bool = True,
                       client: Any = None) -> CheckResult:
        """A Docker network exists (optionally with ``subnet``), through the real engine."""
        try:
            import docker

            client = client or docker.from_env()
            nets = client.networks.list(names=[name])
        except Exception as exc:  # noqa: BLE001 - no engine is a failed check, not a crash
            return CheckResult(False, f"cannot reach the Docker engine: {_describe(exc)}")
        net = next((n for n in nets if n.name == name), None)
        if net is None or not present:
            return _present(net is not None, present, f"network {name}", "Docker")
        if subnet is not None:
            configs = (net.attrs.get("IPAM") or {}).get("Config") or []
            subnets = [c.get("Subnet") for c in configs]
            if subnet not in subnets:
                return CheckResult(False, f"Docker network {name} has subnets {subnets}"
                                          f" (expected {subnet})")
        return CheckResult(True, f"Docker network {name} exists"
                                 + (f" with subnet {subnet}" if subnet else ""))

    @staticmethod
    def container(name: str, *, running: bool = True, network: str | None = None,
                  client: Any = None) -> CheckResult:
        """A Docker container is running (or stopped), optionally attached to ``network``."""
        try:
            import docker

            client = client or docker.from_env()
            ctr = client.containers.get(name)
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, f"container {name}: {_describe(exc)}")
        state = ctr.attrs.get("State", {}).get("Status", "unknown")
        if (state == "running") != running:
            return CheckResult(False, f"container {name} is {state}"
                                      f" (expected {'running' if running else 'stopped'})")
        if network is not None:
            nets = sorted((ctr.attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())
            if network not in nets:
                return CheckResult(False, f"container {name} is on {nets} (expected {network})")
        return CheckResult(True, f"container {name} is {state}"
                                 + (f" on {network}" if network else ""))


checks = _Checks()
"""The checks: ``checks.ping``, ``checks.route``, ``checks.address``, ``checks.interface``,
``checks.neighbour``, ``checks.fdb``, ``checks.sysctl``, ``checks.command``,
``checks.tcp``, ``checks.capture``, ``checks.docker_network``, ``checks.container``,
``checks.expect``."""
