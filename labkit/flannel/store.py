"""Where flanneld keeps its network config and leases: etcd, through one small interface.

Two registries, as flannel has had them:

* :class:`V3Registry` (flannel >= 0.18): a lease key is bound to an etcd **lease**; it
  is created with a transaction that only succeeds if the key does not exist, and
  renewed by granting a fresh etcd lease and putting the key again with it;
* :class:`V2Registry` (flannel of 2017, the seed's): a lease key has a **TTL**; it is
  created with ``prevExist=false`` and renewed by setting it again with the TTL.

Either way the key disappears by itself when its holder stops renewing it, and every
agent watching ``<prefix>/subnets/`` sees a deletion.
"""

from __future__ import annotations

import threading
from typing import Iterator, Protocol

from ..cluster.etcd import EtcdClient, EtcdV2Client, Event


class Registry(Protocol):
    api: int

    def config_key(self) -> str: ...
    def get_config(self) -> str | None: ...
    def other_api_config(self) -> str | None: ...
    def leases(self) -> tuple[dict[str, str], int]: ...
    def create_lease(self, key: str, value: str, ttl: int) -> bool: ...
    def renew_lease(self, key: str, value: str, ttl: int) -> None: ...
    def watch_leases(self, revision: int, stop: threading.Event) -> Iterator[Event]: ...


class _Registry:
    """What both registries share: the endpoint, the prefix, the config key."""

    api = 0

    def __init__(self, endpoint: str, prefix: str) -> None:
        self.endpoint = endpoint
        self.prefix = prefix.rstrip("/")
        self.client = self._client(endpoint)

    @staticmethod
    def _client(endpoint: str, timeout: float = 5.0) -> "EtcdClient | EtcdV2Client":
        raise NotImplementedError

    def config_key(self) -> str:
        return f"{self.prefix}/config"

    def get_config(self) -> str | None:
        return self.client.get(self.config_key())

    def other_api_config(self) -> str | None:
        """The config key in the *other* keyspace (written with the other etcdctl API)."""
        other = V2Registry if self.api == 3 else V3Registry
        try:
            return other._client(self.endpoint, timeout=2).get(self.config_key())
        except Exception:  # noqa: BLE001 - only a hint: the other API may be disabled
            return None


class V3Registry(_Registry):
    """The v3 keyspace, leases bound to etcd leases."""

    api = 3
    client: EtcdClient

    @staticmethod
    def _client(endpoint: str, timeout: float = 5.0) -> EtcdClient:
        return EtcdClient(endpoint, timeout=timeout)

    def leases(self) -> tuple[dict[str, str], int]:
        return self.client.get_prefix_with_revision(f"{self.prefix}/subnets/")

    def create_lease(self, key: str, value: str, ttl: int) -> bool:
        lease = self.client.lease_grant(ttl)
        if self.client.create(key, value, lease=lease):
            return True
        self.client.lease_revoke(lease)
        return False

    def renew_lease(self, key: str, value: str, ttl: int) -> None:
        self.client.put(key, value, lease=self.client.lease_grant(ttl))

    def watch_leases(self, revision: int, stop: threading.Event) -> Iterator[Event]:
        return self.client.watch(f"{self.prefix}/subnets/", revision, stop=stop)


class V2Registry(_Registry):
    """The v2 keyspace, leases as keys with a TTL."""

    api = 2
    client: EtcdV2Client

    @staticmethod
    def _client(endpoint: str, timeout: float = 5.0) -> EtcdV2Client:
        return EtcdV2Client(endpoint, timeout=timeout)

    def leases(self) -> tuple[dict[str, str], int]:
        return self.client.get_prefix_with_index(f"{self.prefix}/subnets")

    def create_lease(self, key: str, value: str, ttl: int) -> bool:
        return self.client.create(key, value, ttl=ttl)

    def renew_lease(self, key: str, value: str, ttl: int) -> None:
        self.client.set(key, value, ttl=ttl)

    def watch_leases(self, revision: int, stop: threading.Event) -> Iterator[Event]:
        return self.client.watch(f"{self.prefix}/subnets", revision, stop=stop)


def registry(api: int, endpoint: str, prefix: str) -> "V3Registry | V2Registry":
    return V3Registry(endpoint, prefix) if api == 3 else V2Registry(endpoint, prefix)
