"""The errors of the Kubernetes lessons, under labkit's one :class:`~labkit.LabkitError` tree.

::

    LabkitError
    ├── CniError (RuntimeError)    a CNI plugin (or the runtime calling it) failed; keeps the
    │                              plugin's own ``code``, ``msg`` and ``details``
    └── ServiceError (ValueError)  a Service, port or endpoint kube-proxy's API would refuse
"""

from __future__ import annotations

from typing import Any

from ..errors import LabkitError

# The error codes of the CNI specification (SPEC.md, "Error" section).
CNI_ERROR_CODES: dict[int, str] = {
    1: "incompatible CNI version",
    2: "unsupported field in network configuration",
    3: "container unknown or does not exist",
    4: "invalid necessary environment variables",
    5: "I/O failure",
    6: "failed to decode content",
    7: "invalid network config",
    11: "try again later",
    999: "internal error",  # libcni ErrInternal: skel wraps any plain plugin error in it
}


class CniError(LabkitError, RuntimeError):
    """A CNI call failed. ``code``/``msg``/``details`` are the plugin's JSON error."""

    def __init__(self, message: str, *, code: int, msg: str, details: str = "",
                 plugin: str = "", command: str = "", obj: str | None = None,
                 remedy: str | None = None) -> None:
        super().__init__(message, obj=obj, op=f"CNI {command} {plugin}".strip(), remedy=remedy)
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin
        self.command = command

    @property
    def meaning(self) -> str:
        """What the specification says the code means."""
        if self.code == 0:
            return "the runtime could not run a plugin"
        if 100 <= self.code < 999:
            return "plugin-specific error"
        return CNI_ERROR_CODES.get(self.code, "unknown code")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


class ServiceError(LabkitError, ValueError):
    """A Service definition the API server or kube-proxy would refuse."""
