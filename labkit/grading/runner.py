"""Execute one prepared submission with papermill, its kernel inside a sandbox.

This is the grader's worker: ``python -m labkit.grading.runner JOB.json``. The grader
starts one worker per submission in a private mount namespace (``unshare --mount``,
plus ``--user --map-root-user`` when the grader is not root) so the worker can mount
the kernel's connection directory as a small tmpfs that disappears with it.

The worker is trusted: papermill and nbclient run here, outside the sandbox, and
write the executed notebook; only the Jupyter kernel runs in the sandbox
(:mod:`labkit.grading.sandbox`) and talks to the worker over ZeroMQ IPC sockets in
the connection directory. The worker enforces

* the **time limit** for the whole notebook (each cell may run for whatever time is
  left; then the kernel is killed),
* the **output limit** (total size of the outputs kept; beyond it the kernel is
  killed, and no ZeroMQ message larger than the limit is accepted),

and writes a small JSON result: ``status`` (ok / error / timeout / killed / memory /
output-limit / crashed) and a ``reason``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.grading import cgroup
from labkit.grading.notebook import _records
from labkit.grading.sandbox import WORKDIR, Limits, SandboxSpec, command

__all__ = ["STATUSES", "Job", "WorkerResult", "main", "run_job"]

STATUSES = ("ok", "error", "timeout", "killed", "memory", "output-limit", "invalid", "crashed")
"""Every status a submission can get, best first."""

_KERNEL_LOG = "kernel.log"
LABKIT_ROOT = str(Path(__file__).resolve().parent.parent.parent)
"""The folder that holds the ``labkit`` package the grader runs."""
_KERNEL_SETUP = "__import__('labkit.grading.kernelside')"
"""Run in each kernel at start-up, binding no name (see :mod:`labkit.grading.kernelside`)."""
_LOG_TAIL = 4000
_GROUPS: list[Any] = []  # memory cgroups to remove when the worker ends


@dataclass(frozen=True)
class Job:
    """One submission to execute (written by the grader as JSON for the worker)."""

    student: str
    input_path: str
    output_path: str
    result_path: str
    log_path: str
    conn_dir: str
    parameters: dict[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None
    gid: int | None = None
    userns: bool = False
    hide: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    files: str | None = None
    kernel_name: str = "python3"
    allow_errors: bool = False
    parameters_source: str = ""
    """The instructor's parameters cell (the grader's evaluator runs it itself)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Job:
        data = json.loads(text)
        data["limits"] = Limits(**data["limits"])
        data["hide"] = tuple(data["hide"])
        data["allow"] = tuple(data.get("allow", ()))
        return cls(**data)


@dataclass(frozen=True)
class WorkerResult:
    """How the execution of one submission ended."""

    status: str
    reason: str = ""
    seconds: float = 0.0
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The grader's own verdicts: ``{id: {"passed", "reason", "verified"}}``."""
    flags: list[str] = field(default_factory=list)
    memory: str = ""
    """Which memory limit applied (a cgroup for the whole submission, or per process)."""


def kernel_env(python: str = sys.executable) -> dict[str, str]:
    """The whole environment of a sandboxed kernel: nothing of the grader's leaks in."""
    home = WORKDIR
    venv_bin = str(Path(python).parent)
    return {
        "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": home, "USER": "student", "LOGNAME": "student", "SHELL": "/bin/sh",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TERM": "dumb",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "IPYTHONDIR": f"{home}/.ipython",
        "JUPYTER_CONFIG_DIR": f"{home}/.jupyter",
        "JUPYTER_DATA_DIR": f"{home}/.local/share/jupyter",
        "JUPYTER_RUNTIME_DIR": f"{home}/.local/share/jupyter/runtime",
        "JUPYTER_PLATFORM_DIRS": "1",
        "MPLCONFIGDIR": f"{home}/.config/matplotlib",
        "XDG_CACHE_HOME": f"{home}/.cache", "XDG_CONFIG_HOME": f"{home}/.config",
        "XDG_RUNTIME_DIR": f"{home}/.run",
        "VIRTUAL_ENV": str(Path(python).parent.parent),
        # The kernel imports the grader's own labkit (the one that reads its results).
        "PYTHONPATH": LABKIT_ROOT,
    }


# --------------------------------------------------------------------------------------
# Kernel manager and papermill engine
# --------------------------------------------------------------------------------------

def _make_classes() -> tuple[type, type]:
    """Build the Jupyter classes lazily (importing papermill takes a while)."""
    import asyncio

    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import ensure_async, run_sync
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from traitlets import Any as AnyTrait
    from traitlets import Bool, Float, Integer, Unicode

    class SandboxKernelManager(AsyncKernelManager):
        """Starts the kernel through the sandbox, over IPC sockets in ``conn_dir``."""

        sandbox_json = Unicode("")
        log_path = Unicode("")
        max_message = Integer(0)
        sandbox_init = Integer(0)
        """PID of the sandbox's init: when it is gone, every process of the sandbox is."""

        def client(self, **kw: Any) -> Any:
            kc = super().client(**kw)
            if self.max_message:
                # Drop (rather than hold in memory) any single message above this size.
                kc.context.setsockopt(zmq.MAXMSGSIZE, self.max_message)
            return kc

        @property
        def sandbox(self) -> SandboxSpec:
            return SandboxSpec.from_json(self.sandbox_json)

        def write_connection_file(self, **kw: Any) -> None:
            super().write_connection_file(**kw)
            spec = self.sandbox
            if spec.uid is not None and os.geteuid() == 0:
                os.chown(self.connection_file, spec.uid, spec.gid if spec.gid is not None else -1)

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return command(self.sandbox, super().format_kernel_cmd(extra_arguments))

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - lives with the kernel
            kw.update(env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
                      cwd="/", stdout=log, stderr=log, stdin=None)
            try:
                await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                log.close()
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                self.sandbox_init = await asyncio.get_running_loop().run_in_executor(
                    None, _child_of, process.pid)

    class GradingClient(PapermillNotebookClient):
        """nbclient with a total time budget and a cap on the size of kept outputs."""

        deadline = Float(0.0)
        output_limit = Integer(2 << 20)
        output_limit_hit = Bool(False)
        output_used = Integer(0)
        evaluator = AnyTrait(None)
        verdicts = AnyTrait(None)
        progress_path = Unicode("")

        async def async_execute_cell(self, cell: Any, cell_index: int,
                                     execution_count: int | None = None,
                                     store_history: bool = True) -> Any:
            from nbclient.exceptions import CellExecutionError

            try:
                result = await super().async_execute_cell(cell, cell_index, execution_count,
                                                          store_history)
            except CellExecutionError:  # the cell raised; the kernel is idle again
                await self._judge_if_alive(cell)
                raise
            await self._judge_if_alive(cell)
            return result

        async def _judge_if_alive(self, cell: Any) -> None:
            # Not after a time-out or a dead kernel: nothing left to ask the kernel.
            if self.evaluator is not None and self.km is not None \
                    and not self.output_limit_hit and time.monotonic() < self.deadline \
                    and await ensure_async(self.km.is_alive()):
                await self._judge(cell)

        async def _judge(self, cell: Any) -> None:
            """The grader's part after a cell: snapshot after setup, own verdicts after
            checkpoint cells (see :mod:`labkit.grading.evaluator`)."""
            from labkit.grading.evaluator import free_names

            grader = (cell.metadata.get("labkit") or {}).get("grader") or {}
            tags = cell.metadata.get("tags", [])
            evaluator = self.evaluator
            if not evaluator.sandbox_init:
                evaluator.sandbox_init = getattr(self.km, "sandbox_init", 0) or 0
            if grader.get("setup") or "injected-parameters" in tags:
                evaluator.take_snapshot(await self._describe(None) or "")
            ids = [i for i in grader.get("checkpoints", []) if isinstance(i, str)]
            if not ids:
                return
            described = await self._describe(free_names(cell.source))
            where = f"In [{cell.get('execution_count') or '?'}]"
            await asyncio.get_running_loop().run_in_executor(None, evaluator.copy_workdir,
                                                             WORKDIR)
            verdicts = evaluator.evaluate(cell.source, ids, described, where)
            shown = {r.get("id"): r.get("passed") is True for r in _records(cell)}
            if any(not v.passed and shown.get(v.id) for v in verdicts) \
                    and self.deadline - time.monotonic() > 10:
                # The notebook passed where the grader's check failed a moment later:
                # look once more (a lost ping on a loaded machine must not cost points).
                await asyncio.sleep(1.0)
                verdicts = evaluator.evaluate(cell.source, ids, described, where)
            if self.verdicts is None:
                self.verdicts = {}
            for verdict in verdicts:
                self.verdicts[verdict.id] = verdict
            if self.progress_path:  # kept if the worker is killed before the end
                _write_result(self.progress_path, WorkerResult(
                    "running", "", 0.0, _verdicts_json(self.verdicts), list(evaluator.flags)))

        async def _describe(self, names: list[str] | None) -> str | None:
            """Ask the kernel for the encoded values of ``names`` (data, never trusted)."""
            import ast

            expr = ("__import__('labkit.grading.kernelside', fromlist=['describe'])"
                    f".describe({names!r})")
            msg_id = self.kc.execute("", silent=True, store_history=False,
                                     user_expressions={"labkit": expr})
            wait = max(1.0, min(30.0, self.deadline - time.monotonic()))
            try:
                reply = await asyncio.wait_for(self.async_wait_for_reply(msg_id), wait)
            except (asyncio.TimeoutError, RuntimeError) as exc:
                _logger().warning("no answer from the kernel: %s", exc)
                return None
            try:
                found = reply["content"]["user_expressions"]["labkit"]
                text = found["data"]["text/plain"]
                value = ast.literal_eval(text) if len(text) < (32 << 20) else None
            except (KeyError, TypeError, ValueError, SyntaxError, MemoryError) as exc:
                _logger().warning("unreadable answer from the kernel: %r %r", exc, reply)
                return None
            return value if isinstance(value, str) else None

        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            if self.output_limit_hit:
                return None
            out = super().output(outs, msg, display_id, cell_index)
            if out is not None:
                size = _size(out)
                if self.output_used + size > self.output_limit:
                    left = self.output_limit - self.output_used
                    if out.get("output_type") == "stream" and left > 0 and out in outs:
                        out["text"] = out["text"][:left]  # keep what fits of the last stream
                        self.output_used += left
                    elif out in outs:
                        outs.remove(out)
                    self._stop_for_output(outs)
                else:
                    self.output_used += size
            return out

        def _update_display_id(self, display_id: str, msg: dict) -> None:
            if self.output_limit_hit or _size(msg.get("content", {})) > self.output_limit:
                self._stop_for_output(None)
                return
            super()._update_display_id(display_id, msg)

        def _stop_for_output(self, outs: list | None) -> None:
            if self.output_limit_hit:
                return
            self.output_limit_hit = True
            from nbformat.v4 import new_output

            if outs is not None:
                outs.append(new_output("stream", name="stderr", text=(
                    f"\n[labkit grader] output limit of {self.output_limit} bytes reached: "
                    "the kernel was stopped.\n")))
            if self.km is not None and self.km.has_kernel:
                self.km.provisioner.process.kill()  # the sandbox dies with it

        async def async_start_new_kernel_client(self) -> Any:
            kc = await super().async_start_new_kernel_client()
            monitor = kc.iopub_channel.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self._iopub_watch = asyncio.ensure_future(self._watch_iopub(monitor))
            return kc

        async def _watch_iopub(self, monitor: Any) -> None:
            """A message above the size limit makes ZeroMQ drop the IOPub connection: if
            the kernel is still alive a moment later, that is what happened."""
            from zmq.utils.monitor import recv_monitor_message

            try:
                while True:
                    await recv_monitor_message(monitor)
                    await asyncio.sleep(1.0)
                    km = self.km
                    if km is not None and await ensure_async(km.is_alive()):
                        self._stop_for_output(None)
            except asyncio.CancelledError:
                pass
            finally:
                monitor.close(linger=0)

        async def _async_cleanup_kernel(self) -> None:
            watch = getattr(self, "_iopub_watch", None)
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            await super()._async_cleanup_kernel()

        # nbclient binds its synchronous wrappers to its own coroutines: rebind to ours.
        execute_cell = run_sync(async_execute_cell)
        start_new_kernel_client = run_sync(async_start_new_kernel_client)
        _cleanup_kernel = run_sync(_async_cleanup_kernel)

    class SandboxEngine(NBClientEngine):
        """papermill engine that uses :class:`GradingClient`."""

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            deadline = kwargs.pop("deadline")
            kwargs.pop("input_path", None)
            client = GradingClient(
                nb_man, kernel_name=kernel_name, deadline=deadline,
                extra_arguments=[f"--IPKernelApp.exec_lines={_KERNEL_SETUP}"],
                timeout_func=lambda cell: max(1, int(deadline - time.monotonic()) + 1),
                startup_timeout=kwargs.pop("start_timeout", 60),
                log=kwargs.pop("log", None) or _logger(), **kwargs)
            cls.client = client
            return client.execute()

    return SandboxKernelManager, SandboxEngine


def _child_of(pid: int, timeout: float = 5.0) -> int:
    """The (first) child of ``pid``: the sandbox's init, forked by ``unshare``; 0 if none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return 0
        if children:
            return int(children[0])
        time.sleep(0.01)
    return 0


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until ``pid`` has exited (gone, or a zombie); True if it did in time.

    A PID namespace's init exits only after every other process in the namespace
    has, so this is the moment the whole sandbox is gone.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _size(obj: Any) -> int:
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return sum(_size(k) + _size(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return sum(_size(v) for v in obj)
    return 8


def _logger() -> Any:
    import logging

    return logging.getLogger("labkit.grading.runner")


# --------------------------------------------------------------------------------------
# One job
# --------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _mount_conn_tmpfs(job: Job) -> None:
    """The kernel's connection directory: a 4 MiB tmpfs owned by the sandbox's uid."""
    os.makedirs(job.conn_dir, exist_ok=True)
    uid = job.uid if job.uid is not None else 0
    gid = job.gid if job.gid is not None else 0
    data = f"size={4 << 20},mode=0700,uid={uid},gid={gid}".encode()
    # nosuid, nodev, noexec, nosymfollow: the kernel may put anything here, and the
    # worker (which connects to the sockets here) must never be led elsewhere by a link.
    if _libc.mount(b"tmpfs", job.conn_dir.encode(), b"tmpfs", ctypes.c_ulong(2 | 4 | 8 | 256),
                   data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {job.conn_dir}: {os.strerror(err)}")


def run_job(job: Job) -> WorkerResult:
    """Execute one submission (in the worker process) and say how it ended."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    from labkit.grading.evaluator import Evaluator

    started = time.monotonic()
    deadline = started + job.limits.time_s
    _mount_conn_tmpfs(job)
    # The kernel's output goes to a file in the job's own folder, which the sandbox
    # cannot see: it writes through the descriptor it inherited and cannot replace it.
    kernel_log = os.path.join(os.path.dirname(job.conn_dir), _KERNEL_LOG)
    evaluator = Evaluator(job.parameters_source, job.parameters)
    group, why = cgroup.create(f"labkit-grade-{os.getpid()}", job.limits.memory_bytes)
    memory = group.describe if group is not None else (
        f"memory limited per process only ({job.limits.memory_bytes} bytes of address space "
        f"each, RLIMIT_AS): no memory cgroup could be made ({why})")
    spec = SandboxSpec(conn_dir=job.conn_dir, uid=job.uid, gid=job.gid, userns=job.userns,
                       limits=job.limits, hide=job.hide, allow=job.allow, files=job.files,
                       env=kernel_env(), cgroup=str(group.path) if group is not None else None)
    manager_class, engine = _make_classes()
    papermill_engines.register("labkit-sandbox", engine)
    km = manager_class(kernel_name=job.kernel_name, sandbox_json=spec.to_json(),
                       log_path=kernel_log, transport="ipc",
                       ip=os.path.join(job.conn_dir, "k"),
                       connection_file=os.path.join(job.conn_dir, "kernel.json"),
                       max_message=max(16 << 20, 4 * job.limits.output_bytes))

    def outcome(status: str, reason: str = "") -> WorkerResult:
        client = getattr(engine, "client", None)
        verdicts = (getattr(client, "verdicts", None) or {}) if client is not None else {}
        if group is not None and status not in ("ok", "memory", "output-limit") \
                and group.oom_kills():
            status, reason = "memory", (f"the submission used more than {group.limit} bytes "
                                        "in all: the kernel killed it (memory cgroup)")
        return WorkerResult(status, reason, round(time.monotonic() - started, 3),
                            _verdicts_json(verdicts), list(evaluator.flags), memory)

    try:
        papermill.execute_notebook(
            job.input_path, job.output_path, parameters=job.parameters,
            engine_name="labkit-sandbox", kernel_name=job.kernel_name, language="python",
            progress_bar=False,
            start_timeout=max(5, min(60, int(job.limits.time_s))), km=km, deadline=deadline,
            output_limit=job.limits.output_bytes, allow_errors=job.allow_errors,
            shutdown_kernel="immediate", autosave_cell_every=10, evaluator=evaluator,
            progress_path=job.result_path)
    except PapermillExecutionError:
        pass  # papermill also raises for cells allowed to fail: decided below
    except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as exc:
        client = getattr(engine, "client", None)
        if client is not None and client.output_limit_hit:
            return outcome("output-limit",
                           f"outputs exceeded the limit of {job.limits.output_bytes} bytes")
        if isinstance(exc, CellTimeoutError) and "IOPub" in str(exc):
            return outcome("output-limit", "an output message was too large to receive")
        if time.monotonic() >= deadline - 0.5 or isinstance(exc, CellTimeoutError):
            return outcome("timeout", f"time limit of {job.limits.time_s:g} s reached")
        if isinstance(exc, DeadKernelError):
            return outcome("killed", f"the kernel died ({_kernel_exit(kernel_log)})")
        return outcome("crashed", f"{type(exc).__name__}: {exc} ({_kernel_exit(kernel_log)})")
    finally:
        _stop_sandbox(km)
        evaluator.close()
        if group is not None:  # read in outcome(), removed when the worker ends
            _GROUPS.append(group)
        _save_log(kernel_log, job.log_path)
    client = getattr(engine, "client", None)
    error = first_error(client.nb if client is not None else None, job.allow_errors)
    if error is None:
        return outcome("ok")
    text = f"{error[0]} raised {error[1]}: {error[2]}".strip().rstrip(":")
    if job.allow_errors:
        text += " (execution continued)"
    if error[1] == "MemoryError":
        return outcome("memory", f"{text} (memory limit {job.limits.memory_bytes} bytes)")
    return outcome("error", text)


def _verdicts_json(verdicts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cid: {"passed": v.passed, "reason": v.reason, "verified": v.verified}
            for cid, v in verdicts.items()}


def _write_result(path: str, result: WorkerResult) -> None:
    tmp = f"{path}.tmp"
    Path(tmp).write_text(json.dumps(asdict(result), sort_keys=True))
    os.replace(tmp, path)


def first_error(nb: Any, allow_errors: bool) -> tuple[str, str, str] | None:
    """The error that stopped execution (``("In [n]", ename, evalue)``), if any.

    A cell that stopped execution is marked by papermill (``exception: true``); with
    ``allow_errors`` nothing stops, and the first error outside cells tagged
    ``raises-exception`` counts. Errors in ``raises-exception`` cells never count.
    """
    if nb is None:
        return None
    candidates = [c for c in nb.cells if (c.metadata.get("papermill") or {}).get("exception")]
    if not candidates and allow_errors:
        candidates = [c for c in nb.cells
                      if "raises-exception" not in c.metadata.get("tags", [])
                      and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    for cell in candidates:
        where = f"In [{cell.get('execution_count')}]" if cell.get("execution_count") else "a cell"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return where, str(out.get("ename", "")), str(out.get("evalue", ""))
        return where, "an error", ""
    return None


def _stop_sandbox(km: Any) -> None:
    """Kill the kernel's sandbox (nbclient leaves a kernel manager it was given alone)
    and wait until every process in it is gone."""
    from jupyter_core.utils import run_sync

    try:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - it may be dead already; the wait below decides
        process = getattr(km.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
    if km.sandbox_init and not _wait_gone(km.sandbox_init):
        _logger().error("the sandbox (init pid %s) did not end in time", km.sandbox_init)


def _kernel_tail(kernel_log: str) -> bytes | None:
    """The end of the kernel's output file (read without following links, bounded)."""
    from labkit.grading.safefs import open_dir, read_tail

    try:
        folder = open_dir(os.path.dirname(kernel_log))
    except OSError:
        return None
    try:
        return read_tail(folder, os.path.basename(kernel_log), _LOG_TAIL)
    except OSError:
        return None
    finally:
        os.close(folder)


def _kernel_exit(kernel_log: str) -> str:
    data = _kernel_tail(kernel_log)
    if data is None:
        return "no kernel log"
    lines = data.decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        if line.startswith("labkit-sandbox:"):
            return line.removeprefix("labkit-sandbox:").strip()
    return "the sandbox was killed" if lines else "no kernel output"


def _save_log(kernel_log: str, log_path: str) -> None:
    data = _kernel_tail(kernel_log)
    if data is None:
        return
    from labkit.grading.text import printable

    text = printable(data.decode("utf-8", "replace"), lines=True)
    with open(log_path, "ab") as fh:
        fh.write(b"--- kernel output (tail) ---\n" + text.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: run the job in ``argv[0]`` and write its result file."""
    args = sys.argv[1:] if argv is None else argv
    # jsonschema (through nbformat) imports rfc3987_syntax eagerly when it is installed,
    # which builds a grammar for 1-2 s of CPU per worker; nbformat never checks IRI
    # formats, so the worker does without it.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    job = Job.from_json(Path(args[0]).read_text())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run_job(job)
    except Exception as exc:  # noqa: BLE001 - the grader must get a result, whatever happens
        result = WorkerResult("crashed", f"{type(exc).__name__}: {exc}")
    _write_result(job.result_path, result)
    for group in _GROUPS:
        group.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
