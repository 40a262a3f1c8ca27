"""asyncio SIP transports (UDP, TCP, TLS) and RFC 3263 server location."""

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
