"""A CNI runtime: call the reference plugins in /usr/lib/cni exactly as containerd does.

The plugins are Debian's real binaries (containernetworking-plugins 1.1.1). A call is
the CNI specification's contract and nothing else::

    CNI_COMMAND=ADD CNI_CONTAINERID=... CNI_NETNS=/run/netns/web-1 CNI_IFNAME=eth0 \\
    CNI_PATH=/usr/lib/cni CNI_ARGS='IgnoreUnknown=1;K8S_POD_NAMESPACE=default;...' \\
    /usr/lib/cni/bridge < config.json          # the result (or an error) as JSON on stdout

A network configuration *list* runs plugin after plugin, each receiving the previous
one's result as ``prevResult``; DEL runs the list in reverse. The runtime adds ``name``
and ``cniVersion`` to each plugin's config, passes capability arguments (``portMappings``)
as ``runtimeConfig`` to the plugins that declare them, and caches the ADD result (as
libcni does under /var/lib/cni/results) for the CHECK and DEL that follow.

Every call is recorded in :attr:`CniRuntime.calls` (environment, stdin, stdout) so a
notebook can show it. A plugin's failure becomes a :class:`CniError` carrying the
plugin's own ``code``, ``msg`` and ``details``.

Plugins run inside the machine's namespace in a fresh mount namespace with a /proc of
the lab's PID namespace (``unshare --mount --mount-proc``): the plugins open
``/proc/<their pid>/task/<tid>/ns/net``, which the host's /proc would get wrong.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ._errors import CniError

if TYPE_CHECKING:
    from ..node import Node

PLUGIN_DIR = "/usr/lib/cni"
COMMANDS = ("ADD", "CHECK", "DEL", "VERSION")
_ARG = re.compile(r"^[A-Za-z0-9_.\-/:]*$")


@dataclass
class CniCall:
    """One execution of a plugin binary."""

    plugin: str
    command: str
    env: dict[str, str]
    stdin: dict[str, Any]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stdout) if self.stdout.strip() else None
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def command_line(self) -> str:
        """The same call typed in a shell."""
        env = " ".join(f"{k}={v!r}" if ";" in v else f"{k}={v}" for k, v in self.env.items())
        return f"{env} {PLUGIN_DIR}/{self.plugin} < {self.stdin.get('name', 'net')}.json"


@dataclass
class CniResult:
    """A CNI result (``cniVersion`` 1.0.0): interfaces, IPs, routes, DNS."""

    raw: dict[str, Any]

    @property
    def interfaces(self) -> list[dict[str, Any]]:
        return list(self.raw.get("interfaces", []))

    @property
    def ips(self) -> list[str]:
        """Addresses with their prefix, e.g. ``['10.244.1.2/24']``."""
        return [ip["address"] for ip in self.raw.get("ips", [])]

    @property
    def ip(self) -> str:
        """The first address without its prefix."""
        return self.ips[0].split("/")[0] if self.ips else ""

    @property
    def gateway(self) -> str:
        ips = self.raw.get("ips", [])
        return str(ips[0].get("gateway", "")) if ips else ""

    def __str__(self) -> str:
        return json.dumps(self.raw, indent=2)


@dataclass
class Attachment:
    """What identifies one attachment: a container, its netns and interface, its CNI_ARGS."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: dict[str, str] = field(default_factory=dict)
    capability_args: dict[str, Any] = field(default_factory=dict)


def parse_config(netconf: "str | Mapping[str, Any]") -> dict[str, Any]:
    """A network configuration list (a single plugin config is turned into a list of one)."""
    if isinstance(netconf, str):
        try:
            data = json.loads(netconf)
        except json.JSONDecodeError as exc:
            raise CniError(f"error parsing configuration list: {exc}", code=6,
                           msg="failed to decode content", details=str(exc), command="parse",
                           remedy="write the network configuration as valid JSON") from None
    else:
        data = copy.deepcopy(dict(netconf))
    if not isinstance(data, dict):
        raise CniError("error parsing configuration list: not a JSON object", code=6,
                       msg="failed to decode content", command="parse",
                       remedy="a configuration is a JSON object with name, cniVersion, plugins")
    if "plugins" not in data and "type" in data:  # libcni: ConfListFromConf
        single = dict(data)
        data = {"cniVersion": single.get("cniVersion", ""), "name": single.get("name", ""),
                "plugins": [single]}
    problems = []
    if not isinstance(data.get("name"), str) or not data.get("name"):
        problems.append("no name")
    if not isinstance(data.get("cniVersion"), str):
        problems.append("no cniVersion")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        problems.append("no plugins in list")
    else:
        for i, plugin in enumerate(plugins):
            if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) \
                    or not re.match(r"^[A-Za-z0-9_-]+$", plugin.get("type", "")):
                problems.append(f"plugin {i} has no valid type")
    if problems:
        raise CniError(f"invalid network configuration list: {', '.join(problems)}", code=7,
                       msg="invalid network config", details=", ".join(problems),
                       command="parse", obj=str(data.get("name", "")),
                       remedy="give the list a name, a cniVersion and plugins with a type each")
    return data


class CniRuntime:
    """Runs CNI plugins in one machine of the lab (``node``), as a container runtime does."""

    def __init__(self, node: "Node", *, cache_dir: str, plugin_dir: str = PLUGIN_DIR) -> None:
        self.node = node
        self.plugin_dir = plugin_dir
        self.cache_dir = cache_dir  # a path as the machine sees it (its files are the lab's)
        self.calls: list[CniCall] = []

    # -- one plugin ------------------------------------------------------------------

    def exec_plugin(self, plugin: str, command: str, config: Mapping[str, Any],
                    attachment: Attachment | None = None) -> dict[str, Any] | None:
        """Execute one plugin binary once; its JSON answer, or :class:`CniError`."""
        if command not in COMMANDS:
            raise CniError(f"unknown CNI command {command!r}", code=4, msg="invalid CNI_COMMAND",
                           command=command, plugin=plugin, remedy=f"use one of {', '.join(COMMANDS)}")
        path = os.path.join(self.plugin_dir, plugin)
        if not re.match(r"^[A-Za-z0-9_-]+$", plugin) or not os.path.isfile(path):
            raise CniError(f'failed to find plugin "{plugin}" in path [{self.plugin_dir}]',
                           code=0, msg="plugin not found", plugin=plugin, command=command,
                           remedy=f"use a plugin installed there: {', '.join(self.plugins())}")
        env = {"CNI_COMMAND": command, "CNI_PATH": self.plugin_dir}
        if attachment is not None:
            env.update({"CNI_CONTAINERID": attachment.container_id, "CNI_NETNS": attachment.netns,
                        "CNI_IFNAME": attachment.ifname, "CNI_ARGS": cni_args(attachment.args)})
        stdin = json.dumps(dict(config))
        result = self.node.run(["unshare", "--mount", "--mount-proc", path], env=env, input=stdin,
                               timeout=60)
        call = CniCall(plugin, command, env, dict(config), result.returncode, result.stdout,
                       result.stderr)
        self.calls.append(call)
        if result.returncode != 0:
            answer = call.output or {}
            code = int(answer.get("code", 999)) if isinstance(answer.get("code"), int) else 999
            msg = str(answer.get("msg") or result.stderr.strip() or "plugin failed")
            details = str(answer.get("details", ""))
            err = CniError(f"plugin type=\"{plugin}\" failed ({command}): {msg}"
                           + (f": {details}" if details else ""),
                           code=code, msg=msg, details=details, plugin=plugin, command=command,
                           obj=attachment.container_id[:12] if attachment else plugin,
                           remedy=_remedy(code))
            raise err
        return call.output

    def plugins(self) -> list[str]:
        """The plugin binaries found in the plugin directory (``ls /usr/lib/cni``)."""
        return sorted(os.listdir(self.plugin_dir)) if os.path.isdir(self.plugin_dir) else []

    def version(self, plugin: str) -> dict[str, Any]:
        """``CNI_COMMAND=VERSION``: the spec versions the plugin supports."""
        return self.exec_plugin(plugin, "VERSION", {"cniVersion": "1.0.0"}) or {}

    # -- network configuration lists -------------------------------------------------

    def _plugin_config(self, conflist: dict[str, Any], plugin: dict[str, Any],
                       attachment: Attachment, prev: dict[str, Any] | None) -> dict[str, Any]:
        conf = copy.deepcopy(plugin)
        conf["name"] = conflist["name"]
        conf["cniVersion"] = conflist["cniVersion"]
        runtime = {cap: attachment.capability_args[cap]
                   for cap, on in dict(plugin.get("capabilities", {})).items()
                   if on and cap in attachment.capability_args}
        if runtime:
            conf["runtimeConfig"] = runtime
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def add(self, netconf: "str | Mapping[str, Any]", attachment: Attachment) -> CniResult:
        """ADD: run the list in order, each plugin given the previous result."""
        conflist = parse_config(netconf)
        prev: dict[str, Any] | None = None
        done: list[dict[str, Any]] = []
        try:
            for plugin in conflist["plugins"]:
                conf = self._plugin_config(conflist, plugin, attachment, prev)
                prev = self.exec_plugin(plugin["type"], "ADD", conf, attachment) or prev
                done.append(plugin)
        except CniError:
            # A runtime undoes a failed ADD with DEL over the whole list (nothing half-built).
            self._delete(conflist, attachment, prev, quiet=True)
            raise
        result = prev or {"cniVersion": conflist["cniVersion"]}
        self._cache_write(conflist, attachment, result)
        return CniResult(result)

    def check(self, netconf: "str | Mapping[str, Any]", attachment: Attachment) -> None:
        """CHECK: every plugin verifies, in order, that the cached result still holds."""
        conflist = parse_config(netconf)
        cached = self._cache_read(conflist, attachment)
        if cached is None:
            raise CniError(f"no cached result for {conflist['name']!r} and container "
                           f"{attachment.container_id[:12]}", code=3, msg="container unknown",
                           command="CHECK", obj=attachment.container_id[:12],
                           remedy="CHECK only an attachment that ADD created")
        for plugin in conflist["plugins"]:
            self.exec_plugin(plugin["type"], "CHECK",
                             self._plugin_config(conflist, plugin, attachment, cached), attachment)

    def delete(self, netconf: "str | Mapping[str, Any]", attachment: Attachment) -> None:
        """DEL: the list in reverse order, with the cached result; then forget the cache."""
        conflist = parse_config(netconf)
        self._delete(conflist, attachment, self._cache_read(conflist, attachment), quiet=False)

    def _delete(self, conflist: dict[str, Any], attachment: Attachment,
                prev: dict[str, Any] | None, *, quiet: bool) -> None:
        first: CniError | None = None
        for plugin in reversed(conflist["plugins"]):
            try:
                self.exec_plugin(plugin["type"], "DEL",
                                 self._plugin_config(conflist, plugin, attachment, prev), attachment)
            except CniError as exc:
                first = first or exc
        self.node.run(["rm", "-f", self._cache_path(conflist, attachment)], check=True)
        if first is not None and not quiet:
            raise first

    # -- the result cache (libcni's /var/lib/cni/results) ------------------------------

    def _cache_path(self, conflist: dict[str, Any], attachment: Attachment) -> str:
        return (f"{self.cache_dir}/results/"
                f"{conflist['name']}-{attachment.container_id}-{attachment.ifname}")

    def _cache_write(self, conflist: dict[str, Any], attachment: Attachment,
                     result: dict[str, Any]) -> None:
        path = self._cache_path(conflist, attachment)
        write_file(self.node, path, json.dumps({
            "kind": "cniCacheV1", "containerId": attachment.container_id,
            "ifName": attachment.ifname, "networkName": conflist["name"],
            "cniArgs": [[k, v] for k, v in attachment.args.items()],
            "capabilityArgs": attachment.capability_args, "result": result}))

    def _cache_read(self, conflist: dict[str, Any], attachment: Attachment) -> dict[str, Any] | None:
        out = self.node.run(["cat", self._cache_path(conflist, attachment)])
        if not out.ok:
            return None
        return dict(json.loads(out.stdout)["result"])

    def cached(self) -> list[str]:
        """The cached results (``ls /var/lib/cni/results``)."""
        out = self.node.run(["ls", f"{self.cache_dir}/results"])
        return out.stdout.split() if out.ok else []


def write_file(node: "Node", path: str, text: str) -> None:
    """Write ``path`` as seen from ``node`` (folders made as needed), atomically (mv)."""
    node.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && mv "$1.tmp" "$1"',
              "sh", path], input=text, check=True)


def cni_args(args: Mapping[str, str]) -> str:
    """``CNI_ARGS``: ``KEY=VALUE`` pairs joined by ``;`` (values may not contain them)."""
    parts = []
    for key, value in args.items():
        if not _ARG.match(str(key)) or not key or not _ARG.match(str(value)):
            raise CniError(f"CNI_ARGS entry {key}={value} contains characters CNI_ARGS cannot "
                           "carry", code=4, msg="invalid CNI_ARGS", command="args",
                           remedy="use letters, digits and . _ - / : only")
        parts.append(f"{key}={value}")
    return ";".join(parts)


def _remedy(code: int) -> str:
    return {
        1: "use a cniVersion the plugin lists (1.0.0 for plugins 1.1.1)",
        2: "remove the field the plugin does not support",
        3: "the container or its network namespace is gone: check CNI_NETNS",
        4: "check the CNI_* environment variables",
        6: "check the configuration is valid JSON",
        7: "fix the network configuration (see the message)",
    }.get(code, "read the plugin's message; `cat` the configuration and check each field")
