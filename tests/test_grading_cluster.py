"""The grader re-verifies checkpoints that name the cluster layer's handles.

A tiny orchestrator-style exercise, built here: a :class:`labkit.cluster.Cluster`
(store ``host`` with etcd, workers ``node1`` and ``node2``) made by the setup; its
checkpoints use ``node1.ip``, ``cluster["node2"]``, ``checks.route(node1, ...)``, a
machine file through ``node1.path(...)`` and ``checks.command(host, ["etcdctl",
"--endpoints", etcd.endpoint, ...])``. The grader must rebuild every one of those
from the real lab (no "not re-verified" fallback): the solution scores full marks,
a forger that only displays PASS is scored by real state and flagged, and a
machine file planted as a link to a host file is never followed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from labkit.grading import Limits, grade

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the grader's sandbox needs root")]

PARAMETERS = '''student_id = "anonymous"
underlay = "192.168.77.0/24"
subnet2 = "10.77.2.0/24"
key = "/gradeview/answer"
'''

SETUP = '''from labkit import Lab
from labkit.cluster import Cluster
from labkit.checkpoints import Checkpoint, checks

lab = Lab("gvc")
cluster = Cluster(lab, underlay=underlay)
host, node1 = cluster.store, cluster["node1"]
etcd = cluster.start_etcd(v2=False)
'''

CP_ROUTE = '''from labkit.checkpoints import Checkpoint, checks

with Checkpoint("c.1", "node1 routes node2's subnet through node2", points=2,
                hint="node1.add_route(subnet2, via=cluster['node2'].ip)") as cp:
    cp.check(checks.address(node1, f"{node1.ip}/24", dev=node1.nic))
    cp.check(checks.route(node1, subnet2, via=cluster["node2"].ip))
    cp.check(checks.command(node1, ["cat", node1.path("/run/demo/owner")],
                            stdout_contains=f"owner {node1.ip}"))
'''

CP_ETCD = '''from labkit.checkpoints import Checkpoint, checks

with Checkpoint("c.2", "The key is in etcd", points=1, hint="etcd.etcdctl(host, 'put', key, 'hello')") as cp:
    cp.check(checks.command(host, ["etcdctl", "--endpoints", etcd.endpoint, "get", key],
                            stdout_contains="hello"))
    cp.check(checks.expect(etcd.etcdctl(cluster.nodes[1], "get", key).stdout.strip().endswith("hello"),
                           "node2 reads the key too"))
    import sys
    client = ("import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
              "s.sendall(b'ping'); print(s.recv(64).decode())")
    cp.check(checks.command(node1, [sys.executable, "-c", client, node1.path("/run/demo/ctl")],
                            stdout_contains="pong"))
'''

SOLUTION_ROUTE = '''node1.add_route(subnet2, via=cluster["node2"].ip)
node1.write_text("/run/demo/owner", f"owner {node1.ip}\\n")
'''
SOLUTION_ETCD = '''etcd.etcdctl(host, "put", key, "hello")
import sys
server = """import os, socket, sys
s = socket.socket(socket.AF_UNIX)
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
s.bind(sys.argv[1]); s.listen(4)
while True:
    c, _ = s.accept(); c.recv(64); c.sendall(b"pong"); c.close()
"""
ctl = node1.path("/run/demo/ctl")     # a daemon's control socket, as bird.ctl
daemon = node1.spawn([sys.executable, "-c", server, ctl])
node1.run(["sh", "-c", 'for i in $(seq 100); do test -S "$1" && exit 0; sleep 0.1; done; exit 1',
           "sh", ctl], check=True)
'''



def _make_notebooks():
    """The grading test data's builder (tests/data/grading/make_notebooks.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "grading"))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    return make_notebooks


def _forger() -> str:
    """The lab exercise's forger cell: a forged Checkpoint, display formatter and hooks."""
    return _make_notebooks().LAB_FORGER

# Right route, but the machine file is a link to a host file: never followed.
LINKER = SOLUTION_ROUTE.splitlines()[0] + '''
node1.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && ln -s /etc/shadow "$1"', "sh",
           node1.path("/run/demo/owner")], check=True)
'''


def _notebook(route: str, etcd: str, start: str = "") -> nbformat.NotebookNode:
    tagged, finished = _make_notebooks().tagged, _make_notebooks().finished
    cells = [new_markdown_cell("# Cluster exercise (test)"), tagged(PARAMETERS, "parameters"),
             tagged(SETUP, "setup")]
    if start:
        cells.append(new_code_cell(start))
    cells += [new_code_cell(route), tagged(CP_ROUTE, "checkpoint"),
              new_code_cell(etcd), tagged(CP_ETCD, "checkpoint"), new_code_cell("lab.close()")]
    return finished(cells)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    subs = tmp / "submissions"
    subs.mkdir()
    exercise = tmp / "exercise.ipynb"
    nbformat.write(_notebook("...", "..."), exercise)
    for name, nb in {"solution": _notebook(SOLUTION_ROUTE, SOLUTION_ETCD),
                     "untouched": _notebook("...", "..."),
                     "forger": _notebook("...", "...", start=_forger()),
                     "linker": _notebook(LINKER, SOLUTION_ETCD)}.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    book = grade(exercise, [subs], tmp / "graded", workers=2, progress=False,
                 limits=Limits(time_s=120))
    return book


def _scores(row) -> list[int]:
    return [o.score for o in row.outcomes]


def test_solution_is_re_verified_and_scores_full_marks(graded):
    row = graded.row("solution")
    assert row.status == "ok" and _scores(row) == [2, 1], [o.reason for o in row.outcomes]
    assert row.flags == (), row.flags
    reason = row.outcome("c.1").reason
    assert "node1: address 192.168.77.101/24 on eth1 is present" in reason
    assert "route to 10.77.2.0/24 via 192.168.77.102 is present" in reason
    assert "behaved as expected" in reason
    assert "http://192.168.77.100:2379" in row.outcome("c.2").reason
    assert "-c import socket" in row.outcome("c.2").reason   # the control socket, relayed
    assert "/run/labkit/cluster/node1/run/demo/ctl` behaved as expected" in row.outcome("c.2").reason


def test_untouched_and_forger_are_scored_by_real_state(graded):
    untouched = graded.row("untouched")
    assert _scores(untouched) == [0, 0] and untouched.flags == ()
    assert "route to 10.77.2.0/24 via 192.168.77.102 is missing" in untouched.outcome("c.1").reason
    forger = graded.row("forger")
    assert _scores(forger) == [0, 0], [o.reason for o in forger.outcomes]
    flags = " | ".join(forger.flags)
    assert "checkpoint c.1: the notebook displayed PASS" in flags
    assert "checkpoint c.2: the notebook displayed PASS" in flags
    assert "not re-verified" not in flags


def test_a_machine_file_planted_as_a_link_is_not_followed(graded):
    row = graded.row("linker")
    assert _scores(row) == [0, 1], (row.status, row.reason, [o.reason for o in row.outcomes])
    reason = row.outcome("c.1").reason   # only the failing check is named: the file
    assert reason == ("node1: `cat /run/labkit/cluster/node1/run/demo/owner` exited with "
                      "status 1 (expected 0)"), reason
    shadow_head = Path("/etc/shadow").read_text().split(":")[0] + ":"
    assert shadow_head not in reason
    assert not any("not re-verified" in f for f in row.flags), row.flags
