"""Capture sessions: start the sniffer in a node, follow it, read what it caught.

::

    with Capture(h1, "eth0", filter="icmp or arp") as cap:   # ready when this returns
        h1.ping("10.0.0.2", count=3)
    cap.table()        # pandas DataFrame, one row per packet (labkit.capture.decode)
    print(cap.summary())
    cap.path           # the pcap file: open it in Wireshark

    with MultiCapture([(h1, "eth0"), (sw, "br0"), (h2, "vxlan0")]) as mc:
        h1.ping("10.0.0.2", count=1)
    mc.table()         # one table, every interface, sorted by time

A node is anything with ``spawn(argv) -> process`` (a :class:`labkit.Node`); the
sniffer runs there as ``python -m labkit.capture.sniffer`` and ends with the lab at
the latest. ``node=None`` captures in the network namespace of this Python process
(for example on ``lo``). The process object needs ``running``, ``returncode``,
``stop()``, ``stdout_text()``, ``stderr_text()`` and, optionally,
``wait_for_output(text, timeout)``: the contract of :class:`labkit.Process`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from labkit import validate
from labkit.capture import CaptureError, SnifferError
from labkit.errors import InvalidName
from labkit.capture.bpf import compile_filter

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Capture", "MultiCapture", "merge_pcaps"]

_DIRECTION_HEADER = 8  # bytes of magic at the start of FILE.pcap.dir


class ProcessLike(Protocol):
    """What :class:`Capture` needs from a spawned process (``labkit.Process``)."""

    @property
    def running(self) -> bool: ...

    @property
    def returncode(self) -> int | None: ...

    def stop(self, grace: float = 2.0) -> int | None: ...

    def stdout_text(self) -> str: ...

    def stderr_text(self) -> str: ...


class NodeLike(Protocol):
    """What :class:`Capture` needs from a node (``labkit.Node``)."""

    name: str

    def spawn(self, cmd: list[str]) -> Any: ...


class _LocalProcess:
    """A sniffer in this process's own network namespace (``node=None``)."""

    def __init__(self, argv: list[str]) -> None:
        self._out: IO[bytes] = tempfile.TemporaryFile()
        self._err: IO[bytes] = tempfile.TemporaryFile()
        self._popen = subprocess.Popen(  # noqa: S603 - argv is ours
            [*argv, "--die-with-parent"], stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=self._err, close_fds=True,
        )

    @property
    def running(self) -> bool:
        return self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def _read(self, f: IO[bytes]) -> str:
        f.seek(0)
        return f.read().decode(errors="replace")

    def stdout_text(self) -> str:
        return self._read(self._out)

    def stderr_text(self) -> str:
        return self._read(self._err)

    def stop(self, grace: float = 2.0) -> int | None:
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        return self._popen.returncode


def _node_name(node: Any) -> str:
    return "local" if node is None else str(getattr(node, "name", node))


def _default_directory(node: Any) -> Path:
    """The lab's work directory if it has one, else ./captures."""
    lab = getattr(node, "lab", None)
    workdir = getattr(lab, "workdir", None)
    base = Path(workdir) / "captures" if workdir is not None else Path.cwd() / "captures"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _fresh_path(directory: Path, node: Any, ifname: str) -> Path:
    """Claim a new ``NODE-IF-N.pcap`` in ``directory`` by creating it (empty) exclusively.

    The file exists from this moment, so no other capture (of this lab, another lab
    or another process working in the same folder) can choose the same name; the
    sniffer then writes into it.
    """
    stem = f"{_node_name(node)}-{ifname}"
    for n in range(1, 100000):
        candidate = directory / f"{stem}-{n}.pcap"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        Path(f"{candidate}.dir").unlink(missing_ok=True)  # a leftover without its pcap
        return candidate
    raise CaptureError(f"too many captures named {stem}-N.pcap in {directory}", obj=str(directory),
                       op="choose capture file", remedy="pass path= or clean the directory")


def _positive(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or value <= 0):
        raise CaptureError(f"capture {name} must be positive (got {value!r})", obj=name,
                           op="create capture", remedy=f"pass {name}=None for no limit")


class Capture:
    """Capture packets on one interface of one node to a pcap file.

    Args:
        node: the node (``labkit.Node``) whose interface to capture on; ``None`` for
            this process's own network namespace.
        ifname: interface name in that node, e.g. ``"eth0"``, ``"br0"``, ``"vxlan0"``.
        filter: pcap-filter expression (``man pcap-filter``), checked at once.
        count: stop after this many packets.
        duration: stop after this many seconds.
        max_bytes: stop before the pcap file grows past this size.
        path: pcap file to write (default: a fresh ``NODE-IF-N.pcap`` in ``directory``).
            A ``PATH.dir`` file beside it records each packet's direction. A fresh file
            is created (empty) when the capture is made, so it is this capture's own
            even when other captures, labs or processes share the folder.
        directory: where a fresh file goes (default: the lab's work directory's
            ``captures/``, or ``./captures``).
        snaplen: bytes kept of each packet.
        ready_timeout: seconds to wait for the sniffer to be listening.

    The capture is running between :meth:`start` and :meth:`stop` (or inside a
    ``with`` block); a bound ends it earlier. A stopped capture cannot be restarted:
    create a new one.
    """

    def __init__(
        self,
        node: NodeLike | None,
        ifname: str,
        *,
        filter: str | None = None,  # noqa: A002 - the word students know
        count: int | None = None,
        duration: float | None = None,
        max_bytes: int | None = None,
        path: str | os.PathLike[str] | None = None,
        snaplen: int = 262144,
        ready_timeout: float = 10.0,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self._reserved = False
        self._state = "new"
        try:
            validate.ifname(ifname)  # the kernel's rules: 1 to 15 bytes, no '/', ':', spaces, NUL
        except InvalidName as exc:
            raise CaptureError(f"cannot capture: {exc.message}", obj=repr(ifname),
                               op="create capture",
                               remedy="use a name such as 'eth0' (1 to 15 characters)") from None
        for name, value in (("count", count), ("duration", duration), ("max_bytes", max_bytes), ("snaplen", snaplen)):
            _positive(name, value)
        if node is not None and not callable(getattr(node, "spawn", None)):
            raise CaptureError(f"{node!r} is not a node", obj=repr(node), op="create capture",
                               remedy="pass the node object, e.g. lab.node('h1'), or None for this namespace")
        if filter is not None:
            compile_filter(filter, snaplen=snaplen)  # raises FilterError now, not in the sniffer
        self.node = node
        self.ifname = ifname
        self.filter = filter
        self.limits = {"count": count, "duration": duration, "max_bytes": max_bytes}
        self.snaplen = snaplen
        self.ready_timeout = ready_timeout
        if path is not None:
            self.path = Path(path).absolute()
        else:
            base = Path(directory) if directory is not None else _default_directory(node)
            base.mkdir(parents=True, exist_ok=True)
            self.path = _fresh_path(base.absolute(), node, ifname)
            self._reserved = True
        self.dropped: int | None = None
        self._proc: Any = None

    # -- lifecycle -----------------------------------------------------------------
    @property
    def name(self) -> str:
        """``node:interface``"""
        return f"{_node_name(self.node)}:{self.ifname}"

    def argv(self) -> list[str]:
        """The sniffer command line run in the node."""
        argv = [sys.executable, "-m", "labkit.capture.sniffer", "--iface", self.ifname,
                "--out", str(self.path), "--snaplen", str(self.snaplen)]
        if self.filter:
            argv += ["--filter", self.filter]
        for key, flag in (("count", "--count"), ("duration", "--duration"), ("max_bytes", "--max-bytes")):
            if self.limits[key] is not None:
                argv += [flag, str(self.limits[key])]
        return argv

    def _launch(self) -> None:
        if self._state != "new":
            raise CaptureError(f"capture {self.name} was already started", obj=self.name,
                               op="start capture", remedy="create a new Capture to capture again")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A file we claimed stays in place (unlinking it would free its name for someone
        # else); a path the caller chose is started afresh.
        for stale in ([] if self._reserved else [self.path]) + [Path(f"{self.path}.dir")]:
            stale.unlink(missing_ok=True)
        argv = self.argv()
        self._proc = _LocalProcess(argv) if self.node is None else self.node.spawn(argv)
        self._state = "starting"

    def _await_ready(self) -> None:
        proc = self._proc
        end = time.monotonic() + self.ready_timeout
        waiter = getattr(proc, "wait_for_output", None)
        if waiter is not None:
            try:
                waiter("ready", timeout=self.ready_timeout)
            except Exception:  # noqa: BLE001 - the process state below says what happened
                pass
        while "ready" not in proc.stdout_text():
            if not proc.running or time.monotonic() > end:
                break
            time.sleep(0.02)
        if "ready" in proc.stdout_text():
            self._state = "running"
            return
        timed_out = proc.running
        proc.stop()
        self._state = "stopped"
        reason = _sniffer_complaint(proc.stderr_text()) or (
            f"no 'ready' within {self.ready_timeout} s" if timed_out else f"exit status {proc.returncode}"
        )
        raise SnifferError(f"capture on {self.name} could not start: {reason}", obj=self.name,
                           op="start capture", remedy=_remedy(reason))

    def start(self) -> Capture:
        """Start the sniffer and return once it is listening (so no packet is missed)."""
        self._launch()
        self._await_ready()
        return self

    def stop(self, grace: float = 2.0) -> Capture:
        """Stop capturing (packets already queued are still written). Safe to call twice."""
        if self._state in ("running", "starting"):
            self._proc.stop(grace)
            self._state = "stopped"
            self._check_exit()
        return self

    def _check_exit(self) -> None:
        out = self._proc.stdout_text()
        match = re.search(r"done packets=(\d+) dropped=(\d+)", out)
        if match:
            self.dropped = int(match.group(2))
        code = self._proc.returncode
        if code not in (0, None, -signal.SIGTERM, -signal.SIGKILL):
            reason = _sniffer_complaint(self._proc.stderr_text()) or f"exit status {code}"
            raise SnifferError(f"capture on {self.name} failed: {reason}", obj=self.name,
                               op="capture", remedy=_remedy(reason))

    def wait(self, timeout: float | None = None) -> Capture:
        """Wait until a bound (count, duration, max_bytes) ends the capture.

        Raises:
            TimeoutError: still running after ``timeout`` seconds (it keeps running).
        """
        if self._state == "new":
            raise CaptureError(f"capture {self.name} was never started", obj=self.name,
                               op="wait for capture", remedy="call start() first")
        end = None if timeout is None else time.monotonic() + timeout
        while self._state != "stopped" and self._proc.running:
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"capture on {self.name} still running after {timeout} s")
            time.sleep(0.02)
        if self._state != "stopped":
            self._state = "stopped"
            self._check_exit()
        return self

    @property
    def running(self) -> bool:
        """True while the sniffer is capturing."""
        return self._state == "running" and bool(self._proc.running)

    @property
    def count(self) -> int:
        """Packets written so far (grows while the capture runs)."""
        try:
            return max(0, os.stat(f"{self.path}.dir").st_size - _DIRECTION_HEADER)
        except FileNotFoundError:
            return 0

    def __enter__(self) -> Capture:
        return self.start()

    def __del__(self) -> None:
        # A claimed file that no sniffer ever wrote is not a capture: give the name back.
        if getattr(self, "_reserved", False) and getattr(self, "_state", "") == "new":
            try:
                if self.path.stat().st_size == 0:
                    self.path.unlink()
            except OSError:
                pass

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.stop()
        else:  # do not hide the error that ended the block
            try:
                self.stop()
            except CaptureError:
                pass

    # -- results -------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """The packets so far, one row each (columns: :data:`labkit.capture.COLUMNS`)."""
        from labkit.capture.decode import empty_table, read_pcap

        if self._state == "new" or not self.path.exists():
            return empty_table()
        return read_pcap(self.path, node=_node_name(self.node), interface=self.ifname,
                         allow_partial=self._state != "stopped")

    def summary(self) -> str:
        """A few plain-English lines about what was captured."""
        from labkit.capture.summary import summarize

        return summarize(self.table())

    def __repr__(self) -> str:
        state = "running" if self.running else self._state
        return f"<Capture {self.name} {state}, {self.count} packets -> {self.path}>"


def _sniffer_complaint(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("sniffer: "):
            return line[len("sniffer: "):]
    return lines[-1] if lines else ""


def _remedy(reason: str) -> str | None:
    if "no such interface" in reason:
        return "check the name with node.interfaces() or `ip link` in that node"
    if "permission" in reason:
        return "capture inside a lab node (its namespaces give the needed CAP_NET_RAW)"
    return None


class MultiCapture:
    """Capture on several interfaces (of one or several nodes) at once.

    Args:
        targets: ``(node, ifname)`` pairs, e.g. ``[(h1, "eth0"), (h2, "eth0")]``.
        filter, count, duration, max_bytes, snaplen: as for :class:`Capture`, applied
            to each interface (``count`` bounds each interface separately).
        directory: where the pcap files go (one per interface, ``NODE-IF-N.pcap``).

    :meth:`table` merges every interface into one table sorted by time, with the
    ``node`` and ``interface`` columns telling where each row was seen: follow one
    ping across veth, bridge, tunnel and the remote host.
    """

    def __init__(
        self,
        targets: Iterable[tuple[NodeLike | None, str]],
        *,
        filter: str | None = None,  # noqa: A002
        count: int | None = None,
        duration: float | None = None,
        max_bytes: int | None = None,
        directory: str | os.PathLike[str] | None = None,
        snaplen: int = 262144,
        ready_timeout: float = 10.0,
    ) -> None:
        pairs = list(targets)
        if not pairs:
            raise CaptureError("no interfaces to capture on", op="create capture",
                               remedy="pass (node, ifname) pairs, e.g. [(h1, 'eth0')]")
        seen: set[str] = set()
        self.captures: list[Capture] = []
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise CaptureError(f"capture target {pair!r} is not a (node, ifname) pair",
                                   obj=repr(pair), op="create capture",
                                   remedy="pass pairs such as (h1, 'eth0')")
            node, ifname = pair
            key = f"{_node_name(node)}:{ifname}"
            if key in seen:
                raise CaptureError(f"interface {key} is listed twice", obj=key, op="create capture",
                                   remedy="list each (node, ifname) once")
            seen.add(key)
            self.captures.append(Capture(
                node, ifname, filter=filter, count=count, duration=duration, max_bytes=max_bytes,
                directory=directory, snaplen=snaplen, ready_timeout=ready_timeout,
            ))

    def start(self) -> MultiCapture:
        """Start every sniffer, and return once all are listening."""
        try:
            for cap in self.captures:  # launch all first: they get ready in parallel
                cap._launch()
            for cap in self.captures:
                cap._await_ready()
        except BaseException:
            self._abort()
            raise
        return self

    def _abort(self) -> None:
        for cap in self.captures:
            if cap._state in ("starting", "running"):
                cap._proc.stop()
                cap._state = "stopped"

    def stop(self, grace: float = 2.0) -> MultiCapture:
        """Stop every sniffer; raise the first failure after all have stopped."""
        errors: list[CaptureError] = []
        for cap in self.captures:
            try:
                cap.stop(grace)
            except CaptureError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return self

    def wait(self, timeout: float | None = None) -> MultiCapture:
        """Wait until every capture has ended by its bounds."""
        end = None if timeout is None else time.monotonic() + timeout
        for cap in self.captures:
            left = None if end is None else max(0.0, end - time.monotonic())
            cap.wait(left)
        return self

    @property
    def running(self) -> bool:
        return any(cap.running for cap in self.captures)

    @property
    def count(self) -> int:
        """Packets written so far, all interfaces together."""
        return sum(cap.count for cap in self.captures)

    @property
    def paths(self) -> list[Path]:
        return [cap.path for cap in self.captures]

    def __enter__(self) -> MultiCapture:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except CaptureError:
                pass

    def table(self) -> pd.DataFrame:
        """Every interface's packets in one table, sorted by time; ``t`` from the first."""
        import pandas as pd

        frames = [cap.table() for cap in self.captures]
        merged = pd.concat(frames, ignore_index=True)
        if len(merged):
            merged = merged.sort_values("time", kind="stable", ignore_index=True)
            first = merged["time"].iloc[0]
            merged["t"] = (merged["time"] - first).dt.total_seconds()
        return merged

    def summary(self) -> str:
        from labkit.capture.summary import summarize

        return summarize(self.table())

    def merge(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write every interface's packets into one pcapng file, in time order.

        Wireshark then shows each packet's interface (``frame.interface_name``, as
        ``node:ifname``) and direction, so one ping can be followed across the lab.
        Returns the path (default: ``merged-N.pcapng`` beside the first capture).
        """
        if path is None:
            first = self.captures[0].path.parent
            path = next(first / f"merged-{n}.pcapng" for n in range(1, 100000)
                        if not (first / f"merged-{n}.pcapng").exists())
        sources = [(cap.path, cap.name) for cap in self.captures if cap.path.exists()]
        return merge_pcaps(sources, Path(path), allow_partial=self.running)

    def __repr__(self) -> str:
        names = ", ".join(cap.name for cap in self.captures)
        return f"<MultiCapture {names}: {self.count} packets>"


def merge_pcaps(
    sources: Iterable[tuple[str | os.PathLike[str], str]], out: Path, *, allow_partial: bool = False
) -> Path:
    """Merge pcap files into one pcapng: one interface block per source, named ``name``.

    Packets are written in timestamp order (nanosecond resolution), each with its
    direction (``epb_flags``) where the sniffer recorded one.
    """
    import struct

    import numpy as np

    from labkit.capture.decode import read_index

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    chunks = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                    + option(4, b"labkit") + option(0, b""))]
    packets: list[tuple[np.ndarray, int, Any]] = []  # (times, interface id, index)
    for ifid, (src, name) in enumerate(sources):
        rec = read_index(src, allow_partial=allow_partial)
        linktypes = set(rec.linktype.tolist()) or {1}
        if len(linktypes) > 1:
            raise CaptureError(f"{src} mixes link types; cannot merge it", obj=str(src), op="merge captures")
        chunks.append(block(1, struct.pack("<HHI", linktypes.pop(), 0, 0) + option(2, name.encode())
                            + option(9, bytes([9])) + option(0, b"")))
        packets.append((rec.ts_ns, ifid, rec))
    times = np.concatenate([p[0] for p in packets]) if packets else np.zeros(0, dtype=np.int64)
    ifids = np.concatenate([np.full(len(p[0]), p[1]) for p in packets]) if packets else times
    rows = np.concatenate([np.arange(len(p[0])) for p in packets]) if packets else times
    sort = np.lexsort((rows, ifids, times))  # by time; ties keep interface and file order
    order = zip(times[sort].tolist(), ifids[sort].tolist(), rows[sort].tolist())
    flags = {-1: b"", 0: option(2, struct.pack("<I", 1)) + option(0, b""),
             1: option(2, struct.pack("<I", 2)) + option(0, b"")}
    for when, ifid, i in order:
        rec = packets[ifid][2]
        start, cap = int(rec.offset[i]), int(rec.caplen[i])
        data = rec.data[start:start + cap].tobytes()
        body = struct.pack("<IIIII", ifid, when >> 32, when & 0xFFFFFFFF, cap, int(rec.length[i]))
        body += data + b"\0" * (-cap % 4) + flags[int(rec.direction[i])]
        chunks.append(block(6, body))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(chunks))
    return out
