"""tshark as the referee: our decoded table must equal its dissection, packet by packet.

Shared by test_decode.py (synthetic frames) and test_capture.py (real traffic).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

TSHARK_FIELDS = [
    "frame.len", "frame.cap_len", "frame.time_epoch", "frame.protocols",
    "eth.src", "eth.dst", "eth.type",
    "arp.opcode", "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "arp.src.hw_mac", "arp.dst.hw_mac",
    "ip.src", "ip.dst", "ip.proto", "ip.ttl", "ipv6.src", "ipv6.dst", "ipv6.hlim",
    "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport", "tcp.flags",
    "icmp.type", "icmp.code", "icmp.ident", "icmp.seq",
    "icmpv6.type", "icmpv6.code", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number",
    "vxlan.vni", "gre.proto", "gre.key", "vlan.id",
]
DECODE_AS = ["-d", "udp.port==8472,vxlan", "-d", "udp.port==8285,ip"]
_TSHARK_PROTOS = {"eth": "eth", "ip": "ipv4", "ipv6": "ipv6", "arp": "arp", "udp": "udp", "tcp": "tcp",
                  "icmp": "icmp", "icmpv6": "icmpv6", "vxlan": "vxlan", "gre": "gre",
                  "vlan": "vlan"}


def tshark_dissect(path: Path) -> list[dict[str, list[str]]]:
    """Every packet of ``path`` as tshark sees it: field -> all occurrences, in order."""
    argv = ["tshark", "-r", str(path), *DECODE_AS, "-T", "fields", "-E", "separator=\t",
            "-E", "occurrence=a", "-E", "aggregator=|"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    rows = []
    for line in res.stdout.splitlines():
        values = line.split("\t")
        assert len(values) == len(TSHARK_FIELDS), line
        rows.append({f: (v.split("|") if v else []) for f, v in zip(TSHARK_FIELDS, values)})
    return rows


def _num(value: str) -> int:
    return int(value, 16) if value.lower().startswith("0x") else int(value)


def our_occurrences(row: pd.Series) -> dict[str, list[Any]]:
    """Our decoded values, laid out as tshark's field occurrences (outer first)."""
    occ: dict[str, list[Any]] = defaultdict(list)
    eth_seen = ip_seen = 0

    def get(name: str) -> Any:
        value = row[name]
        return None if pd.isna(value) else value

    for token in str(row["stack"]).split("/"):
        proto = token.split("(")[0]
        if token.endswith("(truncated)"):
            break  # a header cut short: we decode none of it, tshark may show a part
        if proto == "eth":
            pre = "inner_" if eth_seen else ""
            eth_seen += 1
            occ["eth.src"].append(get(pre + "src_mac"))
            occ["eth.dst"].append(get(pre + "dst_mac"))
            occ["eth.type"].append(get(pre + "ethertype"))
        elif proto in ("ipv4", "ipv6"):
            pre = "inner_" if ip_seen else ""
            ip_seen += 1
            v = "ip" if proto == "ipv4" else "ipv6"
            occ[f"{v}.src"].append(get(pre + "src_ip"))
            occ[f"{v}.dst"].append(get(pre + "dst_ip"))
            occ["ip.ttl" if v == "ip" else "ipv6.hlim"].append(get(pre + "ttl"))
            if v == "ip":
                occ["ip.proto"].append(get(pre + "proto"))
        elif proto in ("udp", "tcp"):
            pre = "inner_" if ip_seen > 1 else ""
            occ[f"{proto}.srcport"].append(get(pre + "sport"))
            occ[f"{proto}.dstport"].append(get(pre + "dport"))
            if proto == "tcp" and not pre:
                occ["tcp.flags"].append(get("tcp_flags"))
        elif proto in ("icmp", "icmpv6"):
            pre = "inner_" if ip_seen > 1 else ""
            occ[f"{proto}.type"].append(get(pre + "icmp_type"))
            occ[f"{proto}.code"].append(get(pre + "icmp_code"))
            ident, seq = get(pre + "icmp_id"), get(pre + "icmp_seq")
            if ident is not None:  # echo messages only
                key = "icmp" if proto == "icmp" else "icmpv6.echo"
                occ[f"{key}.ident" if proto == "icmp" else f"{key}.identifier"].append(ident)
                occ["icmp.seq" if proto == "icmp" else "icmpv6.echo.sequence_number"].append(seq)
        elif proto == "arp":
            pre = "inner_" if eth_seen > 1 else ""
            occ["arp.opcode"].append(get(pre + "arp_op"))
            occ["arp.src.proto_ipv4"].append(get(pre + "arp_sender_ip"))
            occ["arp.dst.proto_ipv4"].append(get(pre + "arp_target_ip"))
            if not pre:
                occ["arp.src.hw_mac"].append(get("arp_sender_mac"))
                occ["arp.dst.hw_mac"].append(get("arp_target_mac"))
        elif proto == "vlan" and not eth_seen > 1:
            occ["vlan.id"].append(get("vlan"))
        elif proto == "vxlan":
            occ["vxlan.vni"].append(get("vni"))
        elif proto == "gre":
            occ["gre.proto"].append(get("gre_proto"))
            if get("gre_key") is not None:
                occ["gre.key"].append(get("gre_key"))
    return occ


def _same(field: str, ours: Any, theirs: str) -> bool:
    if ours is None:
        return False
    if isinstance(ours, str):
        return ours.lower() == theirs.lower()
    if field == "tcp.flags":
        return int(ours) == _num(theirs)
    return int(ours) == _num(theirs)


def referee(path: Path, table: pd.DataFrame) -> int:
    """Assert our table equals tshark's dissection of ``path``; return fields compared."""
    theirs = tshark_dissect(path)
    assert len(theirs) == len(table), f"{path}: tshark sees {len(theirs)} frames, we see {len(table)}"
    compared = 0
    for i, (ref, (_, row)) in enumerate(zip(theirs, table.iterrows()), start=1):
        where = f"{path.name} frame {i} ({row['stack']})"
        assert int(row["length"]) == int(ref["frame.len"][0]), where
        assert int(row["caplen"]) == int(ref["frame.cap_len"][0]), where
        sec, _, frac = ref["frame.time_epoch"][0].partition(".")
        ns = int(sec) * 10**9 + int(frac.ljust(9, "0")[:9])
        assert row["time"].value == ns, where
        # The encapsulation stack: ours must be tshark's protocol list, except that
        # tshark goes on inside ICMP errors (the quoted packet), which we do not decode.
        ref_stack = [_TSHARK_PROTOS[p] for p in ref["frame.protocols"][0].split(":") if p in _TSHARK_PROTOS]
        tokens = [t.split("(")[0] for t in str(row["stack"]).split("/")]
        if tokens[-1] == "unknown":  # e.g. IGMP: tshark knows it, we show it as unknown
            assert ref["frame.protocols"][0].split(":")[-1] not in _TSHARK_PROTOS, where
        our_stack = [t for t in tokens if t in _TSHARK_PROTOS.values()]
        if our_stack[-1] in ("icmp", "icmpv6"):
            assert ref_stack[: len(our_stack)] == our_stack, f"{where}: tshark {ref_stack}"
        else:
            assert ref_stack == our_stack, f"{where}: tshark {ref_stack}"
        for field, values in our_occurrences(row).items():
            ref_values = ref[field]
            for pos, ours in enumerate(values):
                their = ref_values[pos] if pos < len(ref_values) else None
                if ours is None:  # we found no value: nor may tshark (e.g. eth.type of 802.3)
                    assert their is None, f"{where}: {field} ours None, tshark {ref_values}"
                    continue
                assert their is not None, f"{where}: {field} ours {values}, tshark {ref_values}"
                assert _same(field, ours, their), f"{where}: {field} ours {ours!r}, tshark {their!r}"
                compared += 1
    return compared
