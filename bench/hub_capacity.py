"""What one student costs on a class JupyterHub, and how many fit on a node.

Run as root (it makes throwaway student accounts), on demand:

    python bench/hub_capacity.py [--students 1 3] [--notebook 07-comparing-the-four-scenarios]

For each class size it starts deploy/jupyterhub's hub (test authenticator), logs every
student in with headless Chromium at once, runs the course's heaviest notebook in all
their servers at the same time, and samples every student's processes (by uid) twice
a second: peak proportional set size (PSS: shared libraries split between the
students who map them), peak number of processes, time from login to a ready
server, time to run the notebook, and the memory of an idle server after it. It also
reports the hub's and proxy's own memory, and the capacity of a 2-core / 8 GB node
from those numbers. Timings on a loaded machine say more as ratios between the
class sizes (same process tree, one run after the other) than as absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hub import (CHROMIUM, CHROMIUM_ARGS, ClassHub, login, open_notebook,  # noqa: E402
                 processes_of, run_all)
NODE_GB, NODE_CORES, SYSTEM_GB = 8, 2, 1.0
"""The node of the capacity table, and what its OS and the hub keep for themselves."""


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def reaped_cpu_s(pid: int) -> float:
    """CPU time of the children ``pid`` has waited for (cutime + cstime), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak PSS and peak process count of one uid, sampled five times a second."""

    def __init__(self, uid: int) -> None:
        super().__init__(daemon=True)
        self.uid = uid
        self.peak_kib = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = processes_of(self.uid)
            self.peak_procs = max(self.peak_procs, len(pids))
            self.peak_kib = max(self.peak_kib, sum(pss_kib(p) for p in pids))
            self.stop.wait(0.2)


def one_class(size: int, notebook: str) -> dict:
    from playwright.sync_api import sync_playwright

    users = [f"lkcap{i}" for i in range(1, size + 1)]
    work = Path(tempfile.mkdtemp(prefix="labkit-capacity-"))
    hub = ClassHub(work, users)
    try:
        hub.start()
        hub_kib = sum(pss_kib(p) for p in [hub.proc.pid, *_children(hub.proc.pid)])
        samplers = {u: Sampler(hub.uid(u)) for u in users}
        for s in samplers.values():
            s.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            pages, spawn_s = {}, {}
            for user in users:
                page = browser.new_context().new_page()
                started = time.monotonic()
                login(page, hub.base, user, timeout_ms=300_000)
                spawn_s[user] = time.monotonic() - started
                pages[user] = page
            for user, page in pages.items():
                open_notebook(page, hub.base, user, f"course/notebooks/{notebook}.ipynb",
                              timeout_ms=300_000)
            started = time.monotonic()
            for page in pages.values():
                run_all(page)
            time.sleep(3)  # let every notebook start before asking whether it is idle
            run_s = {}
            pending = set(users)
            while pending and time.monotonic() - started < 1800:
                for user in list(pending):
                    if pages[user].evaluate(_IDLE):
                        run_s[user] = time.monotonic() - started
                        pending.discard(user)
                time.sleep(1)
            errors = {u: pages[u].locator(".jp-OutputArea-output[data-mime-type="
                                          "'application/vnd.jupyter.stderr']").count()
                      for u in users}
            time.sleep(5)
            idle_kib = {u: sum(pss_kib(p) for p in processes_of(hub.uid(u))) for u in users}
            browser.close()
        for s in samplers.values():
            s.stop.set()
            s.join()
        # Every student process ends up reaped, up the chain, by the hub: the hub's
        # children CPU time after stopping the servers is the class's whole CPU time.
        cpu_before = reaped_cpu_s(hub.proc.pid)
        for user in users:
            hub.stop_server(user)
        deadline = time.monotonic() + 120
        while any(hub.server(u) for u in users) and time.monotonic() < deadline:
            time.sleep(0.5)
        cpu_each = (reaped_cpu_s(hub.proc.pid) - cpu_before) / size
        return {
            "students": size, "hub_and_proxy_mib": hub_kib / 1024,
            "per_student": {u: {
                "spawn_s": round(spawn_s[u], 1), "notebook_s": round(run_s.get(u, -1), 1),
                "peak_pss_mib": round(samplers[u].peak_kib / 1024),
                "idle_pss_mib": round(idle_kib[u] / 1024),
                "peak_processes": samplers[u].peak_procs,
                "cpu_s": round(cpu_each, 1), "error_outputs": errors[u]}
                for u in users},
        }
    finally:
        hub.close()
        shutil.rmtree(work, ignore_errors=True)


_IDLE = ("() => { const w = window.jupyterapp.shell.currentWidget;"
         " const k = w && w.sessionContext.session && w.sessionContext.session.kernel;"
         " const busy = [...document.querySelectorAll('.jp-InputArea-prompt')]"
         "   .some(p => p.textContent.includes('*'));"
         " return k && k.status === 'idle' && !busy; }")


def _children(pid: int) -> list[int]:
    from helpers import descendants

    return sorted(descendants(pid))


def capacity(result: dict) -> dict:
    """Students per 2-core / 8 GB node from one class's measurements."""
    rows = result["per_student"].values()
    peak = max(r["peak_pss_mib"] for r in rows)
    idle = max(r["idle_pss_mib"] for r in rows)
    cpu = max(r["cpu_s"] for r in rows)
    run = max(r["notebook_s"] for r in rows)
    budget = (NODE_GB - SYSTEM_GB) * 1024 - result["hub_and_proxy_mib"]
    return {
        "all running the heaviest notebook (memory)": int(budget // peak),
        "logged in, labs idle (memory)": int(budget // idle),
        "running it at the same moment without slowing down (CPU)":
            max(1, int(NODE_CORES * run // max(cpu, 0.1))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--notebook", default="07-comparing-the-four-scenarios")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: it creates student accounts", file=sys.stderr)
        return 2
    results = []
    for size in args.students:
        result = one_class(size, args.notebook)
        result["node_capacity"] = capacity(result)
        results.append(result)
        print(json.dumps(result, indent=1), flush=True)
    if len(results) > 1:
        first, last = results[0], results[-1]
        mean = lambda r, k: sum(x[k] for x in r["per_student"].values()) / r["students"]
        print(f"notebook time, {last['students']} students at once vs 1: "
              f"{mean(last, 'notebook_s') / mean(first, 'notebook_s'):.2f}x; "
              f"peak PSS per student: {mean(last, 'peak_pss_mib') / mean(first, 'peak_pss_mib'):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
