"""A class on one JupyterHub: deploy/jupyterhub served to three student accounts.

JupyterHub (the configuration in deploy/jupyterhub, with a test authenticator in place
of PAM) serves three freshly made unprivileged accounts. Each logs in with headless
Chromium and runs the same notebook at the same time: a lab with the same name, the
same nodes and the same addresses, plus one address that only that student adds. Each
must see its own lab only, the labs must run as the student (rootless bubbles, in the
student's own PID namespace), and the host's network must not change. Then one server
is stopped through the hub's REST API and the other two are left to the idle culler;
afterwards no process of any student may be left, and the hub stops cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import host_links, wait_until
from hub import CHROMIUM, CHROMIUM_ARGS, ClassHub, login, open_notebook, processes_of, run_all

STUDENTS = ["lkhub1", "lkhub2", "lkhub3"]
NOTEBOOK = "same-lab.ipynb"
CULL_TIMEOUT = 20

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="making student accounts needs root"),
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
]


def same_lab_notebook() -> str:
    """Every student's notebook: identical lab, nodes and addresses, one address of their own."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        new_markdown_cell("Everyone in the class builds **the same lab** at the same time."),
        new_code_cell(
            "import json, os\n"
            "from labkit import Lab\n"
            "me = os.environ['JUPYTERHUB_USER']\n"
            "lab = Lab('class-lab')\n"
            "c1, c2 = lab.add_host('c1'), lab.add_host('c2')\n"
            "lab.link(c1, c2, names=('eth0', 'eth0'))\n"
            "c1.add_address('eth0', '10.0.0.1/24')\n"
            "c2.add_address('eth0', '10.0.0.2/24')\n"
            "c1.add_address('eth0', f'10.99.0.{me[-1]}/32')   # only this student's\n"
            "import time   # on a busy machine the kernel may take a moment to declare the\n"
            "for _ in range(300):   # veth ends UP (until then it drops what is sent)\n"
            "    if all(i.operstate == 'UP' for n in (c1, c2) for i in n.interfaces()\n"
            "           if i.ifname == 'eth0'):\n"
            "        break\n"
            "    time.sleep(0.1)\n"
            "# The kernel's ARP table is shared by every namespace on the machine; when other\n"
            "# work has filled it (dmesg: neighbor table overflow), a fresh lab's first\n"
            "# pings answer Destination Host Unreachable until garbage collection runs\n"
            "# (deploy/jupyterhub/sysctl-labkit-hub.conf raises the limits). Keep every\n"
            "# attempt, so the test shows how many it took.\n"
            "attempts = []\n"
            "for _ in range(3):\n"
            "    ping = c1.ping('10.0.0.2', count=2, wait=10)\n"
            "    attempts.append(ping.received)\n"
            "    if ping.received == 2:\n"
            "        break"),
        new_code_cell(
            "mine = sorted(a.local for a in c1.addresses() if a.local.startswith('10.99.'))\n"
            "print('RESULT ' + json.dumps({'user': me, 'lab': lab.name, 'marks': mine,\n"
            "      'replies': ping.received, 'supervisor': lab.supervisor_pid,\n"
            "      'uid': os.getuid(), 'pid': os.getpid(), 'ping': ping.raw[-600:],\n"
            "      'attempts': attempts}))"),
    ]
    return nbformat.writes(nb)


def _result(page) -> dict:
    output = page.locator(".jp-OutputArea-output", has_text="RESULT ")
    output.first.wait_for(timeout=180_000)
    line = next(x for x in output.first.inner_text().splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _arp_table() -> str:
    """How full the machine-wide ARP table is (it explains failed first pings)."""
    first = Path("/proc/net/stat/arp_cache").read_text().splitlines()[1].split()
    limit = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3").read_text().strip()
    return f"ARP table: {int(first[0], 16)} entries, limit {limit}, " \
           f"{int(first[12], 16)} times full since boot"


def _pid_ns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def _cmd(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_three_students_same_lab_then_stop_and_cull(tmp_path: Path) -> None:
    if shutil.which("configurable-http-proxy") is None:
        pytest.fail("configurable-http-proxy is missing: run deploy/jupyterhub/install-proxy.sh")
    from playwright.sync_api import sync_playwright

    links = host_links()
    hub = ClassHub(tmp_path, STUDENTS, cull_timeout=CULL_TIMEOUT, cull_every=5)
    try:
        hub.start()
        for user in STUDENTS:
            hub.give(user, NOTEBOOK, same_lab_notebook())
        uids = {u: hub.uid(u) for u in STUDENTS}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            try:
                pages = {}
                for user in STUDENTS:  # one browser context (own cookies) per student
                    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                    login(page, hub.base, user)
                    open_notebook(page, hub.base, user, NOTEBOOK)
                    pages[user] = page
                for page in pages.values():  # all three at once
                    run_all(page)
                results = {user: _result(page) for user, page in pages.items()}

                # each sees only its own lab: same name, same addresses, its own mark only
                for n, user in enumerate(STUDENTS, 1):
                    got = results[user]
                    assert got["user"] == user and got["lab"] == "class-lab"
                    assert got["marks"] == [f"10.99.0.{n}"], got
                    assert got["replies"] == 2, (got["attempts"], got["ping"])
                    if len(got["attempts"]) > 1:
                        print(f"{user}: ping needed {len(got['attempts'])} attempts "
                              f"{got['attempts']}; {_arp_table()}")
                    assert got["uid"] == uids[user]  # an unprivileged account, not root
                # all three labs are up at this moment, as the students, apart: only the
                # launcher and unshare sit in the host's PID namespace; the server, its
                # kernels and labs live in namespaces of their own, one set per student
                host_ns, theirs = _pid_ns(os.getpid()), []
                for user in STUDENTS:
                    mine = processes_of(uids[user])
                    outside = sorted(_cmd(p) for p in mine if _pid_ns(p) == host_ns)
                    assert len(outside) == 2 and "labkit.singleuser" in outside[0] \
                        and outside[1].startswith("unshare"), outside
                    inside = {_pid_ns(p) for p in mine} - {host_ns}
                    assert len(mine) - 2 >= 3 and inside, (user, mine)  # server, kernel, lab
                    theirs.append(inside)
                assert not (theirs[0] & theirs[1] or theirs[0] & theirs[2]
                            or theirs[1] & theirs[2])
                assert host_links() == links  # the host's network is untouched
            finally:
                browser.close()

        # stop one server by the REST API; the idle culler ends the other two
        hub.stop_server(STUDENTS[0])
        assert wait_until(lambda: hub.server(STUDENTS[0]) is None, timeout=60, step=0.5), \
            hub.log()
        assert wait_until(lambda: not processes_of(uids[STUDENTS[0]]), timeout=30, step=0.5)
        started = time.monotonic()
        for user in STUDENTS[1:]:
            assert wait_until(lambda u=user: hub.server(u) is None,
                              timeout=CULL_TIMEOUT * 6, step=1), hub.log()
        assert time.monotonic() - started < CULL_TIMEOUT * 6
        log = hub.log(200_000)
        for user in STUDENTS[1:]:
            assert f"Culling server {user}" in log, log[-3000:]
        # nothing of any student is left: no server, kernel, lab supervisor or daemon
        for user in STUDENTS:
            assert wait_until(lambda u=user: not processes_of(uids[u]), timeout=30, step=0.5), \
                f"{user} still has processes {processes_of(uids[user])}"
        assert host_links() == links
    finally:
        hub.close()
    assert hub.proc is not None and hub.proc.returncode is not None
