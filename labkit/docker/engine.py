"""Reaching a Docker engine: is one there, which one, and what to do if not.

::

    from labkit.docker import engine
    status = engine.check()          # never raises: reachable?, version, reason, remedy
    status                           # a notebook shows a green or red box saying why
    client = engine.connect()        # a docker.DockerClient, or EngineUnavailable

``docker`` (docker-py) is the only Docker client used; it speaks the engine's HTTP API
over the Unix socket ``/var/run/docker.sock`` unless ``DOCKER_HOST`` (or ``base_url``)
says otherwise, exactly as the ``docker`` command does.
"""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import dataclass
from typing import Any

from labkit.errors import LabkitError

__all__ = ["DEFAULT_SOCKET", "EngineStatus", "EngineUnavailable", "check", "connect",
           "require", "missing_requirements"]

DEFAULT_SOCKET = "/var/run/docker.sock"
"""Where dockerd listens unless told otherwise (``dockerd --host unix://...``)."""

_TIMEOUT = 20  # seconds per API call; image imports and container starts stay well under


class EngineUnavailable(LabkitError, ConnectionError):
    """No Docker engine answers (not installed, not started, or not allowed to us)."""


@dataclass(frozen=True)
class EngineStatus:
    """What :func:`check` found: ``reachable`` and either the version or the reason why not."""

    reachable: bool
    base_url: str
    reason: str = ""
    remedy: str = ""
    server_version: str = ""
    api_version: str = ""
    details: str = ""

    def __bool__(self) -> bool:
        return self.reachable

    def __str__(self) -> str:
        if self.reachable:
            return (f"Docker engine {self.server_version} (API {self.api_version}) answers at "
                    f"{self.base_url}")
        return (f"No Docker engine: {self.reason}.\nWhat to do: {self.remedy}\n"
                "Without an engine the Docker cells cannot run; the outputs saved in this "
                "notebook show what they print on a machine that has one.")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's plain text
        printer.text(str(self))

    def _repr_html_(self) -> str:
        ok = self.reachable
        border, back = ("#1a7f37", "#dafbe1") if ok else ("#cf222e", "#ffebe9")
        body = html.escape(str(self)).replace("\n", "<br>")
        return (f'<div style="border-left:6px solid {border};background:{back};'
                f'padding:6px 10px;color:#1f2328">{body}</div>')

    def raise_if_unreachable(self) -> None:
        """Raise :class:`EngineUnavailable` with the reason and the remedy."""
        if not self.reachable:
            raise EngineUnavailable(f"no Docker engine answers at {self.base_url}: {self.reason}",
                                    obj=self.base_url, op="connect to Docker",
                                    remedy=self.remedy)


def _base_url(base_url: str | None) -> str:
    if base_url:
        return base_url
    return os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def _diagnose(base_url: str, exc: BaseException | None) -> tuple[str, str]:
    """Reason and remedy for an engine that does not answer, from what is on disk."""
    start = ("start it as root with `.ci/docker.sh` (installs docker.io if missing and "
             "starts dockerd), or `./course.sh setup`")
    if not base_url.startswith("unix://"):
        return (f"nothing answers at {base_url} ({exc})",
                "check DOCKER_HOST, or unset it to use the local engine")
    path = base_url[len("unix://"):]
    if not os.path.exists(path):
        if shutil.which("dockerd") is None:
            return ("the Docker engine (dockerd) is not installed on this machine",
                    "on Debian/Ubuntu as root: `.ci/docker.sh` (it runs `apt-get install docker.io`); "
                    "on Binder or a JupyterHub without Docker this lesson can only be read, "
                    "not run: use a VM or a Codespace with the README's first command")
        return (f"dockerd is installed but not running (no socket {path})", start)
    if not os.access(path, os.R_OK | os.W_OK):
        return (f"this user (uid {os.getuid()}) may not use the engine's socket {path}",
                "run the notebook as root (./course.sh start does), or add the user to the "
                "'docker' group and log in again")
    return (f"the socket {path} exists but the engine does not answer ({exc})",
            "dockerd may have died or still be starting: see its log "
            "(/var/log/labkit-dockerd.log when .ci/docker.sh started it) and run .ci/docker.sh again")


def check(base_url: str | None = None, *, timeout: float = 5) -> EngineStatus:
    """Ask the engine for its version. Never raises; the result says what is wrong.

    ``docker version``
    """
    url = _base_url(base_url)
    try:
        import docker
    except ImportError:
        return EngineStatus(False, url, "the Python package 'docker' (docker-py) is missing",
                            "pip install 'docker>=7' (it is a dependency of labkit)")
    client = None
    try:
        client = docker.DockerClient(base_url=url, timeout=int(timeout))
        info = client.version()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
        reason, remedy = _diagnose(url, exc)
        return EngineStatus(False, url, reason, remedy, details=f"{type(exc).__name__}: {exc}")
    finally:
        if client is not None:
            client.close()
    return EngineStatus(True, url, server_version=str(info.get("Version", "?")),
                        api_version=str(info.get("ApiVersion", "?")))


def connect(base_url: str | None = None, *, timeout: float = _TIMEOUT) -> Any:
    """A ``docker.DockerClient`` for the engine, or :class:`EngineUnavailable` saying why.

    ``docker -H BASE_URL ...``; the default is ``DOCKER_HOST`` or the local socket.
    """
    status = check(base_url)
    status.raise_if_unreachable()
    import docker

    return docker.DockerClient(base_url=status.base_url, timeout=int(timeout))


def require(base_url: str | None = None) -> EngineStatus:
    """:func:`check`, raising :class:`EngineUnavailable` when no engine answers."""
    status = check(base_url)
    status.raise_if_unreachable()
    return status


def missing_requirements(requires: "list[str] | tuple[str, ...]") -> list[str]:
    """What this machine lacks of a notebook's ``metadata.labkit.requires`` list.

    Knows ``"docker"`` (an engine answers), ``"dockerd"`` (the engine's programs are
    installed, for notebooks that start engines of their own) and ``"root"``. Each
    missing item comes with the reason, ready for a pytest skip message.
    """
    missing: list[str] = []
    for need in requires:
        if need == "root" and os.geteuid() != 0:
            missing.append("root")
        elif need == "dockerd":
            absent = [t for t in ("dockerd", "unshare", "nsenter") if shutil.which(t) is None]
            if absent:
                missing.append(f"{', '.join(absent)} (run .ci/docker.sh)")
        elif need == "docker":
            status = check()
            if not status:
                missing.append(f"a Docker engine ({status.reason})")
    return missing
