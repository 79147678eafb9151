"""A guarded door to the Docker engine, for code nobody vetted (graded submissions).

Whoever can talk to ``dockerd`` is root on its machine (``docker run -v /:/host
--privileged ...``), so a student's notebook must never get the engine's own socket.
:class:`DockerProxy` listens on a socket of its own and passes on only what the Docker
lessons need, on the course's own resources::

    with DockerProxy("/run/labkit/docker-grading.sock"):   # mode 0666: any uid may connect
        ...   # labkit grade exercises/20-docker-networks.ipynb subs/ -o out -j 1 \\
              #     -p docker_host unix:///run/labkit/docker-grading.sock \\
              #     --allow /run/labkit/docker-grading.sock

What passes (anything else gets ``403`` with the reason as Docker's usual
``{"message": ...}``, which docker-py raises as an ``APIError``):

* reading: ``/_ping``, ``/version``, ``/info``, the lists of containers, networks and
  images, inspection of networks and images, and inspection and logs of the course's
  own containers and their exec instances (another container's environment may hold
  secrets);
* containers: create only from the course's base image, with no bind mounts, volumes
  from elsewhere, devices, privileges, capabilities, security options, host
  namespaces (network, PID, IPC, UTS, user, cgroup), sysctls, log drivers that send
  anything anywhere, or DNS servers other than loopback; published ports only on
  loopback addresses; attached only to the default bridge, ``none`` or networks the
  course labelled. Every container created gets the course's labels (so ``labkit
  clean`` finds it). Start, stop, kill, restart, wait, logs, exec (not privileged)
  and removal only of containers that carry the course's label;
* networks: create bridge networks (labels added, no driver options but the MTU),
  connect and disconnect labelled containers to labelled networks or the default
  bridge, remove labelled networks.

Each client connection carries one request (the proxy asks the engine to close the
connection after answering), so nothing can slip past the check behind a first,
allowed request; ``exec`` and ``attach`` streams are passed through after the engine
has agreed to them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import socketserver
import threading
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .engine import DEFAULT_SOCKET
from .images import BASE_IMAGE
from .resources import COURSE_LABEL, COURSE_VALUE

__all__ = ["DockerProxy", "Denied", "Missing", "Policy"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"          # container, network and exec names and ids
_IMAGE = r"[A-Za-z0-9][A-Za-z0-9_.:/@-]*"    # image references (repository/name:tag)


class Denied(Exception):
    """A request the proxy refuses; the message goes back to the client (403)."""

    status = "403 Forbidden"


class Missing(Denied):
    """The object asked about does not exist (404, as the engine itself would answer)."""

    status = "404 Not Found"


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


class Policy:
    """The checks, given a way to ask the real engine (``upstream(method, path) -> dict``)."""

    # HostConfig fields a lesson may set to anything; every other field must be empty.
    FREE_HOST_CONFIG = {"Links", "DnsOptions", "DnsSearch", "ExtraHosts", "RestartPolicy",
                        "AutoRemove", "Init", "Memory", "MemorySwap", "NanoCpus", "CpuShares",
                        "PidsLimit", "Ulimits", "ConsoleSize", "ShmSize", "OomScoreAdj",
                        "StopTimeout", "LogConfig", "NetworkMode", "Dns", "PortBindings",
                        "PublishAllPorts", "Isolation", "KernelMemory", "CpuPeriod", "CpuQuota",
                        "CpusetCpus", "CpusetMems", "BlkioWeight", "MemoryReservation",
                        "MemorySwappiness", "OomKillDisable", "CpuRealtimePeriod",
                        "CpuRealtimeRuntime", "CpuCount", "CpuPercent", "IOMaximumIOps",
                        "IOMaximumBandwidth", "BlkioWeightDevice", "BlkioDeviceReadBps",
                        "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"}
    SAFE_LOG_DRIVERS = {"", "json-file", "local", "none"}

    def __init__(self, upstream: Callable[[str, str], Any], image: str = BASE_IMAGE) -> None:
        self.upstream = upstream
        self.image = image
        self._image_id: str | None = None

    # -- what the engine knows ---------------------------------------------------------

    def _image_ids(self) -> set[str]:
        if self._image_id is None:
            info = self.upstream("GET", f"/images/{self.image}/json") or {}
            self._image_id = str(info.get("Id", ""))
        return {self.image, self._image_id, self._image_id.removeprefix("sha256:")} - {""}

    @staticmethod
    def _labelled(attrs: Any) -> bool:
        labels = (attrs or {}).get("Labels") or ((attrs or {}).get("Config") or {}).get("Labels") or {}
        return labels.get(COURSE_LABEL) == COURSE_VALUE

    def _container(self, ref: str) -> None:
        if not re.fullmatch(_ID, ref):
            raise Denied(f"{ref!r} is not a container name or id")
        attrs = self.upstream("GET", f"/containers/{ref}/json")
        if attrs is None:
            raise Missing(f"No such container: {ref}")
        if not self._labelled(attrs):
            raise Denied(f"container {ref} was not made by the course (no {COURSE_LABEL} label)")

    def _network(self, ref: str, *, defaults: bool = False) -> None:
        if not re.fullmatch(_ID, ref):
            raise Denied(f"{ref!r} is not a network name or id")
        if defaults and ref in ("bridge", "none"):
            return
        attrs = self.upstream("GET", f"/networks/{ref}")
        if attrs is None:
            raise Missing(f"network {ref} not found")
        if defaults and attrs.get("Name") in ("bridge", "none"):
            return
        if not self._labelled(attrs):
            raise Denied(f"network {ref} was not made by the course (no {COURSE_LABEL} label)")

    # -- the decision ------------------------------------------------------------------

    def check(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        """Return the (possibly amended) body to send on, or raise :class:`Denied`."""
        path = re.sub(r"^/v[0-9.]+(?=/)", "", path)
        if "//" in path or any(part in (".", "..") for part in path.split("/")):
            raise Denied(f"path {path!r} is not in canonical form")
        get = method in ("GET", "HEAD")
        if get and re.fullmatch(r"/(_ping|version|info|containers/json|networks|images/json)", path):
            return body
        if get and re.fullmatch(rf"/(networks/{_ID}|images/{_IMAGE}/json)", path):
            return body
        # Inspecting a container shows its environment: only the course's own.
        if get and (m := re.fullmatch(rf"/containers/({_ID})/(json|logs)", path)):
            self._container(m.group(1))
            return body
        if method == "POST" and path == "/containers/create":
            return self._create_container(body)
        if method == "POST" and (m := re.fullmatch(
                rf"/containers/({_ID})/(start|stop|kill|restart|wait|pause|unpause|attach|resize)",
                path)):
            self._container(m.group(1))
            return body
        if method == "POST" and (m := re.fullmatch(rf"/containers/({_ID})/exec", path)):
            self._container(m.group(1))
            if (body or {}).get("Privileged"):
                raise Denied("privileged exec is not allowed")
            return body
        if (m := re.fullmatch(rf"/exec/({_ID})/(start|resize|json)", path)) and \
                (method, m.group(2)) in (("POST", "start"), ("POST", "resize"), ("GET", "json")):
            info = self.upstream("GET", f"/exec/{m.group(1)}/json")
            if info is None:
                raise Missing(f"No such exec instance: {m.group(1)}")
            self._container(str(info.get("ContainerID", "")))
            return body
        if method == "DELETE" and (m := re.fullmatch(rf"/containers/({_ID})", path)):
            self._container(m.group(1))
            return body
        if method == "POST" and path == "/networks/create":
            return self._create_network(body)
        if method == "POST" and (m := re.fullmatch(rf"/networks/({_ID})/(connect|disconnect)", path)):
            self._network(m.group(1), defaults=True)
            self._container(str((body or {}).get("Container", "")))
            return body
        if method == "DELETE" and (m := re.fullmatch(rf"/networks/({_ID})", path)):
            self._network(m.group(1))
            return body
        raise Denied(f"{method} {path} is not among the operations the Docker lessons need")

    def _labels(self, body: dict[str, Any]) -> None:
        labels = dict(body.get("Labels") or {})
        labels[COURSE_LABEL] = COURSE_VALUE
        body["Labels"] = labels

    def _create_container(self, body: Any) -> Any:
        if not isinstance(body, dict):
            raise Denied("container create needs a JSON body")
        if str(body.get("Image", "")) not in self._image_ids():
            raise Denied(f"only the course image {self.image} may be run (got {body.get('Image')!r})")
        if body.get("Volumes"):
            raise Denied("volumes are not allowed")
        host = body.get("HostConfig") or {}
        for key, value in host.items():
            if key in self.FREE_HOST_CONFIG or value is None or value in ("", False, 0):
                continue
            # An empty list is harmless for most fields, but means "unmask everything"
            # for the two path lists.
            if value in ([], {}) and key not in ("MaskedPaths", "ReadonlyPaths"):
                continue
            raise Denied(f"HostConfig.{key} is not allowed (got {value!r})")
        log = (host.get("LogConfig") or {}).get("Type", "")
        if log not in self.SAFE_LOG_DRIVERS:
            raise Denied(f"log driver {log!r} is not allowed")
        if not host.get("Dns"):  # else unknown names would go to the host's resolvers
            host["Dns"] = ["127.0.0.1"]
            body["HostConfig"] = host
        for server in host.get("Dns") or []:
            if not _is_loopback(str(server)):
                raise Denied(f"DNS server {server} is not allowed (only loopback: the lessons "
                             "send nothing off the machine)")
        if host.get("PublishAllPorts"):
            raise Denied("publish-all (-P) is not allowed: publish on 127.0.0.1 explicitly")
        for port, bindings in (host.get("PortBindings") or {}).items():
            for binding in bindings or []:
                if not _is_loopback(str((binding or {}).get("HostIp", ""))):
                    raise Denied(f"port {port} may be published on a loopback address only "
                                 "(e.g. ports={'80/tcp': ('127.0.0.1', 8080)})")
        for link in host.get("Links") or []:  # a link hands over the target's environment
            self._container(str(link).split(":", 1)[0].strip("/"))
        mode = str(host.get("NetworkMode") or "default")
        if mode not in ("default", "bridge", "none"):
            if mode == "host" or ":" in mode:
                raise Denied(f"network mode {mode!r} is not allowed")
            self._network(mode)
        for name, endpoint in ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).items():
            self._network(name, defaults=True)
            if (endpoint or {}).get("Links"):
                raise Denied("links in an endpoint configuration are not allowed")
        self._labels(body)
        return body

    def _create_network(self, body: Any) -> Any:
        if not isinstance(body, dict):
            raise Denied("network create needs a JSON body")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise Denied(f"network driver {driver!r} is not allowed (bridge only)")
        options = body.get("Options") or {}
        extra = set(options) - {"com.docker.network.driver.mtu"}
        if extra:
            raise Denied(f"network options {sorted(extra)} are not allowed")
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default" or ipam.get("Options"):
            raise Denied("only the default IPAM driver, without options, is allowed")
        if body.get("ConfigFrom") or body.get("ConfigOnly") or body.get("Ingress"):
            raise Denied("config-only, config-from and ingress networks are not allowed")
        self._labels(body)
        return body


# --------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------

def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("client closed the connection")
        data += chunk
        if len(data) > _MAX_HEAD:
            raise Denied("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_exact(sock: socket.socket, have: bytes, size: int) -> tuple[bytes, bytes]:
    while len(have) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("client closed the connection mid-body")
        have += chunk
    return have[:size], have[size:]


def _read_chunked(sock: socket.socket, have: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        while b"\r\n" not in have:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            have += chunk
        line, _, have = have.partition(b"\r\n")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while b"\r\n" not in have:  # trailers end with an empty line
                chunk = sock.recv(65536)
                if not chunk:
                    break
                have += chunk
            _, _, have = have.partition(b"\r\n")
            return body, have
        data, have = _read_exact(sock, have, size + 2)
        body += data[:size]
        if len(body) > _MAX_BODY:
            raise Denied("request body too large")


def _upstream_json(upstream: str, method: str, path: str) -> Any:
    """A small request to the real engine (for the policy's questions)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(upstream)
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            line, _, rest = rest.partition(b"\r\n")
            size = int(line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    if status == 404:
        return None
    if status >= 400:
        raise Denied(f"the engine refused {method} {path} ({status})")
    return json.loads(body or b"null")


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def handle(self) -> None:
        client: socket.socket = self.request
        try:
            head, rest = _read_head(client)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = [tuple(part.strip() for part in line.split(":", 1))
                       for line in lines[1:] if ":" in line]
            lower = {k.lower(): v for k, v in headers}
            if lower.get("transfer-encoding", "").lower() == "chunked":
                body, rest = _read_chunked(client, rest)
            else:
                length = int(lower.get("content-length", "0") or 0)
                if length > _MAX_BODY:
                    raise Denied("request body too large")
                body, rest = _read_exact(client, rest, length)
            url = urlsplit(target)
            parsed: Any = None
            if body and "json" in lower.get("content-type", "application/json"):
                try:
                    parsed = json.loads(body)
                except ValueError:
                    raise Denied("request body is not valid JSON") from None
            policy = Policy(lambda m, p: _upstream_json(self.server.upstream, m, p),
                            self.server.image)
            amended = policy.check(method, unquote(url.path), parse_qs(url.query), parsed)
            if parsed is not None:
                body = json.dumps(amended).encode()
        except Denied as exc:
            self._deny(client, str(exc), exc.status)
            return
        except (ConnectionError, ValueError, OSError):
            return
        upgrade = "upgrade" in lower.get("connection", "").lower()
        keep = {"content-length", "transfer-encoding", "connection"}
        out = [f"{method} {target} {version}"]
        out += [f"{k}: {v}" for k, v in headers if k.lower() not in keep]
        out.append(f"Content-Length: {len(body)}")
        out.append("Connection: Upgrade" if upgrade else "Connection: close")
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.server.upstream)
            upstream.sendall("\r\n".join(out).encode("latin-1") + b"\r\n\r\n" + body)
            if upgrade:  # exec/attach: the client's further bytes are the process's stdin
                if rest:
                    upstream.sendall(rest)
                feeder = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
                feeder.start()
            _pipe(upstream, client)
        except OSError:
            pass
        finally:
            upstream.close()

    @staticmethod
    def _deny(client: socket.socket, message: str, status: str = "403 Forbidden") -> None:
        payload = json.dumps({"message": f"labkit docker proxy: {message}"}).encode()
        head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
        try:
            client.sendall(head + payload)
        except OSError:
            pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    upstream: str
    image: str


class DockerProxy:
    """Listen on ``path`` and pass the lessons' requests on to the engine at ``upstream``.

    ``mode`` is the socket file's permission (0666 by default, so the grader's
    unprivileged sandbox users can connect). Use as a context manager, or call
    :meth:`start` and :meth:`stop`; :meth:`serve_forever` blocks (the command line).
    """

    def __init__(self, path: str, upstream: str = DEFAULT_SOCKET, *, image: str = BASE_IMAGE,
                 mode: int = 0o666) -> None:
        self.path = path
        self.upstream = upstream.removeprefix("unix://")
        self.image = image
        self.mode = mode
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"unix://{self.path}"

    def _bind(self) -> _Server:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        server = _Server(self.path, _Handler)
        server.upstream, server.image = self.upstream, self.image
        os.chmod(self.path, self.mode)
        return server

    def start(self) -> "DockerProxy":
        self._server = self._bind()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="labkit-docker-proxy")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server = self._bind()
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "DockerProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
