"""Compile pcap-filter expressions to classic BPF with libpcap (through ctypes).

``compile_filter("icmp or arp")`` returns a :class:`BpfProgram` whose
:meth:`~BpfProgram.pack` gives the ``struct sock_filter`` array that
``setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, ...)`` expects, so a plain
``AF_PACKET`` socket filters in the kernel exactly as tcpdump would.
The expression is compiled with ``pcap_open_dead`` (no device, no privilege),
so the same code validates a filter in the notebook before any process starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import threading
from dataclasses import dataclass

from labkit.capture import FilterError

#: libpcap's DLT values (what pcap_open_dead takes) and the pcap file LINKTYPE values.
DLT_EN10MB = 1
DLT_RAW = 12  # Linux value of DLT_RAW; raw IPv4/IPv6 without a link header
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113

_DLT_FOR_LINKTYPE = {LINKTYPE_ETHERNET: DLT_EN10MB, LINKTYPE_RAW: DLT_RAW, LINKTYPE_LINUX_SLL: 113}
_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


_lib: ctypes.CDLL | None = None
_lock = threading.Lock()  # pcap_compile was not thread-safe before libpcap 1.8


def _libpcap() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        names = [ctypes.util.find_library("pcap"), "libpcap.so.1", "libpcap.so.0.8", "libpcap.so"]
        for name in names:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise FilterError("", "libpcap is not installed (Debian: apt-get install libpcap0.8)")
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


@dataclass(frozen=True)
class BpfProgram:
    """A compiled classic BPF program.

    Attributes:
        expression: the pcap-filter text it was compiled from.
        instructions: ``(code, jt, jf, k)`` tuples, as ``tcpdump -ddd`` prints them.
        linktype: the pcap LINKTYPE the program expects (1 Ethernet, 101 raw IP).
    """

    expression: str
    instructions: tuple[tuple[int, int, int, int], ...]
    linktype: int = LINKTYPE_ETHERNET

    def pack(self) -> bytes:
        """The instructions as an array of ``struct sock_filter``."""
        return b"".join(_SOCK_FILTER.pack(*insn) for insn in self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)


def compile_filter(
    expression: str, *, snaplen: int = 262144, linktype: int = LINKTYPE_ETHERNET
) -> BpfProgram:
    """Compile a pcap-filter expression (``man pcap-filter``) to classic BPF.

    Args:
        expression: e.g. ``"icmp or arp"``, ``"udp port 4789"``, ``"ip proto 47"``.
        snaplen: bytes kept per packet; the program returns this length on a match.
        linktype: pcap LINKTYPE of the interface (1 Ethernet, 101 raw IP as on TUN).

    Raises:
        FilterError: (a ``ValueError``) naming the expression and libpcap's complaint.
    """
    if not isinstance(expression, str):
        raise FilterError(repr(expression), "the filter must be a string")
    if "\x00" in expression:
        raise FilterError(expression, "the filter contains a NUL character")
    dlt = _DLT_FOR_LINKTYPE.get(linktype)
    if dlt is None:
        raise FilterError(expression, f"unsupported link type {linktype}")
    lib = _libpcap()
    with _lock:
        handle = lib.pcap_open_dead(dlt, snaplen)
        if not handle:
            raise FilterError(expression, "pcap_open_dead failed (out of memory?)")
        program = _BpfProgram()
        try:
            rc = lib.pcap_compile(
                handle, ctypes.byref(program), expression.encode(), 1, _PCAP_NETMASK_UNKNOWN
            )
            if rc != 0:
                reason = (lib.pcap_geterr(handle) or b"unknown error").decode(errors="replace")
                raise FilterError(expression, reason)
            insns = tuple(
                (
                    program.bf_insns[i].code,
                    program.bf_insns[i].jt,
                    program.bf_insns[i].jf,
                    program.bf_insns[i].k,
                )
                for i in range(program.bf_len)
            )
            lib.pcap_freecode(ctypes.byref(program))
        finally:
            lib.pcap_close(handle)
    return BpfProgram(expression=expression, instructions=insns, linktype=linktype)
