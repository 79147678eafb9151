"""A node: one network namespace of a lab (a host, a container, a router or a switch).

Every method changes or reads the real kernel state of that namespace through the
lab's supervisor, and returns only once the kernel has done it. The equivalent
iproute2 command is given in each docstring, so students can map one to the other.
"""

from __future__ import annotations

import base64
import shlex
from typing import TYPE_CHECKING, Any, Sequence

from . import validate
from .errors import DuplicateName, InvalidTopology, NotFound
from .model import Address, FdbEntry, Interface, Neighbour, Route, records
from .process import Process
from .results import CommandResult, Hop, PingResult, parse_ping, parse_traceroute

if TYPE_CHECKING:
    from .capture import Capture
    from .lab import Lab

KINDS = validate.NODE_KINDS


class Node:
    """A network namespace in a :class:`~labkit.Lab`. Create with ``lab.add_host(...)`` etc."""

    def __init__(self, lab: "Lab", name: str, kind: str) -> None:
        self.lab = lab
        self.name = name
        self.kind = kind
        self._ifnames: set[str] = {"lo"}
        self._next_eth = 0

    def __repr__(self) -> str:
        return f"<Node {self.name} ({self.kind})>"

    def _call(self, op: str, **args: Any) -> Any:
        return self.lab._call(op, node=self.name, **args)

    def _next_ifname(self) -> str:
        while f"eth{self._next_eth}" in self._ifnames:
            self._next_eth += 1
        return f"eth{self._next_eth}"

    def _claim(self, ifname: str) -> str:
        validate.ifname(ifname)
        if ifname in self._ifnames:
            raise DuplicateName(f"interface {ifname!r} already exists on node {self.name!r}",
                                obj=f"{self.name}:{ifname}", op="create interface",
                                remedy="choose another name, or delete the existing one")
        return ifname

    # -- devices ------------------------------------------------------------------------

    def add_bridge(self, name: str, *, address: str | None = None, mtu: int | None = None,
                   mac: str | None = None, up: bool = True) -> str:
        """A Linux bridge in this node. ``ip link add NAME type bridge; ip link set NAME up``."""
        self._claim(name)
        self._call("add_bridge", name=name, mtu=None if mtu is None else validate.mtu(mtu),
                   mac=None if mac is None else validate.mac(mac),
                   up=validate.flag(up, what="up", op="add bridge"))
        self._ifnames.add(name)
        if address is not None:
            self.add_address(name, address)
        return name

    def add_vxlan(self, name: str, vni: int, *, group: str | None = None,
                  remote: str | None = None, local: str | None = None, dev: str | None = None,
                  port: int = 4789, learning: bool = True, ttl: int | None = None,
                  mtu: int | None = None, mac: str | None = None, bridge: str | None = None,
                  up: bool = True) -> str:
        """A VXLAN device.

        ``ip link add NAME type vxlan id VNI [group G | remote R] [local L] dev DEV dstport PORT``
        """
        self._claim(name)
        validate.vni(vni, op="add vxlan")
        if group is not None and remote is not None:
            raise InvalidTopology("a VXLAN device takes a multicast group or a unicast remote, not both",
                                  obj=name, op="add vxlan", remedy="pass only one of group= and remote=")
        if group is not None and not validate.address(group).is_multicast:
            raise validate.InvalidAddress(f"VXLAN group {group!r} is not a multicast address",
                                          obj=group, op="add vxlan",
                                          remedy="use an address in 239.0.0.0/8 (or remote= for unicast)")
        if remote is not None:
            validate.address(remote)
        if local is not None:
            validate.address(local)
        validate.udp_port(port, op="add vxlan")
        self._call("add_vxlan", name=name, vni=vni, group=group, remote=remote, local=local,
                   dev=None if dev is None else validate.ifname(dev), port=port,
                   learning=validate.flag(learning, what="learning", op="add vxlan"),
                   ttl=validate.ip_ttl(ttl, "add vxlan"),
                   mtu=None if mtu is None else validate.mtu(mtu),
                   mac=None if mac is None else validate.mac(mac),
                   bridge=None if bridge is None else validate.ifname(bridge),
                   up=validate.flag(up, what="up", op="add vxlan"))
        self._ifnames.add(name)
        return name

    def set_link(self, ifname: str, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, name: str | None = None) -> None:
        """Change an interface. ``ip link set IF [up|down] [mtu N] [address MAC] [name NEW]``."""
        validate.ifname(ifname)
        if name is not None:
            self._claim(name)
        if up is not None:
            validate.flag(up, what="up", op="set link")
        self._call("set_link", ifname=ifname, up=up,
                   mtu=None if mtu is None else validate.mtu(mtu),
                   mac=None if mac is None else validate.mac(mac), new_name=name)
        if name is not None:
            self._ifnames.discard(ifname)
            self._ifnames.add(name)

    def set_up(self, ifname: str) -> None:
        """``ip link set IF up``"""
        self.set_link(ifname, up=True)

    def set_down(self, ifname: str) -> None:
        """``ip link set IF down``"""
        self.set_link(ifname, up=False)

    def attach(self, ifname: str, bridge: str) -> None:
        """Make ``ifname`` a port of ``bridge``. ``ip link set IF master BRIDGE``."""
        self._call("set_link", ifname=validate.ifname(ifname), master=validate.ifname(bridge))

    def detach(self, ifname: str) -> None:
        """Release ``ifname`` from its bridge. ``ip link set IF nomaster``."""
        self._call("set_link", ifname=validate.ifname(ifname), release=True)

    def delete_link(self, ifname: str) -> None:
        """Delete an interface (both ends of a veth go). ``ip link del IF``."""
        self._call("del_link", ifname=validate.ifname(ifname))
        self._ifnames.discard(ifname)

    def move_link(self, ifname: str, to: "Node | str", *, name: str | None = None) -> str:
        """Move an interface into another node. ``ip link set IF netns OTHER [name NEW]``."""
        target = self.lab.node(to)
        validate.ifname(ifname)
        final = target._claim(ifname if name is None else name)
        self._call("move_link", ifname=ifname, target=target.name, new_name=name)
        self._ifnames.discard(ifname)
        target._ifnames.add(final)
        return final

    # -- addresses and routes ------------------------------------------------------------

    def add_address(self, ifname: str, cidr: str) -> None:
        """``ip addr add CIDR dev IF``"""
        iface = validate.interface_address(cidr)
        self._call("address", ifname=validate.ifname(ifname), add=True, ip=str(iface.ip),
                   prefixlen=iface.network.prefixlen)

    def del_address(self, ifname: str, cidr: str) -> None:
        """``ip addr del CIDR dev IF``"""
        iface = validate.interface_address(cidr)
        self._call("address", ifname=validate.ifname(ifname), add=False, ip=str(iface.ip),
                   prefixlen=iface.network.prefixlen)

    def add_route(self, dst: str, *, via: str | None = None, dev: str | None = None,
                  onlink: bool = False, metric: int | None = None, kind: str = "unicast",
                  src: str | None = None, table: int = 254, replace: bool = False) -> None:
        """Add a route.

        ``ip route add DST [via GW] [dev IF] [onlink] [metric N]``; ``kind="blackhole"``
        gives ``ip route add blackhole DST``. ``dst`` may be ``"default"``.
        """
        self._route(True, dst, via=via, dev=dev, onlink=onlink, metric=metric, kind=kind,
                    src=src, table=table, replace=replace)

    def del_route(self, dst: str, *, via: str | None = None, dev: str | None = None,
                  metric: int | None = None, kind: str = "unicast", table: int = 254) -> None:
        """``ip route del DST [via GW] [dev IF]``"""
        self._route(False, dst, via=via, dev=dev, onlink=False, metric=metric, kind=kind,
                    src=None, table=table, replace=False)

    def _route(self, add: bool, dst: str, *, via: str | None, dev: str | None, onlink: bool,
               metric: int | None, kind: str, src: str | None, table: int, replace: bool) -> None:
        op = "add route" if add else "delete route"
        net = validate.network(dst)
        validate.route_metric(metric, op)
        validate.route_table(table, op)
        validate.flag(onlink, what="onlink", op=op)
        validate.flag(replace, what="replace", op=op)
        if dev is not None:
            validate.ifname(dev)
        if via is not None:
            gw = validate.address(via)
            if gw.version != net.version:
                raise validate.InvalidAddress(
                    f"gateway {via} and destination {dst} are different IP versions",
                    obj=f"{self.name} route {dst}", op="add route",
                    remedy="use an IPv4 gateway for an IPv4 route (and IPv6 for IPv6)")
        if onlink and dev is None:
            raise InvalidTopology("an onlink route needs the device it leaves by",
                                  obj=f"{self.name} route {dst}", op="add route",
                                  remedy="pass dev=..., e.g. dev='flannel.1'")
        if kind not in ("unicast", "blackhole", "unreachable", "prohibit"):
            raise InvalidTopology(f"route kind {kind!r} is not known", obj=kind, op="add route",
                                  remedy="use unicast, blackhole, unreachable or prohibit")
        if kind == "unicast" and add and via is None and dev is None:
            raise InvalidTopology(f"route to {dst} on {self.name!r} has neither via= nor dev=",
                                  obj=f"{self.name} route {dst}", op="add route",
                                  remedy="say where it goes: via='GATEWAY' and/or dev='IFACE'")
        self._call("route", add=add, dst=str(net), via=via, dev=dev, onlink=onlink,
                   metric=metric, kind=kind, table=table,
                   src=None if src is None else str(validate.address(src)), replace=replace)

    def add_neighbour(self, ifname: str, ip: str, mac: str) -> None:
        """A permanent ARP/NDP entry. ``ip neigh add IP lladdr MAC dev IF``."""
        self._call("neighbour", ifname=validate.ifname(ifname), add=True,
                   ip=str(validate.address(ip)),
                   lladdr=validate.mac(mac))

    def del_neighbour(self, ifname: str, ip: str) -> None:
        """``ip neigh del IP dev IF``"""
        self._call("neighbour", ifname=validate.ifname(ifname), add=False,
                   ip=str(validate.address(ip)), lladdr=None)

    def add_fdb(self, ifname: str, mac: str, *, dst: str | None = None, master: bool = False) -> None:
        """A bridge FDB entry. ``bridge fdb append MAC dev IF [dst IP]`` (``self`` unless master)."""
        self._fdb(True, ifname, mac, dst, master)

    def del_fdb(self, ifname: str, mac: str, *, dst: str | None = None, master: bool = False) -> None:
        """``bridge fdb del MAC dev IF [dst IP]``"""
        self._fdb(False, ifname, mac, dst, master)

    def _fdb(self, add: bool, ifname: str, mac: str, dst: str | None, master: bool) -> None:
        op = "add fdb entry" if add else "delete fdb entry"
        self._call("fdb", ifname=validate.ifname(ifname), add=add, mac=validate.fdb_mac(mac),
                   dst=None if dst is None else str(validate.address(dst)),
                   master=validate.flag(master, what="master", op=op))

    # -- settings -----------------------------------------------------------------------

    def set_forwarding(self, on: bool = True) -> None:
        """Route packets between interfaces. ``sysctl -w net.ipv4.ip_forward=1``."""
        self._call("set_forwarding", on=bool(on))

    def set_sysctl(self, key: str, value: int | str) -> None:
        """``sysctl -w KEY=VALUE`` inside this node."""
        if isinstance(value, bool):
            value = int(value)
        text = validate.text(str(value) if isinstance(value, int) else value,
                             what=f"value of sysctl {key}", op="set sysctl")
        self._call("set_sysctl", key=validate.sysctl_key(key), value=text)

    def get_sysctl(self, key: str) -> str:
        """``sysctl -n KEY`` inside this node."""
        return str(self._call("get_sysctl", key=validate.sysctl_key(key, op="read sysctl")))

    # -- inspection ----------------------------------------------------------------------

    def interfaces(self) -> list[Interface]:
        """``ip -j link``"""
        return records(Interface, self._call("inspect", what="links"))

    def interface(self, ifname: str) -> Interface:
        for iface in self.interfaces():
            if iface.ifname == ifname:
                return iface
        raise NotFound(f"interface {ifname!r} does not exist on node {self.name!r}",
                       obj=f"{self.name}:{ifname}", op="find interface",
                       remedy="list them with node.interfaces()")

    def addresses(self, ifname: str | None = None) -> list[Address]:
        """``ip -j addr [show dev IF]``"""
        rows = records(Address, self._call("inspect", what="addresses"))
        return [a for a in rows if ifname is None or a.ifname == ifname]

    def routes(self, family: str | None = None) -> list[Route]:
        """``ip -j route`` and ``ip -j -6 route`` (main table)."""
        rows = records(Route, self._call("inspect", what="routes"))
        return [r for r in rows if family is None or r.family == family]

    def neighbours(self) -> list[Neighbour]:
        """``ip -j neigh``"""
        return records(Neighbour, self._call("inspect", what="neighbours"))

    def fdb(self, ifname: str | None = None) -> list[FdbEntry]:
        """``bridge -j fdb show``"""
        rows = records(FdbEntry, self._call("inspect", what="fdb"))
        return [e for e in rows if ifname is None or e.ifname == ifname or e.master == ifname]

    def bridge_ports(self, bridge: str) -> list[str]:
        """Names of the interfaces enslaved to ``bridge``. ``bridge link show``."""
        return [i.ifname for i in self.interfaces() if i.master == bridge]

    # -- processes -----------------------------------------------------------------------

    @staticmethod
    def _argv(cmd: str | Sequence[str]) -> list[str]:
        if isinstance(cmd, str):
            argv: list[object] = list(shlex.split(validate.text(cmd, what="command", op="run command")))
        elif isinstance(cmd, (bytes, bytearray)) or not isinstance(cmd, Sequence):
            raise InvalidTopology(f"command {cmd!r} is neither a string nor a list of words",
                                  obj=repr(cmd), op="run command",
                                  remedy="pass 'ping -c 1 10.0.0.2' or ['ping', '-c', '1', '10.0.0.2']")
        else:
            argv = [a if isinstance(a, str) else str(a) for a in cmd]
        return validate.command(argv)

    def run(self, cmd: str | Sequence[str], *, timeout: float | None = 60.0, check: bool = False,
            env: dict[str, str] | None = None,
            input: str | bytes | None = None) -> CommandResult:  # noqa: A002 - subprocess's word
        """Run a command in this node and wait for it. ``ip netns exec NODE CMD``.

        ``input`` is written to the command's standard input: text (as UTF-8) or bytes.
        """
        argv = self._argv(cmd)
        validate.seconds(timeout, what="timeout", op="run command")
        validate.flag(check, what="check", op="run command")
        status = self._call("run", argv=argv, timeout=timeout,
                            env=validate.environment(env), **_stdin(input))
        if status.get("timed_out"):
            from .errors import CommandTimeout
            raise CommandTimeout(f"`{' '.join(argv)}` on node {self.name!r} ran longer than "
                                 f"{timeout} s and was killed", obj=self.name, op=" ".join(argv),
                                 remedy="raise timeout=, or make the command finish sooner")
        result = CommandResult(argv, status["returncode"], status["stdout"], status["stderr"],
                               node=self.name, truncated=status["truncated"])
        return result.check() if check else result

    def spawn(self, cmd: str | Sequence[str], *, env: dict[str, str] | None = None) -> Process:
        """Start a long-running process in this node; it ends with the lab at the latest."""
        argv = self._argv(cmd)
        reply = self._call("spawn", argv=argv, env=validate.environment(env, op="spawn process"))
        return Process(self, argv, int(reply["pid"]))

    def ping(self, dst: str, *, count: int = 3, interval: float = 0.2, wait: float = 1.0,
             size: int | None = None, ttl: int | None = None, record_route: bool = False,
             source: str | None = None) -> PingResult:
        """``ping -n -c COUNT -i INTERVAL -W WAIT DST``; never raises for lost packets."""
        target = str(validate.address(dst))
        validate.integer(count, 1, 1_000_000, what="ping count", op="ping",
                         remedy="send at least 1 echo request (count=3 is the default)")
        validate.seconds(interval, what="interval", op="ping", allow_none=False, allow_zero=True)
        validate.seconds(wait, what="wait", op="ping", allow_none=False)
        if size is not None:
            validate.integer(size, 0, 65507, what="ping size", op="ping",
                             remedy="an ICMP payload is 0 to 65507 bytes (56 by default)")
        validate.ip_ttl(ttl, "ping")
        validate.flag(record_route, what="record_route", op="ping")
        if source is not None:
            source = str(validate.address(source)) if _looks_like_address(source) \
                else validate.ifname(source)
        argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait)]
        if size is not None:
            argv += ["-s", str(size)]
        if ttl is not None:
            argv += ["-t", str(ttl)]
        if record_route:
            argv.append("-R")
        if source is not None:
            argv += ["-I", source]
        argv.append(target)
        result = self.run(argv, timeout=count * max(interval, 0.01) + wait + 10)
        return parse_ping(result.stdout + result.stderr, target, self.name)

    def traceroute(self, dst: str, *, max_hops: int = 10, wait: float = 1.0,
                   queries: int = 1, icmp: bool = False) -> list[Hop]:
        """``traceroute -n -m MAX -w WAIT -q QUERIES DST``"""
        target = str(validate.address(dst))
        validate.integer(max_hops, 1, 255, what="max_hops", op="traceroute",
                         remedy="use 1 to 255 (the TTL's range)")
        validate.seconds(wait, what="wait", op="traceroute", allow_none=False)
        validate.integer(queries, 1, 10, what="queries", op="traceroute",
                         remedy="send 1 to 10 probes per hop")
        validate.flag(icmp, what="icmp", op="traceroute")
        argv = ["traceroute", "-n", "-m", str(max_hops), "-w", str(wait), "-q", str(queries)]
        if icmp:
            argv.append("-I")
        argv.append(target)
        result = self.run(argv, timeout=max_hops * queries * (wait + 1) + 10)
        if result.returncode != 0 and not result.stdout:
            result.check()
        return parse_traceroute(result.stdout)

    def capture(self, ifname: str, *, filter: str | None = None, count: int | None = None,
                duration: float | None = None, path: str | None = None) -> "Capture":
        """Capture packets on one of this node's interfaces (use it in a ``with`` block).

        ``tcpdump -i IF -w FILE [FILTER]`` inside the node; see :class:`labkit.capture.Capture`.
        """
        from .capture import Capture

        return Capture(self, ifname, filter=filter, count=count, duration=duration, path=path)

    def nft(self, script: str) -> CommandResult:
        """Load an nftables script in this node. ``nft -f -``."""
        return self.run(["nft", "-f", "-"], input=script, check=True)

    def iptables(self, *args: str, ipv6: bool = False) -> CommandResult:
        """``iptables ARGS...`` in this node (the nft-based iptables)."""
        tool = "ip6tables" if ipv6 else "iptables"
        return self.run([tool, *args], check=True)


def _stdin(data: object) -> dict[str, str | None]:
    """A command's input as the supervisor takes it: text as is, bytes as base64."""
    if data is None:
        return {"stdin": None}
    if isinstance(data, (bytes, bytearray, memoryview)):
        return {"stdin_b64": base64.b64encode(bytes(data)).decode()}
    if isinstance(data, str):
        return {"stdin": validate.text(data, what="input", op="run command")}
    raise InvalidTopology(f"input of type {type(data).__name__} cannot be fed to a command",
                          obj=repr(data)[:80], op="run command",
                          remedy="pass text (str) or bytes")


def _looks_like_address(text: str) -> bool:
    """An IP address rather than an interface name (``ping -I`` takes either)."""
    return isinstance(text, str) and (":" in text or text.replace(".", "").isdigit())
