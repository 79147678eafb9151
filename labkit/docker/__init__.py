"""The Docker engine backend: the course's lessons on Docker networking, for real.

Everything here drives a real ``dockerd`` through docker-py, and labels what it
creates so that it can be listed and removed (``labkit clean``)::

    from labkit.docker import DockerLab, check

    check()                                   # is an engine there? (never raises)
    with DockerLab("my-notebook") as dl:      # builds the offline base image if needed
        dl.network("bridge_test", subnet="172.18.0.0/16")
        db = dl.run("db", network="bridge_test")
        web_ns = dl.netns(db)                 # labkit Node of db's network namespace
        web_ns.interfaces()

Modules, lowest first: :mod:`~labkit.docker.engine` (reaching the engine, and saying
why not), :mod:`~labkit.docker.resources` (labels, :class:`DockerLab`,
:class:`ContainerNode`, :func:`clean`), :mod:`~labkit.docker.images` (the base image,
built offline), :mod:`~labkit.docker.hosts` (several engines standing for several
hosts, joined by an overlay network), :mod:`~labkit.docker.machine` (an engine living in
a lab node's own network stack, e.g. one per cluster machine, configured from flannel's
``subnet.env``). ``python -m labkit.docker clean|list|setup|status``
is the command-line face.
"""

from __future__ import annotations

from .engine import (DEFAULT_SOCKET, EngineStatus, EngineUnavailable, check, connect,
                     missing_requirements, require)
from .images import BASE_IMAGE, WEB_PAGE, base_image_present, ensure_base_image
from .resources import (COURSE_LABEL, COURSE_VALUE, IMAGE_LABEL, LOCAL_DNS, SESSION_LABEL,
                        CleanReport,
                        ContainerNode, DockerLab, clean, gateway_of, labels,
                        list_resources, network_summary, parse_busybox_ping, parse_nslookup, peer_interface)

__all__ = [
    "DEFAULT_SOCKET", "EngineStatus", "EngineUnavailable", "check", "connect", "require",
    "missing_requirements",
    "BASE_IMAGE", "WEB_PAGE", "base_image_present", "ensure_base_image",
    "COURSE_LABEL", "COURSE_VALUE", "SESSION_LABEL", "IMAGE_LABEL", "LOCAL_DNS", "CleanReport",
    "ContainerNode", "DockerLab", "clean", "gateway_of", "labels", "list_resources", "network_summary",
    "parse_busybox_ping", "parse_nslookup", "peer_interface",
]
