"""Build the course notebooks from their sources, so they never drift apart.

Sources are Python files in jupytext's "percent" format under ``course/``:

* ``course/notebooks/NN-name.py``  ->  ``notebooks/NN-name.ipynb`` (walkthrough, executed)
* ``course/exercises/NN-name.py``  ->  ``solutions/NN-name.ipynb`` (executed) and
  ``exercises/NN-name.ipynb`` (the student copy: every block between
  ``# BEGIN SOLUTION`` and ``# END SOLUTION`` becomes ``...`` with a prompt, and cells
  tagged ``solution-only`` (the answers to the walkthrough's questions) are left out;
  not executed)

Each built notebook gets a generated navigation line at the end: previous, index, next,
and the walkthrough's exercise (or the exercise's walkthrough) when one has the same
number. Notebooks are committed executed, so a reader whose machine cannot run labs
still sees every result; widget outputs keep only their static snapshot (see
:func:`static_widgets`).

    .venv/bin/python tools/build_course.py            # build and execute everything
    .venv/bin/python tools/build_course.py 01 02      # only sources starting with 01/02
    .venv/bin/python tools/build_course.py --check    # fail if a built file is out of date
    .venv/bin/python tools/build_course.py --navigation   # after adding or renaming a notebook
    .venv/bin/python tools/build_course.py --prose 30     # prose edits only: no re-execution
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = re.compile(r"^([ \t]*)# BEGIN SOLUTION\n.*?^[ \t]*# END SOLUTION\n?", re.M | re.S)
PROMPT = "{indent}# YOUR CODE HERE (replace the ... below)\n{indent}...\n"
EXEC_TIMEOUT = 600


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The exercise handed to students: solution blocks replaced by a prompt and ``...``."""
    out = nbformat.reads(nbformat.writes(nb), as_version=4)
    out.cells = [c for c in out.cells if "solution-only" not in c.metadata.get("tags", [])]
    for cell in out.cells:
        if cell.cell_type == "code" and "# BEGIN SOLUTION" in cell.source:
            cell.source = SOLUTION.sub(lambda m: PROMPT.format(indent=m.group(1)), cell.source + "\n").rstrip("\n")
    return out


def strip_markers(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The instructor's solution: the same notebook without the marker comments."""
    out = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.source = "\n".join(line for line in cell.source.splitlines()
                                    if line.strip() not in ("# BEGIN SOLUTION", "# END SOLUTION"))
    return out


def counterpart(source: Path, folder: str) -> tuple[str, str] | None:
    """(label, relative link) of the same-numbered exercise of a walkthrough, or walkthrough of an exercise."""
    kind = "exercises" if folder == "notebooks" else "notebooks"
    number = source.name[:2]
    match = next(iter(sorted((ROOT / "course" / kind).glob(f"{number}-*.py"))), None)
    if match is None:
        return None
    name = match.with_suffix(".ipynb").name
    if folder == "notebooks":
        return f"exercise {number}", f"../exercises/{name}"
    return f"walkthrough {number}", f"../notebooks/{name}"


def navigation(order: list[Path], index: int, folder: str) -> nbformat.NotebookNode:
    parts = []
    if index > 0:
        prev = order[index - 1].with_suffix(".ipynb").name
        parts.append(f"[← {prev}]({prev})")
    parts.append("[course index](../README.md)")
    pair = counterpart(order[index], folder)
    if pair is not None:
        parts.append(f"[{pair[0]}]({pair[1]})")
    if index + 1 < len(order):
        nxt = order[index + 1].with_suffix(".ipynb").name
        parts.append(f"[{nxt} →]({nxt})")
    cell = nbformat.v4.new_markdown_cell(" | ".join(parts))
    cell.metadata["tags"] = ["navigation"]
    return cell


def load(source: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(source, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    client = NotebookClient(nb, timeout=EXEC_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return static_widgets(nb)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep a widget output's static snapshot, not the pointer to a model that died with the kernel.

    A saved widget output is a reference to a model in the kernel that ran it; without
    that kernel, JupyterLab shows an error, GitHub ``VBox(children=...)`` and nbconvert
    nothing. labkit's panels also publish a ``text/html`` snapshot (the diagram, the last
    results): the committed notebook keeps that, and running the cell brings the live
    widget back. The saved widget state goes too (it would only feed the dead references).
    """
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]
    nb.metadata.pop("widgets", None)
    return nb


def targets(kind: str, source: Path) -> list[tuple[Path, str]]:
    name = source.with_suffix(".ipynb").name
    if kind == "notebooks":
        return [(ROOT / "notebooks" / name, "walkthrough")]
    return [(ROOT / "solutions" / name, "solution"), (ROOT / "exercises" / name, "exercise")]


def build(kind: str, order: list[Path], index: int, run: bool) -> list[Path]:
    source = order[index]
    base = load(source)
    written = []
    for path, role in targets(kind, source):
        folder = path.parent.name
        if role == "exercise":
            nb = student_copy(base)
        elif role == "solution":
            nb = strip_markers(base)
        else:
            nb = nbformat.reads(nbformat.writes(base), as_version=4)
        nb.cells.append(navigation(order, index, folder))
        if run and role != "exercise":
            print(f"executing {path.relative_to(ROOT)} ...", flush=True)
            execute(nb, path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        written.append(path)
    return written


def sources(kind: str) -> list[Path]:
    return sorted((ROOT / "course" / kind).glob("[0-9][0-9]-*.py"))


def cell_sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def check() -> list[str]:
    """Names of built notebooks whose cells differ from what their source gives now."""
    stale = []
    for kind in ("notebooks", "exercises"):
        order = sources(kind)
        for i, source in enumerate(order):
            for path, role in targets(kind, source):
                expected = expected_notebook(kind, order, i, path, role)
                if not path.exists() or cell_sources(nbformat.read(path, as_version=4)) != cell_sources(expected):
                    stale.append(str(path.relative_to(ROOT)))
    return stale


def expected_notebook(kind: str, order: list[Path], index: int, path: Path,
                      role: str) -> nbformat.NotebookNode:
    """What the built notebook at ``path`` holds, cell by cell, before execution."""
    base = load(order[index])
    nb = (student_copy(base) if role == "exercise" else
          strip_markers(base) if role == "solution" else base)
    nb.cells.append(navigation(order, index, path.parent.name))
    return nb


def refresh_prose(only: list[str]) -> tuple[list[Path], list[Path]]:
    """Bring built notebooks in step with their sources' prose, without running anything.

    Allowed only where the code cells are unchanged (same sources, same order): every
    code cell keeps its outputs and execution count, markdown cells are taken from the
    source. Returns (refreshed, refused); a refused notebook needs a real build.
    """
    refreshed, refused = [], []
    for kind in ("notebooks", "exercises"):
        order = sources(kind)
        for i, source in enumerate(order):
            if only and not any(source.name.startswith(p) for p in only):
                continue
            for path, role in targets(kind, source):
                if not path.exists():
                    refused.append(path)
                    continue
                built = nbformat.read(path, as_version=4)
                fresh = expected_notebook(kind, order, i, path, role)
                if cell_sources(built) == cell_sources(fresh):
                    continue
                old_code = [c for c in built.cells if c.cell_type == "code"]
                new_code = [c for c in fresh.cells if c.cell_type == "code"]
                if [c.source for c in old_code] != [c.source for c in new_code]:
                    refused.append(path)
                    continue
                ran = iter(old_code)
                fresh.cells = [next(ran) if c.cell_type == "code" else c for c in fresh.cells]
                fresh.metadata = built.metadata
                nbformat.write(fresh, path)
                refreshed.append(path)
    return refreshed, refused


def refresh_navigation() -> list[Path]:
    """Rewrite only the navigation cell of every built notebook (no execution)."""
    changed = []
    for kind in ("notebooks", "exercises"):
        order = sources(kind)
        for i, source in enumerate(order):
            for path, _role in targets(kind, source):
                if not path.exists():
                    continue
                nb = nbformat.read(path, as_version=4)
                fresh = navigation(order, i, path.parent.name)
                if nb.cells and "navigation" in nb.cells[-1].metadata.get("tags", []):
                    if nb.cells[-1].source == fresh.source:
                        continue
                    nb.cells[-1] = fresh
                else:
                    nb.cells.append(fresh)
                nbformat.write(nb, path)
                changed.append(path)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="prefixes of sources to build (e.g. 01 02)")
    parser.add_argument("--no-execute", action="store_true", help="write without running")
    parser.add_argument("--check", action="store_true", help="report out-of-date notebooks")
    parser.add_argument("--navigation", action="store_true",
                        help="only refresh the navigation cells (after adding a notebook)")
    parser.add_argument("--prose", action="store_true",
                        help="only bring markdown cells in step, keeping every code cell's "
                             "outputs (refused where code changed)")
    args = parser.parse_args()
    if args.prose:
        refreshed, refused = refresh_prose(args.only)
        for path in refreshed:
            print(f"prose updated: {path.relative_to(ROOT)}")
        for path in refused:
            print(f"code changed, run a real build: {path.relative_to(ROOT)}")
        return 1 if refused else 0
    if args.navigation:
        for path in refresh_navigation():
            print(f"navigation updated: {path.relative_to(ROOT)}")
        return 0
    if args.check:
        stale = check()
        for name in stale:
            print(f"out of date: {name} (run tools/build_course.py)")
        return 1 if stale else 0
    if not args.no_execute and not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        print("warning: no Chromium here, so plotly figures get no static PNG and will not show on GitHub, "
              "nbviewer or in HTML (apt-get install chromium)", file=sys.stderr)
    for kind in ("notebooks", "exercises"):
        order = sources(kind)
        for i, source in enumerate(order):
            if args.only and not any(source.name.startswith(p) for p in args.only):
                continue
            for path in build(kind, order, i, run=not args.no_execute):
                print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
