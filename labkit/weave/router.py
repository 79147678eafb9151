"""The Weave router of one machine: ``python -m labkit.weave.router [options] [PEER ...]``.

A lab process that plays what the ``weaveworks/weave`` router container does on a host,
with no external store:

* it listens for peers on **TCP 6783** and connects to the peers it is given
  (``weave launch 192.168.99.101``), then to every peer those tell it about, until the
  peers form a full mesh; peers exchange *gossip*: who they are, which address blocks
  they own, which DNS names they hold;
* it programs the data path: ``vxlan-6784`` (kernel VXLAN, UDP 6784) plugged into the
  ``weave`` bridge, with one FDB entry per connected peer (``bridge fdb append
  00:00:00:00:00:00 dev vxlan-6784 dst PEER``); a peer that goes away loses its entry.
  Real Weave's fast datapath is an Open vSwitch datapath driving the same kernel VXLAN
  encapsulation; this kernel has no openvswitch module (Weave itself then falls back to
  its userspace "sleeve" mode), so the Linux bridge plus kernel VXLAN plays it;
* it runs the IPAM (:mod:`labkit.weave.ipam`) and weaveDNS: the names of every peer's
  containers are written to a hosts file that a real ``dnsmasq`` (started by the router,
  listening on the docker0 address, port 53) answers from; unknown names under
  ``weave.local`` get NXDOMAIN;
* it answers the ``weave`` command (``python -m labkit.weave ...``) on an HTTP API at
  ``127.0.0.1:6784``, as the real router does.

It logs like the real router (``INFO: 2017/11/16 09:49:27.538759 ...``). SIGTERM stops it;
it then removes its FDB entries and stops dnsmasq, and leaves bridge and devices in
place, as ``weave stop`` does.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from .. import validate
from ..cluster.agent import AgentCommandFailed, checked_by, ip_json, ipv4, sh
from ..errors import LabkitError
from . import ipam
from .consts import BRIDGE, CONTROL_PORT, DOMAIN, HTTP_PORT, MTU, VNI, VXLAN_DEVICE, VXLAN_PORT

GOSSIP_INTERVAL = 1.0
PEER_TIMEOUT = 6.0
RETRY_INTERVAL = 2.0
ZERO_MAC = "00:00:00:00:00:00"


def log(level: str, message: str) -> None:
    stamp = datetime.now().strftime("%Y/%m/%d %H:%M:%S.%f")
    print(f"{level}: {stamp} {message}", flush=True)


def run(*argv: str) -> str:
    """Run ``ip``/``bridge`` in this machine (errors name the command)."""
    return sh(list(argv)).stdout


class Connection:
    """One TCP connection to a peer: JSON lines both ways."""

    def __init__(self, sock: socket.socket, address: str, outbound: bool) -> None:
        self.sock = sock
        self.address = address
        self.outbound = outbound
        self.peer: str | None = None
        self.last_seen = time.monotonic()
        self._wlock = threading.Lock()
        self._reader = sock.makefile("r", encoding="utf-8")

    def send(self, message: dict[str, Any]) -> bool:
        data = (json.dumps(message) + "\n").encode()
        try:
            with self._wlock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def receive(self) -> dict[str, Any] | None:
        try:
            line = self._reader.readline()
        except (OSError, ValueError):
            return None
        if not line:
            return None
        self.last_seen = time.monotonic()
        return json.loads(line)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Router:
    """The state of one Weave peer and the threads that keep it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.nickname: str = args.nickname
        self.host: str = args.host
        self.iface: str = args.iface
        self.range = ipam.allocation_range(args.ipalloc_range)
        self.state_dir = Path(args.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.dns_address: str = args.dns_address
        self.targets: list[str] = list(args.peers)
        self.lock = threading.RLock()
        self.hosts_lock = threading.Lock()
        self.changed = threading.Event()
        self.stopping = threading.Event()
        self.name = self._bridge_mac()
        # IPAM: the blocks I own; my allocations (ip -> container id)
        self.owned: list[ipam.Net] = [] if self.targets else [self.range]
        self.allocations: dict[str, str] = {}
        self.request_id = 0
        self.waiting: dict[int, threading.Event] = {}
        # weaveDNS: my own records (fqdn -> ip); peers' records by peer nickname
        self.records: dict[str, str] = {}
        # peers: nickname -> {"name", "address", "owned", "records", "connection"}
        self.peers: dict[str, dict[str, Any]] = {}
        self.dnsmasq: subprocess.Popen[bytes] | None = None
        self.hosts_file = self.state_dir / "weavedns.hosts"

    # -- helpers -----------------------------------------------------------------------

    def _bridge_mac(self) -> str:
        rows = ip_json("link", "show", BRIDGE)
        return str(rows[0]["address"]) if rows else ZERO_MAC

    def label(self, nickname: str | None = None) -> str:
        if nickname is None or nickname == self.nickname:
            return f"{self.name}({self.nickname})"
        peer = self.peers.get(nickname, {})
        return f"{peer.get('name', '?')}({nickname})"

    def gossip_message(self) -> dict[str, Any]:
        with self.lock:
            return {"type": "gossip", "nickname": self.nickname, "name": self.name,
                    "address": self.host, "owned": [str(b) for b in self.owned],
                    "records": dict(self.records),
                    "peers": {n: p["address"] for n, p in self.peers.items() if p.get("connection")}}

    # -- data path ---------------------------------------------------------------------

    def setup_datapath(self) -> None:
        links = run("ip", "-o", "link", "show")
        if f" {VXLAN_DEVICE}:" not in links:
            run("ip", "link", "add", VXLAN_DEVICE, "type", "vxlan", "id", str(VNI), "dstport",
                str(VXLAN_PORT), "dev", self.iface, "local", self.host)
            log("INFO", f"Using kernel VXLAN {VXLAN_DEVICE} (id {VNI}, UDP {VXLAN_PORT}) on the "
                        f"{BRIDGE} bridge: no openvswitch in this kernel, so no ODP datapath")
        run("ip", "link", "set", VXLAN_DEVICE, "master", BRIDGE, "up")
        # set by hand, the bridge keeps 1376 whatever ports join (else it takes their minimum)
        run("ip", "link", "set", BRIDGE, "mtu", str(MTU))

    def sync_fdb(self) -> None:
        """Full resync: one flood entry per connected peer, nothing else."""
        with self.lock:
            wanted = {p["address"] for p in self.peers.values() if p.get("connection")}
        rows = ip_json("bridge", "fdb", "show", "dev", VXLAN_DEVICE)
        have = {r["dst"] for r in rows if r.get("mac") == ZERO_MAC and r.get("dst")}
        for dst in sorted(wanted - have):
            run("bridge", "fdb", "append", ZERO_MAC, "dev", VXLAN_DEVICE, "dst", dst)
            log("INFO", f"fastdp ->[{dst}:{VXLAN_PORT}]: FDB entry added (flood to peer)")
        for dst in sorted(have - wanted):
            run("bridge", "fdb", "del", ZERO_MAC, "dev", VXLAN_DEVICE, "dst", dst)
            log("INFO", f"fastdp ->[{dst}:{VXLAN_PORT}]: FDB entry removed (peer gone)")

    def clear_fdb(self) -> None:
        rows = ip_json("bridge", "fdb", "show", "dev", VXLAN_DEVICE)
        for r in rows:
            if r.get("mac") == ZERO_MAC and r.get("dst"):
                sh(["bridge", "fdb", "del", ZERO_MAC, "dev", VXLAN_DEVICE, "dst", r["dst"]], check=False)

    # -- weaveDNS ----------------------------------------------------------------------

    def stop_dns(self) -> None:
        """Stop dnsmasq (if it runs): at SIGTERM, and when the router fails to start."""
        dnsmasq, self.dnsmasq = self.dnsmasq, None
        if dnsmasq is not None and dnsmasq.poll() is None:
            dnsmasq.terminate()
            try:
                dnsmasq.wait(5)
            except subprocess.TimeoutExpired:
                dnsmasq.kill()
                dnsmasq.wait()

    def start_dns(self) -> None:
        self.write_hosts()
        log_file = open(self.state_dir / "dnsmasq.log", "ab")
        self.dnsmasq = subprocess.Popen(
            ["dnsmasq", "-d", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             f"--addn-hosts={self.hosts_file}", f"--local=/{DOMAIN}/", "--domain-needed",
             f"--listen-address={self.dns_address}", "--bind-interfaces", "--port=53",
             "--log-queries", "--pid-file=", "--user=root"],
            stdout=log_file, stderr=subprocess.STDOUT)
        end = time.monotonic() + 10           # until it listens (a SIGHUP before would kill it)
        while time.monotonic() < end and self.dnsmasq.poll() is None:
            try:
                socket.create_connection((self.dns_address, 53), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.02)
        log("INFO", f"weaveDNS: dnsmasq (pid {self.dnsmasq.pid}) answering {DOMAIN} on "
                    f"{self.dns_address}:53")

    def all_records(self) -> dict[str, str]:
        with self.lock:
            merged = {fqdn: ip for p in self.peers.values() if p.get("connection")
                      for fqdn, ip in p.get("records", {}).items()}
            merged.update(self.records)
        return merged

    def write_hosts(self) -> None:
        """The hosts file dnsmasq answers from; dnsmasq re-reads it on SIGHUP."""
        lines = [f"{ip} {fqdn}\n" for fqdn, ip in sorted(self.all_records().items())]
        text = "".join(lines)
        with self.hosts_lock:
            if self.hosts_file.exists() and self.hosts_file.read_text() == text:
                return
            tmp = self.hosts_file.with_name("." + self.hosts_file.name)
            tmp.write_text(text)
            os.replace(tmp, self.hosts_file)
            if self.dnsmasq is not None and self.dnsmasq.poll() is None:
                self.dnsmasq.send_signal(signal.SIGHUP)

    # -- peers -------------------------------------------------------------------------

    def serve_peers(self, server: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                sock, (addr, _port) = server.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(Connection(sock, addr, False),),
                             daemon=True).start()

    def connect(self, address: str) -> None:
        try:
            sock = socket.create_connection((address, CONTROL_PORT), timeout=2)
        except OSError as exc:
            log("INFO", f"->[{address}:{CONTROL_PORT}] attempting connection: {exc.strerror or exc}; "
                        f"retry in {RETRY_INTERVAL:g}s")
            return
        sock.settimeout(None)
        log("INFO", f"->[{address}:{CONTROL_PORT}] attempting connection")
        conn = Connection(sock, address, True)
        threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def hello(self, need_space: bool) -> dict[str, Any]:
        return {"type": "hello", "nickname": self.nickname, "name": self.name,
                "address": self.host, "need_space": need_space, "range": str(self.range)}

    def handle(self, conn: Connection) -> None:
        with self.lock:
            need = not self.owned
        conn.send(self.hello(need))
        first = conn.receive()
        if not first or first.get("type") != "hello":
            conn.close()
            return
        nick = str(first["nickname"])
        if first.get("range") != str(self.range):
            log("ERRO", f"->[{conn.address}:{CONTROL_PORT}|{first.get('name')}({nick})]: "
                        f"connection shutting down: incompatible IP allocation range "
                        f"{first.get('range')} (ours {self.range})")
            conn.close()
            return
        if nick == self.nickname:
            conn.close()
            return
        conn.peer = nick
        with self.lock:
            old = self.peers.get(nick, {}).get("connection")
            if old is not None and old is not conn:
                # one connection per pair: keep the one opened by the smaller nickname
                initiator_old = self.nickname if old.outbound else nick
                initiator_new = self.nickname if conn.outbound else nick
                if initiator_old == min(self.nickname, nick) or initiator_new != min(self.nickname, nick):
                    conn.close()
                    return
                old.close()
            peer = self.peers.setdefault(nick, {"owned": [], "records": {}})
            peer.update(name=first["name"], address=first["address"], connection=conn)
            donation = None
            if first.get("need_space"):
                gift = ipam.donate(self.owned, self.allocations)
                if gift is not None:
                    donation, self.owned = str(gift[0]), gift[1]
        log("INFO", f"->[{conn.address}:{CONTROL_PORT}|{first['name']}({nick})]: connection "
                    f"added ({'outbound' if conn.outbound else 'inbound'})")
        if donation:
            log("INFO", f"[allocator {self.label()}]: donating {donation} to {first['name']}({nick})")
            conn.send({"type": "donate", "block": donation})
        conn.send(self.gossip_message())
        log("INFO", f"->[{conn.address}:{CONTROL_PORT}|{first['name']}({nick})]: connection fully established")
        self.changed.set()
        while not self.stopping.is_set():
            message = conn.receive()
            if message is None:
                break
            self.on_message(nick, conn, message)
        with self.lock:
            if self.peers.get(nick, {}).get("connection") is conn:
                self.peers[nick]["connection"] = None
                log("INFO", f"->[{conn.address}:{CONTROL_PORT}|{first['name']}({nick})]: "
                            "connection shutting down due to error: EOF; peer lost")
        conn.close()
        self.changed.set()

    def on_message(self, nick: str, conn: Connection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        with self.lock:
            if kind == "donate":
                if message.get("block"):
                    block = ipam.allocation_range(message["block"])
                    self.owned = sorted(self.owned + [block])
                    log("INFO", f"[allocator {self.label()}]: received {block} from {self.label(nick)}")
                waiter = self.waiting.get(message.get("reply_to", -1))
                if waiter is not None:
                    waiter.set()
            elif kind == "space_request":
                subnet = ipaddress.IPv4Network(message["subnet"])
                gift = ipam.donate_within(self.owned, self.allocations, subnet)
                block = None
                if gift is not None:
                    block, self.owned = str(gift[0]), gift[1]
                    log("INFO", f"[allocator {self.label()}]: donating {block} to {self.label(nick)}")
                conn.send({"type": "donate", "block": block, "reply_to": message.get("id")})
            elif kind == "gossip":
                peer = self.peers.setdefault(nick, {})
                peer["owned"] = message.get("owned", [])
                peer["records"] = message.get("records", {})
                for other, address in message.get("peers", {}).items():
                    if other != self.nickname and other not in self.peers:
                        self.peers[other] = {"address": address, "owned": [], "records": {},
                                             "connection": None}
                        log("INFO", f"Discovered peer {other} at {address} via {self.label(nick)}")
            else:
                return
        self.changed.set()

    def maintain(self) -> None:
        """Reconcile loop: connect to known but unconnected peers, gossip, resync kernel state."""
        last_try: dict[str, float] = {}
        while not self.stopping.is_set():
            now = time.monotonic()
            with self.lock:
                known = {p["address"]: n for n, p in self.peers.items() if p.get("address")}
                connected = {p["address"] for p in self.peers.values() if p.get("connection")}
                conns = [p["connection"] for p in self.peers.values() if p.get("connection")]
            wanted = set(self.targets)
            for address, nick in known.items():
                if self.nickname < nick:    # the smaller nickname dials the discovered peers
                    wanted.add(address)
            for address in sorted(wanted - connected):
                if now - last_try.get(address, 0) >= RETRY_INTERVAL:
                    last_try[address] = now
                    self.connect(address)
            message = self.gossip_message()
            for conn in conns:
                if now - conn.last_seen > PEER_TIMEOUT:
                    conn.close()
                else:
                    conn.send(message)
            try:
                self.sync_fdb()
                self.write_hosts()
            except AgentCommandFailed as exc:
                log("ERRO", exc.message)
            self.changed.wait(GOSSIP_INTERVAL)
            self.changed.clear()

    # -- the API the weave command talks to ---------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.lock:
            peers = [{"nickname": n, "name": p.get("name"), "address": p.get("address"),
                      "state": "established" if p.get("connection") else "lost"
                      if p.get("name") else "pending", "owned": p.get("owned", [])}
                     for n, p in sorted(self.peers.items())]
            return {"nickname": self.nickname, "name": self.name, "address": self.host,
                    "range": str(self.range), "owned": [str(b) for b in self.owned],
                    "allocations": dict(self.allocations), "peers": peers,
                    "targets": list(self.targets), "dns": self.all_records(),
                    "dns_address": self.dns_address, "domain": DOMAIN,
                    "datapath": f"kernel vxlan {VXLAN_DEVICE} (fastdp needs openvswitch: absent)"}

    def allocate(self, container: str, cidr: str | None) -> list[str]:
        requests = ipam.parse_weave_cidr(cidr, self.range)
        given: list[str] = []
        with self.lock:
            for req in requests:
                if req.address is not None:
                    ip = req.address.ip
                    if str(ip) in self.allocations and self.allocations[str(ip)] != container:
                        raise ValueError(f"{ip} is already allocated to {self.allocations[str(ip)]}")
                else:
                    mine = [ip for ip, c in self.allocations.items() if c == container
                            and ipaddress.IPv4Address(ip) in req.subnet]
                    found = ipaddress.IPv4Address(mine[0]) if mine else \
                        ipam.allocate(req.subnet, self.owned, self.allocations)
                    if found is None and self.ask_for_space(req.subnet):
                        found = ipam.allocate(req.subnet, self.owned, self.allocations)
                    if found is None:
                        owners = {n: p.get("owned") for n, p in self.peers.items() if p.get("owned")}
                        raise LookupError(f"peer {self.nickname} owns no free address in {req.subnet} "
                                          f"(it owns {[str(b) for b in self.owned] or 'nothing'}; "
                                          f"other peers own {owners or 'nothing known'})")
                    ip = found
                self.allocations[str(ip)] = container
                given.append(f"{ip}/{req.subnet.prefixlen}")
        log("INFO", f"[allocator {self.label()}]: allocated {', '.join(given)} for {container}")
        self.changed.set()
        return given

    def ask_for_space(self, subnet: ipam.Net) -> bool:
        """Ask each connected peer owning part of ``subnet`` to donate some of it; True once
        a block arrived. (Called with ``self.lock`` held: it is released while waiting.)"""
        candidates = [(n, p["connection"]) for n, p in self.peers.items() if p.get("connection")
                      and any(ipaddress.IPv4Network(b).overlaps(subnet) for b in p.get("owned", []))]
        for nick, conn in candidates:
            self.request_id += 1
            rid = self.request_id
            waiter = threading.Event()
            self.waiting[rid] = waiter
            conn.send({"type": "space_request", "subnet": str(subnet), "id": rid})
            log("INFO", f"[allocator {self.label()}]: asking {self.label(nick)} for space in {subnet}")
            self.lock.release()
            try:
                waiter.wait(5.0)
            finally:
                self.lock.acquire()
                self.waiting.pop(rid, None)
            if any(b.overlaps(subnet) for b in self.owned):
                return True
        return False

    def release(self, container: str) -> list[str]:
        with self.lock:
            gone = [ip for ip, c in self.allocations.items() if c == container]
            for ip in gone:
                del self.allocations[ip]
            self.records = {f: ip for f, ip in self.records.items() if ip not in gone}
        self.changed.set()
        return gone

    def add_record(self, fqdn: str, ip: str) -> None:
        fqdn = fqdn.rstrip(".")
        if not fqdn.endswith("." + DOMAIN):
            fqdn = f"{fqdn}.{DOMAIN}"
        with self.lock:
            self.records[fqdn] = str(ipaddress.IPv4Address(ip))
        log("INFO", f"[nameserver {self.label()}] adding entry {fqdn} -> {ip}")
        self.write_hosts()
        self.changed.set()

    def remove_record(self, fqdn: str) -> bool:
        if not fqdn.endswith("." + DOMAIN):
            fqdn = f"{fqdn}.{DOMAIN}"
        with self.lock:
            found = self.records.pop(fqdn, None) is not None
        self.write_hosts()
        self.changed.set()
        return found

    def stop(self, *_: Any) -> None:
        self.stopping.set()


def make_handler(router: Router) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:   # quiet: the router logs what matters
            pass

        def reply(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def route(self, method: str) -> None:
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                if method == "GET" and parts == ["status"]:
                    return self.reply(200, router.status())
                if method == "POST" and len(parts) == 2 and parts[0] == "ip":
                    return self.reply(200, {"addresses": router.allocate(parts[1], query.get("cidr"))})
                if method == "DELETE" and len(parts) == 2 and parts[0] == "ip":
                    return self.reply(200, {"released": router.release(parts[1])})
                if method == "PUT" and len(parts) == 3 and parts[0] == "name":
                    router.add_record(parts[1], parts[2])
                    return self.reply(200, {"ok": True})
                if method == "DELETE" and len(parts) == 2 and parts[0] == "name":
                    return self.reply(200, {"removed": router.remove_record(parts[1])})
            except (ValueError, LookupError) as exc:
                return self.reply(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - the weave command shows the router's error
                log("ERRO", f"HTTP {method} {url.path}: {exc!r}")
                return self.reply(500, {"error": f"router error: {exc!r}"})
            self.reply(404, {"error": f"no such call: {method} {url.path}"})

        def do_GET(self) -> None:
            self.route("GET")

        def do_POST(self) -> None:
            self.route("POST")

        def do_PUT(self) -> None:
            self.route("PUT")

        def do_DELETE(self) -> None:
            self.route("DELETE")

    return Handler


def _allocation_range(text: str) -> str:
    ipam.allocation_range(text)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The router's options, every address checked before anything starts: a bad one ends
    it with one line and exit status 2 (argparse's way)."""
    parser = argparse.ArgumentParser(prog="weave-router", description=__doc__.splitlines()[0])
    parser.add_argument("--nickname", required=True, type=checked_by(validate.node_name),
                        help="this peer's nickname (the hostname)")
    parser.add_argument("--host", required=True, type=ipv4, help="this machine's underlay address")
    parser.add_argument("--iface", default="eth1", type=checked_by(validate.ifname), help="the underlay card")
    parser.add_argument("--ipalloc-range", default=ipam.DEFAULT_RANGE, type=checked_by(_allocation_range))
    parser.add_argument("--dns-address", required=True, type=ipv4,
                        help="where weaveDNS listens (docker0's address)")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("peers", nargs="*", type=ipv4, help="peers to connect to (underlay addresses)")
    args = parser.parse_args(argv)
    if args.host in args.peers:
        parser.error(f"--host {args.host} is also given as a peer: a router cannot peer with itself")
    try:
        rows = ip_json("addr", "show", "dev", args.iface)
    except AgentCommandFailed as exc:
        parser.error(f"--iface {args.iface}: {exc.message}")
    here = [a["local"] for r in rows for a in r.get("addr_info", []) if a.get("family") == "inet"]
    if args.host not in here:
        parser.error(f"--host {args.host} is not an address of {args.iface} on this machine "
                     f"(it has {', '.join(here) or 'none'})")
    return args


def serve(router: Router, args: argparse.Namespace) -> int:
    """Start the data path, weaveDNS and the listeners; run until SIGTERM."""
    log("INFO", f"Command line options: {vars(args)}")
    log("INFO", f"Our name is {router.label()}")
    if args.peers:
        log("INFO", f"Launch detected - using supplied peer list: {args.peers}")
    else:
        log("INFO", f"[allocator {router.label()}]: no peers given: taking the whole range {router.range}")
    router.setup_datapath()
    router.start_dns()
    try:
        server = socket.create_server((args.host, CONTROL_PORT), reuse_port=False)
        http = ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), make_handler(router))
    except OSError as exc:
        raise OSError(f"cannot listen for peers on {args.host}:{CONTROL_PORT} and the HTTP API on "
                      f"127.0.0.1:{HTTP_PORT}: {exc}") from None
    threading.Thread(target=router.serve_peers, args=(server,), daemon=True).start()
    threading.Thread(target=http.serve_forever, daemon=True).start()
    threading.Thread(target=router.maintain, daemon=True).start()
    log("INFO", f"Listening for peers on {args.host}:{CONTROL_PORT}; HTTP API on 127.0.0.1:{HTTP_PORT}")
    print("weave router ready", flush=True)
    while not router.stopping.wait(0.5):
        if router.dnsmasq is not None and router.dnsmasq.poll() is not None:
            log("ERRO", f"weaveDNS: dnsmasq exited with status {router.dnsmasq.returncode}")
            router.dnsmasq = None
    log("INFO", "=== received SIGTERM ===; shutting down")
    server.close()
    http.shutdown()
    with router.lock:
        for peer in router.peers.values():
            if peer.get("connection"):
                peer["connection"].close()
    router.clear_fdb()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    router: Router | None = None
    try:
        router = Router(args)
        signal.signal(signal.SIGTERM, router.stop)
        signal.signal(signal.SIGINT, router.stop)
        return serve(router, args)
    except (LabkitError, OSError) as exc:
        # one line, not a traceback: a kernel refusal (AgentCommandFailed) or a port taken
        print(f"weave-router: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, LabkitError) else 1
    finally:
        if router is not None:
            router.stop_dns()


if __name__ == "__main__":
    sys.exit(main())
