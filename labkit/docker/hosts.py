"""Several Docker engines on one machine, each standing for a separate host.

A multi-host lesson needs several machines, each with its own Docker engine, joined
by a network. Here every "host" is one ``dockerd`` started in fresh namespaces::

    setpriv --pdeathsig KILL                  dies with the notebook that started it
     └ unshare --net --pid --mount --uts --fork --kill-child
        └ sh: mount a tmpfs, hostname node1   its own network stack, process tree,
           └ dockerd (PID 1 of its PID namespace)   file system view and hostname
               --host unix:///run/labkit/docker-hosts/ID/docker.sock
               --data-root, --exec-root on that tmpfs

and the hosts are cabled together with veth pairs made by a host-mode labkit
:class:`~labkit.Lab` (the "LAN" between the machines), where they get their
addresses. Docker's swarm mode then joins the engines and an overlay network spans
them::

    with DockerHosts("21-docker-overlay",
                     {"node1": "192.168.99.103/24", "node2": "192.168.99.104/24"}) as hosts:
        hosts.swarm()                                             # docker swarm init / join
        hosts.overlay("demonet", subnet="10.10.3.0/24")           # docker network create -d overlay
        c1 = hosts["node1"].run("c1", network="demonet")          # docker -H node1 run ...
        c2 = hosts["node2"].run("c2", network="demonet")
        c1.ping("c2")                                             # across the VXLAN tunnel
        hosts.node("node1")                                       # labkit Node: node1's own stack

Nothing is left behind when it ends, however it ends: dockerd is the init of its own
PID namespace, so when it exits the kernel ends every process it started (containerd,
shims, containers); its data lives on a tmpfs of its private mount namespace; its
network namespace has no name and disappears with its last process; and the whole
tree is killed if the Python process that started it dies. Each host also records
itself under ``/run/labkit/docker-hosts`` so that ``labkit clean`` can end hosts
whose owner is still alive but stuck (it never looks for anything by name pattern).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from labkit.errors import InvalidTopology, LabkitError, NotFound, ToolMissing
from labkit.results import CommandResult

from .resources import ContainerNode, DockerLab

if TYPE_CHECKING:
    from labkit.lab import Lab
    from labkit.node import Node

__all__ = ["STATE_DIR", "DockerHost", "DockerHosts", "clean_hosts", "join_swarm", "running_hosts"]

STATE_DIR = Path(os.environ.get("LABKIT_DOCKER_HOSTS_DIR", "/run/labkit/docker-hosts"))
"""Where each running host keeps its socket and its record (``state.json``)."""

_START_TIMEOUT = 45.0


_OPTION = re.compile(r"^--[a-z][a-z0-9-]*(=[^\x00\n]*)?$")
_MANAGED = ("--host", "--data-root", "--exec-root", "--pidfile", "--config-file")


def _dockerd_args(args: Sequence[str]) -> list[str]:
    """Extra dockerd options, checked: ``--name`` or ``--name=value`` each, and none of the
    ones the host itself sets (its socket, its folders)."""
    if isinstance(args, str):
        raise InvalidTopology(f"dockerd options {args!r} must be a list", obj=repr(args),
                              op="create Docker host", remedy="e.g. ['--bip=10.4.41.1/24', '--mtu=1450']")
    out = []
    for arg in args:
        if not isinstance(arg, str) or not _OPTION.match(arg):
            raise InvalidTopology(f"dockerd option {arg!r} is not of the form --name or --name=value",
                                  obj=repr(arg), op="create Docker host",
                                  remedy="write each option whole, e.g. '--mtu=1450'")
        if arg.split("=", 1)[0] in _MANAGED:
            raise InvalidTopology(f"dockerd option {arg!r} is set by the Docker host itself",
                                  obj=arg, op="create Docker host",
                                  remedy=f"leave out {', '.join(_MANAGED)}")
        out.append(arg)
    return out


TOOLS = ("dockerd", "unshare", "setpriv", "nsenter")
"""The programs a :class:`DockerHost` starts its engine with."""


def missing_tools() -> list[str]:
    """Which of :data:`TOOLS` this machine lacks."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _starttime(pid: int) -> int | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): PIDs get reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids.extend(int(x) for x in text.split())
    except OSError:
        pass
    return kids


def _nspid(pid: int) -> list[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def _ppid(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class DockerHost:
    """One extra Docker engine in namespaces of its own, standing for a separate machine.

    Start it with :meth:`start` (or through :class:`DockerHosts`); talk to it with
    :attr:`client` (docker-py) or ``docker -H`` :attr:`base_url`.
    """

    def __init__(self, session: str, name: str, address: str | None = None, *,
                 netns: str | None = None, args: Sequence[str] = ()) -> None:
        if not isinstance(name, str) or not name.isidentifier() or len(name) > 12:
            raise InvalidTopology(f"host name {name!r} is not valid", obj=repr(name),
                                  op="create Docker host",
                                  remedy="use up to 12 letters, digits or '_' (e.g. node1)")
        self.session = session
        self.name = name
        self.address = address
        self.netns = netns
        self.args = _dockerd_args(args)
        self.id = f"{session}-{name}"
        self.dir = STATE_DIR / self.id
        # containerd's socket ends up at DIR/private/exec/containerd/containerd.sock, and a
        # Unix socket path has room for 107 bytes.
        if len(str(self.dir).encode()) + 45 > 107:
            raise InvalidTopology(f"Docker host id {self.id!r} is too long", obj=self.id,
                                  op="create Docker host",
                                  remedy="shorten the session or host name (Unix socket paths "
                                         "are limited to 107 bytes)")
        self.socket = self.dir / "docker.sock"
        self.base_url = f"unix://{self.socket}"
        self.log_path = self.dir / "dockerd.log"
        self.client: Any = None
        self.dockerd_pid: int | None = None  # as this machine sees it
        self._proc: subprocess.Popen[bytes] | None = None
        self._docker: DockerLab | None = None

    def __repr__(self) -> str:
        state = f"dockerd pid {self.dockerd_pid}" if self.running else "stopped"
        return f"<DockerHost {self.name} {self.address or ''} ({state})>"

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self, netns_file: str | None = None) -> list[str]:
        """The command line that starts this host's engine (shown in the lessons).

        Without :attr:`netns` the engine gets a network namespace of its own
        (``unshare --net``); with it, it enters that one (``nsenter --net=FILE``,
        ``netns_file`` naming the namespace as the process sees it) and the machine's
        network stays whoever made it.
        """
        private = self.dir / "private"
        script = (
            "set -e; p=$1 n=$2 s=$3; shift 3; mount -t tmpfs -o mode=0711,size=1g labkit-docker \"$p\"; "
            "hostname \"$n\"; ip link set lo up; mkdir -p \"$p/data\" \"$p/exec\"; "
            "exec dockerd --host \"unix://$s\" --data-root \"$p/data\" --exec-root \"$p/exec\" "
            "--pidfile \"$p/docker.pid\" --log-level warn \"$@\""
        )
        if self.netns is None:
            enter = ["unshare", "--net"]
        else:
            enter = ["nsenter", f"--net={netns_file or self.netns}", "unshare"]
        return ["setpriv", "--pdeathsig", "KILL", *enter,
                "--pid", "--mount", "--uts", "--fork", "--kill-child",
                "--mount-proc", "--propagation", "private",
                "sh", "-c", script, "sh", str(private), self.name, str(self.socket), *self.args]

    def dockerd_argv(self) -> list[str]:
        """dockerd's command line as ``ps`` shows it on this machine (empty when stopped)."""
        if not self.dockerd_pid:
            return []
        try:
            raw = Path(f"/proc/{self.dockerd_pid}/cmdline").read_bytes()
        except OSError:
            return []
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]

    def start(self, timeout: float = _START_TIMEOUT) -> "DockerHost":
        """Start the engine and wait until it answers (a few seconds)."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> "DockerHost":
        """Start the engine's process tree without waiting for it (see :meth:`wait_ready`)."""
        if self.running:
            return self
        if os.geteuid() != 0:
            raise LabkitError(f"starting Docker host {self.name!r} needs root", obj=self.name,
                              op="start Docker host", remedy="run the notebook as root")
        for tool in missing_tools():
            raise ToolMissing(f"{tool} is not installed", obj=tool, op="start Docker host",
                              remedy="run .ci/docker.sh (installs docker.io)")
        if self.dir.exists():
            _stop_recorded(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
        ns_fd = -1
        if self.netns is not None:
            try:  # the namespace file itself, never a link to something else
                ns_fd = os.open(self.netns, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise NotFound(f"network namespace {self.netns} cannot be opened ({exc.strerror})",
                               obj=self.netns, op="start Docker host",
                               remedy="is the lab (and its node) still there?") from None
        (self.dir / "private").mkdir(parents=True)
        log = open(self.log_path, "ab")
        try:
            argv = self.command(f"/proc/self/fd/{ns_fd}" if ns_fd >= 0 else None)
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          pass_fds=(ns_fd,) if ns_fd >= 0 else ())
        finally:
            log.close()
            if ns_fd >= 0:
                os.close(ns_fd)
        end = time.monotonic() + 10
        while self.dockerd_pid is None and time.monotonic() < end and self.running:
            kids = _children(self._proc.pid)
            if kids:
                self.dockerd_pid = kids[0]
            else:
                time.sleep(0.02)
        self._record()
        return self

    def wait_ready(self, timeout: float = _START_TIMEOUT) -> "DockerHost":
        """Wait until the engine answers on its socket."""
        import docker

        if self._proc is None:
            self.launch()
        if self.client is not None:
            return self
        end = time.monotonic() + timeout
        client = None
        while True:
            if not self.running:
                raise LabkitError(f"dockerd of host {self.name!r} exited", obj=self.name,
                                  op="start Docker host",
                                  remedy=f"its log says: {self.log_tail() or '(empty)'}")
            try:
                if self.socket.exists():
                    # docker-py asks for the API version as it is created
                    client = client or docker.DockerClient(base_url=self.base_url, timeout=30)
                    if client.ping():
                        break
            except Exception:  # noqa: BLE001 - not answering yet
                pass
            if time.monotonic() > end:
                if client is not None:
                    client.close()
                self.stop()
                raise LabkitError(f"dockerd of host {self.name!r} did not answer within "
                                  f"{timeout:.0f} s", obj=self.name, op="start Docker host",
                                  remedy=f"its log says: {self.log_tail() or '(empty)'}")
            time.sleep(0.1)
        self.client = client
        return self

    def _record(self) -> None:
        assert self._proc is not None
        state = {"session": self.session, "name": self.name, "owner_pid": os.getpid(),
                 "unshare_pid": self._proc.pid, "unshare_start": _starttime(self._proc.pid),
                 "dockerd_pid": self.dockerd_pid, "socket": str(self.socket)}
        (self.dir / "state.json").write_text(json.dumps(state, indent=1))

    def log_tail(self, lines: int = 8) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cli(self, *args: str, timeout: float = 60.0) -> CommandResult:
        """``docker -H SOCKET ARGS...``: the docker CLI against this engine, from this machine."""
        if shutil.which("docker") is None:
            raise ToolMissing("the docker CLI is not installed", obj="docker", op="docker -H",
                              remedy="run .ci/docker.sh (installs docker.io)")
        argv = ["docker", "-H", self.base_url, *[str(a) for a in args]]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        return CommandResult(argv, out.returncode, out.stdout, out.stderr, node=self.name)

    def stop(self, grace: float = 15.0) -> None:
        """Remove its containers, leave the swarm, stop dockerd; the kernel frees the rest."""
        if self.client is not None:
            if self.running:
                try:
                    for ctr in self.client.containers.list(all=True):
                        ctr.remove(force=True)
                except Exception:  # noqa: BLE001 - the engine goes away anyway
                    pass
                try:
                    self.client.swarm.leave(force=True)
                except Exception:  # noqa: BLE001 - not in a swarm, or already gone
                    pass
            self.client.close()
            self.client = None
        if self._proc is not None:
            if self._proc.poll() is None and self.dockerd_pid:
                try:
                    os.kill(self.dockerd_pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()  # unshare --kill-child takes dockerd (and its namespace) along
                self._proc.wait()
            self._proc = None
        self.dockerd_pid = None
        self._docker = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- using it ----------------------------------------------------------------------

    @property
    def docker(self) -> DockerLab:
        """Labelled containers and networks on this host (a :class:`DockerLab` on its engine)."""
        if self.client is None:
            raise InvalidTopology(f"Docker host {self.name!r} is not running", obj=self.name,
                                  op="use Docker host", remedy="start it first")
        if self._docker is None:
            self._docker = DockerLab(self.session, self.client, clean_first=False)
        return self._docker

    def run(self, name: str, command: str | Sequence[str] | None = None, **kwargs: Any) -> ContainerNode:
        """``docker -H HOST run -d --name NAME ...`` (see :meth:`DockerLab.run`)."""
        node = self.docker.run(name, command, **kwargs)
        node.host_pid = self.host_pid  # its State.Pid counts in this host's PID namespace
        return node

    def overlay_run(self, network: Any, cmd: Sequence[str], *, timeout: float = 30) -> CommandResult:
        """Run a command of this machine in the namespace Docker keeps for an overlay
        network on this host (where its bridge ``br0`` and its ``vxlan0`` live).

        ``nsenter --net=/run/docker/netns/1-NETID CMD`` (that file lives in the engine's
        private mount namespace here, reached through ``/proc/DOCKERD/root``).
        """
        net_id = network if isinstance(network, str) else network.id
        if not self.dockerd_pid:
            raise InvalidTopology(f"Docker host {self.name!r} is not running", obj=self.name,
                                  op="enter overlay namespace", remedy="start it first")
        folder = Path(f"/proc/{self.dockerd_pid}/root{self.dir}/private/exec/netns")
        found = sorted(folder.glob(f"1-{net_id[:10]}*"))
        if not found:
            raise NotFound(f"no namespace for overlay network {net_id[:12]} on host {self.name!r}",
                           obj=net_id[:12], op="enter overlay namespace",
                           remedy="Docker creates it when the first container on this host joins")
        argv = ["nsenter", f"--net={found[0]}", *[str(a) for a in cmd]]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return CommandResult(list(cmd), out.returncode, out.stdout, out.stderr,
                             node=f"{self.name}:overlay")

    def host_pid(self, pid: int) -> int:
        """This machine's PID of a process that has PID ``pid`` in the host's PID namespace.

        ``docker inspect`` reports container PIDs as the engine sees them; adopting a
        namespace from here needs the PID as this machine sees it.
        """
        if not self.dockerd_pid:
            raise InvalidTopology(f"Docker host {self.name!r} is not running", obj=self.name,
                                  op="translate PID", remedy="start it first")
        if pid == 1:
            return self.dockerd_pid
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            ids = _nspid(int(entry))
            if len(ids) >= 2 and ids[1] == pid and self._descends(int(entry)):
                return int(entry)
        raise NotFound(f"no process {pid} on Docker host {self.name!r}", obj=str(pid),
                       op="translate PID", remedy="is the container running?")

    def _descends(self, pid: int) -> bool:
        for _ in range(64):
            if pid == self.dockerd_pid:
                return True
            if pid <= 1:
                return False
            pid = _ppid(pid)
        return False


class DockerHosts:
    """A few :class:`DockerHost` engines cabled to one another, started and ended together.

    ``hosts`` maps each host's name to its address on the LAN between them (CIDR). With
    two hosts the LAN is one veth pair, ``eth0`` on each side (a crossover cable); with
    more, the first host holds a bridge ``lan0`` (carrying its address) and every
    other host's ``eth0`` is cabled to a port of it.
    """

    def __init__(self, session: str, hosts: Mapping[str, str], *, start: bool = True) -> None:
        if len(hosts) < 2:
            raise InvalidTopology("a multi-host lesson needs at least two hosts", obj=session,
                                  op="create Docker hosts", remedy="give two or more hosts")
        self.session = session
        self.hosts = {name: DockerHost(session, name, addr) for name, addr in hosts.items()}
        self._lab: "Lab | None" = None
        self.manager: str | None = None
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"<DockerHosts {self.session}: {', '.join(self.hosts)}>"

    def __getitem__(self, name: str) -> DockerHost:
        return self.hosts[name]

    def __iter__(self) -> Iterator[DockerHost]:
        return iter(self.hosts.values())

    def __enter__(self) -> "DockerHosts":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def lab(self) -> "Lab":
        """The host-mode :class:`~labkit.Lab` holding each host's network namespace."""
        if self._lab is None or self._lab.closed:
            from labkit.lab import Lab

            self._lab = Lab(f"hosts-{self.session}"[:32].rstrip("-_."), mode="host")
        return self._lab

    def node(self, name: str) -> "Node":
        """A host's own network stack as a labkit Node (its ``eth0``, ``docker0``, routes)."""
        host = self.hosts[name]
        if name not in self.lab.nodes:
            self.lab.adopt(name, pid=host.dockerd_pid or 0)
        return self.lab.nodes[name]

    def netns(self, container: ContainerNode, name: str | None = None) -> "Node":
        """A container's network namespace, wherever it runs, as a labkit Node."""
        return container.netns(self.lab, name)

    def start(self) -> "DockerHosts":
        """Start every engine, cable the hosts (veth ``eth0``), give them their addresses."""
        from .images import ensure_base_image

        for host in self.hosts.values():  # all at once: each takes a few seconds
            host.launch()
        for host in self.hosts.values():
            host.wait_ready()
            ensure_base_image(host.client)
        names = list(self.hosts)
        first = self.node(names[0])
        if len(names) == 2:
            # ip link add eth0 netns node1 type veth peer name eth0 netns node2
            self.lab.link(first, self.node(names[1]), names=("eth0", "eth0"))
        else:
            first.add_bridge("lan0")
            for i, other in enumerate(names[1:]):
                self.lab.link(first, self.node(other), names=(f"lan{i + 1}", "eth0"),
                              bridges=("lan0", None))
        for name, host in self.hosts.items():
            if host.address:
                self.node(name).add_address("lan0" if len(names) > 2 and name == names[0]
                                            else "eth0", host.address)
        return self

    def close(self) -> None:
        """Stop every engine; nothing of the hosts is left afterwards. Safe to call twice."""
        if self._lab is not None:
            self._lab.close()
            self._lab = None
        for host in self.hosts.values():
            host.stop()

    # -- swarm and overlay ---------------------------------------------------------------

    def address_of(self, name: str) -> str:
        return _address(self.hosts[name])

    def swarm(self, manager: str | None = None) -> str:
        """Join every engine into one swarm (see :func:`join_swarm`); returns the manager's name."""
        self.manager = join_swarm(self.hosts, manager)
        return self.manager

    def overlay(self, name: str, *, subnet: str | None = None, attachable: bool = True) -> Any:
        """An overlay network on the swarm (``docker network create -d overlay --attachable
        --subnet SUBNET NAME`` on the manager); returns the docker-py ``Network``."""
        if self.manager is None:
            raise InvalidTopology("an overlay network needs the swarm first", obj=name,
                                  op="docker network create -d overlay",
                                  remedy="call hosts.swarm() first")
        return self.hosts[self.manager].docker.network(name, subnet=subnet, driver="overlay",
                                                       attachable=attachable)


def _address(host: DockerHost) -> str:
    if not host.address:
        raise InvalidTopology(f"host {host.name!r} has no address", obj=host.name, op="swarm",
                              remedy="give every host an address")
    return host.address.split("/")[0]


def join_swarm(hosts: Mapping[str, DockerHost], manager: str | None = None,
               timeout: float = 60.0) -> str:
    """Join running engines into one swarm; returns the manager's name (default: the first).

    ``docker swarm init --advertise-addr ADDR`` on the manager, ``docker swarm join
    --token TOKEN MANAGER:2377`` on each other one, each advertising its own
    :attr:`DockerHost.address`; returns once every engine is a ready node.
    """
    if not hosts:
        raise InvalidTopology("a swarm needs at least one engine", op="docker swarm init",
                              remedy="start the engines first")
    manager = manager or next(iter(hosts))
    if manager not in hosts:
        raise NotFound(f"{manager!r} is not one of the engines ({', '.join(hosts)})", obj=manager,
                       op="docker swarm init", remedy="name one of the engines as manager")
    addr = _address(hosts[manager])
    lead = hosts[manager]
    lead.client.swarm.init(advertise_addr=addr, listen_addr=f"{addr}:2377")
    token = lead.client.swarm.attrs["JoinTokens"]["Worker"]
    for name, host in hosts.items():
        if name != manager:
            mine = _address(host)
            try:
                host.client.swarm.join(remote_addrs=[f"{addr}:2377"], join_token=token,
                                       advertise_addr=mine, listen_addr=f"{mine}:2377")
            except Exception as exc:  # noqa: BLE001 - docker.errors.APIError
                # A loaded engine answers 503 "Timeout was reached before node joined.
                # The attempt to join the swarm will continue in the background": wait
                # for it below, like any other join.
                if "continue in the background" not in str(exc):
                    raise
    end = time.monotonic() + timeout
    while True:
        ready = [n for n in lead.client.nodes.list() if n.attrs["Status"]["State"] == "ready"]
        if len(ready) == len(hosts):
            break
        if time.monotonic() > end:
            raise LabkitError(f"not every engine joined the swarm within {timeout:.0f} s",
                              obj=manager, op="docker swarm join", remedy="see the hosts' dockerd logs")
        time.sleep(0.2)
    return manager



def scale_service(service: Any, replicas: int) -> None:
    """``docker service scale NAME=REPLICAS``: change only the number of replicas.

    docker-py's ``Service.scale`` reads the spec with the engine's defaults filled in
    (``insertDefaults``) and sends all of it back; the task template then differs from
    the stored one (``StopGracePeriod``, ``RestartPolicy``, ...), so the manager starts a
    rolling update and replaces every running task. The docker CLI, like this function,
    sends the stored spec back unchanged but for ``Mode.Replicated.Replicas``: existing
    tasks keep running and only the missing ones (or the extra ones) are started (or
    stopped).
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise InvalidTopology(f"replicas must be an integer >= 0 (got {replicas!r})",
                             obj=getattr(service, "name", None), op="docker service scale",
                             remedy="give the number of tasks wanted, e.g. 5")
    api = service.client.api
    current = api.inspect_service(service.id)             # the stored spec, no defaults
    spec = current["Spec"]
    if "Replicated" not in spec.get("Mode", {}):
        raise InvalidTopology(f"service {spec['Name']!r} is not replicated", obj=spec["Name"],
                             op="docker service scale", remedy="only replicated services scale")
    api.update_service(service.id, current["Version"]["Index"], name=spec["Name"],
                       labels=spec.get("Labels"), mode={"Replicated": {"Replicas": replicas}},
                       task_template=spec["TaskTemplate"], update_config=spec.get("UpdateConfig"),
                       rollback_config=spec.get("RollbackConfig"),
                       endpoint_spec=spec.get("EndpointSpec"))
    service.reload()


# --------------------------------------------------------------------------------------
# Records, for `labkit clean`
# --------------------------------------------------------------------------------------

def _alive(state: dict[str, Any]) -> bool:
    pid = int(state.get("unshare_pid") or 0)
    return pid > 0 and _starttime(pid) == state.get("unshare_start")


def _stop_recorded(directory: Path) -> bool:
    """End the host recorded in ``directory`` if it still runs; True if one was ended."""
    try:
        state = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return False
    if not _alive(state):
        return False
    pid = int(state["unshare_pid"])
    try:
        os.kill(pid, signal.SIGKILL)  # --kill-child: dockerd, and with it its PID namespace
    except ProcessLookupError:
        return False
    for _ in range(100):
        if _starttime(pid) != state.get("unshare_start"):
            break
        time.sleep(0.05)
    return True


def running_hosts() -> list[dict[str, Any]]:
    """The records of hosts still running (any session)."""
    found = []
    if STATE_DIR.is_dir():
        for directory in sorted(STATE_DIR.iterdir()):
            try:
                state = json.loads((directory / "state.json").read_text())
            except (OSError, ValueError):
                continue
            if _alive(state):
                found.append(state)
    return found


def clean_hosts(session: str | None = None) -> list[str]:
    """End every recorded Docker host (of ``session`` if given); returns their ids."""
    ended: list[str] = []
    if not STATE_DIR.is_dir():
        return ended
    for directory in sorted(STATE_DIR.iterdir()):
        if session is not None and not directory.name.startswith(f"{session}-"):
            continue
        if _stop_recorded(directory):
            ended.append(directory.name)
        shutil.rmtree(directory, ignore_errors=True)
    return ended

