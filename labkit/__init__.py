"""labkit: build container networks for real, inside private namespace bubbles.

The public surface is flat: ``from labkit import Lab``. Everything a lab makes lives in
namespaces held by one supervisor process, and disappears with it.
"""

import sys as _sys

from .errors import (AgentExited, CommandFailed, CommandTimeout, DuplicateName, GatewayUnreachable,
                     InvalidAddress, InvalidName, InvalidRequest, InvalidTopology, KernelError,
                     LabClosed, LabkitError, LabUnresponsive, NamespacesUnavailable, NotFound,
                     ToolMissing)
from .lab import Lab
from .model import Address, FdbEntry, Interface, Link, Neighbour, Route, to_frame
from .node import Node
from .process import Process
from .results import CommandResult, Hop, PingReply, PingResult

__version__ = "0.1.0"

if "IPython" in _sys.modules:  # in a notebook: readable errors, static figures
    from . import ipython as _ipython

    _ipython.install()

__all__ = [
    "Lab", "Node", "Process", "Link", "Interface", "Address", "Route", "Neighbour", "FdbEntry",
    "CommandResult", "PingResult", "PingReply", "Hop", "to_frame",
    "LabkitError", "InvalidName", "DuplicateName", "InvalidAddress", "InvalidTopology",
    "GatewayUnreachable", "NotFound", "LabClosed", "LabUnresponsive", "InvalidRequest",
    "ToolMissing", "NamespacesUnavailable",
    "KernelError", "CommandFailed", "CommandTimeout", "AgentExited",
]
