"""The grader's views of the Docker lessons' handles (:mod:`labkit.docker`).

A checkpoint cell of a Docker exercise names ``client`` (a docker-py client made by
:func:`labkit.docker.connect`), ``dl`` (a :class:`~labkit.docker.DockerLab`) or a
:class:`~labkit.docker.ContainerNode`. The kernel sends names only for them
(:data:`labkit.grading.kernelside.HANDLES`): nothing at all for a client, the session
name for a DockerLab, the container's name for a ContainerNode. Here the grader
rebuilds each against the **real** engine, through a connection of its own:

* :class:`DockerEngineView`: the grader's own docker-py client, connected to the
  instructor's ``docker_host`` parameter (``labkit grade ... -p docker_host
  unix:///run/labkit/docker-grading.sock``, the guarded proxy of
  :mod:`labkit.docker.proxy`; ``None``: the grader's own ``DOCKER_HOST`` or the local
  engine), never to an address student code chose. Made on first use, once per
  submission, closed with the evaluator. ``client`` in a checkpoint cell *is* this
  client.
* :class:`DockerLabView` (a DockerLab): the same session name; made without touching
  the engine (no ``clean_first``: nothing is removed; the base image is named, so
  nothing is built). ``dl.container(NAME)`` looks the container up by its exact name
  among the containers carrying the course's label (every container made through the
  proxy does) and returns a library :class:`~labkit.docker.ContainerNode` around the
  grader's own docker-py object, so ``checks.ping`` and ``checks.command`` run
  ``docker exec`` through the grader's connection. Whatever would change the engine
  (``run``, ``network``, ``connect``, ``disconnect``, ``close``) is refused:
  checkpoint cells only read.
* A ContainerNode the notebook made: looked up the same way, by its name.

Every name from the kernel is checked (length, Docker's characters) before use; a bad
one, or an engine the grader cannot reach, makes the view give up
(:class:`~labkit.grading.evaluator.Unverifiable`; for the setup's own objects the
checkpoint then falls back to the notebook's result, flagged "not re-verified").

Limit (decision): commands run *inside* the container (``docker exec``, with its own
busybox and resolver), as in the lesson, because names like ``web`` or a link's alias
resolve only there (Docker's embedded DNS, ``/etc/hosts``). The container's files are
the student's to change, so a student who replaces ``ping`` in ``db`` could fool a
ping check; the engine's own state (networks, endpoints, addresses, MACs, which
``checks.docker_network``, ``checks.container`` and ``client...attrs`` read) cannot
be faked from the kernel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from labkit.docker.images import BASE_IMAGE
from labkit.docker.resources import COURSE_LABEL, COURSE_VALUE, ContainerNode, labels
from labkit.errors import InvalidTopology, NotFound

__all__ = ["DockerEngineView", "DockerLabView", "docker_name"]

Touch = Callable[[], None]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_URL = re.compile(r"unix:///[A-Za-z0-9_./@+-]{1,1000}|tcp://[A-Za-z0-9.:\[\]-]{1,300}/?")


def _unverifiable(why: str, touch: Touch | None) -> Exception:
    from labkit.grading.evaluator import Unverifiable

    if touch is not None:
        touch()
    return Unverifiable(why)


def docker_name(value: Any, what: str) -> str:
    """``value`` if it is a valid Docker name (``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most
    128 characters), else :class:`~labkit.errors.InvalidTopology` saying so."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    raise InvalidTopology(f"{str(value)[:80]!r} is not a {what} name", obj=repr(value)[:80],
                          op=f"find Docker {what}",
                          remedy="letters, digits, '_', '.' or '-', at most 128 characters")


def _checked(value: Any, what: str, touch: Touch | None) -> str:
    try:
        return docker_name(value, what)
    except InvalidTopology as exc:
        raise _unverifiable(f"the kernel sent {exc}", touch) from None


class DockerEngineView:
    """The grader's own connection to the instructor's Docker engine (see module doc)."""

    def __init__(self, docker_host: Any) -> None:
        self.docker_host = docker_host
        self._client: Any = None
        self._failed = ""
        """Why the engine could not be reached (tried once per submission)."""

    def client(self, touch: Touch | None = None) -> Any:
        """The grader's docker-py client; :class:`Unverifiable` if the engine is out of reach."""
        if self._client is None and not self._failed:
            url = self.docker_host
            if url is not None and not (isinstance(url, str) and _URL.fullmatch(url)):
                self._failed = (f"the instructor's docker_host parameter {str(url)[:80]!r} "
                                "is not a unix:/// or tcp:// address")
            else:
                from labkit.docker.engine import connect

                try:
                    self._client = connect(url)
                except Exception as exc:  # noqa: BLE001 - any failure: the grader cannot check
                    self._failed = f"the grader cannot reach the Docker engine ({str(exc)[:200]})"
        if self._failed:
            raise _unverifiable(self._failed, touch)
        return self._client

    def lab(self, session: Any, touch: Touch | None = None) -> "DockerLabView":
        """The grader's view of the DockerLab of ``session`` (a name from the kernel)."""
        return DockerLabView(_checked(session, "DockerLab session", touch),
                             self.client(touch), touch)

    def container(self, name: Any, touch: Touch | None = None) -> ContainerNode:
        """The course's container ``name`` (a name from the kernel)."""
        checked = _checked(name, "container", touch)
        return DockerLabView("grader", self.client(touch), touch).container(checked)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class DockerLabView:
    """The grader's view of a :class:`~labkit.docker.DockerLab` (see module doc)."""

    def __init__(self, session: str, client: Any, touch: Touch | None = None) -> None:
        self.session = session
        self.client = client
        self.image = BASE_IMAGE
        self.labels = labels(session)
        self._touch = touch

    def container(self, name: Any) -> ContainerNode:
        """The course's container called ``name``. ``docker ps -a --filter
        label=io.labkit.course --filter name=NAME``, then ``docker inspect NAME``."""
        key = docker_name(name.name if isinstance(name, ContainerNode) else name, "container")
        rows = self.client.api.containers(all=True, filters={
            "label": [f"{COURSE_LABEL}={COURSE_VALUE}"], "name": [key]})
        ids = [r.get("Id") for r in rows if f"/{key}" in (r.get("Names") or [])]
        if len(ids) != 1 or not isinstance(ids[0], str):
            raise NotFound(f"no container named {key!r} among the course's containers",
                           obj=key, op="find container",
                           remedy=f"start it with dl.run({key!r}, ...)")
        return ContainerNode(self.client.containers.get(ids[0]))

    def __getattr__(self, attr: str) -> Any:
        raise _unverifiable(f"the grader's view of DockerLab {self.session!r} has no {attr!r}: "
                            "checkpoint cells may use dl.container(NAME), dl.client and "
                            "dl.session (they only read)", self._touch)

    def __repr__(self) -> str:
        return f"<grader's view of DockerLab {self.session}>"
