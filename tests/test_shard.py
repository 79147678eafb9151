"""Grading across machines: ``labkit grade --shard I/N`` and ``labkit grade merge``.

The integration test grades the same submissions once on "one machine" and once as
three shards (each given the inputs in another order), merges the shards, and
compares the two output folders byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.errors import LabkitError
from labkit.grading.grader import find_submissions
from labkit.grading.shard import RECORD, ShardError, ShardSpec, plan, shard_of

DATA = Path(__file__).parent / "data" / "grading"
BASIC = DATA / "basic"
RECIPE = Path(__file__).resolve().parent.parent / "deploy" / "grading" / "grade-on-machines.sh"
PYTHON = sys.executable
STUDENTS = ["broken", "copycat", "forger", "good", "invalid", "partial"]
SUBNETS = {"good": "172.16.4.0/22", "copycat": "10.20.0.0/23", "partial": "192.168.7.0/24"}


def test_shard_spec_parses_and_refuses_with_a_remedy():
    assert ShardSpec.parse("2/5") == ShardSpec(2, 5) and str(ShardSpec.parse(" 1/1 ")) == "1/1"
    for bad, text in [("0/3", "out of range"), ("4/3", "out of range"), ("1/0", "out of range"),
                      ("2", "not of the form"), ("a/b", "not of the form"),
                      ("-1/3", "not of the form"), ("1/2/3", "not of the form")]:
        with pytest.raises(ShardError, match=text) as info:
            ShardSpec.parse(bad)
        assert isinstance(info.value, LabkitError) and isinstance(info.value, ValueError)
        assert "--shard" in str(info.value)


def test_shards_partition_the_class_and_depend_only_on_the_student_id():
    students = [f"s{i:03d}" for i in range(300)]
    for count in (1, 2, 3, 8):
        shards = [[s for s in students if ShardSpec(i, count).holds(s)]
                  for i in range(1, count + 1)]
        assert sorted(sum(shards, [])) == students  # every student once
        assert min(map(len, shards)) > 300 / count * 0.6  # and roughly balanced
    assert [shard_of(s, 5) for s in students] == [shard_of(s, 5) for s in reversed(students)][::-1]
    # a late submission moves nobody else
    before = {s: shard_of(s, 4) for s in students}
    assert {s: shard_of(s, 4) for s in students + ["late"] if s != "late"} == before


def test_plan_is_stable_under_reordering_of_the_inputs(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in STUDENTS:
        shutil.copy(BASIC / "submissions" / f"{name}.ipynb", subs)
    files = sorted(subs.iterdir())
    orders = [[subs], files, list(reversed(files)), files[3:] + files[:3]]
    for index in (1, 2, 3):
        plans = [plan(ShardSpec(index, 3), BASIC / "exercise.ipynb", o) for o in orders]
        assert len({json.dumps(p.record, sort_keys=True) for p in plans}) == 1
        assert len({tuple(s.student for s in p.selected) for p in plans}) == 1
    every = [s.student for i in (1, 2, 3)
             for s in plan(ShardSpec(i, 3), BASIC / "exercise.ipynb", [subs]).selected]
    assert sorted(every) == STUDENTS
    # the record changes when a setting that changes grades does
    p1 = plan(ShardSpec(1, 3), BASIC / "exercise.ipynb", [subs], parameters=lambda s: {"x": 1})
    p2 = plan(ShardSpec(1, 3), BASIC / "exercise.ipynb", [subs], parameters=lambda s: {"x": 2})
    assert p1.record["settings"] != p2.record["settings"]
    assert p1.record["inputs"] == {s.student: p1.record["inputs"][s.student]
                                   for s in find_submissions([subs])}


def _grade(out: Path, subs: list[Path], params: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "labkit.cli", "grade", str(BASIC / "exercise.ipynb"), *map(str, subs),
         "-o", str(out), "--hidden", str(BASIC / "hidden.py"), "-j", "2", "--timeout", "60",
         "--params-file", str(params), "--output-limit", "256k", "--memory", "1G", *extra],
        capture_output=True, text=True, timeout=600)


def _merge(out: Path, *shards: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "labkit.cli", "grade", "merge", *map(str, shards),
                           "-o", str(out)], capture_output=True, text=True, timeout=120)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_shards_merged_equal_the_single_run_byte_for_byte(tmp_path):
    subs = tmp_path / "submitted"
    subs.mkdir()
    for name in STUDENTS:
        shutil.copy(BASIC / "submissions" / f"{name}.ipynb", subs)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"*": {"subnet": "10.0.0.0/24"},
                                  **{k: {"subnet": v} for k, v in SUBNETS.items()}}))
    single = _grade(tmp_path / "single", [subs], params)
    assert single.returncode == 0, single.stderr
    files = sorted(subs.iterdir())
    orders = [[subs], list(reversed(files)), files[2:] + files[:2]]
    shards = []
    for index, inputs in zip((1, 2, 3), orders):
        out = tmp_path / f"shard{index}"
        run = _grade(out, inputs, params, "--shard", f"{index}/3")
        assert run.returncode == 0, run.stderr
        record = json.loads((out / RECORD).read_text())
        assert record["shard"] == f"{index}/3"
        assert record["graded"] == sorted(s for s in STUDENTS if shard_of(s, 3) == index)
        shards.append(out)
    # the split is real: each shard graded only its own students (shard 3 none, here)
    graded = [json.loads((s / "gradebook.json").read_text())["submissions"] for s in shards]
    assert [len(g) for g in graded] == [4, 2, 0]
    merged = tmp_path / "merged"
    result = _merge(merged, *reversed(shards))
    assert result.returncode == 0, result.stderr
    assert "merged 3 shards, 6 submissions" in result.stderr
    want, got = _tree(tmp_path / "single"), _tree(merged)
    assert sorted(got) == sorted(want)
    # executed notebooks and logs carry timings of their own run: same files, same
    # students; everything the instructor reads is byte-identical.
    same = [k for k in want if not k.startswith(("executed/", "logs/"))]
    assert {"gradebook.csv", "gradebook.json", "report.html", "feedback/good.html"} <= set(same)
    for name in same:
        assert got[name] == want[name], f"{name} differs from the single-machine run"
    for name in (k for k in want if k.startswith("executed/")):
        assert got[name] == (shards[shard_of(Path(name).stem, 3) - 1] / name).read_bytes()

    # refusals, each naming what to do
    def refused(*folders: Path) -> str:
        bad = _merge(tmp_path / "refused", *folders)
        assert bad.returncode == 2
        assert "labkit grade merge:" in bad.stderr
        return bad.stderr

    assert "shards 3/3 are missing" in refused(shards[0], shards[1])
    assert "repeats shard 1/3" in refused(shards[0], shards[0], shards[1], shards[2])
    assert "is not a finished shard" in refused(tmp_path / "single", *shards)
    assert "overlaps the shard folder" in _merge(shards[0] / "x", *shards).stderr
    other = tmp_path / "other-params.json"
    other.write_text(json.dumps({"*": {"subnet": "10.9.0.0/24"}}))
    changed = tmp_path / "shard3-other"
    run = _grade(changed, [subs], other, "--shard", "3/3")
    assert run.returncode == 0, run.stderr
    assert "other settings" in refused(shards[0], shards[1], changed)
    bad_spec = _grade(tmp_path / "x", [subs], params, "--shard", "4/3")
    assert bad_spec.returncode == 2 and "out of range" in bad_spec.stderr

    # the plain multi-machine recipe, with this machine standing in for three hosts
    bundle = tmp_path / "bundle"
    shutil.copytree(subs, bundle / "submissions")
    for name in ("exercise.ipynb", "hidden.py"):
        shutil.copy(BASIC / name, bundle / name)
    shutil.copy(params, bundle / "params.json")
    recipe = subprocess.run(
        ["bash", str(RECIPE), str(bundle), str(tmp_path / "recipe"), "local", "local", "local",
         "--", "exercise.ipynb", "submissions", "--hidden", "hidden.py", "--params-file",
         "params.json", "-j", "2", "--timeout", "60", "--output-limit", "256k", "--memory", "1G"],
        env={**os.environ, "LABKIT": str(Path(sys.prefix) / "bin" / "labkit")},
        capture_output=True, text=True, timeout=600)
    assert recipe.returncode == 0, recipe.stderr + "".join(
        p.read_text() for p in (tmp_path / "recipe-shards").glob("*.log"))
    again = _tree(tmp_path / "recipe")
    for name in same:
        assert again[name] == want[name], f"{name}: the recipe's merge differs"
