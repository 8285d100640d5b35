"""Where paygate may send a webhook: the pure rules (API.md §19 "Outbound calls").

A merchant chooses the URL, and the gateway POSTs to it and shows the merchant what came back, so an
unchecked URL turns the gateway into a probe of its own network (the database, the bank, a cloud
metadata service). Only globally routable unicast addresses are acceptable destinations; the same rules
judge a URL when it is saved (its literal host, or what its name resolves to) and every address the
transport is about to connect to (so a name that later resolves elsewhere, DNS rebinding, is caught).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

URL_MAX = 2048
SCHEMES = ("http", "https")

# IPv6 forms that carry an IPv4 address inside: judged by the address they carry.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# ::a.b.c.d, the deprecated "IPv4-compatible" form: nothing legitimate uses it any more.
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def refusal(address: Address) -> str | None:
    """Why `address` is not an acceptable destination (a few words), or None when it is.

    `is_global` is the backbone (it is False for every private, shared, documentation and reserved
    range); the explicit checks before it name the usual cases and hold whatever the Python version's
    tables say about them.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped address"
        if address in _V4_COMPATIBLE and not address.is_unspecified and not address.is_loopback:
            return "an IPv4-compatible address"
        embedded = _embedded_v4(address)
        if embedded is not None:  # 6to4 and NAT64 reach the IPv4 address they carry
            inner = refusal(embedded)
            return None if inner is None else f"{inner} (inside a transition address)"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def literal(host: str) -> Address | None:
    """The address a URL's host names literally (brackets and a zone index allowed), else None."""
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return None


# A label that makes a host an IPv4 address in URL parsers (WHATWG: a host "ends in a number"): decimal,
# or 0x hex; a leading 0 is octal to inet_aton.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)
NUMERIC_SHORTHAND = "an IPv4 address in a non-canonical form"


def is_numeric_shorthand(host: str) -> bool:
    """A host that reads as an IPv4 address but is not a canonical dotted quad (`2130706433`, `0x7f.1`,
    `127.1`, `0177.0.0.1`, `127.0.0.1.`). Which of these an HTTP client or resolver takes for an address,
    and which one, differs between libraries and their versions, so none of them is judged as a name."""
    if ":" in host or literal(host) is not None:  # IPv6 (bracketed or not) and canonical addresses
        return False
    return _NUMERIC_LABEL.fullmatch(host.removesuffix(".").rpartition(".")[2]) is not None


def is_local_name(host: str) -> bool:
    """`localhost` and its subdomains are loopback by definition (RFC 6761), whatever a resolver says."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def syntax_problem(url: str) -> str | None:
    """What is wrong with `url` as a webhook URL before any lookup, or None."""
    if len(url) > URL_MAX:
        return f"url may be at most {URL_MAX} characters."
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return "url may not contain spaces or control characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "url must be an http or https URL with a valid host and port."
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        return "url must be an http or https URL with a host."
    return None


def host_and_port(url: str) -> tuple[str, int]:
    """The host (without brackets) and port a syntactically valid URL connects to."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80)


def not_allowed_message(host: str, reason: str) -> str:
    return (f"url's host {host} is {reason}; webhooks are only sent to public addresses "
            "(PAYGATE_WEBHOOK_ALLOW_PRIVATE=true lifts this, e.g. for development).")
