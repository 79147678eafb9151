"""A lab: a bubble of private namespaces that holds one practice network.

::

    with Lab("docker0-by-hand") as lab:      # starts the supervisor (unshare -Urnmpf)
        c1 = lab.add_host("c1")              # ip netns add c1
        host = lab.add_router("host")        # ... with net.ipv4.ip_forward=1
        host.add_bridge("docker0", address="172.17.0.1/16")
        lab.link(c1, host, names=("eth0", "veth1"), bridges=(None, "docker0"))
        c1.add_address("eth0", "172.17.0.2/16")
        c1.add_route("default", via="172.17.0.1")
        print(c1.ping("172.17.0.1"))
    # here every namespace, interface and process of the lab is gone

Naming conventions: nodes are named by the student; an interface made by
:meth:`Lab.link` is ``eth0``, ``eth1``... on each side unless named; a switch node holds
one bridge called ``br0`` to which all its links are attached.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

from . import validate
from ._client import SupervisorClient
from .errors import InvalidName, InvalidTopology, LabClosed, NamespacesUnavailable, NotFound
from .model import Link
from .node import Node

SWITCH_BRIDGE = "br0"
MODES = ("auto", "full", "restricted", "host")
_counter = itertools.count(1)
_open_labs: "weakref.WeakSet[Lab]" = weakref.WeakSet()


class Lab:
    """A private network laboratory; use it as a context manager, or call :meth:`close`.

    ``mode`` chooses how the bubble is kept:

    * ``"full"``: node namespaces are also bind-mounted under a private ``/run/netns``
      (so ``ip netns exec NODE ...`` works inside the lab) and sysctls are written
      through ``/proc/sys``;
    * ``"restricted"``: no mounts at all (namespaces are held by file descriptor) and
      settings go over netlink, for hosts whose security profile denies ``mount`` and
      writes to ``/proc/sys`` (Ubuntu containerd/AppArmor, e.g. Binder);
    * ``"auto"`` (default): ``full`` where the host allows it, else the restricted ways;
    * ``"host"``: no bubble: a root-only view of this machine's real namespaces, for the
      Docker lessons. Nodes are adopted (:meth:`adopt`), never created, and are left as
      they were when the lab closes; only the processes the lab started are ended.

    ``ipv6=False`` (default) gives new interfaces no automatic IPv6 link-local address,
    as Docker does on IPv4-only networks: captures then show only the traffic a lesson
    is about. IPv6 addresses added by hand still work. ``ipv6=True`` behaves like a
    stock Linux host (``fe80::`` on every interface, with its DAD and MLD packets).

    ``workdir`` is the folder under which the lab's files are written (captures go to
    ``WORKDIR/captures/``) and kept after it closes, so they can be opened in
    Wireshark; by default the current directory (the notebook's folder).
    """

    def __init__(self, name: str | None = None, *, mode: str = "auto", ipv6: bool = False,
                 workdir: "str | os.PathLike[str] | None" = None) -> None:
        if mode not in MODES:
            raise InvalidTopology(f"lab mode {mode!r} is not known", obj=mode, op="create lab",
                                  remedy=f"use one of {', '.join(MODES)}")
        try:
            self.name = validate.node_name(name) if name is not None else f"lab{next(_counter)}"
        except InvalidName as exc:  # the same rule as node names, but this is the lab's name
            raise InvalidName(exc.message.replace("node name", "lab name", 1), obj=exc.obj, op="create lab",
                              remedy=exc.remedy) from None
        self.ipv6 = ipv6
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        self.nodes: dict[str, Node] = {}
        self.links: list[Link] = []
        self._batch: list[dict[str, Any]] | None = None
        self._on_close: list[Callable[[], object]] = []
        if mode == "host" and os.geteuid() != 0:
            raise NamespacesUnavailable(
                "a host-mode lab (a view of this machine's real namespaces) needs root",
                obj=self.name, op="create lab",
                remedy="run the notebook as root (./course.sh start does), or use a bubble lab")
        self._client: SupervisorClient | None = SupervisorClient(
            mounts=mode != "restricted", sysctl="netlink" if mode == "restricted" else "auto",
            label=self.name, host=mode == "host")
        info = self._client.info
        self.named_namespaces: bool = bool(info["named"])
        self.sysctl_via: str = str(info["sysctl"])
        if mode == "host":
            self.mode = "host"
        else:
            self.mode = "full" if self.named_namespaces and self.sysctl_via == "proc" else "restricted"
        self.supervisor_pid: int = int(self._client.process.pid)
        self.notes: list[str] = list(info.get("notes", []))
        _open_labs.add(self)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._client is None or not self._client.alive

    def close(self) -> None:
        """End the lab: stop its processes and free every namespace. Safe to call twice.

        What was registered with :meth:`on_close` runs first, newest first.
        """
        hooks, self._on_close = getattr(self, "_on_close", []), []
        for hook in reversed(hooks):
            try:
                hook()
            except Exception as exc:  # noqa: BLE001 - the lab must still end
                warnings.warn(f"lab {self.name}: a close step failed: {exc}", stacklevel=2)
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.close()
        _open_labs.discard(self)

    def on_close(self, hook: Callable[[], object]) -> None:
        """Run ``hook()`` when the lab closes, before its namespaces go.

        For what lives outside the bubble but uses it, e.g. a Docker engine started in a
        node's network namespace (:func:`labkit.docker.machine.engine_on`), which would
        otherwise keep that namespace alive. Hooks run newest first; one that fails is
        reported as a warning and the others still run.
        """
        if not callable(hook):
            raise InvalidTopology(f"{hook!r} is not callable", obj=repr(hook), op="register close step",
                                  remedy="pass a function taking no arguments")
        if self.closed:
            raise LabClosed(f"lab {self.name} is closed", obj=self.name, op="register close step",
                                  remedy="register close steps while the lab is open")
        self._on_close.append(hook)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.nodes)} nodes, {len(self.links)} links"
        return f"<Lab {self.name}: {state}>"

    def _call(self, op: str, **args: Any) -> Any:
        if self._client is None:
            raise LabClosed(f"lab {self.name!r} is closed", obj=self.name, op=op,
                            remedy="create a new Lab() to continue")
        if self._batch is not None and op not in ("run", "spawn", "status", "stop", "signal",
                                                  "inspect", "get_sysctl"):
            self._batch.append({"op": op, "args": args})
            return None
        return self._client.call(op, **args)

    @contextlib.contextmanager
    def batch(self) -> Iterator["Lab"]:
        """Send the changes made inside the block to the kernel in one round trip.

        Useful for large topologies. Commands and inspection still run at once. If a
        step fails, the error names it; the steps before it stay done.
        """
        if self._batch is not None:
            yield self
            return
        self._batch = []
        try:
            yield self
        finally:
            ops, self._batch = self._batch, None
        if ops:
            self._call("batch", ops=ops)

    # -- nodes -------------------------------------------------------------------------

    def add_node(self, name: str, kind: str = "host") -> Node:
        """A new network namespace. ``ip netns add NAME; ip -n NAME link set lo up``."""
        validate.new_node(name, kind, self.nodes, self.name)
        if self.mode == "host":
            raise InvalidTopology(f"cannot create node {name!r} in a host-mode lab",
                                  obj=name, op="add node",
                                  remedy="adopt existing namespaces with lab.adopt(), or use a bubble Lab()")
        self._call("add_node", node=name, forwarding=kind == "router", ipv6=self.ipv6)
        node = Node(self, name, kind)
        self.nodes[name] = node
        if kind == "switch":
            try:
                node.add_bridge(SWITCH_BRIDGE)
            except Exception:
                self.remove_node(name)
                raise
        return node

    def adopt(self, name: str, *, pid: int, kind: str = "host") -> Node:
        """Work inside the network namespace of a running process (a Docker container's PID,
        or ``os.getpid()`` for this machine's own). ``nsenter --net --target PID``.

        The namespace is not the lab's: closing the lab leaves it as it is.
        """
        validate.new_node(name, kind, self.nodes, self.name)
        self._call("adopt", node=name, pid=validate.pid(pid))
        node = Node(self, name, kind)
        node._ifnames |= {i.ifname for i in node.interfaces()}
        self.nodes[name] = node
        return node

    def add_host(self, name: str) -> Node:
        """A host or container: a namespace with forwarding off."""
        return self.add_node(name, "host")

    def add_router(self, name: str) -> Node:
        """A namespace with IPv4/IPv6 forwarding on (``sysctl net.ipv4.ip_forward=1``)."""
        return self.add_node(name, "router")

    def add_switch(self, name: str) -> Node:
        """A namespace holding one bridge, ``br0``; every link to it becomes a port."""
        return self.add_node(name, "switch")

    def node(self, name: "str | Node") -> Node:
        """The node called ``name`` (a Node is returned as it is, if it belongs here)."""
        if isinstance(name, Node):
            if name.lab is not self:
                raise NotFound(f"node {name.name!r} belongs to another lab ({name.lab.name!r})",
                               obj=name.name, op="find node",
                               remedy="link nodes of the same lab only")
            return name
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(sorted(self.nodes)) or "none yet"
            raise NotFound(f"node {name!r} does not exist in lab {self.name!r} (nodes: {known})",
                           obj=str(name), op="find node",
                           remedy="create it with lab.add_host(...) first") from None

    def __getitem__(self, name: str) -> Node:
        return self.node(name)

    def remove_node(self, name: "str | Node") -> None:
        """Delete a node with its interfaces and processes. ``ip netns del NAME``."""
        node = self.node(name)
        self._call("del_node", node=node.name)
        del self.nodes[node.name]
        self.links = [l for l in self.links if node.name not in (l.a, l.b)]

    # -- links -------------------------------------------------------------------------

    def link(self, a: "str | Node", b: "str | Node", *,
             names: tuple[str | None, str | None] = (None, None),
             macs: tuple[str | None, str | None] = (None, None),
             bridges: tuple[str | None, str | None] = (None, None),
             mtu: int | None = None, up: bool = True) -> Link:
        """Join two nodes with a veth pair ("a cable").

        ``ip link add NAME_A netns A type veth peer name NAME_B netns B``, then
        ``ip link set ... master BRIDGE up``. A switch's end joins its ``br0``.
        """
        for what, pair in (("names", names), ("macs", macs), ("bridges", bridges)):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidTopology(f"{what}={pair!r} is not a pair (one value per end)",
                                      obj=repr(pair), op="link",
                                      remedy=f"pass {what}=(A_END, B_END), None for the default")
        na, nb = self.node(a), self.node(b)
        if na is nb:
            raise InvalidTopology(f"cannot link node {na.name!r} to itself", obj=na.name,
                                  op="link", remedy="link two different nodes (add a bridge for a loop)")
        # Only None picks a name: an empty string is a mistake to report, not a request for eth1.
        a_if = na._claim(names[0]) if names[0] is not None else na._next_ifname()
        b_if = nb._claim(names[1]) if names[1] is not None else nb._next_ifname()
        if names[0] is None:
            na._claim(a_if)
        if names[1] is None:
            nb._claim(b_if)
        a_br = validate.ifname(bridges[0]) if bridges[0] is not None else (
            SWITCH_BRIDGE if na.kind == "switch" else None)
        b_br = validate.ifname(bridges[1]) if bridges[1] is not None else (
            SWITCH_BRIDGE if nb.kind == "switch" else None)
        self._call("add_veth", a=na.name, a_if=a_if, b=nb.name, b_if=b_if,
                   mtu=None if mtu is None else validate.mtu(mtu),
                   a_mac=None if macs[0] is None else validate.mac(macs[0]),
                   b_mac=None if macs[1] is None else validate.mac(macs[1]),
                   a_bridge=a_br, b_bridge=b_br, up=validate.flag(up, what="up", op="link"))
        na._ifnames.add(a_if)
        nb._ifnames.add(b_if)
        link = Link(na.name, a_if, nb.name, b_if)
        self.links.append(link)
        return link

    def capture(self, targets: "list[tuple[str | Node, str]]", *, filter: str | None = None,
                count: int | None = None, duration: float | None = None) -> Any:
        """Capture on several ``(node, interface)`` pairs at once, merged into one table.

        Follow one packet across veth, bridge, tunnel and the far host; see
        :class:`labkit.capture.MultiCapture`.
        """
        from .capture import MultiCapture

        return MultiCapture([(self.node(n), ifname) for n, ifname in targets], filter=filter,
                            count=count, duration=duration)

    # -- description -------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Plain data for diagrams: nodes with their interfaces and addresses, and links."""
        nodes = []
        for node in self.nodes.values():
            ifaces = node.interfaces()
            addrs = node.addresses()
            nodes.append({
                "name": node.name, "kind": node.kind,
                "interfaces": [{
                    "name": i.ifname, "kind": i.kind, "mac": i.address, "mtu": i.mtu,
                    "up": i.up, "master": i.master, "vxlan": i.vxlan,
                    "addresses": [a.cidr for a in addrs if a.ifname == i.ifname and a.scope == "global"],
                } for i in ifaces if i.ifname != "lo"],
            })
        links = [{"a": l.a, "a_ifname": l.a_ifname, "b": l.b, "b_ifname": l.b_ifname}
                 for l in self.links]
        return {"name": self.name, "nodes": nodes, "links": links}


@atexit.register
def _close_all() -> None:
    for lab in list(_open_labs):
        lab.close()
