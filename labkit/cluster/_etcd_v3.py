"""etcd's v3 API over its JSON gateway, standard library only: what agents use.

``POST /v3/kv/put``, ``/v3/kv/range``, ``/v3/kv/deleterange``, ``/v3/kv/txn``,
``/v3/lease/grant``, ``/v3/lease/keepalive``, ``/v3/lease/revoke``, ``/v3/watch``; keys and
values travel base64-encoded. Errors: :class:`StoreUnreachable` when etcd cannot be
reached (a stopped daemon, a wrong endpoint), :class:`StoreError` when it answers with an
error. Import these from :mod:`labkit.cluster.etcd` (or :mod:`labkit.cluster`).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import LabkitError


# What etcd's HTTP gateway says while the server behind it shuts down or has no leader.
_GOING_AWAY = ("connection is closing", "transport is closing", "server stopped", "unavailable",
               "no leader", "leader changed")


class StoreUnreachable(LabkitError, ConnectionError):
    """etcd could not be reached at its endpoint (stopped, or the address is wrong)."""


class StoreError(LabkitError, RuntimeError):
    """etcd answered, but with an error (a compacted revision, a bad request ...)."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str | None) -> str:
    return base64.b64decode(text or "").decode(errors="replace")


def prefix_end(prefix: str) -> str:
    """The ``range_end`` that makes a range cover every key starting with ``prefix``."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return base64.b64encode(bytes(raw)).decode()
        raw.pop()
    return base64.b64encode(b"\0").decode()


@dataclass(frozen=True)
class Event:
    """One change seen by a watch: ``type`` is ``"PUT"`` or ``"DELETE"`` (deletion and
    lease expiry both give ``DELETE``); ``value`` is empty for a deletion."""

    type: str
    key: str
    value: str
    revision: int
    lease: int = 0


class EtcdClient:
    """etcd's v3 API over HTTP/JSON, standard library only.

    ::

        store = EtcdClient("http://192.168.99.100:2379")
        lease = store.lease_grant(30)
        store.create("/coreos.com/network/subnets/10.4.41.0-24", "{...}", lease=lease)
        store.lease_keepalive(lease)
        for event in store.watch("/coreos.com/network/subnets/"):
            print(event.type, event.key)

    ``etcdctl put``, ``get``, ``get --prefix``, ``del``, ``lease grant/keep-alive/revoke``
    and ``watch --prefix`` do the same through gRPC.
    """

    def __init__(self, endpoint: str, *, timeout: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<EtcdClient {self.endpoint}>"

    def _open(self, path: str, body: dict[str, Any], timeout: float | None) -> Any:
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error") or json.loads(detail).get("message") or detail
            except ValueError:
                pass
            if exc.code in (502, 503, 504) or any(s in str(detail).lower() for s in _GOING_AWAY):
                # etcd's HTTP gateway answered, but the server behind it is stopping or has
                # no leader: as unreachable as a refused connection, and as worth retrying
                raise StoreUnreachable(f"etcd at {self.endpoint} is unavailable ({detail})",
                                       obj=self.endpoint, op=path,
                                       remedy="is etcd running (cluster.etcd.start())?") from None
            raise StoreError(f"etcd at {self.endpoint} refused {path}: {detail}", obj=self.endpoint,
                             op=path, remedy="check the request (key, lease ID, revision)") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreUnreachable(f"etcd at {self.endpoint} is unreachable ({reason})",
                                   obj=self.endpoint, op=path,
                                   remedy="is etcd running (cluster.etcd.start()) and is the "
                                          "endpoint's address reachable from this machine?") from None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._open(path, body, self.timeout) as resp:
            data = json.loads(resp.read() or b"{}")
        return data

    # -- keys --------------------------------------------------------------------------

    def put(self, key: str, value: str, lease: int | None = None) -> int:
        """``etcdctl put KEY VALUE [--lease=ID]``; returns the new revision."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._post("/v3/kv/put", body)["header"]["revision"])

    def _range(self, key: str, prefix: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        return self._post("/v3/kv/range", body)

    def get(self, key: str) -> str | None:
        """``etcdctl get KEY``: the value, or None if the key does not exist."""
        kvs = self._range(key, False).get("kvs", [])
        return unb64(kvs[0].get("value")) if kvs else None

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """``etcdctl get --prefix PREFIX``: every key under ``prefix`` with its value."""
        return self.get_prefix_with_revision(prefix)[0]

    def get_prefix_with_revision(self, prefix: str) -> tuple[dict[str, str], int]:
        """Like :meth:`get_prefix`, plus the store's revision at that moment (to watch from)."""
        data = self._range(prefix, True)
        values = {unb64(kv["key"]): unb64(kv.get("value")) for kv in data.get("kvs", [])}
        return values, int(data["header"]["revision"])

    def delete(self, key: str, *, prefix: bool = False) -> int:
        """``etcdctl del KEY [--prefix]``; returns how many keys were deleted."""
        body: dict[str, Any] = {"key": b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        return int(self._post("/v3/kv/deleterange", body).get("deleted", 0))

    def create(self, key: str, value: str, lease: int | None = None) -> bool:
        """Put ``key`` only if it does not exist (a transaction on ``create_revision == 0``).

        Returns False, changing nothing, if someone else holds the key: how two agents
        racing for one subnet learn that they lost.
        """
        put: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            put["lease"] = str(lease)
        data = self._post("/v3/kv/txn", {
            "compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL",
                         "create_revision": "0"}],
            "success": [{"request_put": put}]})
        return bool(data.get("succeeded"))

    # -- leases ------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        """``etcdctl lease grant TTL``: a new lease ID; keys bound to it vanish when it expires."""
        return int(self._post("/v3/lease/grant", {"TTL": int(ttl)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Renew a lease once (``etcdctl lease keep-alive --once ID``); returns its new TTL,
        0 if the lease has already expired (its keys are gone)."""
        with self._open("/v3/lease/keepalive", {"ID": str(lease)}, self.timeout) as resp:
            line = resp.readline()
        result = json.loads(line or b"{}").get("result", {})
        return int(result.get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        """``etcdctl lease revoke ID``: the lease ends now and its keys are deleted."""
        try:
            self._post("/v3/lease/revoke", {"ID": str(lease)})
        except StoreError:
            pass  # already expired: nothing left to revoke

    def lease_ttl(self, lease: int) -> int:
        """``etcdctl lease timetolive ID``: seconds left (-1 if the lease no longer exists)."""
        return int(self._post("/v3/lease/timetolive", {"ID": str(lease)}).get("TTL", -1))

    # -- watching ----------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int | None = None, *,
              stop: threading.Event | None = None) -> Iterator[Event]:
        """``etcdctl watch --prefix PREFIX``: yield each change as it happens.

        ``start_revision`` replays the changes since that revision first (use the
        revision of a :meth:`get_prefix_with_revision` read plus one, so nothing falls
        between the read and the watch). The iterator ends when ``stop`` is set (checked
        about once a second) and raises :class:`StoreUnreachable` if the connection is
        lost, :class:`StoreError` if etcd cancels the watch (e.g. a compacted revision).
        """
        create: dict[str, Any] = {"key": b64(prefix), "range_end": prefix_end(prefix),
                                  "progress_notify": True}
        if start_revision:
            create["start_revision"] = str(start_revision)
        for line in self._stream("/v3/watch", {"create_request": create}, stop):
            data = json.loads(line)
            if "error" in data:
                raise StoreError(f"watch on {prefix}: {data['error'].get('message')}",
                                 obj=prefix, op="watch", remedy="read the store again")
            result = data.get("result", {})
            if result.get("canceled"):
                raise StoreError(f"etcd cancelled the watch on {prefix} "
                                 f"({result.get('cancel_reason') or 'compacted'})",
                                 obj=prefix, op="watch", remedy="read the store again")
            for ev in result.get("events", []):
                kv = ev.get("kv", {})
                yield Event(ev.get("type", "PUT"), unb64(kv.get("key")), unb64(kv.get("value")),
                            int(kv.get("mod_revision", 0)), int(kv.get("lease", 0)))

    def _stream(self, path: str, body: dict[str, Any],
                stop: threading.Event | None) -> Iterator[bytes]:
        """POST ``body`` and yield the lines of the chunked answer as they arrive, checking
        ``stop`` about once a second (plain sockets: a timed-out urllib response cannot
        be read again)."""
        url = urllib.parse.urlsplit(self.endpoint)
        lost = dict(obj=self.endpoint, op=path, remedy="etcd stopped or became unreachable")
        payload = json.dumps(body).encode()
        try:
            sock = socket.create_connection((url.hostname, url.port or 80), timeout=self.timeout)
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                         "Content-Type: application/json\r\nConnection: close\r\n"
                         f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        except OSError as exc:
            raise StoreUnreachable(f"etcd at {self.endpoint} is unreachable ({exc})", **lost) from None
        sock.settimeout(1.0)
        raw, data, head = b"", b"", None
        try:
            while stop is None or not stop.is_set():
                try:
                    got = sock.recv(65536)
                except (socket.timeout, TimeoutError):
                    continue
                except OSError as exc:
                    raise StoreUnreachable(f"{path} on {self.endpoint} lost ({exc})", **lost) from None
                if not got:
                    raise StoreUnreachable(f"etcd at {self.endpoint} closed {path}", **lost)
                raw += got
                if head is None:
                    if b"\r\n\r\n" not in raw:
                        continue
                    head, raw = raw.split(b"\r\n\r\n", 1)
                    status = head.split(b"\r\n", 1)[0]
                    if any(f" {code} ".encode() in status + b" " for code in (502, 503, 504)):
                        raise StoreUnreachable(f"etcd at {self.endpoint} is unavailable for {path}: "
                                               f"{status.decode(errors='replace')}", **lost)
                    if b" 200 " not in status + b" ":
                        raise StoreError(f"etcd at {self.endpoint} refused {path}: "
                                         f"{status.decode(errors='replace')}", obj=self.endpoint,
                                         op=path, remedy="check the request")
                while b"\r\n" in raw:  # chunked transfer coding: SIZE CRLF DATA CRLF
                    size_line, rest = raw.split(b"\r\n", 1)
                    size = int(size_line.split(b";")[0] or b"0", 16)
                    if size == 0:
                        raise StoreUnreachable(f"etcd at {self.endpoint} ended {path}", **lost)
                    if len(rest) < size + 2:
                        break
                    data += rest[:size]
                    raw = rest[size + 2:]
                while b"\n" in data:
                    line, data = data.split(b"\n", 1)
                    if line.strip():
                        yield line
        finally:
            sock.close()
