"""etcd, for real: the daemon in the store machine, and two small clients.

* :class:`Etcd` is the notebook's handle on Debian's ``etcd`` running in the cluster's
  store machine (:meth:`labkit.cluster.Cluster.start_etcd`). The notebook kernel lives
  outside the lab's network namespaces, so its view of the store (:meth:`Etcd.get`,
  :meth:`Etcd.get_prefix`, :meth:`Etcd.put`, :meth:`Etcd.leases` ...) runs the real
  ``etcdctl`` inside the store machine and reads its JSON output: what the student
  sees is exactly what ``etcdctl`` shows.
* :class:`EtcdClient` speaks etcd's v3 API through its JSON gateway (``POST /v3/kv/put``
  ...; keys and values base64) with the standard library only. Agents use it from
  inside the lab (``python -m labkit.flannel.agent``): put, get, prefix reads,
  create-if-absent transactions, leases with keepalive and revoke, and watches.
* :class:`EtcdV2Client` speaks the v2 API (``/v2/keys``, keys with a TTL), the one the
  2017 commands of the seed use (``ETCDCTL_API=2 etcdctl set ...``). Remember that
  **v2 and v3 keyspaces are separate**: a key written with one API is invisible to the
  other.

Both clients raise :class:`StoreUnreachable` when etcd cannot be reached (a stopped
daemon, a wrong endpoint) and :class:`StoreError` when etcd answers with an error.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import CommandTimeout, LabkitError

if TYPE_CHECKING:
    from ..node import Node
    from ..process import Process
    from ..results import CommandResult
    from ._cluster import Cluster, ClusterNode

CLIENT_PORT = 2379
PEER_PORT = 2380
# etcd 3.4 memory-maps its database with a 10 GiB reservation (address space, not memory):
# under a smaller RLIMIT_AS (a grading sandbox) it cannot start.
ADDRESS_SPACE = 12 << 30


class StoreUnreachable(LabkitError, ConnectionError):
    """etcd could not be reached at its endpoint (stopped, or the address is wrong)."""


class StoreError(LabkitError, RuntimeError):
    """etcd answered, but with an error (a compacted revision, a bad request ...)."""


# -- the v3 JSON gateway ------------------------------------------------------------------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str | None) -> str:
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
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._post("/v3/kv/put", body)["header"]["revision"])

    def _range(self, key: str, prefix: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        return self._post("/v3/kv/range", body)

    def get(self, key: str) -> str | None:
        """``etcdctl get KEY``: the value, or None if the key does not exist."""
        kvs = self._range(key, False).get("kvs", [])
        return _unb64(kvs[0].get("value")) if kvs else None

    def get_prefix(self, prefix: str) -> dict[str, str]:
        """``etcdctl get --prefix PREFIX``: every key under ``prefix`` with its value."""
        return self.get_prefix_with_revision(prefix)[0]

    def get_prefix_with_revision(self, prefix: str) -> tuple[dict[str, str], int]:
        """Like :meth:`get_prefix`, plus the store's revision at that moment (to watch from)."""
        data = self._range(prefix, True)
        values = {_unb64(kv["key"]): _unb64(kv.get("value")) for kv in data.get("kvs", [])}
        return values, int(data["header"]["revision"])

    def delete(self, key: str, *, prefix: bool = False) -> int:
        """``etcdctl del KEY [--prefix]``; returns how many keys were deleted."""
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        return int(self._post("/v3/kv/deleterange", body).get("deleted", 0))

    def create(self, key: str, value: str, lease: int | None = None) -> bool:
        """Put ``key`` only if it does not exist (a transaction on ``create_revision == 0``).

        Returns False, changing nothing, if someone else holds the key: how two agents
        racing for one subnet learn that they lost.
        """
        put: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        data = self._post("/v3/kv/txn", {
            "compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL",
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
        create: dict[str, Any] = {"key": _b64(prefix), "range_end": prefix_end(prefix),
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
                yield Event(ev.get("type", "PUT"), _unb64(kv.get("key")), _unb64(kv.get("value")),
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


# -- the v2 HTTP API ------------------------------------------------------------------------

class EtcdV2Client:
    """etcd's v2 API (``/v2/keys``): what flannel before 0.18 and the seed's commands use.

    Keys expire by TTL instead of leases; ``etcdctl set``, ``mk``, ``get``, ``ls -r``,
    ``rm`` and ``watch -r`` with ``ETCDCTL_API=2`` do the same.
    """

    def __init__(self, endpoint: str, *, timeout: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<EtcdV2Client {self.endpoint}>"

    def _call(self, method: str, key: str, params: dict[str, str] | None = None,
              form: dict[str, str] | None = None, timeout: float | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}/v2/keys{urllib.parse.quote(key)}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout if timeout is None else timeout) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            body["_status"] = exc.code
            return body
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreUnreachable(f"etcd at {self.endpoint} is unreachable ({reason})",
                                   obj=self.endpoint, op=f"{method} {key}",
                                   remedy="is etcd running with --enable-v2, and the endpoint "
                                          "reachable from this machine?") from None

    def get(self, key: str) -> str | None:
        """``etcdctl get KEY`` (v2): the value, or None."""
        node = self._call("GET", key).get("node")
        return None if node is None or node.get("dir") else node.get("value")

    def get_prefix_with_index(self, directory: str) -> tuple[dict[str, str], int]:
        """``etcdctl ls -r``: every key below ``directory`` with its value, and the etcd index."""
        out: dict[str, str] = {}
        data = self._call("GET", directory.rstrip("/") or "/", {"recursive": "true"})

        def walk(node: dict[str, Any]) -> None:
            for child in node.get("nodes", []):
                if child.get("dir"):
                    walk(child)
                else:
                    out[child["key"]] = child.get("value", "")
        if "node" in data:
            walk(data["node"])
        index = int(data.get("node", {}).get("modifiedIndex", 0))
        return out, max(index, self._index())

    def get_prefix(self, directory: str) -> dict[str, str]:
        return self.get_prefix_with_index(directory)[0]

    def _index(self) -> int:
        req = urllib.request.Request(f"{self.endpoint}/v2/keys/", method="GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return int(r.headers.get("X-Etcd-Index", 0))
        except (urllib.error.URLError, OSError) as exc:
            raise StoreUnreachable(f"etcd at {self.endpoint} is unreachable ({exc})",
                                   obj=self.endpoint, op="GET /v2/keys/",
                                   remedy="is etcd running with --enable-v2?") from None

    def set(self, key: str, value: str, ttl: int | None = None) -> None:
        """``etcdctl set KEY VALUE [--ttl N]``"""
        form = {"value": value}
        if ttl:
            form["ttl"] = str(ttl)
        self._check(self._call("PUT", key, form=form), key)

    def create(self, key: str, value: str, ttl: int | None = None) -> bool:
        """``etcdctl mk KEY VALUE [--ttl N]``: only if absent; False if the key exists."""
        form = {"value": value, "prevExist": "false"}
        if ttl:
            form["ttl"] = str(ttl)
        data = self._call("PUT", key, form=form)
        if data.get("errorCode") == 105:  # "Key already exists"
            return False
        self._check(data, key)
        return True

    def refresh(self, key: str, ttl: int) -> bool:
        """Renew a key's TTL without changing its value (``etcdctl update --ttl``, refresh);
        False if the key has expired meanwhile."""
        data = self._call("PUT", key, form={"ttl": str(ttl), "refresh": "true", "prevExist": "true"})
        if data.get("errorCode") == 100:  # "Key not found"
            return False
        self._check(data, key)
        return True

    def delete(self, key: str) -> bool:
        """``etcdctl rm KEY``"""
        return self._call("DELETE", key).get("errorCode") is None

    def _check(self, data: dict[str, Any], key: str) -> None:
        if "errorCode" in data:
            raise StoreError(f"etcd v2 refused {key}: {data.get('message')} ({data.get('cause', '')})",
                             obj=key, op="v2 write", remedy="check the key and the request")

    def watch(self, directory: str, start_index: int | None = None, *,
              stop: threading.Event | None = None) -> Iterator[Event]:
        """``etcdctl watch -r DIRECTORY`` (v2): each change, expiries included (as DELETE)."""
        index = start_index
        while stop is None or not stop.is_set():
            params = {"wait": "true", "recursive": "true"}
            if index:
                params["waitIndex"] = str(index)
            try:
                data = self._call("GET", directory.rstrip("/"), params, timeout=1.0)
            except StoreUnreachable as exc:
                if "timed out" in str(exc):
                    continue
                raise
            if data.get("errorCode") == 401:  # the index was cleared: read again
                raise StoreError(f"watch on {directory}: {data.get('message')}", obj=directory,
                                 op="watch", remedy="read the store again")
            node = data.get("node")
            if node is None:
                continue
            index = int(node.get("modifiedIndex", 0)) + 1
            kind = "DELETE" if data.get("action") in ("delete", "expire", "compareAndDelete") else "PUT"
            yield Event(kind, node["key"], node.get("value", "") if kind == "PUT" else "",
                        int(node.get("modifiedIndex", 0)))


# -- the daemon ---------------------------------------------------------------------------

class Etcd:
    """Debian's etcd running in the cluster's store machine (``Cluster.start_etcd``).

    ``etcd --name host --data-dir STATE/etcd --listen-client-urls http://IP:2379,http://127.0.0.1:2379
    --advertise-client-urls http://IP:2379 --enable-v2=true ...``

    Its data directory lives in the store machine's state folder, on the lab's private
    ``/run``: it disappears with the lab, whatever ends it. :meth:`stop` and
    :meth:`start` keep the data (a restarted etcd has every key it had).
    """

    def __init__(self, cluster: "Cluster", machine: "ClusterNode", *, v2: bool = True,
                 election_ms: int = 100) -> None:
        self.cluster = cluster
        self.machine = machine
        self.v2 = v2
        self.election_ms = election_ms
        self.endpoint = f"http://{machine.ip}:{CLIENT_PORT}"
        self.data_dir = machine.state_dir + "/etcd"
        self.process: "Process | None" = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Etcd {self.endpoint} on {self.machine.name}: {state}>"

    @property
    def argv(self) -> list[str]:
        """The command line etcd is started with."""
        ip = self.machine.ip
        return ["etcd", "--name", self.machine.name, "--data-dir", self.data_dir,
                "--listen-client-urls", f"http://{ip}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}",
                "--advertise-client-urls", f"http://{ip}:{CLIENT_PORT}",
                "--listen-peer-urls", f"http://{ip}:{PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{ip}:{PEER_PORT}",
                "--initial-cluster", f"{self.machine.name}=http://{ip}:{PEER_PORT}",
                "--heartbeat-interval", str(max(10, self.election_ms // 5)),
                "--election-timeout", str(self.election_ms),
                f"--enable-v2={'true' if self.v2 else 'false'}"]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def start(self, timeout: float = 20.0) -> "Etcd":
        """Start etcd (again) and wait until it answers ``etcdctl endpoint health``."""
        if self.running:
            return self
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY and limit < ADDRESS_SPACE:
            raise StoreUnreachable(
                f"etcd cannot start under this process's address-space limit ({limit >> 20} MiB, "
                f"RLIMIT_AS): it maps its database with a 10 GiB reservation and needs about "
                f"{ADDRESS_SPACE >> 30} GiB of address space (not of memory)", obj=self.endpoint,
                op="start etcd", remedy="raise the limit: when grading, `labkit grade --memory 16G`")
        self.process = self.machine.spawn(self.argv)
        end = time.monotonic() + timeout
        while True:
            result = self.etcdctl(self.machine, "endpoint", "health", "--command-timeout=1s")
            if result.ok:
                return self
            if not self.process.running:
                raise StoreUnreachable(
                    f"etcd on {self.machine.name} exited with status {self.process.returncode}: "
                    f"{self.process.stderr_text().strip()[-400:]}",
                    obj=self.endpoint, op="start etcd", remedy="read etcd's log (etcd.log())")
            if time.monotonic() > end:
                raise CommandTimeout(f"etcd on {self.machine.name} not healthy after {timeout} s",
                                     obj=self.endpoint, op="start etcd",
                                     remedy="read etcd's log (etcd.log())")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop etcd (SIGTERM); keys stay in its data directory for the next :meth:`start`."""
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        """What etcd has printed (it logs to stderr)."""
        if self.process is None:
            return ""
        return self.process.stderr_text() + self.process.stdout_text()

    # -- etcdctl from any machine -----------------------------------------------------

    def etcdctl(self, node: "ClusterNode | Node | str", *args: str, api: int = 3,
                input: str | None = None, check: bool = False,
                timeout: float = 30.0) -> "CommandResult":
        """Run the real ``etcdctl`` in a cluster machine against this etcd::

            etcd.etcdctl("node1", "set", "/docker-test/network/config", CONFIG, api=2)
            # ETCDCTL_API=2 etcdctl --endpoints http://192.168.99.100:2379 set ...
        """
        if api not in (2, 3):
            raise StoreError(f"etcdctl API {api!r} is not known", obj=str(api), op="etcdctl",
                             remedy="use api=2 (etcdctl set/ls) or api=3 (etcdctl put/get)")
        machine = self.cluster.node(node) if isinstance(node, str) else node
        argv = ["etcdctl", "--endpoints", self.endpoint, *[str(a) for a in args]]
        return machine.run(argv, env={"ETCDCTL_API": str(api)}, input=input, check=check,
                           timeout=timeout)

    # -- the notebook's view of the store (through etcdctl in the store machine) --------

    def _json(self, *args: str) -> dict[str, Any]:
        result = self.etcdctl(self.machine, *args, "-w", "json")
        if not result.ok:
            raise StoreUnreachable(f"etcdctl {' '.join(args)} failed: "
                                   f"{(result.stderr or result.stdout).strip()[-300:]}",
                                   obj=self.endpoint, op="etcdctl " + " ".join(args),
                                   remedy="is etcd running? (etcd.start())")
        return json.loads(result.stdout or "{}")

    def kvs(self, prefix: str = "/") -> list[dict[str, Any]]:
        """``etcdctl get --prefix PREFIX -w json`` as rows: key, value, lease, revisions."""
        data = self._json("get", "--prefix", prefix)
        return [{"key": _unb64(kv["key"]), "value": _unb64(kv.get("value")),
                 "lease": int(kv.get("lease", 0)), "create_revision": int(kv.get("create_revision", 0)),
                 "mod_revision": int(kv.get("mod_revision", 0)), "version": int(kv.get("version", 0))}
                for kv in data.get("kvs", [])]

    def get_prefix(self, prefix: str = "/") -> dict[str, str]:
        """``etcdctl get --prefix PREFIX``: {key: value}."""
        return {row["key"]: row["value"] for row in self.kvs(prefix)}

    def get(self, key: str) -> str | None:
        """``etcdctl get KEY``: the value, or None."""
        data = self._json("get", key)
        kvs = data.get("kvs", [])
        return _unb64(kvs[0].get("value")) if kvs else None

    def put(self, key: str, value: str) -> None:
        """``etcdctl put KEY VALUE`` (v3)."""
        args = ["put", "--", key, value] if value.startswith("-") else ["put", key, value]
        self.etcdctl(self.machine, *args, check=True)

    def delete(self, key: str, *, prefix: bool = False) -> int:
        """``etcdctl del KEY [--prefix]``; how many keys went."""
        data = self._json("del", key, *(["--prefix"] if prefix else []))
        return int(data.get("deleted", 0))

    def lease_ttl(self, lease: int) -> int:
        """``etcdctl lease timetolive ID``: seconds left, -1 once the lease is gone."""
        data = self._json("lease", "timetolive", format(int(lease), "x"))
        return int(data.get("ttl", -1))

    def leases(self) -> list[int]:
        """``etcdctl lease list``: the IDs of the live leases."""
        return [int(item["id"]) for item in self._json("lease", "list").get("leases", [])]

    def get_v2(self, directory: str = "/") -> dict[str, str]:
        """Every key below ``directory`` in the **v2** keyspace (``etcdctl ls -r`` + ``get``).

        Read with the :class:`EtcdV2Client` run in the store machine (``python -m
        labkit.cluster.etcd v2-dump DIRECTORY``).
        """
        import sys

        result = self.machine.run([sys.executable, "-m", "labkit.cluster.etcd", "v2-dump",
                                   self.endpoint, directory], check=True)
        return dict(json.loads(result.stdout))


def _main(argv: list[str]) -> int:
    """``python -m labkit.cluster.etcd v2-dump ENDPOINT DIR``: the v2 keys below DIR, as JSON."""
    if len(argv) != 3 or argv[0] != "v2-dump":
        print("usage: python -m labkit.cluster.etcd v2-dump ENDPOINT DIRECTORY")
        return 2
    print(json.dumps(EtcdV2Client(argv[1]).get_prefix(argv[2])))
    return 0


if __name__ == "__main__":
    import sys as _sys

    raise SystemExit(_main(_sys.argv[1:]))
