"""What every system's agent shares: its life as a lab process, its log, its loop, its
kernel calls.

An agent (``python -m labkit.flannel.agent ...``) runs inside its machine's network
namespace, started by :meth:`labkit.cluster.ClusterNode.spawn_agent`. This module gives it:

* :class:`GlogLogger`: log lines in glog's format, the one flanneld, felix and
  kube-proxy print (``I1130 09:12:03.123456    4242 main.go:523] message``), on stderr;
* :class:`Agent`: SIGTERM/SIGINT handling (a clean exit, kernel state left as the real
  daemon leaves it), interruptible sleeps;
* :class:`Reconciler`: the control loop: read the desired state, apply it whole, then
  follow a watch and apply each change, with a full resync every ``resync`` seconds
  (kube-proxy style: a missed event cannot leave stale state behind) and a ``tick``
  for periodic work (lease renewal); a lost store is retried, and said so in the log;
* command-line checks shared by every agent (:class:`Seconds` and
  :data:`positive_seconds`, :func:`ipv4`, :func:`etcd_endpoints`, :func:`machine_file`,
  :func:`whole_number`, :func:`checked_by`): a bad value stops the agent at once with one
  line and exit status 2, as ``argparse``'s own errors do, never a traceback, a busy loop
  or an endless retry; the notebook side checks its keyword arguments with the same
  rules (:meth:`Seconds.check`) and reads an agent that died at once with
  :func:`exited_at_startup`;
* kernel helpers that run the real tools in the agent's namespace (:func:`sh`,
  :func:`ip_batch`, :func:`bridge_batch`, :func:`iptables_restore`, :func:`ip_json`,
  :func:`write_file`,
  :func:`machine_path` for the machine's own ``/run`` files), raising
  :class:`AgentCommandFailed` with the command in the message.

Nothing here talks to the lab's supervisor: an agent is just a process in a namespace,
like the real daemon.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, Iterator, TextIO, TypeVar

from ..errors import AgentExited, CommandFailed, InvalidTopology, LabkitError

if TYPE_CHECKING:
    from ..process import Process

State = TypeVar("State")


class AgentCommandFailed(CommandFailed):
    """A kernel-programming command run by an agent failed; the message names it."""


# -- command-line arguments, checked before anything starts ---------------------------------

# etcd's largest lease TTL (MaxLeaseTTL, 9e9 s: about 285 years). No duration an agent is
# given makes sense beyond it, and bounding every one keeps them finite.
MAX_SECONDS = 9_000_000_000.0
_GO_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str, unit: float = 1.0) -> float:
    """A Go duration (``90s``, ``1h30m``, ``500ms``) or a bare number of ``unit`` seconds,
    as the real daemons' flags take them (flanneld's renew margin: a bare number is minutes)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) * unit
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration (e.g. 5s, 2m, 24h)")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class Seconds:
    """A duration an agent takes, with its bounds, checked the same way on both sides.

    * as an ``argparse`` type (``type=Seconds(...)``): a Go duration or a bare number of
      ``unit`` seconds; NaN, infinity, zero, negative or out-of-range values are refused
      (argparse then prints one line and exits with status 2);
    * :meth:`check`: the notebook-side keyword argument (a number of seconds, not a bool),
      refused with :class:`~labkit.errors.InvalidTopology` naming the value and a remedy;
    * :meth:`flag`: the value as a command-line duration the agent reads back exactly.
    """

    what: str
    least: float = 0.001            # the smallest Go unit read here (1ms); always > 0
    most: float = MAX_SECONDS
    unit: float = 1.0               # what a bare number on the command line counts
    whole: bool = False             # whole seconds only (etcd lease TTLs)

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value`` seconds (None if nothing)."""
        if not math.isfinite(value):
            return f"{self.what} {value!r} is not a finite number of seconds"
        if value <= 0 or value < self.least:
            return f"{self.what} of {value:g} s is too short: it must be at least {self.least:g} s"
        if value > self.most:
            return f"{self.what} of {value:g} s is too long: it must be at most {self.most:g} s"
        if self.whole and value != int(value):
            return f"{self.what} of {value:g} s is not a whole number of seconds"
        return None

    def __call__(self, text: str) -> float:
        value = duration(text, self.unit)
        wrong = self.problem(value)
        if wrong:
            raise argparse.ArgumentTypeError(wrong)
        return value

    def check(self, value: object, *, name: str, op: str, example: float = 30) -> float:
        """The notebook-side check of keyword ``name`` (seconds, as a number)."""
        remedy = f"give {name} in seconds, e.g. {name}={example:g}"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidTopology(f"{name}={value!r} is not a number of seconds", obj=repr(value),
                                  op=op, remedy=remedy)
        wrong = self.problem(float(value))
        if wrong:
            raise InvalidTopology(f"{name}={value!r}: {wrong}", obj=repr(value), op=op, remedy=remedy)
        return float(value)

    @staticmethod
    def flag(value: float) -> str:
        """``30`` -> ``"30s"``, ``0.5`` -> ``"0.5s"``: a duration the agent reads back exactly
        (within the bounds, Python prints these floats without an exponent)."""
        text = repr(float(value))
        return (text[:-2] if text.endswith(".0") else text) + "s"


positive_seconds = Seconds("duration")
"""The argparse type of a plain duration: finite, > 0, at most :data:`MAX_SECONDS`."""

RESYNC = Seconds("resync period", least=0.1)
"""A full resync's period: at least 0.1 s (less would re-read the store in a tight loop)."""


def whole_number(least: int, most: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from ``least`` to ``most`` (a port, a count)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} {text!r} is not a whole number") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"{what} {value} is out of range ({least} to {most})")
        return value
    parse.__name__ = what
    return parse


def ipv4(text: str) -> str:
    """An argparse type: one IPv4 address (``192.168.99.101``)."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address "
                                         "(e.g. 192.168.99.101)") from None


def etcd_endpoints(text: str) -> list[str]:
    """An argparse type: etcd endpoints, comma-separated as flanneld takes them, each a URL
    with its scheme (``http://192.168.99.100:2379,http://192.168.99.101:2379``)."""
    found = [e.strip() for e in str(text).split(",") if e.strip()]
    if not found:
        raise argparse.ArgumentTypeError("no etcd endpoint given (e.g. http://192.168.99.100:2379)")
    for endpoint in found:
        match = re.fullmatch(r"https?://([^/:]+|\[[0-9a-fA-F:]+\])(:(\d{1,5}))?/?", endpoint)
        if match is None or (match.group(3) and not 1 <= int(match.group(3)) <= 65535):
            raise argparse.ArgumentTypeError(
                f"etcd endpoint {endpoint!r} is not a URL such as http://192.168.99.100:2379 "
                "(scheme http:// or https://, host, port)")
    return found


def first_reachable(endpoints: list[str], timeout: float = 1.0) -> str:
    """The first endpoint whose etcd answers ``GET /version`` (v2 and v3 alike), else the
    first: the agent's own retries then say why it cannot be reached."""
    for endpoint in endpoints:
        try:
            with urllib.request.urlopen(endpoint.rstrip("/") + "/version", timeout=timeout):
                return endpoint
        except urllib.error.HTTPError:
            return endpoint                 # it answered: something serves HTTP there
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return endpoints[0]


def machine_file(text: str) -> str:
    """An argparse type: a machine's own absolute path (``/run/flannel/subnet.env``), which
    :func:`machine_path` places under the machine's state folder; no ``..`` to leave it."""
    if not text.startswith("/") or ".." in text.split("/"):
        raise argparse.ArgumentTypeError(f"{text!r} must be an absolute path without '..' "
                                         "(e.g. /run/flannel/subnet.env)")
    return text


def checked_by(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from one of labkit's checks: its :class:`LabkitError` (or
    ``ValueError``) becomes argparse's one-line error."""
    def parse(text: str) -> Any:
        try:
            return check(text)
        except LabkitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def agent_exited(proc: "Process", what: str, *, op: str, remedy: str, when: str = "") -> AgentExited:
    """The error for an agent that has already ended: its status and the last line it
    printed (an argparse usage error, a refused value, a fatal log line), not a timeout.
    ``when`` says when it ended, e.g. ``"at startup"``."""
    stderr, stdout = proc.stderr_text(), proc.stdout_text()
    lines = [l for l in (stderr or stdout).splitlines() if l.strip()]
    last = lines[-1].strip() if lines else "(it printed nothing)"
    ended = f"exited {when}" if when else "exited"
    return AgentExited(f"{what} {ended} (status {proc.returncode}): {last}",
                       obj=what, op=op, remedy=remedy)


def exited_at_startup(proc: "Process", what: str, *, op: str, remedy: str) -> AgentExited:
    """:func:`agent_exited` for an agent that ended before it did its job once."""
    return agent_exited(proc, what, op=op, remedy=remedy, when="at startup")


class GlogLogger:
    """glog-formatted lines: ``Lmmdd hh:mm:ss.uuuuuu threadid file:line] msg``.

    ``L`` is I (info), W (warning), E (error) or F (fatal). ``src`` is the file:line the
    real daemon logs that message from (e.g. ``"main.go:523"``), so lines can be
    compared with the real daemon's.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.pid = os.getpid()
        self._lock = threading.Lock()

    def _emit(self, level: str, msg: str, src: str) -> None:
        now = datetime.now()
        line = f"{level}{now:%m%d %H:%M:%S}.{now.microsecond:06d} {self.pid:>7} {src}] {msg}\n"
        with self._lock:
            stream = self.stream or sys.stderr
            stream.write(line)
            stream.flush()

    def info(self, msg: str, src: str = "main.go:1") -> None:
        self._emit("I", msg, src)

    def warning(self, msg: str, src: str = "main.go:1") -> None:
        self._emit("W", msg, src)

    def error(self, msg: str, src: str = "main.go:1") -> None:
        self._emit("E", msg, src)


class Agent:
    """The life of an agent process: stop on SIGTERM/SIGINT, sleep interruptibly.

    Subclasses implement :meth:`run` and check :attr:`stopping` (or use :meth:`sleep`,
    which returns False once the agent must stop).
    """

    def __init__(self, log: GlogLogger | None = None) -> None:
        self.log = log or GlogLogger()
        self.stop_event = threading.Event()
        self.signal_name: str | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        self.stop_event.set()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False (at once) if the agent was asked to stop."""
        return not self.stop_event.wait(max(0.0, seconds))

    def run(self) -> int:  # pragma: no cover - implemented by each system
        raise NotImplementedError

    def main(self) -> int:
        """Run, turning a signal into a clean exit status 0."""
        try:
            return self.run()
        except KeyboardInterrupt:
            return 0


class Reconciler(Generic[State]):
    """Read, apply, watch, apply; full resync every ``resync`` s; ``tick`` every ``tick_every``.

    * ``snapshot() -> (state, revision)``: read the whole desired state;
    * ``watch(revision, stop) -> iterator of events``: changes after ``revision``;
    * ``sync(state)``: make the kernel match ``state`` (idempotent);
    * ``handle(event) -> bool``: apply one change; return False to ask for a full
      snapshot + sync instead (the default when ``handle`` is None);
    * ``tick()``: periodic work (e.g. renew a lease), also called while the store is down;
    * ``unreachable(exc, attempt)``: told each time the store cannot be reached.
    """

    def __init__(self, agent: Agent, *, snapshot: Callable[[], tuple[State, int]],
                 watch: Callable[[int, threading.Event], Iterable[Any]],
                 sync: Callable[[State], None], handle: Callable[[Any], bool] | None = None,
                 resync: float = 30.0, tick: Callable[[], None] | None = None,
                 tick_every: float = 1.0, retry: float = 1.0,
                 unreachable: Callable[[Exception, int], None] | None = None) -> None:
        if not (math.isfinite(resync) and resync > 0 and math.isfinite(tick_every) and tick_every > 0):
            raise ValueError(f"resync ({resync!r}) and tick_every ({tick_every!r}) must be finite "
                             "and > 0 seconds (check them with RESYNC / positive_seconds)")
        self.agent = agent
        self.snapshot, self.watch, self.sync, self.handle = snapshot, watch, sync, handle
        self.resync, self.tick, self.tick_every, self.retry = resync, tick, tick_every, retry
        self.unreachable = unreachable
        self.events: "queue.Queue[Any]" = queue.Queue()
        self._watch_stop: threading.Event | None = None

    def _start_watch(self, revision: int) -> None:
        self._stop_watch()
        stop = self._watch_stop = threading.Event()

        def follow() -> None:
            try:
                for event in self.watch(revision, stop):
                    self.events.put(event)
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which resyncs
                if not stop.is_set():
                    self.events.put(exc)

        threading.Thread(target=follow, name="watch", daemon=True).start()

    def _stop_watch(self) -> None:
        if self._watch_stop is not None:
            self._watch_stop.set()
            self._watch_stop = None

    def _full(self) -> bool:
        attempt = 0
        while not self.agent.stopping:
            try:
                state, revision = self.snapshot()
                self.sync(state)
                self._start_watch(revision + 1)
                return True
            except ConnectionError as exc:
                attempt += 1
                if self.unreachable:
                    self.unreachable(exc, attempt)
                self._tick()
                self.agent.sleep(self.retry)
        return False

    def _tick(self) -> None:
        if self.tick is not None:
            self.tick()

    def run(self) -> None:
        """Loop until the agent is asked to stop."""
        if not self._full():
            return
        next_resync = time.monotonic() + self.resync
        next_tick = time.monotonic() + self.tick_every
        try:
            while not self.agent.stopping:
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + self.tick_every
                if now >= next_resync:
                    if not self._full():
                        return
                    next_resync = time.monotonic() + self.resync
                    continue
                timeout = max(0.0, min(next_tick, next_resync) - now)
                try:
                    event = self.events.get(timeout=min(timeout, 0.5))
                except queue.Empty:
                    continue
                if isinstance(event, Exception):
                    if isinstance(event, ConnectionError) and self.unreachable:
                        self.unreachable(event, 1)
                    self.agent.sleep(self.retry if isinstance(event, ConnectionError) else 0)
                    if not self._full():
                        return
                    next_resync = time.monotonic() + self.resync
                    continue
                if self.handle is None or not self.handle(event):
                    if not self._full():
                        return
        finally:
            self._stop_watch()


# -- programming the kernel of the agent's own namespace ------------------------------------

def sh(argv: list[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool (``ip``, ``bridge``, ``iptables`` ...) in this namespace.

    With ``check``, a failure raises :class:`AgentCommandFailed` naming the command and
    quoting the tool's own message.
    """
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise AgentCommandFailed(f"`{argv[0]}` is not installed", returncode=127, stdout="",
                                 stderr="", obj=argv[0], op=" ".join(argv),
                                 remedy="install it (labkit doctor lists the tools)") from None
    if check and done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        cmd = " ".join(argv) if input is None else f"{' '.join(argv)} <<< {input.strip()!r}"
        raise AgentCommandFailed(f"`{cmd}` failed with status {done.returncode}"
                                 + (f": {detail[-1]}" if detail else ""),
                                 returncode=done.returncode, stdout=done.stdout,
                                 stderr=done.stderr, obj=argv[0], op=cmd,
                                 remedy="read the tool's message")
    return done


def ip_batch(lines: Iterable[str], *, force: bool = True) -> None:
    """Several ``ip`` commands in one process: ``ip [-force] -batch -`` (one per line,
    without the leading ``ip``). With ``force`` every line is tried and the first error
    is raised at the end."""
    text = "\n".join(lines)
    if text:
        sh(["ip", *(["-force"] if force else []), "-batch", "-"], input=text + "\n")


def bridge_batch(lines: Iterable[str]) -> None:
    """Several ``bridge`` commands in one process: ``bridge -force -batch -``."""
    text = "\n".join(lines)
    if text:
        sh(["bridge", "-force", "-batch", "-"], input=text + "\n")


def ip_json(*args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` (or ``bridge -j`` when the first argument is ``"bridge"``), parsed."""
    argv = ["bridge", "-j", *args[1:]] if args and args[0] == "bridge" else ["ip", "-j", *args]
    out = sh(argv).stdout.strip()
    return json.loads(out) if out else []


def iptables_restore(rules: str, *, table_flush: bool = False) -> None:
    """Load rules with ``iptables-restore --noflush`` (``table_flush`` replaces whole tables)."""
    sh(["iptables-restore", *([] if table_flush else ["--noflush"])], input=rules)


def machine_path(path: str) -> str:
    """Where this machine's ``path`` (e.g. ``/run/flannel/subnet.env``) really is: under
    ``$LABKIT_STATE_DIR`` (set by ``ClusterNode.spawn_agent``), or ``path`` itself when
    the agent runs outside a cluster. A relative path, or one with ``..``, is refused
    (ValueError): it would leave the machine's folder (:func:`machine_file` checks flags)."""
    if not path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"{path!r} is not an absolute path without '..'")
    root = os.environ.get("LABKIT_STATE_DIR", "")
    return root + path if root and path.startswith("/") else path


def write_file(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``path`` atomically (a temporary file renamed into place), folders made."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def backoff(first: float = 0.5, most: float = 5.0) -> Iterator[float]:
    """Delays for retries: ``first``, doubling, at most ``most``."""
    delay = first
    while True:
        yield delay
        delay = min(most, delay * 2)
