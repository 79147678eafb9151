"""The grader's own verdict on every checkpoint, reached outside the student's kernel.

The student's kernel runs the student's code, so nothing it shows can be trusted:
``Checkpoint`` and ``checks`` can be redefined there, a display formatter or a
post-execute hook can replace any output, the whole of labkit can be monkeypatched.
What the student's code cannot forge is the **kernel state** of the labs it built:
interfaces, addresses, routes, neighbours, bridge ports, sysctls, firewall rules and
whether packets really flow. So the grader's worker (:mod:`labkit.grading.runner`),
right after a checkpoint cell has run in the kernel, runs the **instructor's** source
of that cell again itself, in this module, with its own ``labkit`` and with
:class:`Evaluator`'s namespace:

* **Parameters**: the instructor's parameters cell, executed here, with the values
  the instructor injected on top. Never the student's: a notebook that assigns
  ``subnet = ...`` is checked with the instructor's subnet (and flagged).
* **The setup snapshot**: every public name the exercise's setup cells defined
  (addresses derived from the parameters, ``lab``, its nodes), read from the kernel
  right after those cells ran and before any student cell could (the grader puts
  the instructor's parameters and setup cells first). Later changes by the notebook
  are ignored and flagged.
* **The student's answers**: any other name the cell reads is read from the kernel
  at that moment, as data only (numbers, strings, IP addresses, lists, dicts). A
  name bound to a labkit ``Lab`` or ``Node`` (or any subclass) becomes the grader's
  own view of that real lab (below); so does a registered **handle** (below). Any
  other object (a capture made in the notebook, a DataFrame, a
  function) cannot be re-checked: using it fails the check with that reason.
* **Labs**: the grader's view of a student's lab is a host-mode :class:`labkit.Lab`
  (its own supervisor, started by the worker) that adopts the student lab's node
  namespaces, found below the lab supervisor's root (``/run/netns/NAME``, resolved
  without following any link, accepted only if it is a network namespace). Every
  check then reads the real kernel state through the grader's supervisor, never
  through the student's.
* **Handles**: library objects the grader rebuilds from names and real state. The
  kernel encodes an object whose class (or a base class) is listed in
  :data:`labkit.grading.kernelside.HANDLES` as a tag, names and its lab's supervisor
  PID; :data:`REBUILD` maps the tag to a function building the grader's view over
  the adopted nodes. Registered: a cluster machine (``ClusterNode``), a ``Cluster``
  and ``Etcd`` (:mod:`labkit.grading.clusterview`: ``node1.ip`` read from the
  kernel, ``cluster["node2"]``, ``etcd.endpoint``, ``etcd.etcdctl(...)``; a
  machine file ``node1.path(p)`` is copied out of the lab safely, a socket there
  relayed, never by following a link or by running a command in the lab's mount
  namespace). The Docker lessons' handles live on the instructor's engine rather than
  in a lab (:data:`ENGINE_REBUILD`, :mod:`labkit.grading.dockerview`): a docker-py
  client is the grader's own client connected to the instructor's ``docker_host``
  parameter (the guarded proxy when grading), a ``DockerLab`` a view of the same
  session that removes and builds nothing, a ``ContainerNode`` the course-labelled
  container of that name, so ``checks.docker_network``, ``checks.container``,
  ``checks.ping`` and ``checks.command`` run against the real engine. A later
  system registers its handle in both tables; a setting the view needs (a card's
  name) comes from the instructor's setup snapshot, never from student code.
* **Files** the cell reads by relative path come from a copy of the working copy's
  regular files (size-limited, links refused), made just before the cell runs.

The verdict of the grader's run is the grade. What the kernel displayed is compared
with it, and a difference is flagged as possible tampering; so are changes the
notebook made to the kernel's display formatters and execution hooks and to the
names ``Checkpoint`` and ``checks``.

One exception, for objects the instructor's own setup made that the grader cannot
rebuild (one that is not a registered handle, or a handle whose view gives up: a
Docker engine the grader cannot reach, a name it refuses): a checkpoint that needs
one falls back to the result the kernel displayed, flagged "not re-verified".
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import io
import ipaddress
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.grading import safefs
from labkit.grading.notebook import _strip_magics

__all__ = ["Evaluator", "Unverifiable", "Verdict", "free_names"]

_NETNS_TYPE = 0x40000000  # CLONE_NEWNET
_NS_GET_NSTYPE = 0xB703
_NODE_NAME_MAX = 64
_COPY_FILES, _COPY_FILE_BYTES, _COPY_TOTAL = 200, 1 << 20, 16 << 20

# The pin: a moment in a node's network namespace, so that the grader's host-mode lab
# can adopt it by PID (``Lab.adopt``). Standard library only; exits when stdin closes.
_PIN = ("import ctypes,sys\n"
        "l=ctypes.CDLL(None,use_errno=True)\n"
        "if l.setns(int(sys.argv[1]),0x40000000)!=0: sys.exit('setns failed')\n"
        "sys.stdout.write('in\\n');sys.stdout.flush();sys.stdin.read()\n")


class Unverifiable(Exception):
    """A value the grader cannot rebuild outside the kernel."""


@dataclass(frozen=True)
class Verdict:
    """The grader's own result for one checkpoint."""

    id: str
    passed: bool
    reason: str
    verified: bool = True
    """False when the checkpoint needed an object the grader could not rebuild."""


def free_names(source: str) -> list[str]:
    """Names a cell reads (that are not Python builtins), in a stable order."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return []
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.value.id for n in ast.walk(tree)
              if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    return sorted(n for n in names if not hasattr(builtins, n))


class _Placeholder:
    """Stands for a name the grader could not rebuild; any use says why."""

    def __init__(self, name: str, why: str, touched: set[str] | None) -> None:
        object.__setattr__(self, "_why", f"{name!r} ({why}) cannot be re-checked by the grader")
        object.__setattr__(self, "_touched", touched)
        object.__setattr__(self, "_name", name)

    def _fail(self, *_: Any, **__: Any) -> Any:
        touched = object.__getattribute__(self, "_touched")
        if touched is not None:
            touched.add(object.__getattribute__(self, "_name"))
        raise Unverifiable(object.__getattribute__(self, "_why"))

    def __getattr__(self, _: str) -> Any:
        return self._fail()

    __call__ = __getitem__ = __iter__ = __len__ = __bool__ = __eq__ = __str__ = _fail
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<not re-checkable: {object.__getattribute__(self, '_why')}>"


# --------------------------------------------------------------------------------------
# Finding a student's lab from the outside
# --------------------------------------------------------------------------------------

def _status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh.read(16384).splitlines():
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _descendants(root: int, limit: int = 4096) -> list[int]:
    seen, todo = [], [root]
    while todo and len(seen) < limit:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(_children(pid))
    return seen


def _ns_id(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def find_lab_supervisor(sandbox_init: int, sandbox_pid: int) -> int:
    """The host PID of the supervisor of the student's lab whose ``supervisor_pid``
    (the ``unshare`` process, as the kernel sees it) is ``sandbox_pid``."""
    level = len(_status(sandbox_init).get("NSpid", "").split()) - 1
    if level < 0:
        raise Unverifiable("the sandbox is gone")
    pidns = _ns_id(sandbox_init, "pid")
    for pid in _descendants(sandbox_init):
        nspid = _status(pid).get("NSpid", "").split()
        if len(nspid) > level and nspid[level] == str(sandbox_pid) \
                and _ns_id(pid, "pid") == pidns:
            for child in _children(pid):
                if _status(child).get("NSpid", "").split()[-1:] == ["1"]:
                    return child
            break
    raise Unverifiable(f"no lab supervisor with PID {sandbox_pid} runs in the sandbox")


def open_node_netns(supervisor: int, node: str) -> int:
    """A descriptor of node ``node``'s network namespace in a student's lab.

    Resolved below the supervisor's root without following links, and accepted only
    if it is a network namespace (never opened as anything else).
    """
    if not node or len(node) > _NODE_NAME_MAX or "/" in node or node in (".", "..") \
            or not node.isprintable():
        raise Unverifiable(f"{node!r} is not a node name")
    root = os.open(f"/proc/{supervisor}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pfd = safefs.open_beneath(root, f"run/netns/{node}", os.O_PATH | os.O_NOFOLLOW)
    except OSError as exc:
        raise Unverifiable(f"node {node!r} is not in that lab ({exc.strerror})") from None
    finally:
        os.close(root)
    try:
        if not stat.S_ISREG(os.fstat(pfd).st_mode):
            raise Unverifiable(f"node {node!r}: not a namespace file")
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    import fcntl

    try:
        kind = fcntl.ioctl(fd, _NS_GET_NSTYPE)
    except OSError:
        kind = -1
    if kind != _NETNS_TYPE:
        os.close(fd)
        raise Unverifiable(f"node {node!r}: not a network namespace")
    return fd


class LabView:
    """The grader's view of one student lab: ``lab[name]`` / ``lab.node(name)``.

    Nodes are adopted on first use by a host-mode lab of the grader's own.
    """

    def __init__(self, supervisor: int, name: str, workdir: Path) -> None:
        self._supervisor = supervisor
        self.name = name
        self._workdir = workdir
        self._lab: Any = None
        self._nodes: dict[str, Any] = {}
        self.closers: list[Any] = []
        """Called by :meth:`close` (a view's helpers: socket relays)."""

    def node(self, name: Any) -> Any:
        name = getattr(name, "name", name)
        if not isinstance(name, str):
            raise Unverifiable(f"{name!r} is not a node name")
        if name not in self._nodes:
            self._nodes[name] = self._adopt(name)
        return self._nodes[name]

    __getitem__ = node

    def _adopt(self, name: str) -> Any:
        from labkit import Lab

        fd = open_node_netns(self._supervisor, name)
        try:
            if self._lab is None:
                self._lab = Lab(f"grader{self._supervisor}"[:15], mode="host",
                                workdir=self._workdir)
            pin = subprocess.Popen([sys.executable, "-I", "-S", "-c", _PIN, str(fd)],
                                   pass_fds=[fd], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        finally:
            os.close(fd)
        try:
            assert pin.stdout is not None
            if pin.stdout.readline().strip() != b"in":
                raise Unverifiable(f"cannot enter node {name!r}")
            node = self._lab.adopt(name, pid=pin.pid, kind="host")
        finally:
            assert pin.stdin is not None
            pin.stdin.close()
            pin.wait()
        return node

    def __getattr__(self, attr: str) -> Any:
        raise Unverifiable(f"the grader's view of lab {self.name!r} has no {attr!r}: "
                           "checkpoint cells may use lab[NAME] and lab.node(NAME)")

    def close(self) -> None:
        for closer in self.closers:
            with contextlib.suppress(Exception):
                closer()
        self.closers.clear()
        if self._lab is not None:
            self._lab.close()
            self._lab = None

    def __repr__(self) -> str:
        return f"<grader's view of lab {self.name}>"


# --------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------

@dataclass
class Evaluator:
    """Runs instructor checkpoint cells against a submission's real labs."""

    parameters_source: str
    parameters: Mapping[str, Any]
    sandbox_init: int = 0
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="labkit-eval-")))
    base: dict[str, Any] = field(init=False, default_factory=dict)
    snapshot: dict[str, Any] = field(init=False, default_factory=dict)
    baseline: dict[str, Any] | None = field(init=False, default=None)
    labs: dict[int, LabView] = field(init=False, default_factory=dict)
    flags: list[str] = field(init=False, default_factory=list)
    hints: dict[int, dict[str, Any]] = field(init=False, default_factory=dict)
    _seen: set[str] = field(init=False, default_factory=set)
    _docker: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        (self.work / "cwd").mkdir(exist_ok=True)
        ns: dict[str, Any] = {"__builtins__": builtins}
        with contextlib.suppress(Exception):  # a broken parameters cell: injected values only
            exec(compile(_strip_magics(self.parameters_source), "<parameters>", "exec"), ns)
        ns.update(self.parameters)
        self.base = {k: v for k, v in ns.items() if not k.startswith("__")}

    # -- what the kernel told us ----------------------------------------------------------

    def take_snapshot(self, described: str) -> None:
        """The kernel's names right after the instructor's setup (no student code yet)."""
        data = _parse(described)
        self.snapshot = dict(data.get("values", {}))
        self.baseline = data.get("integrity")
        for enc in self.snapshot.values():   # the setup's own settings (a cluster's card name)
            if isinstance(enc, dict) and next(iter(enc), None) in REBUILD \
                    and isinstance(enc.get("lab"), int):
                self.hints.setdefault(enc["lab"], {}).update(
                    {k: v for k, v in enc.items() if k == "nic" and isinstance(v, str)})

    def _note(self, where: str, text: str) -> None:
        """Flag ``text`` once, with the first cell where it was seen."""
        if text not in self._seen:
            self._seen.add(text)
            self.flags.append(f"{where} (and later): {text}" if where else text)

    def _compare_integrity(self, facts: Any, where: str) -> None:
        if self.baseline is None or not isinstance(facts, dict):
            return
        base = self.baseline
        if facts.get("callbacks") != base.get("callbacks"):
            self._note(where, "the notebook registered IPython execution hooks "
                       "(possible tampering with outputs)")
        if facts.get("formatters") != base.get("formatters") \
                or facts.get("mimebundle") != base.get("mimebundle"):
            self._note(where, "the notebook registered display formatters "
                       "(possible tampering with outputs)")
        names = facts.get("names")
        if isinstance(names, dict) and not all(names.values()):
            changed = ", ".join(sorted(n for n, ok in names.items() if not ok))
            self._note(where, f"the notebook redefined {changed}")
        if facts.get("library") is False and base.get("library") is True:
            self._note(where, "the notebook changed labkit.checkpoints in its kernel")

    # -- values ---------------------------------------------------------------------------

    def _lab(self, pid: Any, name: Any) -> LabView:
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise Unverifiable("a lab without a supervisor")
        if pid not in self.labs:
            supervisor = find_lab_supervisor(self.sandbox_init, pid)
            self.labs[pid] = LabView(supervisor, str(name)[:64], self.work)
        return self.labs[pid]

    def _decode(self, enc: Any, trusted: bool, depth: int = 0,
                touch: Callable[[], None] | None = None) -> Any:
        if depth > 8:
            raise Unverifiable("nested too deep")
        if enc is None or isinstance(enc, (bool, int, float, str)):
            return enc
        if isinstance(enc, list):
            raise Unverifiable("an untagged list")
        if not isinstance(enc, dict) or len(enc) < 1:
            raise Unverifiable("an unreadable value")
        key = next(iter(enc))
        value = enc[key]
        sub = (lambda v: self._decode(v, trusted, depth + 1, touch))
        try:
            if key == "float":
                return float(value)
            if key == "ip":
                return ipaddress.ip_address(value)
            if key == "net":
                return ipaddress.ip_network(value)
            if key == "iface":
                return ipaddress.ip_interface(value)
            if key in ("list", "tuple", "set"):
                items = [sub(v) for v in value]
                return {"list": list, "tuple": tuple, "set": set}[key](items)
            if key == "dict":
                return {sub(k): sub(v) for k, v in value}
        except (TypeError, ValueError) as exc:
            raise Unverifiable(f"an unreadable value ({exc})") from None
        if key == "lab":
            return self._lab(value, enc.get("name", "lab"))
        if key == "node":
            return self._lab(enc.get("lab"), "lab").node(str(value))
        if key in ENGINE_REBUILD:
            return ENGINE_REBUILD[key](self._engine(), enc, touch)
        if key in REBUILD:
            lab = self._lab(enc.get("lab"), "lab")
            hints = {k: enc.get(k) for k in ("nic", "role")} if trusted \
                else self.hints.get(enc.get("lab"), {})
            return REBUILD[key](lab, enc, hints, touch)
        if trusted and key == "module" and isinstance(value, str):
            return importlib.import_module(value)
        if key == "ref" and isinstance(value, list) and value[:1] == ["__main__"]:
            raise Unverifiable(f"{str(value[-1])[:64]}, defined in the notebook: checkpoint "
                               "cells may not call the notebook's own functions")
        if trusted and key == "ref" and isinstance(value, list) and len(value) == 2:
            obj: Any = importlib.import_module(str(value[0]))
            for part in str(value[1]).split("."):
                obj = getattr(obj, part)
            return obj
        raise Unverifiable(f"a {enc.get('object', key)} object" if key == "object"
                           else f"a {key}")

    def _engine(self) -> Any:
        """The grader's own Docker connection, to the instructor's ``docker_host``."""
        from labkit.grading.dockerview import DockerEngineView

        if self._docker is None:
            self._docker = DockerEngineView(self.base.get("docker_host"))
        return self._docker

    # -- files ----------------------------------------------------------------------------

    def copy_workdir(self, workdir: str) -> None:
        """Copy the regular files of the sandbox's working copy into the evaluator's cwd."""
        cwd = self.work / "cwd"
        shutil.rmtree(cwd, ignore_errors=True)
        cwd.mkdir()
        if not self.sandbox_init:
            return
        try:
            top = safefs.open_dir(f"/proc/{self.sandbox_init}/root")
        except OSError as exc:
            self._note("", f"the grader could not read the working copy ({exc})")
            return
        budget = [_COPY_FILES, _COPY_TOTAL]
        try:
            fd = safefs.open_dir(workdir.lstrip("/"), top)
        except OSError as exc:
            os.close(top)
            self._note("", f"the grader could not read the working copy ({exc})")
            return
        os.close(top)
        try:
            self._copy_tree(fd, cwd, budget, 0)
        finally:
            os.close(fd)

    def _copy_tree(self, dirfd: int, dest: Path, budget: list[int], depth: int) -> None:
        try:
            listing = sorted(os.listdir(f"/proc/self/fd/{dirfd}"))
        except OSError:
            return
        for name in listing[:_COPY_FILES]:
            if budget[0] <= 0 or budget[1] <= 0:
                return
            if name in (".ipython", ".local", ".cache", ".config", ".jupyter"):
                continue
            try:
                data = safefs.read_regular(dirfd, name, min(_COPY_FILE_BYTES, budget[1]))
            except safefs.RefusedFile:
                if depth < 2:
                    try:
                        sub = safefs.open_dir(name, dirfd)
                    except OSError:
                        continue
                    try:
                        (dest / name).mkdir(exist_ok=True)
                        self._copy_tree(sub, dest / name, budget, depth + 1)
                    finally:
                        os.close(sub)
                continue
            except OSError:
                continue
            (dest / name).write_bytes(data)
            budget[0] -= 1
            budget[1] -= len(data)

    # -- running a checkpoint cell --------------------------------------------------------

    def evaluate(self, source: str, ids: list[str], described: str | None,
                 where: str) -> list[Verdict]:
        """Run the instructor's checkpoint cell here; one verdict per declared id."""
        import labkit.checkpoints as lc

        data = _parse(described) if described is not None else {}
        self._compare_integrity(data.get("integrity"), where)
        current = data.get("values", {}) if isinstance(data.get("values"), dict) else {}
        touched: set[str] = set()
        ns: dict[str, Any] = {"__builtins__": builtins, "__name__": "__checkpoint__",
                              "display": lambda *a, **k: None}
        names = free_names(source)
        for name in names:
            if name in self.base:
                if name in current and current[name] != _plain(self.base[name]):
                    self._note(where, f"the notebook changed the parameter {name!r} "
                               f"(to {_short(current[name])}): checked with the instructor's "
                               f"value {_short(_plain(self.base[name]))}")
                continue
            if name in self.snapshot:
                if name in current and current[name] != self.snapshot[name]:
                    self._note(where, f"the notebook changed {name!r}, which the setup "
                               "defined: checked with the setup's value")
                ns[name] = self._value(name, self.snapshot[name], True, touched)
            elif name in current:
                ns[name] = self._value(name, current[name], False, None)
        ns.update(self.base)
        ns.update({k: v for k, v in _TRUSTED_NAMES().items() if k in ns or k in names})
        lc._RESULTS.clear()
        error = ""
        here = os.getcwd()
        out = io.StringIO()
        try:
            os.chdir(self.work / "cwd")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(compile(_strip_magics(source), f"<checkpoint {'/'.join(ids)}>", "exec"), ns)
        except Exception as exc:  # noqa: BLE001 - the instructor's cell failed outside a block
            error = f"{type(exc).__name__}: {exc}"
        finally:
            os.chdir(here)
        found = lc.results()
        verdicts = []
        alias = self._aliases()
        for cid in ids:
            result = found.get(cid)
            unverified = bool(touched)
            if result is None:
                reason = f"could not check: {error}" if error else "the check recorded no result"
                verdicts.append(Verdict(cid, False, reason[:500], not unverified))
            else:
                verdicts.append(Verdict(cid, result.passed, alias(result.reason), not unverified))
        return verdicts

    def _aliases(self) -> Callable[[str], str]:
        """Reasons name the lab's own scratch folder (``/run/labkit``), not the grader's
        (a random temporary folder when its lab has no private ``/run``): gradebooks stay
        deterministic and read like the notebook's."""
        from labkit._supervisor import PRIVATE_SCRATCH
        from labkit.cluster._cluster import STATE_FOLDER

        mine = {str(v._lab._client.info.get("scratch") or "") for v in self.labs.values()
                if v._lab is not None and v._lab._client is not None} | {str(self.work)}
        mine = {m for m in mine if m.startswith("/") and m != PRIVATE_SCRATCH}

        def alias(text: str) -> str:
            for m in mine:
                text = text.replace(f"{m}/{STATE_FOLDER}/", f"{PRIVATE_SCRATCH}/{STATE_FOLDER}/")
            return text
        return alias

    def _value(self, name: str, enc: Any, trusted: bool, touched: set[str] | None) -> Any:
        # Only an object of the instructor's setup that the grader cannot rebuild may
        # fall back to the notebook's own result; a lab that is gone (closed, killed)
        # never does: its checks fail.
        fallback = touched if trusted and isinstance(enc, dict) and "object" in enc else None
        touch = (lambda: touched.add(name)) if trusted and touched is not None else None
        try:
            return self._decode(enc, trusted, touch=touch)
        except Unverifiable as exc:
            return _Placeholder(name, str(exc), fallback)
        except Exception as exc:  # noqa: BLE001 - a lab that cannot be reached, say
            return _Placeholder(name, f"{type(exc).__name__}: {exc}", None)

    def close(self) -> None:
        for view in self.labs.values():
            with contextlib.suppress(Exception):
                view.close()
        self.labs.clear()
        if self._docker is not None:
            with contextlib.suppress(Exception):
                self._docker.close()
            self._docker = None
        shutil.rmtree(self.work, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Library handles rebuilt from real state
# --------------------------------------------------------------------------------------

Rebuild = Callable[[LabView, Any, Mapping[str, Any], "Callable[[], None] | None"], Any]
"""``(lab view, the kernel's encoding, setup hints, touch) -> the grader's view``.

The encoding is used for names only (machines, the store's name): each is accepted
only if the real lab has that node.

``hints`` are the instructor's setup's own settings for that lab (say a cluster's
``nic``), never a value student code set; ``touch`` (or None) marks the checkpoint
"not re-verified" when the view must give up (raise :class:`Unverifiable`) for an
object of the instructor's setup.
"""


def _machine(lab: LabView, enc: Mapping[str, Any], hints: Mapping[str, Any], touch: Any) -> Any:
    from labkit.grading.clusterview import MachineView

    role = hints.get("role")
    return MachineView(lab, str(enc["machine"]), hints.get("nic"),
                       role if role in ("store", "worker") else None, touch)


def _cluster(lab: LabView, enc: Mapping[str, Any], hints: Mapping[str, Any], touch: Any) -> Any:
    from labkit.grading.clusterview import ClusterView

    if not isinstance(enc["cluster"], list):
        raise Unverifiable("a cluster without machines")
    store = enc.get("store")
    return ClusterView(lab, [str(v) for v in enc["cluster"]],
                       store if isinstance(store, str) else None, hints.get("nic"), touch)


def _etcd(lab: LabView, enc: Mapping[str, Any], hints: Mapping[str, Any], touch: Any) -> Any:
    from labkit.grading.clusterview import EtcdView

    return EtcdView(lab, str(enc["etcd"]), hints.get("nic"), touch)


REBUILD: dict[str, Rebuild] = {"machine": _machine, "cluster": _cluster, "etcd": _etcd}
"""The kernel's tag (:data:`labkit.grading.kernelside.HANDLES`) -> how the grader rebuilds
that handle from the real lab. A later system registers its handle in both tables."""


EngineRebuild = Callable[[Any, Any, "Callable[[], None] | None"], Any]
"""``(the grader's DockerEngineView, the kernel's encoding, touch) -> the grader's view``."""


def _docker_client(engine: Any, enc: Mapping[str, Any], touch: Any) -> Any:
    return engine.client(touch)


def _docker_lab(engine: Any, enc: Mapping[str, Any], touch: Any) -> Any:
    return engine.lab(enc["docker_lab"], touch)


def _docker_container(engine: Any, enc: Mapping[str, Any], touch: Any) -> Any:
    return engine.container(enc["docker_container"], touch)


ENGINE_REBUILD: dict[str, EngineRebuild] = {
    "docker_client": _docker_client, "docker_lab": _docker_lab,
    "docker_container": _docker_container}
"""Handles on the instructor's Docker engine rather than on a lab
(:mod:`labkit.grading.dockerview`): the kernel's tag -> how the grader rebuilds it."""


def _TRUSTED_NAMES() -> dict[str, Any]:  # noqa: N802 - a constant, built lazily
    """The names checkpoint cells use by convention, always the grader's own."""
    import labkit.checkpoints as lc
    from labkit.capture import Capture, MultiCapture

    return {"Checkpoint": lc.Checkpoint, "checks": lc.checks, "Capture": Capture,
            "MultiCapture": MultiCapture}


def _parse(described: str | None) -> dict[str, Any]:
    if not described or len(described) > (32 << 20):
        return {}
    try:
        data = json.loads(described)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _plain(value: Any) -> Any:
    """The kernel-side encoding of a trusted parameter value (to compare with the kernel's)."""
    from labkit.grading.kernelside import _encode

    return _encode(value)


def _short(enc: Any) -> str:
    text = json.dumps(enc, ensure_ascii=True)
    return text if len(text) <= 80 else text[:77] + "..."
