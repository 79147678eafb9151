"""The ``labkit`` command: ``labkit doctor``, ``labkit grade``, ``labkit clean``, ``labkit version``."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Container Networking Labs toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check what this machine can run, and how to fix the rest")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_parser("version", help="print labkit's version")
    from .grading.cli import build_parser as grade_parser
    grade_parser(sub)
    from .docker.__main__ import add_arguments as docker_clean_arguments
    docker_clean_arguments(sub.add_parser(
        "clean", help="remove the Docker containers, networks and engines the course labelled"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grade"]:  # `grade merge` and `grade export` have their own parsers
        from .grading.cli import run_subcommand
        code = run_subcommand(argv[1:])
        if code is not None:
            return code
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from . import doctor as doctor_module
        return doctor_module.main(as_json=args.json)
    if args.command == "grade":
        from .grading.cli import run as grade
        return grade(args)
    if args.command == "clean":
        from .docker.__main__ import clean_command
        return clean_command(args)
    if args.command == "version":
        print(__version__)
        return 0
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    sys.exit(main())
