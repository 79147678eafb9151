"""deploy/kubernetes: the grading Jobs, the Zero to JupyterHub values, the seccomp profile.

* The Indexed Job and the merge Job are validated, strictly (no unknown field), against
  the Kubernetes OpenAPI schemas that the ``kubernetes-validate`` package ships.
* The z2jh values: no PyPI or npm package ships the chart's ``values.schema.json`` (it
  is published only inside the Helm chart), so the test does what the chart does with
  the keys these values use -- hands them to KubeSpawner (``jupyterhub-kubespawner``,
  the spawner the chart configures) -- and validates the Pod KubeSpawner makes from
  each overlay, strictly, against the Pod schema; plus the API server's rules on
  those fields that a schema cannot express.
* Each security variant is reproduced with the Docker engine (Docker's default seccomp
  profile is the one containerd's RuntimeDefault derives from; ``systempaths=unconfined``
  is Docker's ``procMount: Unmasked``; a pod's user namespace cannot be reproduced per
  container, the view from inside is the same), and ``labkit doctor`` must report the
  mode the values files promise; the grading Job's security context must run the
  grader with its whole sandbox.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
SECCOMP = K8S / "seccomp" / "labkit-userns.json"
K8S_VERSION = "1.33.0"
"""The first release with user namespaces (hostUsers: false) on by default."""


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _validate(manifest: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------------------
# Grading Jobs
# --------------------------------------------------------------------------------------

def test_grading_jobs_are_valid_kubernetes() -> None:
    (shards,) = _docs(K8S / "grading" / "indexed-job.yaml")
    (merge,) = _docs(K8S / "grading" / "merge-job.yaml")
    _validate(shards)
    _validate(merge)
    spec = shards["spec"]
    assert spec["completionMode"] == "Indexed"
    count = spec["completions"]
    assert spec["parallelism"] == count
    script = spec["template"]["spec"]["containers"][0]["args"][0]
    assert f'shard="$((JOB_COMPLETION_INDEX + 1))/{count}"' in script and "--shard" in script
    assert "labkit grade merge /graded/shard-*" in merge["spec"]["template"]["spec"][
        "containers"][0]["args"][0]
    # the strict check is a real one: a misspelt field is refused
    broken = copy.deepcopy(shards)
    broken["spec"]["completionsMode"] = "Indexed"
    with pytest.raises(Exception, match="completionsMode"):
        _validate(broken)


# --------------------------------------------------------------------------------------
# Zero to JupyterHub values -> KubeSpawner -> Pod
# --------------------------------------------------------------------------------------

def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of values files: maps merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_SINGLEUSER = {  # values key -> make_pod argument, as the chart's jupyterhub_config.py maps them
    "uid": "uid", "fsGid": "fs_gid", "allowPrivilegeEscalation": "allow_privilege_escalation",
    "extraPodConfig": "extra_pod_config", "lifecycleHooks": "lifecycle_hooks",
}
_HANDLED = {"image", "cmd", "defaultUrl", "startTimeout", "cpu", "memory", "storage",
            "networkPolicy", *_SINGLEUSER}


def _pod(values: dict[str, Any]) -> dict[str, Any]:
    """The student Pod KubeSpawner makes from these values (the keys used here)."""
    from kubernetes_asyncio.client import ApiClient
    from kubespawner.objects import make_pod

    su = values["singleuser"]
    unknown = set(su) - _HANDLED
    assert not unknown, f"values use keys this test does not map: {unknown}"
    kwargs: dict[str, Any] = {_SINGLEUSER[k]: v for k, v in su.items() if k in _SINGLEUSER}
    spawner = values.get("hub", {}).get("config", {}).get("KubeSpawner", {})
    pod = make_pod(
        name="jupyter-student", cmd=[su["cmd"], f"--SingleUserNotebookApp.default_url="
                                      f"{su['defaultUrl']}"],
        port=8888, image=f"{su['image']['name']}:{su['image']['tag']}",
        cpu_limit=su["cpu"]["limit"], cpu_guarantee=su["cpu"]["guarantee"],
        mem_limit=su["memory"]["limit"], mem_guarantee=su["memory"]["guarantee"],
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "claim-student"}}],
        volume_mounts=[{"name": "home", "mountPath": su["storage"]["homeMountPath"]}],
        container_security_context=spawner.get("container_security_context"),
        pod_security_context=spawner.get("pod_security_context"), **kwargs)
    async def serialize() -> dict[str, Any]:
        async with ApiClient() as api:  # its HTTP session wants a running event loop
            return api.sanitize_for_serialization(pod)

    manifest = asyncio.run(serialize())
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    return manifest


def _api_server_rules(pod: dict[str, Any]) -> None:
    """What the API server refuses in these fields beyond the schema."""
    spec = pod["spec"]
    for container in spec["containers"]:
        ctx = container.get("securityContext", {})
        caps = set(ctx.get("capabilities", {}).get("add") or [])
        if ctx.get("procMount") == "Unmasked":
            assert spec.get("hostUsers") is False, "procMount: Unmasked needs hostUsers: false"
        if "SYS_ADMIN" in caps or "CAP_SYS_ADMIN" in caps:
            assert ctx.get("allowPrivilegeEscalation") is not False, \
                "allowPrivilegeEscalation: false cannot go with CAP_SYS_ADMIN"
        profile = (ctx.get("seccompProfile") or {})
        if profile.get("type") == "Localhost":
            assert profile.get("localhostProfile"), "a Localhost seccomp profile needs its path"


@pytest.mark.parametrize("overlay", ["values-userns.yaml", "values-seccomp.yaml"])
def test_z2jh_values_make_valid_student_pods(overlay: str) -> None:
    base = yaml.safe_load((K8S / "z2jh" / "values.yaml").read_text())
    values = _merge(base, yaml.safe_load((K8S / "z2jh" / overlay).read_text()))
    assert values["cull"]["enabled"] and values["cull"]["timeout"] > 0
    pod = _pod(values)
    _validate(pod)
    _api_server_rules(pod)
    ctx = pod["spec"]["containers"][0]["securityContext"]
    assert ctx["runAsUser"] == 1000  # students are never root, in either variant
    if overlay == "values-userns.yaml":
        assert pod["spec"]["hostUsers"] is False
        assert ctx["capabilities"]["add"] == ["SYS_ADMIN"] and ctx["procMount"] == "Unmasked"
    else:
        assert "hostUsers" not in pod["spec"] and ctx["allowPrivilegeEscalation"] is False
        assert ctx["seccompProfile"]["localhostProfile"] == f"profiles/{SECCOMP.name}"
        assert ctx["capabilities"]["drop"] == ["ALL"]
    # and the rules bite: the overlay's fields out of combination are refused
    wrong = copy.deepcopy(pod)
    wrong["spec"].pop("hostUsers", None)
    wrong["spec"]["containers"][0]["securityContext"]["procMount"] = "Unmasked"
    with pytest.raises(AssertionError, match="hostUsers"):
        _api_server_rules(wrong)


def test_seccomp_profile_keeps_the_runtime_bans_the_labs_do_not_need() -> None:
    profile = json.loads(SECCOMP.read_text())
    denied = {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ERRNO"
              for n in rule["names"]}
    assert {"bpf", "keyctl", "kexec_load", "init_module", "perf_event_open",
            "userfaultfd", "open_by_handle_at", "reboot"} <= denied
    assert not denied & {"unshare", "setns", "mount", "umount2", "clone", "clone3",
                         "mount_setattr"}


# --------------------------------------------------------------------------------------
# The variants for real, in Docker
# --------------------------------------------------------------------------------------

def _engine() -> str | None:
    if os.geteuid() != 0:
        return "talking to the Docker engine needs root here"
    try:
        from labkit.docker import check
    except ImportError as exc:  # pragma: no cover
        return str(exc)
    status = check()
    return None if status else f"no Docker engine: {status.reason}"


def _labkit_origin() -> Path:
    """Where the environment's own labkit lives (the grader's kernels import it)."""
    out = subprocess.run([sys.executable, "-c", "import labkit; print(labkit.__file__)"],
                         cwd="/", env={"PATH": os.environ.get("PATH", "")},
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()).parent


def _in_container(flags: list[str], argv: list[str], data: Path | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the course's offline base image with this machine's Python,
    tools and this checkout's labkit mounted read-only."""
    from labkit.docker.images import BASE_IMAGE, ensure_base_image

    ensure_base_image()
    mounts = ["-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro",
              "-v", f"{sys.prefix}:{sys.prefix}:ro",
              "-v", f"{REPO / 'labkit'}:{_labkit_origin()}:ro", "-v", f"{REPO}:/src:ro"]
    if data is not None:
        mounts += ["-v", f"{data}:/data"]
    env = ["-e", "HOME=/tmp", "-e", f"PATH={sys.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "--tmpfs", "/var/tmp",
                           *mounts, *env, *flags, BASE_IMAGE, *argv],
                          capture_output=True, text=True, timeout=300)


VARIANTS = {
    # name: (docker flags equivalent to the pod's security context, doctor's mode)
    "chart defaults (RuntimeDefault, uid 1000)": (["--user", "1000:1000"], "none"),
    "NET_ADMIN only": (["--user", "1000:1000", "--cap-add", "NET_ADMIN"], "none"),
    "values-userns.yaml": (["--user", "1000:1000", "--cap-add", "SYS_ADMIN",
                            "--security-opt", "systempaths=unconfined"], "full"),
    "values-userns.yaml without procMount: Unmasked": (
        ["--user", "1000:1000", "--cap-add", "SYS_ADMIN"], "restricted"),
    "values-seccomp.yaml": (["--user", "1000:1000", "--cap-drop", "ALL", "--security-opt",
                             "no-new-privileges", "--security-opt", f"seccomp={SECCOMP}"],
                            "restricted"),
}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_labkit_doctor_under_each_security_context(variant: str) -> None:
    reason = _engine()
    if reason:
        pytest.skip(reason)
    flags, mode = VARIANTS[variant]
    run = _in_container(flags, [sys.executable, "-m", "labkit.cli", "doctor", "--json"])
    report = json.loads(run.stdout) if run.stdout.strip().startswith("{") else None
    assert report is not None, run.stdout[-2000:] + run.stderr[-2000:]
    assert report["mode"] == mode, json.dumps(report, indent=1)[:3000]


@pytest.mark.docker
@pytest.mark.slow
def test_grading_job_security_context_runs_the_whole_sandbox(tmp_path: Path) -> None:
    """The Indexed Job's pod (uid 1000, no capabilities, no privilege escalation, the
    seccomp profile, /proc unmasked) grades with the same sandbox as one machine."""
    reason = _engine()
    if reason:
        pytest.skip(reason)
    basic = REPO / "tests" / "data" / "grading" / "basic"
    data = tmp_path / "data"
    (data / "out").mkdir(parents=True)
    for name in ("good", "partial"):
        (data / f"{name}.ipynb").write_bytes((basic / "submissions" / f"{name}.ipynb").read_bytes())
    os.chmod(data / "out", 0o777)
    flags = ["--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
             "--security-opt", f"seccomp={SECCOMP}", "--security-opt", "systempaths=unconfined"]
    run = _in_container(flags, [
        sys.executable, "-m", "labkit.cli", "grade", "/src/tests/data/grading/basic/exercise.ipynb",
        "/data/good.ipynb", "/data/partial.ipynb", "--hidden",
        "/src/tests/data/grading/basic/hidden.py", "-p", "subnet", "10.0.0.0/24",
        "--shard", "1/1", "-o", "/data/out/shard-1", "--timeout", "120", "-j", "2"], data)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = (data / "out" / "shard-1" / "gradebook.csv").read_text().splitlines()
    assert rows[1].startswith("good,ok,5,5") and rows[2].startswith("partial,ok,3,5"), rows
    # and without /proc unmasked (no hostUsers: false) the grader refuses, saying why
    refused = _in_container(flags[:-2], [
        sys.executable, "-m", "labkit.cli", "grade", "/src/tests/data/grading/basic/exercise.ipynb",
        "/data/good.ipynb", "-o", "/data/out/refused"], data)
    assert refused.returncode == 2 and "cannot start a grading sandbox" in refused.stderr
