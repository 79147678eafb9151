"""The grader's views of the cluster layer's handles (:mod:`labkit.cluster`).

A checkpoint cell of an orchestrator exercise names ``cluster``, ``node1`` (a
:class:`~labkit.cluster.ClusterNode`) or ``etcd``. The kernel sends only names and the
lab's supervisor PID for them (:data:`labkit.grading.kernelside.HANDLES`); here the
grader rebuilds each from the **real** lab, through its own adopted nodes
(:class:`~labkit.grading.evaluator.LabView`):

* :class:`MachineView` (a ClusterNode): every Node method through the grader's adopted
  node; ``name``; ``role`` (the setup's, or the cluster view's; None if unknown); ``nic`` (the instructor's setup's card name, else the library's
  default ``eth1``: never a value student code set); ``ip``, read from the kernel (the
  first global IPv4 address on that card); ``path()`` / ``read_text()``, see below.
* :class:`ClusterView`: ``cluster[name]``, ``cluster.node(name)``, ``cluster.nodes``,
  ``cluster.store``, ``cluster.machines``, ``cluster.lab``, ``cluster.nic``. The
  machine names come from the kernel; each is accepted only if the lab really has that
  node (``/run/netns/NAME`` below the lab supervisor's root).
* :class:`EtcdView`: ``endpoint`` (``http://STORE_IP:2379``, the store machine's real
  address) and ``etcdctl(machine, *args, api=3, input=None, check=False)``, the real
  etcdctl run in the grader's view of that machine.

Machine files (decision): the grader never runs a command in the lab's mount
namespace (a binary or a link there is the student's to control). ``path(p)``
instead **copies** the machine's file ``p`` out of the lab's private ``/run``
(``/run/labkit/cluster/<machine>/p``), resolved below the lab supervisor's root
without following any link, regular files up to 1 MiB only, into the grader's own
work folder, and returns the copy's path: ``checks.command(node1, ["cat",
node1.path("/run/flannel/subnet.env")], ...)`` then reads the file as it is at that
moment. A file that is missing, or that is a link, a FIFO or too large, has no copy
(the check fails as ``cat`` would: "No such file"), so no host file can reach a
reason. A socket (``birdc -s node1.path("/var/run/calico/bird.ctl")``) is opened
the same way (``O_PATH``, no link followed) and the path returned is a unix socket of
the grader's own that relays each connection to it (bounded in bytes, connections
and time). Reasons name these paths as the library does (``/run/labkit/cluster/...``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labkit import validate
from labkit._supervisor import PRIVATE_SCRATCH
from labkit.cluster._cluster import DEFAULT_NIC, STATE_FOLDER
from labkit.cluster.etcd import CLIENT_PORT
from labkit.errors import InvalidAddress, NotFound
from labkit.grading import safefs

if TYPE_CHECKING:
    from labkit.grading.evaluator import LabView

__all__ = ["ClusterView", "EtcdView", "MachineView", "machine_file"]

_FILE_BYTES = 1 << 20
Touch = Callable[[], None]


def _unverifiable(why: str, touch: Touch | None) -> Exception:
    from labkit.grading.evaluator import Unverifiable

    if touch is not None:
        touch()
    return Unverifiable(why)


def _nic(claim: Any) -> str:
    if isinstance(claim, str):
        try:
            validate.ifname(claim)
            return claim
        except Exception:  # noqa: BLE001 - a bad name: the library's default
            pass
    return DEFAULT_NIC


def machine_file(supervisor: int, machine: str, path: str,
                 touch: Touch | None = None) -> bytes | int | None:
    """The content of machine ``machine``'s file ``path`` in a student's lab, read safely;
    None when it is missing, a link, or not a regular file of at most 1 MiB; for a
    socket, an ``O_PATH`` descriptor of it (the caller closes it)."""
    if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/") \
            or "\0" in path or len(path) > 1024:
        raise InvalidAddress(f"path {path!r} is not an absolute path inside the machine",
                             obj=repr(path), op="find machine file",
                             remedy="give an absolute path without '..', e.g. /run/flannel/subnet.env")
    below = f"{PRIVATE_SCRATCH.lstrip('/')}/{STATE_FOLDER}/{machine}"
    root = os.open(f"/proc/{supervisor}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            top = safefs.open_beneath(root, below, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            raise _unverifiable(f"the files of machine {machine!r} are not on the lab's "
                                "private /run", touch) from None
    finally:
        os.close(root)
    try:
        try:
            pfd = safefs.open_beneath(top, path.lstrip("/"), os.O_PATH | os.O_NOFOLLOW)
        except OSError:
            return None                 # missing (or behind a link)
        if stat.S_ISSOCK(os.fstat(pfd).st_mode):
            return pfd
        os.close(pfd)
        try:
            return safefs.read_regular(top, path.lstrip("/"), _FILE_BYTES)
        except OSError:
            return None                 # not a regular file, or too large
    finally:
        os.close(top)


_RELAY_BYTES, _RELAY_CONNECTIONS, _RELAY_TIMEOUT = 4 << 20, 64, 30.0


def _relay(lab: "LabView", target: int, where: str) -> str:
    """A unix socket of the grader's, relaying each connection to the lab's socket
    ``target`` (an ``O_PATH`` descriptor: connected through ``/proc/self/fd``, so no
    link is followed); its path, ``<evaluator work>/cluster/...``. Closed with ``lab``."""
    here = lab._workdir / where
    here.parent.mkdir(parents=True, exist_ok=True)
    here.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(here))
    except OSError:
        listener.close()
        os.close(target)
        raise _unverifiable(f"the grader cannot relay the socket {where}", None) from None
    listener.listen(8)

    def pump(src: socket.socket, dst: socket.socket) -> None:
        moved = 0
        with contextlib.suppress(OSError):
            while moved < _RELAY_BYTES and (chunk := src.recv(65536)):
                dst.sendall(chunk)
                moved += len(chunk)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        for _ in range(_RELAY_CONNECTIONS):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.settimeout(_RELAY_TIMEOUT)
                up.settimeout(_RELAY_TIMEOUT)
                up.connect(f"/proc/self/fd/{target}")
            except OSError:
                conn.close()
                up.close()
                continue
            back = threading.Thread(target=pump, args=(up, conn), daemon=True)
            back.start()
            pump(conn, up)
            back.join(_RELAY_TIMEOUT)
            conn.close()
            up.close()

    threading.Thread(target=serve, daemon=True).start()

    def close() -> None:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with contextlib.suppress(OSError):
            os.close(target)
        here.unlink(missing_ok=True)
    lab.closers.append(close)
    return str(here)


class MachineView:
    """The grader's view of one :class:`~labkit.cluster.ClusterNode` (see module doc)."""

    def __init__(self, lab: "LabView", name: str, nic: Any = None, role: str | None = None,
                 touch: Touch | None = None) -> None:
        self._node = lab.node(name)     # adopted: refused unless the lab has that node
        self._labview = lab
        self._touch = touch
        self.name = name
        self.nic = _nic(nic)
        self.role = role

    @property
    def node(self) -> "MachineView":
        return self

    @property
    def ip(self) -> str:
        """The first global IPv4 address on the underlay card, from the kernel."""
        for a in self._node.addresses(self.nic):
            if a.family == "inet" and a.scope == "global":
                return str(ipaddress.ip_address(a.local))
        raise NotFound(f"{self.name} has no IPv4 address on {self.nic}", obj=self.name,
                       op="read machine address", remedy=f"ip addr add ADDRESS dev {self.nic}")

    def path(self, path: str) -> str:
        """A grader-side copy of this machine's file ``path`` (see module doc), at the
        same path as the library's (on the grader's own lab's private ``/run``)."""
        data = machine_file(self._labview._supervisor, self.name, path, self._touch)
        if isinstance(data, int):
            return _relay(self._labview, data, f"{STATE_FOLDER}/{self.name}{path}")
        scratch = str(self._labview._lab._client.info.get("scratch") or "")
        if not scratch.startswith("/"):
            raise _unverifiable("the grader's lab has no scratch folder", self._touch)
        copy = f"{scratch}/{STATE_FOLDER}/{self.name}{path}"
        script = 'rm -f "$1"' if data is None else \
            'rm -f "$1" && mkdir -p "$(dirname "$1")" && cat > "$1"'
        self._node.run(["sh", "-c", script, "sh", copy], input=data or b"", check=True)
        return copy

    def read_text(self, path: str) -> str | None:
        data = machine_file(self._labview._supervisor, self.name, path, self._touch)
        if isinstance(data, int):
            os.close(data)
            return None
        return None if data is None else data.decode("utf-8", errors="replace")

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr in ("containers", "cluster", "state_dir",
                                            "write_text", "add_container", "spawn_agent"):
            raise _unverifiable(f"the grader's view of machine {self.name!r} has no {attr!r}",
                                self._touch)
        return getattr(self._node, attr)

    def __repr__(self) -> str:
        return f"<grader's view of machine {self.name}>"


class ClusterView:
    """The grader's view of a :class:`~labkit.cluster.Cluster` (see module doc)."""

    def __init__(self, lab: "LabView", machines: list[str], store: Any, nic: Any,
                 touch: Touch | None = None) -> None:
        self.lab = lab
        self.nic = _nic(nic)
        self._touch = touch
        self._names = [m for m in machines if isinstance(m, str)][:256]
        self._store = store if store in self._names else None
        self._views: dict[str, MachineView] = {}

    def node(self, name: Any) -> MachineView:
        key = name if isinstance(name, str) else getattr(name, "name", None)
        if key not in self._names:
            raise NotFound(f"{key!r} is not a machine of this cluster "
                           f"(machines: {', '.join(self._names)})", obj=str(key),
                           op="find cluster machine", remedy="use one of the names listed")
        if key not in self._views:
            role = "store" if key == self._store else "worker"
            self._views[key] = MachineView(self.lab, key, self.nic, role, self._touch)
        return self._views[key]

    __getitem__ = node

    @property
    def machines(self) -> list[MachineView]:
        return [self.node(n) for n in self._names]

    @property
    def nodes(self) -> list[MachineView]:
        return [self.node(n) for n in self._names if n != self._store]

    @property
    def store(self) -> MachineView | None:
        return self.node(self._store) if self._store else None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.machines)

    def __getattr__(self, attr: str) -> Any:
        raise _unverifiable(f"the grader's view of the cluster has no {attr!r}: checkpoint "
                            "cells may use cluster[NAME], node(), nodes, store, machines",
                            self._touch)

    def __repr__(self) -> str:
        return f"<grader's view of cluster {', '.join(self._names)}>"


class EtcdView:
    """The grader's view of :class:`~labkit.cluster.etcd.Etcd` (see module doc)."""

    def __init__(self, lab: "LabView", store: str, nic: Any = None,
                 touch: Touch | None = None) -> None:
        self._lab, self._nic, self._touch = lab, nic, touch
        self.machine = MachineView(lab, store, nic, "store", touch)

    @property
    def endpoint(self) -> str:
        return f"http://{self.machine.ip}:{CLIENT_PORT}"

    def etcdctl(self, node: Any, *args: Any, api: int = 3, input: str | None = None,  # noqa: A002
                check: bool = False, timeout: float = 30.0) -> Any:
        """``ETCDCTL_API=API etcdctl --endpoints ENDPOINT ARGS...`` in that machine."""
        if api not in (2, 3):
            raise InvalidAddress(f"etcdctl API {api!r} is not known", obj=str(api), op="etcdctl",
                                 remedy="use api=2 or api=3")
        if isinstance(node, MachineView):
            machine = node
        else:   # any machine of the lab, by name: refused unless the lab has that node
            name = node if isinstance(node, str) else getattr(node, "name", None)
            machine = MachineView(self._lab, str(name), self._nic, touch=self._touch)
        argv = ["etcdctl", "--endpoints", self.endpoint, *[str(a) for a in args]]
        return machine.run(argv, env={"ETCDCTL_API": str(api)}, input=input, check=check,
                           timeout=timeout)

    def __getattr__(self, attr: str) -> Any:
        raise _unverifiable(f"the grader's view of etcd has no {attr!r}: checkpoint cells may "
                            "use etcd.endpoint and etcd.etcdctl(...)", self._touch)

    def __repr__(self) -> str:
        return "<grader's view of etcd>"
