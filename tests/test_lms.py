"""Marks into the LMS: Moodle's and Canvas's grade-import CSV, checked column by column
against what the two systems document for their import (and write in their exports)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.grading import Gradebook, Manifest, Outcome, SubmissionGrade
from labkit.grading.lms import (
    CANVAS_COLUMNS,
    MOODLE_IDENTIFIERS,
    ExportError,
    canvas_csv,
    moodle_csv,
    read_roster,
)

BASIC = Path(__file__).parent / "data" / "grading" / "basic"


def _book() -> Gradebook:
    m = Manifest.from_exercise(BASIC / "exercise.ipynb", BASIC / "hidden.py")

    def outs(*passed: int) -> tuple[Outcome, ...]:
        return tuple(Outcome(c.id, "passed" if x else "failed", c.points if x else 0, c.points,
                             "checked" if x else "gateway 10.0.0.1, \"wrong\"")
                     for c, x in zip(m.checkpoints, passed))

    rows = (SubmissionGrade("amy", "amy.ipynb", "ok", "", outs(1, 1, 1, 1)),
            SubmissionGrade("bob", "bob.ipynb", "timeout", "time limit of 60 s reached",
                            outs(1, 0, 0, 0), ("flag for the instructor only",)))
    return Gradebook("basic", m.checkpoints, rows)


def _parse(text: str) -> list[list[str]]:
    assert text.endswith("\r\n")  # RFC 4180 line ends, which both importers accept
    return list(csv.reader(io.StringIO(text, newline="")))


def test_moodle_total_item_with_feedback():
    rows = _parse(moodle_csv(_book()))
    header = rows[0]
    # the identifier column first, named after a user field Moodle maps from
    assert header[0] == "ID number" and header[0] in MOODLE_IDENTIFIERS
    assert header[1:] == ["basic", "Feedback: basic"]
    assert [r[:2] for r in rows[1:]] == [["amy", "5"], ["bob", "2"]]
    for r in rows[1:]:
        assert len(r) == len(header)
        float(r[1])  # a plain number with a decimal point: what the import reads
    amy, bob = rows[1][2], rows[2][2]
    assert amy.splitlines()[0] == ("1.1 The gateway is the first usable address of the subnet: "
                                   "passed (2/2): checked")
    lines = bob.splitlines()
    assert lines[0] == "Run: timeout (time limit of 60 s reached)"
    assert len(lines) == 5 and 'gateway 10.0.0.1, "wrong"' in lines[2]  # quotes survive
    assert "Hint: " in bob and "flag for the instructor" not in bob


def test_moodle_one_item_per_checkpoint_and_a_roster(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("student,Email address,Section\namy,amy@uni.example,A\n"
                      "bob,bob@uni.example,B\n", encoding="utf-8")
    book = _book()
    rows = _parse(moodle_csv(book, items="checkpoints", identifier="Email address",
                             item_name="Lab 1", roster=read_roster(roster)))
    header = rows[0]
    assert header[0] == "Email address"
    ids = [c.id for c in book.checkpoints]
    assert header[1::2] == [f"Lab 1 {c.id} {c.title}" for c in book.checkpoints]
    assert header[2::2] == [f"Feedback: {h}" for h in header[1::2]]  # each after its item
    assert rows[1][0] == "amy@uni.example" and rows[2][0] == "bob@uni.example"
    assert rows[2][1::2] == [str(int(book.row("bob").outcome(i).score)) for i in ids]
    assert rows[2][4].splitlines()[0].startswith("Run: timeout")  # the run, then its own line
    assert rows[2][4].splitlines()[1].startswith("1.2 ") and rows[2][4].count("\n") == 1
    with pytest.raises(ExportError, match="'carol' of the gradebook is not in the roster"):
        moodle_csv(Gradebook("basic", book.checkpoints, book.rows + (
            SubmissionGrade("carol", "carol.ipynb", "ok", "", book.rows[0].outcomes),)),
            roster=read_roster(roster))
    with pytest.raises(ExportError, match="not a user field"):
        moodle_csv(book, identifier="Student number")
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(ExportError, match="no 'student' column"):
        read_roster(tmp_path / "bad.csv")


def test_canvas_gradebook_columns_and_points_possible(tmp_path):
    book = _book()
    rows = _parse(canvas_csv(book, item_name="Lab 1", assignment_id=4321))
    # Canvas's gradebook export/import layout: these five columns, in this order
    assert tuple(rows[0][:5]) == CANVAS_COLUMNS == (
        "Student", "ID", "SIS User ID", "SIS Login ID", "Section")
    assert rows[0][5:] == ["Lab 1 (4321)"]  # name (assignment id): an existing assignment
    assert rows[1] == ["Points Possible", "", "", "", "", "5"]
    assert rows[2] == ["amy", "", "", "amy", "", "5"] and rows[3][-1] == "2"
    roster = tmp_path / "roster.csv"
    roster.write_text("student,Student,ID,SIS User ID,Section\n"
                      "amy,\"Doe, Amy\",101,S-1,Lab A\nbob,\"Roe, Bob\",102,S-2,Lab B\n")
    rows = _parse(canvas_csv(book, roster=read_roster(roster)))
    assert rows[0][5] == "basic"  # no id: Canvas creates a new assignment of that name
    assert rows[2] == ["Doe, Amy", "101", "S-1", "", "Lab A", "5"]


def test_export_command_reads_a_graded_folder(tmp_path):
    book = _book()
    book.write(tmp_path / "graded")
    for lms in ("moodle", "canvas"):
        out = tmp_path / f"{lms}.csv"
        run = subprocess.run([sys.executable, "-m", "labkit.cli", "grade", "export",
                              str(tmp_path / "graded"), "--lms", lms, "-o", str(out)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert f"{lms}: 2 students" in run.stderr
        want = moodle_csv(book) if lms == "moodle" else canvas_csv(book)
        assert out.read_bytes() == want.encode("utf-8")
    bad = subprocess.run([sys.executable, "-m", "labkit.cli", "grade", "export", str(tmp_path),
                          "--lms", "moodle", "-o", str(tmp_path / "x.csv")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "holds no gradebook.json" in bad.stderr
