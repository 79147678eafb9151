"""Grade a folder of submitted exercise notebooks: ``grade(...)``.

For every submission the grader

1. reads it as a bounded regular file (:mod:`labkit.grading.intake`) and prepares a
   copy (outputs cleared, the instructor's parameters and setup cells first,
   checkpoint cells restored and marked, hidden checkpoints appended:
   :func:`labkit.grading.notebook.prepare`),
2. starts a worker process (:mod:`labkit.grading.runner`) that executes it with
   papermill, the kernel in its own sandbox (:mod:`labkit.grading.sandbox`), under a
   time, memory (a cgroup for the whole submission where possible), process, file
   and output limit, and after every checkpoint cell reaches its own verdict
   against the real labs (:mod:`labkit.grading.evaluator`),
3. takes those verdicts as the grade and compares them with what the notebook
   displayed (:func:`labkit.grading.notebook.collect`), flagging any difference.

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
from labkit.grading.intake import Refused, Submission, find_submissions, read_submission
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


def _print_progress(done: int, total: int, row: SubmissionGrade, seconds: float) -> None:
    width = len(str(total))
    print(f"[{done:>{width}}/{total}] {row.student:<24} {row.status:<12} "
          f"{row.score:g}/{row.total:g}  {seconds:6.1f} s"
          + (f"  {row.reason[:60]}" if row.reason else ""), file=sys.stderr, flush=True)


def _shown(allow: Iterable[str | Path]) -> tuple[str, ...]:
    """What the sandbox sees besides the system folders: the Python environment,
    labkit's package (not the folder around it) and what the instructor allows."""
    from labkit.grading.runner import LABKIT_ROOT

    paths = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                           Path(sys.executable).resolve().parent,
                                           Path(LABKIT_ROOT) / "labkit")}
    for extra in allow:
        path = Path(extra)
        if not path.is_absolute() or not path.exists():
            raise ValueError(f"cannot show {extra} to the notebooks: it does not exist "
                             "(give an absolute path)")
        paths.add(os.path.realpath(path))
    return tuple(sorted(paths))


def _inside(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _hide_list(folders: Iterable[Path], shown: tuple[str, ...],
               explicit: Iterable[str | Path]) -> tuple[str, ...]:
    """The grader's own folders that happen to lie inside something shown, the
    instructor's ``hide`` paths, and the container engines' sockets."""
    out = {os.path.realpath(f) for f in folders}
    out = {f for f in out if _inside(f, shown) and not f.startswith("/tmp/")}
    from labkit.grading.runner import LABKIT_ROOT

    needed = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                            Path(LABKIT_ROOT) / "labkit")]
    for path in map(Path, explicit):
        real = os.path.realpath(path)
        if any(real == n or n.startswith(real.rstrip("/") + "/") for n in needed):
            raise ValueError(f"cannot hide {path}: the kernel needs labkit and Python from it")
        out.add(real)
    out.update(p for p in _ALWAYS_HIDDEN if os.path.exists(p))
    return tuple(sorted(out))


class SandboxUnavailable(LabkitError, RuntimeError):
    """This machine cannot build the grader's sandbox."""


_PROBE = "import labkit.grading.kernelside, ipykernel, nbformat"


def check_sandbox(work: Path, root: bool, shown: tuple[str, ...] = (),
                  python: str = sys.executable) -> None:
    """Start one sandbox and import what a kernel needs in it; raise
    :class:`SandboxUnavailable` with the reason, the path and the fix if that fails
    (before any submission is graded, rather than every one of them "crashing")."""
    from labkit.grading.runner import LABKIT_ROOT, kernel_env

    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            raise SandboxUnavailable(f"{tool} is not installed", obj=tool, op="grade",
                                     remedy="install util-linux")
    conn = work / "probe"
    conn.mkdir()
    try:
        spec = SandboxSpec(conn_dir=str(conn), uid=pick_uid() if root else None,
                           gid=65534 if root else None, userns=not root,
                           env=kernel_env(python), allow=shown)
        empty = subprocess.run(command(spec, ["true"]), capture_output=True, text=True,
                               timeout=60, check=False)
        probe = subprocess.run(command(spec, [python, "-c", _PROBE]), capture_output=True,
                               text=True, timeout=120, check=False) \
            if empty.returncode == 0 else empty
    finally:
        conn.rmdir()
    if empty.returncode != 0:
        detail = (empty.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxUnavailable(
            f"cannot start a grading sandbox: {detail}", op="grade",
            remedy="the grader needs unprivileged user namespaces (or root) and "
                   "mount_setattr (Linux 5.12 or later); run `labkit doctor`")
    if probe.returncode != 0:
        lines = [line for line in probe.stderr.strip().splitlines()
                 if not line.startswith("labkit-sandbox: program")] or ["no output"]
        detail = lines[-1]
        paths = re.findall(r"'(/[^']+)'", detail) or [python, LABKIT_ROOT]
        raise SandboxUnavailable(
            f"the sandboxed kernels cannot use this Python environment: {detail} "
            f"(the sandbox runs as an unprivileged user and sees {', '.join(shown) or 'the system folders'})",
            obj=paths[0], op="grade",
            remedy=f"make {paths[0]} and the folders of the Python environment readable by every "
                   "user (chmod -R o+rX on the environment, o+x on the folders above it), or "
                   "install the environment where every user can read it (python3 -m venv "
                   "/opt/labkit-venv; pip install labkit there) and grade with its Python")


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
          hide: Iterable[str | Path] = (), allow: Iterable[str | Path] = (),
          progress: Progress | bool = True) -> Gradebook:
    """Grade submitted notebooks against an exercise; write and return the gradebook.

    ``exercise`` is the instructor's notebook (its ``checkpoint`` cells are the
    manifest), ``hidden`` an optional hidden-checkpoint file, ``parameters`` the
    values injected into every notebook (``student_id`` is always injected),
    ``files`` a folder copied into every working copy, ``allow`` host paths the
    kernels may see (read-only) besides the system folders, the Python environment
    and labkit's package (nothing else of the host is there: not the solutions, not
    home folders, not the other submissions), ``hide`` paths inside what is shown
    that the kernels must not see (the grader's own folders are hidden anyway if they
    lie inside something shown). Before any submission runs, one sandbox is started
    and imports what a kernel needs: if this machine cannot run the sandbox or the
    sandbox cannot use this Python environment, :class:`SandboxUnavailable` says
    which path and how to fix it. Submission files that are not regular files of at
    most :data:`~labkit.grading.intake.MAX_NOTEBOOK_BYTES` are refused one by one
    (status ``invalid``, with the reason). By default execution stops at
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
    shown = _shown(allow)
    folders = [out, work, Path(exercise).parent, *{s.path.parent for s in subs}]
    folders += [Path(hidden).parent] if hidden else []
    folders += [] if root else [Path.home()]
    hidden_paths = _hide_list(folders, shown, hide)
    pool = _Workers(work)
    done = 0
    lock = threading.Lock()
    grades: list[SubmissionGrade] = []
    notes: set[str] = set()

    def one(index: int, sub: Submission) -> None:
        nonlocal done
        started = time.monotonic()
        try:
            row = _grade_one(index, sub, manifest, out, work, hidden_paths, shown, limits,
                             parameters,
                             files, continue_on_error, kernel_name, root, pool, notes)
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
        check_sandbox(work, root, shown)
        for future in [executor.submit(one, i, s) for i, s in enumerate(subs)]:
            future.result()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        pool.close()  # only does something when leaving early (Ctrl-C, an error)
        executor.shutdown(wait=True)
        shutil.rmtree(work, ignore_errors=True)
    book = Gradebook(Path(exercise).stem, manifest.checkpoints,
                     tuple(sorted(grades, key=lambda g: g.student)), tuple(sorted(notes)))
    book.write(out)
    return book


def _grade_one(index: int, sub: Submission, manifest: Manifest, out: Path, work: Path,
               hide: tuple[str, ...], shown: tuple[str, ...], limits: Limits,
               parameters: Parameters,
               files: str | Path | None, continue_on_error: bool, kernel_name: str,
               root: bool, pool: _Workers, notes: set[str]) -> SubmissionGrade:
    executed = out / "executed" / f"{sub.student}.ipynb"
    log = out / "logs" / f"{sub.student}.log"
    log.write_text("")
    executed.unlink(missing_ok=True)
    try:
        submitted = nbformat.reads(read_submission(sub.path).decode("utf-8"), as_version=4)
        prepared = prepare(submitted, manifest)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's problem
        reason = (exc.strerror if isinstance(exc, Refused) else
                  f"the submission is not a readable notebook: {type(exc).__name__}: {exc}")
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
              uid=uid, gid=uid, userns=not root, hide=hide, allow=shown,
              files=str(Path(files).resolve()) if files else None,
              kernel_name=kernel_name, allow_errors=continue_on_error,
              parameters_source=manifest.parameters)
    (folder / "job.json").write_text(job.to_json())
    argv = ["setpriv", "--pdeathsig", "KILL", "unshare", "--mount", "--propagation", "private",
            *([] if root else ["--user", "--map-root-user"]),
            "--", sys.executable, "-m", "labkit.grading.runner", str(folder / "job.json")]
    returncode = pool.run(argv, log, limits.time_s + _GRACE_S)
    status, reason, verdicts, judged, memory = _result(folder / "result.json", returncode,
                                                        limits)
    if memory:
        notes.add(memory)
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
            ) -> tuple[str, str, dict[str, dict[str, Any]], list[str], str]:
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
    memory = str(data.get("memory", ""))
    if returncode is None:
        return ("timeout", f"time limit of {limits.time_s:g} s reached (the worker was killed)",
                verdicts, flags, memory)
    return str(data["status"]), str(data.get("reason", ""))[:500], verdicts, flags, memory
