"""Split a rule set into transactions small enough for a lab's netlink socket.

kube-proxy applies a sync in one netlink transaction. iptables and nft can only send a
transaction as big as their socket's send buffer; on a host they raise it with
SO_SNDBUFFORCE, which needs CAP_NET_ADMIN in the host's user namespace. Inside a lab
(a user namespace) that is refused, the buffer stays at net.core.wmem_default (208 KiB,
read-only there), and a big sync fails with "Message too long". So a lab applies a big
sync in several transactions, in an order that never leaves a jump to a missing chain.
"""

from __future__ import annotations

# Characters of rule text per transaction. nft needs about 4 bytes of netlink per
# character; iptables-nft, which wraps each match in an xtables structure, about 12.
NFT_BUDGET = 40_000
IPTABLES_BUDGET = 15_000


def split(lines: list[str], budget: int) -> list[list[str]]:
    """Consecutive groups of ``lines`` of at most ``budget`` characters each."""
    groups: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if size + len(line) > budget and groups[-1]:
            groups.append([])
            size = 0
        groups[-1].append(line)
        size += len(line) + 1
    return groups
