"""etcd, for real: the daemon in the store machine, and two small clients.

* :class:`Etcd` is the notebook's handle on Debian's ``etcd`` running in the cluster's
  store machine (:meth:`labkit.cluster.Cluster.start_etcd`). The notebook kernel lives
  outside the lab's network namespaces, so its view of the store (:meth:`Etcd.get`,
  :meth:`Etcd.get_prefix`, :meth:`Etcd.put`, :meth:`Etcd.leases` ...) runs the real
  ``etcdctl`` inside the store machine and reads its JSON output: what the student
  sees is exactly what ``etcdctl`` shows.
* :class:`EtcdClient` (module ``_etcd_v3``) speaks etcd's v3 API through its JSON gateway
  with the standard library only. Agents use it from inside the lab: put, get, prefix
  reads, create-if-absent transactions, leases with keepalive and revoke, and watches.
* :class:`EtcdV2Client` (module ``_etcd_v2``) speaks the v2 API (``/v2/keys``, keys with a
  TTL), the one the 2017 commands of the seed use. **v2 and v3 keyspaces are separate.**

Both clients raise :class:`StoreUnreachable` when etcd cannot be reached and
:class:`StoreError` when etcd answers with an error.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ..errors import CommandTimeout
from ._etcd_v2 import EtcdV2Client
from ._etcd_v3 import EtcdClient, Event, StoreError, StoreUnreachable, prefix_end, unb64

if TYPE_CHECKING:
    from ..node import Node
    from ..process import Process
    from ..results import CommandResult
    from ._cluster import Cluster, ClusterNode

__all__ = ["CLIENT_PORT", "PEER_PORT", "ADDRESS_SPACE", "Etcd", "EtcdClient", "EtcdV2Client",
           "Event", "StoreError", "StoreUnreachable", "prefix_end"]

CLIENT_PORT = 2379
PEER_PORT = 2380
# etcd 3.4 memory-maps its database with a reservation as large as its backend quota
# (address space, not memory): 10 GiB with the default quota of 2 GiB, which no grading
# sandbox allows. A lesson stores a few dozen keys, so the quota is 100 MiB and etcd then
# needs about 1.5 GiB of address space (measured: it starts under `ulimit -v` 1.5 GiB,
# not under 1 GiB).
QUOTA_BYTES = 100 << 20
ADDRESS_SPACE = 1536 << 20


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
                f"--enable-v2={'true' if self.v2 else 'false'}",
                "--quota-backend-bytes", str(QUOTA_BYTES)]

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
                f"RLIMIT_AS): it maps its database and needs about "
                f"{ADDRESS_SPACE >> 20} MiB of address space (not of memory)", obj=self.endpoint,
                op="start etcd", remedy="raise the limit: when grading, `labkit grade --memory 2G` or more")
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
        return [{"key": unb64(kv["key"]), "value": unb64(kv.get("value")),
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
        return unb64(kvs[0].get("value")) if kvs else None

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
