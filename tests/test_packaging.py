"""The packaging files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_every_runtime_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["course"]}
    listed = set()
    for line in (REPO / "environment.yml").read_text().splitlines():
        line = line.strip()
        if line.startswith("- ") and not line.endswith(":"):
            listed.add(_name(line[2:]))
    missing = wanted - listed
    assert not missing, f"add to environment.yml: {sorted(missing)}"


def test_console_script_and_binder_files() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["labkit"] == "labkit.cli:main"
    assert (REPO / "postBuild").read_text().startswith("#!/usr/bin/env bash")
    assert "set -e" in (REPO / "postBuild").read_text()
    assert "iproute2" in (REPO / "apt.txt").read_text().split()
    readme = (REPO / "README.md").read_text()
    assert "./course.sh start" in readme and "./course.sh test" in readme
    assert "./course.sh test" in (REPO / ".ci" / "run").read_text() or \
        "course.sh test" in (REPO / ".ci" / "run").read_text()


def test_built_notebooks_match_their_sources() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "tools" / "build_course.py"), "--check"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
