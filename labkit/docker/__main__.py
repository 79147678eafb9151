"""``python -m labkit.docker status|setup|list|clean``: the Docker backend from a shell.

    status          is an engine reachable? (exit status 1 if not, with the reason)
    setup           build the offline base image if it is missing (cached)
    list            the containers and networks the course labelled
    clean           remove them (``--session NAME`` for one notebook's, ``--images``
                    to drop the cached base image too); also ends leftover multi-host
                    engines. Only resources labelled io.labkit.course are touched.
    proxy SOCKET    serve the guarded proxy for graded notebooks on SOCKET (see
                    :mod:`labkit.docker.proxy`) until interrupted

``labkit clean`` calls :func:`clean_command` (see :func:`add_arguments`).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``clean`` (for ``labkit clean``)."""
    parser.add_argument("--session", help="only this notebook's or test's resources")
    parser.add_argument("--images", action="store_true",
                        help="also remove the cached base image (rebuilt on next use)")


def clean_command(args: argparse.Namespace) -> int:
    """Remove what the course labelled; print what was removed. Exit status 1 on failure."""
    from .engine import check
    from .hosts import clean_hosts
    from .resources import clean

    ended = clean_hosts(args.session) if args.session else []
    status = check()
    if not status:
        ended += [] if args.session else clean_hosts()
        print(f"no Docker engine to clean ({status.reason})"
              + (f"; ended multi-host engines: {', '.join(ended)}" if ended else ""))
        return 0
    report = clean(session=args.session, images=args.images, hosts=args.session is None)
    report.hosts[:0] = ended
    print(report)
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.docker",
                                     description="The Docker engine backend of the course")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="is a Docker engine reachable?")
    sub.add_parser("setup", help="build the offline base image if it is missing")
    sub.add_parser("list", help="containers and networks labelled by the course")
    add_arguments(sub.add_parser("clean", help="remove everything the course labelled"))
    proxy = sub.add_parser("proxy", help="serve the guarded engine socket for graded notebooks")
    proxy.add_argument("socket", help="path of the socket to listen on (mode 0666)")
    proxy.add_argument("--upstream", default=None, help="the engine (default: the local socket)")
    args = parser.parse_args(argv)

    from .engine import DEFAULT_SOCKET, check

    if args.command == "clean":
        return clean_command(args)
    if args.command == "proxy":
        from .proxy import DockerProxy

        server = DockerProxy(args.socket, args.upstream or DEFAULT_SOCKET)
        print(f"guarded Docker proxy on unix://{args.socket} -> {server.upstream} (Ctrl-C stops it)",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0
    status = check()
    print(status)
    if not status:
        return 1
    if args.command == "setup":
        from .engine import connect
        from .images import base_image_present, ensure_base_image

        client = connect()
        fresh = not base_image_present(client)
        image = ensure_base_image(client)
        print(f"base image {image.tags[0]} ({image.short_id}): "
              f"{'built now' if fresh else 'already there (cached)'}")
    elif args.command == "list":
        from .hosts import running_hosts
        from .resources import list_resources

        table = list_resources(images=True)
        print(table.to_string(index=False) if len(table) else "nothing labelled by the course")
        for host in running_hosts():
            print(f"multi-host engine {host['session']}-{host['name']} (dockerd pid "
                  f"{host['dockerd_pid']}, {host['socket']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
