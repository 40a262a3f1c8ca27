"""Webhook URLs must not point inside our own network (SSRF): a customer could otherwise make
the config service POST to loopback, the cloud metadata address or a private service.
Checked when a webhook is registered (literal addresses, localhost) and again before each
delivery (what the name resolves to now). SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE=true allows
them (tests, `switchboard up` on one machine)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

SETTING = "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE=true"
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT


def private(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_unspecified
            or addr.is_multicast or addr.is_reserved or (addr.version == 4 and addr in _SHARED))


def refusal(url: str) -> str | None:
    """Why this URL is refused at registration, or None (a name is judged at delivery)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost") or private(host):
        return f"{host} is a loopback, private or link-local address; set {SETTING} to allow it"
    return None


async def delivery_refusal(url: str) -> str | None:
    """Why a delivery to this URL is refused now: its host resolves to a private address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if (why := refusal(url)) is not None:
        return why
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        return None  # the HTTP client says it cannot resolve it
    for info in infos:
        if private(str(info[4][0])):
            return f"{host} resolves to {info[4][0]}, a private address; set {SETTING} to allow it"
    return None
