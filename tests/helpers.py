"""Helpers shared by the tests: read the host's state from /proc and iproute2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path


# Interfaces the Docker engine makes and removes on its own schedule in the host's
# namespace; labs never create anything there, and the Docker tests check their own.
DOCKER_OWNED = re.compile(r"^(docker0|docker_gwbridge|br-[0-9a-f]{12}|veth[0-9a-f]{7})$")


def host_links() -> set[str]:
    """Names of the interfaces in this machine's own network namespace (Docker's aside)."""
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out) if not DOCKER_OWNED.match(link["ifname"])}


def host_mounts() -> set[str]:
    """This mount namespace's table, less the namespace mounts the Docker engine manages."""
    return {line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if "docker" not in line and "containerd" not in line}


def descendants(root: int) -> set[int]:
    """PIDs of every live process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cmdline(pid: int) -> str:
    """The command line of process ``pid`` ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_until(predicate, timeout: float = 5.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def lab_state(lab) -> dict[str, set[str]]:
    """Every node's interface names, to prove a failed call changed nothing."""
    return {name: {i.ifname for i in node.interfaces()} for name, node in lab.nodes.items()}


def kill_owner(owner, tree: set[int], timeout: float = 20.0) -> list[tuple[int, str]]:
    """SIGKILL a lab's owner process (a ``subprocess.Popen``); return the processes of
    ``tree`` still alive ``timeout`` seconds later (none, if the lab cleaned up)."""
    import signal

    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in tree), timeout=timeout)
    return [(p, cmdline(p)) for p in tree if os.path.exists(f"/proc/{p}")]


def usage_error(parse, argv: list[str], capsys) -> str:
    """Run an agent's argument parsing on ``argv``, which it must refuse as argparse does:
    exit status 2, no traceback. Returns the one error line (``prog: error: ...``)."""
    import pytest

    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2, f"{argv}: exit status {exited.value.code}"
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: " in err, err
    return err.strip().splitlines()[-1]
