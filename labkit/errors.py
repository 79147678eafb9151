"""The one exception tree of labkit.

Every error a student or instructor can meet is a :class:`LabkitError`; most also
subclass the builtin that fits, so ``except ValueError`` keeps working::

    LabkitError                      anything labkit raises on purpose
    ├── InvalidName (ValueError)     a node or interface name the kernel would refuse
    ├── DuplicateName (ValueError)   a node, link or interface name already taken
    ├── InvalidAddress (ValueError)  an address, prefix, MAC or CIDR that does not parse
    ├── InvalidTopology (ValueError) a request that cannot make sense (link to itself, ...)
    ├── GatewayUnreachable (ValueError)  a route via an address no connected subnet holds
    ├── NotFound (LookupError)       an unknown node, interface or process
    ├── LabClosed (RuntimeError)     the lab was closed, or its supervisor died
    ├── LabUnresponsive (TimeoutError)  the lab's supervisor did not answer in time
    ├── InvalidRequest (ValueError)  the supervisor refused a malformed request (lab lives on)
    ├── ToolMissing (FileNotFoundError)  a program the operation needs is not installed
    ├── NamespacesUnavailable (PermissionError)  this host will not let us build a bubble
    ├── KernelError (OSError)        the kernel refused an operation (EEXIST, ENODEV, ...)
    ├── CommandFailed                a command run with ``check=True`` exited non-zero
    ├── CommandTimeout (TimeoutError)  a command ran past its time limit
    └── AgentExited (RuntimeError)   a lab's agent (flanneld, calico-node ...) ended on its own

Messages follow one template: what object, which operation, what went wrong, and
what to do about it. The data is also kept on the exception (``.obj``, ``.op``,
``.remedy``) so notebooks and the grader can show it their own way.
"""

from __future__ import annotations

import errno as _errno
import os as _os
from typing import Any


class LabkitError(Exception):
    """Base class of every error labkit raises on purpose."""

    def __init__(self, message: str, *, obj: str | None = None, op: str | None = None,
                 remedy: str | None = None) -> None:
        self.message = message
        self.obj = obj
        self.op = op
        self.remedy = remedy
        text = message if not remedy else f"{message}; {remedy}"
        super().__init__(text)


class InvalidName(LabkitError, ValueError):
    """A node or interface name that the kernel or labkit would refuse."""


class DuplicateName(LabkitError, ValueError):
    """A name that is already in use in the same lab or node."""


class InvalidAddress(LabkitError, ValueError):
    """An IP address, prefix, CIDR or MAC address that does not parse or does not fit."""


class InvalidTopology(LabkitError, ValueError):
    """A request that cannot describe a working network (e.g. a link from a node to itself)."""


class GatewayUnreachable(LabkitError, ValueError):
    """A route through a gateway that is on none of the node's connected subnets."""


class NotFound(LabkitError, LookupError):
    """An unknown node, interface, bridge or process."""


class LabClosed(LabkitError, RuntimeError):
    """The lab has been closed (or its supervisor process has ended)."""


class LabUnresponsive(LabkitError, TimeoutError):
    """The lab's supervisor did not answer in time (stopped, or stuck); the lab may recover."""


class InvalidRequest(LabkitError, ValueError):
    """A request the supervisor could not carry out as sent; it answered and the lab lives on."""


class ToolMissing(LabkitError, FileNotFoundError):
    """A program needed by the operation is not installed."""


class NamespacesUnavailable(LabkitError, PermissionError):
    """This host does not allow creating the private namespaces a lab needs."""


class KernelError(LabkitError, OSError):
    """The kernel refused an operation; ``errno`` holds the kernel's error number."""

    def __init__(self, message: str, *, errno: int = 0, obj: str | None = None,
                 op: str | None = None, remedy: str | None = None) -> None:
        LabkitError.__init__(self, message, obj=obj, op=op, remedy=remedy)
        self.errno = errno


class CommandFailed(LabkitError):
    """A command run with ``check=True`` exited with a non-zero status."""

    def __init__(self, message: str, *, returncode: int, stdout: str, stderr: str,
                 obj: str | None = None, op: str | None = None,
                 remedy: str | None = None) -> None:
        super().__init__(message, obj=obj, op=op, remedy=remedy)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class CommandTimeout(LabkitError, TimeoutError):
    """A command did not finish within its time limit and was killed."""


class AgentExited(LabkitError, RuntimeError):
    """A lab's agent (flanneld, calico-node, kube-proxy ...) ended when it should run."""


# Remedies for the kernel errors students meet most, by errno.
_KERNEL_REMEDIES: dict[int, str] = {
    _errno.EEXIST: "it already exists: pick another name or delete the old one first",
    _errno.ENODEV: "no such device: check the interface name with node.interfaces()",
    _errno.ENOENT: "no such object: check the name or address with the inspection methods",
    _errno.ENETUNREACH: "the network is unreachable: add an address on that subnet or use onlink=True",
    _errno.EPERM: "operation not permitted: run `labkit doctor` to see what this host allows",
    _errno.EACCES: "permission denied: run `labkit doctor` to see what this host allows",
    _errno.EOPNOTSUPP: "not supported by this kernel: run `labkit doctor` for the list of features",
    _errno.EBUSY: "the device is busy (for example already a bridge port): release it first",
    _errno.EINVAL: "the kernel rejected the arguments: check names, addresses and options",
    _errno.ERANGE: "a value is out of range (for example an MTU larger than the device allows)",
    _errno.EADDRNOTAVAIL: "that address is not assigned here: check node.addresses()",
    _errno.ESRCH: "no such route or entry: check node.routes()",
    _errno.EMFILE: "too many open files (each lab, and each node of a lab, holds a few): close "
                   "labs you no longer need (lab.close(), or restart the notebook kernel), or "
                   "raise the limit (`ulimit -n 65536` in the shell that starts Jupyter)",
    _errno.ENFILE: "the machine has too many open files: close labs you no longer need, or ask "
                   "the administrator to raise fs.file-max",
    _errno.ENOMEM: "the kernel is out of memory for this: close labs you no longer need",
    _errno.ENOBUFS: "a kernel table is full; the neighbour (ARP) table is shared by every "
                    "namespace of the machine (net.ipv4.neigh.default.gc_thresh3, 1024 by "
                    "default): close labs you no longer need, or ask the administrator to "
                    "raise it",
    _errno.ENOSPC: "a kernel table is full (or the disk): close labs or captures you no longer need",
}


def remedy_for(err: int) -> str | None:
    """What to do about kernel error ``err``, in a student's words (None if nothing to say)."""
    return _KERNEL_REMEDIES.get(err)


def kernel_error(err: int, *, obj: str, op: str, detail: str | None = None) -> KernelError:
    """Translate a kernel error number into a :class:`KernelError` naming ``obj`` and ``op``.

    ``detail`` is what the kernel said beyond the number (netlink's extended
    acknowledgement, e.g. "MTU greater than device maximum"), or which fields the
    request set, so that an EINVAL or ERANGE says what it was about.
    """
    name = _errno.errorcode.get(err, str(err))
    remedy = _KERNEL_REMEDIES.get(err)
    said = f"{name} ({_os.strerror(err)})" if err else name
    if detail:
        said += f": {detail}"
    return KernelError(f"{op} {obj}: kernel said {said}", errno=err, obj=obj, op=op,
                       remedy=remedy)


# Everything above, by class name: how errors cross the supervisor's socket.
_BY_NAME: dict[str, type[LabkitError]] = {
    cls.__name__: cls
    for cls in (LabkitError, InvalidName, DuplicateName, InvalidAddress, InvalidTopology,
                GatewayUnreachable, NotFound, LabClosed, LabUnresponsive, InvalidRequest, ToolMissing,
                NamespacesUnavailable,
                KernelError, CommandFailed, CommandTimeout, AgentExited)
}


def to_wire(exc: LabkitError) -> dict[str, Any]:
    """Turn an error into plain data that can be sent to another process."""
    data: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message,
                            "obj": exc.obj, "op": exc.op, "remedy": exc.remedy}
    for extra in ("errno", "returncode", "stdout", "stderr"):
        if hasattr(exc, extra):
            data[extra] = getattr(exc, extra)
    return data


def from_wire(data: dict[str, Any]) -> LabkitError:
    """Rebuild an error sent by :func:`to_wire`."""
    cls = _BY_NAME.get(str(data.get("type")), LabkitError)
    common = {"obj": data.get("obj"), "op": data.get("op"), "remedy": data.get("remedy")}
    message = str(data.get("message", "unknown error"))
    if cls is KernelError:
        return KernelError(message, errno=int(data.get("errno", 0)), **common)
    if cls is CommandFailed:
        return CommandFailed(message, returncode=int(data.get("returncode", -1)),
                             stdout=str(data.get("stdout", "")),
                             stderr=str(data.get("stderr", "")), **common)
    return cls(message, **common)
