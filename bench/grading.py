"""Benchmark: grade 30 copies of one exercise, several at once and one at a time.

Every copy is a full submission of the lab exercise in tests/data/grading/lab (two
hosts on a veth pair, real pings and routes, three checkpoints), each with its own
subnet, each run by papermill in its own sandbox. The same 30 submissions are graded
twice: with ``--workers`` at once (default: the number of CPUs) and one at a time.
Both runs must give every copy full marks.

Prints total time, time per submission and the speed-up of the parallel run over
the sequential one; the last line is JSON.

    .venv/bin/python bench/grading.py [--copies 30] [--workers 2] [--exercise lab|basic]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from labkit.grading import Limits, grade

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "grading"


def run(exercise: str, copies: int, workers: int, folder: Path) -> float:
    """Grade ``copies`` copies of the exercise's known-good submission; seconds taken."""
    source = DATA / exercise
    subs = folder / "submissions"
    subs.mkdir(parents=True, exist_ok=True)
    for i in range(copies):
        shutil.copy(source / "submissions" / "good.ipynb", subs / f"student{i:03d}.ipynb")
    hidden = source / "hidden.py"

    def parameters(student: str) -> dict[str, str]:
        n = int(student.removeprefix("student"))
        return {"subnet": f"10.{n // 256}.{n % 256}.0/24"}

    started = time.perf_counter()
    book = grade(source / "exercise.ipynb", [subs], folder / f"out-{workers}",
                 hidden=hidden if hidden.exists() else None, parameters=parameters,
                 workers=workers, limits=Limits(time_s=120), progress=False)
    seconds = time.perf_counter() - started
    wrong = [r.student for r in book.rows if r.status != "ok" or r.score != r.total]
    if wrong:
        raise SystemExit(f"grading went wrong for {wrong}: see {folder}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--exercise", choices=["lab", "basic"], default="lab")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="labkit-bench-grading-") as tmp:
        folder = Path(tmp)
        parallel = run(args.exercise, args.copies, args.workers, folder)
        print(f"{args.copies} submissions, {args.workers} at a time: {parallel:.1f} s total, "
              f"{parallel / args.copies:.2f} s per submission", flush=True)
        sequential = run(args.exercise, args.copies, 1, folder)
        print(f"{args.copies} submissions, one at a time: {sequential:.1f} s total, "
              f"{sequential / args.copies:.2f} s per submission", flush=True)
    ratio = parallel / sequential
    print(f"parallel/sequential time ratio: {ratio:.2f} (speed-up x{1 / ratio:.2f} "
          f"with {args.workers} workers on {os.cpu_count()} CPUs)")
    print(json.dumps({"exercise": args.exercise, "copies": args.copies, "workers": args.workers,
                      "cpus": os.cpu_count(), "parallel_s": round(parallel, 2),
                      "sequential_s": round(sequential, 2),
                      "per_submission_parallel_s": round(parallel / args.copies, 3),
                      "per_submission_sequential_s": round(sequential / args.copies, 3),
                      "ratio": round(ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
