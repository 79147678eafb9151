"""labkit.singleuser: a student's server as the init of its own PID namespace.

Stopping the launcher the way JupyterHub's spawner does (SIGINT/SIGTERM) reaches the
server; killing the launcher outright ends the server and everything below it, even
daemons that left their session (as lab processes and kernels do).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import wait_until
from labkit.singleuser import namespaces_work

pytestmark = pytest.mark.skipif(not namespaces_work(), reason="no user namespaces here")

SERVER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    marker, out = sys.argv[1], sys.argv[2]
    # a daemon in a session of its own, like a kernel, and one below it, like a lab
    subprocess.Popen(["sh", "-c", f"sleep {marker} & exec sleep {marker}"],
                     start_new_session=True)
    def stop(signum, frame):
        open(out, "w").write(f"{signum} pid {os.getpid()}")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    open(out + ".ready", "w").write("ready")
    while True:
        time.sleep(1)
""")


def _with_marker(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:2] == [b"sleep", marker.encode()]:
                found.append(int(entry))
    return found


def _start(tmp_path: Path, marker: str) -> tuple[subprocess.Popen[bytes], Path]:
    script, out = tmp_path / "server.py", tmp_path / "stopped"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, "-m", "labkit.singleuser", "--", sys.executable,
                             str(script), marker, str(out)], start_new_session=True)
    assert wait_until(lambda: Path(str(out) + ".ready").exists() and len(_with_marker(marker)) == 2,
                      timeout=60, step=0.1)
    return proc, out


def test_sigterm_reaches_the_server_which_is_pid_1(tmp_path: Path) -> None:
    marker = f"{3000 + os.getpid() % 1000}.1"
    proc, out = _start(tmp_path, marker)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert out.read_text() == f"{int(signal.SIGTERM)} pid 1"  # init of its namespace
    assert wait_until(lambda: not _with_marker(marker), timeout=30, step=0.1)


def test_killing_the_launcher_ends_everything_it_started(tmp_path: Path) -> None:
    marker = f"{3000 + os.getpid() % 1000}.2"
    proc, out = _start(tmp_path, marker)
    started = time.monotonic()
    proc.kill()
    proc.wait(30)
    assert wait_until(lambda: not _with_marker(marker), timeout=30, step=0.1), \
        f"left behind: {_with_marker(marker)}"
    assert time.monotonic() - started < 30 and not out.exists()


def test_usage_without_a_command() -> None:
    run = subprocess.run([sys.executable, "-m", "labkit.singleuser"], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 2 and "usage" in run.stderr
