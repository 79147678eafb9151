"""Which node owns an address: the names a drawing puts on its columns and boxes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_of", "address_book"]


def describe_of(source: Any) -> dict[str, Any]:
    """``lab.describe()`` for a Lab (or anything with ``describe()``); a dict as it is."""
    if isinstance(source, Mapping):
        return dict(source)
    describe = getattr(source, "describe", None)
    if callable(describe):
        return describe()
    raise TypeError(f"expected a Lab or the dict of lab.describe(), got {type(source).__name__}")


def address_book(source: Any) -> dict[str, str]:
    """IP and MAC address -> node name, from a Lab or ``lab.describe()``.

    Every interface's MAC and every address (without its prefix length) maps to the
    node that holds it; ``ff:ff:ff:ff:ff:ff`` maps to ``broadcast``.
    """
    book: dict[str, str] = {"ff:ff:ff:ff:ff:ff": "broadcast"}
    for node in describe_of(source).get("nodes", []):
        name = str(node.get("name"))
        for iface in node.get("interfaces", []) or []:
            mac = iface.get("mac")
            if isinstance(mac, str) and mac:
                book.setdefault(mac.lower(), name)
            for cidr in iface.get("addresses", []) or []:
                book.setdefault(str(cidr).split("/")[0], name)
        for cidr in node.get("addresses", []) or []:  # the plain "documented dict" form
            book.setdefault(str(cidr).split()[-1].split("/")[0], name)
    return book
