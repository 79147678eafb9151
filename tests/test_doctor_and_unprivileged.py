"""``labkit doctor`` in every situation, and the core suite again as an ordinary user."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from labkit import doctor

REPO = Path(__file__).resolve().parent.parent
STUDENT = "labkit-student"
UNPRIVILEGED_SUITE = ["tests/test_lifecycle.py", "tests/test_topology.py", "tests/test_errors.py",
                      "tests/test_processes.py", "tests/test_capture.py",
                      "tests/test_robustness.py", "tests/test_calico.py",
                      "tests/test_weave.py", "tests/test_romana.py", "tests/test_diagrams.py",
                      "tests/test_singleuser.py"]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="creating a test user needs root")


def ensure_student() -> pwd.struct_passwd:
    """The unprivileged account the tests run as (created here if missing)."""
    try:
        return pwd.getpwnam(STUDENT)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        STUDENT], check=True)
        return pwd.getpwnam(STUDENT)


def as_student(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the unprivileged student, with a home of its own (tools such as
    tshark read and write their settings there)."""
    user = ensure_student()
    with tempfile.TemporaryDirectory(prefix="labkit-student-") as home:
        os.chown(home, user.pw_uid, user.pw_gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": home}
        return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                               "--clear-groups", "--", *argv], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=timeout)


def test_doctor_as_this_user() -> None:
    report = doctor.run()
    assert report.ok and report.mode == "full"
    names = {c.name: c for c in report.checks}
    assert names["veth pairs"].ok and names["Linux bridges"].ok and names["VXLAN devices"].ok
    assert names["tool ping"].ok
    assert "Basic labs work here." in report.text()
    assert "<table>" in report._repr_html_()


@root_only
def test_doctor_as_an_unprivileged_user() -> None:
    out = as_student([sys.executable, "-m", "labkit.cli", "doctor", "--json"], timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] and data["mode"] == "full"
    first = data["checks"][0]
    assert first["name"] == "lab mode full" and "unprivileged user" in first["detail"]


def test_doctor_where_namespaces_are_refused() -> None:
    script = (f"echo 0 > /proc/sys/user/max_user_namespaces && "
              f"exec {sys.executable} -m labkit.cli doctor")
    out = subprocess.run(["unshare", "-Ur", "sh", "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 1
    assert "[FAIL] user and network namespaces" in out.stdout
    assert "Labs cannot run here" in out.stdout and "./course.sh start" in out.stdout


@root_only
def test_core_suite_as_an_unprivileged_user() -> None:
    out = as_student([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      *UNPRIVILEGED_SUITE], timeout=900)
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0, tail
    assert " passed" in out.stdout and "failed" not in out.stdout, tail
