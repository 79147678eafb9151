"""Drawings that read everywhere: SVG made in Python, no browser and no kernel needed.

Every function returns a :class:`Drawing`, which a notebook shows as ``image/svg+xml``
(JupyterLab, GitHub, nbviewer, nbconvert HTML and PDF all render it, with or without a
kernel), and which ``.save("plan.svg")`` writes to a file::

    from labkit import diagrams

    diagrams.topology(lab)                   # the lab as built: nodes, cables, addresses, bridges
    diagrams.topology(lab, tunnels=[t1, t2]) # + tunnels from labkit.tunnels (kernel VXLAN is found)
    diagrams.headers("vxlan")                # the headers a tunnel adds, with byte counts and MTU arithmetic
    diagrams.ladder(cap.table(), lab=lab)    # one arrow per packet, in time order (Wireshark's flow graph)

Use them in lessons instead of typed ASCII plans (which misalign in proportional
fonts) and instead of timelines whose dots stack on each other:

* open a lesson with ``diagrams.topology(lab)`` once the lab is built (or with a
  ``lab.describe()``-shaped dict for a plan), so the picture is the lab's own state;
* put ``diagrams.headers(kind)`` (or ``headers(row)`` of a captured packet) in each
  tunnel lesson beside the MTU arithmetic;
* show a capture with ``diagrams.ladder(...)``: pass ``lab=`` to name columns after
  nodes; a list of captures, or a MultiCapture's table, is merged, and a packet seen
  at several points is drawn once.

Each drawn object is an SVG group with a class and ``data-*`` attributes
(``topology-node``, ``topology-link``, ``topology-tunnel``, ``ladder-arrow``,
``header``), which the tests use to check what was drawn against the lab and capture.
Modules: :mod:`.topology`, :mod:`.headers`, :mod:`.ladder`; :mod:`._svg` is the writer.
"""

from __future__ import annotations

from ._svg import Drawing
from .headers import headers
from .ladder import Ladder, describe_packet, ladder
from .topology import topology

__all__ = ["Drawing", "Ladder", "topology", "headers", "ladder", "describe_packet"]
