"""A small packet sniffer: one interface, one pcap file, no tcpdump needed.

Run it inside the network namespace to capture in (labkit's nodes spawn it)::

    python -m labkit.capture.sniffer --iface eth0 --out /abs/cap.pcap \\
        [--filter EXPR] [--count N] [--duration S] [--max-bytes B] [--snaplen N]

It opens an ``AF_PACKET`` socket bound to the interface for every protocol
(``ETH_P_ALL``), attaches the compiled BPF filter before binding (so no
unfiltered packet slips in), and writes a classic pcap file with nanosecond
kernel timestamps (``SO_TIMESTAMPNS``), which tshark, tcpdump and Wireshark open.
It works wherever the process has CAP_NET_RAW in the namespace's user namespace,
including an unprivileged ``unshare -Urn``, where Debian's tcpdump cannot run.

Beside ``FILE.pcap`` it writes ``FILE.pcap.dir``: the 8 bytes ``LKPKTTY1`` then one
byte per packet, the kernel's ``sll_pkttype`` (0 to us, 1 broadcast, 2 multicast,
3 to another host, 4 sent by us); :func:`labkit.capture.decode.read_pcap` turns it
into the ``direction`` column. Its size minus 8 is the number of packets written.

Protocol with the launcher: one line ``ready iface=IF linktype=N`` on stdout once the
socket is bound and the file header is on disk; at the end one line
``done packets=N dropped=D reason=R`` (R: count, duration, max-bytes, signal or
interface-deleted). SIGTERM, SIGINT or SIGHUP stop the capture cleanly (packets
already queued are still written). An interface set down does not end the
capture (it resumes when the link is up again); one deleted or moved away does. Errors print one line starting with
``sniffer:`` on stderr and exit non-zero: 2 bad arguments or interface, 3 no
permission, 1 anything else.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import BinaryIO

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35  # == SCM_TIMESTAMPNS
SIOCGIFHWADDR = 0x8927
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
#: Interface types that deliver bare IP packets (TUN, ipip, sit, gre, ip6tnl).
RAW_IP_ARPHRD = {65534, 768, 769, 776, 778, 823}
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
DIRECTION_MAGIC = b"LKPKTTY1"

_REC = struct.Struct("<IIII")
_AUX = struct.Struct("=IIIHHHH")
_TS = struct.Struct("=qq")


class SnifferFailure(Exception):
    """A setup error: printed as one line on stderr, exit code attached."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def interface_linktype(ifname: str) -> int:
    """The pcap LINKTYPE for an interface of the current network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16s16x", ifname.encode())
        try:
            res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, ifreq)
        except OSError as exc:
            raise SnifferFailure(_no_such_interface(ifname)) from exc
    arphrd = struct.unpack_from("=H", res, 16)[0]
    if arphrd in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return LINKTYPE_ETHERNET
    if arphrd in RAW_IP_ARPHRD:
        return LINKTYPE_RAW
    raise SnifferFailure(f"cannot capture on {ifname!r}: unsupported hardware type {arphrd}")


def _no_such_interface(ifname: str) -> str:
    names = ", ".join(name for _, name in socket.if_nameindex())
    return (
        f"cannot capture on {ifname!r}: no such interface in this network namespace "
        f"(it has: {names})"
    )


def _die_with_parent() -> None:
    """Ask the kernel to send SIGTERM when the parent process ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - non-glibc
        return
    if os.getppid() == 1:
        raise SnifferFailure("parent process already exited", code=1)


def open_socket(ifname: str, program: bytes | None, snaplen: int) -> socket.socket:
    """An AF_PACKET socket on ``ifname``, filter attached before it sees a packet."""
    try:
        ifindex = socket.if_nametoindex(ifname)
    except OSError as exc:
        raise SnifferFailure(_no_such_interface(ifname)) from exc
    try:
        # Protocol 0: the socket receives nothing until bind() names ETH_P_ALL, so
        # the filter is in place before the first packet is queued.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError as exc:
        raise SnifferFailure(
            f"cannot capture on {ifname!r}: no permission to open a packet socket "
            "(needs CAP_NET_RAW in this namespace: run inside the lab, or as root)",
            code=3,
        ) from exc
    try:
        if program is None:  # still cut packets at snaplen, in the kernel
            program = struct.pack("=HBBI", 0x06, 0, 0, snaplen)  # BPF_RET|BPF_K
        buf = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        for size in (8 << 20, 4 << 20, 1 << 20):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
                break
            except OSError:
                continue
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SnifferFailure(f"cannot capture on {ifname!r} (index {ifindex}): {exc}") from exc
    return sock


class PcapWriter:
    """Write pcap records (nanosecond format) plus the direction sidecar."""

    def __init__(self, path: str, snaplen: int, linktype: int, max_bytes: int | None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        try:
            self.file: BinaryIO = open(path, "wb", buffering=1 << 20)
            self.dirfile: BinaryIO = open(path + ".dir", "wb", buffering=1 << 16)
        except OSError as exc:
            raise SnifferFailure(f"cannot write {path!r}: {exc.strerror}") from exc
        header = struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, snaplen, linktype)
        self.file.write(header)
        self.dirfile.write(DIRECTION_MAGIC)
        self.size = len(header)
        self.packets = 0
        self.flush()

    def write(self, sec: int, nsec: int, data: memoryview, origlen: int, pkttype: int) -> bool:
        """Append one record; False (nothing written) if it would pass max_bytes."""
        size = self.size + _REC.size + len(data)
        if self.max_bytes is not None and size > self.max_bytes:
            return False
        self.file.write(_REC.pack(sec, nsec, len(data), origlen))
        self.file.write(data)
        self.dirfile.write(bytes((pkttype & 0xFF,)))
        self.size = size
        self.packets += 1
        return True

    def flush(self) -> None:
        # pcap first: the sidecar never counts a packet the pcap does not hold yet.
        self.file.flush()
        self.dirfile.flush()

    def close(self) -> None:
        self.flush()
        self.file.close()
        self.dirfile.close()


def _still_there(ifname: str, ifindex: int) -> bool:
    try:
        return socket.if_nametoindex(ifname) == ifindex
    except OSError:
        return False


def capture(
    sock: socket.socket,
    writer: PcapWriter,
    *,
    count: int | None,
    duration: float | None,
    snaplen: int,
    skip_outgoing: bool,
    wakeup: int,
    ifname: str = "",
) -> str:
    """Copy packets from ``sock`` to ``writer`` until a bound or a signal stops it.

    An interface taken down (a student breaking a link on purpose) does not end
    the capture: it resumes when the link comes back up. An interface deleted or
    moved to another namespace ends it. Returns why it ended.
    """
    ifindex = socket.if_nametoindex(ifname) if ifname else 0
    down = False
    buf = bytearray(snaplen + 4)
    view = memoryview(buf)
    ancsize = socket.CMSG_SPACE(_TS.size) + socket.CMSG_SPACE(_AUX.size) + 64
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wakeup, select.POLLIN)
    deadline = None if duration is None else time.monotonic() + duration
    stopping = False
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                stopping = True
            timeout = max(0, int(left * 1000) + 1)
        else:
            timeout = 1000
        if not stopping:
            events = poller.poll(timeout)
            for fd, _ in events:
                if fd == wakeup:
                    stopping = True
            if down and not events and ifname:
                if not _still_there(ifname, ifindex):
                    writer.flush()
                    return "interface deleted"
                down = False
        # Drain what the kernel has queued; after a stop request, drain once more and end.
        budget = 100_000 if stopping else 1024
        while budget > 0:
            budget -= 1
            try:
                nbytes, ancdata, flags, addr = sock.recvmsg_into([view], ancsize)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno != errno.ENETDOWN:
                    raise
                if not down:
                    print(f"sniffer: {ifname} went down; still listening", file=sys.stderr, flush=True)
                down = True
                break
            pkttype = addr[2]
            if skip_outgoing and pkttype == PACKET_OUTGOING:
                continue  # loopback shows each packet twice; keep the incoming copy
            sec = nsec = -1
            origlen = nbytes
            data = view[:nbytes]
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TS.unpack_from(cdata)
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, tp_len, _snap, _mac, _net, tci, tpid = _AUX.unpack_from(cdata)
                    origlen = tp_len
                    if status & TP_STATUS_VLAN_VALID and nbytes >= 12:
                        # The kernel strips the 802.1Q tag into metadata; put it back.
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        tag = struct.pack("!HH", tpid, tci)
                        data = memoryview(bytes(view[:12]) + tag + bytes(view[12:nbytes]))
                        origlen += 4
            if sec < 0:
                now = time.time_ns()
                sec, nsec = divmod(now, 1_000_000_000)
            if not writer.write(sec, nsec, data, max(origlen, len(data)), pkttype):
                return "max bytes"
            if count is not None and writer.packets >= count:
                return "count"
        writer.flush()
        if stopping:
            return "duration" if deadline is not None and time.monotonic() >= deadline else "signal"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labkit.capture.sniffer",
        description="Capture packets on one interface of this network namespace to a pcap file.",
    )
    parser.add_argument("--iface", required=True, help="interface to capture on, e.g. eth0")
    parser.add_argument("--out", required=True, help="pcap file to write")
    parser.add_argument("--filter", default=None, help="pcap-filter expression, e.g. 'icmp or arp'")
    parser.add_argument("--count", type=int, default=None, help="stop after N packets")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--max-bytes", type=int, default=None, help="stop before the file passes B bytes")
    parser.add_argument("--snaplen", type=int, default=262144, help="bytes kept per packet")
    parser.add_argument("--die-with-parent", action="store_true", help="stop when the parent exits")
    args = parser.parse_args(argv)

    writer: PcapWriter | None = None
    sock: socket.socket | None = None
    rfd, wfd = os.pipe()
    try:
        for name, value in (("count", args.count), ("snaplen", args.snaplen), ("max-bytes", args.max_bytes)):
            if value is not None and value <= 0:
                raise SnifferFailure(f"--{name} must be positive (got {value})")
        if args.duration is not None and args.duration < 0:
            raise SnifferFailure(f"--duration must not be negative (got {args.duration})")
        if args.max_bytes is not None and args.max_bytes < 24:
            raise SnifferFailure(f"--max-bytes must leave room for the 24-byte pcap header (got {args.max_bytes})")
        if args.die_with_parent:
            _die_with_parent()
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # the wakeup fd does the work
        linktype = interface_linktype(args.iface)
        program = None
        if args.filter:
            from labkit.capture import FilterError
            from labkit.capture.bpf import compile_filter

            try:
                program = compile_filter(args.filter, snaplen=args.snaplen, linktype=linktype).pack()
            except FilterError as exc:
                raise SnifferFailure(str(exc)) from exc
        out = os.path.abspath(args.out)
        sock = open_socket(args.iface, program, args.snaplen)
        writer = PcapWriter(out, args.snaplen, linktype, args.max_bytes)
        is_loopback = struct.unpack_from(
            "=H", fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", args.iface.encode())), 16
        )[0] == ARPHRD_LOOPBACK
        print(f"ready iface={args.iface} linktype={linktype}", flush=True)
        reason = capture(
            sock,
            writer,
            count=args.count,
            duration=args.duration,
            snaplen=args.snaplen,
            skip_outgoing=is_loopback,
            wakeup=rfd,
            ifname=args.iface,
        )
        stats = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        dropped = struct.unpack("=II", stats)[1]
        writer.close()
        try:
            print(f"done packets={writer.packets} dropped={dropped} reason={reason.replace(' ', '-')}", flush=True)
        except BrokenPipeError:
            pass
        return 0
    except SnifferFailure as exc:
        print(f"sniffer: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except OSError as exc:
        print(f"sniffer: {args.iface}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if writer is not None and not writer.file.closed:
            writer.close()
        if sock is not None:
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
