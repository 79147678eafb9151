"""Flannel's backends: each one turns the set of other hosts' leases into kernel state.

Run inside the agent, in the host's own namespace, with the real tools (``ip``,
``bridge``). Every backend can apply one lease (:meth:`Backend.add`), drop one
(:meth:`Backend.remove`) and make the kernel match a whole set (:meth:`Backend.sync`,
used at start and on every periodic resync, so nothing stale survives a missed event).

* ``vxlan``: device ``flannel.1`` (VNI 1, UDP 8472, nolearning, MTU underlay - 50, the
  lease's ``.0``/32); per remote lease a permanent neighbour, an FDB entry and an onlink
  route (the data path of :func:`labkit.tunnels.vxlan_l3`);
* ``udp``: TUN ``flannel0`` (MTU underlay - 28, ``lease.0/NETWORK_PREFIX`` so the whole
  network routes into it) read by the userspace daemon of :mod:`labkit.tunnels.daemon`
  (``--encap udp``, UDP 8285), told of each lease through its peers file;
* ``host-gw``: no encapsulation: ``SUBNET via PUBLIC_IP dev IFACE`` per remote lease.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from ..cluster.agent import GlogLogger, bridge_batch, ip_batch, ip_json, sh, write_file
from ..tunnels._vxlan import _vxlan_command
from .config import OVERHEAD, NetworkConfig

Net = ipaddress.IPv4Network


@dataclass(frozen=True)
class Lease:
    """A lease as read from etcd: the subnet and what its value says."""

    subnet: Net
    public_ip: str
    backend: str
    data: dict[str, Any] | None

    @classmethod
    def parse(cls, subnet: Net, value: str) -> "Lease | None":
        try:
            raw = json.loads(value)
            return cls(subnet, str(raw["PublicIP"]), str(raw.get("BackendType", "")),
                       raw.get("BackendData"))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Iface:
    """The external interface flanneld uses (``-iface``)."""

    name: str
    ip: str
    mtu: int


class Backend:
    """What every backend does; subclasses fill in the kernel state."""

    kind = ""
    device: str | None = None
    src = "backend.go:1"

    def __init__(self, config: NetworkConfig, iface: Iface, log: GlogLogger) -> None:
        self.config, self.iface, self.log = config, iface, log
        self.subnet: Net | None = None
        self.port = config.port or {"vxlan": 8472, "udp": 8285}.get(config.backend, 0)

    @property
    def mtu(self) -> int:
        return self.iface.mtu - OVERHEAD[self.kind]

    def prepare(self) -> dict[str, Any] | None:
        """Make what must exist before the lease is taken; return the lease's BackendData."""
        return None

    def configure(self, subnet: Net) -> None:
        """Give this host's devices their addresses for ``subnet``."""
        self.subnet = subnet

    def usable(self, lease: Lease) -> bool:
        if lease.backend != self.kind:
            self.log.warning(f"Ignoring non-{self.kind} subnet({lease.subnet}): type={lease.backend}",
                             self.src)
            return False
        return True

    def add(self, lease: Lease) -> None:
        raise NotImplementedError

    def remove(self, lease: Lease) -> None:
        raise NotImplementedError

    def sync(self, leases: list[Lease]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """On exit: leave the kernel state as flanneld leaves it."""


class VxlanBackend(Backend):
    kind = "vxlan"
    device = "flannel.1"
    src = "vxlan_network.go:145"

    def __init__(self, config: NetworkConfig, iface: Iface, log: GlogLogger) -> None:
        super().__init__(config, iface, log)
        self.device = f"flannel.{config.vni}"
        self.mac = ""

    def prepare(self) -> dict[str, Any]:
        self.log.info(f"VXLAN config: VNI={self.config.vni} Port={self.config.port} GBP=false "
                      "Learning=false DirectRouting=false", "vxlan.go:156")
        found = ip_json("-d", "link", "show") or []
        existing = next((l for l in found if l.get("ifname") == self.device), None)
        if existing is not None:
            info = (existing.get("linkinfo") or {}).get("info_data") or {}
            if (info.get("id") == self.config.vni and info.get("local") == self.iface.ip
                    and info.get("port") == self.port):
                self.log.info(f"VXLAN device already exists: {self.device}", "device.go:95")
            else:
                self.log.warning(f"{self.device} already exists with incompatible configuration "
                                 f"(vni={info.get('id')} local={info.get('local')} port={info.get('port')}); "
                                 "recreating device", "device.go:105")
                sh(["ip", "link", "del", self.device])
                existing = None
        if existing is None:
            cmd = _vxlan_command(self.device, self.config.vni, local=self.iface.ip, dev=self.iface.name,
                                 port=self.port, learning=False)
            sh(cmd.split())
        sh(["ip", "link", "set", self.device, "mtu", str(self.mtu), "up"])
        self.mac = str(ip_json("link", "show", self.device)[0]["address"])
        return {"VNI": self.config.vni, "VtepMAC": self.mac}

    def configure(self, subnet: Net) -> None:
        super().configure(subnet)
        want = f"{subnet.network_address}/32"
        have = [f"{a['local']}/{a['prefixlen']}" for link in ip_json("addr", "show", "dev", self.device)
                for a in link.get("addr_info", []) if a.get("family") == "inet"]
        lines = [f"addr del {a} dev {self.device}" for a in have if a != want]
        if want not in have:
            lines.append(f"addr add {want} dev {self.device}")
        ip_batch(lines)

    def _entries(self, lease: Lease) -> tuple[str, str] | None:
        mac = (lease.data or {}).get("VtepMAC")
        if not mac:
            self.log.error(f"lease {lease.subnet} from {lease.public_ip} has no VtepMAC; ignoring it",
                           self.src)
            return None
        return str(lease.subnet.network_address), str(mac)

    def add(self, lease: Lease) -> None:
        if self.usable(lease):
            self._add_all([lease])

    def _add_all(self, leases: list[Lease]) -> None:
        """Neighbour, FDB entry and route for each lease: two processes in all."""
        neigh, fdb, routes = [], [], []
        for lease in leases:
            entries = self._entries(lease)
            if entries is None:
                continue
            gw, mac = entries
            self.log.info(f"adding subnet: {lease.subnet} PublicIP: {lease.public_ip} VtepMAC: {mac}",
                          "vxlan_network.go:138")
            neigh.append(f"neigh replace {gw} lladdr {mac} dev {self.device} nud permanent")
            fdb.append(f"fdb replace {mac} dev {self.device} dst {lease.public_ip} self permanent")
            routes.append(f"route replace {lease.subnet} via {gw} dev {self.device} onlink")
        ip_batch(neigh)
        bridge_batch(fdb)
        ip_batch(routes)

    def remove(self, lease: Lease) -> None:
        entries = self._entries(lease)
        self.log.info(f"removing subnet: {lease.subnet} PublicIP: {lease.public_ip}",
                      "vxlan_network.go:160")
        lines = [f"route del {lease.subnet} dev {self.device}"]
        if entries is not None:
            lines.append(f"neigh del {entries[0]} dev {self.device}")
        ip_batch(lines)
        if entries is not None:
            sh(["bridge", "fdb", "del", entries[1], "dev", self.device, "dst", lease.public_ip, "self"],
               check=False)

    def sync(self, leases: list[Lease]) -> None:
        want = {}
        for lease in leases:
            if lease.backend == self.kind and self._entries(lease):
                want[str(lease.subnet)] = lease
        routes = {r["dst"] for r in ip_json("route", "show", "dev", self.device)
                  if "/" in r.get("dst", "")}
        neighs = {n["dst"]: n.get("lladdr") for n in ip_json("neigh", "show", "dev", self.device)}
        fdb = {(e.get("mac"), e.get("dst")) for e in ip_json("bridge", "fdb", "show", "dev", self.device)
               if e.get("dst")}
        gws = {str(l.subnet.network_address) for l in want.values()}
        macs = {(str((l.data or {}).get("VtepMAC")), l.public_ip) for l in want.values()}
        lines = [f"route del {dst} dev {self.device}" for dst in routes - set(want)]
        lines += [f"neigh del {dst} dev {self.device}" for dst in set(neighs) - gws]
        for dst in routes - set(want):
            self.log.info(f"removing stale route {dst} dev {self.device}", "vxlan_network.go:170")
        ip_batch(lines)
        bridge_batch(f"fdb del {mac} dev {self.device} dst {dst} self" for mac, dst in fdb - macs)
        missing = []
        for key, lease in want.items():
            gw, mac = str(lease.subnet.network_address), str((lease.data or {})["VtepMAC"])
            if not (key in routes and neighs.get(gw) == mac and (mac, lease.public_ip) in fdb):
                missing.append(lease)
        self._add_all(missing)


class HostGwBackend(Backend):
    kind = "host-gw"
    src = "route_network.go:80"

    def add(self, lease: Lease) -> None:
        if not self.usable(lease):
            return
        self.log.info(f"Subnet added: {lease.subnet} via {lease.public_ip}", "route_network.go:86")
        ip_batch([f"route replace {lease.subnet} via {lease.public_ip} dev {self.iface.name}"])

    def remove(self, lease: Lease) -> None:
        self.log.info(f"Subnet removed: {lease.subnet}", "route_network.go:103")
        ip_batch([f"route del {lease.subnet} via {lease.public_ip} dev {self.iface.name}"])

    def sync(self, leases: list[Lease]) -> None:
        want = {str(l.subnet): l for l in leases if l.backend == self.kind}
        have = {r["dst"]: r.get("gateway") for r in ip_json("route", "show", "dev", self.iface.name)
                if r.get("gateway") and ipaddress.ip_network(r["dst"], strict=False)
                .subnet_of(self.config.network)}
        ip_batch([f"route del {dst} dev {self.iface.name}" for dst in set(have) - set(want)])
        for key, lease in want.items():
            if have.get(key) != lease.public_ip:
                self.add(lease)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class UdpBackend(Backend):
    """flannel0 and the userspace encapsulation daemon (a child of the agent)."""

    kind = "udp"
    device = "flannel0"
    src = "udp_network.go:90"

    def __init__(self, config: NetworkConfig, iface: Iface, log: GlogLogger, state_dir: str) -> None:
        super().__init__(config, iface, log)
        self.peers_file = os.path.join(state_dir, "run", "flannel", "udp-peers")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.peers: dict[str, str] = {}

    def _port(self) -> str:
        """Create flannel0: a TUN device where /dev/net/tun can be opened, else a NOARP veth
        end whose peer the daemon reads with AF_PACKET (an unprivileged lab's fallback)."""
        if any(l.get("ifname") == self.device for l in ip_json("link", "show")):
            sh(["ip", "link", "del", self.device])
        try:
            os.close(os.open("/dev/net/tun", os.O_RDWR))
            sh(["ip", "tuntap", "add", "dev", self.device, "mode", "tun"])
            sh(["ip", "link", "set", self.device, "mtu", str(self.mtu), "up"])
            return f"tun:{self.device}"
        except (OSError, Exception):  # noqa: BLE001 - no TUN here: the veth way
            peer = f"{self.device}-pcap"
            ip_batch([f"link add {self.device} mtu {self.mtu} type veth peer name {peer} mtu {self.mtu}",
                      f"link set {peer} arp off up", f"link set {self.device} arp off up"])
            return f"packet:{peer}"

    def configure(self, subnet: Net) -> None:
        super().configure(subnet)
        port = self._port()
        ip_batch([f"addr add {subnet.network_address}/{self.config.network.prefixlen} dev {self.device}"])
        self._write_peers()
        argv = [sys.executable, "-m", "labkit.tunnels.daemon", "--encap", "udp", "--local", self.iface.ip,
                "--udp-port", str(self.port), "--device", self.device, "--port", port,
                "--peers-file", self.peers_file]
        self.daemon = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       preexec_fn=_die_with_parent)
        assert self.daemon.stdout is not None
        ready = self.daemon.stdout.readline().decode()
        if not ready.startswith("ready"):
            raise RuntimeError(f"the udp encapsulation daemon did not start: {ready.strip()}")
        self.log.info(f"UDP backend listening on {self.iface.ip}:{self.port}, device {self.device} "
                      f"({port.split(':')[0]})", "udp_network.go:75")

    def _write_peers(self) -> None:
        write_file(self.peers_file, "".join(f"{s}={h}\n" for s, h in sorted(self.peers.items())))
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGHUP)

    def add(self, lease: Lease) -> None:
        if not self.usable(lease):
            return
        if self.peers.get(str(lease.subnet)) == lease.public_ip:
            return
        self.log.info(f"Subnet added: {lease.subnet} via {lease.public_ip}", "udp_network.go:160")
        self.peers[str(lease.subnet)] = lease.public_ip
        self._write_peers()

    def remove(self, lease: Lease) -> None:
        self.log.info(f"Subnet removed: {lease.subnet}", "udp_network.go:170")
        self.peers.pop(str(lease.subnet), None)
        self._write_peers()

    def sync(self, leases: list[Lease]) -> None:
        want = {str(l.subnet): l.public_ip for l in leases if l.backend == self.kind}
        if want != self.peers:
            for subnet, host in sorted(want.items()):
                if self.peers.get(subnet) != host:
                    self.log.info(f"Subnet added: {subnet} via {host}", "udp_network.go:160")
            for subnet in sorted(set(self.peers) - set(want)):
                self.log.info(f"Subnet removed: {subnet}", "udp_network.go:170")
            self.peers = want
            self._write_peers()

    def close(self) -> None:
        # flanneld's TUN device goes with the process: nothing carries packets any more
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(5)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        sh(["ip", "link", "del", self.device], check=False)


def make_backend(config: NetworkConfig, iface: Iface, log: GlogLogger, state_dir: str) -> Backend:
    if config.backend == "vxlan":
        return VxlanBackend(config, iface, log)
    if config.backend == "udp":
        return UdpBackend(config, iface, log, state_dir)
    return HostGwBackend(config, iface, log)
