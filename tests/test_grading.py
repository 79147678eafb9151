"""The grader: manifest, preparation, trusted results, gradebook, sandbox, whole runs.

The integration tests grade real submissions (tests/data/grading, written by
make_notebooks.py): known-good, partially wrong, broken and hostile ones, and
compare the gradebook with the expected grades; they also check that nothing of the
host changed and nothing was left behind.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from labkit.checkpoints import MIME_TYPE
from labkit.grading import Gradebook, Limits, Manifest, ManifestError, grade
from labkit.grading.cli import build_parser, parse_size
from labkit.grading.grader import _Workers
from labkit.grading.intake import find_submissions
from labkit.grading.notebook import (
    META_KEY,
    Outcome,
    collect,
    declared_checkpoints,
    load_hidden,
    prepare,
    suspicious,
)
from labkit.grading.runner import first_error
from labkit.grading.sandbox import SandboxSpec, command, pick_uid

DATA = Path(__file__).parent / "data" / "grading"
BASIC = DATA / "basic"
LAB = DATA / "lab"
PYTHON = sys.executable
ROOT = os.geteuid() == 0
SANDBOX_UIDS = 1_500_000_000


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def basic_manifest() -> Manifest:
    return Manifest.from_exercise(BASIC / "exercise.ipynb", BASIC / "hidden.py")


# ======================================================================================
# Test data
# ======================================================================================

def test_data_is_up_to_date():
    sys.path.insert(0, str(DATA))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    for path, content in make_notebooks.files().items():
        assert path.read_text(encoding="utf-8") == make_notebooks.render(content), \
            f"{path} is stale: run python tests/data/grading/make_notebooks.py"


# ======================================================================================
# Manifest
# ======================================================================================

def test_manifest_reads_ids_titles_points_hints_and_hidden_checkpoints():
    m = basic_manifest()
    assert [(c.id, c.points, c.hidden) for c in m.checkpoints] == [
        ("1.1", 2, False), ("1.2", 1, False), ("1.3", 1, False), ("H.1", 1, True)]
    assert m.total_points == 5
    assert m.spec("1.1").title == "The gateway is the first usable address of the subnet"
    assert m.spec("H.1").hint == "ipaddress.ip_network(subnet).broadcast_address"
    assert [c.ids for c in m.cells] == [("1.1",), ("1.2",), ("1.3",), ("H.1",)]


def _exercise(*cells: tuple[str, list[str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    for source, tags in cells:
        cell = new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


@pytest.mark.parametrize("cells, message", [
    ([('Checkpoint("1", "t").check(True)', [])], "is not tagged 'checkpoint'"),
    ([("x = 1", ["checkpoint"])], "creates no Checkpoint"),
    ([('Checkpoint("1", "a").check(True)', ["checkpoint"]),
      ('Checkpoint("1", "b").check(True)', ["checkpoint"])], "declared twice"),
    ([('Checkpoint(name, "a").check(True)', ["checkpoint"])], "literal id"),
    ([('Checkpoint("1", "a", points=p).check(True)', ["checkpoint"])], "literal id"),
    ([("x = 1", [])], "declares no checkpoint"),
])
def test_manifest_errors(cells, message):
    with pytest.raises(ManifestError, match=message):
        Manifest.from_exercise(_exercise(*cells))


def test_declared_checkpoints_reads_literals_only():
    specs = declared_checkpoints('%time x = 1\nfrom labkit import checkpoints as c\n'
                                 'with c.Checkpoint("2.1", title="t", points=1.5, hint=h) as cp:\n'
                                 '    pass\nCheckpoint("2.2", "u")')
    assert [(s.id, s.title, s.points, s.hint) for s in specs] == [
        ("2.1", "t", 1.5, ""), ("2.2", "u", 1, "")]
    assert declared_checkpoints("this is not python (") == []


def test_load_hidden_from_py_and_ipynb(tmp_path):
    assert len(load_hidden(BASIC / "hidden.py")) == 1  # the comment-only header is no cell
    nb = _exercise(('Checkpoint("h", "t").check(True)', []), ("", []))
    nbformat.write(nb, str(tmp_path / "hidden.ipynb"))
    assert load_hidden(tmp_path / "hidden.ipynb") == ['Checkpoint("h", "t").check(True)']


# ======================================================================================
# Preparation
# ======================================================================================

def _marked(nb: nbformat.NotebookNode) -> list[tuple[int, list[str]]]:
    return [(i, c.metadata[META_KEY]["grader"]["checkpoints"]) for i, c in enumerate(nb.cells)
            if META_KEY in c.metadata]


def test_prepare_clears_outputs_restores_checkpoints_and_appends_hidden():
    m = basic_manifest()
    forger = read(BASIC / "submissions" / "forger.ipynb")
    forger.cells[2].outputs = [new_output("stream", name="stdout", text="stale")]
    forger.cells[2].metadata[META_KEY] = {"grader": {"checkpoints": ["1.2"]}}  # forged mark
    prepared = prepare(forger, m)
    nb = prepared.nb
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    marked = _marked(nb)
    assert [ids for _, ids in marked] == [["1.1"], ["1.2"], ["1.3"], ["H.1"]]
    assert marked[-1][0] == len(nb.cells) - 1  # hidden checkpoint appended at the end
    for index, ids in marked:
        assert nb.cells[index].source == next(c.source for c in m.cells if c.ids == tuple(ids))
    assert nb.cells[marked[-1][0]].metadata["tags"] == ["checkpoint", "hidden-checkpoint"]
    flags = prepared.flags
    assert "checkpoint cell 1.1 was edited: the instructor's version was run" in flags
    assert any("is tagged 'checkpoint' but is not one of the exercise's" in f for f in flags)
    assert any("mentions 'vnd.labkit'" in f for f in flags)
    assert len({c["id"] for c in nb.cells}) == len(nb.cells)


def test_prepare_appends_a_deleted_checkpoint_cell_and_matches_by_cell_id():
    m = basic_manifest()
    good = read(BASIC / "submissions" / "good.ipynb")
    cp12 = next(i for i, c in enumerate(good.cells) if '"1.2"' in c.source)
    del good.cells[cp12]
    cp13 = next(i for i, c in enumerate(good.cells) if '"1.3"' in c.source)
    good.cells[cp13].source = "print('I rewrote the checkpoint')"  # same cell id, no ids left
    good.cells[cp13].metadata["tags"] = []
    nb = prepare(good, m).nb
    marked = _marked(nb)
    assert [ids for _, ids in marked] == [["1.1"], ["1.3"], ["1.2"], ["H.1"]]
    assert nb.cells[marked[1][0]]["id"] == good.cells[cp13]["id"]
    flags = prepare(good, m).flags
    assert any("checkpoint cell 1.2 was missing" in f for f in flags)
    assert any("checkpoint cell 1.3 was edited" in f for f in flags)


def test_suspicious_code_is_flagged():
    notes = suspicious("import labkit.checkpoints as lc\nlc.Checkpoint.__exit__ = None\n"
                       "setattr(lc.checks, 'ping', None)\nimport sys\nsys.modules['x'] = 1",
                       {"lc"})
    assert notes == ["assigns to lc.Checkpoint.__exit__", "calls setattr() on lc.checks",
                     "mentions 'sys.modules'"]
    assert suspicious("x = 1\nh1.ping('10.0.0.2')") == []


# ======================================================================================
# Reading results back: what the grader trusts
# ======================================================================================

def _record(cid: str, passed: bool, reason: str = "r") -> dict:
    return {"schema": 1, "id": cid, "title": "t", "points": 99, "score": 99, "passed": passed,
            "reason": reason, "checks": [], "hint": ""}


def _executed(*cells: tuple[list[str] | None, list[dict], str]) -> nbformat.NotebookNode:
    """Cells given as (declared ids or None for a student cell, records, papermill status)."""
    nb = new_notebook()
    for n, (ids, records, status) in enumerate(cells, start=1):
        cell = new_code_cell("...", execution_count=n)
        cell.outputs = [new_output("display_data", data={MIME_TYPE: r, "text/plain": "x"})
                        for r in records]
        cell.metadata["papermill"] = {"status": status, "start_time": None, "end_time": None}
        if status != "pending":
            cell.metadata["papermill"]["start_time"] = "2026-01-01T00:00:00"
        if status == "completed":
            cell.metadata["papermill"]["end_time"] = "2026-01-01T00:00:01"
        if ids is not None:
            cell.metadata[META_KEY] = {"grader": {"checkpoints": ids}}
        nb.cells.append(cell)
    return nb


def test_collect_trusts_only_marked_cells_and_their_own_ids():
    m = basic_manifest()
    nb = _executed(
        (None, [_record("1.1", True)], "completed"),                 # student cell: ignored
        (["1.1"], [_record("1.1", False, "no"), _record("1.2", True)], "completed"),
        (["1.2"], [_record("1.2", True), _record("1.2", False, "bg")], "completed"),
        (["1.3"], [_record("1.3", False, "first")], "completed"),
        (["1.3"], [_record("1.3", True, "again")], "completed"),     # later cell overrides
        (["H.1"], [], "pending"),
    )
    got = collect(nb, m, stopped="time limit of 5 s reached")
    assert got.outcomes == [
        Outcome("1.1", "failed", 0, 2, "no"),
        Outcome("1.2", "failed", 0, 1, "bg"),          # the lower result in one cell counts
        Outcome("1.3", "passed", 1, 1, "again"),       # points come from the manifest
        Outcome("H.1", "not-run", 0, 1, "not reached: time limit of 5 s reached"),
    ]
    assert got.score == 1
    assert got.flags == [
        "the cell executed as In [1] displayed checkpoint results outside a checkpoint cell: "
        "ignored",
        "the cell executed as In [2] displayed a result for checkpoint '1.2', which it does "
        "not declare: ignored",
        "the cell executed as In [3] displayed conflicting results for checkpoint 1.2: the "
        "lower one counts"]


def test_collect_explains_checkpoints_that_did_not_run():
    m = basic_manifest()
    nb = _executed((["1.1"], [], "completed"), (["1.2"], [], "running"),
                   (["1.3"], [], "pending"))
    reasons = [o.reason for o in collect(nb, m, stopped="the kernel died").outcomes]
    assert reasons == ["the checkpoint cell ran but recorded no result",
                       "interrupted while checking: the kernel died",
                       "not reached: the kernel died", "not reached: the kernel died"]
    assert all(o.status == "not-run" for o in collect(None, m).outcomes)


def test_first_error_ignores_cells_allowed_to_fail():
    nb = new_notebook(cells=[new_code_cell("a", execution_count=1),
                             new_code_cell("b", execution_count=2)])
    err = new_output("error", ename="ValueError", evalue="bad", traceback=[])
    nb.cells[0].outputs = [err]
    nb.cells[0].metadata["tags"] = ["raises-exception"]
    assert first_error(nb, allow_errors=False) is None
    assert first_error(nb, allow_errors=True) is None
    nb.cells[1].outputs = [copy.deepcopy(err)]
    assert first_error(nb, allow_errors=True) == ("In [2]", "ValueError", "bad")
    nb.cells[1].metadata["papermill"] = {"exception": True}
    assert first_error(nb, allow_errors=False) == ("In [2]", "ValueError", "bad")


# ======================================================================================
# Gradebook, report, CLI, helpers
# ======================================================================================

def _book() -> Gradebook:
    from labkit.grading.gradebook import SubmissionGrade

    m = basic_manifest()
    outs = lambda *s: tuple(Outcome(c.id, "passed" if x else "failed", c.points if x else 0,
                                    c.points, "why <b>") for c, x in zip(m.checkpoints, s))
    rows = (SubmissionGrade("bob", "bob.ipynb", "timeout", "time limit", outs(1, 0, 0, 0),
                            ("cell 3: mentions 'sys.modules'",), "executed/bob.ipynb"),
            SubmissionGrade("amy", "amy.ipynb", "ok", "", outs(1, 1, 1, 1)))
    return Gradebook("basic", m.checkpoints, rows)


def test_submission_text_is_escaped_and_csv_cells_are_not_formulas(tmp_path):
    """Item 6: control characters from a submission never reach a terminal, a CSV or a
    page raw, and no CSV cell starts like a formula."""
    from labkit.grading.gradebook import SubmissionGrade

    m = basic_manifest()
    nasty = "\x1b]0;owned\x07\x1b[2K\r[3/3] good ok 5/5\u202egnp.exe\n2nd line"
    outs = tuple(Outcome(c.id, "failed", 0, c.points, nasty) for c in m.checkpoints)
    row = SubmissionGrade("=HYPERLINK(1)", "x.ipynb", "error", nasty, outs, (nasty,))
    book = Gradebook("basic", m.checkpoints, (row,))
    book.write(tmp_path)
    written = [tmp_path / n for n in ("gradebook.csv", "gradebook.json", "report.html")]
    for path in written + list((tmp_path / "feedback").iterdir()):
        text = path.read_text(encoding="utf-8")
        assert not any(ch in text for ch in "\x1b\x07\r\u202e"), path
    csv_text = (tmp_path / "gradebook.csv").read_text()
    assert csv_text.splitlines()[1].startswith("'=HYPERLINK(1),error,0,5,")
    assert "\\x1b]0;owned\\x07" in csv_text and "\\u202e" in csv_text
    assert len(csv_text.splitlines()) == 2            # one line per submission
    assert Gradebook.read_json(tmp_path / "gradebook.json").rows[0].reason == row.reason


def test_gradebook_csv_json_and_round_trip(tmp_path):
    book = _book()
    assert book.to_csv().splitlines() == [
        "student,status,score,total,1.1,1.2,1.3,H.1,reason,flags",
        "bob,timeout,2,5,2,0,0,0,time limit,cell 3: mentions 'sys.modules'",
        "amy,ok,5,5,2,1,1,1,,"]
    paths = book.write(tmp_path)
    again = Gradebook.read_json(paths["json"])
    assert again.to_json() == book.to_json()
    assert again.row("amy").score == 5 and again.row("bob").outcome("1.1").reason == "why <b>"
    frame = book.to_frame()
    assert list(frame["score"]) == [2, 5] and frame["1.1"].dtype.kind == "i"
    with pytest.raises(KeyError):
        book.row("carol")


def test_report_and_feedback_pages(tmp_path):
    book = _book()
    book.write(tmp_path)
    report = (tmp_path / "report.html").read_text()
    assert '<a href="#amy">amy</a>' in report and "why &lt;b&gt;" in report
    assert "Flags for review" in report and "executed/bob.ipynb" in report
    feedback = (tmp_path / "feedback" / "bob.html").read_text()
    assert "Flags" not in feedback and "executed/" not in feedback
    assert "<b>Hint:</b> ipaddress.ip_network(subnet).hosts()" not in feedback  # 1.1 passed
    assert "<b>Hint:</b> network and broadcast addresses" in feedback          # 1.2 failed


def test_parse_size_and_parser_as_a_subcommand():
    import argparse

    assert parse_size("2G") == 2 << 30 and parse_size("512M") == 512 << 20
    assert parse_size("64k") == 65536 and parse_size("100") == 100
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("lots")
    top = argparse.ArgumentParser(prog="labkit")
    build_parser(top.add_subparsers(dest="command"))
    args = top.parse_args(["grade", "ex.ipynb", "subs", "-o", "out", "-j", "3", "-p", "vni",
                           "42", "--memory", "1G"])
    assert args.workers == 3 and args.parameter == [["vni", "42"]] and args.memory == 1 << 30
    assert args.func.__name__ == "run"


def test_every_file_name_gives_a_distinct_readable_id(tmp_path):
    """Item 7: non-ASCII names stay readable, clashes get a short hash, long names are
    shortened (file names of the outputs stay within 255 bytes); nothing is refused."""
    (tmp_path / "a").mkdir()
    long_name = "n" * 244  # a 250-character file name
    for name in ("a/x y", "x_y", "日本", "中国", long_name, "..", "résumé"):
        (tmp_path / f"{name}.ipynb").write_text("{}")
    ids = [s.student for s in find_submissions([tmp_path / "a", tmp_path])]
    assert len(ids) == len(set(ids)) == 7
    assert {"日本", "中国", "résumé"} <= set(ids)
    assert sorted(i for i in ids if i.startswith("x_y")) == sorted(
        f"x_y-{h}" for h in [i.split("-")[1] for i in ids if i.startswith("x_y-")])
    longest = max(ids, key=len)
    assert longest.startswith("n" * 80) and len(longest.encode()) <= 100
    assert all(i and "/" not in i and i not in (".", "..") for i in ids)


def test_only_regular_files_of_bounded_size_are_read(tmp_path):
    """Item 5: links, FIFOs and oversized files are refused one by one, with the reason,
    without following, blocking or reading them."""
    from labkit.grading.intake import Refused, read_submission

    (tmp_path / "ok.ipynb").write_text("{}")
    (tmp_path / "shadow.ipynb").symlink_to("/etc/shadow")
    (tmp_path / "zero.ipynb").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "big.ipynb").write_bytes(b" " * 2048)
    assert read_submission(tmp_path / "ok.ipynb") == b"{}"
    reasons = {}
    for name in ("shadow", "zero", "fifo", "big"):
        with pytest.raises(Refused) as info:
            read_submission(tmp_path / f"{name}.ipynb", limit=1024)
        reasons[name] = info.value.strerror
    assert "symbolic link" in reasons["shadow"] and "symbolic link" in reasons["zero"]
    assert "FIFO" in reasons["fifo"] and "2048 bytes" in reasons["big"]


def test_sandbox_spec_round_trip_and_uid_choice():
    spec = SandboxSpec(conn_dir="/tmp/c", uid=5, gid=6, hide=("/a",), env={"A": "1"})
    assert SandboxSpec.from_json(spec.to_json()) == spec
    argv = command(spec, ["sleep", "1"])
    assert argv[:3] == ["setpriv", "--pdeathsig", "KILL"] and argv[-2:] == ["sleep", "1"]
    assert "--user" not in argv
    assert "--user" in command(SandboxSpec(conn_dir="/tmp/c", userns=True), ["true"])
    assert pick_uid(low=10, high=12, taken={10}) == 11  # a uid in use is skipped
    with pytest.raises(RuntimeError):
        pick_uid(low=10, high=12, taken={10, 11})
    assert pick_uid() >= SANDBOX_UIDS


# ======================================================================================
# The sandbox on its own
# ======================================================================================

def _sandboxed(tmp_path: Path, script: str, **spec_kw) -> subprocess.CompletedProcess[str]:
    conn = tmp_path / "conn"
    conn.mkdir(exist_ok=True)
    spec = SandboxSpec(conn_dir=str(conn), env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                       **({"uid": pick_uid(), "gid": 65534} if ROOT else {"userns": True}),
                       **spec_kw)
    return subprocess.run(command(spec, ["sh", "-c", script]), capture_output=True, text=True,
                          timeout=60)


def test_sandbox_view_of_the_system(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "answers.txt").write_text("42")
    out = _sandboxed(tmp_path, "echo uid=$(id -u); echo pid=$$; ls /proc | grep -c '^[0-9]';"
                               "touch /usr/x 2>&1; ls " + str(secret) + "; pwd; ip -br link;"
                               "kill -9 -1; echo survived",
                     hide=(str(secret),))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] != "uid=0" if ROOT else lines[0] == "uid=0"
    assert lines[1] == "pid=2"                         # init is 1: its own PID namespace
    assert int(lines[2]) <= 4                          # only a handful of processes visible
    assert "Read-only file system" in lines[3]
    assert "answers.txt" not in out.stdout              # hidden by an empty tmpfs
    assert "/tmp/work" in lines and lines[-1] == "survived"
    assert [line.split()[0] for line in lines if line.startswith("lo")] == ["lo"]


def test_sandbox_dies_with_its_parent(tmp_path):
    """A parent killed by SIGKILL takes the sandbox and every process in it along."""
    conn = tmp_path / "conn"
    conn.mkdir()
    spec = SandboxSpec(conn_dir=str(conn), env={"PATH": "/usr/bin:/bin"},
                       **({"uid": pick_uid(), "gid": 65534} if ROOT else {"userns": True}))
    launcher = subprocess.Popen(
        [PYTHON, "-c", "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); "
                       "time.sleep(600)", *command(spec, ["sh", "-c", "sleep 1999 & sleep 1998"])])
    try:
        deadline = time.monotonic() + 20
        while not _pgrep("sleep 1999") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pgrep("sleep 1999")
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    deadline = time.monotonic() + 10
    while (_pgrep("sleep 1999") or _pgrep("sleep 1998")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pgrep("sleep 1999") and not _pgrep("sleep 1998")


@pytest.mark.skipif(not ROOT, reason="the sandbox runs as the grader's own uid without root")
def test_an_environment_the_sandbox_cannot_use_is_refused_before_grading(tmp_path):
    """Item 9: a Python environment in a folder other users cannot enter (a venv or pyenv
    under a 0700 home) stops the grader at once, naming the path and the fix."""
    from labkit.grading.grader import SandboxUnavailable, _shown, check_sandbox

    private = tmp_path / "home-of-someone"
    private.mkdir(mode=0o700)
    (private / "python3").symlink_to(PYTHON)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SandboxUnavailable) as info:
        check_sandbox(work, True, _shown([private]), python=str(private / "python3"))
    text = str(info.value)
    assert str(private / "python3") in text and "readable by every user" in text
    check_sandbox(work, True, _shown([]))   # the environment the tests run in is fine


def test_workers_are_killed_after_their_time_limit(tmp_path):
    pool = _Workers(tmp_path)
    started = time.monotonic()
    assert pool.run(["sh", "-c", "sleep 1997 & sleep 1996"], tmp_path / "log", timeout=1) is None
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert not _pgrep("sleep 1997")


def _pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", "-a", f"^{pattern}"], capture_output=True, text=True)
    return out.stdout.splitlines()


# ======================================================================================
# Whole grading runs
# ======================================================================================

def _host_state() -> dict[str, object]:
    """What the hostile submissions try to change on the host's network.

    Specific marks rather than whole dumps, so that other programs legitimately
    changing the host meanwhile (a Docker daemon starting) do not fail the test.
    """
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        except FileNotFoundError:
            return ""
    links = json.loads(run("ip", "-j", "link") or "[]")
    return {
        "lo up": any(i["ifname"] == "lo" and "UP" in i.get("flags", []) for i in links),
        "hostile links": sorted({i["ifname"] for i in links} & {"dummy0", "labkit-x", "hostile0"}),
        "hostile address": "198.51.100.7" in run("ip", "-j", "addr"),
        "hostile route": "203.0.113.0" in run("ip", "-j", "route"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        "FORWARD policy": (run("iptables", "-S", "FORWARD").splitlines() or [""])[0],
        "nft tables": run("nft", "list", "tables"),
    }


@contextlib.contextmanager
def _own_tempdir(base: Path):
    """Make the grader (and its workers) put their temporary folders under ``base``, so
    that what is left behind can be told apart from other graders on the machine."""
    import tempfile

    base.mkdir()
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(base), str(base)
    try:
        yield base
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]


def _leftovers(base: Path) -> list[str]:
    found = [f"process {line}" for line in subprocess.run(
        ["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True).stdout.splitlines()
        if line.split() and int(line.split()[0]) >= SANDBOX_UIDS and str(base) in line]
    found += [f"process {p}" for pat in ("sleep 100[0-2]",) for p in _pgrep(pat)]
    found += [f"mount {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(base) in line]
    found += [f"left in the temporary folder: {p.name}" for p in base.iterdir()]
    return found


BASIC_EXPECTED = {
    # student: (status, scores of 1.1, 1.2, 1.3, H.1, text in the reason)
    "broken": ("error", [2, 0, 0, 0], "AttributeError: 'IPv4Network' object has no attribute"),
    "copycat": ("ok", [0, 0, 0, 0], ""),
    "deleter": ("ok", [2, 1, 0, 1], ""),   # its own `rm -rf /` removed its plan.txt
    "flood": ("output-limit", [2, 0, 0, 0], "outputs exceeded the limit of 262144 bytes"),
    "forger": ("ok", [0, 0, 0, 1], ""),
    "forkstorm": ("error", [2, 0, 0, 0], "BlockingIOError"),
    "good": ("ok", [2, 1, 1, 1], ""),
    "hugeprint": ("output-limit", [2, 0, 0, 0], "exceeded the limit"),
    "invalid": ("invalid", [0, 0, 0, 0], "not a readable notebook"),
    "killall": ("killed", [2, 0, 0, 0], "the kernel died"),
    "loop": ("timeout", [2, 0, 0, 0], "time limit of 25 s reached"),
    "memory": ("memory", [2, 0, 0, 0], "MemoryError"),
    "netchanger": ("ok", [2, 1, 1, 1], ""),
    "osexit": ("killed", [2, 0, 0, 0], "the kernel died (program exited with status 0)"),
    "partial": ("ok", [2, 0, 1, 0], ""),
    "patcher": ("ok", [2, 0, 1, 1], ""),   # its patched checks do not fool the grader
    "sysexit": ("error", [2, 0, 0, 0], "SystemExit: 3"),
}

SUBNETS = {"good": "172.16.4.0/22", "copycat": "10.20.0.0/23", "partial": "192.168.7.0/24"}


@pytest.fixture(scope="module")
def basic_run(tmp_path_factory):
    """Grade every basic submission once (two at a time), watching the host."""
    tmp = tmp_path_factory.mktemp("basic")
    subs = tmp / "submissions"
    shutil.copytree(BASIC / "submissions", subs)
    # A world-writable canary outside /tmp (which is private in the sandbox): the
    # sandbox's allow-list, the read-only mounts and the uid each protect it.
    canary = _canary("basic")
    out = tmp / "graded"
    targets = [str(canary / "keep.txt"), str(canary), str(subs / "good.ipynb"),
               str(out / "executed"), str(out)]

    def parameters(student: str) -> dict:
        values = {"subnet": SUBNETS.get(student, "10.0.0.0/24")}
        if student == "deleter":
            values["targets"] = targets
        return values

    before = _host_state()
    started = time.monotonic()
    with _own_tempdir(tmp / "temp") as temp:
        book = grade(BASIC / "exercise.ipynb", [subs], out, hidden=BASIC / "hidden.py",
                     parameters=parameters, workers=2, progress=False,
                     # 25 s: room for the deleter's `rm -rf /` walking every visible tree
                     # (~5 s here, but once over 15 s in CI), while `loop` is still cut
                     limits=Limits(time_s=25, output_bytes=256 << 10, memory_bytes=1 << 30))
    yield {"book": book, "out": out, "subs": subs, "canary": canary, "before": before,
           "after": _host_state(), "leftovers": _leftovers(temp),
           "seconds": time.monotonic() - started}
    shutil.rmtree(canary, ignore_errors=True)


def _canary(name: str, owner: int | None = None) -> Path:
    folder = Path(__file__).parent / f".canary-{name}-{os.getpid()}"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    folder.chmod(0o777)
    (folder / "keep.txt").chmod(0o666)
    if owner is not None:
        shutil.chown(folder, owner, owner)
        shutil.chown(folder / "keep.txt", owner, owner)
    return folder


@pytest.mark.slow
def test_basic_gradebook_matches_expected_grades(basic_run):
    book: Gradebook = basic_run["book"]
    assert [r.student for r in book.rows] == sorted(BASIC_EXPECTED)
    got = {r.student: (r.status, [o.score for o in r.outcomes]) for r in book.rows}
    assert got == {k: v[:2] for k, v in BASIC_EXPECTED.items()}
    for student, (_, _, text) in BASIC_EXPECTED.items():
        assert text in book.row(student).reason, (student, book.row(student).reason)
    # the files agree with the object
    assert (basic_run["out"] / "gradebook.csv").read_text() == book.to_csv()
    assert Gradebook.read_json(basic_run["out"] / "gradebook.json").to_json() == book.to_json()


@pytest.mark.slow
def test_basic_reasons_and_flags(basic_run):
    book: Gradebook = basic_run["book"]
    assert book.row("partial").outcome("1.2").reason == "256 usable addresses in 192.168.7.0/24: " \
                                                        "not the case"
    assert book.row("partial").outcome("H.1").reason == \
        "could not check: NameError: name 'broadcast' is not defined"
    assert book.row("copycat").outcome("1.1").reason == \
        "gateway 10.0.0.1 is the first usable address of 10.20.0.0/23: not the case"
    assert book.row("loop").outcome("1.2").reason == "not reached: time limit of 25 s reached"
    assert book.row("deleter").outcome("1.3").reason.startswith("could not check: FileNotFound")
    forger = book.row("forger")
    assert "checkpoint cell 1.1 was edited: the instructor's version was run" in forger.flags
    assert sum("displayed checkpoint results outside a checkpoint cell" in f
               for f in forger.flags) == 2
    assert any("assigns to lc.checks.expect" in f for f in book.row("patcher").flags)
    assert book.row("good").flags == ()
    # every notebook that could be read is kept, executed, for review
    for row in book.rows:
        if row.status != "invalid":
            assert row.executed == f"executed/{row.student}.ipynb"
            read(basic_run["out"] / row.executed)


@pytest.mark.slow
def test_hostile_submissions_changed_nothing_outside(basic_run):
    assert (basic_run["canary"] / "keep.txt").read_text() == "keep"
    assert (basic_run["subs"] / "good.ipynb").exists()
    assert (Path(__file__).parent / "test_grading.py").exists()
    assert basic_run["after"] == basic_run["before"]
    assert basic_run["after"]["lo up"] and basic_run["after"]["hostile links"] == []
    assert not basic_run["after"]["hostile address"] and not basic_run["after"]["hostile route"]
    assert basic_run["leftovers"] == []
    executed = read(basic_run["out"] / "executed" / "deleter.ipynb")
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    attempts = eval(printed.strip().splitlines()[-1])  # the dict the notebook printed
    assert "deleted" not in attempts.values()
    # the canary's folder is not even in the sandbox (an allow-list of what it sees)
    assert attempts[str(basic_run["canary"] / "keep.txt")] == "FileNotFoundError"


@pytest.mark.slow
def test_regrading_gives_byte_identical_gradebooks(tmp_path, basic_run):
    """Same inputs, graded again (through the CLI this time): same grades, same files."""
    names = ["broken", "copycat", "forger", "good", "invalid", "partial"]
    subs = [str(basic_run["subs"] / f"{n}.ipynb") for n in names]
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"*": {"subnet": "10.0.0.0/24"},
                                  **{k: {"subnet": v} for k, v in SUBNETS.items()}}))
    out = tmp_path / "again"
    cli = subprocess.run([PYTHON, "-m", "labkit.grading", str(BASIC / "exercise.ipynb"), *subs,
                          "-o", str(out), "--hidden", str(BASIC / "hidden.py"), "-j", "2",
                          "--timeout", "60", "--params-file", str(params),
                          "--output-limit", "256k", "--memory", "1G"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert "graded 6 submissions" in cli.stderr and "[6/6]" in cli.stderr
    first = basic_run["book"]
    wanted = Gradebook(first.exercise, first.checkpoints,
                       tuple(r for r in first.rows if r.student in names), first.notes)
    assert (out / "gradebook.csv").read_text() == wanted.to_csv()
    assert (out / "gradebook.json").read_text() == wanted.to_json()
    assert (out / "feedback" / "good.html").read_text() == \
        (basic_run["out"] / "feedback" / "good.html").read_text()


def test_cli_usage_errors(tmp_path):
    bad = tmp_path / "bad.ipynb"
    nbformat.write(_exercise(("x = 1", [])), str(bad))
    cli = subprocess.run([PYTHON, "-m", "labkit.grading", str(bad), str(tmp_path), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "declares no checkpoint" in cli.stderr


LAB_SUBNETS = {"good": "10.1.2.0/24", "wrong": "10.9.0.0/16", "overrider": "172.20.0.0/16"}
LONG_NAME = "n" * 244  # with ".ipynb", a 250-character file name

LAB_EXPECTED = {
    # student: (status, scores of 2.1, 2.2, 2.3, text in the reason)
    "good": ("ok", [2, 1, 1], ""),                        # the solution: full marks
    "untouched": ("ok", [0, 0, 0], ""),                   # the exercise as handed out
    "wrong": ("ok", [2, 0, 0], ""),
    "leaky": ("timeout", [2, 1, 1], "time limit of 25 s reached"),
    "forger": ("ok", [0, 0, 0], ""),                      # item 1: forged, scored by real state
    "vanisher": ("ok", [0, 0, 0], ""),                    # forged, and its lab killed
    "overrider": ("ok", [0, 0, 1], ""),                   # item 2: the instructor's subnet
    "reader": ("ok", [0, 0, 0], ""),                      # item 3: sees no solution
    "kernelfolder": ("ok", [2, 1, 1], ""),                # item 4: links planted for the worker
    "shadowlink": ("invalid", [0, 0, 0], "refused: a symbolic link"),        # item 5
    "stdlib": ("invalid", [0, 0, 0], "refused: a symbolic link"),
    "zero": ("invalid", [0, 0, 0], "refused: a symbolic link"),
    "fifo": ("invalid", [0, 0, 0], "refused: a FIFO"),
    "huge": ("invalid", [0, 0, 0], "more than the limit of 16777216 bytes"),
    "ansi": ("error", [2, 0, 0], "RuntimeError: \\x1b]0;owned\\x07\\x1b[2K\\x0d[1/1]"),  # item 6
    "日本": ("ok", [2, 1, 1], ""),                        # item 7: names
    "中国": ("ok", [0, 0, 0], ""),
    LONG_NAME[:87] + "-": ("ok", [2, 1, 1], ""),
    "hog": ("memory", [2, 0, 0], "more than 1073741824 bytes in all"),      # item 8
}


@pytest.fixture(scope="module")
def lab_batch(tmp_path_factory):
    """One batch of the lab exercise: the solution, the untouched copy and every hostile
    case of issue 15, graded together (three at a time), watching the host."""
    tmp = tmp_path_factory.mktemp("lab")
    subs = tmp / "submissions"
    shutil.copytree(LAB / "submissions", subs)
    (subs / "shadowlink.ipynb").symlink_to("/etc/shadow")
    (subs / "stdlib.ipynb").symlink_to(Path(os.__file__))       # into the standard library
    (subs / "zero.ipynb").symlink_to("/dev/zero")
    os.mkfifo(subs / "fifo.ipynb")
    with open(subs / "huge.ipynb", "wb") as fh:
        fh.truncate(20 << 20)
    shutil.copy(subs / "good.ipynb", subs / "日本.ipynb")
    shutil.copy(subs / "untouched.ipynb", subs / "中国.ipynb")
    shutil.copy(subs / "good.ipynb", subs / f"{LONG_NAME}.ipynb")
    canary = _canary("lab")
    out = tmp / "graded"
    repo = Path(__file__).resolve().parent.parent
    targets = [str(repo / "solutions"), str(subs), str(out), str(LAB / "exercise.ipynb"),
               str(canary)]
    before = _host_state()
    started = time.monotonic()
    with _own_tempdir(tmp / "temp") as temp:
        book = grade(LAB / "exercise.ipynb", [subs], out, workers=3, progress=False,
                     parameters=lambda s: {"subnet": LAB_SUBNETS.get(s, "192.168.50.0/24"),
                                           "targets": targets},
                     limits=Limits(time_s=25, memory_bytes=1 << 30))
    yield {"book": book, "out": out, "subs": subs, "canary": canary, "before": before,
           "after": _host_state(), "leftovers": _leftovers(temp),
           "seconds": time.monotonic() - started}
    shutil.rmtree(canary, ignore_errors=True)


def _lab_row(book: Gradebook, name: str):
    matches = [r for r in book.rows if r.student == name or
               (name.endswith("-") and r.student.startswith(name))]
    assert len(matches) == 1, (name, [r.student for r in book.rows])
    return matches[0]


@pytest.mark.slow
def test_lab_batch_gradebook_rows(lab_batch):
    book: Gradebook = lab_batch["book"]
    cgroup = any("cgroup" in note for note in book.notes)
    assert len(book.rows) == len(LAB_EXPECTED) == len({r.student for r in book.rows})
    for name, (status, scores, text) in LAB_EXPECTED.items():
        row = _lab_row(book, name)
        if name == "hog" and not cgroup:   # per-process limits only: each hog fits
            status, scores, text = "ok", [2, 1, 1], ""
        assert (row.status, [o.score for o in row.outcomes]) == (status, scores), \
            (name, row.status, row.reason, [o.reason for o in row.outcomes])
        assert text in row.reason, (name, row.reason)
    good = book.row("good")
    assert good.outcome("2.1").reason == ("h1: address 10.1.2.1/24 on eth0 is present; "
                                          "ping h1 -> 10.1.2.2: 2 of 2 echo requests answered")
    assert good.flags == () and book.row("untouched").flags == ()
    assert book.row("wrong").outcome("2.2").reason == "h1: route to default via 10.9.0.2 is missing"
    # every page was written, one per submission, under its own id
    pages = {p.name for p in (lab_batch["out"] / "feedback").iterdir()}
    assert pages == {f"{r.student}.html" for r in book.rows}
    assert all(len(p.encode()) <= 255 for p in pages)
    csv_text = (lab_batch["out"] / "gradebook.csv").read_text(encoding="utf-8")
    assert "\x1b" not in csv_text and "\r" not in csv_text
    assert lab_batch["seconds"] < 400


@pytest.mark.slow
def test_lab_batch_forgery_and_override_are_flagged(lab_batch):
    book: Gradebook = lab_batch["book"]
    forger = " | ".join(book.row("forger").flags)
    for text in ("the notebook displayed PASS but the grader's own check says FAIL",
                 "registered IPython execution hooks", "registered display formatters",
                 "changed labkit.checkpoints in its kernel",
                 "the notebook changed 'h1', which the setup defined"):
        assert text in forger, text
    for cid in ("2.1", "2.2", "2.3"):
        assert f"checkpoint {cid}: the notebook displayed PASS" in forger
    vanisher = book.row("vanisher")
    assert not any("not re-verified" in f for f in vanisher.flags)
    assert all("cannot be re-checked" in o.reason for o in vanisher.outcomes), vanisher.outcomes
    overrider = book.row("overrider")
    assert any("changed the parameter 'subnet' (to \"10.0.0.0/24\"): checked with the "
               "instructor's value \"172.20.0.0/16\"" in f for f in overrider.flags)
    assert overrider.outcome("2.1").reason.startswith("h1: address 172.20.0.1/16 on eth0 is missing")


@pytest.mark.slow
def test_lab_batch_reader_saw_nothing_and_the_worker_ignored_planted_links(lab_batch):
    out = lab_batch["out"]
    printed = _printed(out / "executed" / "reader.ipynb")
    found = eval(printed.strip().splitlines()[-1])  # the dict the notebook printed
    assert found and all(v in ("FileNotFoundError", "PermissionError") for v in found.values()), found
    planted = eval(_printed(out / "executed" / "kernelfolder.ipynb").strip().splitlines()[-1])
    assert planted == ["kernel.log", "kernel.json.bak", "fifo"]
    shadow_head = Path("/etc/shadow").read_text().split(":")[0] + ":"
    for log in (out / "logs").iterdir():
        text = log.read_text(encoding="utf-8", errors="replace")
        assert shadow_head not in text and len(text) < 64 << 10, log.name


def _printed(path: Path) -> str:
    nb = read(path)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")


@pytest.mark.slow
def test_lab_batch_changed_nothing_outside_and_left_nothing(lab_batch):
    assert (lab_batch["canary"] / "keep.txt").read_text() == "keep"
    assert lab_batch["after"] == lab_batch["before"]
    assert lab_batch["leftovers"] == []
    assert not [d for d in Path("/sys/fs/cgroup/memory").rglob("labkit-grade-*")] \
        if Path("/sys/fs/cgroup/memory").is_dir() else True
    assert {p.name for p in lab_batch["subs"].iterdir()} >= {"good.ipynb", "fifo.ipynb"}


@pytest.mark.slow
@pytest.mark.unprivileged
@pytest.mark.skipif(not ROOT, reason="needs root to switch to an unprivileged user")
def test_unprivileged_grader(tmp_path):
    """The grader run by an ordinary user: user namespaces instead of distinct uids."""
    import tempfile

    nobody = 65534
    work = Path(tempfile.mkdtemp(prefix="labkit-unpriv-"))  # pytest's folders are root-only
    shutil.chown(work, nobody, nobody)
    canary = _canary("unpriv", owner=nobody)  # owned by the grader's own uid this time
    subs = [str(BASIC / "submissions" / f"{n}.ipynb") for n in ("good", "killall", "deleter")]
    script = (
        "import json, sys\nfrom labkit.grading import grade, Limits\n"
        f"book = grade({str(BASIC / 'exercise.ipynb')!r}, {subs!r}, {str(work / 'out')!r},"
        f" hidden={str(BASIC / 'hidden.py')!r}, workers=2, progress=False,"
        " limits=Limits(time_s=30),"
        " parameters=lambda s: {'subnet': '10.0.0.0/24', 'targets': "
        f"[{str(canary / 'keep.txt')!r}, {str(canary)!r}, {str(work / 'out')!r}]}})\n"
        "print(json.dumps({r.student: [r.status, r.score] for r in book.rows}))\n")
    run = subprocess.run(["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups",
                          "env", f"HOME={work}", PYTHON, "-c", script],
                         capture_output=True, text=True, timeout=300, cwd=work)
    try:
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout.splitlines()[-1]) == {
            "deleter": ["ok", 4], "good": ["ok", 5], "killall": ["killed", 2]}
        assert (canary / "keep.txt").read_text() == "keep"
        assert not (work / ".ipython").exists()
    finally:
        shutil.rmtree(canary, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
def test_odd_kernel_metadata_is_run_as_python_and_flagged(tmp_path):
    """papermill chose the parameters' language from the submission's metadata: a missing,
    string, list-valued or non-Python kernelspec/language_info crashed the grader (or
    injected R syntax into the Python kernel). Each is graded like the plain copy, flagged."""
    good = read(BASIC / "submissions" / "good.ipynb")
    variants = {
        "nometa": {},
        "stringspec": {"kernelspec": "python3"},
        "listname": {"language_info": {"name": ["python"]}},
        "rlang": {"kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
                  "language_info": {"name": "R"}},
        "plain": copy.deepcopy(dict(good.metadata)),
    }
    subs = tmp_path / "submissions"
    subs.mkdir()
    for name, meta in variants.items():
        nb = copy.deepcopy(good)
        nb.metadata = nbformat.from_dict(meta)
        (subs / f"{name}.ipynb").write_text(json.dumps(nb))
    book = grade(BASIC / "exercise.ipynb", [subs], tmp_path / "graded", hidden=BASIC / "hidden.py",
                 parameters=lambda student: {"subnet": SUBNETS["good"]}, workers=2,
                 progress=False, limits=Limits(time_s=30))
    plain = book.row("plain")
    assert plain.status == "ok" and [o.score for o in plain.outcomes] == BASIC_EXPECTED["good"][1]
    for name in ("nometa", "stringspec", "listname", "rlang"):
        row = book.row(name)
        assert row.status == "ok", (name, row.status, row.reason)
        assert [o.score for o in row.outcomes] == [o.score for o in plain.outcomes], name
        flagged = any("kernel metadata was not Python's" in f for f in row.flags)
        assert flagged == (name != "nometa"), (name, row.flags)   # missing is filled in silently
    assert not any("kernel metadata" in f for f in plain.flags)


# ======================================================================================
# The Docker exercise: re-verified by the grader against the real engine
# ======================================================================================

def _docker_forger() -> str:
    """The lab exercise's forger (a forged Checkpoint displaying PASS, a display formatter,
    execution hooks), with another DockerLab in place of the setup's."""
    sys.path.insert(0, str(DATA))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    return make_notebooks.LAB_FORGER + 'print("PASS")\ndl = DockerLab("someone-else", client, clean_first=False)\n'


@pytest.fixture(scope="module")
def docker_batch(tmp_path_factory):
    """Exercise 20 graded through the guarded proxy: the solution, the untouched copy and
    a forger, one at a time (they use the same container names on the one engine)."""
    from labkit.docker import check, connect, list_resources
    from labkit.docker.proxy import DockerProxy

    if not ROOT:
        pytest.skip("the grader's sandbox needs root")
    status = check()
    if not status:
        pytest.skip(f"no Docker engine: {status.reason}")
    repo = Path(__file__).resolve().parent.parent
    exercise = repo / "exercises" / "20-docker-networks.ipynb"
    tmp = tmp_path_factory.mktemp("docker")
    subs = tmp / "submissions"
    subs.mkdir()
    shutil.copy(repo / "solutions" / "20-docker-networks.ipynb", subs / "solution.ipynb")
    shutil.copy(exercise, subs / "untouched.ipynb")
    forger = read(exercise)
    first_task = next(i for i, c in enumerate(forger.cells) if "## Task 1" in c.source)
    forger.cells.insert(first_task, new_code_cell(_docker_forger()))
    nbformat.write(forger, subs / "forger.ipynb")
    sock = f"/run/labkit/grading-{os.getpid()}.sock"
    pid = os.getpid()
    parameters = {"docker_host": f"unix://{sock}", "network_name": f"g{pid}-net",
                  "subnet": f"10.81.{pid % 200}.0/24"}
    with DockerProxy(sock):
        book = grade(exercise, [subs], tmp / "graded", workers=1, progress=False,
                     parameters=parameters, allow=[sock], limits=Limits(time_s=240))
    client = connect()
    try:
        left = [list_resources(client, session=s) for s in ("20-docker-networks-exercise",
                                                             "someone-else")]
    finally:
        client.close()
    return {"book": book, "left": left, "parameters": parameters}


@pytest.mark.slow
@pytest.mark.docker
def test_docker_exercise_is_re_verified_by_the_grader(docker_batch):
    book: Gradebook = docker_batch["book"]
    solution = book.row("solution")
    assert solution.status == "ok", (solution.status, solution.reason)
    assert solution.score == solution.total == book.total_points == 12, \
        [(o.id, o.reason) for o in solution.outcomes]
    assert solution.flags == (), solution.flags       # no "not re-verified" fallback
    net = docker_batch["parameters"]["network_name"]
    assert f"Docker network {net} exists with subnet" in solution.outcome("20.1").reason
    assert "ping db -> web: 2 of 2 echo requests answered" in solution.outcome("20.4").reason
    assert "`wget -q -O - http://web/` behaved as expected" in solution.outcome("20.5").reason
    untouched = book.row("untouched")
    assert untouched.status == "ok" and untouched.score == 0, untouched.outcomes
    assert untouched.flags == (), untouched.flags
    assert "container db: " in untouched.outcome("20.2").reason
    assert all(o.status == "failed" and o.reason for o in untouched.outcomes)
    forger = book.row("forger")
    assert forger.score == 0, [(o.id, o.reason) for o in forger.outcomes]
    flags = " | ".join(forger.flags)
    for outcome in forger.outcomes:
        assert f"checkpoint {outcome.id}: the notebook displayed PASS but the grader's own " \
               "check says FAIL" in flags, outcome.id
    assert "the notebook changed 'dl', which the setup defined" in flags
    assert "not re-verified" not in flags
    assert all(len(left) == 0 for left in docker_batch["left"]), docker_batch["left"]


@pytest.mark.docker
def test_docker_handles_are_rebuilt_from_checked_names_only():
    """The evaluator's Docker views, fed encodings as a kernel would send them: good
    names reach the real containers (labelled ones only), bad names and an engine the
    grader cannot reach give up with a reason (never a crash), and a checkpoint cell
    cannot make the grader's DockerLab view remove anything."""
    import json as _json

    from labkit.docker import BASE_IMAGE, DockerLab, check, connect
    from labkit.grading.evaluator import Evaluator

    status = check()
    if not status:
        pytest.skip(f"no Docker engine: {status.reason}")
    pid = os.getpid()
    session, mine, stranger = f"pytest-{pid}-view", f"t{pid}-view", f"t{pid}-stranger"
    client = connect()

    def evaluate(cell: str, snapshot: dict, current: dict | None = None, host=None):
        ev = Evaluator("docker_host = None\n", {"docker_host": host})
        try:
            ev.take_snapshot(_json.dumps({"values": snapshot}))
            source = f'with Checkpoint("d.1", "docker") as cp:\n    {cell}\n'
            [verdict] = ev.evaluate(source, ["d.1"], _json.dumps({"values": current or {}}), "")
            return verdict
        finally:
            ev.close()

    setup = {"client": {"docker_client": True}, "dl": {"docker_lab": session}}
    with DockerLab(session, client) as lab:
        lab.run(mine)
        alien = client.containers.run(BASE_IMAGE, "sleep 60", name=stranger, detach=True,
                                      network_mode="none")   # not made by the course
        try:
            ok = evaluate(f'cp.check(checks.command(dl.container("{mine}"), ["true"]))', setup)
            assert ok.passed and ok.verified, ok
            theirs = evaluate('cp.check(checks.command(ctr, ["true"]))', setup,
                              {"ctr": {"docker_container": mine}})
            assert theirs.passed and theirs.verified, theirs
            hidden = evaluate(f'cp.check(checks.command(dl.container("{stranger}"), ["true"]))',
                              setup)
            assert not hidden.passed and hidden.verified
            assert f"no container named '{stranger}' among the course's" in hidden.reason
            for bad in ("../../etc", "x" * 200, "", ["db"], 7, "db\n", "-rf"):
                for enc in ({"dl": {"docker_lab": bad}}, {"dl": {"docker_container": bad}}):
                    v = evaluate('cp.check(checks.command(dl.container("db"), ["true"]))',
                                 {**setup, **enc})
                    assert not v.passed and not v.verified, (bad, v)   # the setup's: fallback
                    assert "is not a" in v.reason and "name" in v.reason, v.reason
                v = evaluate('cp.check(checks.command(ctr, ["true"]))', setup,
                             {"ctr": {"docker_container": bad}})
                assert not v.passed and v.verified, (bad, v)         # the student's: fails
            for host in ("unix:///nonexistent/docker.sock", "ssh://root@elsewhere", 42):
                v = evaluate('cp.check(checks.docker_network("bridge", client=client))', setup,
                             host=host)
                assert not v.passed and not v.verified and "docker" in v.reason.lower(), v
            for cell in ("dl.close()", f'dl.run("{mine}2")', 'dl.network("x")'):
                v = evaluate(f'cp.check(checks.expect({cell} is None, "changed"))', setup)
                assert not v.passed and not v.verified, (cell, v)
                assert "checkpoint cells may use dl.container(NAME)" in v.reason, v.reason
            assert [c.name for c in lab.client.containers.list(
                filters={"label": f"io.labkit.session={session}"})] == [mine]
        finally:
            alien.remove(force=True)
    client.close()
