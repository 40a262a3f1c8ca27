from __future__ import annotations

from services.common.settings import CommonSettings


class SignalingSettings(CommonSettings):
    sip_host: str = "127.0.0.1"
    """Address the SIP listeners bind to."""
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
    local_mode: bool = False
    """Loopback counts as a carrier trunk when the registry does not answer (`switchboard up`)."""
    p_asserted_identity: bool = False
    """Add P-Asserted-Identity with the caller's number to the client leg (RFC 3325)."""
    srtp_key_padding: bool = True
    """Base64 '=' padding in a=crypto keys; some SIP clients choke on it."""
    max_call_duration: float = 4 * 3600.0
    """Seconds; a longer call is ended with BYE both ways. 0 means no limit."""
    bus_timeout: float = 2.0
    media_lost_after: float = 3.0
    """Seconds without a heartbeat from the media worker of a call before the call is
    ended (BYE to both legs, "media worker lost"); at least 3 of the worker's intervals."""
    trunk_cache: float = 5.0
    """Seconds a carrier-trunk check is reused for the same source address."""
    t1: float = 0.5
    """RFC 3261 T1 (seconds); T2 and T4 follow the RFC's defaults."""
