"""Traffic capture, decoding and summaries for labkit labs.

Capture on any interface of any node with :class:`Capture` (one interface) or
:class:`MultiCapture` (several at once, merged into one table), decode a pcap
file into a pandas DataFrame with :func:`read_pcap`, and describe a table in
plain English with :func:`summarize`::

    from labkit.capture import Capture, MultiCapture

    with Capture(h1, "eth0", filter="icmp or arp") as cap:   # listening when this returns
        h1.ping("10.0.0.2", count=3)
    cap.table()            # one row per packet; columns in labkit.capture.COLUMNS
    print(cap.summary())   # "8 frames on h1:eth0 over 0.405 s (4 in, 4 out): ..."
    cap.path               # the pcap file, kept: open it in Wireshark

    with MultiCapture([(h1, "vxlan42"), (h1, "eth0"), (h2, "eth0")]) as mc:
        h1.ping("10.0.0.2", count=1)
    mc.table()             # every interface, sorted by time: follow one ping
    mc.merge()             # one pcapng, interfaces named node:ifname

Modules: :mod:`~labkit.capture.bpf` (filters compiled by libpcap),
:mod:`~labkit.capture.sniffer` (the AF_PACKET capture program run in a node),
:mod:`~labkit.capture.session` (Capture, MultiCapture), :mod:`~labkit.capture.decode`
(the vectorised decoder) and :mod:`~labkit.capture.summary`; plots are in
:mod:`labkit.plots`.

Errors form a small tree under the project's ``LabkitError`` (once the core's
``labkit.errors`` exists; plain ``Exception`` before that)::

    CaptureError(LabkitError)        anything that went wrong capturing or decoding
    ├── FilterError(ValueError)      a BPF filter expression libpcap rejects
    ├── PcapFormatError(ValueError)  a file that is not a valid (complete) pcap
    └── SnifferError(RuntimeError)   the sniffer process failed to start or died
"""

from __future__ import annotations

try:  # the core's error hierarchy, when it exists
    from labkit.errors import LabkitError as _Base
except ImportError:  # pragma: no cover - depends on the core being present
    _Base = Exception  # type: ignore[misc,assignment]


class CaptureError(_Base):  # type: ignore[valid-type,misc]
    """Base class of every capture and decoding error.

    Like every ``LabkitError`` it keeps ``.message``, ``.obj`` (what), ``.op`` (which
    operation) and ``.remedy`` (what to do), and its text is ``"message; remedy"``.
    """

    def __init__(
        self, message: str, *, obj: str | None = None, op: str | None = None,
        remedy: str | None = None,
    ) -> None:
        if _Base is Exception:
            self.message, self.obj, self.op, self.remedy = message, obj, op, remedy
            super().__init__(message if not remedy else f"{message}; {remedy}")
        else:
            super().__init__(message, obj=obj, op=op, remedy=remedy)


class FilterError(CaptureError, ValueError):
    """A BPF filter expression that libpcap cannot compile."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(
            f"invalid capture filter {expression!r}: {reason}",
            obj=expression,
            op="compile capture filter",
            remedy="see 'man pcap-filter' for the syntax, e.g. 'icmp or arp', 'udp port 4789'",
        )


class PcapFormatError(CaptureError, ValueError):
    """A file that is not a pcap/pcapng file, or is truncated or corrupt."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"{path}: {reason} (at byte offset {offset})", obj=path, op="read pcap"
        )


class SnifferError(CaptureError, RuntimeError):
    """The sniffer process could not start, or failed while capturing."""


_LAZY = {
    "BpfProgram": "labkit.capture.bpf",
    "compile_filter": "labkit.capture.bpf",
    "COLUMNS": "labkit.capture.decode",
    "read_pcap": "labkit.capture.decode",
    "Capture": "labkit.capture.session",
    "MultiCapture": "labkit.capture.session",
    "merge_pcaps": "labkit.capture.session",
    "summarize": "labkit.capture.summary",
}


def __getattr__(name: str) -> object:
    # Imported on first use: the sniffer imports this package too and must start
    # fast without pandas.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'labkit.capture' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "COLUMNS",
    "BpfProgram",
    "Capture",
    "CaptureError",
    "FilterError",
    "MultiCapture",
    "PcapFormatError",
    "SnifferError",
    "compile_filter",
    "merge_pcaps",
    "read_pcap",
    "summarize",
]
