from __future__ import annotations

from services.common.settings import CommonSettings


class SignalingSettings(CommonSettings):
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    """UDP and TCP."""
    sip_tls_port: int = 5061
    tls_cert: str | None = None
    tls_key: str | None = None
    max_calls: int = 1000
    local_mode: bool = False
    """Loopback counts as a carrier trunk (`switchboard up`)."""
