"""Framing between a :class:`labkit.Lab` and its supervisor process.

Each message is a 4-byte big-endian length followed by that many bytes of JSON.
Requests are ``{"id": N, "op": NAME, "args": {...}}``; replies are
``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": {...}}``
where the error is :func:`labkit.errors.to_wire` data. Replies may come back in a
different order from the requests (a long command does not hold up a quick one).
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_LEN = struct.Struct("!I")
MAX_MESSAGE = 64 * 1024 * 1024


class ConnectionClosed(EOFError):
    """The other side closed the socket."""


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> dict[str, Any]:
    (size,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if size > MAX_MESSAGE:
        raise ConnectionClosed(f"message of {size} bytes is larger than the {MAX_MESSAGE} limit")
    return json.loads(_recv_exact(sock, size))
