"""``labkit grade``: the command line of the grader.

::

    labkit grade EXERCISE.ipynb SUBMISSION [SUBMISSION ...] -o OUTPUT
                 [--hidden HIDDEN.py] [-j WORKERS] [--timeout SECONDS]
                 [--memory SIZE] [--output-limit SIZE] [--processes N] [-p NAME VALUE]...
                 [--params-file FILE.json] [--files DIR] [--allow PATH]... [--hide PATH]...
                 [--continue-on-error]
                 [--kernel NAME] [--quiet] [--shard I/N]
    labkit grade merge SHARD_OUTPUT [SHARD_OUTPUT ...] -o OUTPUT
    labkit grade export OUTPUT --lms moodle|canvas -o FILE.csv   (see labkit.grading.lms)

SUBMISSION is a notebook or a folder of notebooks; the student id is the file name.
``-p subnet 10.1.0.0/24`` sets a parameter for everyone (VALUE is read as JSON when it
parses, else as a string); ``--params-file`` is a JSON object mapping student ids
(or ``"*"`` for everyone) to parameter objects. The notebooks see only the system
folders, the Python environment and labkit's package: ``--allow`` shows them one
more host path (read-only), e.g. a Docker proxy's socket. ``--shard I/N`` grades only
shard I of N, and ``labkit grade merge`` combines the shards' folders into one gradebook
(:mod:`labkit.grading.shard`). Exit status 0 when the gradebook was written (whatever
the grades), 2 on a usage or exercise error (or when this machine cannot run the
sandbox: the message names the path and the fix).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main", "parse_size", "run", "run_subcommand"]


def parse_size(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"64k"`` or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 2G, 512M, 64k)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from labkit.grading.sandbox import Limits

    d = Limits()
    parser.add_argument("exercise", type=Path, help="the instructor's exercise notebook")
    parser.add_argument("submissions", nargs="+", type=Path,
                        help="submitted notebooks, or folders of them")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="folder for the gradebook, report and executed notebooks")
    parser.add_argument("--hidden", type=Path, help="hidden checkpoints (.py with # %%%% cells, "
                                                    "or .ipynb), appended at grading time")
    parser.add_argument("-j", "--workers", type=int, default=None,
                        help="submissions graded at once (default: number of CPUs)")
    parser.add_argument("--timeout", type=float, default=d.time_s,
                        help=f"seconds per submission (default {d.time_s:g})")
    parser.add_argument("--memory", type=parse_size, default=d.memory_bytes,
                        help="memory of a whole submission (a cgroup where one can be made; "
                             "also the address space of each process) (default 2G)")
    parser.add_argument("--output-limit", type=parse_size, default=d.output_bytes,
                        help="total size of a notebook's outputs (default 2M)")
    parser.add_argument("--processes", type=int, default=d.processes,
                        help=f"processes and threads per submission (default {d.processes})")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="a parameter for every notebook")
    parser.add_argument("--params-file", type=Path,
                        help='JSON: {"*": {...}, "<student>": {...}}')
    parser.add_argument("--files", type=Path, help="folder copied into every working copy")
    parser.add_argument("--allow", type=Path, action="append", default=[], metavar="PATH",
                        help="a host path the notebooks may see (read-only) besides the system "
                             "folders, Python and labkit, e.g. a Docker proxy socket")
    parser.add_argument("--hide", type=Path, action="append", default=[], metavar="PATH",
                        help="a path inside what the notebooks see that they must not see")
    parser.add_argument("--continue-on-error", action="store_true",
                        help="run every cell even after one raises")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--shard", metavar="I/N", help="grade only shard I of N (by student id); "
                        "combine the shards with `labkit grade merge DIR... -o OUTPUT`")


def build_parser(subparsers: Any = None) -> argparse.ArgumentParser:
    """The ``grade`` parser: added to ``subparsers`` if given, else standalone."""
    description = "Grade submitted exercise notebooks with papermill, each in a sandbox."
    if subparsers is None:
        parser = argparse.ArgumentParser(prog="labkit grade", description=description)
    else:
        parser = subparsers.add_parser("grade", help=description, description=description)
        parser.set_defaults(func=run)
    _add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``labkit grade`` with parsed arguments."""
    from labkit.grading.grader import SandboxUnavailable, grade
    from labkit.grading.notebook import ManifestError
    from labkit.grading.sandbox import Limits

    common = {name: _value(value) for name, value in args.parameter}
    per_student: dict[str, dict[str, Any]] = {}
    if args.params_file:
        per_student = json.loads(args.params_file.read_text(encoding="utf-8"))
        if not isinstance(per_student, dict):
            print("labkit grade: --params-file must hold a JSON object", file=sys.stderr)
            return 2

    def parameters(student: str) -> dict[str, Any]:
        return {**per_student.get("*", {}), **common, **per_student.get(student, {})}

    limits = Limits(time_s=args.timeout, memory_bytes=args.memory, output_bytes=args.output_limit,
                    processes=args.processes)
    started = time.monotonic()
    submissions, hide, shard = list(args.submissions), list(args.hide), None
    try:
        if args.shard:
            from labkit.grading.shard import ShardSpec, plan

            shard = plan(ShardSpec.parse(args.shard), args.exercise, args.submissions,
                         hidden=args.hidden, parameters=parameters, limits=limits,
                         files=args.files, continue_on_error=args.continue_on_error,
                         kernel_name=args.kernel)
            submissions, hide = list(shard.selected), hide + [s.path for s in shard.others]
        book = grade(args.exercise, submissions, args.output, hidden=args.hidden,
                     parameters=parameters, workers=args.workers, limits=limits,
                     files=args.files, continue_on_error=args.continue_on_error,
                     kernel_name=args.kernel, hide=hide, allow=args.allow,
                     progress=not args.quiet)
    except (ManifestError, SandboxUnavailable, ValueError, FileNotFoundError) as exc:
        print(f"labkit grade: {exc}", file=sys.stderr)
        return 2
    if shard is not None:
        shard.write_record(args.output)
    if not args.quiet:
        print(f"graded {len(book.rows)} submissions in {time.monotonic() - started:.1f} s: "
              f"{args.output / 'gradebook.csv'}, {args.output / 'report.html'}", file=sys.stderr)
    return 0


_SUBCOMMANDS = {"merge": ("labkit.grading.shard", "merge_main"),
                "export": ("labkit.grading.lms", "export_main")}
"""``labkit grade merge ...`` and ``labkit grade export ...``: their own parsers, since
``labkit grade`` itself takes the exercise notebook as its first positional argument."""


def run_subcommand(argv: list[str]) -> int | None:
    """Run ``merge``/``export`` if ``argv`` (after ``grade``) starts with one; else None."""
    if argv[:1] and argv[0] in _SUBCOMMANDS:
        import importlib

        module, function = _SUBCOMMANDS[argv[0]]
        return int(getattr(importlib.import_module(module), function)(argv[1:]))
    return None


def main(argv: list[str] | None = None) -> int:
    """``labkit grade ...`` as a standalone program (``python -m labkit.grading``)."""
    argv = sys.argv[1:] if argv is None else argv
    code = run_subcommand(argv)
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    return run(args)
