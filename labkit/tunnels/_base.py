"""What every tunnel kind shares: the :class:`Tunnel` handle, checks, and small helpers."""

from __future__ import annotations

import errno
import ipaddress
import json
import shlex
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import validate
from ..errors import (
    CommandFailed,
    CommandTimeout,
    DuplicateName,
    InvalidAddress,
    InvalidTopology,
    KernelError,
    NotFound,
)

if TYPE_CHECKING:
    from ..node import Node
    from ..process import Process

IMPLEMENTATIONS = ("auto", "kernel", "userspace")

#: Bytes a tunnel adds to each inner IPv4 packet on an IPv4 underlay (outer headers,
#: plus the inner Ethernet header for the layer-2 tunnels).
OVERHEAD = {
    "vxlan": 20 + 8 + 8 + 14,   # outer IPv4, UDP, VXLAN header, inner Ethernet = 50
    "gretap": 20 + 4 + 14,      # outer IPv4, GRE (+4 with a key), inner Ethernet = 38
    "gre": 20 + 4,              # outer IPv4, GRE (+4 with a key) = 24
    "udp": 20 + 8,              # outer IPv4, UDP = 28 (flannel's udp backend)
}

DAEMON_READY_TIMEOUT = 15.0
COUNTER_TIMEOUT = 5.0


# -- checks ------------------------------------------------------------------------------

def check_vni(vni: object) -> int:
    return validate.vni(vni, op="create vxlan tunnel")


def check_key(key: object) -> int | None:
    if key is None:
        return None
    return validate.integer(key, 0, 2 ** 32 - 1, what="GRE key", op="create gre tunnel",
                            remedy="a GRE key (RFC 2890) is 32 bits: 0 to 4294967295, or None for no key")


def check_ttl(ttl: object) -> int | None:
    if ttl is None:
        return None
    return validate.integer(ttl, 1, 255, what="TTL", op="create tunnel",
                            remedy="use 1 to 255, or None for the default (64)")


def check_port(port: object, op: str) -> int:
    return validate.udp_port(port, op)


def check_choice(value: str, choices: Sequence[str], what: str, op: str) -> str:
    if value not in choices:
        raise InvalidTopology(f"{what} {value!r} is not known", obj=repr(value), op=op,
                              remedy=f"use one of {', '.join(map(repr, choices))}")
    return value


def ipv4(value: object, what: str, op: str) -> str:
    """An IPv4 address in normal form (the tunnels here run over IPv4 underlays)."""
    addr = validate.address(str(value))
    if addr.version != 4:
        raise InvalidAddress(f"{what} {value!r} is not an IPv4 address", obj=repr(value), op=op,
                             remedy="these tunnels run over an IPv4 underlay: give an IPv4 address")
    return str(addr)


def claim(node: Node, name: str) -> str:
    """Check that ``name`` is a valid, free interface name on ``node`` (nothing is created)."""
    validate.ifname(name)
    return node._claim(name)


def record(node: Node, name: str) -> None:
    node._ifnames.add(name)


def forget(node: Node, name: str) -> None:
    node._ifnames.discard(name)


def check_local(node: Node, local: str, op: str) -> str:
    """``local`` must be one of the node's own addresses."""
    mine = [a for a in node.addresses() if a.local == local]
    if not mine:
        have = ", ".join(a.cidr for a in node.addresses() if a.scope == "global") or "none"
        raise InvalidAddress(f"local address {local} is not an address of node {node.name!r} "
                             f"(it has: {have})", obj=f"{node.name} local {local}", op=op,
                             remedy="give the underlay address of this host, or leave local= out "
                                    "to use the one the route to the remote picks")
    return local


def route_to(node: Node, remote: str, op: str) -> dict[str, Any]:
    """``ip -j route get REMOTE`` in ``node``; a remote it cannot reach is refused."""
    result = node.run(["ip", "-j", "route", "get", remote])
    info: dict[str, Any] = {}
    if result.ok:
        try:
            info = (json.loads(result.stdout) or [{}])[0]
        except ValueError:
            info = {}
    kind = info.get("type", "unicast" if result.ok else "unreachable")
    if not result.ok or kind in ("unreachable", "blackhole", "prohibit", "throw"):
        why = result.stderr.strip().replace("RTNETLINK answers: ", "") or kind
        raise NotFound(f"remote {remote} is unknown to node {node.name!r}: no route to it (ip route get: {why})",
                       obj=f"{node.name} remote {remote}", op=op,
                       remedy="give this host an underlay address on the remote's subnet (or a "
                              "route to it) before creating the tunnel, and check the address")
    if kind == "local":
        raise InvalidTopology(f"remote {remote} is an address of node {node.name!r} itself",
                              obj=f"{node.name} remote {remote}", op=op,
                              remedy="the remote is the other host's underlay address")
    return info


def underlay(node: Node, remote: str | None, local: str | None, dev: str | None,
             op: str) -> tuple[str, str | None]:
    """Fill in (local, dev) the way the kernel would pick them for ``remote``."""
    if local is not None:
        check_local(node, local, op)
    if remote is not None:
        info = route_to(node, remote, op)
        local = local or info.get("prefsrc")
        dev = dev or info.get("dev")
    if dev is not None:
        node.interface(dev)  # NotFound with the node's interfaces as remedy
    if local is None and dev is not None:
        found = [a.local for a in node.addresses(dev) if a.scope == "global" and ":" not in a.local]
        local = found[0] if found else None
    if local is None:
        raise InvalidTopology(f"cannot tell which underlay address node {node.name!r} should use",
                              obj=node.name, op=op,
                              remedy="pass local='ADDRESS' (this host's address on the underlay)")
    return local, dev


def mtu_for(node: Node, dev: str | None, overhead: int, mtu: int | None, op: str) -> int:
    """The inner MTU: the underlay device's MTU minus the tunnel's overhead, unless given."""
    if mtu is not None:
        return validate.mtu(mtu)
    base = 1500
    if dev is not None:
        base = node.interface(dev).mtu or 1500
    return validate.mtu(base - overhead)


# -- running commands ---------------------------------------------------------------------

def ip_batch(node: Node, commands: Sequence[str], *, obj: str, op: str) -> None:
    """Run iproute2 commands (``ip -batch -``) in ``node``; translate the usual failures."""
    script = "".join((c.removeprefix("ip ")) + "\n" for c in commands)
    result = node.run(["ip", "-batch", "-"], input=script)
    if result.ok:
        return
    text = (result.stderr or result.stdout).strip()
    if "File exists" in text:
        raise DuplicateName(f"{op} on node {node.name!r}: {obj} already exists ({text})",
                            obj=obj, op=op, remedy="choose another name, or delete the old device")
    if "Cannot find device" in text or "does not exist" in text:
        raise NotFound(f"{op} on node {node.name!r}: {text}", obj=obj, op=op,
                       remedy="check the interface names with node.interfaces()")
    raise KernelError(f"{op} on node {node.name!r} failed: {text}", errno=errno.EINVAL, obj=obj,
                      op=op, remedy="run the same `ip` commands (tunnel.commands) by hand to see why")


def command_text(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


# -- the handle --------------------------------------------------------------------------

class Tunnel:
    """One end of a tunnel, in one host node.

    Made by :func:`~labkit.tunnels.vxlan_group`, :func:`~labkit.tunnels.vxlan_unicast`,
    :func:`~labkit.tunnels.vxlan_l3`, :func:`~labkit.tunnels.gretap`,
    :func:`~labkit.tunnels.gre` and :func:`~labkit.tunnels.udp_encap`; a two-host tunnel
    is two of them, one per host, exactly as one types ``ip link add ...`` on each host.

    Attributes worth showing a student:

    * ``kind`` (``"vxlan"``, ``"gretap"``, ``"gre"``, ``"udp"``) and ``mode`` (VXLAN:
      ``"group"``, ``"unicast"``, ``"l3"``);
    * ``implementation``: ``"kernel"`` (a kernel device does the work) or ``"userspace"``
      (a daemon in the node does it: ``process``), and ``device_type``: what the student's
      device really is (``"vxlan"``, ``"gretap"``, ``"veth"``, ``"tun"``, ``"tap"``);
    * ``name`` (the device to capture on, attach, route through), ``devices`` (every
      interface made), ``mtu``, ``overhead`` (bytes added per packet), ``local``,
      ``remote``/``remotes``/``group``, ``vni``/``key``, ``port``;
    * ``commands``: the iproute2 commands that built it (and the daemon's command line).
    """

    def __init__(self, node: Node, *, kind: str, name: str, implementation: str,
                 device_type: str, local: str, mtu: int, overhead: int,
                 mode: str | None = None, remote: str | None = None, group: str | None = None,
                 vni: int | None = None, key: int | None = None, port: int | None = None,
                 dev: str | None = None, subnet: str | None = None, address: str | None = None,
                 ttl: int | None = None) -> None:
        self.node = node
        self.kind = kind
        self.mode = mode
        self.name = name
        self.implementation = implementation
        self.device_type = device_type
        self.local = local
        self.remote = remote
        self.remotes: list[str] = [remote] if remote else []
        self.group = group
        self.vni = vni
        self.key = key
        self.port = port
        self.dev = dev
        self.ttl = ttl
        self.mtu = mtu
        self.overhead = overhead
        self.subnet = subnet
        self.address = address
        self.mac: str | None = None
        self.devices: list[str] = [name]
        self.commands: list[str] = []
        self.peers: dict[str, str] = {}  # subnet -> underlay address (routed kinds)
        self._vtep_macs: dict[str, str] = {}  # subnet -> MAC of that host's device (vxlan l3)
        self.process: Process | None = None
        #: extra daemon arguments, e.g. ``["--workers", "2"]`` (then :meth:`restart`)
        self.daemon_options: list[str] = []
        self._port_spec: str | None = None
        self._deleted = False

    # -- description ---------------------------------------------------------------

    def __repr__(self) -> str:
        far = self.group or self.remote or (",".join(self.remotes) if self.remotes else None)
        ident = (f" vni {self.vni}" if self.vni is not None else "") + \
                (f" key {self.key}" if self.key is not None else "")
        how = self.implementation + ("" if self.process is None else
                                     f", daemon pid {self.process.pid}")
        return (f"<Tunnel {self.kind}{'/' + self.mode if self.mode else ''} {self.node.name}:"
                f"{self.name}{ident} {self.local} -> {far or 'peers'} ({how}, {self.device_type}, "
                f"mtu {self.mtu})>")

    def describe(self) -> dict[str, Any]:
        """Plain data about this end, for a table or a diagram."""
        return {
            "node": self.node.name, "name": self.name, "kind": self.kind, "mode": self.mode,
            "implementation": self.implementation, "device_type": self.device_type,
            "local": self.local, "remote": self.remote, "remotes": list(self.remotes),
            "group": self.group, "vni": self.vni, "key": self.key, "port": self.port,
            "dev": self.dev, "mtu": self.mtu, "overhead": self.overhead, "subnet": self.subnet,
            "address": self.address, "mac": self.mac, "devices": list(self.devices),
            "peers": dict(self.peers),
            "daemon_pid": None if self.process is None else self.process.pid,
            "running": self.running,
        }

    def _repr_markdown_(self) -> str:
        rows = [(k, v) for k, v in self.describe().items() if v not in (None, [], {})]
        body = "\n".join(f"| {k} | `{v}` |" for k, v in rows)
        return f"| tunnel end | |\n|---|---|\n{body}\n"

    # -- the daemon ----------------------------------------------------------------

    def _daemon_argv(self) -> list[str]:
        assert self._port_spec is not None
        argv = [sys.executable, "-m", "labkit.tunnels.daemon",
                "--encap", "udp" if self.kind == "udp" else "gre",
                "--device", self.name, "--port", self._port_spec, "--local", self.local]
        if self.kind == "udp":
            argv += ["--udp-port", str(self.port)]
            for subnet, host in sorted(self.peers.items()):
                argv += ["--peer", f"{subnet}={host}"]
        else:
            argv += ["--remote", str(self.remote),
                     "--proto", "0x6558" if self.kind == "gretap" else "0x0800"]
            if self.key is not None:
                argv += ["--key", str(self.key)]
        if self.ttl is not None:
            argv += ["--ttl", str(self.ttl)]
        return argv + list(self.daemon_options)

    def _spawn(self) -> None:
        argv = self._daemon_argv()
        proc = self.node.spawn(argv)
        try:
            proc.wait_for_output("ready", timeout=DAEMON_READY_TIMEOUT)
        except CommandTimeout as exc:
            proc.stop()
            raise CommandFailed(
                f"the {self.kind} tunnel daemon for {self.node.name}:{self.name} did not start: "
                f"{exc.message}", returncode=proc.returncode if proc.returncode is not None else -1,
                stdout=proc.stdout_text(), stderr=proc.stderr_text(),
                obj=f"{self.node.name}:{self.name}", op="start tunnel daemon",
                remedy="read its stderr (tunnel.process.stderr_text()); `labkit doctor` lists "
                       "what this host allows") from None
        self.process = proc
        text = command_text(["python", *argv[1:]])
        self.commands = [c for c in self.commands if not c.startswith("python -m labkit.tunnels")]
        self.commands.append(text + " &")

    @property
    def running(self) -> bool:
        """True while packets can pass: the daemon runs (userspace), or the device is up (kernel)."""
        if self._deleted or self.node.lab.closed:
            return False
        if self.implementation == "userspace":
            return self.process is not None and self.process.running
        return self.node.interface(self.name).up

    def stop(self) -> None:
        """Stop carrying packets: stop the daemon (userspace) or ``ip link set NAME down`` (kernel).

        The devices and addresses stay. Setting a kernel device down also makes the
        kernel remove the routes through it (as it always does); :meth:`start` puts back
        the ones this tunnel wrote (:meth:`add_peer`), not routes added by hand.
        """
        self._alive("stop tunnel")
        if self.implementation == "userspace":
            if self.process is not None and self.process.running:
                self.process.stop()
        else:
            self.node.set_link(self.name, up=False)

    def start(self) -> None:
        """Carry packets again after :meth:`stop` (a new daemon, or ``ip link set NAME up``)."""
        self._alive("start tunnel")
        if self.implementation == "userspace":
            if self.process is None or not self.process.running:
                self._spawn()
        else:
            self.node.set_link(self.name, up=True)
            if self.kind == "vxlan" and self.mode == "l3":  # down flushed routes and neighbours
                for subnet, mac in self._vtep_macs.items():
                    gw = str(ipaddress.ip_network(subnet).network_address)
                    self.node.add_neighbour(self.name, gw, mac)
                    self.node.add_route(subnet, via=gw, dev=self.name, onlink=True, replace=True)

    def restart(self) -> None:
        """:meth:`stop`, then :meth:`start` (a userspace daemon rereads its peers)."""
        self.stop()
        self.start()

    def delete(self) -> None:
        """Stop the daemon (if any) and delete every device this tunnel made."""
        if self._deleted:
            return
        if self.process is not None and not self.node.lab.closed and self.process.running:
            self.process.stop()
        for dev in self.devices:
            if any(i.ifname == dev for i in self.node.interfaces()):
                self.node.delete_link(dev)
            forget(self.node, dev)
        self._deleted = True

    def _alive(self, op: str) -> None:
        if self._deleted:
            raise NotFound(f"tunnel {self.node.name}:{self.name} was deleted", obj=self.name, op=op,
                           remedy="create a new tunnel")

    # -- peers (what a control plane writes) ----------------------------------------

    def add_peer(self, underlay: str, *, subnet: str | None = None,
                 vtep_mac: str | None = None, restart: bool = True) -> None:
        """Tell this end about another host, as a control plane (flanneld, weave) would.

        * unicast VXLAN: one more remote VTEP to flood to
          (``bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst UNDERLAY``);
        * routed VXLAN (:func:`vxlan_l3`): the other host's ``subnet`` and its device's
          ``vtep_mac`` give an onlink route, a permanent neighbour and an FDB entry;
        * UDP encapsulation: ``subnet`` is reached through ``underlay``; the daemon is
          restarted to read its new table (unless ``restart=False``), as flanneld
          rereads leases.

        Point-to-point kinds (GRE, gretap) and group-mode VXLAN take no peers.
        """
        op = "add tunnel peer"
        self._alive(op)
        far = ipv4(underlay, "peer underlay address", op)
        if far == self.local:
            raise InvalidTopology(f"peer {far} is this end's own underlay address",
                                  obj=f"{self.node.name}:{self.name}", op=op,
                                  remedy="give the other host's underlay address")
        routed = self.kind == "udp" or (self.kind == "vxlan" and self.mode == "l3")
        if not routed and not (self.kind == "vxlan" and self.mode == "unicast"):
            raise InvalidTopology(
                f"a {self.kind}{'/' + self.mode if self.mode else ''} tunnel takes no peers",
                obj=f"{self.node.name}:{self.name}", op=op,
                remedy="point-to-point tunnels have one remote: create one tunnel per pair of hosts;"
                       " group-mode VXLAN finds its peers through the multicast group")
        route_to(self.node, far, op)
        if not routed:
            if far in self.remotes:
                raise DuplicateName(f"remote {far} is already a peer of {self.node.name}:{self.name}",
                                    obj=far, op=op, remedy="nothing to do")
            self.node.add_fdb(self.name, "00:00:00:00:00:00", dst=far)
            self.remotes.append(far)
            self.commands.append(f"bridge fdb append 00:00:00:00:00:00 dev {self.name} dst {far}")
            return
        if subnet is None:
            raise InvalidTopology(f"a peer of the routed {self.kind} tunnel {self.name} needs its subnet",
                                  obj=far, op=op, remedy="pass subnet='10.4.2.0/24' (the other host's lease)")
        net = network_of(subnet, "peer subnet", op)
        own = network_of(self.subnet, "subnet", op) if self.subnet else None
        if own is not None and net.overlaps(own):
            raise InvalidTopology(f"peer subnet {net} overlaps this host's own subnet {own}",
                                  obj=str(net), op=op, remedy="each host leases a different subnet")
        if str(net) in self.peers:
            raise DuplicateName(f"subnet {net} already has a peer ({self.peers[str(net)]})",
                                obj=str(net), op=op, remedy="nothing to do, or delete the tunnel first")
        if self.kind == "vxlan":
            if vtep_mac is None:
                raise InvalidTopology(f"a peer of the routed VXLAN tunnel {self.name} needs vtep_mac",
                                      obj=far, op=op,
                                      remedy="pass the MAC address of the other host's device "
                                             "(its Tunnel.mac), or use labkit.tunnels.connect()")
            mac = validate.mac(vtep_mac)
            gw = str(net.network_address)
            self.node.add_route(str(net), via=gw, dev=self.name, onlink=True)
            self.node.add_neighbour(self.name, gw, mac)
            self.node.add_fdb(self.name, mac, dst=far)
            self._vtep_macs[str(net)] = mac
            self.commands += [f"ip route add {net} via {gw} dev {self.name} onlink",
                              f"ip neigh add {gw} lladdr {mac} dev {self.name}",
                              f"bridge fdb append {mac} dev {self.name} dst {far}"]
        self.peers[str(net)] = far
        if far not in self.remotes:
            self.remotes.append(far)
        if self.kind == "udp" and restart and self.process is not None and self.process.running:
            self.restart()

    # -- counters ------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Packets and bytes each way, and errors, since the daemon (or device) started.

        ``tx_*``: inner packets sent into the tunnel; ``rx_*``: packets that came out of
        it and were delivered; ``tx_errors``/``rx_errors``: failures; ``dropped``: packets
        the far side sent that this end refused, by reason (userspace: ``key``, ``proto``,
        ``flags``, ``short``, ``not_ipv4``, ``no_peer``; kernel: the device's drop count).
        A userspace daemon answers SIGUSR1 with a JSON line on its stdout; a kernel device
        is read with ``ip -s -j link show dev NAME``.
        """
        self._alive("read tunnel counters")
        if self.implementation == "userspace":
            return self._daemon_counters()
        result = self.node.run(["ip", "-s", "-j", "link", "show", "dev", self.name], check=True)
        stats = json.loads(result.stdout)[0].get("stats64", {})
        rx, tx = stats.get("rx", {}), stats.get("tx", {})
        return {"tx_packets": tx.get("packets", 0), "tx_bytes": tx.get("bytes", 0),
                "tx_errors": tx.get("errors", 0), "rx_packets": rx.get("packets", 0),
                "rx_bytes": rx.get("bytes", 0), "rx_errors": rx.get("errors", 0),
                "dropped": {"rx": rx.get("dropped", 0), "tx": tx.get("dropped", 0)},
                "source": f"ip -s link show dev {self.name}"}

    def _daemon_counters(self) -> dict[str, Any]:
        import signal

        proc = self.process
        if proc is None:
            return _zero_counters()

        def lines() -> list[str]:
            return [l for l in proc.stdout_text().splitlines() if l.startswith("counters ")]

        if proc.running:
            before = len(lines())
            proc.signal(signal.SIGUSR1)
            end = time.monotonic() + COUNTER_TIMEOUT
            while len(lines()) <= before:
                if not proc.running:
                    break
                if time.monotonic() > end:
                    raise CommandTimeout(f"tunnel daemon {proc} did not report its counters "
                                         f"within {COUNTER_TIMEOUT} s", obj=str(proc),
                                         op="read tunnel counters")
                time.sleep(0.01)
        found = lines()
        if not found:
            return _zero_counters()
        data = json.loads(found[-1][len("counters "):])
        data["source"] = f"daemon pid {data.pop('pid', proc.pid)}" + \
            ("" if proc.running else " (stopped: its last report)")
        return data


def _zero_counters() -> dict[str, Any]:
    return {"tx_packets": 0, "tx_bytes": 0, "tx_errors": 0, "rx_packets": 0, "rx_bytes": 0,
            "rx_errors": 0, "dropped": {}, "source": "no daemon has run"}


def network_of(value: str, what: str, op: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise InvalidAddress(f"{what} {value!r} is not a network ({exc})", obj=repr(value), op=op,
                             remedy="write it like '10.4.1.0/24'") from None
    if net.version != 4:
        raise InvalidAddress(f"{what} {value!r} is not IPv4", obj=repr(value), op=op,
                             remedy="these overlays are IPv4: write it like '10.4.1.0/24'")
    return net  # type: ignore[return-value]
