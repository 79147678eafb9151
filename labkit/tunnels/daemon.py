"""The userspace tunnel daemon: one per host node, started by :mod:`labkit.tunnels`.

It stands in for a kernel tunnel device the kernel does not have (``gretap``, ``gre``)
and plays flannel's ``udp`` backend (flanneld reading ``flannel0``). It moves packets
between two file descriptors:

* the **port**, where the host's own stack meets the tunnel: either a TUN/TAP device
  (``/dev/net/tun``) or, where that cannot be opened, the hidden end of a veth pair read
  and written with an ``AF_PACKET`` socket (the end the student sees carries the
  tunnel's name, e.g. ``gretap0``; the daemon's end is ``gretap0-pcap``);
* the **underlay** socket: a raw IPv4 socket for IP protocol 47 (GRE, RFC 2784/2890)
  or a UDP socket (port 8285 by default, flannel's).

Run as::

    python -m labkit.tunnels.daemon --encap gre --proto 0x6558 --local 172.16.1.1 \\
        --remote 172.16.1.2 [--key 7] [--ttl 64] --device gretap0 --port packet:gretap0-pcap
    python -m labkit.tunnels.daemon --encap udp --local 172.16.1.1 --udp-port 8285 \\
        --peer 10.4.2.0/24=172.16.1.2 --device flannel0 --port tun:flannel0
        [--peers-file FILE]     # SUBNET=HOST lines, re-read on SIGHUP

It prints ``ready {json}`` once set up, ``counters {json}`` on SIGUSR1 and once more when
it ends (SIGTERM or SIGINT; exit status 0). Counters: ``tx_packets``/``tx_bytes``
(inner packets taken from the port and sent encapsulated), ``rx_packets``/``rx_bytes``
(packets decapsulated and delivered to the port), ``tx_errors``/``rx_errors`` (a send
that failed), ``errors`` (by errno name: those failures, and errors the kernel reported on
a socket, such as ``ENOPROTOOPT`` when the far host answered "protocol unreachable" because
no GRE endpoint listens there, or ``ENETDOWN``), and ``dropped`` (refused, by reason:
``key``, ``proto``, ``flags`` (a GRE header this end does not speak), ``short``,
``not_ipv4``, ``no_peer`` (UDP: no subnet entry for the destination)).

By default one process serves both directions. With ``--workers 2`` each direction runs
in its own process (the started one encapsulates, a forked child decapsulates), so each
can use a CPU of its own with no interpreter lock between them; that measured slower on
a 2-CPU machine where the traffic's own processes compete for the same CPUs. Either way
the counters live in a shared anonymous mmap. The loop waits in ``poll`` and then drains
up to :data:`BATCH` packets from the ready descriptor with non-blocking reads into a
preallocated buffer, at an offset that leaves room for the header to prepend: a packet
costs one ``recv`` and one ``send`` and no copy.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import io
import ipaddress
import json
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable

BATCH = 256
BUFSIZE = 65536 + 128
SOCKBUF = 4 * 1024 * 1024

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SIOCGIFHWADDR = 0x8927
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17
ETHTOOL_SSG = 0x19
ETHTOOL_STSO = 0x1F
ETHTOOL_SGSO = 0x24

GRE_KEY = 0x2000
GRE_CSUM = 0x8000
GRE_SEQ = 0x1000

DROP_REASONS = ("key", "proto", "flags", "short", "not_ipv4", "no_peer")
# Slots of the counter array, shared by the two worker processes (an anonymous shared
# mmap): packets/bytes/errors each way, drops by reason, send/receive errors by errno.
TXP, TXB, TXE, RXP, RXB, RXE = range(6)
D_KEY, D_PROTO, D_FLAGS, D_SHORT, D_NOT_IPV4, D_NO_PEER = range(6, 6 + len(DROP_REASONS))
ERR0 = 6 + len(DROP_REASONS)
NERR = 160  # errno values below this are counted one by one (Linux has about 133)
NSLOTS = ERR0 + NERR


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the loop."""


def gre_header(proto: int, key: int | None) -> bytes:
    """The GRE header this tunnel sends (RFC 2784, key from RFC 2890)."""
    if key is None:
        return struct.pack("!HH", 0, proto)
    return struct.pack("!HHI", GRE_KEY, proto, key)


def hwaddr(ifname: str) -> bytes:
    """The MAC address of ``ifname`` in this network namespace (SIOCGIFHWADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", ifname.encode()))
    return res[18:24]


def no_offloads(ifname: str) -> None:
    """``ethtool -K IF tx off sg off tso off gso off``, by ioctl.

    Frames read from a veth end with AF_PACKET must carry real checksums and be no
    larger than the MTU; with offloads on, the kernel hands over TCP super-segments with
    checksums left for "hardware" to fill in, which no hardware will do across a tunnel.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for cmd in (ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SSG, ETHTOOL_STXCSUM):
            value = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
            ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
            try:
                fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
            except OSError:
                pass  # a device without that feature: nothing to turn off


def big_buffers(sock: socket.socket) -> None:
    """Socket buffers of SOCKBUF bytes, so a burst that arrives while the daemon waits for
    a CPU is queued, not dropped. Inside a lab's user namespace the FORCE options are
    refused and net.core.[rw]mem_max (a host-wide setting) caps the size."""
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_*BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKBUF)


class Port:
    """The host side of the tunnel: a TUN/TAP fd or an AF_PACKET socket on a veth end.

    ``l3``: the tunnel carries IP packets (GRE 0x0800, UDP encapsulation). On a packet
    port that means stripping the Ethernet header on the way in and writing one on the
    way out (to the MAC of the student-facing device, from the daemon's end).
    """

    def __init__(self, spec: str, device: str, l3: bool) -> None:
        kind, _, ifname = spec.partition(":")
        self.kind, self.ifname, self.device, self.l3 = kind, ifname, device, l3
        self.fd = -1
        self.sock: socket.socket | None = None
        self.eth_header = b""
        self.ignores_outgoing = True
        if kind in ("tun", "tap"):
            flags = (IFF_TUN if kind == "tun" else IFF_TAP) | IFF_NO_PI
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), flags))
            os.set_blocking(self.fd, False)
        elif kind == "packet":
            no_offloads(device)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                self.ignores_outgoing = False
            big_buffers(sock)
            sock.bind((ifname, ETH_P_ALL))
            self.sock = sock
            self.fd = sock.fileno()
            if l3:
                self.eth_header = hwaddr(device) + hwaddr(ifname) + b"\x08\x00"
        else:
            raise SystemExit(f"tunnel daemon: port kind {kind!r} is not known (tun, tap, packet)")


def build(args: argparse.Namespace, counters: memoryview):
    """Make the two batch functions (encapsulate, decapsulate) for this configuration."""
    port = Port(args.port, args.device, l3=args.encap == "udp" or args.proto == 0x0800)
    ebuf = bytearray(BUFSIZE)
    emv = memoryview(ebuf)
    dbuf = bytearray(BUFSIZE)
    dmv = memoryview(dbuf)
    DONT = socket.MSG_DONTWAIT
    tap_like = port.kind in ("tun", "tap")
    fd = port.fd
    psock = port.sock
    tun_file = io.FileIO(fd, "r+b", closefd=False) if tap_like else None

    # -- reading from the port ------------------------------------------------------------
    def port_reader(offset: int) -> Callable[[], int]:
        """A function that reads one frame/packet into ebuf at ``offset``; returns its length."""
        if tun_file is not None:
            readinto, tview = tun_file.readinto, emv[offset:]

            def read_tun() -> int:
                n = readinto(tview)
                if n is None:  # non-blocking and nothing queued
                    raise BlockingIOError
                return n
            return read_tun
        assert psock is not None
        recv_into, view = psock.recv_into, emv[offset:]
        if port.ignores_outgoing:
            return lambda: recv_into(view, 0, DONT)
        recvfrom_into = psock.recvfrom_into

        def read_in() -> int:  # old kernels: skip what the host itself sent on this end
            while True:
                n, addr = recvfrom_into(view, 0, DONT)
                if addr[2] != PACKET_OUTGOING:
                    return n
        return read_in

    port_send = tun_file.write if tun_file is not None else psock.send  # type: ignore[union-attr]

    if args.encap == "gre":
        hdr = gre_header(args.proto, args.key)
        hl = len(hdr)
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
        big_buffers(raw)
        raw.bind((args.local, 0))
        raw.connect((args.remote, 0))  # also: receive GRE from this remote only
        if args.ttl:
            raw.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, args.ttl)
        usock = raw
        raw_send, raw_recv = raw.send, raw.recv_into

        if not port.l3 or tap_like:
            # Ethernet frame (gretap) or IP packet from a TUN: [GRE hdr][payload]
            ebuf[0:hl] = hdr
            read = port_reader(hl)

            def encap() -> None:
                p = b = e = 0
                try:
                    for _ in range(BATCH):
                        n = read()
                        try:
                            raw_send(emv[:hl + n])
                        except OSError as exc:
                            e += 1
                            counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1
                            continue
                        p += 1
                        b += n
                except BlockingIOError:
                    pass
                except OSError as exc:  # a pending socket error: ENETDOWN, or an ICMP error
                    counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1  # (not a lost packet)
                finally:
                    counters[TXP] += p
                    counters[TXB] += b
                    counters[TXE] += e
        else:
            # IP in GRE from a veth end: the frame lands at 16, its IP packet at 30,
            # the GRE header is rewritten just before it (the Ethernet header covered it).
            read = port_reader(16)
            start = 30 - hl

            def encap() -> None:
                p = b = e = 0
                try:
                    for _ in range(BATCH):
                        n = read()
                        if ebuf[28] != 8 or ebuf[29] != 0:
                            counters[D_NOT_IPV4] += 1
                            continue
                        ebuf[start:30] = hdr
                        try:
                            raw_send(emv[start:16 + n])
                        except OSError as exc:
                            e += 1
                            counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1
                            continue
                        p += 1
                        b += n - 14
                except BlockingIOError:
                    pass
                except OSError as exc:  # a pending socket error: ENETDOWN, or an ICMP error
                    counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1  # (not a lost packet)
                finally:
                    counters[TXP] += p
                    counters[TXB] += b
                    counters[TXE] += e

        eth = port.eth_header
        add_eth = port.l3 and not tap_like

        def classify(ihl: int, n: int) -> int:
            """Slow path: a GRE header unlike ours. Returns the payload start, or -1."""
            if n < ihl + 4:
                counters[D_SHORT] += 1
                return -1
            flags, proto = struct.unpack_from("!HH", dbuf, ihl)
            if flags & 0x4FFF & ~GRE_KEY & ~GRE_SEQ:  # routing, strict route, recursion, version
                counters[D_FLAGS] += 1
                return -1
            if proto != args.proto:
                counters[D_PROTO] += 1
                return -1
            off = ihl + 4
            if flags & GRE_CSUM:
                off += 4
            key = None
            if flags & GRE_KEY:
                key = struct.unpack_from("!I", dbuf, off)[0]
                off += 4
            if key != args.key:
                counters[D_KEY] += 1
                return -1
            if flags & GRE_SEQ:
                off += 4
            return off if off <= n else -1

        def decap() -> None:
            p = b = e = 0
            try:
                for _ in range(BATCH):
                    n = raw_recv(dmv, 0, DONT)
                    ihl = (dbuf[0] & 15) << 2
                    start = ihl + hl
                    if dbuf[ihl:start] != hdr:
                        start = classify(ihl, n)
                        if start < 0:
                            continue
                    if add_eth:
                        if dbuf[start] >> 4 != 4:
                            counters[D_NOT_IPV4] += 1
                            continue
                        start -= 14
                        dbuf[start:start + 14] = eth
                    try:
                        port_send(dmv[start:n])
                    except OSError as exc:
                        e += 1
                        counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1
                        continue
                    p += 1
                    b += n - start - (14 if add_eth else 0)
            except BlockingIOError:
                pass
            except OSError as exc:  # a pending socket error: ENETDOWN, or an ICMP error
                counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1  # (not a lost packet)
            finally:
                counters[RXP] += p
                counters[RXB] += b
                counters[RXE] += e

    else:  # UDP encapsulation of IP packets, flannel's udp backend
        table: list[tuple[int, int, int, str]] = []
        cache: dict[int, object] = {}  # inner destination address -> (host, port) or None

        def load_table(*_: object) -> None:
            """The subnet table from --peer, plus --peers-file (re-read on SIGHUP)."""
            items = list(args.peer)
            if args.peers_file:
                try:
                    with open(args.peers_file) as f:
                        items += [line.strip() for line in f if line.strip()]
                except OSError:
                    pass
            rows = []
            for item in items:
                net, _, host = item.partition("=")
                n4 = ipaddress.ip_network(net)
                rows.append((int(n4.network_address), int(n4.netmask), n4.prefixlen, host))
            rows.sort(key=lambda row: -row[2])
            table[:] = rows
            cache.clear()

        load_table()
        if args.peers_file:
            signal.signal(signal.SIGHUP, load_table)
        cached, MISS = cache.get, object()
        dst_of = struct.Struct("!I").unpack_from
        udp_port = args.udp_port

        def where(addr: int) -> tuple[str, int] | None:
            for net, mask, _, host in table:
                if addr & mask == net:
                    return (host, udp_port)
            return None

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        big_buffers(udp)
        udp.bind((args.local, udp_port))
        if args.ttl:
            udp.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, args.ttl)
        usock = udp
        sendto, recv_into = udp.sendto, udp.recv_into
        ip_off = 0 if tap_like else 14
        dst_at = ip_off + 16
        read = port_reader(0)

        def encap() -> None:
            p = b = e = 0
            try:
                for _ in range(BATCH):
                    n = read()
                    if ip_off and (ebuf[12] != 8 or ebuf[13] != 0):
                        counters[D_NOT_IPV4] += 1
                        continue
                    key = dst_of(ebuf, dst_at)[0]
                    target = cached(key, MISS)
                    if target is MISS:
                        if len(cache) > 65536:
                            cache.clear()
                        target = cache[key] = where(key)
                    if target is None:
                        counters[D_NO_PEER] += 1
                        continue
                    try:
                        sendto(emv[ip_off:n], target)
                    except OSError as exc:
                        e += 1
                        counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1
                        continue
                    p += 1
                    b += n - ip_off
            except BlockingIOError:
                pass
            except OSError as exc:  # a pending socket error: ENETDOWN, or an ICMP error
                counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1  # (not a lost packet)
            finally:
                counters[TXP] += p
                counters[TXB] += b
                counters[TXE] += e

        if not tap_like:
            dbuf[0:14] = port.eth_header
        view = dmv[ip_off:]

        def decap() -> None:
            p = b = e = 0
            try:
                for _ in range(BATCH):
                    n = recv_into(view, 0, DONT)
                    if n < 20 or dbuf[ip_off] >> 4 != 4:
                        counters[D_NOT_IPV4 if n >= 20 else D_SHORT] += 1
                        continue
                    try:
                        port_send(dmv[:ip_off + n])
                    except OSError as exc:
                        e += 1
                        counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1
                        continue
                    p += 1
                    b += n
            except BlockingIOError:
                pass
            except OSError as exc:  # a pending socket error: ENETDOWN, or an ICMP error
                counters[ERR0 + min(exc.errno or 0, NERR - 1)] += 1  # (not a lost packet)
            finally:
                counters[RXP] += p
                counters[RXB] += b
                counters[RXE] += e

    return port, usock, encap, decap


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m labkit.tunnels.daemon",
                                 description="userspace GRE / UDP tunnel endpoint")
    ap.add_argument("--encap", choices=("gre", "udp"), required=True)
    ap.add_argument("--device", required=True, help="the device the student sees, e.g. gretap0")
    ap.add_argument("--port", required=True, help="tun:NAME, tap:NAME or packet:VETH_END")
    ap.add_argument("--local", required=True, help="underlay address of this host")
    ap.add_argument("--remote", help="GRE: underlay address of the other end")
    ap.add_argument("--proto", type=lambda s: int(s, 0), default=0x6558,
                    help="GRE protocol type: 0x6558 Ethernet (gretap), 0x0800 IPv4 (gre)")
    ap.add_argument("--key", type=int, default=None, help="GRE key (RFC 2890)")
    ap.add_argument("--ttl", type=int, default=0, help="outer TTL (0: the system default, 64)")
    ap.add_argument("--udp-port", type=int, default=8285)
    ap.add_argument("--peer", action="append", default=[],
                    help="UDP: SUBNET=HOST, e.g. 10.4.2.0/24=172.16.1.2 (repeatable)")
    ap.add_argument("--peers-file", default="",
                    help="UDP: a file of SUBNET=HOST lines, read at start and again on SIGHUP "
                         "(how flanneld's udp backend learns of new leases)")
    ap.add_argument("--workers", choices=("1", "2"), default="1",
                    help="processes: 1 (default), or 2, one each way (slower on 2 CPUs shared "
                         "with the traffic's own processes: measured in bench/tunnels.py)")
    args = ap.parse_args(argv)
    if args.encap == "gre" and not args.remote:
        ap.error("--remote is required with --encap gre")
    return args


def snapshot(counters: memoryview, started: float) -> dict[str, object]:
    errs = {errno.errorcode.get(i, str(i)): counters[ERR0 + i]
            for i in range(NERR) if counters[ERR0 + i]}
    return {"tx_packets": counters[TXP], "tx_bytes": counters[TXB], "tx_errors": counters[TXE],
            "rx_packets": counters[RXP], "rx_bytes": counters[RXB], "rx_errors": counters[RXE],
            "dropped": {r: counters[D_KEY + i] for i, r in enumerate(DROP_REASONS)},
            "errors": errs, "uptime": round(time.time() - started, 3), "pid": os.getpid()}


def pump(batches: dict[int, Callable[[], None]], device: str) -> None:
    """Wait until a descriptor is readable and drain it, forever (until a signal raises Stop).

    An error event (the device went down, an ICMP error arrived) is drained like data; if
    ``device`` has disappeared meanwhile, the daemon has nothing left to serve and stops.
    """
    poller = select.poll()
    for fd in batches:
        poller.register(fd, select.POLLIN)
    poll = poller.poll
    gone, err = select.POLLHUP | select.POLLNVAL, select.POLLERR
    errors_in_a_row = 0
    while True:
        for fd, ev in poll():
            if ev & gone:
                raise Stop(f"the device is gone (poll events {ev:#x})")
            batches[fd]()  # reading also collects a pending socket error (e.g. ENETDOWN)
            if ev & err and not ev & select.POLLIN:
                try:
                    socket.if_nametoindex(device)
                except OSError:
                    raise Stop(f"{device} was deleted") from None
                errors_in_a_row += 1
                if errors_in_a_row > 1000:  # a TUN device that was deleted under us
                    raise Stop(f"the device keeps failing (poll events {ev:#x})")
            else:
                errors_in_a_row = 0


def die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Set up, then move packets until SIGTERM; report counters on SIGUSR1 and at the end.

    With ``--workers 2`` the process started by the lab (the pid the lab knows)
    encapsulates (port -> underlay) and answers SIGUSR1, and a forked child decapsulates
    (underlay -> port); they share one counter array. The child dies with its parent
    (PR_SET_PDEATHSIG, and the lab stops the whole process group).
    """
    args = parse(argv)
    shared = mmap.mmap(-1, NSLOTS * 8)  # MAP_SHARED | MAP_ANONYMOUS: survives fork, shared
    counters = memoryview(shared).cast("q")
    started = time.time()

    stopping = [False]

    def on_term(signum: int, frame: object) -> None:
        if not stopping[0]:
            stopping[0] = True
            raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        port, usock, encap, decap = build(args, counters)
    except OSError as exc:
        print(f"tunnel daemon: setup failed: {exc}", file=sys.stderr, flush=True)
        return 2
    single = args.workers == "1"
    child = 0 if single else os.fork()
    if child == 0 and not single:  # the decapsulating worker
        die_with_parent()
        try:
            pump({usock.fileno(): decap}, args.device)
        except Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - report, then leave without cleanup
            print(f"tunnel daemon: decapsulating worker failed: {exc!r}", file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)

    def report(signum: int = 0, frame: object = None) -> None:
        sys.stdout.write("counters " + json.dumps(snapshot(counters, started)) + "\n")
        sys.stdout.flush()

    def on_child(signum: int, frame: object) -> None:
        if stopping[0]:
            return
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            stopping[0] = True
            raise Stop(f"the decapsulating worker ended (status {status})")

    signal.signal(signal.SIGUSR1, report)
    if child:
        signal.signal(signal.SIGCHLD, on_child)
    info = {"encap": args.encap, "device": args.device, "port": args.port,
            "local": args.local, "remote": args.remote, "peers": args.peer,
            "proto": hex(args.proto), "key": args.key, "pid": os.getpid(),
            "workers": [os.getpid()] + ([child] if child else [])}
    print("ready " + json.dumps(info), flush=True)
    status = 0
    try:
        pump({port.fd: encap, usock.fileno(): decap} if single else {port.fd: encap}, args.device)
    except Stop as stop:
        stopping[0] = True
        if stop.args:
            print(f"tunnel daemon: stopping: {stop.args[0]}", file=sys.stderr, flush=True)
            status = 1
    if child:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            os.kill(child, signal.SIGTERM)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    report()
    return status


if __name__ == "__main__":
    sys.exit(main())
