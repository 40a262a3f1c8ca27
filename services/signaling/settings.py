from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from services.common.settings import CommonSettings


class SignalingSettings(CommonSettings):
    sip_host: str = "127.0.0.1"
    """Address the SIP listeners bind to (default: `advertise_address` when that is set)."""
    sip_port: int = 5060
    """UDP and TCP."""
    sip_tls_port: int = 5061
    """TLS; 0 disables it."""
    tls_cert: str | None = None
    tls_key: str | None = None
    max_calls: int = 1000
    """Concurrent calls on this node; beyond, new INVITEs get 503 with Retry-After."""
    invite_rate: float = 200.0
    """INVITEs per second accepted from one source address (a token bucket); beyond, 503."""
    invite_burst: int = 400
    max_in_setup: int = Field(default=200, ge=0)
    """Calls still being routed and given media on this node; beyond, new INVITEs get 503
    (overload: the bus or the backends are not keeping up)."""
    overload_lag: float = Field(default=0.25, ge=0)
    """Seconds of sustained event-loop lag at which new INVITEs get 503 until the lag is back
    under a fifth of it; 0 switches the lag check off."""
    overload_lag_min_in_setup: int = Field(default=8, ge=0)
    """The lag check applies only with at least this many calls in setup: a node that is late
    with hardly any calls (a stall, a busy neighbour) has nothing to shed."""
    overload_retry_after: int = Field(default=5, ge=0, le=86400)
    """Retry-After (seconds) of an overload 503."""
    local_mode: bool = False
    """Loopback counts as a carrier trunk when the registry does not answer (`switchboard up`)."""
    p_asserted_identity: bool = False
    """Add P-Asserted-Identity with the caller's number to the client leg (RFC 3325)."""
    max_call_duration: float = 4 * 3600.0
    """Seconds; a longer call is ended with BYE both ways. 0 means no limit."""
    bus_timeout: float = 2.0
    media_lost_after: float = 3.0
    """Seconds without a heartbeat from the media worker of a call before the call is
    ended (BYE to both legs, "media worker lost"); at least 3 of the worker's intervals."""
    trunk_cache: float = 5.0
    """Seconds a carrier-trunk check is reused for the same source address."""
    carrier_nat: Literal["auto", "off"] = "auto"
    """NAT detection on the carrier leg (proto.nat): a private SDP address latches media to
    the carrier's signaling IP, a private Contact sends in-dialog requests to its source."""
    options_interval: float = 30.0
    """Seconds between OPTIONS pings of a target with options_ping on (SWITCHBOARD_OPTIONS_INTERVAL)."""
    t1: float = 0.5
    """RFC 3261 T1 (seconds); T2 and T4 follow the RFC's defaults."""

    @model_validator(mode="after")
    def _hosts(self) -> SignalingSettings:
        self.bind_default("sip_host")
        return self
