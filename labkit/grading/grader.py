"""Grade a folder of submitted exercise notebooks: ``grade(...)``.

For every submission the grader

1. prepares a copy (outputs cleared, checkpoint cells restored and marked, hidden
   checkpoints appended: :func:`labkit.grading.notebook.prepare`),
2. starts a worker process (:mod:`labkit.grading.runner`) that executes it with
   papermill, the kernel in its own sandbox (:mod:`labkit.grading.sandbox`), under a
   time, memory, process, file and output limit,
3. reads the trusted checkpoint results back from the executed notebook
   (:func:`labkit.grading.notebook.collect`).

Several submissions run at once (``workers``); each worker is killed, with its
sandbox, if it outlives its time limit by more than a grace period. Results go to
``OUTPUT/gradebook.csv``, ``gradebook.json``, ``report.html``, ``feedback/``,
``executed/<student>.ipynb`` and ``logs/<student>.log``. Temporary working folders
are removed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import nbformat

import labkit
from labkit.errors import LabkitError
from labkit.grading.gradebook import Gradebook, SubmissionGrade
from labkit.grading.notebook import Manifest, collect, prepare
from labkit.grading.runner import Job
from labkit.grading.sandbox import Limits, SandboxSpec, command, pick_uid

__all__ = [
    "Progress",
    "SandboxUnavailable",
    "Submission",
    "check_sandbox",
    "find_submissions",
    "grade",
]

Parameters: TypeAlias = "Mapping[str, Any] | Callable[[str], Mapping[str, Any]] | None"
"""Instructor values injected into each notebook: one mapping for all, or per student."""

Progress: TypeAlias = Callable[[int, int, SubmissionGrade, float], None]
"""Called after each submission: ``(done, total, grade, seconds)``."""

_GRACE_S = 45.0

_ALWAYS_HIDDEN = ("/run/docker.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock")
"""Sockets that would give root on the host to whoever may connect to them (a grader
user in the ``docker`` group keeps that group inside its user namespace)."""
"""How long a worker may outlive its submission's time limit before it is killed."""


@dataclass(frozen=True)
class Submission:
    """One submitted notebook and the student id taken from its file name."""

    student: str
    path: Path


def student_id(path: Path) -> str:
    """The student id of a submission file: its name without ``.ipynb``, made safe."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.name.removesuffix(".ipynb")) or "_"


def find_submissions(paths: Iterable[str | Path]) -> list[Submission]:
    """Submissions from files and folders (every ``*.ipynb`` directly in a folder)."""
    found: list[Submission] = []
    for item in map(Path, paths):
        files = sorted(item.glob("*.ipynb")) if item.is_dir() else [item]
        found.extend(Submission(student_id(f), f) for f in files)
    found.sort(key=lambda s: s.student)
    seen: dict[str, Path] = {}
    for sub in found:
        if sub.student in seen:
            raise ValueError(f"two submissions for student {sub.student!r}: {seen[sub.student]} "
                             f"and {sub.path}; rename one of them")
        seen[sub.student] = sub.path
    return found


def _print_progress(done: int, total: int, row: SubmissionGrade, seconds: float) -> None:
    width = len(str(total))
    print(f"[{done:>{width}}/{total}] {row.student:<24} {row.status:<12} "
          f"{row.score:g}/{row.total:g}  {seconds:6.1f} s"
          + (f"  {row.reason[:60]}" if row.reason else ""), file=sys.stderr, flush=True)


def _protected() -> list[Path]:
    """Folders the kernel needs: hiding them (or an ancestor) would break it."""
    return [Path(p).resolve() for p in (Path(labkit.__file__).parent, sys.prefix,
                                        sys.base_prefix, Path(sys.executable).resolve().parent)]


def _hide_list(paths: Iterable[Path]) -> tuple[str, ...]:
    """Folders to cover in the sandbox; a file itself when its folder is needed."""
    protected = _protected()
    out: set[str] = set()
    for path in paths:
        path = path.resolve()
        folder = path if path.is_dir() else path.parent
        if any(p == folder or folder in p.parents for p in protected) or folder == Path("/"):
            if path.is_file():
                out.add(str(path))
        else:
            out.add(str(folder))
    return tuple(sorted(out))


class SandboxUnavailable(LabkitError, RuntimeError):
    """This machine cannot build the grader's sandbox."""


def check_sandbox(work: Path, root: bool) -> None:
    """Start one empty sandbox; raise :class:`SandboxUnavailable` with the reason if it fails."""
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"{tool} is not installed", obj=tool, op="grade",
                                     remedy="install util-linux")
    conn = work / "probe"
    conn.mkdir()
    try:
        spec = SandboxSpec(conn_dir=str(conn), uid=pick_uid() if root else None,
                           gid=65534 if root else None, userns=not root,
                           env={"PATH": "/usr/bin:/bin"})
        probe = subprocess.run(command(spec, ["true"]), capture_output=True, text=True,
                               timeout=60, check=False)
    finally:
        conn.rmdir()
    if probe.returncode != 0:
        detail = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxUnavailable(
            f"cannot start a grading sandbox: {detail}", op="grade",
            remedy="the grader needs unprivileged user namespaces (or root) and "
                   "mount_setattr (Linux 5.12 or later); run `labkit doctor`")


def _explicit_hides(paths: Iterable[str | Path]) -> tuple[str, ...]:
    protected = _protected()
    out = []
    for path in (Path(p).resolve() for p in paths):
        if any(p == path or path in p.parents for p in protected):
            raise ValueError(f"cannot hide {path}: the kernel needs labkit and Python from it")
        out.append(str(path))
    return tuple(out)


def _params_for(parameters: Parameters, student: str) -> dict[str, Any]:
    values = dict(parameters(student) if callable(parameters) else (parameters or {}))
    values["student_id"] = student
    return values


class _Workers:
    """The live worker processes, so that everything can be killed on the way out."""

    def __init__(self, work: Path) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen[bytes]] = set()
        # Jupyter and IPython state of the workers stays in the temporary folder.
        self._env = {**os.environ, "IPYTHONDIR": str(work / ".ipython"),
                     "JUPYTER_RUNTIME_DIR": str(work / ".jupyter-runtime"),
                     "JUPYTER_DATA_DIR": str(work / ".jupyter-data"),
                     "PYTHONDONTWRITEBYTECODE": "1"}

        self._closed = False

    def run(self, argv: list[str], log: Path, timeout: float) -> int | None:
        """Run a worker; its exit status, or None if it was killed (time out, closing)."""
        with self._lock, open(log, "ab") as fh:
            if self._closed:
                return None
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=self._env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self._live.add(proc)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            return None
        finally:
            with self._lock:
                self._live.discard(proc)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def close(self) -> None:
        """Start no more workers, and kill the running ones (and their sandboxes)."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for proc in live:
            self._kill(proc)


def grade(exercise: str | Path, submissions: Iterable[str | Path] | Iterable[Submission],
          output: str | Path, *, hidden: str | Path | None = None,
          parameters: Parameters = None, workers: int | None = None,
          limits: Limits | None = None, files: str | Path | None = None,
          continue_on_error: bool = False, kernel_name: str = "python3",
          hide: Iterable[str | Path] = (), progress: Progress | bool = True) -> Gradebook:
    """Grade submitted notebooks against an exercise; write and return the gradebook.

    ``exercise`` is the instructor's notebook (its ``checkpoint`` cells are the
    manifest), ``hidden`` an optional hidden-checkpoint file, ``parameters`` the
    values injected into every notebook (``student_id`` is always injected),
    ``files`` a folder copied into every working copy, ``hide`` more folders the
    kernels must not see (e.g. a folder of solutions; the exercise's, the hidden
    file's, the submissions' and the output folders are hidden anyway, unless labkit
    or the Python environment lives inside them). By default execution stops at
    the first cell that raises (unless tagged ``raises-exception``), and later
    checkpoints count as not reached; ``continue_on_error`` runs every cell.
    """
    limits = limits or Limits()
    manifest = Manifest.from_exercise(exercise, hidden)
    items = list(submissions)
    subs = sorted([s for s in items if isinstance(s, Submission)]
                  + find_submissions(s for s in items if not isinstance(s, Submission)),
                  key=lambda s: s.student)
    out = Path(output).resolve()
    for sub in ("executed", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    report = _print_progress if progress is True else (progress or None)
    root = os.geteuid() == 0
    work = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    work.chmod(0o711)
    hide_from = [out, work, Path(exercise), *(s.path for s in subs)]
    hide_from += [Path(hidden)] if hidden else []
    hide_from += [] if root else [Path.home()]
    hidden_paths = (_hide_list(hide_from) + _explicit_hides(hide)
                    + tuple(p for p in _ALWAYS_HIDDEN if os.path.exists(p)))
    pool = _Workers(work)
    done = 0
    lock = threading.Lock()
    grades: list[SubmissionGrade] = []

    def one(index: int, sub: Submission) -> None:
        nonlocal done
        started = time.monotonic()
        try:
            row = _grade_one(index, sub, manifest, out, work, hidden_paths, limits, parameters,
                             files, continue_on_error, kernel_name, root, pool)
        except Exception as exc:  # noqa: BLE001 - one submission must not stop the others
            outcomes = collect(None, manifest, stopped="the grader failed").outcomes
            row = SubmissionGrade(sub.student, sub.path.name, "crashed",
                                  f"grader error: {type(exc).__name__}: {exc}"[:500],
                                  tuple(outcomes))
        with lock:
            grades.append(row)
            done += 1
            if report:
                report(done, len(subs), row, time.monotonic() - started)

    workers = max(1, workers or os.cpu_count() or 1)
    if progress is True:
        print(f"grading {len(subs)} submissions of {Path(exercise).name}, {workers} at a time, "
              f"{limits.time_s:g} s each at most", file=sys.stderr, flush=True)
    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        check_sandbox(work, root)
        for future in [executor.submit(one, i, s) for i, s in enumerate(subs)]:
            future.result()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        pool.close()  # only does something when leaving early (Ctrl-C, an error)
        executor.shutdown(wait=True)
        shutil.rmtree(work, ignore_errors=True)
    book = Gradebook(Path(exercise).stem, manifest.checkpoints,
                     tuple(sorted(grades, key=lambda g: g.student)))
    book.write(out)
    return book


def _grade_one(index: int, sub: Submission, manifest: Manifest, out: Path, work: Path,
               hide: tuple[str, ...], limits: Limits, parameters: Parameters,
               files: str | Path | None, continue_on_error: bool, kernel_name: str,
               root: bool, pool: _Workers) -> SubmissionGrade:
    executed = out / "executed" / f"{sub.student}.ipynb"
    log = out / "logs" / f"{sub.student}.log"
    log.write_text("")
    executed.unlink(missing_ok=True)
    try:
        submitted = nbformat.read(str(sub.path), as_version=4)
        prepared = prepare(submitted, manifest)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's problem
        reason = f"the submission is not a readable notebook: {type(exc).__name__}: {exc}"
        collected = collect(None, manifest, stopped="the notebook could not be read")
        return SubmissionGrade(sub.student, sub.path.name, "invalid", reason[:500],
                               tuple(collected.outcomes))
    folder = work / f"{index:04d}"
    folder.mkdir(mode=0o700)
    nbformat.write(prepared.nb, str(folder / "input.ipynb"))
    uid = pick_uid() if root else None
    job = Job(student=sub.student, input_path=str(folder / "input.ipynb"),
              output_path=str(executed), result_path=str(folder / "result.json"),
              log_path=str(log), conn_dir=str(folder / "c"),
              parameters=_params_for(parameters, sub.student), limits=limits,
              uid=uid, gid=uid, userns=not root, hide=hide,
              files=str(Path(files).resolve()) if files else None,
              kernel_name=kernel_name, allow_errors=continue_on_error,
              parameters_source=manifest.parameters)
    (folder / "job.json").write_text(job.to_json())
    argv = ["setpriv", "--pdeathsig", "KILL", "unshare", "--mount", "--propagation", "private",
            *([] if root else ["--user", "--map-root-user"]),
            "--", sys.executable, "-m", "labkit.grading.runner", str(folder / "job.json")]
    returncode = pool.run(argv, log, limits.time_s + _GRACE_S)
    status, reason, verdicts, judged = _result(folder / "result.json", returncode, limits)
    try:
        nb = nbformat.read(str(executed), as_version=4) if executed.exists() else None
    except Exception:  # noqa: BLE001 - a half-written notebook counts as no notebook
        nb = None
    collected = collect(nb, manifest, stopped="" if status == "ok" else reason,
                        verdicts=verdicts)
    return SubmissionGrade(sub.student, sub.path.name, status, reason, tuple(collected.outcomes),
                           tuple(prepared.flags + judged + collected.flags),
                           executed.relative_to(out).as_posix() if nb is not None else None)


def _result(path: Path, returncode: int | None, limits: Limits
            ) -> tuple[str, str, dict[str, dict[str, Any]], list[str]]:
    """Status, reason, the grader's own verdicts and flags, from the worker's result file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("status") == "running" and returncode is not None:
        data["status"] = "crashed"
        data["reason"] = f"the grader's worker ended early (exit status {returncode})"
    if not isinstance(data, dict) or "status" not in data:
        data = {"status": "crashed", "reason": "the grader's worker ended without a result "
                                               f"(exit status {returncode})"}
    verdicts = data.get("checkpoints") if isinstance(data.get("checkpoints"), dict) else {}
    flags = [str(f) for f in data.get("flags", []) if isinstance(f, str)]
    if returncode is None:
        return ("timeout", f"time limit of {limits.time_s:g} s reached (the worker was killed)",
                verdicts, flags)
    return str(data["status"]), str(data.get("reason", ""))[:500], verdicts, flags
