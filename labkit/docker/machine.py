"""A real Docker engine on a machine of a lab: ``dockerd`` living in a node's network stack.

The multi-host lessons build their machines as lab nodes (:class:`labkit.cluster.Cluster`).
On a real host Docker runs beside the network agents and is configured from what they
decided, as seed 001 does for Flannel::

    cat /run/flannel/subnet.env                       # FLANNEL_SUBNET=10.4.41.1/24, FLANNEL_MTU=1450
    dockerd --bip=10.4.41.1/24 --mtu=1450 --ip-masq=false

:func:`engine_on` does the same for a node: it starts Debian's ``dockerd`` *in that
node's network namespace* (so ``docker0``, its veths and Docker's iptables rules appear
in the node, next to ``flannel.1`` or whatever the lesson built), with its own PID and
mount namespaces and its data on a tmpfs, exactly as :class:`~labkit.docker.hosts.DockerHost`
starts the engines of the Docker lessons::

    setpriv --pdeathsig KILL                       dies with the notebook
     └ nsenter --net=/proc/SUPERVISOR/root/run/netns/node1
        └ unshare --pid --mount --uts --fork --kill-child
           └ dockerd --host unix:///run/labkit/docker-hosts/ID/docker.sock
                     --bip=... --mtu=... (the options given)

How it ends: the engine is registered with the lab (:meth:`labkit.Lab.on_close`), so
closing the lab stops it first (its containers, then dockerd; the kernel ends the rest of
its PID namespace); if the notebook dies, ``--pdeathsig`` ends the engine with it. Only
root can start an engine, and only in a lab with named namespaces (``mode="full"``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from labkit.errors import DuplicateName, InvalidTopology, LabkitError

from .hosts import DockerHost, missing_tools, running_hosts

if TYPE_CHECKING:
    from labkit.node import Node

__all__ = ["engine_on", "engine_status"]


def engine_status() -> tuple[bool, str]:
    """Whether :func:`engine_on` can start an engine on this machine, and if not, why."""
    if os.geteuid() != 0:
        return False, "the Docker engine needs root"
    missing = missing_tools()
    if missing:
        return False, f"{', '.join(missing)} not installed (.ci/docker.sh installs docker.io)"
    return True, ""


def _netns_file(node: "Node") -> str:
    lab = node.lab
    if lab.closed:
        raise LabkitError(f"lab {lab.name} is closed", obj=lab.name, op="start Docker engine",
                          remedy="start engines while the lab is open")
    if lab.mode != "full":
        raise InvalidTopology(f"a Docker engine needs a full-mode lab (this one is {lab.mode})",
                              obj=lab.name, op="start Docker engine",
                              remedy="run the notebook as root with Lab(..., mode='auto')")
    if lab.nodes.get(node.name) is not node:
        raise InvalidTopology(f"{node.name!r} is not a node of lab {lab.name}", obj=node.name,
                              op="start Docker engine", remedy="pass one of lab.nodes")
    assert lab._client is not None
    return f"/proc/{lab._client.supervisor_pid}/root/run/netns/{node.name}"


def engine_on(node: "Node", *, args: Sequence[str] = (), address: str | None = None,
              timeout: float = 45.0) -> DockerHost:
    """Start a real ``dockerd`` in ``node``'s network namespace and return it, ready.

    ``args`` are extra dockerd options (``["--bip=10.4.41.1/24", "--mtu=1450"]``);
    ``address`` is the machine's address for a swarm (default: the node's ``ip`` if it
    has one, as a cluster machine does). The engine's base image is loaded (no registry
    needed). Talk to it with ``engine.client`` (docker-py), ``engine.cli("ps")``
    (``docker -H unix://... ps``) or ``engine.run(...)``; it stops when the lab closes.
    """
    if os.geteuid() != 0:
        raise LabkitError("starting a Docker engine needs root", obj=getattr(node, "name", "?"),
                          op="start Docker engine", remedy="run the notebook as root")
    netns = _netns_file(node)
    lab = node.lab
    assert lab._client is not None
    session = f"{lab.name[:12]}.{lab._client.supervisor_pid}"
    addr = address if address is not None else getattr(node, "ip", None)
    if any(r.get("session") == session and r.get("name") == node.name for r in running_hosts()):
        raise DuplicateName(f"{node.name} already runs a Docker engine", obj=node.name,
                            op="start Docker engine", remedy="use the engine you started, or stop it first")
    host = DockerHost(session, node.name, addr, netns=netns, args=args)
    try:
        host.start(timeout)
        from .images import ensure_base_image

        ensure_base_image(host.client)
    except BaseException:
        host.stop()
        raise
    lab.on_close(host.stop)
    return host
