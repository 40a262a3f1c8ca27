"""asyncio SIP transports (UDP, TCP, TLS) and RFC 3263 server location.

Covered: RFC 3261 §18 (UDP/TCP/TLS, Content-Length framing §18.3, connection reuse for
responses §18.2.2, switch to TCP over 1300 octets §18.1.1 via ``choose_transport``), §26.2
TLS (1.2+, SNI, chain + host-name checks per RFC 5922 §7, mutual TLS), RFC 5626 §3.5.1 CRLF
keep-alive pong, RFC 3263 §4 (NAPTR, SRV per RFC 2782, A/AAAA; failover list §4.3).
Not covered: SCTP, STUN keep-alives on UDP (RFC 5626 §4.4.2), RFC 5923 connection aliasing,
RFC 3263 §5 (server-side location for responses: the endpoint answers to the source address
with ``rport``/``received``, RFC 3581), ICMP-driven UDP failover.
"""

from .base import (
    DEFAULT_PORTS,
    MTU_LIMIT,
    Addr,
    ClientTlsOptions,
    Limits,
    ServerTlsConfig,
    Stats,
    TransportError,
    TransportLayer,
    choose_transport,
)
from .locate import locate

__all__ = [
    "DEFAULT_PORTS",
    "MTU_LIMIT",
    "Addr",
    "ClientTlsOptions",
    "Limits",
    "ServerTlsConfig",
    "Stats",
    "TransportError",
    "TransportLayer",
    "choose_transport",
    "locate",
]
