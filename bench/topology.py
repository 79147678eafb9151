"""Benchmark: N hosts on one switch — build, one ping between two hosts, tear down.

Three contenders run one after the other in this process tree, each in a child process
so that none inherits another's warm state:

* labkit (``Lab`` + ``add_switch`` + N ``add_host``/``link``/``add_address`` in a batch);
* a shell loop of ``ip`` commands (one ``ip`` process per step, as a person would
  script it), inside ``unshare -Urnm`` so it never touches this machine's network;
* Mininet from Debian's ``mininet`` package (``--switch lxbr --controller none``,
  i.e. a Linux bridge), inside ``unshare -nm`` for the same reason. Skipped with a
  message if Mininet, brctl or root are missing.

It prints each time, labkit's supervisor memory per host, and ratios; the last line
holds ``labkit/mininet`` and ``labkit/iproute2`` for N=100.

    .venv/bin/python bench/topology.py [--sizes 10,100,300,1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

LABKIT = textwrap.dedent("""
    import json, os, sys, time
    from labkit import Lab
    n = int(sys.argv[1])
    t0 = time.perf_counter()
    lab = Lab("bench")
    sup = [p for p in os.listdir("/proc") if p.isdigit()
           and "labkit._supervisor" in open(f"/proc/{p}/cmdline").read()
           and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == str(lab.supervisor_pid)]
    def rss():
        for line in open(f"/proc/{sup[0]}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    base = rss()
    with lab.batch():
        sw = lab.add_switch("s1")
        hosts = []
        for i in range(1, n + 1):
            h = lab.add_host(f"h{i}")
            lab.link(h, sw)
            h.add_address("eth0", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}/8")
            hosts.append(h)
    built = rss()
    r = hosts[0].ping(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", count=1)
    assert r.received == 1, r.raw
    lab.close()
    t1 = time.perf_counter()
    print(json.dumps({"seconds": t1 - t0, "kib_per_host": (built - base) / n}))
""")

IPROUTE2 = textwrap.dedent("""
    set -e
    n=$1
    mount -t tmpfs none /run && mkdir -p /run/netns
    start=$(date +%s.%N)
    ip netns add s1
    ip -n s1 link add br0 type bridge
    ip -n s1 link set br0 up
    for i in $(seq 1 $n); do
        ip netns add h$i
        ip -n h$i link set lo up
        ip -n h$i link add eth0 type veth peer name p$i netns s1
        ip -n s1 link set p$i master br0 up
        ip -n h$i addr add 10.$((i >> 16)).$(((i >> 8) & 255)).$((i & 255))/8 dev eth0
        ip -n h$i link set eth0 up
    done
    ip netns exec h1 ping -c 1 -W 2 10.$((n >> 16)).$(((n >> 8) & 255)).$((n & 255)) > /dev/null
    for i in $(seq 1 $n); do ip netns del h$i; done
    ip netns del s1
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "{\\"seconds\\": %.6f}\\n", e - s }'
""")

MININET = textwrap.dedent("""
    import json, sys, time
    from mininet.net import Mininet
    from mininet.topo import SingleSwitchTopo
    from mininet.nodelib import LinuxBridge
    from mininet.log import setLogLevel
    setLogLevel("error")
    n = int(sys.argv[1])
    t0 = time.perf_counter()
    net = Mininet(topo=SingleSwitchTopo(n), switch=LinuxBridge, controller=None,
                  autoSetMacs=True, waitConnected=False)
    net.start()
    h1, hn = net.get("h1"), net.get(f"h{n}")
    out = h1.cmd(f"ping -c 1 -W 2 {hn.IP()}")
    assert " 0% packet loss" in out, out
    net.stop()
    print(json.dumps({"seconds": time.perf_counter() - t0}))
""")


def run_json(argv: list[str], timeout: float = 1800) -> dict[str, float]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def labkit_run(n: int) -> dict[str, float]:
    return run_json([sys.executable, "-c", LABKIT, str(n)])


def iproute2_run(n: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
        fh.write(IPROUTE2)
    try:
        return run_json(["unshare", "-Urnm", "bash", fh.name, str(n)])
    finally:
        os.unlink(fh.name)


def mininet_missing() -> str | None:
    if os.geteuid() != 0:
        return "Mininet needs root"
    for tool in ("mnexec", "brctl", "ifconfig"):
        if not shutil.which(tool):
            return f"{tool} not found (apt-get install mininet bridge-utils net-tools)"
    if not os.path.exists("/usr/lib/python3/dist-packages/mininet"):
        return "Mininet's Python package is not installed (apt-get install mininet)"
    return None


def mininet_run(n: int) -> dict[str, float]:
    # Its own network and mount namespaces: Mininet's root-namespace switch and cleanup
    # stay away from this machine's interfaces (and from Docker's FORWARD policy).
    return run_json(["unshare", "-nm", "/usr/bin/python3", "-c", MININET, str(n)])


def best(fn, n: int, repeat: int) -> dict[str, float]:
    runs = [fn(n) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,300,1000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point; the best is kept")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    skip_mn = mininet_missing()
    if skip_mn:
        print(f"mininet: skipped ({skip_mn})")
    print(f"{'N':>6} {'labkit s':>9} {'KiB/host':>9} {'ip loop s':>10} {'mininet s':>10} "
          f"{'lk/ip':>7} {'lk/mn':>7}")
    at100: dict[str, float] = {}
    for n in sizes:
        lk = best(labkit_run, n, args.repeat)
        ip = best(iproute2_run, n, args.repeat)
        mn = None if skip_mn or n > 300 else best(mininet_run, n, max(1, args.repeat - 2))
        r_ip = lk["seconds"] / ip["seconds"]
        r_mn = lk["seconds"] / mn["seconds"] if mn else float("nan")
        print(f"{n:>6} {lk['seconds']:>9.3f} {lk['kib_per_host']:>9.1f} {ip['seconds']:>10.3f} "
              f"{(mn['seconds'] if mn else float('nan')):>10.3f} {r_ip:>7.3f} {r_mn:>7.3f}",
              flush=True)
        if n == 100:
            at100 = {"mn": r_mn, "ip": r_ip}
    if at100:
        print(f"N=100: labkit/mininet={at100['mn']:.3f} labkit/iproute2={at100['ip']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
