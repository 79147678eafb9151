"""The names kube-proxy gives its chains, computed as kube-proxy computes them.

iptables mode (pkg/proxy/iptables): ``KUBE-SVC-``, ``KUBE-EXT-`` + the first 16
characters of base32(sha256(service-port name + protocol)); ``KUBE-SEP-`` hashes the
endpoint (``ip:port``) in as well::

    >>> svc_chain("kube-system/kube-dns:dns", "udp")
    'KUBE-SVC-TCOU7JCQXEZGVUNU'

nftables mode (pkg/proxy/nftables): readable names prefixed with 8 hash characters,
``service-ULMVA6XW-ns1/svc1/tcp/p80`` and ``endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80``.
"""

from __future__ import annotations

import base64
import hashlib

NFT_CHAIN_BASE_MAX = 256 - 16  # knftables.NameLengthMax minus the longest prefix


def _b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()


def port_proto_hash(port_name: str, protocol: str) -> str:
    """``portProtoHash``: 16 base32 characters of sha256(``ns/name:port`` + protocol)."""
    return _b32(port_name + protocol.lower())[:16]


def svc_chain(port_name: str, protocol: str) -> str:
    """``KUBE-SVC-<hash>``: the chain that picks one endpoint of a service port."""
    return "KUBE-SVC-" + port_proto_hash(port_name, protocol)


def ext_chain(port_name: str, protocol: str) -> str:
    """``KUBE-EXT-<hash>``: external (NodePort) traffic, marked for masquerade first."""
    return "KUBE-EXT-" + port_proto_hash(port_name, protocol)


def sep_chain(port_name: str, protocol: str, endpoint: str) -> str:
    """``KUBE-SEP-<hash>``: one endpoint (``ip:port``); it DNATs to the pod."""
    return "KUBE-SEP-" + _b32(port_name + protocol.lower() + endpoint)[:16]


def _hash_and_truncate(name: str) -> str:
    name = _b32(name)[:8] + "-" + name
    if len(name) > NFT_CHAIN_BASE_MAX:
        name = name[: NFT_CHAIN_BASE_MAX - 3] + "..."
    return name


def nft_base(namespace: str, name: str, protocol: str, port: str) -> str:
    """``servicePortChainNameBase``: ``HASH-namespace/name/protocol/portname``."""
    return _hash_and_truncate(f"{namespace}/{name}/{protocol.lower()}/{port}")


def nft_service_chain(namespace: str, name: str, protocol: str, port: str) -> str:
    return "service-" + nft_base(namespace, name, protocol, port)


def nft_external_chain(namespace: str, name: str, protocol: str, port: str) -> str:
    return "external-" + nft_base(namespace, name, protocol, port)


def nft_endpoint_chain(namespace: str, name: str, protocol: str, port: str, endpoint: str) -> str:
    ip, _, ep_port = endpoint.rpartition(":")
    return "endpoint-" + _hash_and_truncate(
        f"{namespace}/{name}/{protocol.lower()}/{port}__{ip.replace(':', '.')}/{ep_port}")
