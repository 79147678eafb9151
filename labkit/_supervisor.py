"""The supervisor: the one process that holds a lab's namespaces.

It is started by :class:`labkit.Lab` through ``unshare`` as the first process (PID 1)
of fresh user, mount, PID and network namespaces, and talks to its owner over one
Unix socket (:mod:`labkit._protocol`). Because it is PID 1, the kernel kills every
process of the lab the moment it exits; because it exits as soon as its owner's end of
the socket closes, a lab cannot outlive the notebook kernel that made it; and because
the node namespaces are held only by its file descriptors (and, in ``named`` mode, by
bind mounts inside its private mount namespace), the kernel frees them with it.

It stays single-threaded so it may ``unshare``/``setns`` freely: requests are handled
one at a time, except commands, whose replies are sent when they finish while other
requests go on being served.

Whatever a request holds, it gets an answer and the lab lives on: a frame that is not
a request, an unknown operation, arguments of the wrong kind or out of range, all come
back as a :class:`labkit.errors.LabkitError` (the API checks arguments before sending
them; this is the second line, for anything that gets past it).

Run as ``python -m labkit._supervisor FD [--mounts|--no-mounts] [--sysctl proc|netlink]``.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import errno
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from . import _protocol, errors, validate
from ._netlink import IPV4_DEVCONF, Netlink

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
OUTPUT_LIMIT = 8 * 1024 * 1024  # bytes kept per stream of a command
STOP_GRACE = 2.0

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       flags, None), f"mount {target}")


PRIVATE_SCRATCH = "/run/labkit"
"""The lab's scratch folder when it has a private ``/run`` (the usual case)."""


@dataclass
class Namespace:
    """One node's network namespace, kept alive by ``fd``."""

    name: str
    fd: int
    nl: Netlink
    forwarding: bool = False
    ipv6: bool = False  # automatic IPv6 link-local addresses on new interfaces
    adopted: bool = False  # someone else's namespace (a Docker container): never torn down
    ipr: Any = None  # pyroute2 IPRoute, opened on first inspection


@dataclass
class Proc:
    """A process started in a node: a command (with a pending reply) or a daemon."""

    pid: int
    node: str
    argv: list[str]
    popen: subprocess.Popen
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    returncode: int | None = None
    reply_to: int | None = None      # request id of a `run`, answered when the process ends
    deadline: float | None = None
    timed_out: bool = False
    waiters: list[int] = field(default_factory=list)  # request ids of `stop` calls


class Supervisor:
    def __init__(self, sock: socket.socket, *, mounts: bool, sysctl: str) -> None:
        self.sock = sock
        self.sysctl_via = sysctl
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.nodes: dict[str, Namespace] = {}
        self.procs: dict[int, Proc] = {}
        self.sel = selectors.DefaultSelector()
        self.running = True
        self.named = False
        self.scratch = ""
        self.notes: list[str] = []
        if mounts:
            try:
                # A private /run: named namespaces under /run/netns, iptables' lock, scratch.
                _mount("tmpfs", "/run", "tmpfs", 0)
                os.makedirs("/run/netns", exist_ok=True)
                os.makedirs(PRIVATE_SCRATCH, exist_ok=True)
                self.named = True
                self.scratch = PRIVATE_SCRATCH
            except OSError as exc:
                self.notes.append(f"mounts refused ({exc.strerror}); namespaces kept by fd only")
        if not self.scratch:
            self.scratch = tempfile.mkdtemp(prefix="labkit-")
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.scratch,
            "LANG": "C.UTF-8",
            "XTABLES_LOCKFILE": os.path.join(self.scratch, "xtables.lock"),
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1",
        }
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sigpipe = rfd
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self._stop_loop())
        # Ctrl-C in the notebook's terminal must not end the lab; a handler (not SIG_IGN,
        # which every command would inherit) keeps `Process.signal("INT")` meaningful.
        signal.signal(signal.SIGINT, lambda *_: None)

    # -- main loop --------------------------------------------------------------------

    def serve(self) -> None:
        self.sel.register(self.sock, selectors.EVENT_READ, self._on_request)
        self.sel.register(self.sigpipe, selectors.EVENT_READ, self._on_signal)
        _protocol.send(self.sock, {"id": 0, "ok": True, "result": self._hello()})
        while self.running:
            timeout = self._next_deadline()
            for key, _ in self.sel.select(timeout):
                # An earlier callback of this same batch may have unregistered (and closed)
                # this file: a request for a process's status drains its pipes to the end.
                # Its event is stale then, and its file number may even belong to a new one.
                if self.sel.get_map().get(key.fd) is not key:
                    continue
                key.data(key.fileobj)
            self._reap()
            self._check_deadlines()
        self._shutdown()

    def _stop_loop(self) -> None:
        self.running = False

    def _hello(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "named": self.named, "sysctl": self.sysctl_via,
                "scratch": self.scratch, "notes": self.notes, "uid": os.getuid(),
                "host_pid": _host_pid()}

    def _on_signal(self, fd: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass

    def _on_request(self, sock: socket.socket) -> None:
        try:
            msg = _protocol.recv(sock)
        except _protocol.MalformedMessage as exc:
            self._fail(0, errors.InvalidRequest(f"the lab's supervisor received a malformed "
                                                f"message: {exc}", op="read request"))
            return
        except (_protocol.ConnectionClosed, OSError):
            self.running = False  # the owner is gone: end the lab
            return
        rid = msg.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool):
            rid = 0  # answered, but nobody waits for id 0
        op, args = msg.get("op"), msg.get("args", {})
        if op == "shutdown":
            self.running = False
            self._reply(rid, True)
            return
        try:
            handler = self._handler(op, args)
            result = handler(rid, **args)
        except errors.LabkitError as exc:
            self._fail(rid, exc)
        except OSError as exc:
            self._fail(rid, _kernel_error(exc, str(op), args))
        except Exception as exc:  # noqa: BLE001 - any request gets an answer; the lab lives on
            self._fail(rid, self._refused(str(op), exc))
        else:
            if result is not _DEFERRED:
                self._reply(rid, result)

    def _handler(self, op: object, args: object) -> Callable[..., Any]:
        """The method for operation ``op``, after checking the request's shape."""
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            raise errors.InvalidRequest(f"unknown supervisor operation {op!r}", obj=repr(op),
                                        op="dispatch request")
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            raise errors.InvalidRequest(f"the arguments of {op!r} are not a mapping of names",
                                        obj=repr(op), op=str(op))
        return handler

    def _refused(self, op: str, exc: Exception) -> errors.LabkitError:
        """An error a request ran into that no check caught: say so, keep the lab going."""
        try:
            _setns(self.home)  # wherever the failure left us, requests start at home
        except OSError:
            pass
        traceback.print_exc(file=sys.stderr)  # the supervisor's diagnostics, for a bug report
        what = "wrong or missing arguments" if isinstance(exc, TypeError) else "a value it cannot use"
        return errors.InvalidRequest(
            f"the lab's supervisor refused {op!r}: {what} ({type(exc).__name__}: "
            f"{str(exc)[:300]})", obj=op, op=op,
            remedy="the lab is unharmed: check the arguments of the call (the labkit API "
                   "checks them for you; this request came around it)")

    def _reply(self, rid: int, result: Any) -> None:
        try:
            _protocol.send(self.sock, {"id": rid, "ok": True, "result": result})
        except OSError:
            self.running = False

    def _fail(self, rid: int, exc: errors.LabkitError) -> None:
        try:
            _protocol.send(self.sock, {"id": rid, "ok": False, "error": errors.to_wire(exc)})
        except OSError:
            self.running = False

    # -- nodes ------------------------------------------------------------------------

    def _node(self, name: str) -> Namespace:
        try:
            return self.nodes[name]
        except KeyError:
            raise errors.NotFound(f"node {name!r} does not exist in this lab", obj=name,
                                  op="find node", remedy="create it first, e.g. lab.add_host(...)") from None

    def _index(self, ns: Namespace, ifname: str) -> int:
        try:
            return ns.nl.get_index(ifname)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise errors.NotFound(f"interface {ifname!r} does not exist on node {ns.name!r}",
                                      obj=f"{ns.name}:{ifname}", op="find interface",
                                      remedy="list them with node.interfaces()") from None
            raise

    def _exists(self, ns: Namespace, ifname: str) -> bool:
        try:
            ns.nl.get_index(ifname)
            return True
        except OSError:
            return False

    def _refuse_duplicate(self, ns: Namespace, ifname: str) -> None:
        if self._exists(ns, ifname):
            raise errors.DuplicateName(f"interface {ifname!r} already exists on node {ns.name!r}",
                                       obj=f"{ns.name}:{ifname}", op="create interface",
                                       remedy="choose another name, or delete the existing one")

    def op_add_node(self, rid: int, node: str, forwarding: bool = False,
                    ipv6: bool = False) -> dict[str, Any]:
        validate.node_name(node)  # it becomes a path under /run/netns
        if node in self.nodes:
            raise errors.DuplicateName(f"node {node!r} already exists in this lab", obj=node,
                                       op="add node", remedy="choose another name")
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        fd = -1
        nl: Netlink | None = None
        try:
            # Everything that needs us inside the new namespace happens before we leave it.
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            nl = Netlink()
            nl.set_link(1, up=True)  # loopback
            if self.sysctl_via == "proc":
                self._write_sysctls(_node_sysctls(forwarding, ipv6))
            else:
                nl.set_ipv4_conf(1, {"forwarding": 1 if forwarding else 0})
            if self.named:
                path = f"/run/netns/{node}"
                with open(path, "w"):
                    pass
                _mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        except BaseException:
            _setns(self.home)
            if nl is not None:
                nl.close()
            if fd >= 0:
                os.close(fd)
            raise
        _setns(self.home)
        self.nodes[node] = Namespace(node, fd, nl, forwarding=forwarding, ipv6=ipv6)
        return {"node": node}

    def _drop_node(self, ns: Namespace) -> None:
        for proc in [p for p in self.procs.values() if p.node == ns.name]:
            self._kill(proc, signal.SIGKILL)
        if ns.ipr is not None:
            ns.ipr.close()
        ns.nl.close()
        os.close(ns.fd)
        if self.named and not ns.adopted:
            path = f"/run/netns/{ns.name}"
            _libc.umount2(path.encode(), MNT_DETACH)
            try:
                os.unlink(path)
            except OSError:
                pass
        self.nodes.pop(ns.name, None)

    def op_adopt(self, rid: int, node: str, pid: int) -> dict[str, Any]:
        """Work in the network namespace of an existing process (e.g. a Docker container)."""
        validate.node_name(node)
        validate.pid(pid)
        if node in self.nodes:
            raise errors.DuplicateName(f"node {node!r} already exists in this lab", obj=node,
                                       op="adopt namespace", remedy="choose another name")
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise errors.NotFound(f"process {pid} does not exist", obj=str(pid),
                                  op="adopt namespace",
                                  remedy="check the container is running (docker ps)") from None
        try:
            _setns(fd)
        except OSError:
            os.close(fd)
            raise
        try:
            nl = Netlink()
        finally:
            _setns(self.home)
        forwarding = self._proc_sys_read_fd(fd, "net.ipv4.ip_forward") == "1"
        self.nodes[node] = Namespace(node, fd, nl, forwarding=forwarding, ipv6=True, adopted=True)
        return {"node": node, "forwarding": forwarding}

    def _proc_sys_read_fd(self, fd: int, key: str) -> str:
        _setns(fd)
        try:
            with open(_sysctl_path(key)) as fh:
                return fh.read().strip()
        finally:
            _setns(self.home)

    def op_del_node(self, rid: int, node: str) -> None:
        self._drop_node(self._node(node))

    # -- sysctls and forwarding -----------------------------------------------------------

    @staticmethod
    def _write_sysctls(settings: dict[str, str], where: str = "") -> None:
        """Write sysctls of the namespace this process is in now (keys in OPTIONAL may be absent)."""
        for key, value in settings.items():
            try:
                with open(_sysctl_path(key), "w") as fh:
                    fh.write(value)
            except FileNotFoundError:
                if key in OPTIONAL_SYSCTLS:
                    continue
                raise errors.NotFound(f"sysctl {key!r} does not exist{where}", obj=key,
                                      op="set sysctl",
                                      remedy="check the name with `sysctl -a` in the node") from None

    def _proc_sys_write(self, ns: Namespace, key: str, value: str) -> None:
        _setns(ns.fd)
        try:
            self._write_sysctls({key: value}, f" on node {ns.name!r}")
        finally:
            _setns(self.home)

    def _proc_sys_read(self, ns: Namespace, key: str) -> str:
        path = _sysctl_path(key)
        _setns(ns.fd)
        try:
            with open(path) as fh:
                return fh.read().strip()
        except FileNotFoundError:
            raise errors.NotFound(f"sysctl {key!r} does not exist on node {ns.name!r}", obj=key,
                                  op="read sysctl", remedy="check the name with `sysctl -a` in the node") from None
        finally:
            _setns(self.home)

    def _set_forwarding(self, ns: Namespace, on: bool) -> None:
        ns.forwarding = on
        value = 1 if on else 0
        if self.sysctl_via == "proc":
            _setns(ns.fd)
            try:
                self._write_sysctls(_forwarding_sysctls(on))
            finally:
                _setns(self.home)
        else:
            for index in self._all_indexes(ns):
                ns.nl.set_ipv4_conf(index, {"forwarding": value})

    def _all_indexes(self, ns: Namespace) -> list[int]:
        return [link["ifindex"] for link in self._read(ns, "links")]

    def _new_interface(self, ns: Namespace, ifname: str, up: bool) -> None:
        """Give a new (still down) interface the node's settings, then bring it up.

        With /proc/sys, the namespace's defaults already apply; over netlink each setting
        is written on the interface itself, before it goes up.
        """
        index = ns.nl.get_index(ifname)
        if self.sysctl_via == "netlink":
            ns.nl.set_ipv4_conf(index, {"forwarding": 1 if ns.forwarding else 0})
            if not ns.ipv6:
                ns.nl.set_ipv6_addrgen_none(index)
        if up:
            ns.nl.set_link(index, up=True)

    def op_set_forwarding(self, rid: int, node: str, on: bool) -> None:
        self._set_forwarding(self._node(node), on)

    def op_set_sysctl(self, rid: int, node: str, key: str, value: str) -> None:
        ns = self._node(node)
        validate.sysctl_key(key)
        validate.text(value, what=f"value of sysctl {key}", op="set sysctl")
        if key in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding"):
            if value.strip() not in ("0", "1"):
                raise errors.InvalidTopology(f"{key} takes 0 or 1 (got {value!r})", obj=key,
                                             op="set sysctl", remedy="pass 1 to route, 0 not to")
            self._set_forwarding(ns, value.strip() == "1")
            return
        if self.sysctl_via == "proc":
            self._proc_sys_write(ns, key, value)
            return
        parts = key.split(".")
        if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"] and parts[4] in IPV4_DEVCONF:
            dev, setting = parts[3], parts[4]
            indexes = (self._all_indexes(ns) if dev in ("all", "default")
                       else [self._index(ns, dev)])
            for index in indexes:
                ns.nl.set_ipv4_conf(index, {setting: int(value)})
            return
        raise errors.LabkitError(
            f"sysctl {key!r} cannot be set on node {node!r}: this lab writes settings over "
            f"netlink because /proc/sys is read-only here", obj=key, op="set sysctl",
            remedy="only net.ipv4.ip_forward and net.ipv4.conf.<dev>.<setting> work in this mode; "
                   "run `labkit doctor` to see why")

    def op_get_sysctl(self, rid: int, node: str, key: str) -> str:
        return self._proc_sys_read(self._node(node), key)

    # -- links ------------------------------------------------------------------------

    def _master_index(self, ns: Namespace, bridge: str | None) -> int | None:
        return None if bridge is None else self._index(ns, bridge)

    def op_add_veth(self, rid: int, a: str, a_if: str, b: str, b_if: str, mtu: int | None = None,
                    a_mac: str | None = None, b_mac: str | None = None,
                    a_bridge: str | None = None, b_bridge: str | None = None,
                    up: bool = True) -> None:
        na, nb = self._node(a), self._node(b)
        self._refuse_duplicate(na, a_if)
        self._refuse_duplicate(nb, b_if)
        a_master = self._master_index(na, a_bridge)
        b_master = self._master_index(nb, b_bridge)
        op = f"create veth {a}:{a_if} <-> {b}:{b_if}"
        try:
            na.nl.add_veth(a_if, b_if, peer_netns_fd=nb.fd, mtu=mtu, mac=a_mac, peer_mac=b_mac,
                           master=a_master)
        except OSError as exc:
            raise errors.kernel_error(exc.errno or 0, obj=f"{a}:{a_if}", op=op,
                                      detail=getattr(exc, "detail", None)) from None
        try:
            if b_master is not None:
                nb.nl.set_link(nb.nl.get_index(b_if), master=b_master)
            self._new_interface(na, a_if, up)
            self._new_interface(nb, b_if, up)
        except OSError as exc:
            na.nl.del_link(na.nl.get_index(a_if))  # leave nothing half-built
            raise errors.kernel_error(exc.errno or 0, obj=f"{b}:{b_if}", op=op,
                                      detail=getattr(exc, "detail", None)) from None

    def op_add_bridge(self, rid: int, node: str, name: str, mtu: int | None = None,
                      mac: str | None = None, up: bool = True) -> None:
        ns = self._node(node)
        self._refuse_duplicate(ns, name)
        ns.nl.add_link(name, "bridge", mtu=mtu, mac=mac)
        try:
            self._new_interface(ns, name, up)
        except OSError:
            ns.nl.del_link(ns.nl.get_index(name))
            raise

    def op_add_vxlan(self, rid: int, node: str, name: str, vni: int, group: str | None = None,
                     remote: str | None = None, local: str | None = None, dev: str | None = None,
                     port: int = 4789, learning: bool = True, ttl: int | None = None,
                     mtu: int | None = None, mac: str | None = None, bridge: str | None = None,
                     up: bool = True) -> None:
        ns = self._node(node)
        self._refuse_duplicate(ns, name)
        dev_index = None if dev is None else self._index(ns, dev)
        master = self._master_index(ns, bridge)
        ns.nl.add_vxlan(name, vni, group=group, remote=remote, local=local, dev=dev_index,
                        port=port, learning=learning, ttl=ttl, mtu=mtu, mac=mac, master=master)
        try:
            self._new_interface(ns, name, up)
        except OSError:
            ns.nl.del_link(ns.nl.get_index(name))
            raise

    def op_set_link(self, rid: int, node: str, ifname: str, up: bool | None = None,
                    mtu: int | None = None, mac: str | None = None, master: str | None = None,
                    release: bool = False, new_name: str | None = None) -> None:
        ns = self._node(node)
        index = self._index(ns, ifname)
        if new_name is not None:
            self._refuse_duplicate(ns, new_name)
        master_index = 0 if release else self._master_index(ns, master)
        ns.nl.set_link(index, up=up, mtu=mtu, mac=mac, master=master_index, ifname=new_name)

    def op_del_link(self, rid: int, node: str, ifname: str) -> None:
        ns = self._node(node)
        ns.nl.del_link(self._index(ns, ifname))

    def op_move_link(self, rid: int, node: str, ifname: str, target: str,
                     new_name: str | None = None) -> None:
        ns, dest = self._node(node), self._node(target)
        index = self._index(ns, ifname)
        final = new_name or ifname
        self._refuse_duplicate(dest, final)
        if new_name is not None and not self._exists(ns, new_name):
            ns.nl.set_link(index, ifname=new_name)
        ns.nl.set_link(index, netns_fd=dest.fd)  # it arrives down
        self._new_interface(dest, final, True)

    # -- addresses, routes, neighbours ------------------------------------------------------

    def op_address(self, rid: int, node: str, ifname: str, add: bool, ip: str,
                   prefixlen: int) -> None:
        ns = self._node(node)
        index = self._index(ns, ifname)
        if add and ":" in ip and not ns.ipv6 and self.sysctl_via == "proc":
            self._proc_sys_write(ns, f"net.ipv6.conf.{ifname}.disable_ipv6", "0")
        try:
            ns.nl.address(add, index, ip, prefixlen)
        except OSError as exc:
            if add and exc.errno == errno.EEXIST:
                raise errors.DuplicateName(
                    f"address {ip}/{prefixlen} is already on {node}:{ifname}",
                    obj=f"{node}:{ifname}", op="add address",
                    remedy="nothing to do, or remove it first with node.del_address(...)") from None
            raise errors.kernel_error(exc.errno or 0, obj=f"{node}:{ifname} {ip}/{prefixlen}",
                                      op="add address" if add else "delete address",
                                      detail=getattr(exc, "detail", None)) from None

    def op_route(self, rid: int, node: str, add: bool, dst: str, via: str | None = None,
                 dev: str | None = None, onlink: bool = False, metric: int | None = None,
                 kind: str = "unicast", table: int = 254, src: str | None = None,
                 replace: bool = False) -> None:
        ns = self._node(node)
        oif = None if dev is None else self._index(ns, dev)
        what = f"route {dst}" + (f" via {via}" if via else "") + (f" dev {dev}" if dev else "")
        try:
            ns.nl.route(add, dst, gateway=via, oif=oif, onlink=onlink, metric=metric, kind=kind,
                        table=table, src=src, replace=replace)
        except OSError as exc:
            if add and via and exc.errno == errno.ENETUNREACH:
                nets = sorted({f"{a['local']}/{a['prefixlen']}" for a in self._read(ns, "addresses")
                               if a["scope"] == "global"})
                raise errors.GatewayUnreachable(
                    f"cannot add {what} on node {node!r}: gateway {via} is on none of its "
                    f"connected subnets ({', '.join(nets) or 'it has no addresses'})",
                    obj=f"{node} {what}", op="add route",
                    remedy="add an address on the gateway's subnet first, or pass onlink=True with dev=...") from None
            if add and exc.errno == errno.EEXIST:
                raise errors.DuplicateName(f"{what} already exists on node {node!r}",
                                           obj=f"{node} {what}", op="add route",
                                           remedy="use replace=True to change it, or delete it first") from None
            raise errors.kernel_error(exc.errno or 0, obj=f"{what} on node {node!r}",
                                      op="add" if add else "delete",
                                      detail=getattr(exc, "detail", None)) from None

    def op_neighbour(self, rid: int, node: str, ifname: str, add: bool, ip: str,
                     lladdr: str | None = None) -> None:
        ns = self._node(node)
        ns.nl.neighbour(add, self._index(ns, ifname), ip, lladdr)

    def op_fdb(self, rid: int, node: str, ifname: str, add: bool, mac: str,
               dst: str | None = None, master: bool = False) -> None:
        ns = self._node(node)
        ns.nl.fdb(add, self._index(ns, ifname), mac, dst=dst, master=master)

    # -- inspection ---------------------------------------------------------------------

    def _read(self, ns: Namespace, what: str) -> list[dict[str, Any]]:
        from . import _inspect  # pyroute2 is imported on the first inspection only
        if ns.ipr is None:
            from pyroute2 import IPRoute
            _setns(ns.fd)
            try:
                ns.ipr = IPRoute()
            finally:
                _setns(self.home)
        return _inspect.READERS[what](ns.ipr)

    def op_inspect(self, rid: int, node: str, what: str) -> list[dict[str, Any]]:
        return self._read(self._node(node), what)

    def op_batch(self, rid: int, ops: list[dict[str, Any]]) -> int:
        """Run many quick operations in one round trip; stop at the first failure."""
        if not isinstance(ops, list) or not all(isinstance(item, dict) for item in ops):
            raise errors.InvalidRequest("a batch is a list of {'op': ..., 'args': {...}} steps",
                                        op="batch")
        for done, item in enumerate(ops):
            op, args = item.get("op"), item.get("args", {})
            if op in ("run", "spawn", "stop", "batch", "shutdown"):
                raise errors.InvalidRequest(f"operation {op!r} cannot be batched", op="batch")
            try:
                try:
                    self._handler(op, args)(rid, **args)
                except OSError as exc:
                    raise _kernel_error(exc, str(op), args) from None
                except errors.LabkitError:
                    raise
                except Exception as exc:  # noqa: BLE001 - named below, then answered
                    raise self._refused(str(op), exc) from None
            except errors.LabkitError as exc:
                exc.message = f"step {done + 1} of {len(ops)} ({op}): {exc.message}"
                raise
        return len(ops)

    # -- processes --------------------------------------------------------------------

    def _start(self, node: str, argv: list[str], env: dict[str, str] | None,
               stdin: bytes | None) -> Proc:
        ns = self._node(node)
        # Checked before anything starts, so a bad request leaves no process behind.
        if not isinstance(argv, list):
            raise errors.InvalidRequest(f"command {argv!r} is not a list of words", op="run command")
        argv = validate.command(argv)
        env = validate.environment(env)
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        _setns(ns.fd)
        try:
            popen = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                cwd=self.scratch, start_new_session=True)
        except FileNotFoundError:
            raise errors.ToolMissing(
                f"program {argv[0]!r} is not installed (running it on node {node!r})",
                obj=argv[0], op="run command",
                remedy="install it (the README's setup command installs every tool the course uses) "
                       "and check with `labkit doctor`") from None
        finally:
            _setns(self.home)
        proc = Proc(popen.pid, node, argv, popen)
        self.procs[popen.pid] = proc
        for stream, buf in ((popen.stdout, proc.out), (popen.stderr, proc.err)):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self.sel.register(stream, selectors.EVENT_READ, self._make_reader(proc, buf))
        if stdin is not None and popen.stdin is not None:
            # A program may exit without reading its input (a CNI plugin answering VERSION):
            # the write, or the flush that close() does, then meets EPIPE. Not an error.
            try:
                popen.stdin.write(stdin)
                popen.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                popen.stdin.close()
            except BrokenPipeError:
                pass
        return proc

    def _make_reader(self, proc: Proc, buf: bytearray) -> Callable[[Any], None]:
        def read(stream: Any) -> None:
            if stream.closed:  # drained to its end already
                return
            try:
                data = os.read(stream.fileno(), 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.sel.unregister(stream)
                stream.close()
                return
            buf.extend(data)
            if len(buf) > OUTPUT_LIMIT:  # keep the tail: the end of a long output matters most
                del buf[: len(buf) - OUTPUT_LIMIT]
                proc.truncated = True
        return read

    def _drain(self, proc: Proc) -> None:
        for stream, buf in ((proc.popen.stdout, proc.out), (proc.popen.stderr, proc.err)):
            if stream is None or stream.closed:
                continue
            reader = self._make_reader(proc, buf)
            while not stream.closed:
                before = len(buf)
                reader(stream)
                if len(buf) == before and not stream.closed:
                    break

    def op_run(self, rid: int, node: str, argv: list[str], timeout: float | None = None,
               env: dict[str, str] | None = None, stdin: str | None = None,
               stdin_b64: str | None = None) -> object:
        timeout = validate.seconds(timeout, what="timeout", op="run command")
        proc = self._start(node, argv, env, _stdin_bytes(stdin, stdin_b64))
        proc.reply_to = rid
        if timeout is not None:
            proc.deadline = time.monotonic() + timeout
        return _DEFERRED

    def op_spawn(self, rid: int, node: str, argv: list[str],
                 env: dict[str, str] | None = None) -> dict[str, Any]:
        proc = self._start(node, argv, env, None)
        return {"pid": proc.pid}

    def _proc(self, pid: int) -> Proc:
        try:
            return self.procs[pid]
        except (KeyError, TypeError):
            raise errors.NotFound(f"process {pid} is not known to this lab", obj=str(pid),
                                  op="find process") from None

    def _status(self, proc: Proc) -> dict[str, Any]:
        return {"pid": proc.pid, "running": proc.returncode is None,
                "returncode": proc.returncode,
                "stdout": proc.out.decode(errors="replace"),
                "stderr": proc.err.decode(errors="replace"), "truncated": proc.truncated,
                "timed_out": proc.timed_out}

    def op_status(self, rid: int, pid: int) -> dict[str, Any]:
        proc = self._proc(pid)
        self._drain(proc)
        return self._status(proc)

    def op_signal(self, rid: int, pid: int, signum: int) -> None:
        proc = self._proc(pid)
        signum = validate.signal_number(signum)
        if proc.returncode is None:
            self._kill(proc, signum)

    def op_stop(self, rid: int, pid: int, grace: float = STOP_GRACE) -> object:
        grace = validate.seconds(grace, what="grace", op="stop process", allow_none=False)
        proc = self._proc(pid)
        if proc.returncode is not None:
            self._drain(proc)
            return self._status(proc)
        proc.waiters.append(rid)
        self._kill(proc, signal.SIGTERM)
        proc.deadline = time.monotonic() + grace
        return _DEFERRED

    def op_forget(self, rid: int, pid: int) -> None:
        proc = self._proc(pid)
        if proc.returncode is None:
            raise errors.LabkitError(f"process {pid} is still running", op="forget process")
        del self.procs[pid]

    def _kill(self, proc: Proc, signum: int) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            proc = self.procs.get(pid)
            if proc is None:
                continue  # an orphan reparented to us (we are PID 1)
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.popen.returncode = proc.returncode
            self._kill(proc, signal.SIGKILL)  # whatever it left in its process group
            self._drain(proc)
            self._finish(proc)

    def _finish(self, proc: Proc) -> None:
        status = self._status(proc)
        for rid in proc.waiters:
            self._reply(rid, status)
        proc.waiters.clear()
        if proc.reply_to is not None:
            rid, proc.reply_to = proc.reply_to, None
            self.procs.pop(proc.pid, None)
            self._reply(rid, status)

    def _next_deadline(self) -> float | None:
        deadlines = [p.deadline for p in self.procs.values()
                     if p.deadline is not None and p.returncode is None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for proc in list(self.procs.values()):
            if proc.deadline is not None and proc.returncode is None and now >= proc.deadline:
                proc.timed_out = proc.reply_to is not None
                proc.deadline = None
                self._kill(proc, signal.SIGKILL)

    # -- the end ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Let daemons (captures) finish their files, then go; the kernel does the rest."""
        live = [p for p in self.procs.values() if p.returncode is None]
        for proc in live:
            self._kill(proc, signal.SIGTERM)
        end = time.monotonic() + 1.0
        while live and time.monotonic() < end:
            time.sleep(0.01)
            self._reap()
            live = [p for p in live if p.returncode is None]
        # The namespaces, their bind mounts and our file descriptors are released by the
        # kernel as this process exits: dropping them one by one would only be slower.
        if not self.named:
            import shutil
            shutil.rmtree(self.scratch, ignore_errors=True)


_DEFERRED = object()


def _stdin_bytes(text: str | None, b64: str | None) -> bytes | None:
    """A command's input: text (sent as UTF-8) or bytes (sent over the socket as base64)."""
    if b64 is not None:
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise errors.InvalidRequest("stdin_b64 is not base64", op="run command") from None
    if text is None:
        return None
    if not isinstance(text, str):
        raise errors.InvalidRequest(f"input of type {type(text).__name__} is not text",
                                    op="run command")
    return text.encode()


def _kernel_error(exc: OSError, op: str, args: dict[str, Any]) -> errors.KernelError:
    """A kernel refusal, naming the object, the fields the request set and what the kernel said."""
    node = str(args.get("node", ""))
    ifname = args.get("ifname") or args.get("name")
    obj = f"{node}:{ifname}" if ifname else node
    fields = ", ".join(f"{key}={value!r}" for key, value in args.items()
                       if key not in ("node", "ifname", "name", "add")
                       and value is not None and value is not False)
    said = [part for part in (getattr(exc, "detail", None),
                              f"the request set {fields}" if fields else None) if part]
    return errors.kernel_error(exc.errno or 0, obj=obj, op=op.replace("_", " "),
                               detail="; ".join(said) or None)


def _host_pid() -> int | None:
    """Our PID as the machine sees it: /proc is still the host's, so /proc/self says so."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return None


def _sysctl_path(key: str) -> str:
    """``net.ipv4.ip_forward`` or ``net/ipv4/conf/eth0.100/forwarding`` under /proc/sys."""
    key = validate.sysctl_key(key)
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def _raise_file_limit() -> None:
    """Hold as many namespaces as the hard limit allows (each node keeps a few files open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def _forwarding_sysctls(on: bool) -> dict[str, str]:
    value = "1" if on else "0"
    return {"net.ipv4.ip_forward": value, "net.ipv6.conf.all.forwarding": value}


def _node_sysctls(forwarding: bool, ipv6: bool) -> dict[str, str]:
    """What every new node sets explicitly (a new namespace copies some of the host's values)."""
    settings = _forwarding_sysctls(forwarding)
    # Without ipv6, new interfaces get no link-local address (like Docker's IPv4-only
    # networks): no DAD/MLD/RS chatter in captures or across big switches.
    settings["net.ipv6.conf.default.addr_gen_mode"] = "0" if ipv6 else "1"
    # Without ipv6, IPv6 is off on every interface until an IPv6 address is added to it:
    # no MLD reports or other IPv6 chatter appear in IPv4 lessons' captures.
    settings["net.ipv6.conf.all.disable_ipv6"] = "0" if ipv6 else "1"
    settings["net.ipv6.conf.default.disable_ipv6"] = "0" if ipv6 else "1"
    # Bridged frames skip iptables, as on a machine without br_netfilter. A new namespace
    # otherwise copies whatever the host has (1 where Docker runs); lessons turn it on.
    for key in OPTIONAL_SYSCTLS:
        settings[key] = "0"
    return settings


# Present only when the kernel has br_netfilter.
OPTIONAL_SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
                    "net.bridge.bridge-nf-call-arptables")


def _proc_sys_writable() -> bool:
    """Can this process write network sysctls? (AppArmor on some hosts says no.)"""
    try:
        with open("/proc/sys/net/ipv4/ip_forward", "r+") as fh:
            value = fh.read()
            fh.seek(0)
            fh.write(value)
        return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    fd = int(argv[0])
    mounts = "--no-mounts" not in argv
    sysctl = "netlink" if "--sysctl=netlink" in argv else "proc"
    if "--sysctl=auto" in argv and not _proc_sys_writable():
        sysctl = "netlink"
    sock = socket.socket(fileno=fd)
    _raise_file_limit()
    try:
        sup = Supervisor(sock, mounts=mounts, sysctl=sysctl)
    except OSError as exc:
        _protocol.send(sock, {"id": 0, "ok": False, "error": errors.to_wire(
            errors.NamespacesUnavailable(f"the lab supervisor could not start: {exc}",
                                         op="start lab", remedy="run `labkit doctor`"))})
        return 1
    sup.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
