"""NAT detection, sans-IO: is a peer's signalled address usable as it stands?

A phone or PBX behind a NAT writes its own (private) address into its SDP `c=` line and its
Contact; what reaches us comes from the NAT's public address. Signaling and media both use
the same rule (as Kamailio's `nat_uac_test` and `fix_nated_contact` do): a signalled
address that is private, or that differs from the address the peer's signaling came from,
means the peer is behind a NAT.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

NatMode = Literal["auto", "off"]

_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space (carrier-grade NAT)
    "169.254.0.0/16",  # RFC 3927 link-local
    "fc00::/7",  # RFC 4193 unique local
    "fe80::/10",  # RFC 4291 link-local
))
"""Explicit, not `ipaddress.is_private`: that also counts the documentation ranges
(192.0.2.0/24, 203.0.113.0/24, RFC 5737) and others that are no sign of a NAT."""


def is_private(host: str) -> bool:
    """An address no one outside the peer's own network can reach: RFC 1918, RFC 6598
    shared space, link-local (RFC 3927), IPv6 unique-local (RFC 4193) and link-local. Not a
    numeric IP (a host name) is not private: it is resolved where it is used. Loopback is
    not either (our own test network), nor 0.0.0.0 (hold, RFC 3264 §8.4)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in _PRIVATE if net.version == ip.version)


def behind_nat(signalled: str | None, source: str | None, *, mismatch: bool = True) -> bool:
    """The peer's signalled address (SDP `c=` or Contact host) cannot be used as is: it is
    private, or (with `mismatch`) it is not where the peer's signaling came from.

    An unspecified address (`0.0.0.0`, hold) says nothing about NAT."""
    if not signalled or not source:
        return False
    if signalled in ("0.0.0.0", "::"):
        return False
    if is_private(signalled):
        return True
    if not mismatch:
        return False
    try:
        return ipaddress.ip_address(signalled.strip("[]")) != ipaddress.ip_address(source.strip("[]"))
    except ValueError:
        return False  # a host name in SDP: the worker resolves it; no guess here


def latch_host(mode: NatMode | str, signalled: str | None, source: str | None, *,
               mismatch: bool = True) -> str | None:
    """The IP the media worker must latch to (any port), or None to keep the rule of
    RFC 4961 symmetric RTP on the signalled address. With NAT detection on and a NATed
    peer, media is accepted only from the peer's signaling source IP (and from its SDP
    address when that is public: an SBC with separate media and signaling interfaces):
    nothing from any other IP may move the latch (no one can hijack the stream by
    sending first).

    `mismatch=False` counts only a private address as NAT: a carrier's media gateways
    legitimately send from other public IPs than its SIP proxies."""
    if mode == "off" or source is None or not behind_nat(signalled, source, mismatch=mismatch):
        return None
    try:
        ipaddress.ip_address(source.strip("[]"))
    except ValueError:
        return None  # the worker needs a numeric IP to compare sources with
    return source.strip("[]")


def contact_is_nated(mode: NatMode | str, contact_host: str | None, source: str | None) -> bool:
    """In-dialog requests must go to the signaling source, not the Contact (a private
    Contact is unreachable from here)."""
    return mode != "off" and contact_host is not None and is_private(contact_host) and source is not None
