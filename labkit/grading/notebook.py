"""Exercise notebooks as the grader sees them: the manifest, preparation, results.

Exercise conventions
--------------------
* A cell tagged ``parameters`` (papermill's convention) defines ``student_id`` and the
  values the instructor may vary per student (subnets, VNIs, ...). The grader
  injects ``student_id`` and the instructor's values after it.
* Checkpoint cells are tagged ``checkpoint`` and create their checkpoints with
  literal arguments, ``Checkpoint("2.1", "title", points=2, ...)``, so the grader can
  read ids, titles and points without running anything.
* Cells that fail on purpose are tagged ``raises-exception``.
* Hidden checkpoints live in a separate file the students never get (a ``.py`` file
  with ``# %%`` cell markers, or a notebook); each of its cells is a checkpoint cell
  that the grader appends at the end of every submission.

What the grader trusts
----------------------
The kernel runs the student's code, so nothing displayed in it is trusted. The
grader therefore:

1. reads the manifest (ids, titles, points, the exact source of every checkpoint
   cell, the parameters and setup cells) from the instructor's exercise notebook
   and hidden file, never from the submission; points always come from the manifest;
2. before running, clears every output of the submission, removes any grader
   metadata and papermill tags it carries, puts the instructor's parameters and
   setup cells first (student code found before them runs after them, flagged), and
   puts the instructor's source back into each checkpoint cell (matched by the
   checkpoint ids it declares, else by cell id); a checkpoint cell the student
   deleted is appended at the end; edits are flagged;
3. marks those cells (and the hidden ones it appends) in cell metadata, which only
   the grader's own process writes;
4. while running, after each marked checkpoint cell, runs the instructor's source
   of that cell again outside the kernel, against the real labs
   (:mod:`labkit.grading.evaluator`; the rules a checkpoint cell must follow are in
   :mod:`labkit.checkpoints`): **those verdicts are the grade**;
5. after running, compares them with what the notebook displayed in marked cells
   and flags every difference (possible tampering), results displayed elsewhere,
   and changes to the kernel's hooks, display formatters and checkpoint names.

Every executed notebook is kept for review, with the flags in the gradebook.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat
from nbformat import NotebookNode

from labkit.checkpoints import MIME_TYPE
from labkit.errors import LabkitError

__all__ = [
    "META_KEY",
    "TAG_CHECKPOINT",
    "TAG_HIDDEN",
    "CheckpointCell",
    "CheckpointSpec",
    "Collected",
    "Manifest",
    "ManifestError",
    "Outcome",
    "collect",
    "declared_checkpoints",
    "prepare",
]

TAG_CHECKPOINT = "checkpoint"
TAG_HIDDEN = "hidden-checkpoint"
TAG_PARAMETERS = "parameters"
TAG_SETUP = "setup"
META_KEY = "labkit"
"""Cell metadata key the grader writes (``{"grader": {"checkpoints": [...]}}``)."""

_SUSPICIOUS_TEXT = ("vnd.labkit", "publish_display_data", "sys.modules", "_RESULTS",
                    "_repr_mimebundle_")
_LABKIT_ROOTS = {"labkit", "checkpoints", "Checkpoint", "checks", "CheckResult",
                 "CheckpointResult", "IPython", "display"}


class ManifestError(LabkitError, ValueError):
    """An exercise or hidden-checkpoint file that does not follow the conventions."""


@dataclass(frozen=True)
class CheckpointSpec:
    """One checkpoint as the instructor declared it."""

    id: str
    title: str
    points: float
    hidden: bool = False
    hint: str = ""


@dataclass(frozen=True)
class CheckpointCell:
    """One instructor checkpoint cell: its exact source and the checkpoints it declares."""

    source: str
    ids: tuple[str, ...]
    hidden: bool = False
    cell_id: str | None = None


@dataclass(frozen=True)
class InstructorCell:
    """A cell of the exercise that the grader runs as the instructor wrote it."""

    source: str
    cell_id: str | None = None


def _is_prompt(source: str) -> bool:
    """A cell the student is meant to fill in (``...`` placeholders, "YOUR CODE HERE")."""
    if "YOUR CODE HERE" in source:
        return True
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return True
    return any(isinstance(n, ast.Constant) and n.value is Ellipsis for n in ast.walk(tree))


def setup_cells(nb: NotebookNode) -> tuple[InstructorCell, ...]:
    """The exercise's setup cells: those tagged ``setup``; without that tag, the code
    cells right after the ``parameters`` cell up to the first checkpoint or prompt."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if TAG_SETUP in c.metadata.get("tags", [])]
    if not tagged:
        start = next((i for i, c in enumerate(code)
                      if TAG_PARAMETERS in c.metadata.get("tags", [])), None)
        if start is not None:
            for cell in code[start + 1:]:
                if TAG_CHECKPOINT in cell.metadata.get("tags", []) or _is_prompt(cell.source):
                    break
                tagged.append(cell)
    return tuple(InstructorCell(c.source, c.get("id")) for c in tagged)


@dataclass(frozen=True)
class Manifest:
    """What an exercise checks, read from the instructor's files only."""

    cells: tuple[CheckpointCell, ...]
    checkpoints: tuple[CheckpointSpec, ...]
    parameters: str = ""
    """The source of the exercise's ``parameters`` cell ("" when it has none)."""
    setup: tuple[InstructorCell, ...] = ()
    """The exercise's setup cells (see :func:`setup_cells`)."""

    @property
    def total_points(self) -> float:
        return sum(c.points for c in self.checkpoints)

    def spec(self, checkpoint_id: str) -> CheckpointSpec:
        return next(c for c in self.checkpoints if c.id == checkpoint_id)

    @classmethod
    def from_exercise(cls, exercise: str | Path | NotebookNode,
                      hidden: str | Path | None = None) -> Manifest:
        """Read the checkpoint cells of an exercise notebook and of a hidden file."""
        nb = exercise if isinstance(exercise, NotebookNode) else _read(Path(exercise))
        cells: list[CheckpointCell] = []
        specs: list[CheckpointSpec] = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            tagged = TAG_CHECKPOINT in cell.metadata.get("tags", [])
            declared = declared_checkpoints(cell.source, where=f"exercise cell {index + 1}")
            if declared and not tagged:
                raise ManifestError(
                    f"exercise cell {index + 1} creates checkpoint(s) "
                    f"{', '.join(d.id for d in declared)} but is not tagged {TAG_CHECKPOINT!r}",
                    obj=f"cell {index + 1}", op="read exercise",
                    remedy=f"add the tag {TAG_CHECKPOINT!r} to the cell")
            if tagged:
                if not declared:
                    raise ManifestError(f"exercise cell {index + 1} is tagged {TAG_CHECKPOINT!r} but "
                                        "creates no Checkpoint(...)", obj=f"cell {index + 1}",
                                        op="read exercise", remedy="remove the tag or add one")
                cells.append(CheckpointCell(cell.source, tuple(d.id for d in declared),
                                            False, cell.get("id")))
                specs.extend(declared)
        if hidden is not None:
            for index, source in enumerate(load_hidden(Path(hidden))):
                declared = declared_checkpoints(source, where=f"hidden cell {index + 1}", hidden=True)
                if not declared:
                    raise ManifestError(f"hidden cell {index + 1} of {hidden} creates no Checkpoint",
                                        obj=str(hidden), op="read hidden checkpoints")
                cells.append(CheckpointCell(source, tuple(d.id for d in declared), True))
                specs.extend(declared)
        seen: set[str] = set()
        for spec in specs:
            if spec.id in seen:
                raise ManifestError(f"checkpoint id {spec.id!r} is declared twice",
                                    obj=spec.id, op="read exercise",
                                    remedy="give every checkpoint its own id")
            seen.add(spec.id)
        if not specs:
            raise ManifestError("the exercise declares no checkpoint", op="read exercise",
                                remedy=f"tag checkpoint cells {TAG_CHECKPOINT!r}")
        params = next((c for c in nb.cells if c.cell_type == "code"
                       and TAG_PARAMETERS in c.metadata.get("tags", [])), None)
        return cls(tuple(cells), tuple(specs), params.source if params is not None else "",
                   setup_cells(nb))


def _read(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def load_hidden(path: Path) -> list[str]:
    """Cell sources of a hidden-checkpoint file: a notebook, or ``.py`` with ``# %%``."""
    if path.suffix == ".ipynb":
        return [c.source for c in _read(path).cells if c.cell_type == "code" and c.source.strip()]
    chunks = re.split(r"^# ?%%.*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    def has_code(chunk: str) -> bool:
        return any(line.strip() and not line.lstrip().startswith("#") for line in chunk.splitlines())
    return [chunk.strip("\n") + "\n" for chunk in chunks if has_code(chunk)]


def declared_checkpoints(source: str, *, where: str = "cell",
                         hidden: bool = False) -> list[CheckpointSpec]:
    """The ``Checkpoint(...)`` calls in a cell, read statically (literal arguments only)."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return []
    found: list[CheckpointSpec] = []
    calls = sorted((n for n in ast.walk(tree)
                    if isinstance(n, ast.Call) and _callee(n.func) == "Checkpoint"),
                   key=lambda n: (n.lineno, n.col_offset))  # source order
    for node in calls:
        args = list(node.args)
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        id_node = args[0] if args else kwargs.get("id")
        title_node = args[1] if len(args) > 1 else kwargs.get("title")
        points_node = kwargs.get("points")
        try:
            cid = _literal(id_node, str)
            title = _literal(title_node, str) if title_node is not None else cid
            points = _literal(points_node, (int, float)) if points_node is not None else 1
        except ValueError as exc:
            raise ManifestError(f"{where}: Checkpoint(...) needs literal id, title and points "
                                f"({exc})", obj=where, op="read checkpoints",
                                remedy='write e.g. Checkpoint("2.1", "h1 reaches h2", points=2)'
                                ) from None
        hint_node = kwargs.get("hint")
        hint = hint_node.value if isinstance(hint_node, ast.Constant) \
            and isinstance(hint_node.value, str) else ""
        found.append(CheckpointSpec(cid, title, points, hidden, hint))
    return found


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal(node: ast.expr | None, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(node, ast.Constant) or not isinstance(node.value, kind) \
            or isinstance(node.value, bool):
        raise ValueError(f"got {ast.unparse(node) if node is not None else 'nothing'}")
    return node.value


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


# --------------------------------------------------------------------------------------
# Preparing a submission
# --------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A submission ready to run, and what the preparation noticed."""

    nb: NotebookNode
    flags: list[str] = field(default_factory=list)


PYTHON_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _python_metadata(nb: NotebookNode) -> list[str]:
    """Make the notebook say it is Python, whatever the submission's metadata claimed.

    papermill picks the language of the injected parameters from ``language_info`` or
    ``kernelspec`` (not from the kernel it is told to run): a submission with none, a
    string kernelspec, a list for a name or another language made it crash or inject R
    syntax into a Python kernel. Exercises are Python, so both are set; a change is flagged.
    """
    meta = nb.setdefault("metadata", {})
    spec, info = meta.get("kernelspec"), meta.get("language_info")
    ok_spec = isinstance(spec, dict) and spec.get("language") == "python" \
        and isinstance(spec.get("name"), str)
    ok_info = isinstance(info, dict) and info.get("name") == "python"
    odd = (spec is not None and not ok_spec) or (info is not None and not ok_info)
    meta["kernelspec"] = spec if ok_spec else dict(PYTHON_KERNELSPEC)
    meta["language_info"] = info if ok_info else {"name": "python"}
    # Missing metadata (a notebook written by a script) is filled in silently; metadata
    # that names something else is worth the instructor's eye.
    return ["the notebook's kernel metadata was not Python's: it was run as Python 3"] if odd else []


def prepare(submission: NotebookNode, manifest: Manifest) -> Prepared:
    """Clear outputs, restore and mark the checkpoint cells, append the hidden ones."""
    nb = copy.deepcopy(submission)
    nb.nbformat, nb.nbformat_minor = 4, max(int(nb.get("nbformat_minor", 0)), 5)
    flags: list[str] = []
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop(META_KEY, None)
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "id" not in cell or not cell.get("id"):
            cell["id"] = f"labkit-cell-{index}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    flags.extend(_python_metadata(nb))
    flags.extend(_instructor_first(nb, manifest))
    used: set[int] = set()
    missing: list[CheckpointCell] = []
    for wanted in (c for c in manifest.cells if not c.hidden):
        found = _find_cell(nb, wanted, used)
        if found is None:
            missing.append(wanted)
            flags.append(f"checkpoint cell {'/'.join(wanted.ids)} was missing: the instructor's "
                         "cell was appended at the end")
            continue
        used.add(found)
        cell = nb.cells[found]
        if cell.cell_type != "code" or cell.source.strip() != wanted.source.strip():
            flags.append(f"checkpoint cell {'/'.join(wanted.ids)} was edited: the instructor's "
                         "version was run")
        nb.cells[found] = _checkpoint_cell(wanted, cell.get("id"))
    student_cells = [c for i, c in enumerate(nb.cells) if i not in used and c.cell_type == "code"]
    roots = labkit_names(c.source for c in student_cells)
    for index, cell in enumerate(nb.cells):
        if index in used or cell.cell_type != "code" or META_KEY in cell.metadata \
                or TAG_PARAMETERS in cell.metadata.get("tags", []):
            continue
        tags = cell.metadata.get("tags", [])
        if TAG_CHECKPOINT in tags:
            flags.append(f"cell {index + 1} is tagged {TAG_CHECKPOINT!r} but is not one of the "
                         "exercise's checkpoint cells: its results are ignored")
        flags.extend(f"cell {index + 1}: {note}" for note in suspicious(cell.source, roots))
    for wanted in missing:
        nb.cells.append(_checkpoint_cell(wanted, None))
    for wanted in (c for c in manifest.cells if c.hidden):
        nb.cells.append(_checkpoint_cell(wanted, None))
    for index, cell in enumerate(nb.cells):
        if not cell.get("id"):
            cell["id"] = f"labkit-grader-{index}"
    return Prepared(nb, flags)


def _instructor_first(nb: NotebookNode, manifest: Manifest) -> list[str]:
    """Put the instructor's parameters and setup cells first, as the instructor wrote
    them, so that no student code runs before the grader's snapshot of the setup."""
    flags: list[str] = []
    for cell in nb.cells:  # papermill injects after the first cell with these tags
        tags = cell.metadata.get("tags", [])
        if TAG_PARAMETERS in tags or "injected-parameters" in tags or TAG_SETUP in tags:
            cell.metadata["tags"] = [t for t in tags if t not in
                                     (TAG_PARAMETERS, "injected-parameters", TAG_SETUP)]
            if "injected-parameters" in tags:
                cell.source = ""  # an earlier papermill run's values: never the student's
    if not manifest.parameters and not manifest.setup:
        return flags
    wanted = ([InstructorCell(manifest.parameters)] if manifest.parameters else []) \
        + list(manifest.setup)
    placed: list[NotebookNode] = []
    taken: set[int] = set()
    for index, item in enumerate(wanted):
        is_params = index == 0 and bool(manifest.parameters)
        found = None
        for i, cell in enumerate(nb.cells):
            if i in taken or cell.cell_type != "code":
                continue
            if (is_params and TAG_PARAMETERS in (cell.metadata.get("tags") or [])) \
                    or (item.cell_id and cell.get("id") == item.cell_id) \
                    or cell.source.strip() == item.source.strip():
                found = i
                break
        what = "parameters cell" if is_params else f"setup cell {index + (0 if manifest.parameters else 1)}"
        if found is None:
            flags.append(f"the {what} was missing: the instructor's was run")
            cell = nbformat.v4.new_code_cell(item.source)
        else:
            taken.add(found)
            cell = nb.cells[found]
            if cell.source.strip() != item.source.strip():
                flags.append(f"the {what} was edited: the instructor's version was run")
            cell.source = item.source
            cell.outputs, cell.execution_count = [], None
        tags = [t for t in cell.metadata.get("tags", []) if t != TAG_CHECKPOINT]
        cell.metadata["tags"] = tags + ([TAG_PARAMETERS] if is_params else [TAG_SETUP])
        if not is_params:
            cell.metadata[META_KEY] = {"grader": {"setup": True}}
        placed.append(cell)
    last = max(taken) if taken else -1
    head, moved = [], []
    for i, cell in enumerate(nb.cells[: last + 1]):
        if i in taken:
            continue
        if cell.cell_type == "code" and cell.source.strip():
            if TAG_CHECKPOINT not in cell.metadata.get("tags", []):
                flags.append(f"cell {i + 1} came before the exercise's setup: it was run after it")
            moved.append(cell)
        else:
            head.append(cell)
    nb.cells = head + placed + moved + list(nb.cells[last + 1:])
    return flags


def _find_cell(nb: NotebookNode, wanted: CheckpointCell, used: set[int]) -> int | None:
    by_ids = by_cell_id = None
    for index, cell in enumerate(nb.cells):
        if index in used:
            continue
        if by_ids is None and cell.cell_type == "code" \
                and TAG_CHECKPOINT in cell.metadata.get("tags", []):
            if set(_declared_ids(cell.source)) & set(wanted.ids):
                by_ids = index
        if by_cell_id is None and wanted.cell_id and cell.get("id") == wanted.cell_id:
            by_cell_id = index
    return by_ids if by_ids is not None else by_cell_id


def _declared_ids(source: str) -> list[str]:
    try:
        return [d.id for d in declared_checkpoints(source)]
    except ManifestError:
        return re.findall(r"Checkpoint\(\s*['\"]([^'\"]+)['\"]", source)


def _checkpoint_cell(wanted: CheckpointCell, cell_id: str | None) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(wanted.source)
    if cell_id:
        cell["id"] = cell_id
    tags = [TAG_CHECKPOINT] + ([TAG_HIDDEN] if wanted.hidden else [])
    cell.metadata["tags"] = tags
    cell.metadata[META_KEY] = {"grader": {"checkpoints": list(wanted.ids),
                                          "hidden": wanted.hidden}}
    return cell


def labkit_names(sources: Iterable[str]) -> set[str]:
    """Names that refer to labkit or IPython in these cells (imports and their aliases)."""
    names = set(_LABKIT_ROOTS)
    for source in sources:
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("labkit", "IPython"):
                        names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module \
                    and node.module.split(".")[0] in ("labkit", "IPython"):
                names.update(alias.asname or alias.name for alias in node.names)
    return names


def suspicious(source: str, roots: set[str] | None = None) -> list[str]:
    """Reasons to look at a student cell twice (possible tampering with the checks).

    ``roots`` are the names that refer to labkit or IPython (see :func:`labkit_names`).
    """
    roots = _LABKIT_ROOTS if roots is None else roots
    notes = [f"mentions {text!r}" for text in _SUSPICIOUS_TEXT if text in source]
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return notes
    for node in ast.walk(tree):
        targets: Iterable[ast.expr] = ()
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and _root(target) in roots:
                notes.append(f"assigns to {ast.unparse(target)}")
        if isinstance(node, ast.Call) and _callee(node.func) in ("setattr", "delattr") \
                and node.args and _root(node.args[0]) in roots:
            notes.append(f"calls {ast.unparse(node.func)}() on {ast.unparse(node.args[0])}")
    return sorted(set(notes))


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


# --------------------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------------------

OutcomeStatus = Literal["passed", "failed", "not-run"]


@dataclass(frozen=True)
class Outcome:
    """The graded result of one checkpoint for one submission."""

    id: str
    status: OutcomeStatus
    score: float
    points: float
    reason: str


@dataclass
class Collected:
    """Every checkpoint's outcome, in manifest order, and what looked wrong."""

    outcomes: list[Outcome]
    flags: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outcomes)


def collect(executed: NotebookNode | None, manifest: Manifest, *,
            stopped: str = "", verdicts: Mapping[str, Mapping[str, Any]] | None = None
            ) -> Collected:
    """Each checkpoint's outcome: the grader's own verdicts, checked against the notebook.

    ``verdicts`` are the grader's own results (:mod:`labkit.grading.evaluator`, via the
    worker): ``{id: {"passed", "reason", "verified"}}``. They decide; what the notebook
    displayed (read from marked checkpoint cells only) is compared with them and every
    difference is flagged. Only a verdict marked not ``verified`` (the check needed an
    object of the instructor's setup the grader cannot rebuild) falls back to what the
    notebook displayed, flagged. With ``verdicts=None`` the displayed results are used
    as they are (for tests of this reader only; the grader always passes verdicts).
    ``stopped`` says why execution ended early (empty when it ran to the end); it
    becomes the reason of checkpoints that never ran.
    """
    flags: list[str] = []
    found: dict[str, tuple[bool, str]] = {}
    state: dict[str, str] = {}
    cells = list(executed.cells) if executed is not None else []
    started = [i for i, c in enumerate(cells)
               if (c.metadata.get("papermill") or {}).get("start_time")]
    for index, cell in enumerate(cells):
        where = f"the cell executed as In [{cell.get('execution_count')}]"
        grader = (cell.metadata.get(META_KEY) or {}).get("grader") or {}
        ids = [i for i in grader.get("checkpoints", []) if isinstance(i, str)]
        records = list(_records(cell))
        if not ids:
            if records:
                flags.append(f"{where} displayed checkpoint results outside a checkpoint "
                             "cell: ignored")
            continue
        if index not in started:
            status = "pending"
        elif stopped and index == started[-1]:
            status = "running"  # the cell that was executing when execution ended
        else:
            status = "completed"
        in_cell: dict[str, tuple[bool, str]] = {}
        for record in records:
            rid = record.get("id")
            if rid not in ids:
                flags.append(f"{where} displayed a result for checkpoint {rid!r}, which it "
                             "does not declare: ignored")
                continue
            result = (record.get("passed") is True, _clip(str(record.get("reason", ""))))
            if rid in in_cell and in_cell[rid] != result:
                flags.append(f"{where} displayed conflicting results for checkpoint {rid}: "
                             "the lower one counts")
                result = min(in_cell[rid], result, key=lambda r: r[0])
            in_cell[rid] = result
        for cid in ids:
            if cid in in_cell:
                found[cid] = in_cell[cid]
                state.pop(cid, None)
            elif cid not in found:
                state[cid] = status
    if verdicts is not None:
        found = _judge(found, verdicts, flags)
    outcomes = []
    for spec in manifest.checkpoints:
        if spec.id in found:
            passed, reason = found[spec.id]
            outcomes.append(Outcome(spec.id, "passed" if passed else "failed",
                                    spec.points if passed else 0, spec.points, reason))
        else:
            outcomes.append(Outcome(spec.id, "not-run", 0, spec.points,
                                    _why_not_run(state.get(spec.id), stopped)))
    return Collected(outcomes, flags)


def _judge(shown: dict[str, tuple[bool, str]], verdicts: Mapping[str, Mapping[str, Any]],
           flags: list[str]) -> dict[str, tuple[bool, str]]:
    """The grader's verdicts, with what the notebook displayed compared against them."""
    found: dict[str, tuple[bool, str]] = {}
    for cid, verdict in verdicts.items():
        passed, reason = verdict.get("passed") is True, _clip(str(verdict.get("reason", "")))
        if not verdict.get("verified", True):
            if cid in shown:
                flags.append(f"checkpoint {cid} was not re-verified by the grader ({reason}): "
                             "the notebook's own result counts")
                found[cid] = shown[cid]
            else:
                found[cid] = (False, reason)
            continue
        found[cid] = (passed, reason)
        if cid not in shown:
            flags.append(f"checkpoint {cid}: the notebook displayed no result "
                         "(outputs removed or replaced?); the grader's own check counts")
        elif shown[cid][0] != passed:
            flags.append(f"checkpoint {cid}: the notebook displayed "
                         f"{'PASS' if shown[cid][0] else 'FAIL'} but the grader's own check "
                         f"says {'PASS' if passed else 'FAIL'}: possible tampering; the "
                         "grader's check counts")
    for cid in sorted(set(shown) - set(verdicts)):
        flags.append(f"checkpoint {cid}: the notebook displayed a result the grader did not "
                     "check itself: not counted")
    return found


def _why_not_run(status: str | None, stopped: str) -> str:
    if status == "completed":
        return "the checkpoint cell ran but recorded no result"
    if status == "running":
        return f"interrupted while checking: {stopped}" if stopped else "interrupted while checking"
    return f"not reached: {stopped}" if stopped else "not reached"


def _records(cell: NotebookNode) -> Iterable[dict[str, Any]]:
    for output in cell.get("outputs", []):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        data = output.get("data", {}).get(MIME_TYPE)
        if isinstance(data, str):
            import json

            try:
                data = json.loads(data)
            except ValueError:
                continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            yield data


def _clip(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
