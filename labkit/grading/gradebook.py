"""The gradebook: one row per submission, one column per checkpoint.

Written as ``gradebook.csv`` (for spreadsheets) and ``gradebook.json`` (everything,
including each checkpoint's reason and the flags). Both are deterministic: rows
sorted by student, no timings or paths that change between runs, so grading the
same inputs twice gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.grading.notebook import CheckpointSpec, Outcome
from labkit.grading.text import csv_cell, printable

__all__ = ["Gradebook", "SubmissionGrade"]


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 4)


@dataclass(frozen=True)
class SubmissionGrade:
    """The grade of one submission."""

    student: str
    file: str
    status: str
    reason: str
    outcomes: tuple[Outcome, ...]
    flags: tuple[str, ...] = ()
    executed: str | None = None
    """The executed notebook, relative to the output folder."""

    def __post_init__(self) -> None:
        # Reasons and flags quote the submission: keep them printable wherever shown.
        object.__setattr__(self, "reason", printable(self.reason))
        object.__setattr__(self, "flags", tuple(printable(f) for f in self.flags))
        object.__setattr__(self, "outcomes", tuple(
            Outcome(o.id, o.status, o.score, o.points, printable(o.reason))
            for o in self.outcomes))

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outcomes)

    @property
    def total(self) -> float:
        return sum(o.points for o in self.outcomes)

    def outcome(self, checkpoint_id: str) -> Outcome:
        return next(o for o in self.outcomes if o.id == checkpoint_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "student": self.student, "file": self.file, "status": self.status,
            "reason": self.reason, "score": _num(self.score), "total": _num(self.total),
            "flags": list(self.flags), "executed": self.executed,
            "checkpoints": {o.id: {"status": o.status, "score": _num(o.score),
                                   "points": _num(o.points), "reason": o.reason}
                            for o in self.outcomes},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubmissionGrade:
        outcomes = tuple(Outcome(cid, o["status"], o["score"], o["points"], o["reason"])
                         for cid, o in data["checkpoints"].items())
        return cls(data["student"], data["file"], data["status"], data["reason"], outcomes,
                   tuple(data.get("flags", ())), data.get("executed"))


@dataclass(frozen=True)
class Gradebook:
    """All grades of one exercise."""

    exercise: str
    checkpoints: tuple[CheckpointSpec, ...]
    rows: tuple[SubmissionGrade, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()
    """How the run was made, e.g. which memory limit applied."""

    @property
    def total_points(self) -> float:
        return sum(c.points for c in self.checkpoints)

    def row(self, student: str) -> SubmissionGrade:
        """The grade of one student (by student id)."""
        for row in self.rows:
            if row.student == student:
                return row
        raise KeyError(f"no submission from {student!r} in this gradebook")

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise,
            "total_points": _num(self.total_points),
            "checkpoints": [{"id": c.id, "title": c.title, "points": _num(c.points),
                             "hidden": c.hidden, "hint": c.hint} for c in self.checkpoints],
            "submissions": [r.to_dict() for r in self.rows],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Gradebook:
        specs = tuple(CheckpointSpec(c["id"], c["title"], c["points"], c.get("hidden", False),
                                     c.get("hint", "")) for c in data["checkpoints"])
        return cls(data["exercise"], specs,
                   tuple(SubmissionGrade.from_dict(r) for r in data["submissions"]),
                   tuple(str(n) for n in data.get("notes", ())))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def read_json(cls, path: str | Path) -> Gradebook:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def csv_rows(self) -> list[list[str]]:
        """Header and rows: student, status, score, total, one column per checkpoint, ..."""
        ids = [c.id for c in self.checkpoints]
        out = [["student", "status", "score", "total", *ids, "reason", "flags"]]
        for r in self.rows:
            out.append([csv_cell(r.student), csv_cell(r.status), str(_num(r.score)),
                        str(_num(r.total)), *(str(_num(r.outcome(i).score)) for i in ids),
                        csv_cell(r.reason), csv_cell(" | ".join(r.flags))])
        return out

    def to_csv(self) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(self.csv_rows())
        return buffer.getvalue()

    def to_frame(self) -> Any:
        """The CSV table as a pandas DataFrame (one row per submission)."""
        import pandas as pd

        header, *rows = self.csv_rows()
        frame = pd.DataFrame(rows, columns=header)
        for col in ["score", "total", *(c.id for c in self.checkpoints)]:
            frame[col] = pd.to_numeric(frame[col])
        return frame

    def write(self, folder: str | Path) -> dict[str, Path]:
        """Write ``gradebook.csv``, ``gradebook.json``, ``report.html`` and feedback pages."""
        from labkit.grading.report import write_report

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"csv": folder / "gradebook.csv", "json": folder / "gradebook.json"}
        paths["csv"].write_text(self.to_csv(), encoding="utf-8")
        paths["json"].write_text(self.to_json(), encoding="utf-8")
        paths.update(write_report(self, folder))
        return paths
