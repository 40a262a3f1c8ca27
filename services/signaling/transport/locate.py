"""RFC 3263 server location: a SIP URI -> the ordered list of (transport, IP, port) to try.

§4.1 transport selection: ``transport=`` param, else numeric host or explicit port -> UDP
(TLS for sips), else NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T; only SIPS+D2T for sips URIs), else
SRV queries for the supported transports, else A/AAAA with UDP (TLS for sips).
§4.2 port/address: explicit port -> A/AAAA only; else SRV (RFC 2782 order: priority, then
weighted random by weight, every record), else A/AAAA on the default port (5060/5061).
§4.3: the caller tries the candidates one after another (timeout, transport error, 503).

All lookups go through dnspython's async resolver; a failed lookup (NXDOMAIN, no answer,
timeout, no name servers) counts as "no records" and the next step is taken.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Iterable, Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from services.signaling.sip.uri import SipUri, parse_uri

from .base import DEFAULT_PORTS, Addr

__all__ = ["NAPTR_SERVICES", "locate", "order_srv"]

log = logging.getLogger(__name__)

# RFC 3263 §4.1 / RFC 3261 §26: NAPTR services we speak. SCTP (SIP+D2S) is not supported.
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIX = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}

_LOOKUP_ERRORS = (
    dns.resolver.NXDOMAIN,
    dns.resolver.NoAnswer,
    dns.resolver.NoNameservers,
    dns.resolver.YXDOMAIN,
    dns.exception.Timeout,
    dns.name.EmptyLabel,
    dns.name.LabelTooLong,
    dns.name.NameTooLong,
)


async def locate(
    uri: str | SipUri,
    *,
    resolver: dns.asyncresolver.Resolver | None = None,
    default_transport: str | None = None,
    rng: random.Random | None = None,
) -> list[Addr]:
    """Candidates for ``uri`` in the order to try them (RFC 3263 §4). Empty: nothing found.

    ``default_transport`` replaces UDP where RFC 3263 would fall back to it for a sip URI
    (numeric host, explicit port, no NAPTR) and is tried first among SRV queries.
    ``rng`` drives the SRV weighted choice (tests pass a seeded one).
    Raises ``ValueError`` for a URI that is not sip/sips, ``SipParseError`` for a bad one.
    """
    if isinstance(uri, str):
        parsed = parse_uri(uri)
        if not isinstance(parsed, SipUri):
            raise ValueError(f"not a SIP URI: {uri!r}")
        uri = parsed
    if default_transport is not None and default_transport not in DEFAULT_PORTS:
        raise ValueError(f"unknown transport {default_transport!r}")
    resolver = resolver or dns.asyncresolver.get_default_resolver()
    rng = rng or random.Random()
    secure = uri.secure
    # §4: maddr, when present, is the TARGET instead of the host.
    target = uri.maddr or uri.host
    target = target[1:-1] if target.startswith("[") else target
    fallback = "tls" if secure else (default_transport or "udp")

    transport: str | None = None
    if uri.transport:
        transport = _transport_param(uri.transport, secure)
        if transport is None:
            log.info("locate %s: unsupported transport %r", uri, uri.transport)
            return []

    # §4.1/§4.2: a numeric host skips DNS entirely.
    if _is_ip(target):
        t = transport or fallback
        return [Addr(t, str(ipaddress.ip_address(target)), uri.port or DEFAULT_PORTS[t])]

    # §4.2: an explicit port means A/AAAA only (no NAPTR, no SRV).
    if uri.port is not None:
        t = transport or fallback
        return _dedup(await _addresses(resolver, target, t, uri.port))

    if transport is not None:
        found = await _srv_candidates(resolver, f"{SRV_PREFIX[transport]}.{target}", transport, rng)
        if found:
            return _dedup(found)
        return _dedup(await _addresses(resolver, target, transport, DEFAULT_PORTS[transport]))

    # §4.1: NAPTR, in (order, preference); only records whose service we support.
    naptrs = await _naptr(resolver, target, secure)
    if naptrs:
        results: list[Addr] = []
        for srv_name, t in naptrs:
            results += await _srv_candidates(resolver, srv_name, t, rng)
        if results:
            return _dedup(results)

    # §4.1: no (usable) NAPTR -> SRV for each transport we support.
    if secure:
        transports = ["tls"]
    else:
        transports = ["udp", "tcp"]
        if default_transport in transports:
            transports.remove(default_transport)
            transports.insert(0, default_transport)
        elif default_transport == "tls":
            transports.insert(0, "tls")
    lists = await asyncio.gather(
        *(_srv_candidates(resolver, f"{SRV_PREFIX[t]}.{target}", t, rng) for t in transports)
    )
    results = [a for lst in lists for a in lst]
    if results:
        return _dedup(results)

    # §4.2: no SRV -> A/AAAA on the default port of the fallback transport.
    return _dedup(await _addresses(resolver, target, fallback, DEFAULT_PORTS[fallback]))


def order_srv(records: Iterable[Any], rng: random.Random) -> list[Any]:
    """RFC 2782 order: ascending priority; within one priority, repeatedly pick at random
    with probability proportional to weight (weight-0 records first in the running sum, so
    they are chosen rarely but not never). Every record appears once."""
    by_priority: dict[int, list[Any]] = {}
    for rec in records:
        by_priority.setdefault(int(rec.priority), []).append(rec)
    ordered: list[Any] = []
    for priority in sorted(by_priority):
        group = sorted(by_priority[priority], key=lambda r: int(r.weight) != 0)
        while group:
            total = sum(int(r.weight) for r in group)
            pick = rng.randint(0, total) if total else 0
            running = 0
            for i, rec in enumerate(group):
                running += int(rec.weight)
                if running >= pick:
                    ordered.append(group.pop(i))
                    break
    return ordered


def _transport_param(value: str, secure: bool) -> str | None:
    value = value.lower()
    if secure:
        # RFC 3261 §26.2.2 / RFC 5630: sips means TLS on every hop; transport=tcp is TLS.
        return "tls" if value in ("tcp", "tls") else None
    return value if value in ("udp", "tcp", "tls") else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _dedup(addrs: Iterable[Addr]) -> list[Addr]:
    return list(dict.fromkeys(addrs))


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name if name.endswith(".") else name + ".")


async def _query(resolver: dns.asyncresolver.Resolver, name: str | dns.name.Name, rdtype: str) -> list[Any]:
    try:
        qname = name if isinstance(name, dns.name.Name) else _absolute(name)
        answer = await resolver.resolve(qname, rdtype, search=False)
    except _LOOKUP_ERRORS as exc:
        log.debug("dns %s %s: %s", name, rdtype, type(exc).__name__)
        return []
    return list(answer)


async def _naptr(resolver: dns.asyncresolver.Resolver, target: str, secure: bool) -> list[tuple[str, str]]:
    """(SRV name, transport) from the usable NAPTR records, in order (RFC 3263 §4.1)."""
    records = await _query(resolver, target, "NAPTR")
    usable: list[tuple[int, int, str, str]] = []
    for rec in records:
        service = rec.service.decode("ascii", "replace").upper()
        flags = rec.flags.decode("ascii", "replace").lower()
        transport = NAPTR_SERVICES.get(service)
        if transport is None or flags != "s" or (secure and transport != "tls"):
            continue
        usable.append((int(rec.order), int(rec.preference), rec.replacement.to_text(), transport))
    usable.sort(key=lambda u: (u[0], u[1]))
    return [(name, transport) for _, _, name, transport in usable]


async def _srv_candidates(
    resolver: dns.asyncresolver.Resolver, name: str, transport: str, rng: random.Random
) -> list[Addr]:
    records = [r for r in await _query(resolver, name, "SRV") if r.target != dns.name.root]  # "." = none
    if not records:
        return []
    ordered = order_srv(records, rng)
    lists = await asyncio.gather(
        *(_addresses(resolver, rec.target.to_text(), transport, int(rec.port)) for rec in ordered)
    )
    return [a for lst in lists for a in lst]


async def _addresses(
    resolver: dns.asyncresolver.Resolver, host: str, transport: str, port: int
) -> list[Addr]:
    if host.rstrip(".").lower() == "localhost":
        return [Addr(transport, "127.0.0.1", port)]  # never asked of DNS (RFC 6761 §6.3)
    v4, v6 = await asyncio.gather(_query(resolver, host, "A"), _query(resolver, host, "AAAA"))
    ips: Sequence[Any] = [*v4, *v6]
    return [Addr(transport, str(ipaddress.ip_address(r.address)), port) for r in ips]
