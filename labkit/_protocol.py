"""Framing between a :class:`labkit.Lab` and its supervisor process.

Each message is a 4-byte big-endian length followed by that many bytes of JSON.
Requests are ``{"id": N, "op": NAME, "args": {...}}``; replies are
``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": {...}}``
where the error is :func:`labkit.errors.to_wire` data. Replies may come back in a
different order from the requests (a long command does not hold up a quick one).

A frame that arrives whole but does not hold a JSON object (or is larger than
:data:`MAX_MESSAGE`, in which case its bytes are read and dropped) raises
:class:`MalformedMessage`: the stream is still in step, so the receiver can answer with
an error and go on. Only a closed socket raises :class:`ConnectionClosed`.
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


class MalformedMessage(ValueError):
    """A whole frame arrived, but it is not a JSON object (the next frame is still readable)."""


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


def _discard(sock: socket.socket, size: int) -> None:
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionClosed("peer closed the connection")
        size -= len(chunk)


def recv(sock: socket.socket) -> dict[str, Any]:
    """The next message; :class:`MalformedMessage` if a frame is not a JSON object."""
    (size,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if size > MAX_MESSAGE:
        _discard(sock, size)
        raise MalformedMessage(f"message of {size} bytes is larger than the {MAX_MESSAGE} limit")
    data = _recv_exact(sock, size)
    try:
        message = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"message is not valid JSON ({type(exc).__name__}: "
                               f"{str(exc)[:200]})") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"message is a JSON {type(message).__name__}, not an object")
    return message
