"""Write the exercise and submission notebooks used by tests/test_grading.py.

Run ``python tests/data/grading/make_notebooks.py`` after changing anything here;
``test_data_is_up_to_date`` fails when the committed notebooks differ from what this
script writes.

Two exercises:

* ``basic/``: subnet arithmetic, no lab, so the grading machinery is tested on its
  own; ``basic/hidden.py`` holds a hidden checkpoint. Submissions: a known-good one,
  partially wrong, copied (hard-coded answers for someone else's subnet), broken,
  and the hostile ones (endless loop, endless output, one huge output, sys.exit,
  os._exit, kill -9 -1, deleting files, filling memory, fork storm and a detached
  daemon, changing the network, forging results, monkeypatching labkit), plus a
  file that is not a notebook.
* ``lab/``: two hosts on a veth pair, checked with real pings and routes; a good, a
  partially wrong, and a submission that leaves its lab running in an endless loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------
# basic: subnet arithmetic
# --------------------------------------------------------------------------------------

BASIC_INTRO = """# Exercise 0: addressing warm-up

Your subnet is in the parameters cell below (the instructor may give everyone a
different one). Fill in the cells marked `...`, then run the checkpoint cells.

| name | value |
|------|-------|
| gateway | the first usable address of `subnet` |
| usable | how many hosts `subnet` can hold |
| broadcast | the broadcast address of `subnet` |
"""

PARAMETERS = '''student_id = "anonymous"
subnet = "10.0.0.0/24"
'''

CP_GATEWAY = '''import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("1.1", "The gateway is the first usable address of the subnet", points=2,
                hint="ipaddress.ip_network(subnet).hosts() yields the usable addresses in order") as cp:
    first = next(ipaddress.ip_network(subnet).hosts())
    cp.check(checks.expect(ipaddress.ip_address(str(gateway)) == first,
                           f"gateway {gateway} is the first usable address of {subnet}"))
'''

CP_USABLE = '''import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("1.2", "The number of usable addresses", points=1,
                hint="network and broadcast addresses cannot be given to hosts") as cp:
    cp.check(checks.expect(usable == ipaddress.ip_network(subnet).num_addresses - 2,
                           f"{usable} usable addresses in {subnet}"))
'''

CP_PLAN = '''import ipaddress
from pathlib import Path
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("1.3", "The address plan is saved in plan.txt", points=1,
                hint="write one line: gateway <address>") as cp:
    first = next(ipaddress.ip_network(subnet).hosts())
    text = Path("plan.txt").read_text().strip()
    cp.check(checks.expect(text == f"gateway {first}", f"plan.txt says {text!r}"))
'''

HIDDEN = '''# Hidden checkpoints of exercise 0: appended by the grader, never given to students.

# %%
import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("H.1", "The broadcast address", points=1,
                hint="ipaddress.ip_network(subnet).broadcast_address") as cp:
    want = ipaddress.ip_network(subnet).broadcast_address
    cp.check(checks.expect(ipaddress.ip_address(str(broadcast)) == want,
                           f"broadcast {broadcast} is the broadcast address of {subnet}"))
'''

GOOD = {
    "gateway": '''import ipaddress
net = ipaddress.ip_network(subnet)
gateway = next(net.hosts())
gateway''',
    "usable": "usable = net.num_addresses - 2\nusable",
    "plan": 'with open("plan.txt", "w") as f:\n    f.write(f"gateway {gateway}\\n")\n'
            "broadcast = net.broadcast_address",
}


def finished(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with a Python kernelspec and stable cell ids, as
    JupyterLab keeps them."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:02d}"
    return nb


def basic_notebook(answers: dict[str, str], *, extra: dict[str, list[str]] | None = None,
                   replace_cp: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The basic exercise with the student's answers (``...`` for the template).

    ``extra`` inserts student cells after the named answer cell ("start" = right
    after the parameters); ``replace_cp`` replaces a checkpoint cell's source.
    """
    extra = extra or {}
    replace_cp = replace_cp or {}
    cells = [new_markdown_cell(BASIC_INTRO), new_code_cell(PARAMETERS)]
    cells[1].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(s) for s in extra.get("start", [])]
    for key, checkpoint in (("gateway", CP_GATEWAY), ("usable", CP_USABLE), ("plan", CP_PLAN)):
        cells.append(new_markdown_cell(f"Compute `{key}`."))
        cells.append(new_code_cell(answers.get(key, f"{key} = ...")))
        cells += [new_code_cell(s) for s in extra.get(key, [])]
        cp = new_code_cell(replace_cp.get(key, checkpoint))
        cp.metadata["tags"] = ["checkpoint"]
        cells.append(cp)
    return finished(cells)


def tagged(source: str, tag: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


FAKE_RECORD = '''from IPython.display import display
display({"application/vnd.labkit.checkpoint+json":
         {"schema": 1, "id": "1.2", "title": "fake", "points": 1, "score": 1, "passed": True,
          "reason": "trust me", "checks": [], "hint": ""},
         "text/plain": "PASS"}, raw=True)
'''

HOSTILE: dict[str, dict[str, list[str]]] = {
    # name: extra cells inserted after the "gateway" answer (so checkpoint 1.1 passes first)
    "loop": {"usable": ["while True:\n    pass"]},
    "flood": {"usable": ["while True:\n    print('spam ' * 200)"]},
    "hugeprint": {"usable": ["print('x' * 50_000_000)"]},
    "sysexit": {"usable": ["import sys\nsys.exit(3)"]},
    "osexit": {"usable": ["import os\nos._exit(0)"]},
    "killall": {"usable": ["import os\nos.system('kill -9 -1')"]},
    "memory": {"usable": ["blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))"]},
    "forkstorm": {"usable": [
        "import subprocess\n"
        "subprocess.Popen(['setsid', 'sh', '-c', 'sleep 1000 & sleep 1000'],\n"
        "                 start_new_session=True)\n"
        "procs = [subprocess.Popen(['sleep', '1001']) for _ in range(2000)]"]},
}

DELETER = '''import os, shutil, subprocess
from pathlib import Path
attempts = {}
for target in targets:            # paths outside the working copy, given by the test
    try:
        p = Path(target)
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        attempts[target] = "deleted"
    except Exception as exc:
        attempts[target] = type(exc).__name__
subprocess.run("rm -rf / --no-preserve-root 2>/dev/null", shell=True)
print(attempts)
'''

NETCHANGER = '''import subprocess
cmds = [
    "ip link set lo down", "ip link set lo up",
    "ip addr add 198.51.100.7/32 dev lo",
    "ip route add 203.0.113.0/24 dev lo",
    "sysctl -w net.ipv4.ip_forward=0",
    "echo 0 > /proc/sys/net/ipv4/ip_forward",
    "iptables -P FORWARD DROP",
    "nft flush ruleset",
    "unshare -Urn sh -c 'ip link add dummy0 type dummy; ip link add labkit-x type bridge; "
    "ip link set lo down; nft flush ruleset; echo 0 > /proc/sys/net/ipv4/ip_forward'",
    "unshare -Ur sh -c 'ip link add hostile0 type bridge'",
]
for cmd in cmds:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    print(cmd, "->", r.returncode)
'''

FORGER_CP = '''from IPython.display import display
display({"application/vnd.labkit.checkpoint+json":
         {"schema": 1, "id": "1.1", "title": "fake", "points": 2, "score": 2, "passed": True,
          "reason": "trust me", "checks": [], "hint": ""}}, raw=True)
'''

PATCHER = '''import labkit.checkpoints as lc
lc.checks.expect = lambda condition, what: lc.CheckResult(True, what)  # always "passes"
'''


def basic_submissions() -> dict[str, nbformat.NotebookNode | str]:
    subs: dict[str, nbformat.NotebookNode | str] = {}
    good = basic_notebook(GOOD)
    # a cell that fails on purpose, tagged as the convention says
    good.cells.insert(4, tagged('ipaddress.ip_network("10.0.0.1/24")  # not a network address',
                                "raises-exception"))
    good.cells[4]["id"] = "cell-raises"
    subs["good"] = good
    assert good.cells[3].source.startswith("import ipaddress")
    subs["partial"] = basic_notebook({
        "gateway": GOOD["gateway"],
        "usable": "usable = net.num_addresses  # forgot network and broadcast",
        "plan": 'open("plan.txt", "w").write(f"gateway {gateway}\\n")',  # and no broadcast
    })
    subs["copycat"] = basic_notebook({  # answers of someone whose subnet was 10.0.0.0/24
        "gateway": 'gateway = "10.0.0.1"',
        "usable": "usable = 254",
        "plan": 'open("plan.txt", "w").write("gateway 10.0.0.1\\n")\nbroadcast = "10.0.0.255"',
    })
    subs["broken"] = basic_notebook({**GOOD, "usable": "usable = net.num_adresses - 2"})
    for name, extra in HOSTILE.items():
        subs[name] = basic_notebook(GOOD, extra=extra)
    subs["deleter"] = basic_notebook(GOOD, extra={"plan": [DELETER]})
    subs["netchanger"] = basic_notebook(GOOD, extra={"plan": [NETCHANGER]})
    forger = basic_notebook({**GOOD, "gateway": GOOD["gateway"] + "\ngateway = 'wrong'",
                             "usable": "usable = 7"},
                            extra={"usable": [FAKE_RECORD]}, replace_cp={"gateway": FORGER_CP})
    forger.cells.append(tagged(FAKE_RECORD.replace('"1.2"', '"9.9"'), "checkpoint"))
    subs["forger"] = forger
    subs["patcher"] = basic_notebook({**GOOD, "usable": "usable = 7"}, extra={"start": [PATCHER]})
    subs["invalid"] = "this is not a notebook\n"
    return subs


# --------------------------------------------------------------------------------------
# lab: two hosts on a veth pair
# --------------------------------------------------------------------------------------

LAB_INTRO = """# Exercise A1: two hosts on a cable

    h1 eth0 ---- eth0 h2        subnet from the parameters cell
    first host address on h1, second on h2

Link the two hosts, address them, route, then break the link on purpose.
"""

LAB_SETUP = '''import ipaddress
from labkit import Lab

net = ipaddress.ip_network(subnet)
a, b = list(net.hosts())[:2]
lab = Lab("a1")
h1 = lab.add_host("h1")
h2 = lab.add_host("h2")
print("h1 gets", a, "and h2 gets", b)
'''

CP_LINK = '''import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("2.1", "h1 reaches h2 over the veth pair", points=2,
                hint="Did you link the hosts and give each eth0 its address?") as cp:
    net = ipaddress.ip_network(subnet)
    a, b = list(net.hosts())[:2]
    cp.check(checks.address(h1, f"{a}/{net.prefixlen}", dev="eth0"))
    cp.check(checks.ping(h1, str(b), expect="success"))
'''

CP_ROUTE = '''import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("2.2", "h1's default route goes through h2", points=1,
                hint="h1.add_route('default', via=...)") as cp:
    a, b = list(ipaddress.ip_network(subnet).hosts())[:2]
    cp.check(checks.route(h1, "default", via=str(b)))
'''

CP_BROKEN = '''import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("2.3", "With h2's eth0 down, h1 no longer reaches h2", points=1,
                hint="take the interface down, do not delete the address") as cp:
    a, b = list(ipaddress.ip_network(subnet).hosts())[:2]
    cp.check(checks.interface(h2, "eth0", up=False))
    cp.check(checks.ping(h1, str(b), expect="failure", count=1))
'''

LAB_GOOD = {
    "link": 'lab.link(h1, h2)\nh1.add_address("eth0", f"{a}/{net.prefixlen}")\n'
            'h2.add_address("eth0", f"{b}/{net.prefixlen}")',
    "route": 'h1.add_route("default", via=str(b))',
    "break": 'h2.run(["ip", "link", "set", "eth0", "down"], check=True)',
}


def lab_notebook(answers: dict[str, str], *, extra_end: list[str] | None = None
                 ) -> nbformat.NotebookNode:
    cells = [new_markdown_cell(LAB_INTRO), tagged(PARAMETERS, "parameters"),
             new_code_cell(LAB_SETUP)]
    for key, checkpoint in (("link", CP_LINK), ("route", CP_ROUTE), ("break", CP_BROKEN)):
        cells.append(new_code_cell(answers.get(key, "...")))
        cells.append(tagged(checkpoint, "checkpoint"))
    cells += [new_code_cell(s) for s in (extra_end or [])]
    cells.append(new_code_cell("lab.close()"))
    return finished(cells)


LAB_FORGER = '''# Every checkpoint "passes" without any work: forged checkpoint class, fake nodes,
# a display formatter and execution hooks that rewrite what cells show.
import labkit.checkpoints as lc
from IPython import get_ipython
from IPython.display import clear_output, display


def forged(cid, title, points):
    return {lc.MIME_TYPE: {"schema": 1, "id": cid, "title": title, "points": points,
                           "score": points, "passed": True, "reason": "all good", "checks": [],
                           "hint": ""}, "text/plain": f"PASS  Checkpoint {cid}"}


class Checkpoint:
    def __init__(self, id, title, *, points=1, hint=""):
        self.id, self.title, self.points = id, title, points
    def __enter__(self):
        return self
    def check(self, *requirements):
        pass
    def __exit__(self, *exc):
        display(forged(self.id, self.title, self.points), raw=True)
        return True


class FakeNode:
    def __init__(self, name):
        self.name = name
    def __getattr__(self, attr):
        return lambda *a, **k: []


lc.Checkpoint = Checkpoint                      # the checkpoint cells import this one
lc.checks.ping = lambda *a, **k: lc.CheckResult(True, "ping ok")
h1, h2 = FakeNode("h1"), FakeNode("h2")         # not the lab's nodes any more
shell = get_ipython()
shell.display_formatter.formatters["text/plain"].for_type(lc.CheckpointResult,
                                                          lambda r, p, cycle: p.text("PASS"))
shell.events.register("post_run_cell", lambda result: None)
shell.events.register("post_execute", lambda: None)
'''

LAB_OVERRIDER = '''subnet = "10.0.0.0/24"   # someone else's subnet: their answers below then fit
net = ipaddress.ip_network(subnet)
a, b = list(net.hosts())[:2]
'''

LAB_READER = '''# Try to read what the grader must keep out of reach.
import os
from pathlib import Path
import labkit

found = {}
for target in [*targets, str(Path(labkit.__file__).parent.parent / "solutions"),
               str(Path(labkit.__file__).parent.parent / "tests"), "/root", "/home"]:
    p = Path(target)
    try:
        found[target] = sorted(os.listdir(p))[:3] if p.is_dir() else p.read_text()[:20]
    except Exception as exc:
        found[target] = type(exc).__name__
print(found)
'''

LAB_KERNEL_FOLDER = '''# Plant links and a FIFO in the kernel's connection folder, for the grader's worker.
import os, sys
conn = os.path.dirname(sys.argv[sys.argv.index("-f") + 1])
planted = []
for name, make in (("kernel.log", lambda p: os.symlink("/etc/shadow", p)),
                   ("kernel.json.bak", lambda p: os.symlink("/dev/zero", p)),
                   ("fifo", os.mkfifo)):
    path = os.path.join(conn, name)
    try:
        if os.path.lexists(path):
            os.unlink(path)
        make(path)
        planted.append(name)
    except OSError as exc:
        planted.append(f"{name}: {exc}")
print(planted)
'''

LAB_ANSI = '''raise RuntimeError("\\x1b]0;owned\\x07\\x1b[2K\\r[1/1] good ok 4/4")'''

LAB_HOG = '''# Three processes of 400 MB each: under the limit one by one, not together.
import subprocess, sys
hogs = [subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(b'x') * (400 << 20); "
                                                "time.sleep(20)"]) for _ in range(3)]
codes = [h.wait() for h in hogs]
print(codes)
assert codes == [0, 0, 0], f"memory hogs ended with {codes}"
'''


def lab_submissions() -> dict[str, nbformat.NotebookNode]:
    return {
        "good": lab_notebook(LAB_GOOD),
        "untouched": lab_notebook({}),
        "wrong": lab_notebook({"link": LAB_GOOD["link"],
                               "route": 'h1.add_route("10.255.0.0/16", via=str(b))',
                               "break": "# I did not get this one"}),
        "leaky": lab_notebook(LAB_GOOD, extra_end=[
            'h1.spawn(["sleep", "1002"])\nimport time\nwhile True:\n    time.sleep(1)']),
        "forger": lab_notebook({"link": LAB_FORGER}),
        # forges, and ends its lab so that the grader finds nothing to check
        "vanisher": lab_notebook({"link": LAB_FORGER + "import os, signal\n"
                                          "os.kill(lab.supervisor_pid, signal.SIGKILL)\n"}),
        "overrider": lab_notebook({**LAB_GOOD, "link": LAB_OVERRIDER + LAB_GOOD["link"]}),
        "reader": lab_notebook({"link": LAB_READER}),
        "kernelfolder": lab_notebook({**LAB_GOOD, "link": LAB_KERNEL_FOLDER + LAB_GOOD["link"]}),
        "ansi": lab_notebook({**LAB_GOOD, "route": LAB_GOOD["route"] + "\n" + LAB_ANSI}),
        "hog": lab_notebook({**LAB_GOOD, "route": LAB_GOOD["route"] + "\n" + LAB_HOG}),
    }


# --------------------------------------------------------------------------------------

def _write(path: Path, content: nbformat.NotebookNode | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(content), encoding="utf-8")


def files() -> dict[Path, nbformat.NotebookNode | str]:
    """Every file this script writes, by path."""
    out: dict[Path, nbformat.NotebookNode | str] = {
        HERE / "basic" / "exercise.ipynb": basic_notebook({}),
        HERE / "basic" / "hidden.py": HIDDEN,
        HERE / "lab" / "exercise.ipynb": lab_notebook({}),
    }
    for name, nb in basic_submissions().items():
        out[HERE / "basic" / "submissions" / f"{name}.ipynb"] = nb
    for name, nb in lab_submissions().items():
        out[HERE / "lab" / "submissions" / f"{name}.ipynb"] = nb
    return out


def render(content: nbformat.NotebookNode | str) -> str:
    if isinstance(content, str):
        return content
    for index, cell in enumerate(content.cells):  # ids of cells added later: stable too
        if not cell["id"].startswith("cell-"):
            cell["id"] = f"cell-x{index:02d}"
    return nbformat.writes(content) + "\n"


def main() -> int:
    for path, content in files().items():
        _write(path, content)
    print(f"wrote {len(files())} files under {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
