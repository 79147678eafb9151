"""Long-running processes in a node (daemons, captures, iperf3 servers).

A :class:`Process` is a handle; the process itself belongs to the lab's supervisor and
is killed with the lab, whatever happens to the notebook.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING, Any

from . import validate
from .errors import CommandTimeout

if TYPE_CHECKING:
    from .node import Node


class Process:
    """A process started with :meth:`labkit.Node.spawn`."""

    def __init__(self, node: "Node", argv: list[str], pid: int) -> None:
        self.node = node
        self.argv = argv
        self.pid = pid
        self._final: dict[str, Any] | None = None

    def _status(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        status = self.node.lab._call("status", pid=self.pid)
        if not status["running"]:
            self._final = status
        return status

    @property
    def running(self) -> bool:
        return bool(self._status()["running"])

    @property
    def returncode(self) -> int | None:
        return self._status()["returncode"]

    def stdout_text(self) -> str:
        """Everything the process has printed so far (the last 8 MiB at most)."""
        return str(self._status()["stdout"])

    def stderr_text(self) -> str:
        return str(self._status()["stderr"])

    def signal(self, signum: "int | str" = signal.SIGTERM) -> None:
        """Send a signal: ``signal.SIGHUP``, ``1``, ``"HUP"`` or ``"SIGHUP"``. ``kill -HUP PID``."""
        self.node.lab._call("signal", pid=self.pid, signum=validate.signal_number(signum))

    def stop(self, grace: float = 2.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        validate.seconds(grace, what="grace", op="stop process", allow_none=False)
        if self._final is None:
            self._final = self.node.lab._call("stop", pid=self.pid, grace=grace)
        return self._final["returncode"]

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> int | None:
        """Wait until the process exits; raise :class:`CommandTimeout` after ``timeout``."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if end is not None and time.monotonic() > end:
                raise CommandTimeout(f"process {self} still running after {timeout} s",
                                     obj=str(self), op="wait",
                                     remedy="stop it with .stop(), or wait longer")
            time.sleep(poll)
        return self.returncode

    def wait_for_output(self, text: str, timeout: float = 5.0, poll: float = 0.02) -> str:
        """Wait until ``text`` appears on stdout or stderr (e.g. a daemon's "ready" line)."""
        end = time.monotonic() + timeout
        while True:
            status = self._status()
            if text in status["stdout"] or text in status["stderr"]:
                return str(status["stdout"])
            if not status["running"]:
                raise CommandTimeout(
                    f"process {self} exited with status {status['returncode']} before printing "
                    f"{text!r}: {(status['stderr'] or status['stdout']).strip()[-300:]}",
                    obj=str(self), op="wait for output")
            if time.monotonic() > end:
                raise CommandTimeout(f"process {self} did not print {text!r} within {timeout} s",
                                     obj=str(self), op="wait for output")
            time.sleep(poll)

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._final is None and not self.node.lab.closed:
            self.stop()

    def __repr__(self) -> str:
        return f"<Process {' '.join(self.argv)!r} on {self.node.name} pid={self.pid}>"
