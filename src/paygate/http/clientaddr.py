"""Who is on the other end: the client address that per-address rate limits count against.

By default it is the socket peer. Behind a reverse proxy every request's peer is the proxy, so an operator
lists the proxies in `PAYGATE_TRUSTED_PROXIES` (addresses or networks, comma-separated): when the peer is
one of them, `X-Forwarded-For` is read from the right — each trusted hop is skipped, and the first
address that is not a trusted proxy is the client (anything further left was written by the client and
proves nothing). The API server is started without uvicorn's own proxy-header handling, so this is the
one place that decides.

IPv6 clients are counted per /64: one host is usually handed a whole /64, so a single address would let
it step around the limit.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"  # no peer (an in-process test transport): one bucket for all such requests


def parse_trusted(value: str) -> tuple[Network, ...]:
    """`PAYGATE_TRUSTED_PROXIES`: "10.0.0.1, 10.1.0.0/16, ::1" → networks. Raises ValueError on nonsense."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


@functools.lru_cache(maxsize=4096)  # pure, and a client sends many requests from one address
def _ip(text: str) -> IP | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.5:443"
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IP, trusted: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> IP | None:
    """The client's address, from the socket peer and the X-Forwarded-For header values (in order)."""
    ip = _ip(peer) if peer else None
    if ip is None or not _trusted(ip, trusted):
        return ip
    hops = [h for value in forwarded_for for h in value.split(",")]
    for hop in reversed(hops):
        hop_ip = _ip(hop)
        if hop_ip is None:  # garbage in the chain: stop at the last address we could vouch for
            return ip
        ip = hop_ip
        if not _trusted(ip, trusted):
            return ip
    return ip  # every hop is a trusted proxy: the leftmost is as far as we can see


@functools.lru_cache(maxsize=4096)
def bucket(ip: IP | None) -> str:
    """The rate-limit key of an address: IPv4 as is, IPv6 by its /64."""
    if ip is None:
        return UNKNOWN
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    peer = request.client.host if request.client is not None else None
    return bucket(client_ip(peer, request.headers.getlist("x-forwarded-for"), trusted))
