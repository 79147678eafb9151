"""A lab survives bad arguments, hostile requests, concurrency and a stopped supervisor.

Issue 15, items 10 to 14: every argument is checked at the API edge with a labkit
error, the supervisor answers any malformed request with an error and goes on, many
labs built at once by many processes all live, each capture's file is its own, no
call waits forever, and errors say which field was wrong and what to do.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from labkit import (InvalidName, InvalidRequest, KernelError, Lab, LabkitError, LabUnresponsive,
                    _client, _protocol)
from labkit._supervisor import Supervisor
from helpers import lab_state


REPO = Path(__file__).resolve().parent.parent
# Child processes import this labkit, wherever their script lives.
CHILD_ENV = {**os.environ,
             "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


@pytest.fixture
def pair(lab: Lab) -> Lab:
    a, b = lab.add_host("a"), lab.add_host("b")
    lab.link(a, b)
    a.add_address("eth0", "10.0.0.1/24")
    b.add_address("eth0", "10.0.0.2/24")
    return lab


# -- item 10: bad arguments get labkit errors, and the lab lives on -------------------------

BAD_CALLS: dict[str, Callable[[Lab], Any]] = {
    "metric -5": lambda lab: lab["a"].add_route("10.9.0.0/16", dev="eth0", metric=-5),
    "metric 2**33": lambda lab: lab["a"].add_route("10.9.0.0/16", dev="eth0", metric=2 ** 33),
    "metric as text": lambda lab: lab["a"].add_route("10.9.0.0/16", dev="eth0", metric="5"),
    "table -1": lambda lab: lab["a"].add_route("10.9.0.0/16", dev="eth0", table=-1),
    "table 2**40": lambda lab: lab["a"].del_route("10.9.0.0/16", dev="eth0", table=2 ** 40),
    "route dev with NUL": lambda lab: lab["a"].add_route("10.9.0.0/16", dev="eth\0"),
    "env name with =": lambda lab: lab["a"].run(["true"], env={"A=B": "x"}),
    "env value with NUL": lambda lab: lab["a"].run(["true"], env={"A": "x\0y"}),
    "env not a dict": lambda lab: lab["a"].run(["true"], env=["A"]),
    "NUL in argv": lambda lab: lab["a"].run(["echo", "a\0b"]),
    "NUL in a command string": lambda lab: lab["a"].run("echo a\0b"),
    "NUL in spawn argv": lambda lab: lab["a"].spawn(["sleep\0", "1"]),
    "negative timeout": lambda lab: lab["a"].run(["true"], timeout=-1),
    "vxlan ttl 300": lambda lab: lab["a"].add_vxlan("vx0", 42, remote="10.0.0.2", ttl=300),
    "vxlan learning 'no'": lambda lab: lab["a"].add_vxlan("vx0", 42, remote="10.0.0.2",
                                                         learning="no"),
    "del_fdb not a MAC": lambda lab: lab["a"].del_fdb("eth0", "not-a-mac"),
    "add_fdb not a MAC": lambda lab: lab["a"].add_fdb("eth0", "zz:zz"),
    "sysctl path escape": lambda lab: lab["a"].set_sysctl("../../../etc/hostname", "x"),
    "sysctl value with NUL": lambda lab: lab["a"].set_sysctl("net.ipv4.ip_forward", "1\0"),
    "forwarding 'yes'": lambda lab: lab["a"].set_sysctl("net.ipv4.ip_forward", "yes"),
    "get sysctl empty": lambda lab: lab["a"].get_sysctl(""),
    "ping count 0": lambda lab: lab["a"].ping("10.0.0.2", count=0),
    "ping ttl 256": lambda lab: lab["a"].ping("10.0.0.2", ttl=256),
    "ping size -1": lambda lab: lab["a"].ping("10.0.0.2", size=-1),
    "traceroute hops 0": lambda lab: lab["a"].traceroute("10.0.0.2", max_hops=0),
    "set_link up 'yes'": lambda lab: lab["a"].set_link("eth0", up="yes"),
    "address on ''": lambda lab: lab["a"].add_address("", "10.1.0.1/24"),
    "neighbour on a too long name": lambda lab: lab["a"].add_neighbour(
        "eth0-much-too-long", "10.0.0.9", "02:00:00:00:00:09"),
    "link names not a pair": lambda lab: lab.link("a", "b", names=("x",)),
    "adopt pid -1": lambda lab: lab.adopt("c", pid=-1),
    "signal name unknown": lambda lab: lab["a"].spawn(["sleep", "5"]).signal("NOPE"),
    "stop grace negative": lambda lab: lab["a"].spawn(["sleep", "5"]).stop(grace=-1),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_arguments_get_labkit_errors_and_the_lab_lives(pair: Lab, case: str) -> None:
    before = lab_state(pair)
    with pytest.raises(LabkitError) as info:
        BAD_CALLS[case](pair)
    assert isinstance(info.value, ValueError), f"{type(info.value).__name__}: {info.value}"
    assert info.value.remedy, f"no remedy in {info.value}"
    assert not pair.closed
    assert lab_state(pair) == before  # nothing half-built
    assert pair["a"].ping("10.0.0.2", count=1).received == 1


def _raw(lab: Lab, frame: bytes, rid: int | None, timeout: float = 30.0) -> dict[str, Any] | None:
    """Write ``frame`` straight onto the supervisor's socket; the reply to ``rid`` if any."""
    client = lab._client
    assert client is not None
    event, box = threading.Event(), []
    with client._lock:
        if rid is not None:
            client._waiting[rid] = (event, box)
        client.sock.sendall(frame)
    if rid is None:
        return None
    assert event.wait(timeout), f"no reply to request {rid} within {timeout} s"
    assert box, "the supervisor ended instead of answering"
    return box[0]


def _frame(message: object) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack("!I", len(data)) + data


NASTY: list[Any] = [None, -1, 0, 2 ** 64, -2 ** 63, 1.5, float("inf"), True, "", "a\0b",
                    "x" * 3000, "../../etc/passwd", "not-a-mac", "a", [], [1, "x"], ["a\0"], {},
                    {"k": None}, {"A=B": "x"}]


def test_supervisor_answers_every_malformed_request(pair: Lab) -> None:
    """Fuzz the supervisor protocol directly: every request gets an answer, the lab lives."""
    client = pair._client
    assert client is not None
    alive = lambda: pair["a"].interfaces()  # noqa: E731 - a normal request after each junk one
    # Frames that are not requests at all: answered with id 0, which nobody waits for.
    for junk in (b"\x00\x00\x00\x05hello", b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x04null",
                 struct.pack("!I", 10 ** 5) + b"[" * 10 ** 5,
                 struct.pack("!I", _protocol.MAX_MESSAGE + 1) + b" " * (_protocol.MAX_MESSAGE + 1)):
        _raw(pair, junk, None)
        alive()
    next_id = 10 ** 6
    shapes: list[dict[str, Any]] = [{"op": 5}, {"op": None}, {"op": "__init__"}, {"op": "nope"},
                                    {"op": "inspect", "args": []}, {"op": "inspect", "args": "x"},
                                    {"op": "batch", "args": {"ops": [{"op": "run"}]}},
                                    {"op": "batch", "args": {"ops": [{"op": "route", "args": 3}]}},
                                    {"op": "batch", "args": {"ops": "x"}}]
    # Every operation the supervisor has, with arguments of every wrong kind.
    rng = random.Random(15)
    ops = {name[3:]: inspect.signature(getattr(Supervisor, name))
           for name in dir(Supervisor) if name.startswith("op_")}
    for op, sig in sorted(ops.items()):
        params = [p for p in sig.parameters if p not in ("self", "rid")]
        for _ in range(12):
            args = {p: rng.choice(NASTY) for p in params if rng.random() < 0.9}
            if "node" in args and rng.random() < 0.5:
                args["node"] = "a"  # get past the node lookup, into the operation itself
            if op in ("del_node",) and args.get("node") == "a":
                args["node"] = "zz"
            shapes.append({"op": op, "args": args})
    answered = 0
    for shape in shapes:
        next_id += 1
        reply = _raw(pair, _frame({"id": next_id, **shape}), next_id)
        assert reply is not None and reply["id"] == next_id
        if not reply["ok"]:
            assert reply["error"]["type"] in (
                "InvalidRequest", "InvalidName", "InvalidAddress", "InvalidTopology", "NotFound",
                "KernelError", "DuplicateName", "ToolMissing", "LabkitError"), reply
        answered += 1
    assert answered == len(shapes) > 200
    # The lab is whole: the first two nodes still talk, and new things can be built.
    assert pair["a"].ping("10.0.0.2", count=1).received == 1
    c = pair.add_host("c")
    pair.link("a", c, names=("eth9", "eth0"))
    assert "eth9" in {i.ifname for i in pair["a"].interfaces()}
    # Nothing the fuzz sent started a process that is still running.
    assert pair["a"].run(["true"]).returncode == 0


# -- item 11: the race between a status request and a process's end -------------------------

def _supervisor(lab: Lab) -> int:
    pid = lab._client.process.pid  # type: ignore[union-attr]
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def test_status_request_and_process_exit_in_one_wakeup(lab: Lab) -> None:
    """The race that killed ~9% of labs under load, made to happen every time.

    The supervisor is held stopped while a status request arrives and then the process
    ends: it wakes to both at once. Draining the process for the request closes its
    pipes, and the pipes' own (now stale) events used to crash it.
    """
    h = lab.add_host("h")
    sup = _supervisor(lab)
    for attempt in range(3):
        proc = h.spawn(["sh", "-c", "echo out; echo err >&2; sleep 0.3"])
        os.kill(sup, signal.SIGSTOP)
        try:
            time.sleep(0.1)
            rid = 10 ** 7 + attempt
            client = lab._client
            assert client is not None
            event, box = threading.Event(), []
            with client._lock:
                client._waiting[rid] = (event, box)
                _protocol.send(client.sock, {"id": rid, "op": "status", "args": {"pid": proc.pid}})
            time.sleep(0.8)  # the process ends meanwhile
        finally:
            os.kill(sup, signal.SIGCONT)
        assert event.wait(30) and box and box[0]["ok"], f"attempt {attempt}: {box}"
        assert h.run(["true"]).returncode == 0, f"lab died at attempt {attempt}"
        status = box[0]["result"]
        assert status["stdout"] == "out\n" and status["stderr"] == "err\n"


WORKER = textwrap.dedent("""
    import sys
    from labkit import Lab
    from labkit.capture import Capture
    n, folder = int(sys.argv[1]), sys.argv[2]
    for k in range(3):
        with Lab("same", workdir=folder) as lab:   # every worker's labs share one name and folder
            a, b = lab.add_host("a"), lab.add_host("b")
            lab.link(a, b)
            mine = (f"10.{n}.{k}.1", f"10.{n}.{k}.2")
            a.add_address("eth0", mine[0] + "/24")
            b.add_address("eth0", mine[1] + "/24")
            for _ in range(4):                      # processes ending while their status is asked
                a.spawn(["sleep", "0.02"]).wait(timeout=60)
                a.run(["true"], check=True)
            with Capture(a, "eth0", filter="icmp") as cap:
                assert a.ping(mine[1], count=2, interval=0.05).received == 2
            rows = cap.table()
            seen = set(rows["src_ip"]) | set(rows["dst_ip"])
            assert seen == set(mine), (cap.path, seen)
            assert len(rows) == 4, (cap.path, len(rows))
            print("CAPTURE", cap.path, flush=True)
    print("OK", n, flush=True)
""")


def test_eight_processes_building_labs_at_once(tmp_path: Path) -> None:
    """A class on one machine: 8 processes x 3 labs, one name, one folder; all live."""
    folder, scratch = tmp_path / "shared", tmp_path / "tmp"
    scratch.mkdir()
    env = {**CHILD_ENV, "TMPDIR": str(scratch)}  # where the labs' temporary files would go
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(n), str(folder)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
               for n in range(8)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for n, (w, (out, err)) in enumerate(zip(workers, outputs)):
        assert w.returncode == 0 and f"OK {n}" in out, f"worker {n}:\n{out}\n{err[-3000:]}"
    paths = [line.split(" ", 1)[1] for out, _ in outputs for line in out.splitlines()
             if line.startswith("CAPTURE ")]
    assert len(paths) == len(set(paths)) == 24  # each capture wrote a file of its own
    assert sorted(p.name for p in (folder / "captures").glob("*.pcap")) == \
        sorted(f"a-eth0-{i}.pcap" for i in range(1, 25))
    assert list(scratch.iterdir()) == []


# -- item 12: a capture's file is its own ----------------------------------------------------

def test_two_captures_on_one_interface_write_two_files(pair: Lab) -> None:
    a = pair["a"]
    everything = a.capture("eth0")
    icmp_only = a.capture("eth0", filter="icmp")
    assert everything.path != icmp_only.path
    assert everything.path.exists() and icmp_only.path.exists()  # claimed at once
    with everything, icmp_only:
        a.run(["ip", "neigh", "flush", "all"], check=True)
        assert a.ping("10.0.0.2", count=2, interval=0.05).received == 2
    all_rows, icmp_rows = everything.table(), icmp_only.table()
    assert list(icmp_rows["proto"]) == [1, 1, 1, 1], icmp_rows[["stack", "src_ip", "dst_ip"]]
    assert all_rows["arp_op"].notna().any()  # the ARP exchange is in the unfiltered one only
    assert len(icmp_rows) == 4 and len(all_rows) > len(icmp_rows)


def test_capture_names_are_claimed_across_processes(tmp_path: Path) -> None:
    """Many processes choosing a fresh name in one folder at once get one file each."""
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from labkit.capture.session import _fresh_path
        print(_fresh_path(Path(sys.argv[1]), None, "eth0"))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], text=True,
                              stdout=subprocess.PIPE, env=CHILD_ENV) for _ in range(8)]
    names = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert len(set(names)) == 8 and all(Path(n).exists() for n in names)


def test_an_unstarted_capture_gives_its_name_back(pair: Lab) -> None:
    cap = pair["a"].capture("eth0")
    path = cap.path
    assert path.exists()
    del cap
    assert not path.exists()


# -- item 13: no call waits forever -----------------------------------------------------------

def test_a_stopped_supervisor_gives_a_clear_error(pair: Lab) -> None:
    sup = _supervisor(pair)
    os.kill(sup, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(LabUnresponsive, match=rf"pid {sup}\) is stopped") as info:
            pair["a"].interfaces()
        assert time.monotonic() - start < 30
        assert f"kill -CONT {sup}" in str(info.value)
        assert isinstance(info.value, TimeoutError)
    finally:
        os.kill(sup, signal.SIGCONT)
    assert pair["a"].ping("10.0.0.2", count=1).received == 1  # it works again once resumed


def test_a_stopped_lab_still_closes_and_leaves_nothing(tmp_path: Path) -> None:
    lab = Lab("stopped", workdir=tmp_path)
    lab.add_host("h").spawn(["sleep", "60"])
    os.kill(_supervisor(lab), signal.SIGSTOP)
    start = time.monotonic()
    lab.close()  # no answer to "shutdown": it is ended anyway (no_residue checks the rest)
    assert time.monotonic() - start < 30 and lab.closed


def test_call_deadline_counts_the_operations_own_time(pair: Lab,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_client, "CALL_MARGIN", 0.5)
    # A command's own timeout is part of its deadline: a 1.5 s command is not cut short.
    assert pair["a"].run(["sleep", "1.5"], timeout=10).returncode == 0
    # Without its own time counted, the same call misses its deadline: a clear error.
    monkeypatch.setattr(_client, "own_duration", lambda op, args: 0.0)
    with pytest.raises(LabUnresponsive, match=r"did not answer 'run' within"):
        pair["a"].run(["sleep", "1.5"], timeout=10)
    monkeypatch.undo()
    time.sleep(1.5)  # its late reply arrives and is dropped; the lab goes on
    assert pair["a"].run(["echo", "ok"]).stdout == "ok\n"


# -- item 14: clear errors ---------------------------------------------------------------------

def test_empty_interface_name_is_refused_not_renamed(pair: Lab) -> None:
    before = lab_state(pair)
    for names in (("", None), (None, "")):
        with pytest.raises(InvalidName, match="interface name '' is empty"):
            pair.link("a", "b", names=names)
    with pytest.raises(InvalidName):
        pair["a"].add_bridge("")
    with pytest.raises(LabkitError, match="cannot capture: interface name 'eth\\\\x00' contains"):
        pair["a"].capture("eth\0")
    assert lab_state(pair) == before


def test_kernel_refusals_name_the_field(pair: Lab) -> None:
    a = pair["a"]
    a.add_vxlan("vx0", 42, remote="10.0.0.2", dev="eth0")
    with pytest.raises(KernelError, match=r"set link a:vx0: kernel said EINVAL.*mtu=65535"):
        a.set_link("vx0", mtu=65535)  # a VXLAN device fits inside its underlay's MTU
    # The kernel's own explanation (netlink extended ack) comes along where it gives one.
    with pytest.raises(KernelError, match=r"EINVAL.*remote='fd00::2'.*local='10.0.0.1'"):
        a.add_vxlan("vx1", 43, remote="fd00::2", local="10.0.0.1")
    with pytest.raises(KernelError, match=r"set sysctl a.*EINVAL.*key='net.ipv4.conf.eth0.rp_filter'"):
        a.set_sysctl("net.ipv4.conf.eth0.rp_filter", "banana")
    assert {i.ifname for i in a.interfaces()} == {"lo", "eth0", "vx0"}


EMFILE = textwrap.dedent("""
    import resource
    from labkit import Lab, KernelError
    lab = Lab("fds")
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    kept = []
    try:
        while True:
            kept.append(Lab("more"))   # each open lab holds a few of this process's files
    except KernelError as exc:
        print("client:", exc)
    try:
        for i in range(2000):
            lab.add_host(f"h{i}")
    except KernelError as exc:
        print("supervisor:", exc)
    for i in range(1, 6):
        lab.remove_node(f"h{i}")   # frees a few of the supervisor's files
    print("alive:", len(lab.nodes) > 10 and lab.nodes["h0"].interfaces()[0].ifname)
    for other in kept:
        other.close()
""")


def test_too_many_open_files_says_what_to_do(tmp_path: Path) -> None:
    script = tmp_path / "emfile.py"
    script.write_text(EMFILE)
    out = subprocess.run(["sh", "-c", f"ulimit -n 200 && exec {sys.executable} {script}"],
                         capture_output=True, text=True, timeout=300, env=CHILD_ENV)
    assert "client: start lab 'more': kernel said EMFILE" in out.stdout, out.stdout + out.stderr
    assert "supervisor: add node" in out.stdout and "EMFILE" in out.stdout, out.stdout + out.stderr
    assert out.stdout.count("ulimit -n") == 2 and "lab.close()" in out.stdout
    assert "alive: lo" in out.stdout


def test_run_takes_bytes_input_and_signals_by_name(lab: Lab) -> None:
    h = lab.add_host("h")
    data = bytes(range(256))
    result = h.run(["od", "-An", "-tx1", "-v"], input=data)
    assert result.stdout.split() == [f"{b:02x}" for b in data]
    assert h.run(["cat"], input="héllo").stdout == "héllo"
    for name in ("KILL", "SIGTERM", "hup", signal.SIGINT, 15):
        proc = h.spawn(["sleep", "30"])
        proc.signal(name)
        proc.wait(timeout=30)
        expected = name if isinstance(name, int) else signal.Signals[
            "SIG" + str(name).upper().removeprefix("SIG")]
        assert proc.returncode == -int(expected)
    with pytest.raises(LabkitError, match="signal 'NOPE' is not known"):
        h.spawn(["sleep", "30"]).signal("NOPE")
    with pytest.raises(LabkitError, match="input of type int"):
        h.run(["cat"], input=5)  # type: ignore[arg-type]


def test_a_malformed_request_is_an_error_at_the_client(pair: Lab) -> None:
    with pytest.raises(InvalidRequest, match="cannot be sent"):
        pair._call("inspect", node="a", what=object())
    assert pair["a"].interfaces()
