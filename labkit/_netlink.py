"""A small rtnetlink writer: the messages labkit sends to change a namespace.

Why not pyroute2 for writes too: building a lab of a thousand hosts sends several
thousand messages, and pyroute2 spends about as long encoding each one as the kernel
spends executing it. These messages are few and fixed, so they are packed here with
``struct`` and sent on a plain netlink socket bound to one namespace. Reading state
back (dumps of links, addresses, routes, neighbours) is done with pyroute2's decoders
in :mod:`labkit._inspect`.

Each function raises :class:`NetlinkError` (an :class:`OSError`) with the kernel's errno
and, where the kernel explains itself (extended acknowledgements), its message; the
supervisor turns that into a :class:`labkit.errors.KernelError` that names the object,
the operation and the fields.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import Any, Callable, Iterable, Sequence

# Message types and flags (linux/rtnetlink.h, linux/netlink.h).
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800

# Link attributes.
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_NET_NS_FD = 18, 26, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_INET_CONF = 1
IFLA_INET6_ADDR_GEN_MODE = 8
VETH_INFO_PEER = 1
IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL = 1, 2, 3, 4
IFLA_VXLAN_TTL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT = 5, 7, 15
IFLA_VXLAN_GROUP6, IFLA_VXLAN_LOCAL6 = 16, 17
IFF_UP = 0x1

# Address, route and neighbour attributes.
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT = 1, 6, 7, 8
RT_TABLE_MAIN = 254
RTPROT_BOOT, RTPROT_STATIC = 3, 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
RTNH_F_ONLINK = 0x4
NDA_DST, NDA_LLADDR, NDA_MASTER = 1, 2, 9
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_SELF, NTF_MASTER = 0x02, 0x04
AF_BRIDGE = 7

ROUTE_TYPES = {"unicast": RTN_UNICAST, "blackhole": RTN_BLACKHOLE,
               "unreachable": RTN_UNREACHABLE, "prohibit": RTN_PROHIBIT}

# IPv4 per-device settings that can be written over netlink (linux/ip.h, IPV4_DEVCONF_*).
IPV4_DEVCONF = {
    "forwarding": 1, "mc_forwarding": 2, "proxy_arp": 3, "accept_redirects": 4,
    "secure_redirects": 5, "send_redirects": 6, "shared_media": 7, "rp_filter": 8,
    "accept_source_route": 9, "bootp_relay": 10, "log_martians": 11, "tag": 12,
    "arp_filter": 13, "medium_id": 14, "disable_xfrm": 15, "disable_policy": 16,
    "force_igmp_version": 17, "arp_announce": 18, "arp_ignore": 19,
    "promote_secondaries": 20, "arp_accept": 21, "arp_notify": 22, "accept_local": 23,
    "src_valid_mark": 24, "proxy_arp_pvlan": 25, "route_localnet": 26,
}

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to four bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((-length) % 4)


def nested(kind: int, attrs: Iterable[bytes]) -> bytes:
    return attr(kind | 0x8000, b"".join(attrs))  # NLA_F_NESTED


def optional(*pairs: tuple[int, bytes | None]) -> list[bytes]:
    """Attributes for the (type, payload) pairs whose payload is not None."""
    return [attr(kind, payload) for kind, payload in pairs if payload is not None]


def _maybe(encode: "Callable[[Any], bytes]", value: Any) -> bytes | None:
    return None if value is None else encode(value)


def _str(value: str) -> bytes:
    return value.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _mac(value: str) -> bytes:
    return bytes(int(part, 16) for part in value.split(":"))


def _ip(value: str | ipaddress._BaseAddress) -> bytes:
    return ipaddress.ip_address(value).packed


SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSGERR_ATTR_MSG = 1


class NetlinkError(OSError):
    """The kernel refused a request; ``detail`` is its own explanation when it gave one."""

    def __init__(self, err: int, detail: str | None = None) -> None:
        super().__init__(err, os.strerror(err))
        self.detail = detail


def _error(data: bytes, offset: int, length: int, flags: int) -> NetlinkError:
    """The NLMSG_ERROR at ``offset``, with the extended acknowledgement's message if any."""
    (code,) = struct.unpack_from("=i", data, offset + _HDR.size)
    detail = None
    if flags & NLM_F_ACK_TLVS:
        # struct nlmsgerr: the error, then the request's header (and, not capped, its body).
        orig_len = _HDR.unpack_from(data, offset + _HDR.size + 4)[0]
        pos = offset + _HDR.size + 4 + (_HDR.size if flags & NLM_F_CAPPED else orig_len)
        end = offset + length
        while pos + 4 <= end:
            alen, kind = struct.unpack_from("=HH", data, pos)
            if alen < 4:
                break
            if kind == NLMSGERR_ATTR_MSG:
                detail = data[pos + 4:pos + alen].split(b"\0", 1)[0].decode(errors="replace") or None
            pos += (alen + 3) & ~3
    return NetlinkError(-code, detail)


class Netlink:
    """A NETLINK_ROUTE socket bound to the namespace it was created in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):  # the kernel's reason, not our echo
            try:
                self.sock.setsockopt(SOL_NETLINK, option, 1)
            except OSError:
                pass
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, flags: int, body: bytes) -> None:
        """Send one request and wait for the kernel's acknowledgement."""
        self._seq += 1
        seq = self._seq
        self.sock.send(_HDR.pack(_HDR.size + len(body), msg_type,
                                 flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, flags_, rseq, _pid = _HDR.unpack_from(data, offset)
                if rseq == seq and kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + _HDR.size)
                    if code:
                        raise _error(data, offset, length, flags_)
                    return
                offset += (length + 3) & ~3

    def get_index(self, ifname: str) -> int:
        """The ifindex of ``ifname`` in this namespace (one RTM_GETLINK, no dump)."""
        self._seq += 1
        seq = self._seq
        body = _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, _str(ifname))
        self.sock.send(_HDR.pack(_HDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, flags_, rseq, _pid = _HDR.unpack_from(data, offset)
                if rseq == seq:
                    if kind == NLMSG_ERROR:
                        raise _error(data, offset, length, flags_)
                    if kind == RTM_NEWLINK:
                        return _IFINFO.unpack_from(data, offset + _HDR.size)[2]
                offset += (length + 3) & ~3

    # -- links -------------------------------------------------------------------------

    def add_link(self, ifname: str, kind: str, *, data: Sequence[bytes] = (),
                 mtu: int | None = None, mac: str | None = None, master: int | None = None,
                 up: bool = False, link: int | None = None) -> None:
        attrs = optional((IFLA_IFNAME, _str(ifname)), (IFLA_MTU, _maybe(_u32, mtu)),
                         (IFLA_ADDRESS, _maybe(_mac, mac)), (IFLA_MASTER, _maybe(_u32, master)),
                         (IFLA_LINK, _maybe(_u32, link)))
        info = [attr(IFLA_INFO_KIND, _str(kind))]
        if data:
            info.append(nested(IFLA_INFO_DATA, data))
        attrs.append(nested(IFLA_LINKINFO, info))
        flags = IFF_UP if up else 0
        body = _IFINFO.pack(0, 0, 0, flags, IFF_UP if up else 0) + b"".join(attrs)
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_veth(self, ifname: str, peer: str, *, peer_netns_fd: int | None,
                 mtu: int | None = None, mac: str | None = None, peer_mac: str | None = None,
                 master: int | None = None, up: bool = False) -> None:
        """A veth pair; the peer end is created, down, directly in the namespace ``peer_netns_fd``."""
        peer_attrs = optional((IFLA_IFNAME, _str(peer)), (IFLA_MTU, _maybe(_u32, mtu)),
                              (IFLA_ADDRESS, _maybe(_mac, peer_mac)),
                              (IFLA_NET_NS_FD, _maybe(_u32, peer_netns_fd)))
        # The peer cannot be brought up inside this message (veth_open fails with ENOTCONN
        # while its own peer is not registered yet): the caller sets it up afterwards.
        peer_body = _IFINFO.pack(0, 0, 0, 0, 0) + b"".join(peer_attrs)
        self.add_link(ifname, "veth", data=[attr(VETH_INFO_PEER, peer_body)], mtu=mtu, mac=mac,
                      master=master, up=up)

    def add_vxlan(self, ifname: str, vni: int, *, group: str | None = None,
                  remote: str | None = None, local: str | None = None, dev: int | None = None,
                  port: int = 4789, learning: bool = True, ttl: int | None = None,
                  mtu: int | None = None, mac: str | None = None, master: int | None = None,
                  up: bool = False) -> None:
        data = [attr(IFLA_VXLAN_ID, _u32(vni)), attr(IFLA_VXLAN_PORT, struct.pack("!H", port)),
                attr(IFLA_VXLAN_LEARNING, bytes([1 if learning else 0]))]
        for value, v4, v6 in ((group or remote, IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6),
                              (local, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6)):
            if value is not None:
                ip = ipaddress.ip_address(value)
                data.append(attr(v4 if ip.version == 4 else v6, ip.packed))
        data += optional((IFLA_VXLAN_LINK, _maybe(_u32, dev)),
                         (IFLA_VXLAN_TTL, _maybe(lambda t: bytes([t]), ttl)))
        self.add_link(ifname, "vxlan", data=data, mtu=mtu, mac=mac, master=master, up=up)

    def set_link(self, index: int, *, up: bool | None = None, mtu: int | None = None,
                 mac: str | None = None, master: int | None = None, ifname: str | None = None,
                 netns_fd: int | None = None) -> None:
        """Change a link; ``master=0`` releases it from its bridge."""
        attrs = optional((IFLA_MTU, _maybe(_u32, mtu)), (IFLA_ADDRESS, _maybe(_mac, mac)),
                         (IFLA_MASTER, _maybe(_u32, master)), (IFLA_IFNAME, _maybe(_str, ifname)),
                         (IFLA_NET_NS_FD, _maybe(_u32, netns_fd)))
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, flags, change) + b"".join(attrs))

    def set_ipv6_addrgen_none(self, index: int) -> None:
        """No automatic IPv6 link-local address on this link (``ip link set IF addrgenmode none``)."""
        spec = nested(IFLA_AF_SPEC, [nested(socket.AF_INET6, [attr(IFLA_INET6_ADDR_GEN_MODE, bytes([1]))])])
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, 0, 0) + spec)

    def set_ipv4_conf(self, index: int, settings: dict[str, int]) -> None:
        """Write IPv4 per-device settings (forwarding, proxy_arp, ...) without /proc/sys."""
        conf = [attr(IPV4_DEVCONF[key], _u32(value)) for key, value in settings.items()]
        spec = nested(IFLA_AF_SPEC, [nested(socket.AF_INET, [nested(IFLA_INET_CONF, conf)])])
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, 0, 0) + spec)

    def del_link(self, index: int) -> None:
        self.request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0))

    # -- addresses ---------------------------------------------------------------------

    def address(self, add: bool, index: int, ip: str, prefixlen: int) -> None:
        addr = ipaddress.ip_address(ip)
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        flags = IFA_F_NODAD if addr.version == 6 else 0
        body = _IFADDR.pack(family, prefixlen, flags, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, addr.packed) + attr(IFA_ADDRESS, addr.packed)
        if add:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)
        else:
            self.request(RTM_DELADDR, 0, body)

    # -- routes ------------------------------------------------------------------------

    def route(self, add: bool, dst: str, *, gateway: str | None = None, oif: int | None = None,
              onlink: bool = False, metric: int | None = None, kind: str = "unicast",
              table: int = RT_TABLE_MAIN, src: str | None = None, replace: bool = False) -> None:
        net = ipaddress.ip_network(dst)
        family = socket.AF_INET if net.version == 4 else socket.AF_INET6
        rtype = ROUTE_TYPES[kind]
        if rtype != RTN_UNICAST:
            scope = RT_SCOPE_UNIVERSE
        elif gateway is None and oif is not None:
            scope = RT_SCOPE_LINK
        else:
            scope = RT_SCOPE_UNIVERSE
        body = _RTMSG.pack(family, net.prefixlen, 0, 0, table if table < 256 else 252,
                           RTPROT_BOOT if add else 0, scope if add else RT_SCOPE_NOWHERE_DEL,
                           rtype if add else 0, RTNH_F_ONLINK if onlink else 0)
        attrs = optional((RTA_TABLE, _u32(table)),
                         (RTA_DST, net.network_address.packed if net.prefixlen else None),
                         (RTA_GATEWAY, _maybe(_ip, gateway)), (RTA_OIF, _maybe(_u32, oif)),
                         (RTA_PRIORITY, _maybe(_u32, metric)), (RTA_PREFSRC, _maybe(_ip, src)))
        body += b"".join(attrs)
        if add:
            flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
            self.request(RTM_NEWROUTE, flags, body)
        else:
            self.request(RTM_DELROUTE, 0, body)

    # -- neighbours and forwarding database ---------------------------------------------

    def neighbour(self, add: bool, index: int, ip: str, lladdr: str | None) -> None:
        addr = ipaddress.ip_address(ip)
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        body = _NDMSG.pack(family, index, NUD_PERMANENT, 0, 0) + attr(NDA_DST, addr.packed)
        if lladdr is not None:
            body += attr(NDA_LLADDR, _mac(lladdr))
        if add:
            self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)
        else:
            self.request(RTM_DELNEIGH, 0, body)

    def fdb(self, add: bool, index: int, mac: str, *, dst: str | None = None,
            master: bool = False) -> None:
        """A bridge FDB entry; with ``dst`` on a VXLAN device, a remote tunnel end (append)."""
        flags = NTF_MASTER if master else NTF_SELF
        body = _NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT | NUD_NOARP, flags, 0)
        body += attr(NDA_LLADDR, _mac(mac))
        if dst is not None:
            body += attr(NDA_DST, _ip(dst))
        if add:
            self.request(RTM_NEWNEIGH, NLM_F_CREATE | (NLM_F_APPEND if dst else NLM_F_REPLACE), body)
        else:
            self.request(RTM_DELNEIGH, 0, body)


RT_SCOPE_NOWHERE_DEL = 255  # RT_SCOPE_NOWHERE in a deletion matches routes of any scope
