"""Docker containers and networks made by the course: labelled, listed and removed by label.

Every container and network the course creates carries two labels::

    io.labkit.course=container-networking-labs     # "made by this course"
    io.labkit.session=NAME                         # which notebook or test made it

so that ``clean()`` (``labkit clean``) removes exactly what the course made, and nothing
else on the machine, whatever happened to the notebook that made it::

    docker ps -a --filter label=io.labkit.course     # what clean() would remove
    docker network ls --filter label=io.labkit.course

:class:`DockerLab` groups one notebook's resources and removes them when it closes::

    with DockerLab("20-docker-networks") as dl:
        dl.network("bridge_test", subnet="172.18.0.0/16")  # docker network create --subnet ...
        db = dl.run("db", network="bridge_test")           # docker run -d --name db --net bridge_test ...
        web = dl.run("web")                                # docker run -d --name web ...
        db.ping("web")                                     # docker exec db ping -c 1 web
        web_ns = dl.netns(web)                             # a labkit Node: web's network namespace
        web_ns.interfaces()                                # ip -j link, inside the container

A :class:`ContainerNode` is a running container seen the way a lab node is: ``run``
and ``ping`` go through ``docker exec`` with the container's own busybox tools and
resolver (so names resolve as the container sees them), and ``netns(lab)`` gives the
labkit :class:`~labkit.Node` of its network namespace for everything the kernel can
tell (interfaces, addresses, routes, captures).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from labkit.errors import InvalidTopology, LabkitError, NotFound
from labkit.results import CommandResult, PingReply, PingResult

if TYPE_CHECKING:
    from labkit.lab import Lab
    from labkit.model import Interface
    from labkit.node import Node

__all__ = ["COURSE_LABEL", "COURSE_VALUE", "SESSION_LABEL", "IMAGE_LABEL", "LOCAL_DNS",
           "DNS_OPTIONS", "labels", "DockerLab", "ContainerNode", "CleanReport", "clean",
           "list_resources",
           "parse_busybox_ping", "parse_nslookup", "network_summary", "gateway_of",
           "peer_interface"]

COURSE_LABEL = "io.labkit.course"
COURSE_VALUE = "container-networking-labs"
SESSION_LABEL = "io.labkit.session"
IMAGE_LABEL = "io.labkit.image"
"""Carried by the course's images (``io.labkit.image=base``), kept as a cache."""

LOCAL_DNS = ("127.0.0.1",)
"""The upstream DNS server given to every course container (``docker run --dns 127.0.0.1``).

Names Docker itself knows (containers on a user-defined network, ``--link`` aliases)
are answered as usual; a name it does not know is sent to the container's own
loopback, where nothing listens, instead of to the host's resolvers: the lessons
never send a packet off the machine, and give the same answer with or without a
network."""

DNS_OPTIONS = ("timeout:1", "attempts:1")
"""Resolver options of course containers (``--dns-opt timeout:1 --dns-opt attempts:1``):
a name nobody knows fails after a second instead of ten."""

_KEEP_ALIVE = ["sleep", "86400"]


def labels(session: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The labels of a course resource (``--label io.labkit.course=... --label io.labkit.session=...``)."""
    out = {COURSE_LABEL: COURSE_VALUE}
    if session:
        out[SESSION_LABEL] = session
    out.update(extra or {})
    return out


def _filters(session: str | None) -> dict[str, Any]:
    wanted = [f"{COURSE_LABEL}={COURSE_VALUE}"]
    if session:
        wanted.append(f"{SESSION_LABEL}={session}")
    return {"label": wanted}


def _client(client: Any) -> Any:
    if client is not None:
        return client
    from .engine import connect

    return connect()


# --------------------------------------------------------------------------------------
# Listing and cleaning
# --------------------------------------------------------------------------------------

@dataclass
class CleanReport:
    """What :func:`clean` removed, and what it could not remove (with the reason)."""

    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.images) + len(self.hosts)

    def __str__(self) -> str:
        parts = [f"{len(getattr(self, k))} {k}" + (f" ({', '.join(getattr(self, k))})"
                                                     if getattr(self, k) else "")
                 for k in ("containers", "networks", "images", "hosts")]
        text = "removed " + ", ".join(parts)
        if self.failed:
            text += "; could not remove: " + "; ".join(self.failed)
        return text


def clean(client: Any = None, *, session: str | None = None, images: bool = False,
          hosts: bool = True) -> CleanReport:
    """Remove every container and network the course labelled (of one ``session`` if given).

    ``docker rm -f $(docker ps -aq --filter label=io.labkit.course)``, then
    ``docker network rm $(docker network ls -q --filter label=io.labkit.course)``;
    with ``images=True`` (and no ``session``) also the course's images
    (``--filter label=io.labkit.image``), otherwise kept as a cache;
    with ``hosts=True`` (and no ``session``) also the extra engines of the multi-host
    lessons (:mod:`labkit.docker.hosts`). Only resources carrying the labels are touched.
    """
    import docker.errors

    report = CleanReport()
    if hosts and session is None:
        from .hosts import clean_hosts

        report.hosts.extend(clean_hosts())
    client = _client(client)
    for ctr in client.containers.list(all=True, filters=_filters(session)):
        try:
            ctr.remove(force=True, v=True)
            report.containers.append(ctr.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            report.failed.append(f"container {ctr.name}: {exc.explanation or exc}")
    for net in client.networks.list(filters=_filters(session)):
        try:
            net.remove()
            report.networks.append(net.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            report.failed.append(f"network {net.name}: {exc.explanation or exc}")
    if images and session is None:
        for image in client.images.list(filters={"label": [IMAGE_LABEL]}):
            name = image.tags[0] if image.tags else image.short_id
            try:
                client.images.remove(image.id, force=True)
                report.images.append(name)
            except docker.errors.APIError as exc:
                report.failed.append(f"image {name}: {exc.explanation or exc}")
    return report


def list_resources(client: Any = None, *, session: str | None = None,
                   images: bool = False) -> Any:
    """A DataFrame of the course's labelled containers and networks (and images if asked).

    ``docker ps -a --filter label=io.labkit.course``; ``docker network ls --filter ...``
    """
    import pandas as pd

    client = _client(client)
    rows = []
    for ctr in client.containers.list(all=True, filters=_filters(session)):
        rows.append({"kind": "container", "name": ctr.name, "id": ctr.short_id,
                     "session": ctr.labels.get(SESSION_LABEL, ""), "status": ctr.status})
    for net in client.networks.list(filters=_filters(session)):
        rows.append({"kind": "network", "name": net.name, "id": net.short_id,
                     "session": net.attrs.get("Labels", {}).get(SESSION_LABEL, ""),
                     "status": net.attrs.get("Driver", "")})
    if images:
        for image in client.images.list(filters={"label": [IMAGE_LABEL]}):
            rows.append({"kind": "image", "name": image.tags[0] if image.tags else "",
                         "id": image.short_id, "session": "", "status": "cached"})
    return pd.DataFrame(rows, columns=["kind", "name", "id", "session", "status"])


# --------------------------------------------------------------------------------------
# Parsing what busybox prints
# --------------------------------------------------------------------------------------

_BB_REPLY = re.compile(r"bytes from (?P<src>[0-9a-fA-F.:]+): seq=(?P<seq>\d+) ttl=(?P<ttl>\d+) "
                       r"time=(?P<rtt>[\d.]+) ms")
_BB_STATS = re.compile(r"(?P<sent>\d+) packets transmitted, (?P<recv>\d+) packets received")
_BB_RTT = re.compile(r"min/avg/max = (?P<min>[\d.]+)/(?P<avg>[\d.]+)/(?P<max>[\d.]+) ms")
_BB_ERROR = re.compile(r"^(ping: .+)$", re.M)
_BB_RESOLVED = re.compile(r"^PING (?P<name>\S+) \((?P<addr>[0-9a-fA-F.:]+)\)", re.M)


def parse_busybox_ping(text: str, destination: str, source: str = "") -> PingResult:
    """Parse the output of busybox ``ping`` (``seq=`` rather than iputils' ``icmp_seq=``)."""
    replies = [PingReply(int(m["seq"]), int(m["ttl"]), float(m["rtt"]), m["src"])
               for m in _BB_REPLY.finditer(text)]
    stats = _BB_STATS.search(text)
    rtt = _BB_RTT.search(text)
    errors = list(dict.fromkeys(m.group(1).strip() for m in _BB_ERROR.finditer(text)))
    return PingResult(destination=destination, sent=int(stats["sent"]) if stats else 0,
                      received=int(stats["recv"]) if stats else len(replies),
                      rtt_min=float(rtt["min"]) if rtt else None,
                      rtt_avg=float(rtt["avg"]) if rtt else None,
                      rtt_max=float(rtt["max"]) if rtt else None,
                      replies=replies, errors=errors, source_node=source, raw=text)


def parse_nslookup(text: str) -> list[str]:
    """The addresses busybox ``nslookup NAME`` found (not the server's own address)."""
    found: list[str] = []
    answering = False
    for line in text.splitlines():
        if line.startswith("Name:"):
            answering = True
        elif answering and line.startswith("Address"):
            addr = line.split(":", 1)[1].strip().split()[0]
            if addr not in found:
                found.append(addr)
    return found


# --------------------------------------------------------------------------------------
# A container seen as a lab node
# --------------------------------------------------------------------------------------

class ContainerNode:
    """A running container: ``docker exec`` for commands, its namespace for the kernel's view."""

    def __init__(self, container: Any, owner: "DockerLab | None" = None) -> None:
        self.container = container
        self.owner = owner
        self.host_pid: Any = None
        """For containers of another engine's PID namespace: maps its PIDs to ours."""

    @property
    def name(self) -> str:
        return str(self.container.name)

    def __repr__(self) -> str:
        return f"<ContainerNode {self.name} ({self.container.short_id})>"

    def reload(self) -> "ContainerNode":
        """Read the container's state again (``docker inspect NAME``)."""
        self.container.reload()
        return self

    @property
    def attrs(self) -> dict[str, Any]:
        """``docker inspect NAME`` as a dict (as of the last :meth:`reload`)."""
        return self.container.attrs

    @property
    def pid(self) -> int:
        """The container's first process as the host sees it (``docker inspect -f '{{.State.Pid}}'``)."""
        self.reload()
        pid = int(self.attrs["State"]["Pid"])
        if pid <= 0:
            raise InvalidTopology(f"container {self.name!r} is not running", obj=self.name,
                                  op="find the container's process", remedy=f"docker start {self.name}")
        return int(self.host_pid(pid)) if self.host_pid is not None else pid

    def networks(self) -> dict[str, dict[str, Any]]:
        """Per network: address, MAC, gateway (``docker inspect -f '{{json .NetworkSettings.Networks}}'``)."""
        self.reload()
        return dict(self.attrs["NetworkSettings"]["Networks"] or {})

    def ip(self, network: str | None = None) -> str:
        """The container's IPv4 address on ``network`` (its only network if not given)."""
        return str(self._endpoint(network)["IPAddress"])

    def mac(self, network: str | None = None) -> str:
        """The container's MAC address on ``network`` (its only network if not given)."""
        return str(self._endpoint(network)["MacAddress"])

    def gateway(self, network: str | None = None) -> str:
        """The container's default gateway on ``network`` (the bridge's own address)."""
        return str(self._endpoint(network)["Gateway"])

    def _endpoint(self, network: str | None) -> dict[str, Any]:
        nets = self.networks()
        if network is None:
            if len(nets) != 1:
                raise InvalidTopology(f"container {self.name!r} is on {len(nets)} networks "
                                      f"({', '.join(sorted(nets)) or 'none'})", obj=self.name,
                                      op="read address", remedy="say which: network='...'")
            network = next(iter(nets))
        try:
            return nets[network]
        except KeyError:
            raise NotFound(f"container {self.name!r} is not on network {network!r} "
                           f"(it is on: {', '.join(sorted(nets)) or 'none'})", obj=self.name,
                           op="read address",
                           remedy=f"docker network connect {network} {self.name}") from None

    def run(self, cmd: str | Sequence[str], *, timeout: float | None = 30) -> CommandResult:
        """Run a command inside the container with its own tools. ``docker exec NAME CMD``."""
        import shlex

        argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
        if not argv:
            raise InvalidTopology("empty command", obj=self.name, op="docker exec",
                                  remedy="give a program to run")
        wrapped = argv if timeout is None else ["timeout", str(int(max(1, timeout))), *argv]
        code, (out, err) = self.container.exec_run(wrapped, demux=True)
        return CommandResult(argv, int(code if code is not None else -1),
                             (out or b"").decode(errors="replace"),
                             (err or b"").decode(errors="replace"), node=self.name)

    def ping(self, dst: str, *, count: int = 1, wait: float = 1.0, size: int | None = None,
             ttl: int | None = None) -> PingResult:
        """``docker exec NAME ping -c COUNT -W WAIT DST``; ``dst`` may be a name to resolve.

        Never raises for lost packets: look at ``.received`` (or ``bool(result)``).
        """
        argv = ["ping", "-c", str(count), "-W", str(max(1, int(round(wait))))]
        if size is not None:
            argv += ["-s", str(size)]
        if ttl is not None:
            argv += ["-t", str(ttl)]
        argv.append(str(dst))
        result = self.run(argv, timeout=count * 1.2 + wait + 5)
        return parse_busybox_ping(result.stdout + result.stderr, str(dst), self.name)

    def resolve(self, name: str) -> str | None:
        """The address the container's resolver gives for ``name``, or None.

        ``docker exec NAME nslookup OTHER`` (busybox); ``/etc/hosts`` entries (from
        ``--link``) are not consulted by nslookup: see :meth:`hosts_entries` for those.
        """
        # A name Docker does not know is forwarded to LOCAL_DNS, where nothing answers;
        # busybox nslookup would wait 5 s for it, so give up after 2 (known names take ms).
        found = parse_nslookup(self.run(["nslookup", "-type=a", name], timeout=2).stdout)
        v4 = [a for a in found if ":" not in a]
        return (v4 or found or [None])[0]

    def hosts_entries(self) -> dict[str, str]:
        """Names in the container's ``/etc/hosts`` and their addresses (``cat /etc/hosts``)."""
        table: dict[str, str] = {}
        for line in self.run(["cat", "/etc/hosts"]).stdout.splitlines():
            parts = line.split("#", 1)[0].split()
            for alias in parts[1:]:
                table.setdefault(alias, parts[0])
        return table

    def netns(self, lab: "Lab", name: str | None = None) -> "Node":
        """This container's network namespace as a labkit Node of a host-mode ``lab``.

        ``nsenter --net --target $(docker inspect -f '{{.State.Pid}}' NAME)``. The Node
        runs the host's tools (``ip``, ``ping``, captures) inside the container's
        namespace, so images need none of them.
        """
        node_name = name or re.sub(r"[^A-Za-z0-9_.-]", "-", self.name)
        if node_name in lab.nodes:
            return lab.nodes[node_name]
        return lab.adopt(node_name, pid=self.pid)


def peer_interface(inside: "Node", outside: "Node", ifname: str = "eth0") -> "Interface":
    """The host-side end of a container's veth: the interface whose index is ``eth0@ifN``'s N.

    ``ip -n CONTAINER link show eth0`` prints ``eth0@if7``; ``ip link`` on the host
    lists ``7: vethXXXX@if6``.
    """
    iface = inside.interface(ifname)
    if iface.link_index is None:
        raise NotFound(f"{inside.name}:{ifname} has no peer (it is not a veth end)",
                       obj=f"{inside.name}:{ifname}", op="find veth peer",
                       remedy="use the container's eth interface")
    for candidate in outside.interfaces():
        if candidate.ifindex == iface.link_index:
            return candidate
    raise NotFound(f"no interface with index {iface.link_index} on {outside.name!r}",
                   obj=f"{inside.name}:{ifname}", op="find veth peer",
                   remedy="the peer lives in another namespace: adopt the right host")


def gateway_of(network: Any) -> str:
    """The gateway of a bridge network: IPAM's ``Gateway``, or else the subnet's first
    address, which is what Docker gives the bridge when none is configured (the default
    ``bridge`` network of Docker 20.10 lists only its subnet)."""
    import ipaddress

    config = ((network.attrs.get("IPAM") or {}).get("Config") or [{}])[0]
    if config.get("Gateway"):
        return str(config["Gateway"]).split("/")[0]
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def network_summary(network: Any) -> dict[str, Any]:
    """The parts of ``docker network inspect NAME`` a lesson looks at, as plain data.

    Name, driver, scope, the Linux bridge behind it, IPAM subnets and gateways, and
    per container its MAC and address.
    """
    network.reload()
    attrs = network.attrs
    options = attrs.get("Options") or {}
    bridge = options.get("com.docker.network.bridge.name")
    if bridge is None and attrs.get("Driver") == "bridge":
        bridge = "br-" + attrs["Id"][:12]
    ipam = [{"Subnet": c.get("Subnet"), "Gateway": c.get("Gateway")}
            for c in (attrs.get("IPAM") or {}).get("Config") or []]
    containers = sorted(({"Name": c.get("Name"), "MacAddress": c.get("MacAddress"),
                          "IPv4Address": c.get("IPv4Address")}
                         for c in (attrs.get("Containers") or {}).values()),
                        key=lambda c: str(c["Name"]))
    return {"Name": attrs.get("Name"), "Driver": attrs.get("Driver"), "Scope": attrs.get("Scope"),
            "Bridge": bridge, "IPAM": ipam, "Internal": attrs.get("Internal", False),
            "Containers": containers}


# --------------------------------------------------------------------------------------
# A notebook's (or a test's) Docker resources
# --------------------------------------------------------------------------------------

class DockerLab:
    """The Docker containers and networks of one notebook or test, labelled as one session.

    Creating it removes what an earlier run of the same session left behind (a
    notebook that crashed); closing it (or leaving the ``with`` block) removes the
    session's containers and networks and ends the host-mode lab used to look inside
    them. The base image is built on first use (:func:`labkit.docker.ensure_base_image`).
    """

    def __init__(self, session: str, client: Any = None, *, image: str | None = None,
                 clean_first: bool = True) -> None:
        from .images import BASE_IMAGE, ensure_base_image

        if not session or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", session):
            raise InvalidTopology(f"session name {session!r} is not valid", obj=repr(session),
                                  op="create DockerLab",
                                  remedy="use letters, digits, '-', '_' or '.'")
        self.session = session
        self.client = _client(client)
        self.image = image or BASE_IMAGE
        self.labels = labels(session)
        self._lab: "Lab | None" = None
        self._closed = False
        if clean_first:
            clean(self.client, session=session)
        if image is None:
            ensure_base_image(self.client)

    def __repr__(self) -> str:
        return f"<DockerLab {self.session}{' (closed)' if self._closed else ''}>"

    def __enter__(self) -> "DockerLab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> CleanReport:
        """Remove this session's containers and networks. Safe to call twice."""
        if self._lab is not None:
            self._lab.close()
            self._lab = None
        self._closed = True
        return clean(self.client, session=self.session)

    # -- creating --------------------------------------------------------------------

    def network(self, name: str, *, subnet: str | None = None, gateway: str | None = None,
                driver: str = "bridge", internal: bool = False, attachable: bool = False,
                options: dict[str, str] | None = None) -> Any:
        """Create a labelled network. ``docker network create -d DRIVER [--subnet S
        --gateway G] --label ... NAME``. Returns the docker-py ``Network``."""
        import docker.types

        ipam = None
        if subnet is not None:
            if gateway is None:  # what Docker picks itself, written out so inspect shows it
                import ipaddress

                gateway = str(next(ipaddress.ip_network(subnet).hosts()))
            pool = docker.types.IPAMPool(subnet=subnet, gateway=gateway)
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
        return self.client.networks.create(name, driver=driver, ipam=ipam, internal=internal,
                                           attachable=attachable, options=options,
                                           labels=dict(self.labels), check_duplicate=True)

    def run(self, name: str, command: str | Sequence[str] | None = None, *,
            network: str | None = None, image: str | None = None, hostname: str | None = None,
            ports: dict[str, Any] | None = None, links: dict[str, str] | None = None,
            ip: str | None = None, dns: Sequence[str] | None = LOCAL_DNS,
            dns_opt: Sequence[str] | None = DNS_OPTIONS,
            wait: float = 10.0, **kwargs: Any) -> ContainerNode:
        """Start a labelled container and return once it runs.

        ``docker run -d --name NAME [--net NETWORK] [--ip IP] [-p HOST:CONT] [--link C:ALIAS]
        --dns 127.0.0.1 --label ... IMAGE [COMMAND]`` (see :data:`LOCAL_DNS`). The default command keeps the
        container alive (``sleep 86400``); ``network`` may be ``"none"``, ``"host"``,
        ``"bridge"`` (the default bridge, as when it is not given) or a network's name.
        Other keyword arguments go to docker-py's ``containers.run``.
        """
        cmd = list(_KEEP_ALIVE) if command is None else command
        if network in ("host", "none"):
            kwargs["network_mode"] = network
            dns = None if network == "host" else dns
        elif network is not None and network != "bridge":
            kwargs["network"] = network
        if ip is not None:
            if network in (None, "bridge", "host", "none"):
                raise InvalidTopology(f"a fixed address ({ip}) needs a user-defined network",
                                      obj=name, op="docker run",
                                      remedy="create one with dl.network(..., subnet=...) and pass network=")
            kwargs["network"] = network
            kwargs["networking_config"] = {network: self.client.api.create_endpoint_config(
                ipv4_address=ip)}
        container = self.client.containers.run(
            image or self.image, cmd, name=name, detach=True, hostname=hostname,
            ports=ports, links=links, labels=dict(self.labels),
            dns=list(dns) if dns else None, dns_opt=list(dns_opt) if dns and dns_opt else None,
            **kwargs)
        end = time.monotonic() + wait
        while True:
            container.reload()
            if container.status == "running":
                break
            if container.status in ("exited", "dead") or time.monotonic() > end:
                logs = container.logs(tail=5).decode(errors="replace").strip()
                raise LabkitError(f"container {name!r} is {container.status}, not running",
                                  obj=name, op="docker run",
                                  remedy=f"its last output: {logs or '(none)'}; see docker logs {name}")
            time.sleep(0.05)
        return ContainerNode(container, self)

    def container(self, name: str) -> ContainerNode:
        """An existing container by name or id. ``docker inspect NAME``."""
        return ContainerNode(self.client.containers.get(name), self)

    def connect(self, network: str, container: "ContainerNode | str", *,
                aliases: Sequence[str] | None = None, ip: str | None = None) -> None:
        """``docker network connect [--alias A] [--ip IP] NETWORK CONTAINER``"""
        name = container.name if isinstance(container, ContainerNode) else container
        self.client.networks.get(network).connect(name, aliases=list(aliases) if aliases else None,
                                                  ipv4_address=ip)

    def disconnect(self, network: str, container: "ContainerNode | str") -> None:
        """``docker network disconnect NETWORK CONTAINER``"""
        name = container.name if isinstance(container, ContainerNode) else container
        self.client.networks.get(network).disconnect(name)

    # -- looking inside ---------------------------------------------------------------

    @property
    def lab(self) -> "Lab":
        """A host-mode :class:`~labkit.Lab` (root only) for adopting namespaces."""
        if self._lab is None or self._lab.closed:
            from labkit.lab import Lab

            self._lab = Lab(f"docker-{self.session}"[:32].rstrip("-_."), mode="host")
        return self._lab

    def netns(self, container: "ContainerNode | str", name: str | None = None) -> "Node":
        """The container's network namespace as a labkit Node (``nsenter --net -t PID``)."""
        node = container if isinstance(container, ContainerNode) else self.container(container)
        return node.netns(self.lab, name)

    def host(self, name: str = "host") -> "Node":
        """This machine's own network namespace as a labkit Node (where docker0 lives)."""
        if name in self.lab.nodes:
            return self.lab.nodes[name]
        return self.lab.adopt(name, pid=os.getpid())

    def resources(self) -> Any:
        """This session's containers and networks (a DataFrame)."""
        return list_resources(self.client, session=self.session)
