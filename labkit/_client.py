"""The notebook side of the supervisor connection.

:class:`SupervisorClient` starts the supervisor through ``unshare`` (a Jupyter kernel is
multithreaded and cannot enter a new user namespace itself), sends requests and waits
for their replies. A reader thread matches replies to requests by id, so two threads
(a widget callback and a cell, say) can use one lab at once, and notices at once when
the supervisor is gone.

No call waits forever: each has a deadline of its own duration (a command's
``timeout``, a stop's ``grace``, a batch's size) plus :data:`CALL_MARGIN` seconds
(``LABKIT_CALL_TIMEOUT`` overrides it), and a supervisor found stopped (SIGSTOP, or
Ctrl-Z in the terminal that started it) is reported within :data:`STOPPED_GRACE`
seconds. Either ends in :class:`labkit.errors.LabUnresponsive` naming the process and
the remedy; the lab itself is left as it is, so it works again once the supervisor does.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from . import _protocol, errors


def _margin() -> float:
    try:
        return max(1.0, float(os.environ.get("LABKIT_CALL_TIMEOUT", "60")))
    except ValueError:
        return 60.0


CALL_MARGIN = _margin()   # seconds a call may take beyond its own duration (a loaded machine)
STOPPED_GRACE = 2.0       # seconds a stopped supervisor is given before calls fail
START_TIMEOUT = 120.0     # seconds for a new supervisor to say hello
PER_BATCH_STEP = 0.05     # seconds allowed per step of a batch, beyond the margin


def own_duration(op: str, args: dict[str, Any]) -> float | None:
    """How long operation ``op`` may rightly take by itself; None when it has no bound."""
    if op == "run":
        timeout = args.get("timeout")
        return None if timeout is None else float(timeout)
    if op == "stop":
        return float(args.get("grace") or 0.0)
    if op == "batch":
        return PER_BATCH_STEP * len(args.get("ops") or ())
    return 0.0


def _state(pid: int) -> str:
    """The one-letter scheduler state of ``pid`` ('' if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


class SupervisorClient:
    """A running supervisor and the socket to it."""

    def __init__(self, *, mounts: bool, sysctl: str, label: str, host: bool = False) -> None:
        self.label = label
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        if not os.path.exists(unshare):
            raise errors.ToolMissing("the `unshare` program (util-linux) is not installed",
                                     obj="unshare", op="start lab",
                                     remedy="install util-linux, then run `labkit doctor`")
        try:
            self._spawn(unshare, mounts=mounts, sysctl=sysctl, host=host)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN):
                raise errors.kernel_error(exc.errno, obj=repr(label), op="start lab") from None
            raise

    def _spawn(self, unshare: str, *, mounts: bool, sysctl: str, host: bool) -> None:
        """Start the supervisor and wait for its hello (OSError if this process cannot)."""
        label = self.label
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if host:
            # A view of the real machine (Docker lessons): the host's own user and network
            # namespaces, only a private PID namespace so the lab's processes die with it.
            argv = [unshare, "--pid", "--fork", "--kill-child"]
        else:
            argv = [unshare, "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork",
                    "--kill-child"]
        if not mounts and not host:
            argv.append("--propagation=unchanged")
        argv += [sys.executable, "-m", "labkit._supervisor", str(theirs.fileno()),
                 "--mounts" if mounts and not host else "--no-mounts", f"--sysctl={sysctl}"]
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
        # The supervisor's own diagnostics go to an unnamed file: a pipe nobody reads
        # could fill up and stall it.
        try:
            self._errfile = tempfile.TemporaryFile()
            try:
                self.process = subprocess.Popen(argv, pass_fds=[theirs.fileno()],
                                                stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL,
                                                stderr=self._errfile, env=env)
            except BaseException:
                self._errfile.close()
                raise
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self._lock = threading.Lock()
        self._next_id = 1
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._dead: str | None = None
        self._supervisor_pid: int | None = None
        self.sock.settimeout(START_TIMEOUT)
        try:
            hello = _protocol.recv(self.sock)
        except (_protocol.ConnectionClosed, _protocol.MalformedMessage, OSError):
            stderr = self._stderr()
            self.process.wait()
            self.sock.close()
            raise errors.NamespacesUnavailable(
                f"could not create the lab's private namespaces ({stderr or 'supervisor exited'})",
                obj=label, op="start lab",
                remedy="run `labkit doctor` to see what this host allows and how to fix it") from None
        if not hello.get("ok"):
            self.process.wait()
            self.sock.close()
            raise errors.from_wire(hello["error"])
        self.sock.settimeout(None)
        self.info: dict[str, Any] = hello["result"]
        self._reader = threading.Thread(target=self._read_loop, name=f"labkit-{label}",
                                        daemon=True)
        self._reader.start()

    def _stderr(self) -> str:
        """What the supervisor (or ``unshare``) printed: the reason it could not start."""
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._errfile.seek(0)
        return self._errfile.read().decode(errors="replace").strip()[-2000:]

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def supervisor_pid(self) -> int:
        """The supervisor's PID as this machine sees it (``unshare`` forks it as its child)."""
        if self._supervisor_pid is None:
            said = self.info.get("host_pid")
            if isinstance(said, int) and said > 0:
                self._supervisor_pid = said
                return said
            pid = self.process.pid
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as fh:
                    children = [int(c) for c in fh.read().split()]
            except OSError:
                children = []
            if not children:
                return pid  # not known (yet): watch unshare itself
            self._supervisor_pid = children[0]
        return self._supervisor_pid

    def _stopped(self) -> int | None:
        """The PID of whichever of unshare and the supervisor is stopped, if one is."""
        for pid in (self.supervisor_pid, self.process.pid):
            if _state(pid) in ("T", "t"):
                return pid
        return None

    def _read_loop(self) -> None:
        while True:
            try:
                msg = _protocol.recv(self.sock)
            except _protocol.MalformedMessage:
                continue  # the stream is still in step; nobody waits for a reply without an id
            except (_protocol.ConnectionClosed, OSError):
                break
            with self._lock:
                waiter = self._waiting.pop(msg.get("id", -1), None)
            if waiter is not None:
                waiter[1].append(msg)
                waiter[0].set()
        with self._lock:
            self._dead = self._dead or "the lab's supervisor process ended"
            pending = list(self._waiting.values())
            self._waiting.clear()
        for event, _ in pending:
            event.set()

    def call(self, op: str, /, **args: Any) -> Any:
        """Send one request and return its result, raising the error it reports.

        Raises :class:`labkit.errors.LabUnresponsive` when no reply comes within the
        operation's own duration plus :data:`CALL_MARGIN`, or while the supervisor is
        stopped for longer than :data:`STOPPED_GRACE`.
        """
        return self._call(op, args, CALL_MARGIN)

    def _call(self, op: str, args: dict[str, Any], margin: float) -> Any:
        event = threading.Event()
        box: list[Any] = []
        with self._lock:
            if self._dead is not None:
                raise errors.LabClosed(f"lab {self.label!r} is closed ({self._dead})",
                                       obj=self.label, op=op,
                                       remedy="create a new Lab() to continue")
            rid = self._next_id
            self._next_id += 1
            self._waiting[rid] = (event, box)
            try:
                _protocol.send(self.sock, {"id": rid, "op": op, "args": args})
            except (TypeError, ValueError) as exc:  # not JSON: nothing was sent
                self._waiting.pop(rid, None)
                raise errors.InvalidRequest(
                    f"an argument of {op!r} cannot be sent to the lab ({exc})", obj=op, op=op,
                    remedy="pass plain values: text, numbers, True/False, lists and dicts of them") from None
            except OSError:
                self._waiting.pop(rid, None)
                self._dead = "the lab's supervisor process ended"
                raise errors.LabClosed(f"lab {self.label!r} is closed ({self._dead})",
                                       obj=self.label, op=op,
                                       remedy="create a new Lab() to continue") from None
        self._wait(event, rid, op, own_duration(op, args), margin)
        if not box:
            raise errors.LabClosed(f"lab {self.label!r} is closed ({self._dead})", obj=self.label,
                                   op=op, remedy="create a new Lab() to continue")
        reply = box[0]
        if reply.get("ok"):
            return reply.get("result")
        raise errors.from_wire(reply["error"])

    def _wait(self, event: threading.Event, rid: int, op: str, own: float | None,
              margin: float) -> None:
        """Wait for request ``rid``'s reply; give up on a supervisor that cannot answer."""
        start = time.monotonic()
        deadline = None if own is None else start + own + margin
        stopped_since: float | None = None
        while not event.wait(0.25 if stopped_since is None else 0.1):
            now = time.monotonic()
            stopped = self._stopped()
            stopped_since = (stopped_since or now) if stopped else None
            late = deadline is not None and now >= deadline
            if not late and (stopped_since is None or now - stopped_since < STOPPED_GRACE):
                continue
            with self._lock:
                if self._waiting.pop(rid, None) is None:
                    return  # the reply arrived just now
            if stopped:
                raise errors.LabUnresponsive(
                    f"lab {self.label!r} cannot answer {op!r}: its supervisor process (pid "
                    f"{stopped}) is stopped (SIGSTOP, or Ctrl-Z in the terminal that started it)",
                    obj=self.label, op=op,
                    remedy=f"resume it with `kill -CONT {stopped}` and call again, or close the "
                           "lab (lab.close()) and create a new one")
            raise errors.LabUnresponsive(
                f"lab {self.label!r} did not answer {op!r} within {now - start:.0f} s (the "
                f"operation's own {own:g} s plus {margin:g} s); its supervisor is pid "
                f"{self.supervisor_pid}", obj=self.label, op=op,
                remedy="the machine may be overloaded: try again; if it keeps happening, close "
                       "the lab (lab.close()) and create a new one (LABKIT_CALL_TIMEOUT sets the "
                       "margin)")

    def close(self, timeout: float = 5.0) -> None:
        """Ask the supervisor to end, then make sure it has; idempotent."""
        if self._dead is None:
            try:
                self._call("shutdown", {}, timeout)
            except errors.LabkitError:
                pass
        with self._lock:
            self._dead = self._dead or "closed"
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        try:
            self.sock.close()
        except OSError:
            pass
        self._errfile.close()
