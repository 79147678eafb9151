"""What lab operations return: plain dataclasses, and parsers for tool output.

The parsers are pure functions of text (unit-tested on captured output); the
dataclasses render as short tables in a notebook and convert to dicts for pandas.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import CommandFailed


@dataclass(frozen=True)
class CommandResult:
    """The outcome of a command run in a node."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    node: str = ""
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> "CommandResult":
        """Return self, or raise :class:`CommandFailed` if the command failed."""
        if self.returncode != 0:
            cmd = " ".join(self.argv)
            detail = (self.stderr.strip() or self.stdout.strip()).splitlines()
            raise CommandFailed(
                f"`{cmd}` on node {self.node!r} exited with status {self.returncode}"
                + (f": {detail[-1]}" if detail else ""),
                returncode=self.returncode, stdout=self.stdout, stderr=self.stderr,
                obj=self.node, op=cmd, remedy="its last line is quoted above; the whole output is in the error's .stderr and .stdout")
        return self

    def __str__(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class PingReply:
    seq: int
    ttl: int
    rtt_ms: float
    source: str


@dataclass(frozen=True)
class PingResult:
    """A ``ping`` run: counts, round-trip times, each reply, and any errors reported."""

    destination: str
    sent: int
    received: int
    rtt_min: float | None
    rtt_avg: float | None
    rtt_max: float | None
    replies: list[PingReply] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    route: list[str] = field(default_factory=list)  # addresses recorded with -R
    source_node: str = ""
    raw: str = ""

    @property
    def loss(self) -> float:
        """Fraction of echo requests that got no reply (0.0 to 1.0)."""
        return 1.0 if self.sent == 0 else (self.sent - self.received) / self.sent

    @property
    def ok(self) -> bool:
        return self.received > 0

    def __bool__(self) -> bool:
        return self.ok

    def rows(self) -> list[dict[str, Any]]:
        """One dict per reply, for a DataFrame or a plot."""
        return [asdict(reply) for reply in self.replies]

    def __str__(self) -> str:
        head = f"ping {self.source_node} -> {self.destination}: {self.received}/{self.sent} replies"
        if self.received:
            head += f", rtt min/avg/max {self.rtt_min:.3f}/{self.rtt_avg:.3f}/{self.rtt_max:.3f} ms"
            head += f", ttl {self.replies[0].ttl}" if self.replies else ""
        if self.errors:
            head += f" ({self.errors[0]})"
        return head

    def _repr_markdown_(self) -> str:
        return f"`{self}`"


@dataclass(frozen=True)
class Hop:
    """One line of a traceroute: the hop number, who answered, and the probe times."""

    ttl: int
    addresses: list[str]
    rtts_ms: list[float]
    annotations: list[str] = field(default_factory=list)

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


_PING_REPLY = re.compile(
    r"bytes from (?P<src>[0-9a-fA-F.:]+?):? .*?icmp_seq=(?P<seq>\d+) ttl=(?P<ttl>\d+) time=(?P<rtt>[\d.]+) ms")
_PING_STATS = re.compile(r"(?P<sent>\d+) packets transmitted, (?P<recv>\d+) (?:packets )?received")
_PING_RTT = re.compile(r"= (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+)/[\d.]+ ms")
_PING_ERROR = re.compile(r"(From \S+ icmp_seq=\d+ .+|ping: .+)")


def parse_ping(text: str, destination: str, source_node: str = "") -> PingResult:
    """Parse iputils ``ping -n`` output."""
    replies = [PingReply(int(m["seq"]), int(m["ttl"]), float(m["rtt"]), m["src"])
               for m in _PING_REPLY.finditer(text)]
    stats = _PING_STATS.search(text)
    rtt = _PING_RTT.search(text)
    errors_seen: list[str] = []
    for match in _PING_ERROR.finditer(text):
        line = match.group(1).strip()
        if line not in errors_seen:
            errors_seen.append(line)
    route: list[str] = []
    rr = re.search(r"RR:\s+(.*?)(?:\n\n|\n\d+ bytes|\n---)", text, re.S)
    if rr:
        route = [tok for tok in rr.group(1).split() if re.match(r"^[0-9a-fA-F.:]+$", tok)]
    sent = int(stats["sent"]) if stats else 0
    received = int(stats["recv"]) if stats else len(replies)
    return PingResult(destination=destination, sent=sent, received=received,
                      rtt_min=float(rtt["min"]) if rtt else None,
                      rtt_avg=float(rtt["avg"]) if rtt else None,
                      rtt_max=float(rtt["max"]) if rtt else None,
                      replies=replies, errors=errors_seen, route=route,
                      source_node=source_node, raw=text)


_ADDR = re.compile(r"^[0-9a-fA-F.:]+$")


def parse_traceroute(text: str) -> list[Hop]:
    """Parse ``traceroute -n`` output into hops."""
    hops: list[Hop] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].isdigit():
            continue
        ttl = int(parts[0])
        addresses: list[str] = []
        rtts: list[float] = []
        notes: list[str] = []
        tokens = parts[1:]
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "*":
                i += 1
            elif i + 1 < len(tokens) and tokens[i + 1] == "ms":
                rtts.append(float(tok))
                i += 2
            elif tok.startswith("!"):
                notes.append(tok)
                i += 1
            elif _ADDR.match(tok):
                if tok not in addresses:
                    addresses.append(tok)
                i += 1
            else:
                i += 1
        hops.append(Hop(ttl, addresses, rtts, notes))
    return hops
