"""The multi-host layer every orchestrator lesson stands on: a cluster, etcd, agents.

::

    from labkit import Lab
    from labkit.cluster import Cluster

    with Lab("flannel") as lab:
        cluster = Cluster(lab)            # host .100, node1 .101, node2 .102 on 192.168.99.0/24
        etcd = cluster.start_etcd()       # Debian's etcd in `host`, v2 and v3 APIs
        etcd.etcdctl("node1", "set", "/docker-test/network/config", '{"Network": "10.4.0.0/16"}',
                     api=2)               # ETCDCTL_API=2 etcdctl --endpoints ... set ...
        node1 = cluster["node1"]
        node1.add_bridge("docker0", address="10.4.41.1/24")
        c1 = node1.add_container("c1", address="10.4.41.2/24")
        agent = node1.spawn_agent("labkit.flannel.agent", "--etcd-endpoints", etcd.endpoint)

API (stable: later versions add, never rename or remove)
--------------------------------------------------------
:class:`Cluster` ``(lab, *, nodes=("node1", "node2"), store="host", underlay="192.168.99.0/24",
nic="eth1", mtu=1500, switch="underlay")``
    A switch node ``underlay`` (one bridge: seed 001's host-only network) and router
    nodes plugged into it by their card ``nic``: the store machine at ``.100`` (``store=None``
    for none), the workers at ``.101``, ``.102`` ... Forwarding is on everywhere.
    ``Cluster.sized(lab, n, **kw)``: workers ``node1`` .. ``nodeN``.
    Attributes: ``lab``, ``nodes`` (workers, in order), ``store`` (or None),
    ``machines`` (store + workers), ``underlay`` (IPv4Network), ``nic``, ``mtu``,
    ``switch`` (the switch Node), ``etcd`` (after :meth:`Cluster.start_etcd`),
    ``state_root``. Methods: ``node(name)`` / ``cluster[name]`` -> ClusterNode,
    ``start_etcd(*, v2=True, election_ms=100) -> Etcd``, ``describe() -> dict``,
    ``static_routes({machine: subnet})`` (routes via the owners' underlay addresses),
    ``ping_all(targets=None, *, sources=None, count=1, wait=1.0) -> {(src, label): bool}``
    (all pings in parallel).

:class:`ClusterNode`
    A subclass of :class:`labkit.Node`: it *is* the lab's node for that machine
    (``lab.nodes[name]``), so every Node method (``run``, ``ping``, ``routes``,
    ``capture`` ...) and every API taking a node accept it; ``node`` returns itself.
    ``name``, ``ip``, ``nic``, ``role``
    (``"store"``/``"worker"``), ``cluster``, ``containers``, ``state_dir``;
    ``path("/run/flannel/subnet.env") -> str`` (the real path of that machine's file),
    ``read_text(path) -> str | None``, ``write_text(path, text) -> str``,
    ``add_bridge(name="docker0", address=None, mtu=None)``,
    ``add_container(name, *, address, bridge="docker0", gateway=None, mtu=None) -> Node``,
    ``spawn_agent(module, *args, env=None) -> Process``.

:class:`Etcd` (``labkit.cluster.etcd``)
    ``endpoint`` (``http://STORE_IP:2379``), ``process``, ``running``, ``argv``,
    ``data_dir``, ``start()``, ``stop()``, ``log()``,
    ``etcdctl(machine, *args, api=3, input=None, check=False) -> CommandResult``
    (the real etcdctl in any machine, ``ETCDCTL_API`` and ``--endpoints`` set);
    the notebook's view, through etcdctl in the store machine: ``get(key)``,
    ``get_prefix(prefix)``, ``kvs(prefix)`` (rows with lease and revisions),
    ``put(key, value)``, ``delete(key, prefix=False)``, ``leases()``, ``lease_ttl(id)``,
    ``get_v2(directory)`` (the separate v2 keyspace).

:class:`EtcdClient` ``(endpoint, *, timeout=5.0)`` — for agents inside the lab
    etcd v3 through its JSON gateway, standard library only: ``put(key, value, lease=None)``,
    ``get(key)``, ``get_prefix(prefix)``, ``get_prefix_with_revision(prefix)``,
    ``delete(key, prefix=False)``, ``create(key, value, lease=None) -> bool``,
    ``lease_grant(ttl)``, ``lease_keepalive(id) -> ttl``, ``lease_revoke(id)``,
    ``lease_ttl(id)``, ``watch(prefix, start_revision=None, *, stop=None)`` -> :class:`Event`
    (``type`` PUT/DELETE, ``key``, ``value``, ``revision``, ``lease``).
    :class:`EtcdV2Client`: the same for the v2 keyspace (``set``, ``create`` (``mk``),
    ``refresh`` (TTL), ``get``, ``get_prefix``, ``delete``, ``watch``).
    Errors: :class:`StoreUnreachable` (LabkitError, ConnectionError),
    :class:`StoreError` (LabkitError, RuntimeError).

``labkit.cluster.agent`` — the agents' runtime
    ``GlogLogger`` (``info/warning/error(msg, src="main.go:NNN")``), ``Agent`` (signals,
    ``stopping``, ``sleep``, ``main``), ``Reconciler`` (snapshot + sync, watch + handle,
    periodic resync and tick, store retries), kernel helpers ``sh``, ``ip_batch``, ``bridge_batch``,
    ``ip_json``, ``iptables_restore``, ``write_file``, ``machine_path`` (``/run/x`` of this
    machine, from ``LABKIT_STATE_DIR`` which ``spawn_agent`` sets with ``LABKIT_MACHINE``),
    ``backoff``; command-line checks shared by every agent (a bad value: one line, exit
    status 2): ``Seconds(what, least=, most=, unit=, whole=)`` (an argparse type, ``.check(value,
    name=, op=)`` for the notebook side raising InvalidTopology, ``.flag(seconds)``),
    ``positive_seconds``, ``RESYNC``, ``MAX_SECONDS`` (etcd's largest lease TTL, 9e9 s),
    ``duration``, ``whole_number``, ``ipv4``, ``etcd_endpoints`` (comma list of URLs),
    ``first_reachable``, ``machine_file``, ``checked_by(check)``;
    ``exited_at_startup(proc, what, op=, remedy=) -> AgentExited`` (status and last line);
    error ``AgentCommandFailed``.

Where files live (a deviation from the first plan, on purpose): each machine's state
folder is ``<lab scratch>/cluster/<machine>``, on the lab's private ``/run`` tmpfs (or its
private temporary folder in restricted labs), not in the notebook's workdir: it vanishes
with the lab however the lab ends, SIGKILL of the notebook included. The notebook reads
those files through the machine (``read_text``, or ``node.run(["cat", path])``), exactly
as a student would ``cat`` them on a real host.
"""

from ._cluster import Cluster, ClusterNode
from .etcd import Etcd, EtcdClient, EtcdV2Client, Event, StoreError, StoreUnreachable

__all__ = ["Cluster", "ClusterNode", "Etcd", "EtcdClient", "EtcdV2Client", "Event",
           "StoreError", "StoreUnreachable"]
