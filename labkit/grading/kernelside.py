"""Imported once by every sandboxed kernel at start-up (``IPKernelApp.exec_lines``).

ipykernel buffers ``print`` output and sends it every 0.2 s, however much piled up:
a notebook printing in a tight loop makes messages of hundreds of megabytes, which
exhaust the kernel's memory limit or are too large for the grader to accept, so the
run would end as a timeout with no useful reason. Here the kernel's stdout and stderr
flush (and wait for the send) every :data:`CHUNK` characters, which keeps each
message small and lets the grader count the output and stop it at its limit.

This is a courtesy to well-meaning notebooks, not a security boundary: the grader
does not rely on it (oversized messages are refused, and the time limit holds).
"""

from __future__ import annotations

import sys
from typing import Any

CHUNK = 64 * 1024


def _throttle(stream: Any) -> None:
    write = stream.write
    pending = 0

    def write_and_flush(text: str) -> Any:
        nonlocal pending
        written = write(text)
        pending += len(text)
        if pending >= CHUNK:
            pending = 0
            stream.flush()
        return written

    stream.write = write_and_flush


for _stream in (sys.stdout, sys.stderr):
    if _stream is not None and type(_stream).__module__.startswith("ipykernel"):
        _throttle(_stream)


# --------------------------------------------------------------------------------------
# What the grader asks the kernel (see labkit.grading.evaluator)
# --------------------------------------------------------------------------------------

_MAX_TEXT = 20_000
_MAX_ITEMS = 2_000


def _encode(value: Any, depth: int = 0) -> Any:
    """A JSON form of a value the grader may use as data (tagged where JSON is ambiguous)."""
    import ipaddress

    if depth > 6:
        return {"object": "too deep"}
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else {"float": repr(value)}
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return {"ip": str(value)}
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return {"net": str(value)}
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return {"iface": str(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)[:_MAX_ITEMS]
        kind = {list: "list", tuple: "tuple"}.get(type(value), "set")
        return {kind: [_encode(v, depth + 1) for v in items]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, depth + 1), _encode(v, depth + 1)]
                         for k, v in list(value.items())[:_MAX_ITEMS]]}
    return _encode_object(value)


def _lab_pid(obj: Any) -> Any:
    return getattr(getattr(obj, "lab", None), "supervisor_pid", None)


def _names(items: Any) -> list[str]:
    return [str(getattr(m, "name", "")) for m in list(items or ())[:_MAX_ITEMS]]


# Library handles the grader rebuilds from real state (labkit.grading.evaluator.REBUILD):
# the class's "module.qualname" -> its encoding, names and the lab's supervisor PID only.
# An object whose class (or any base class) is listed is encoded by the first match in
# its MRO, so subclasses (ClusterNode is a Node) are handles too.
HANDLES: dict[str, Any] = {
    "labkit.lab.Lab": lambda v: {"lab": v.supervisor_pid, "name": v.name},
    "labkit.cluster._cluster.ClusterNode":
        lambda v: {"machine": v.name, "lab": _lab_pid(v), "nic": getattr(v, "nic", None),
                   "role": getattr(v, "role", None)},
    "labkit.node.Node": lambda v: {"node": v.name, "lab": _lab_pid(v)},
    "labkit.cluster._cluster.Cluster":
        lambda v: {"cluster": _names(getattr(v, "machines", ())), "lab": _lab_pid(v),
                   "store": getattr(getattr(v, "store", None), "name", None),
                   "nic": getattr(v, "nic", None)},
    "labkit.cluster.etcd.Etcd":
        lambda v: {"etcd": getattr(getattr(v, "machine", None), "name", None),
                   "lab": _lab_pid(getattr(v, "cluster", None)),
                   "nic": getattr(getattr(v, "cluster", None), "nic", None)},
    # The Docker lessons (labkit.grading.dockerview): names only; the grader connects to
    # the instructor's docker_host itself, so nothing about the client is sent.
    "docker.client.DockerClient": lambda v: {"docker_client": True},
    "labkit.docker.resources.DockerLab":
        lambda v: {"docker_lab": str(getattr(v, "session", ""))[:200]},
    "labkit.docker.resources.ContainerNode":
        lambda v: {"docker_container": str(getattr(v, "name", ""))[:200]},
}


def _encode_object(value: Any) -> dict[str, Any]:
    import types

    kind = type(value)
    if isinstance(value, types.ModuleType):
        return {"module": value.__name__}
    module, qualname = getattr(kind, "__module__", ""), getattr(kind, "__qualname__", "")
    for klass in getattr(kind, "__mro__", ())[:32]:
        encode = HANDLES.get(f"{getattr(klass, '__module__', '')}.{getattr(klass, '__qualname__', '')}")
        if encode is not None:
            return encode(value)
    if isinstance(value, type) or callable(value):
        owner = getattr(value, "__module__", None)
        name = getattr(value, "__qualname__", None)
        if isinstance(owner, str) and isinstance(name, str):
            return {"ref": [owner, name]}
    home = sys.modules.get(module)
    for name, known in (vars(home).items() if home is not None else ()):
        if known is value and not name.startswith("_"):
            return {"ref": [module, name]}
    return {"object": f"{module}.{qualname}"[:200]}


def _untouched(lc: Any) -> bool:
    """Whether ``labkit.checkpoints``' checks and Checkpoint are still the library's code."""
    def ours(owner: Any) -> bool:
        return all(getattr(getattr(v, "__func__", v), "__module__", lc.__name__) == lc.__name__
                   for v in vars(owner).values() if callable(getattr(v, "__func__", v)))
    return (not vars(lc.checks) and type(lc.checks).__module__ == lc.__name__
            and ours(type(lc.checks)) and ours(lc.Checkpoint) and ours(lc.CheckpointResult)
            and lc.Checkpoint.__module__ == lc.__name__)


def _integrity(shell: Any) -> dict[str, Any]:
    """Facts about the kernel the grader compares with what they were before student code."""
    facts: dict[str, Any] = {}
    try:
        events = shell.events.callbacks
        facts["callbacks"] = {name: len(funcs) for name, funcs in sorted(events.items())}
    except Exception:  # noqa: BLE001 - a broken kernel is itself a fact
        facts["callbacks"] = "unreadable"
    try:
        formatter = shell.display_formatter
        facts["formatters"] = {mime: len(f.type_printers) + len(f.deferred_printers)
                               for mime, f in sorted(formatter.formatters.items())}
        facts["mimebundle"] = len(formatter.mimebundle_formatter.type_printers)
    except Exception:  # noqa: BLE001
        facts["formatters"] = "unreadable"
    try:
        import labkit.checkpoints as lc

        ns = shell.user_ns
        facts["names"] = {name: ns.get(name) is getattr(lc, name)
                          for name in ("Checkpoint", "checks") if name in ns}
        facts["library"] = _untouched(lc)
    except Exception:  # noqa: BLE001
        facts["names"] = "unreadable"
    return facts


def describe(names: list[str] | None = None) -> str:
    """The values of ``names`` in the notebook's namespace (all public ones when None),
    encoded for the grader, with integrity facts; a JSON string.

    The grader calls this through an ``execute_request``'s ``user_expressions`` and
    treats the answer as data from the student: it never decides a grade by itself.
    """
    import json

    from IPython import get_ipython

    shell = get_ipython()
    ns = shell.user_ns if shell is not None else {}
    hidden = getattr(shell, "user_ns_hidden", {}) if shell is not None else {}
    if names is None:
        names = [n for n in ns if not n.startswith("_") and n not in hidden
                 and n not in ("In", "Out", "exit", "quit", "get_ipython")]
    values: dict[str, Any] = {}
    for name in names[:_MAX_ITEMS]:
        if name not in ns:
            continue
        try:
            values[name] = _encode(ns[name])
        except Exception as exc:  # noqa: BLE001 - an odd object is described, not fatal
            values[name] = {"object": f"unreadable ({type(exc).__name__})"}
    return json.dumps({"values": values, "integrity": _integrity(shell)}, default=str)
