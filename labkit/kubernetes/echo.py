"""A tiny workload for the Kubernetes lessons: ``python -m labkit.kubernetes.echo``.

``serve --port 8080 --name web-1`` answers every TCP connection (and UDP datagram) on the
port with one line: ``web-1 <client ip>:<client port>``, so a client learns which pod
answered and which source address that pod saw. It fails like any server when the port
is taken: ``OSError: [Errno 98] Address already in use``.

``hit HOST PORT --count N [--udp]`` makes N new connections (or N queries) and prints a
JSON summary: replies per pod, source addresses seen by the pods, and errors by name
(``ECONNREFUSED`` when kube-proxy rejects a Service without endpoints).
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import time

from ..cluster.agent import positive_seconds, whole_number

MAX_HITS = 1_000_000            # connections one `hit` makes, at most
PORT = whole_number(1, 65535, "port")
COUNT = whole_number(1, MAX_HITS, "count")


def _bind(kind: str, port: int, name: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as exc:
        print(f"{name}: bind 0.0.0.0:{port}/{kind}: {exc}", file=sys.stderr, flush=True)
        return None
    return sock


def serve(port: int, name: str, udp: bool) -> int:
    sel = selectors.DefaultSelector()
    for kind in ("tcp", "udp") if udp else ("tcp",):
        sock = _bind(kind, port, name)
        if sock is None:
            return 1
        if kind == "tcp":
            sock.listen(128)
        sel.register(sock, selectors.EVENT_READ, kind)
    print(f"{name}: listening on 0.0.0.0:{port}" + (" (tcp+udp)" if udp else " (tcp)"), flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "tcp":
                conn, (ip, cport) = sock.accept()
                try:
                    conn.sendall(f"{name} {ip}:{cport}\n".encode())
                except OSError:
                    pass
                conn.close()
            else:
                _, (ip, cport) = sock.recvfrom(2048)
                sock.sendto(f"{name} {ip}:{cport}\n".encode(), (ip, cport))


def hit(host: str, port: int, count: int, udp: bool, timeout: float) -> int:
    replies: dict[str, int] = {}
    sources: dict[str, int] = {}
    errors: dict[str, int] = {}
    times: list[float] = []
    start = time.monotonic()
    for _ in range(count):
        began = time.perf_counter()
        kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect((host, port))
                if udp:
                    sock.send(b"?")
                line = sock.recv(256).decode().strip()
            except OSError as exc:
                if isinstance(exc, socket.timeout):
                    key = "TIMEOUT"
                else:
                    key = errno.errorcode.get(exc.errno or 0, str(exc))
                errors[key] = errors.get(key, 0) + 1
                continue
        times.append(time.perf_counter() - began)
        pod, _, source = line.partition(" ")
        replies[pod] = replies.get(pod, 0) + 1
        src_ip = source.rsplit(":", 1)[0]
        sources[src_ip] = sources.get(src_ip, 0) + 1
    print(json.dumps({"target": f"{host}:{port}", "count": count, "replies": replies,
                      "sources": sources, "errors": errors,
                      "median_us": round(sorted(times)[len(times) // 2] * 1e6, 1) if times else None,
                      "seconds": round(time.monotonic() - start, 4)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.kubernetes.echo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=PORT, default=8080)
    s.add_argument("--name", default=socket.gethostname())
    s.add_argument("--udp", action="store_true")
    h = sub.add_parser("hit")
    h.add_argument("host")
    h.add_argument("port", type=PORT)
    h.add_argument("--count", type=COUNT, default=1)
    h.add_argument("--udp", action="store_true")
    h.add_argument("--timeout", type=positive_seconds, default=2.0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        return serve(args.port, args.name, args.udp)
    return hit(args.host, args.port, args.count, args.udp, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
