"""A memory limit for one submission as a whole: a cgroup, where one can be had.

``RLIMIT_AS`` bounds each process of a sandbox, not their sum: a notebook that starts
a few processes can hold several times its limit. A memory cgroup bounds the sum.
The worker makes one group per submission, the sandbox's init joins it before it
starts anything (so every process of the submission, labs included, is in it), and
the worker reads its peak and OOM count and removes it when the sandbox is gone.

Where the group can come from, tried in order:

* **cgroup v2** (unified hierarchy): a child of the worker's own cgroup, if that
  group is writable and delegates the ``memory`` controller;
* **cgroup v1**: a child of the worker's own group in the ``memory`` hierarchy (root,
  or a group delegated to the grader's user);
* otherwise none: each process keeps its ``RLIMIT_AS`` only, and the report says so.

:func:`create` returns the group (or ``None`` and why), so that the gradebook can say
which limit applied.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MemoryGroup", "create"]


@dataclass
class MemoryGroup:
    """One submission's memory cgroup."""

    path: Path
    version: int
    limit: int

    @property
    def describe(self) -> str:
        return (f"memory limited to {self.limit} bytes for the whole submission "
                f"(cgroup v{self.version} memory group)")

    def oom_kills(self) -> int:
        """How many processes the kernel killed for going over the limit."""
        if self.version == 2:
            text = _read(self.path / "memory.events")
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit():
                    return int(value)
            return 0
        for line in _read(self.path / "memory.oom_control").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def peak(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = _read(self.path / name).strip()
        return int(text) if text.isdigit() else None

    def remove(self, timeout: float = 10.0) -> None:
        """Remove the group once its processes are gone (they were killed with the sandbox)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.05)


def _read(path: Path) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read(65536)
    except OSError:
        return ""


def _own_groups() -> dict[str, str]:
    """``{"": v2 path, "memory": v1 path}`` from /proc/self/cgroup."""
    out: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for name in controllers.split(",") if controllers else [""]:
            out[name] = path
    return out


def _mounts() -> list[tuple[str, str, str]]:
    """``(mount point, fs type, super options)`` of every cgroup mount."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], rest[0], rest[2]))
    return found


def _make(parent: Path, name: str, files: dict[str, str], version: int,
          limit: int) -> MemoryGroup:
    path = parent / name
    path.mkdir()
    try:
        for fname, value in files.items():
            if (path / fname).exists():
                (path / fname).write_text(value)
    except OSError:
        with contextlib.suppress(OSError):
            path.rmdir()
        raise
    if not os.access(path / "cgroup.procs", os.W_OK):
        path.rmdir()
        raise PermissionError(f"{path}/cgroup.procs is not writable")
    return MemoryGroup(path, version, limit)


def create(name: str, limit: int) -> tuple[MemoryGroup | None, str]:
    """A memory group of ``limit`` bytes named ``name`` (or None) and what was done."""
    own = _own_groups()
    mounts = _mounts()
    errors: list[str] = []
    v2 = next((m for m, kind, _ in mounts if kind == "cgroup2"), None)
    if v2 is not None and "" in own:
        parent = Path(v2 + own[""])
        if "memory" in _read(parent / "cgroup.controllers").split() \
                and "memory" in _read(parent / "cgroup.subtree_control").split():
            try:
                return _make(parent, name, {"memory.max": str(limit), "memory.swap.max": "0"},
                             2, limit), ""
            except OSError as exc:
                errors.append(f"cgroup v2 {parent}: {exc.strerror or exc}")
        else:
            errors.append(f"cgroup v2 {parent}: the memory controller is not delegated")
    v1 = next((m for m, kind, opts in mounts
               if kind == "cgroup" and "memory" in opts.split(",")), None)
    if v1 is not None and "memory" in own:
        parent = Path(v1 + own["memory"])
        try:
            return _make(parent, name, {"memory.limit_in_bytes": str(limit),
                                        "memory.memsw.limit_in_bytes": str(limit)},
                         1, limit), ""
        except OSError as exc:
            errors.append(f"cgroup v1 {parent}: {exc.strerror or exc}")
    if v1 is None and v2 is None:
        errors.append("no cgroup file system is mounted")
    return None, "; ".join(errors) or "no memory cgroup found"
