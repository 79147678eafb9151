"""Starting topologies from the curriculum, written with the labkit API.

Each template is a function of a lab: give it a real :class:`labkit.Lab` and it
builds the scenario; give it a :class:`~labkit.widgets.plan.Plan` and it writes the
steps down (that is what the topology builder does, to show the code and draw the
plan before anything is built)::

    from labkit import Lab
    from labkit.widgets import templates

    with Lab("docker0") as lab:
        templates.docker0(lab)
        print(lab["c1"].ping("172.17.0.3"))

Templates only *build* (no reads, no pings), so the same function works on both.
:data:`TEMPLATES` maps the names the builder shows to the functions.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["TEMPLATES", "veth_pair", "docker0", "bridged_lan", "routed", "by_name"]


def veth_pair(lab: Any) -> None:
    """Notebook 01: two containers joined by one cable.

    ::

        c1 eth0 10.0.0.1/24 ──── veth pair ──── eth0 10.0.0.2/24 c2
    """
    c1 = lab.add_host("c1")
    c2 = lab.add_host("c2")
    lab.link(c1, c2)
    c1.add_address("eth0", "10.0.0.1/24")
    c2.add_address("eth0", "10.0.0.2/24")


def docker0(lab: Any) -> None:
    """Notebook 02: two containers on a Linux bridge, as Docker's default network.

    ::

        c1 172.17.0.2 ─ eth0 ── veth1 ─┐
                                       ├─ docker0 172.17.0.1/16   (host, forwarding on)
        c2 172.17.0.3 ─ eth0 ── veth2 ─┘
    """
    host = lab.add_router("host")
    host.add_bridge("docker0", address="172.17.0.1/16")
    for n in (1, 2):
        c = lab.add_host(f"c{n}")
        lab.link(c, host, names=("eth0", f"veth{n}"), bridges=(None, "docker0"))
        c.add_address("eth0", f"172.17.0.{n + 1}/16")
        c.add_route("default", via="172.17.0.1")


def bridged_lan(lab: Any) -> None:
    """Notebook 03: two hosts whose bridges hold their network cards: one LAN.

    ::

        c1 10.0.0.11 ─ lxdbr0 ─ enp0s8 (host1) ── lan ── (host2) enp0s8 ─ lxdbr0 ─ c2 10.0.0.21
    """
    lan = lab.add_switch("lan")
    for n in (1, 2):
        host = lab.add_host(f"host{n}")
        lab.link(host, lan, names=("enp0s8", None))
        host.add_bridge("lxdbr0")
        host.attach("enp0s8", "lxdbr0")
        c = lab.add_host(f"c{n}")
        lab.link(c, host, names=("eth0", f"veth-c{n}"), bridges=(None, "lxdbr0"))
        c.add_address("eth0", f"10.0.0.{10 * n + 1}/24")


def routed(lab: Any) -> None:
    """Notebook 04: two hosts as routers, one subnet of containers behind each.

    ::

        c1 10.1.1.2 ─ lxdbr0 10.1.1.1 (host1) 172.16.1.1 ── lan ── 172.16.1.2 (host2) 10.2.2.1/30 ─ c2 10.2.2.2
    """
    lan = lab.add_switch("lan")
    host1 = lab.add_router("host1")
    host2 = lab.add_router("host2")
    lab.link(host1, lan, names=("enp0s8", None))
    lab.link(host2, lan, names=("enp0s8", None))
    host1.add_address("enp0s8", "172.16.1.1/24")
    host2.add_address("enp0s8", "172.16.1.2/24")
    host1.add_bridge("lxdbr0", address="10.1.1.1/24")
    c1 = lab.add_host("c1")
    lab.link(c1, host1, names=("eth0", "veth-c1"), bridges=(None, "lxdbr0"))
    c1.add_address("eth0", "10.1.1.2/24")
    c1.add_route("default", via="10.1.1.1")
    c2 = lab.add_host("c2")
    lab.link(c2, host2, names=("eth0", "veth-c2"))
    host2.add_address("veth-c2", "10.2.2.1/30")
    c2.add_address("eth0", "10.2.2.2/30")
    c2.add_route("default", via="10.2.2.1")
    host1.add_route("default", via="172.16.1.2")
    host2.add_route("default", via="172.16.1.1")


#: The builder's template menu: label -> (short lab name, function).
TEMPLATES: dict[str, tuple[str, Callable[[Any], None]]] = {
    "two containers, one cable (veth)": ("veth", veth_pair),
    "two containers on a bridge (docker0)": ("docker0", docker0),
    "two hosts bridged LAN": ("bridged", bridged_lan),
    "two hosts routed": ("routed", routed),
}


def by_name(name: str) -> tuple[str, Callable[[Any], None]]:
    """A template by its menu label or its short name (``"docker0"``)."""
    if name in TEMPLATES:
        return TEMPLATES[name]
    for short, func in TEMPLATES.values():
        if name in (short, func.__name__):
            return short, func
    from ..errors import NotFound

    known = ", ".join(repr(k) for k in TEMPLATES)
    raise NotFound(f"template {name!r} is not known", obj=name, op="choose template",
                   remedy=f"use one of {known}")
