"""A topology written down before it is built: the builder's plan.

:class:`Plan` has the same construction methods as :class:`labkit.Lab` and
:class:`labkit.Node` (``add_host``, ``add_router``, ``add_switch``, ``link``,
``add_bridge``, ``add_address``, ``add_route``, ``attach``, ...), but only records
them, checking names and addresses on the way. So one template function works on
both::

    def two_containers(lab):                 # a template (labkit.widgets.templates)
        c1, c2 = lab.add_host("c1"), lab.add_host("c2")
        lab.link(c1, c2)
        ...

    two_containers(Lab("x"))                 # builds it for real
    plan = Plan("x"); two_containers(plan)   # writes it down
    plan.python()                            # the same steps as labkit code
    plan.ip_commands()                       # ... and as iproute2 commands
    plan.describe()                          # drawable before anything exists
    plan.apply(Lab("x"))                     # builds it, step by step

Every recorded step remembers the call (:class:`Step`), so the code shown to a
student is exactly what was run.
"""

from __future__ import annotations

import json
import keyword
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .. import validate
from ..errors import DuplicateName, InvalidTopology, NotFound

if TYPE_CHECKING:
    from ..lab import Lab

SWITCH_BRIDGE = "br0"

__all__ = ["Plan", "PlanNode", "Step", "NodeRef"]


@dataclass(frozen=True)
class NodeRef:
    """A node named in a step's arguments (rendered as its variable in code)."""

    name: str


@dataclass
class Step:
    """One recorded call: ``target.method(*args, **kwargs)``; ``target`` None means the lab."""

    target: str | None
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    # for a link: the interface names and bridges each end gets, as the lab will choose them
    ifnames: tuple[str, str] | None = None
    ports: tuple[str | None, str | None] = (None, None)

    # -- running ------------------------------------------------------------------------

    def apply(self, lab: "Lab") -> Any:
        """Do this step on a real lab (the same call that was recorded)."""
        obj: Any = lab if self.target is None else lab.node(self.target)
        args = [lab.node(a.name) if isinstance(a, NodeRef) else a for a in self.args]
        return getattr(obj, self.method)(*args, **self.kwargs)

    # -- words --------------------------------------------------------------------------

    def title(self) -> str:
        """A few words for a progress line: ``link c1 - host``."""
        a = [x.name if isinstance(x, NodeRef) else x for x in self.args]
        if self.target is None:
            if self.method == "link":
                return f"cable {a[0]} \u2194 {a[1]}"
            return f"{self.method.replace('add_', 'add ')} {a[0]}"
        return f"{self.target}: {self.method.replace('_', ' ')} {' '.join(str(x) for x in a)}".rstrip()

    def python(self) -> str:
        """The labkit call, as a student would type it."""
        args = [_literal(a) for a in self.args]
        args += [f"{k}={_literal(v)}" for k, v in self.kwargs.items()]
        owner = "lab" if self.target is None else _var(self.target)
        call = f"{owner}.{self.method}({', '.join(args)})"
        if self.target is None and self.method.startswith("add_") and self.args:
            name = str(self.args[0])
            if _is_identifier(name):
                return f"{name} = {call}"
        return call

    def ip(self) -> list[str]:
        """The iproute2 commands that do the same on a Linux machine."""
        kw = self.kwargs
        if self.target is None:
            if self.method in ("add_host", "add_router", "add_switch", "add_node"):
                name = self.args[0]
                kind = {"add_router": "router", "add_switch": "switch"}.get(
                    self.method, kw.get("kind", self.args[1] if len(self.args) > 1 else "host"))
                lines = [f"ip netns add {name}", f"ip -n {name} link set lo up"]
                if kind == "router":
                    lines.append(f"ip netns exec {name} sysctl -w net.ipv4.ip_forward=1")
                if kind == "switch":
                    lines += [f"ip -n {name} link add {SWITCH_BRIDGE} type bridge",
                              f"ip -n {name} link set {SWITCH_BRIDGE} up"]
                return lines
            if self.method == "link" and self.ifnames is not None:
                a, b = (x.name if isinstance(x, NodeRef) else str(x) for x in self.args[:2])
                a_if, b_if = self.ifnames
                macs = kw.get("macs", (None, None))
                mtu = kw.get("mtu")
                extra_a = (f" address {macs[0]}" if macs[0] else "") + (f" mtu {mtu}" if mtu else "")
                extra_b = f" address {macs[1]}" if macs[1] else ""
                lines = [f"ip link add {a_if} netns {a}{extra_a} type veth peer name {b_if} netns {b}{extra_b}"]
                for node, ifname, bridge in zip((a, b), (a_if, b_if), self.ports, strict=True):
                    if bridge:
                        lines.append(f"ip -n {node} link set {ifname} master {bridge}")
                if kw.get("up", True):
                    lines += [f"ip -n {a} link set {a_if} up", f"ip -n {b} link set {b_if} up"]
                return lines
            return [f"# {self.python()}"]
        n = self.target
        if self.method == "add_bridge":
            name = self.args[0]
            lines = [f"ip -n {n} link add {name} type bridge"
                     + (f" mtu {kw['mtu']}" if kw.get("mtu") else "")]
            if kw.get("address"):
                lines.append(f"ip -n {n} addr add {kw['address']} dev {name}")
            if kw.get("up", True):
                lines.append(f"ip -n {n} link set {name} up")
            return lines
        if self.method in ("add_address", "del_address"):
            verb = "add" if self.method == "add_address" else "del"
            return [f"ip -n {n} addr {verb} {self.args[1]} dev {self.args[0]}"]
        if self.method in ("add_route", "del_route"):
            verb = "add" if self.method == "add_route" else "del"
            kind = kw.get("kind", "unicast")
            words = [f"ip -n {n} route {verb}"] + ([kind] if kind != "unicast" else []) + [str(self.args[0])]
            for key, word in (("via", "via"), ("dev", "dev"), ("metric", "metric"), ("src", "src")):
                if kw.get(key) is not None:
                    words += [word, str(kw[key])]
            if kw.get("onlink"):
                words.append("onlink")
            return [" ".join(words)]
        if self.method == "attach":
            return [f"ip -n {n} link set {self.args[0]} master {self.args[1]}"]
        if self.method == "detach":
            return [f"ip -n {n} link set {self.args[0]} nomaster"]
        if self.method in ("set_up", "set_down"):
            return [f"ip -n {n} link set {self.args[0]} {self.method[4:]}"]
        if self.method == "set_forwarding":
            on = self.args[0] if self.args else kw.get("on", True)
            return [f"ip netns exec {n} sysctl -w net.ipv4.ip_forward={1 if on else 0}"]
        return [f"# {self.python()}"]


def _is_identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name not in ("lab", "Lab")


def _var(name: str) -> str:
    """How code refers to a node: its name when that is a Python identifier."""
    return name if _is_identifier(name) else f"lab[{json.dumps(name)}]"


def _literal(value: Any) -> str:
    """Python source for a value, with double-quoted strings as in the course notebooks."""
    if isinstance(value, NodeRef):
        return _var(value.name)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


class PlanNode:
    """A node of a :class:`Plan`: records the :class:`labkit.Node` methods called on it."""

    def __init__(self, plan: "Plan", name: str, kind: str) -> None:
        self.plan = plan
        self.name = name
        self.kind = kind
        self.ifnames: list[str] = ["lo"]
        self.bridges: list[str] = [SWITCH_BRIDGE] if kind == "switch" else []
        self.addresses: dict[str, list[str]] = {}
        self._next_eth = 0
        if kind == "switch":
            self.ifnames.append(SWITCH_BRIDGE)

    def __repr__(self) -> str:
        return f"<PlanNode {self.name} ({self.kind})>"

    # the same naming rule as labkit.Node, so planned names match built ones
    def _next_ifname(self) -> str:
        while f"eth{self._next_eth}" in self.ifnames:
            self._next_eth += 1
        return f"eth{self._next_eth}"

    def _claim(self, ifname: str) -> str:
        validate.ifname(ifname)
        if ifname in self.ifnames:
            raise DuplicateName(f"interface {ifname!r} already exists on node {self.name!r}",
                                obj=f"{self.name}:{ifname}", op="create interface",
                                remedy="choose another name, or delete the existing one")
        return ifname

    def _has(self, ifname: str, op: str) -> None:
        if ifname not in self.ifnames:
            known = ", ".join(i for i in self.ifnames if i != "lo") or "none yet"
            raise NotFound(f"interface {ifname!r} does not exist on node {self.name!r} "
                           f"(interfaces: {known})", obj=f"{self.name}:{ifname}", op=op,
                           remedy="link the node first, or pick one of its interfaces")

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.plan._record(Step(self.name, method, args, kwargs))

    def add_bridge(self, name: str, *, address: str | None = None, mtu: int | None = None,
                   up: bool = True) -> str:
        self._claim(name)
        if address is not None:
            validate.interface_address(address)
        kwargs: dict[str, Any] = {}
        if address is not None:
            kwargs["address"] = address
        if mtu is not None:
            kwargs["mtu"] = validate.mtu(mtu)
        if not up:
            kwargs["up"] = False
        self._record("add_bridge", name, **kwargs)
        self.ifnames.append(name)
        self.bridges.append(name)
        if address is not None:
            self.addresses.setdefault(name, []).append(address)
        return name

    def add_address(self, ifname: str, cidr: str) -> None:
        self._has(ifname, "add address")
        validate.interface_address(cidr)
        if cidr in self.addresses.get(ifname, []):
            raise DuplicateName(f"address {cidr} is already on {self.name}:{ifname}",
                                obj=f"{self.name}:{ifname}", op="add address",
                                remedy="each address goes on an interface once")
        self._record("add_address", ifname, cidr)
        self.addresses.setdefault(ifname, []).append(cidr)

    def add_route(self, dst: str, *, via: str | None = None, dev: str | None = None,
                  onlink: bool = False, metric: int | None = None, kind: str = "unicast") -> None:
        validate.network(dst)
        if via is not None:
            validate.address(via)
        if dev is not None:
            self._has(dev, "add route")
        if kind == "unicast" and via is None and dev is None:
            raise InvalidTopology(f"route to {dst} on {self.name!r} has neither via= nor dev=",
                                  obj=f"{self.name} route {dst}", op="add route",
                                  remedy="say where it goes: a gateway (via) and/or an interface (dev)")
        kwargs: dict[str, Any] = {}
        for key, value in (("via", via), ("dev", dev), ("metric", metric)):
            if value is not None:
                kwargs[key] = value
        if onlink:
            kwargs["onlink"] = True
        if kind != "unicast":
            kwargs["kind"] = kind
        self._record("add_route", dst, **kwargs)

    def attach(self, ifname: str, bridge: str) -> None:
        self._has(ifname, "attach to bridge")
        if bridge not in self.bridges:
            raise NotFound(f"bridge {bridge!r} does not exist on node {self.name!r}",
                           obj=f"{self.name}:{bridge}", op="attach to bridge",
                           remedy="add the bridge first")
        self._record("attach", ifname, bridge)

    def detach(self, ifname: str) -> None:
        self._has(ifname, "detach from bridge")
        self._record("detach", ifname)

    def set_up(self, ifname: str) -> None:
        self._has(ifname, "set link up")
        self._record("set_up", ifname)

    def set_down(self, ifname: str) -> None:
        self._has(ifname, "set link down")
        self._record("set_down", ifname)

    def set_forwarding(self, on: bool = True) -> None:
        self._record("set_forwarding", bool(on))


class Plan:
    """A recorded topology: what :class:`labkit.Lab` would be asked to build.

    Checks what can be checked without a kernel (names, addresses, duplicates,
    unknown nodes and interfaces) and raises the same :class:`labkit.LabkitError`
    the lab would.
    """

    def __init__(self, name: str = "lab") -> None:
        self.name = validate.node_name(name)
        self.steps: list[Step] = []
        self.nodes: dict[str, PlanNode] = {}
        self.links: list[tuple[str, str, str, str]] = []  # (node, ifname, node, ifname)

    @classmethod
    def from_steps(cls, name: str, steps: Iterable[Step]) -> "Plan":
        """Replay recorded steps into a fresh plan (re-checking each)."""
        plan = cls(name)
        for step in steps:
            obj: Any = plan if step.target is None else plan.node(step.target)
            args = [plan.node(a.name) if isinstance(a, NodeRef) else a for a in step.args]
            getattr(obj, step.method)(*args, **step.kwargs)
        return plan

    def replace(self, other: "Plan") -> None:
        """Take another plan's name, steps and nodes (this object stays the same)."""
        self.name, self.steps, self.nodes, self.links = other.name, other.steps, other.nodes, other.links
        for node in self.nodes.values():
            node.plan = self

    def reset_to(self, steps: Iterable[Step]) -> None:
        """Forget every step after ``steps`` (used when a step could not be applied)."""
        self.replace(Plan.from_steps(self.name, list(steps)))

    def rename(self, name: str) -> None:
        self.name = validate.node_name(name)

    def __repr__(self) -> str:
        return f"<Plan {self.name}: {len(self.nodes)} nodes, {len(self.steps)} steps>"

    def __len__(self) -> int:
        return len(self.steps)

    def _record(self, step: Step) -> None:
        self.steps.append(step)

    # -- the Lab methods ------------------------------------------------------------------

    def add_node(self, name: str, kind: str = "host") -> PlanNode:
        validate.new_node(name, kind, self.nodes, self.name)
        method = {"host": "add_host", "router": "add_router", "switch": "add_switch"}[kind]
        self._record(Step(None, method, (name,)))
        node = PlanNode(self, name, kind)
        self.nodes[name] = node
        return node

    def add_host(self, name: str) -> PlanNode:
        return self.add_node(name, "host")

    def add_router(self, name: str) -> PlanNode:
        return self.add_node(name, "router")

    def add_switch(self, name: str) -> PlanNode:
        return self.add_node(name, "switch")

    def node(self, name: "str | PlanNode") -> PlanNode:
        if isinstance(name, PlanNode):
            return name
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(sorted(self.nodes)) or "none yet"
            raise NotFound(f"node {name!r} does not exist in lab {self.name!r} (nodes: {known})",
                           obj=str(name), op="find node",
                           remedy="add it first (a host, router or switch)") from None

    def __getitem__(self, name: str) -> PlanNode:
        return self.node(name)

    def link(self, a: "str | PlanNode", b: "str | PlanNode", *,
             names: tuple[str | None, str | None] = (None, None),
             macs: tuple[str | None, str | None] = (None, None),
             bridges: tuple[str | None, str | None] = (None, None),
             mtu: int | None = None, up: bool = True) -> tuple[str, str]:
        na, nb = self.node(a), self.node(b)
        if na is nb:
            raise InvalidTopology(f"cannot link node {na.name!r} to itself", obj=na.name,
                                  op="link", remedy="link two different nodes")
        a_if = na._claim(names[0]) if names[0] else na._next_ifname()
        b_if = nb._claim(names[1]) if names[1] else nb._next_ifname()
        for node, bridge in ((na, bridges[0]), (nb, bridges[1])):
            if bridge is not None and bridge not in node.bridges:
                raise NotFound(f"bridge {bridge!r} does not exist on node {node.name!r}",
                               obj=f"{node.name}:{bridge}", op="link",
                               remedy=f"add the bridge to {node.name} first, or leave the bridge empty")
        for mac in macs:
            if mac is not None:
                validate.mac(mac)
        kwargs: dict[str, Any] = {}
        if any(names):
            kwargs["names"] = tuple(names)
        if any(macs):
            kwargs["macs"] = tuple(macs)
        if any(bridges):
            kwargs["bridges"] = tuple(bridges)
        if mtu is not None:
            kwargs["mtu"] = validate.mtu(mtu)
        if not up:
            kwargs["up"] = False
        ports = (bridges[0] or (SWITCH_BRIDGE if na.kind == "switch" else None),
                 bridges[1] or (SWITCH_BRIDGE if nb.kind == "switch" else None))
        self._record(Step(None, "link", (NodeRef(na.name), NodeRef(nb.name)), kwargs,
                          ifnames=(a_if, b_if), ports=ports))
        na.ifnames.append(a_if)
        nb.ifnames.append(b_if)
        self.links.append((na.name, a_if, nb.name, b_if))
        return a_if, b_if

    # -- output -----------------------------------------------------------------------

    def python(self, *, header: bool = True) -> str:
        """The plan as labkit code that builds the same lab."""
        lines = ["from labkit import Lab", "", f"lab = Lab({_literal(self.name)})"] if header else []
        lines += [step.python() for step in self.steps]
        return "\n".join(lines)

    def ip_commands(self) -> str:
        """The plan as iproute2 commands (run as root on a Linux machine)."""
        lines: list[str] = []
        for step in self.steps:
            lines += step.ip()
        return "\n".join(lines)

    def describe(self) -> dict[str, Any]:
        """The planned topology in :meth:`labkit.Lab.describe`'s shape (for diagrams)."""
        nodes = [{
            "name": n.name, "kind": n.kind,
            "interfaces": [{"name": i, "addresses": list(n.addresses.get(i, []))}
                           for i in n.ifnames if i != "lo"],
        } for n in self.nodes.values()]
        links = [{"a": a, "a_ifname": ai, "b": b, "b_ifname": bi} for a, ai, b, bi in self.links]
        return {"name": self.name, "nodes": nodes, "links": links}

    def apply(self, lab: "Lab", progress: Callable[[int, Step], None] | None = None) -> None:
        """Build the plan in ``lab``, one step at a time; ``progress(i, step)`` before each."""
        for i, step in enumerate(self.steps):
            if progress is not None:
                progress(i, step)
            try:
                step.apply(lab)
            except Exception as exc:  # noqa: BLE001 - re-raised with the step attached
                exc.step = step  # type: ignore[attr-defined]
                raise
