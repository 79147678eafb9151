"""Exercises 01-06 through the real grader: every solution earns full marks, and every
untouched student copy runs to the end and earns exactly what it should.

Each exercise is graded once, as ``labkit grade`` would: the student copy
(``exercises/``) is the instructor's exercise, and two submissions are run against
it in the grader's sandbox with the default parameters: the instructor's solution
(``solutions/``) and the student copy itself, untouched. The six exercises are graded
side by side (a few sandboxed kernels at a time) in one module fixture.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from labkit.grading import Gradebook, Limits, grade

REPO = Path(__file__).resolve().parent.parent

UNTOUCHED = {
    # exercise: {checkpoint id: points an untouched copy earns}. Every checkpoint
    # needs the student's work, the "must fail" ones included: each also checks the
    # state that makes the failure meaningful (a link down, a key on one side, ...).
    "01-namespaces-and-veth": {"1.1": 0, "1.2": 0, "1.3": 0, "1.4": 0, "1.5": 0},
    "02-bridge-as-docker0": {"2.1": 0, "2.2": 0, "2.3": 0, "2.4": 0, "2.5": 0, "2.6": 0},
    "03-two-hosts-bridged-lan": {"3.1": 0, "3.2": 0, "3.3": 0, "3.4": 0, "3.5": 0},
    "04-two-hosts-routed": {"4.1": 0, "4.2": 0, "4.3": 0, "4.4": 0, "4.5": 0},
    "05-ethernet-over-gre": {"5.1": 0, "5.2": 0, "5.3": 0, "5.4": 0},
    "06-ethernet-over-vxlan": {"6.1": 0, "6.2": 0, "6.3": 0, "6.4": 0},
    "40-kubernetes": {"40.1": 0, "40.2": 0, "40.3": 0, "40.4": 0, "40.5": 0},
    "30-flannel": {"30.1": 0, "30.2": 0, "30.3": 0, "30.4": 0},
    "31-calico": {"31.1": 0, "31.2": 0, "31.3": 0, "31.4": 0, "31.5": 0},
    "32-weave": {"32.1": 0, "32.2": 0, "32.3": 0, "32.4": 0, "32.5": 0},
    "33-romana": {"33.1": 0, "33.2": 0, "33.3": 0, "33.4": 0},
}
EXERCISES = sorted(UNTOUCHED)
AT_ONCE = 3            # exercises graded at the same time (two kernels each)
TIME_LIMIT_S = 120     # per submission; each runs in about 10 s


@pytest.fixture(scope="module")
def gradebooks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Gradebook, float]]:
    root = tmp_path_factory.mktemp("course-exercises")

    def one(name: str) -> tuple[Gradebook, float]:
        exercise = REPO / "exercises" / f"{name}.ipynb"
        submitted = root / name / "submitted"
        submitted.mkdir(parents=True)
        shutil.copy(REPO / "solutions" / f"{name}.ipynb", submitted / "solution.ipynb")
        shutil.copy(exercise, submitted / "untouched.ipynb")
        started = time.monotonic()
        book = grade(exercise, [submitted], root / name / "graded", workers=2, progress=False,
                     limits=Limits(time_s=TIME_LIMIT_S))
        return book, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        return dict(zip(EXERCISES, pool.map(one, EXERCISES)))


def test_every_exercise_has_its_solution_and_checkpoints() -> None:
    for name in EXERCISES:
        exercise = nbformat.read(REPO / "exercises" / f"{name}.ipynb", as_version=4)
        assert (REPO / "solutions" / f"{name}.ipynb").exists(), name
        tags = [c.metadata.get("tags", []) for c in exercise.cells]
        assert sum("parameters" in t for t in tags) == 1, name
        assert 3 <= sum("checkpoint" in t for t in tags) <= 6, name
        code = [c for c in exercise.cells if c.cell_type == "code"]
        assert not any(c.outputs for c in code), f"{name}: the student copy is committed without outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXERCISES)
def test_solution_gets_full_marks(gradebooks: dict[str, tuple[Gradebook, float]], name: str) -> None:
    book, seconds = gradebooks[name]
    row = book.row("solution")
    assert row.status == "ok", (row.status, row.reason)
    failed = {o.id: o.reason for o in row.outcomes if o.status != "passed"}
    assert not failed, failed
    assert row.score == row.total == book.total_points, row
    assert 9 <= book.total_points <= 11, book.total_points
    assert seconds < 2 * TIME_LIMIT_S


@pytest.mark.slow
@pytest.mark.parametrize("name", EXERCISES)
def test_untouched_exercise_runs_and_earns_what_it_should(
        gradebooks: dict[str, tuple[Gradebook, float]], name: str) -> None:
    book, _ = gradebooks[name]
    row = book.row("untouched")
    assert row.status == "ok", ("the untouched student copy must run to the end", row.reason)
    assert {o.id: o.score for o in row.outcomes} == UNTOUCHED[name]
    assert row.score == sum(UNTOUCHED[name].values())
    for outcome in row.outcomes:   # reached and checked, not skipped because of an error
        assert outcome.status in ("passed", "failed") and outcome.reason, outcome
