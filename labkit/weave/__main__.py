"""The ``weave`` command of a machine: ``python -m labkit.weave COMMAND`` inside it.

It talks to the router's HTTP API on ``127.0.0.1:6784``, as the real ``weave`` script
does::

    weave status            # python -m labkit.weave status
    weave status peers      # python -m labkit.weave status peers
    weave status ipam       # python -m labkit.weave status ipam
    weave status dns        # python -m labkit.weave status dns
    python -m labkit.weave --json status      # the router's whole state, as JSON

and the calls the notebook side (:class:`labkit.weave.Weave`) makes when it attaches a
container or exposes the host: ``allocate CONTAINER [--cidr WEAVE_CIDR]``,
``release CONTAINER``, ``dns-add NAME IP``, ``dns-remove NAME``.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

API = "http://127.0.0.1:6784"


def call(method: str, path: str, query: dict[str, str] | None = None) -> Any:
    url = API + path + (("?" + urlencode(query)) if query else "")
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise SystemExit(f"weave: {body.get('error', exc)}") from None
    except OSError as exc:
        raise SystemExit("weave: the router is not running on this machine (nothing answers on "
                         f"127.0.0.1:6784: {exc}); start it with weave launch") from None


def show_status(state: dict[str, Any], what: str | None) -> str:
    lines: list[str] = []
    established = [p for p in state["peers"] if p["state"] == "established"]
    if what in (None, "peers"):
        if what is None:
            lines += [f"        Version: labkit (Weave router played in a lab process)", "",
                      f"        Service: router",
                      f"       Protocol: weave 1..2",
                      f"           Name: {state['name']}({state['nickname']})",
                      f"     Encryption: disabled",
                      f"          Peers: {len(state['peers']) + 1} (with {len(established)} "
                      "established connections)",
                      f"        Targets: {len(state['targets'])}",
                      f"  Data path:     {state['datapath']}", ""]
        lines.append(f"{state['name']}({state['nickname']})  {state['address']}  (this peer)")
        for p in state["peers"]:
            lines.append(f"   <- -> {p['name']}({p['nickname']})  {p['address']}:6783  {p['state']}")
    if what in (None, "ipam"):
        lines += ["", f"        Service: ipam   range {state['range']}"]
        lines.append(f"{state['nickname']:<10} owns {', '.join(state['owned']) or 'nothing'}")
        for p in state["peers"]:
            lines.append(f"{p['nickname']:<10} owns {', '.join(p['owned']) or 'nothing'}")
        for ip, container in sorted(state["allocations"].items()):
            lines.append(f"  {ip:<15} {container}")
    if what in (None, "dns"):
        lines += ["", f"        Service: dns   domain {state['domain']}  on {state['dns_address']}:53"]
        for fqdn, ip in sorted(state["dns"].items()):
            lines.append(f"{fqdn.split('.')[0]:<12} {ip:<15} {fqdn}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weave", description="talk to this machine's Weave router")
    parser.add_argument("--json", action="store_true", help="print the router's answer as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="peers, IPAM and DNS as the router sees them")
    status.add_argument("what", nargs="?", choices=["peers", "ipam", "dns"])
    alloc = sub.add_parser("allocate", help="an address for a container (weave attach)")
    alloc.add_argument("container")
    alloc.add_argument("--cidr", help="a WEAVE_CIDR value, e.g. net:10.32.2.0/24")
    release = sub.add_parser("release", help="free a container's addresses")
    release.add_argument("container")
    add = sub.add_parser("dns-add", help="register NAME.weave.local")
    add.add_argument("name")
    add.add_argument("ip")
    remove = sub.add_parser("dns-remove", help="remove NAME.weave.local")
    remove.add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "status":
        answer = call("GET", "/status")
        print(json.dumps(answer) if args.json else show_status(answer, args.what))
        return 0
    if args.command == "allocate":
        answer = call("POST", f"/ip/{quote(args.container, safe='')}",
                      {"cidr": args.cidr} if args.cidr else None)
    elif args.command == "release":
        answer = call("DELETE", f"/ip/{quote(args.container, safe='')}")
    elif args.command == "dns-add":
        answer = call("PUT", f"/name/{quote(args.name, safe='')}/{quote(args.ip, safe='')}")
    else:
        answer = call("DELETE", f"/name/{quote(args.name, safe='')}")
    print(json.dumps(answer) if args.json else
          " ".join(answer.get("addresses", answer.get("released", []))) or json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
