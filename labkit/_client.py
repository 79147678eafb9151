"""The notebook side of the supervisor connection.

:class:`SupervisorClient` starts the supervisor through ``unshare`` (a Jupyter kernel is
multithreaded and cannot enter a new user namespace itself), sends requests and waits
for their replies. A reader thread matches replies to requests by id, so two threads
(a widget callback and a cell, say) can use one lab at once, and notices at once when
the supervisor is gone.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any

from . import _protocol, errors


class SupervisorClient:
    """A running supervisor and the socket to it."""

    def __init__(self, *, mounts: bool, sysctl: str, label: str, host: bool = False) -> None:
        self.label = label
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        if not os.path.exists(unshare):
            raise errors.ToolMissing("the `unshare` program (util-linux) is not installed",
                                     obj="unshare", op="start lab",
                                     remedy="install util-linux, then run `labkit doctor`")
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
        self._errfile = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(argv, pass_fds=[theirs.fileno()],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=self._errfile, env=env)
        finally:
            theirs.close()
        self.sock = ours
        self._lock = threading.Lock()
        self._next_id = 1
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._dead: str | None = None
        try:
            hello = _protocol.recv(self.sock)
        except (_protocol.ConnectionClosed, OSError):
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

    def _read_loop(self) -> None:
        while True:
            try:
                msg = _protocol.recv(self.sock)
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

    def call(self, op: str, **args: Any) -> Any:
        """Send one request and return its result, raising the error it reports."""
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
            except OSError:
                self._waiting.pop(rid, None)
                self._dead = "the lab's supervisor process ended"
                raise errors.LabClosed(f"lab {self.label!r} is closed ({self._dead})",
                                       obj=self.label, op=op,
                                       remedy="create a new Lab() to continue") from None
        event.wait()
        if not box:
            raise errors.LabClosed(f"lab {self.label!r} is closed ({self._dead})", obj=self.label,
                                   op=op, remedy="create a new Lab() to continue")
        reply = box[0]
        if reply.get("ok"):
            return reply.get("result")
        raise errors.from_wire(reply["error"])

    def close(self, timeout: float = 5.0) -> None:
        """Ask the supervisor to end, then make sure it has; idempotent."""
        if self._dead is None:
            try:
                self.call("shutdown")
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
