"""Grading exercise notebooks: papermill runs, each submission in its own sandbox.

Python::

    from labkit.grading import grade, Limits
    book = grade("exercises/a1.ipynb", ["submitted/"], "graded/",
                 hidden="instructor/a1_hidden.py", workers=2,
                 limits=Limits(time_s=120))
    book.to_frame()

Command line (``labkit grade ...`` or ``python -m labkit.grading ...``): see
:mod:`labkit.grading.cli`.

Modules, lowest first: :mod:`~labkit.grading.safefs` (reading what a sandbox could
write), :mod:`~labkit.grading.text` (submission text made safe to show),
:mod:`~labkit.grading.cgroup` (a memory limit for a whole submission),
:mod:`~labkit.grading.sandbox` (namespaces, uid, allow-listed root, limits: the
kernel's cage), :mod:`~labkit.grading.intake` (which files count, student ids),
:mod:`~labkit.grading.notebook` (manifest, preparation, reading results),
:mod:`~labkit.grading.evaluator` (the grader's own verdict on each checkpoint, against
the real labs), :mod:`~labkit.grading.runner` (the worker: papermill with a sandboxed
kernel), :mod:`~labkit.grading.gradebook` and :mod:`~labkit.grading.report` (CSV,
JSON, HTML), :mod:`~labkit.grading.grader` (the whole run), :mod:`~labkit.grading.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "grade": "grader", "Submission": "intake", "find_submissions": "intake",
    "SandboxUnavailable": "grader",
    "Limits": "sandbox", "Gradebook": "gradebook", "SubmissionGrade": "gradebook",
    "Manifest": "notebook", "ManifestError": "notebook", "CheckpointSpec": "notebook",
    "Outcome": "notebook", "build_parser": "cli", "run": "cli", "main": "cli",
}
__all__ = [
    "CheckpointSpec", "Gradebook", "Limits", "Manifest", "ManifestError", "Outcome",
    "SandboxUnavailable", "Submission", "SubmissionGrade", "build_parser", "find_submissions",
    "grade", "main", "run",
]


def __getattr__(name: str) -> Any:
    # Lazy, so that the worker and sandbox processes import only what they use.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"labkit.grading.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'labkit.grading' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
