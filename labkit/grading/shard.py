"""Grading across machines: ``labkit grade --shard I/N`` and ``labkit grade merge``.

A class's submissions are split into N shards; each machine (or Kubernetes pod)
grades one shard with the same sandbox as a single-machine run, and ``merge``
combines the shard folders into one output folder whose gradebook (CSV, JSON,
report, feedback pages) is byte-identical to grading everything on one machine::

    labkit grade EX.ipynb submitted/ -o out-1 --shard 1/3     # machine 1
    labkit grade EX.ipynb submitted/ -o out-2 --shard 2/3     # machine 2
    labkit grade EX.ipynb submitted/ -o out-3 --shard 3/3     # machine 3
    labkit grade merge out-1 out-2 out-3 -o graded

Which shard grades a submission depends only on its student id (a SHA-256 of the
id, modulo N): the split does not change when the inputs are listed in another
order, and a late submission does not move anyone else to another shard.

Each shard folder also holds ``shard.json``: the shard, the digest of the grading
settings (exercise, hidden checkpoints, limits, per-student parameters, copied
files) and every submission's student id and content digest. ``merge`` refuses
shards that disagree on those, a missing or repeated shard, and a shard that
graded the wrong students, naming the folder and what to re-run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError
from labkit.grading.gradebook import Gradebook, SubmissionGrade
from labkit.grading.grader import Submission, find_submissions
from labkit.grading.sandbox import Limits

__all__ = [
    "RECORD",
    "ShardError",
    "ShardPlan",
    "ShardSpec",
    "merge",
    "merge_main",
    "plan",
    "shard_of",
]

RECORD = "shard.json"
"""The file in a shard's output folder that describes what it graded."""

_FORMAT = 1
_PER_STUDENT = ("executed", "logs")
"""Folders of per-submission files a shard writes and ``merge`` copies over."""


class ShardError(LabkitError, ValueError):
    """A ``--shard`` value, or a set of shard folders, that cannot be used."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"2/5"`` -> ``ShardSpec(2, 5)``; a :class:`ShardError` for anything else."""
        parts = str(text).strip().split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ShardError(f"--shard {text!r} is not of the form I/N", obj=str(text),
                             op="grade --shard", remedy="write e.g. --shard 2/5 (the second "
                             "of five shards; I counts from 1)")
        index, count = (int(p) for p in parts)
        if count < 1 or not 1 <= index <= count:
            raise ShardError(f"--shard {text!r} is out of range: I must be between 1 and N, and "
                             "N at least 1", obj=str(text), op="grade --shard",
                             remedy=f"use one of 1/{max(count, 1)} .. {max(count, 1)}/"
                                    f"{max(count, 1)}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, student: str) -> bool:
        return shard_of(student, self.count) == self.index


def shard_of(student: str, count: int) -> int:
    """The shard (1-based) that grades ``student`` when there are ``count`` shards."""
    digest = hashlib.sha256(student.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for item in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(item.relative_to(folder).as_posix().encode() + b"\0")
        h.update(_file_digest(item).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ShardPlan:
    """What one shard grades, and the record that lets ``merge`` check it."""

    spec: ShardSpec
    selected: tuple[Submission, ...]
    others: tuple[Submission, ...]
    """Submissions of other shards: hidden from this shard's kernels too."""
    record: dict[str, Any]

    def write_record(self, output: str | Path) -> Path:
        path = Path(output) / RECORD
        path.write_text(json.dumps(self.record, indent=1, sort_keys=True) + "\n",
                        encoding="utf-8")
        return path


def plan(spec: ShardSpec, exercise: str | Path, submissions: Iterable[str | Path], *,
         hidden: str | Path | None = None,
         parameters: Callable[[str], Mapping[str, Any]] | None = None,
         limits: Limits | None = None, files: str | Path | None = None,
         continue_on_error: bool = False, kernel_name: str = "python3") -> ShardPlan:
    """Select this shard's submissions and describe the whole run for ``merge``."""
    subs = find_submissions(submissions)
    params = {s.student: dict(parameters(s.student)) if parameters else {} for s in subs}
    settings = {
        "exercise": _file_digest(Path(exercise)),
        "hidden": _file_digest(Path(hidden)) if hidden else None,
        "files": _folder_digest(Path(files)) if files else None,
        "limits": asdict(limits or Limits()),
        "continue_on_error": continue_on_error,
        "kernel": kernel_name,
        "parameters": params,
    }
    settings_digest = hashlib.sha256(
        json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    record = {
        "format": _FORMAT,
        "shard": str(spec),
        "exercise": Path(exercise).stem,
        "settings": settings_digest,
        "inputs": {s.student: _file_digest(s.path) for s in subs},
        "graded": sorted(s.student for s in subs if spec.holds(s.student)),
    }
    return ShardPlan(spec, tuple(s for s in subs if spec.holds(s.student)),
                     tuple(s for s in subs if not spec.holds(s.student)), record)


# --------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------

def _read_shard(folder: Path) -> tuple[dict[str, Any], Gradebook]:
    record_path, book_path = folder / RECORD, folder / "gradebook.json"
    for path in (record_path, book_path):
        if not path.is_file():
            raise ShardError(f"{folder} is not a finished shard: {path.name} is missing",
                             obj=str(folder), op="grade merge",
                             remedy="pass the -o folders of `labkit grade --shard I/N` runs that "
                                    "completed (re-run that shard if it was interrupted)")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        book = Gradebook.read_json(book_path)
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{folder}: cannot read the shard's files ({exc})", obj=str(folder),
                         op="grade merge", remedy="re-run that shard") from exc
    if record.get("format") != _FORMAT:
        raise ShardError(f"{folder}: shard record format {record.get('format')!r} is not "
                         f"{_FORMAT}", obj=str(folder), op="grade merge",
                         remedy="grade every shard with the same labkit version")
    return record, book


def _ordered(row: SubmissionGrade, ids: Sequence[str]) -> SubmissionGrade:
    """The row with its outcomes in manifest order (JSON keeps them sorted by id)."""
    by_id = {o.id: o for o in row.outcomes}
    outcomes = tuple(by_id[i] for i in ids if i in by_id)
    return SubmissionGrade(row.student, row.file, row.status, row.reason, outcomes, row.flags,
                           row.executed)


def _check(shards: list[tuple[Path, dict[str, Any], Gradebook]]) -> None:
    first_dir, first, first_book = shards[0]
    count = ShardSpec.parse(first["shard"]).count
    seen: dict[int, Path] = {}
    for folder, record, book in shards:
        spec = ShardSpec.parse(record["shard"])

        def refuse(what: str, remedy: str, folder: Path = folder) -> ShardError:
            return ShardError(f"{folder} {what}", obj=str(folder), op="grade merge",
                              remedy=remedy)

        if spec.count != count:
            raise refuse(f"is shard {spec} but {first_dir} is shard {first['shard']}",
                         "grade every shard with the same N")
        if spec.index in seen:
            raise refuse(f"repeats shard {spec} (already given by {seen[spec.index]})",
                         "pass each shard's folder once")
        seen[spec.index] = folder
        if record["settings"] != first["settings"] or book.exercise != first_book.exercise \
                or book.checkpoints != first_book.checkpoints:
            raise refuse(f"was graded with other settings than {first_dir} (exercise, hidden "
                         "checkpoints, limits, parameters or files differ)",
                         "re-run the shards with identical options")
        if record["inputs"] != first["inputs"]:
            raise refuse(f"saw other submissions than {first_dir}",
                         "give every shard the same, complete set of submissions")
        wanted = sorted(s for s in record["inputs"] if spec.holds(s))
        got = sorted(r.student for r in book.rows)
        if record["graded"] != wanted or got != wanted:
            raise refuse(f"graded {len(got)} submissions, but shard {spec} holds {len(wanted)}",
                         "re-run that shard")
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        raise ShardError(f"shards {', '.join(f'{i}/{count}' for i in missing)} are missing",
                         op="grade merge", remedy="grade them and pass their folders too")


def merge(folders: Iterable[str | Path], output: str | Path) -> Gradebook:
    """Combine shard output folders into one; return (and write) the whole gradebook."""
    dirs = [Path(f).resolve() for f in folders]
    if not dirs:
        raise ShardError("no shard folders given", op="grade merge",
                         remedy="pass the -o folder of every shard")
    out = Path(output).resolve()
    for folder in dirs:
        if out == folder or folder in out.parents or out in folder.parents:
            raise ShardError(f"the output {out} overlaps the shard folder {folder}",
                             obj=str(out), op="grade merge", remedy="merge into a new folder")
    shards = [(d, *_read_shard(d)) for d in dirs]
    _check(shards)
    book = shards[0][2]
    ids = [c.id for c in book.checkpoints]
    rows = sorted((_ordered(r, ids) for _, _, b in shards for r in b.rows),
                  key=lambda r: r.student)
    for sub in _PER_STUDENT:
        (out / sub).mkdir(parents=True, exist_ok=True)
    for folder, _, shard_book in shards:
        for row in shard_book.rows:
            for sub, name in (("executed", f"{row.student}.ipynb"), ("logs", f"{row.student}.log")):
                src = folder / sub / name
                if src.is_file():
                    shutil.copyfile(src, out / sub / name)
    # The notes (e.g. which memory limit applied) are what the single run would have
    # gathered: the union of every shard's, sorted as the grader sorts them.
    notes = tuple(sorted({n for _, _, b in shards for n in b.notes}))
    merged = Gradebook(book.exercise, book.checkpoints, tuple(rows), notes)
    merged.write(out)
    return merged


def merge_main(argv: list[str] | None = None) -> int:
    """``labkit grade merge SHARD_DIR... -o OUTPUT``."""
    parser = argparse.ArgumentParser(
        prog="labkit grade merge",
        description="Combine the output folders of `labkit grade --shard I/N` runs into one "
                    "gradebook, identical to grading everything on one machine.")
    parser.add_argument("shards", nargs="+", type=Path, help="the -o folder of every shard")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="folder for the merged gradebook, report and notebooks")
    args = parser.parse_args(argv)
    try:
        book = merge(args.shards, args.output)
    except ShardError as exc:
        print(f"labkit grade merge: {exc}", file=sys.stderr)
        return 2
    print(f"merged {len(args.shards)} shards, {len(book.rows)} submissions: "
          f"{args.output / 'gradebook.csv'}", file=sys.stderr)
    return 0
