"""What a student sees in a notebook: teaching errors, static figures, widget snapshots, no leaked labs.

The kernel tests start a real IPython kernel (the one notebooks use) and talk to it
as JupyterLab does.
"""

from __future__ import annotations

import os
import shutil
import time

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from labkit import CommandFailed, InvalidName, KernelError, Lab
from labkit.checkpoints import checks
from labkit.doctor import Check, Report, _docker_check

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def run_cells(*sources: str) -> list[nbformat.NotebookNode]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=240).execute()
    return nb.cells


# -- the review's message fixes -----------------------------------------------------------


def test_message_texts_name_the_right_thing(lab: Lab) -> None:
    with pytest.raises(InvalidName, match=r"^lab name 'my lab' is not valid"):
        Lab("my lab")
    c1 = lab.add_host("c1")
    with pytest.raises(KernelError) as missing:
        c1.del_route("10.9.0.0/24")
    assert missing.value.message.startswith("delete route 10.9.0.0/24 on node 'c1': kernel said ESRCH")
    with pytest.raises(CommandFailed) as failed:
        c1.run(["ls", "/no-such-dir"], check=True)
    assert "No such file or directory" in failed.value.message and "above" in failed.value.remedy
    assert ".stderr" in failed.value.remedy
    unreachable = checks.ping(c1, "10.1.1.1")
    assert not unreachable.passed
    assert "Network is unreachable, no echo request sent" in unreachable.reason and "0 of 0" not in unreachable.reason


def test_doctor_marks_optional_items_apart_and_gives_the_docker_remedy_that_works() -> None:
    report = Report("full", [Check("kernel gretap", False, "absent", "nothing", "optional", optional=True),
                             Check("tool tshark", False, "not installed", "dissecting", "apt-get install tshark")])
    text = report.text()
    assert "[opt ] kernel gretap" in text and "[miss] tool tshark" in text
    assert text.count("fix:") == 1 and report.ok
    remedy = _docker_check().remedy
    assert "root" in remedy and "join the docker group" not in remedy


# -- a real kernel --------------------------------------------------------------------------


def test_labkit_error_in_a_cell_shows_the_lesson_and_keeps_the_traceback_on_demand() -> None:
    cells = run_cells("import labkit", "labkit.Lab('my lab')", "%tb")
    error = next(o for o in cells[1].outputs if o.output_type == "error")
    shown = "\n".join(error.traceback)
    assert error.ename == "InvalidName" and "lab name 'my lab' is not valid" in error.evalue
    assert "What to do:" in shown and "letters, digits" in shown and "%tb" in shown
    assert "lab.py" not in shown and len(shown.splitlines()) <= 5   # no walk through labkit's internals
    full = "\n".join(next(o for o in cells[2].outputs if o.output_type == "error").traceback)
    assert "lab.py" in full and "InvalidName" in full


@pytest.mark.skipif(CHROMIUM is None, reason="static figures need Chromium (apt-get install chromium)")
def test_a_plotly_figure_carries_a_png() -> None:
    cells = run_cells("import labkit\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(x=['a'], y=[1]))",
                      "go.Figure(go.Bar(x=['b'], y=[2])).show()")   # fig.show() too, once plotly is loaded
    for cell in cells:
        data = next(o for o in cell.outputs if o.output_type == "display_data").data
        assert "application/vnd.plotly.v1+json" in data and data["image/png"].startswith("iVBORw0KGgo")


@pytest.mark.skipif(CHROMIUM is None, reason="static figures need Chromium (apt-get install chromium)")
def test_the_first_figure_shown_with_fig_show_carries_a_png() -> None:
    """plotly loads plotly.io lazily: a first ``fig.show()`` (notebook 41's case) needs the renderer already."""
    cells = run_cells("import labkit\nimport plotly.graph_objects as go",
                      "go.Figure(go.Bar(x=['a'], y=[1])).show()")
    data = next(o for o in cells[1].outputs if o.output_type == "display_data").data
    assert "application/vnd.plotly.v1+json" in data and data["image/png"].startswith("iVBORw0KGgo")


def _execute(kc, code: str, cell_id: str) -> list[dict]:
    """Run ``code`` as JupyterLab does for a cell (its id in the request's metadata); the outputs."""
    msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False,
                                             "stop_on_error": True}, metadata={"cellId": cell_id})
    kc.shell_channel.send(msg)
    outputs = []
    while True:
        reply = kc.get_iopub_msg(timeout=120)
        if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            continue
        if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
            return outputs
        if reply["msg_type"] in ("stream", "display_data", "execute_result", "error", "update_display_data"):
            outputs.append(reply)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_rerunning_a_workbench_cell_closes_the_previous_lab_and_closing_leaves_a_snapshot() -> None:
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        cell = "from labkit.widgets import workbench\nwb = workbench('docker0')\nwb.build()\ndisplay(wb)"
        first = _execute(kc, cell + "\nprint(wb.lab.supervisor_pid)", "cell-a")
        pid = int(next(o for o in first if o["msg_type"] == "stream")["content"]["text"].split()[-1])
        shown = next(o for o in first if o["msg_type"] == "display_data")["content"]["data"]
        assert "application/vnd.jupyter.widget-view+json" in shown and "labkit-snapshot" in shown["text/html"]
        assert "docker0" in shown["text/html"] and "<svg" in shown["text/html"]  # the plan's drawing
        assert _alive(pid)
        _execute(kc, cell, "cell-a")                     # the same cell again: a new workbench
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), "the first workbench's lab outlived the re-run of its cell"
        closed = _execute(kc, "wb.close()", "cell-b")
        update = next(o for o in closed if o["msg_type"] == "update_display_data")["content"]["data"]
        assert "application/vnd.jupyter.widget-view+json" not in update   # a closed widget is a blank box
        assert "as it was when it was closed" in update["text/html"] and "c1" in update["text/html"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_lessons_named_by_number_exist() -> None:
    """doctor and the lessons name notebooks by number; each named one must exist (they stay true as lessons land).

    "notebooks 30 onwards" points at a section still being written, not at one lesson.
    """
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    existing = {p.name[:2] for p in (root / "course" / "notebooks").glob("[0-9][0-9]-*.py")}
    sources = [root / "labkit" / "doctor.py", *sorted((root / "course").rglob("[0-9][0-9]-*.py"))]
    for source in sources:
        text = source.read_text()
        for match in re.finditer(r"[Nn]otebooks? ((?:\d\d(?:,? (?:and|to|or) |, |/))*\d\d)\b(?! onwards)", text):
            for number in re.findall(r"\d\d", match.group(1)):
                assert number in existing, f"{source.name} names notebook {number}, which does not exist"
