"""Run one program (a Jupyter kernel) in a throw-away sandbox.

A sandbox is a set of fresh Linux namespaces with one small init process in them::

    setpriv --pdeathsig KILL              dies with whoever started it
     └ unshare --pid --fork --kill-child   new PID, network, mount, IPC and UTS
         --net --mount --ipc --uts          namespaces (plus a user namespace when
         [--user --map-root-user]           the grader is not root)
        └ python -I -S sandbox.py           init (PID 1): builds the file system view,
           └ the kernel                      drops privileges, starts the program,
                                             reaps orphans, exits when it exits

What the program inside sees and may do:

* **Processes.** It is in its own PID namespace: ``kill -9 -1`` reaches only its own
  processes. When init ends (the program exited, or the grader killed the sandbox)
  the kernel kills every process left in the namespace, including labs it started.
* **Network.** A new network namespace with only ``lo`` (up). Changing "the host's
  network" changes this empty namespace; labs it builds nest inside it.
* **Files.** An allow-list, not the host minus a deny-list: init assembles a new
  root that holds only the system folders (:data:`SYSTEM_PATHS`: ``/usr``, ``/etc``,
  ``/lib``...), ``/dev``, ``/sys``, ``/proc``, and what the grader shows on top (the
  Python environment, labkit's own package folder, paths the instructor allows),
  each bound read-only at its own path. Home folders, the course's solutions, the
  submissions, the grader's outputs and other working copies are simply not there.
  ``/tmp`` is a private tmpfs of a fixed size holding the working copy (``/tmp/work``,
  also ``$HOME``); ``/var/tmp`` and ``/dev/shm`` are small private tmpfs; ``/run`` is
  empty. The only host folder it can write is its connection directory, a small
  tmpfs that the grader's worker mounted for this one kernel (Jupyter's IPC sockets
  live there). Everything it writes disappears with its mount namespace.
* **Identity.** When the grader is root, the program runs as a distinct unprivileged
  uid/gid (no supplementary groups, ``no_new_privs``), so even without the read-only
  mounts it could not delete or signal anything of the grader or another
  submission. When the grader is not root, the sandbox is a user namespace mapped
  onto the grader's own uid; the program then runs in a second, nested user and
  mount namespace, which locks every mount above (it cannot unmount the covering
  tmpfs or make anything writable again).
* **Resources.** A memory cgroup for the submission as a whole when the worker can
  make one (init joins it before starting anything; :mod:`labkit.grading.cgroup`),
  plus ``RLIMIT_AS`` (memory of each process), ``RLIMIT_NPROC`` (processes and threads
  of its uid), ``RLIMIT_FSIZE`` (largest file), no core dumps. Wall-clock time and the
  size of notebook outputs are enforced by the grader's worker, which kills the
  sandbox (and with it everything inside).

Weaker without root: the program's uid is the grader's own uid outside the user
namespace, so the read-only mounts and the allow-list are then all that protects the
grader's files: it can read what the grader's user can read among the shown paths,
and it keeps the grader's supplementary groups (the grader therefore hides the Docker
and containerd sockets in every case, even when a shown path holds them). ``RLIMIT_NPROC`` counts inside the
user namespace only.

Limits of the design, root or not: without a memory cgroup (an unprivileged grader
on a host that delegates none), ``RLIMIT_AS`` bounds each process, not their sum (at
most ``processes`` x ``memory_bytes``), and the gradebook says so; programs that need
a large address space (Java, some Go tools) need a higher ``memory_bytes``.

The module is also the init program: ``python -I -S sandbox.py SPEC -- CMD`` (standard
library only, so that it starts fast and imports nothing from site-packages).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import shutil
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Limits", "SandboxSpec", "command", "main", "pick_uid"]

WORKDIR = "/tmp/work"
"""The working copy inside every sandbox (also ``$HOME``)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's run.

    ``time_s`` and ``output_bytes`` are enforced by the grader's worker; the others by
    the kernel through rlimits and tmpfs sizes set up in the sandbox.
    """

    time_s: float = 300.0
    """Wall-clock time for the whole notebook, kernel start included."""
    memory_bytes: int = 2 << 30
    """Memory of the whole submission (a memory cgroup, where the worker can make one,
    :mod:`labkit.grading.cgroup`) and address space of each of its processes
    (RLIMIT_AS, always)."""
    output_bytes: int = 2 << 20
    """Total size of all cell outputs kept in the executed notebook."""
    processes: int = 256
    """Processes and threads of the sandbox's uid (RLIMIT_NPROC)."""
    file_bytes: int = 64 << 20
    """Largest single file the program may write (RLIMIT_FSIZE)."""
    tmp_bytes: int = 256 << 20
    """Size of the private /tmp that holds the working copy."""


@dataclass(frozen=True)
class SandboxSpec:
    """Everything the sandbox init needs, passed to it as JSON on its command line."""

    conn_dir: str
    """Host directory that holds the kernel's connection file and IPC sockets."""
    uid: int | None = None
    """Run the program as this uid/gid (root graders); None keeps the caller's."""
    gid: int | None = None
    userns: bool = False
    """Create a user namespace (graders that are not root)."""
    limits: Limits = field(default_factory=Limits)
    hide: tuple[str, ...] = ()
    """Paths inside what is shown to cover with an empty tmpfs (or /dev/null)."""
    allow: tuple[str, ...] = ()
    """Host paths shown (read-only) besides :data:`SYSTEM_PATHS`: the Python environment,
    labkit's package, what the exercise needs."""
    files: str | None = None
    """A host directory whose contents are copied into the working copy."""
    env: dict[str, str] = field(default_factory=dict)
    """The program's whole environment (nothing is inherited)."""
    cgroup: str | None = None
    """A cgroup directory init joins before starting anything (the memory limit of the
    whole submission, :mod:`labkit.grading.cgroup`)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxSpec:
        data = json.loads(text)
        data["limits"] = Limits(**data["limits"])
        data["hide"] = tuple(data["hide"])
        data["allow"] = tuple(data.get("allow", ()))
        return cls(**data)


def command(spec: SandboxSpec, argv: Sequence[str], python: str | None = None) -> list[str]:
    """The command line that runs ``argv`` inside a sandbox described by ``spec``."""
    ns = ["--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount",
          "--ipc", "--uts", "--propagation", "private"]
    if spec.userns:
        ns = ["--user", "--map-root-user", *ns]
    # -I -S: the init needs only the standard library; skip site-packages and labkit.
    init = [python or sys.executable, "-I", "-S", os.path.abspath(__file__), spec.to_json(), "--"]
    return ["setpriv", "--pdeathsig", "KILL", "unshare", *ns, "--", *init, *argv]


def pick_uid(low: int = 1_500_000_000, high: int = 1_900_000_000,
             taken: set[int] | None = None) -> int:
    """A random uid in ``[low, high)`` that no account and no running process uses.

    The range is far above any real account and wide enough that two graders on one
    machine practically never pick the same uid; one in use is skipped.
    """
    import secrets

    taken = _uids_in_use() if taken is None else taken
    for _ in range(1000):
        uid = low + secrets.randbelow(high - low)
        if uid not in taken:
            return uid
    raise RuntimeError(f"no free uid found in [{low}, {high})")


def _uids_in_use() -> set[int]:
    taken: set[int] = set()
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(":")
                if len(parts) > 2 and parts[2].isdigit():
                    taken.add(int(parts[2]))
    except OSError:
        pass
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                taken.add(os.stat(entry.path).st_uid)
            except OSError:
                pass
    return taken


# --------------------------------------------------------------------------------------
# The init program (runs inside the new namespaces)
# --------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC = 1, 2, 4, 4096, 16384
_AT_FDCWD, _AT_RECURSIVE = -100, 0x8000
_MOUNT_ATTR_RDONLY = 0x1
_SYS_MOUNT_SETATTR = 442  # same number on every architecture (after the 2019 unification)
_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_PR_SET_NO_NEW_PRIVS = 38


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sandbox: {what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(_libc.mount(source.encode(), target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None), f"mount {target}")


def _set_readonly(path: str, readonly: bool, recursive: bool) -> None:
    attr = _MountAttr(_MOUNT_ATTR_RDONLY if readonly else 0, 0 if readonly else _MOUNT_ATTR_RDONLY,
                      0, 0)
    flags = _AT_RECURSIVE if recursive else 0
    _check(_libc.syscall(_SYS_MOUNT_SETATTR, _AT_FDCWD, path.encode(), flags,
                         ctypes.byref(attr), ctypes.sizeof(attr)),
           f"mount_setattr {path} ({'ro' if readonly else 'rw'})")


def _tmpfs(target: str, size: int, mode: str, uid: int = 0, gid: int = 0) -> None:
    os.makedirs(target, exist_ok=True)
    _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV,
           f"size={max(size, 4096)},mode={mode},uid={uid},gid={gid}")


def _loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock, siocgifflags, ifreq))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh14x", b"lo", flags | iff_up))


SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""What every sandbox sees of the host (read-only), besides ``/dev``, ``/sys``, ``/proc``
and what the grader allows on top (the Python environment, labkit, ``allow``)."""
_NEWROOT = "/tmp"  # where the new root is assembled (a tmpfs, in this mount namespace only)
_MS_MOVE, _MNT_DETACH = 8192, 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203,
                   "s390x": 217, "i686": 217, "armv7l": 218}


def _open_allowed(paths: Sequence[str]) -> list[tuple[str, int, bool]]:
    """``(path, O_PATH descriptor, is_dir)`` of every path to show, opened before any
    mount changes what the names mean; missing ones are skipped."""
    out: list[tuple[str, int, bool]] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        out.append((path, fd, os.path.isdir(f"/proc/self/fd/{fd}")))
    return out


def _pivot(root: str) -> None:
    """Make ``root`` the root of this mount namespace; the old root is detached."""
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    os.chdir(root)
    if number is not None:
        os.makedirs(".old-root", exist_ok=True)
        _check(_libc.syscall(number, b".", b".old-root"), "pivot_root")
        os.chdir("/")
        _check(_libc.umount2(b"/.old-root", _MNT_DETACH), "umount old root")
        os.rmdir("/.old-root")
    else:  # unknown architecture: move the new root over / (what switch_root does)
        _mount(".", "/", None, _MS_MOVE)
        _check(_libc.chroot(b"."), "chroot")
        os.chdir("/")


def _build_filesystem(spec: SandboxSpec, uid: int, gid: int) -> None:
    """Assemble the sandbox's root from an allow-list, then make it read-only.

    Only :data:`SYSTEM_PATHS`, ``/dev``, ``/sys``, ``/proc``, ``spec.allow`` (bound
    read-only at their own paths), a private ``/tmp`` with the working copy, small
    private ``/var/tmp`` and ``/dev/shm``, an empty ``/run`` and the connection
    directory exist inside: the rest of the host (home folders, solutions, other
    submissions, the grader's outputs) is not hidden, it is simply not there.
    """
    conn_fd = os.open(spec.conn_dir, os.O_PATH | os.O_DIRECTORY)
    files_fd = os.open(spec.files, os.O_PATH | os.O_DIRECTORY) if spec.files else None
    shown = _open_allowed([*SYSTEM_PATHS, "/dev", "/sys", "/proc", *spec.allow])
    links = {p: os.readlink(p) for p in SYSTEM_PATHS if os.path.islink(p)}
    _mount("tmpfs", _NEWROOT, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=0755")
    new = _NEWROOT
    for path, target in links.items():  # /bin -> usr/bin on merged-/usr systems
        os.symlink(target, new + path)
    _tmpfs(new + "/tmp", spec.limits.tmp_bytes, "1777")
    for path, fd, is_dir in shown:
        if path in links:
            os.close(fd)
            continue
        where = new + path
        if is_dir:
            os.makedirs(where, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(where), exist_ok=True)
            if not os.path.exists(where):
                open(where, "w").close()  # noqa: SIM115 - a mount point for a file
        _mount(f"/proc/self/fd/{fd}", where, None, _MS_BIND | _MS_REC)
        os.close(fd)
    for folder in ("/run", "/var/tmp", spec.conn_dir):
        os.makedirs(new + folder, exist_ok=True)
    _mount(f"/proc/self/fd/{conn_fd}", new + spec.conn_dir, None, _MS_BIND)
    os.close(conn_fd)
    _pivot(new)
    _set_readonly("/", True, recursive=True)
    _set_readonly("/proc", False, recursive=True)  # labs set sysctls of their own netns
    _set_readonly("/tmp", False, recursive=False)
    _set_readonly(spec.conn_dir, False, recursive=False)
    os.makedirs(WORKDIR, mode=0o700)
    if files_fd is not None:
        shutil.copytree(f"/proc/self/fd/{files_fd}", WORKDIR, dirs_exist_ok=True, symlinks=True)
        os.close(files_fd)
    for root, dirs, files in os.walk(WORKDIR):
        for name in [root, *(os.path.join(root, d) for d in dirs),
                     *(os.path.join(root, f) for f in files)]:
            os.lchown(name, uid, gid)
    for path in spec.hide:  # inside what is shown, e.g. a folder of the Python environment
        real = os.path.realpath(path)
        if real in ("/", "/proc", "/dev", "/tmp") or real.startswith("/tmp/"):
            continue
        if os.path.isdir(real):
            _tmpfs(real, 65536, "0755")
        elif os.path.exists(real):  # a file or a socket (e.g. Docker's): now /dev/null
            _mount("/dev/null", real, None, _MS_BIND)
    _tmpfs("/var/tmp", 1 << 20, "1777")
    _tmpfs("/dev/shm", min(spec.limits.tmp_bytes, 64 << 20), "1777")


def _become_program(spec: SandboxSpec, argv: list[str]) -> None:
    """In the forked child: drop privileges, set limits, exec the program."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    if spec.userns:
        # A nested user + mount namespace: every mount inherited from the sandbox becomes
        # locked, so the program cannot uncover or remount what init set up.
        _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS), "unshare user+mount")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text("0 0 1")
        Path("/proc/self/gid_map").write_text("0 0 1")
    elif spec.uid is not None and spec.gid is not None:
        os.setgroups([])
        os.setresgid(spec.gid, spec.gid, spec.gid)
        os.setresuid(spec.uid, spec.uid, spec.uid)
    lim = spec.limits
    for res, value in ((resource.RLIMIT_AS, lim.memory_bytes),
                       (resource.RLIMIT_NPROC, lim.processes),
                       (resource.RLIMIT_FSIZE, lim.file_bytes),
                       (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (value, value))
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl no_new_privs")
    os.chdir(WORKDIR)
    os.execvpe(argv[0], argv, spec.env)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by signal {sig} ({signal.Signals(sig).name})"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _run_init(spec: SandboxSpec, argv: list[str]) -> int:
    uid = spec.uid if spec.uid is not None else os.getuid()
    gid = spec.gid if spec.gid is not None else os.getgid()
    if spec.userns:
        uid = gid = 0
    if spec.cgroup:  # "0": this process; everything started later inherits the group
        with open(os.path.join(spec.cgroup, "cgroup.procs"), "w") as fh:
            fh.write("0")
    _build_filesystem(spec, uid, gid)
    _loopback_up()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the kernel only
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        try:
            _become_program(spec, argv)
        except BaseException as exc:  # noqa: BLE001 - report, then exit the child
            print(f"labkit-sandbox: cannot start {argv[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    # PID 1: reap everything; leave when the program leaves (the kernel then kills
    # whatever is left in this PID namespace).
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child:
            print(f"labkit-sandbox: program {_describe_exit(status)}", file=sys.stderr, flush=True)
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the init program: ``SPEC_JSON -- PROGRAM ARGS...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: python -I -S sandbox.py SPEC_JSON -- PROGRAM [ARGS...]",
              file=sys.stderr)
        return 2
    if os.getpid() != 1:
        print("labkit-sandbox: must run as PID 1 of a new PID namespace", file=sys.stderr)
        return 2
    spec = SandboxSpec.from_json(args[0])
    try:
        return _run_init(spec, args[2:])
    except OSError as exc:
        print(f"labkit-sandbox: setup failed: {exc}", file=sys.stderr, flush=True)
        return 126 if exc.errno != errno.ENOMEM else 125


if __name__ == "__main__":
    sys.exit(main())
