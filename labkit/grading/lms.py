"""Marks into the LMS: the gradebook as Moodle's and Canvas's grade-import CSV files.

::

    labkit grade export GRADED/ --lms moodle -o moodle.csv [--items total|checkpoints]
                        [--identifier "ID number"] [--item-name "Lab 3"] [--roster roster.csv]
    labkit grade export GRADED/ --lms canvas -o canvas.csv [--item-name "Lab 3"]
                        [--canvas-assignment-id 1234] [--roster roster.csv]

**Moodle** (Grades > Import > CSV file): one identifier column that Moodle maps to a
user field (``ID number``, ``Username``, ``Email address`` or ``User ID``), then one
column per grade item — the exercise's total, or one per checkpoint — each followed
by a ``Feedback: <item>`` column (the checkpoint results, reasons and hints as plain
text lines). In the import form, "Map from" is the identifier column and each grade
column is mapped to its grade item, each feedback column to that item's feedback.

**Canvas** (Grades > Import): the columns Canvas's own gradebook export has —
``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section`` — then one
assignment column, ``<name> (<assignment id>)`` for an existing assignment or
``<name>`` to create one; the second row is ``Points Possible``. Canvas matches
students by ``ID``, then ``SIS User ID``, then ``SIS Login ID``, and its CSV import
takes no comments: hand back the ``feedback/<student>.html`` pages instead.

Student ids come from submission file names. ``--roster`` is a CSV with a
``student`` column (those ids) and any of the LMS columns above, to fill them from
the class list; without it the student id goes into Moodle's identifier column and
Canvas's ``SIS Login ID``. A student of the gradebook missing from a given roster is
an error naming them (a mark silently dropped is worse than a failed export).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Mapping
from pathlib import Path

from labkit.errors import LabkitError
from labkit.grading.gradebook import Gradebook, SubmissionGrade, _num

__all__ = [
    "CANVAS_COLUMNS",
    "MOODLE_IDENTIFIERS",
    "ExportError",
    "canvas_csv",
    "export_main",
    "feedback_text",
    "moodle_csv",
    "read_roster",
]

MOODLE_IDENTIFIERS = ("ID number", "Username", "Email address", "User ID")
"""Column names for the user fields Moodle's CSV import can map from."""

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
"""The leading columns of a Canvas gradebook CSV, in Canvas's order."""


class ExportError(LabkitError, ValueError):
    """A gradebook that cannot be exported as asked (bad option, incomplete roster)."""


def _write(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def read_roster(path: str | Path) -> dict[str, dict[str, str]]:
    """``{student id: {column: value}}`` from a CSV with a ``student`` column."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if "student" not in (reader.fieldnames or []):
            raise ExportError(f"roster {path} has no 'student' column", obj=str(path),
                              op="grade export", remedy="add a header row with a 'student' "
                              "column holding the ids of the submission file names")
        return {row["student"].strip(): {k: (v or "").strip() for k, v in row.items() if k}
                for row in reader if row.get("student")}


def _person(row: SubmissionGrade, roster: Mapping[str, Mapping[str, str]] | None
            ) -> Mapping[str, str]:
    if roster is None:
        return {}
    if row.student not in roster:
        raise ExportError(f"student {row.student!r} of the gradebook is not in the roster",
                          obj=row.student, op="grade export",
                          remedy="add them to the roster (or rename the submission file)")
    return roster[row.student]


def feedback_text(book: Gradebook, row: SubmissionGrade, ids: list[str] | None = None) -> str:
    """Plain-text feedback: one line per checkpoint (result, points, reason, hint)."""
    lines = []
    if row.status != "ok":
        lines.append(f"Run: {row.status}" + (f" ({row.reason})" if row.reason else ""))
    for spec in book.checkpoints:
        if ids is not None and spec.id not in ids:
            continue
        out = row.outcome(spec.id)
        line = f"{spec.id} {spec.title}: {out.status} ({_num(out.score)}/{_num(out.points)})"
        if out.reason:
            line += f": {out.reason}"
        if out.status != "passed" and spec.hint:
            line += f" Hint: {spec.hint}"
        lines.append(line)
    return "\n".join(lines)


def moodle_csv(book: Gradebook, *, items: str = "total", identifier: str = "ID number",
               item_name: str | None = None,
               roster: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The gradebook as a Moodle grade-import CSV."""
    if items not in ("total", "checkpoints"):
        raise ExportError(f"items {items!r} is neither 'total' nor 'checkpoints'", obj=items,
                          op="grade export", remedy="use --items total or --items checkpoints")
    if identifier not in MOODLE_IDENTIFIERS:
        raise ExportError(f"identifier {identifier!r} is not a user field Moodle maps from",
                          obj=identifier, op="grade export",
                          remedy=f"use one of {', '.join(MOODLE_IDENTIFIERS)}")
    name = item_name or book.exercise
    if items == "total":
        names = [name]
    else:
        names = [f"{name} {c.id} {c.title}" for c in book.checkpoints]
    header = [identifier]
    for item in names:
        header += [item, f"Feedback: {item}"]
    out = [header]
    for row in book.rows:
        ident = _person(row, roster).get(identifier) or row.student
        cells = [ident]
        if items == "total":
            cells += [str(_num(row.score)), feedback_text(book, row)]
        else:
            for spec in book.checkpoints:
                cells += [str(_num(row.outcome(spec.id).score)),
                          feedback_text(book, row, [spec.id])]
        out.append(cells)
    return _write(out)


def canvas_csv(book: Gradebook, *, item_name: str | None = None,
               assignment_id: int | None = None,
               roster: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The gradebook as a Canvas gradebook-import CSV (one assignment: the total)."""
    name = item_name or book.exercise
    column = f"{name} ({assignment_id})" if assignment_id is not None else name
    out = [[*CANVAS_COLUMNS, column],
           ["Points Possible", "", "", "", "", str(_num(book.total_points))]]
    for row in book.rows:
        person = _person(row, roster)
        values = {c: person.get(c, "") for c in CANVAS_COLUMNS}
        if not (values["ID"] or values["SIS User ID"] or values["SIS Login ID"]):
            values["SIS Login ID"] = row.student
        values["Student"] = values["Student"] or row.student
        out.append([*(values[c] for c in CANVAS_COLUMNS), str(_num(row.score))])
    return _write(out)


def export_main(argv: list[str] | None = None) -> int:
    """``labkit grade export GRADED --lms moodle|canvas -o FILE``."""
    parser = argparse.ArgumentParser(
        prog="labkit grade export",
        description="Write a gradebook as a Moodle or Canvas grade-import CSV file.")
    parser.add_argument("graded", type=Path, help="the -o folder of `labkit grade` (or merge)")
    parser.add_argument("--lms", choices=("moodle", "canvas"), required=True)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--items", choices=("total", "checkpoints"), default="total",
                        help="Moodle: one grade item for the total, or one per checkpoint")
    parser.add_argument("--identifier", default="ID number", choices=MOODLE_IDENTIFIERS,
                        help="Moodle: the user field the identifier column maps to")
    parser.add_argument("--item-name", help="grade item / assignment name (default: the "
                                            "exercise's name)")
    parser.add_argument("--canvas-assignment-id", type=int,
                        help="Canvas: the id of the existing assignment to fill")
    parser.add_argument("--roster", type=Path, help="CSV: student,<LMS columns>...")
    args = parser.parse_args(argv)
    try:
        book_path = args.graded / "gradebook.json"
        if not book_path.is_file():
            raise ExportError(f"{args.graded} holds no gradebook.json", obj=str(args.graded),
                              op="grade export", remedy="pass the -o folder of `labkit grade`")
        book = Gradebook.read_json(book_path)
        roster = read_roster(args.roster) if args.roster else None
        if args.lms == "moodle":
            text = moodle_csv(book, items=args.items, identifier=args.identifier,
                              item_name=args.item_name, roster=roster)
        else:
            text = canvas_csv(book, item_name=args.item_name,
                              assignment_id=args.canvas_assignment_id, roster=roster)
    except (ExportError, OSError) as exc:
        print(f"labkit grade export: {exc}", file=sys.stderr)
        return 2
    args.output.write_bytes(text.encode("utf-8"))
    print(f"{args.lms}: {len(book.rows)} students -> {args.output}", file=sys.stderr)
    return 0
