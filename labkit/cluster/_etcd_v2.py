"""etcd's v2 API (``/v2/keys``), standard library only: the keyspace of the 2017 commands.

flannel before 0.18 and the seed's ``ETCDCTL_API=2 etcdctl set ...`` use it. Keys expire
by TTL instead of leases. **v2 and v3 keyspaces are separate**: a key written with one
API is invisible to the other. Import from :mod:`labkit.cluster.etcd`.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator

from ._etcd_v3 import Event, StoreError, StoreUnreachable


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
