"""Run a student's Jupyter server so that everything it starts ends with it.

JupyterHub's spawner starts one single-user server per student and, to stop or cull
it, signals that one process. The server's kernels are started in sessions of their
own, and each kernel's labs (supervisors, daemons, captures) hang below it: if the
server is killed rather than asked to stop, what it started can outlive it.

``python -m labkit.singleuser -- jupyterhub-singleuser [ARGS...]`` closes that gap the
way a lab closes its own: the server becomes the init of a new PID namespace (inside
a user namespace that maps the student's own uid to itself, and a mount namespace
with its own /proc, so ``ps`` shows the student only their own processes). When that
init ends, however it ends, the kernel kills every process in the namespace. This
launcher is the process the spawner sees: it passes SIGINT, SIGTERM and SIGHUP on to
the server (which then shuts its kernels, and so its labs, down cleanly) and exits
with the server's status; if it is killed itself, ``setpriv --pdeathsig`` and
``unshare --kill-child`` take the whole namespace with it.

Where the host refuses user namespaces to ordinary users, labs cannot run either:
the server then starts without the namespace and the launcher says so on stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["FORWARDED", "main", "namespace_command", "namespaces_work"]

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals the launcher passes on to the server."""

_UNSHARE = ["unshare", "--user", "--map-current-user", "--pid", "--fork", "--kill-child",
            "--mount", "--mount-proc"]


def namespace_command(argv: list[str]) -> list[str]:
    """``argv`` as the init of a new user + PID + mount namespace, killed with its parent."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *_UNSHARE, "--", *argv]


def namespaces_work() -> bool:
    """Whether this user may create the namespaces (a quick probe)."""
    try:
        probe = subprocess.run([*_UNSHARE, "--", "true"], capture_output=True, timeout=30,
                               check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _init_pid(unshare_pid: int) -> int | None:
    """The forked child of ``unshare``: the namespace's init (the server)."""
    try:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def main(argv: list[str] | None = None) -> int:
    """Start the server given after ``--`` and wait for it."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m labkit.singleuser -- jupyterhub-singleuser [ARGS...]",
              file=sys.stderr)
        return 2
    if not namespaces_work():
        print("labkit.singleuser: this host refuses user namespaces to ordinary users, so "
              "the server runs without its own PID namespace (and labs cannot run: "
              "`labkit doctor` says why)", file=sys.stderr, flush=True)
        os.execvp(args[0], args)
    proc = subprocess.Popen(namespace_command(args))

    def forward(signum: int, _frame: object) -> None:
        target = _init_pid(proc.pid)
        try:
            os.kill(target if target is not None else proc.pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    while True:
        try:
            status = proc.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
