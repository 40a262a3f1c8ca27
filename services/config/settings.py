"""Settings of the config service (SWITCHBOARD_* environment variables)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

# The signaling regions a receiving number may prefer. Kept here (not fetched from the
# registry) so validation never depends on another service being up.
DEFAULT_REGIONS: dict[str, str] = {
    "us1": "Virginia",
    "us2": "Oregon",
    "ie1": "Ireland",
    "de1": "Frankfurt",
    "jp1": "Tokyo",
    "sg1": "Singapore",
    "au1": "Sydney",
    "br1": "São Paulo",
}


class ConfigSettings(CommonSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    database_url: str = "sqlite+aiosqlite:///var/switchboard.db"
    admin_token: str = Field(default="", repr=False)
    """Bearer token with admin rights; empty disables the admin token."""
    secret_key: str = Field(default="", repr=False)
    """`kid:base64key[,kid:base64key...]`; the first encrypts, all decrypt (rotation).
    Empty: a key is generated once into `<data_dir>/secret.key`."""
    regions: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REGIONS))
    """Known region codes -> names, for validating a receiving number's region."""
    registry_timeout: float = 2.0
    """Seconds to wait for the registry when forwarding /v1/regions, /v1/allowlist, /v1/trunks."""
    resolver_full_reload: float = 60.0
    """Seconds between full reloads of the resolver's view (a safety net for lost events)."""
    idempotency_ttl: float = 24 * 3600.0
    record_lost_after: float = 60.0
    """Seconds without a heartbeat from a call's signaling node before its open record is
    closed as `lost` (the node was killed, or its NATS never came back)."""
    record_reaper_interval: float = 10.0
    webhook_allow_private: bool = False
    """Allow webhook URLs on loopback, private and link-local addresses (tests, `up`)."""
    max_body_bytes: int = 1 << 20
    """Larger request bodies are refused with 413 before they are parsed."""
    migrate_on_start: bool = True

    # --- call records and status webhooks
    call_records: bool = True
    """Run the call-record consumer (and the webhook queueing it does) in this instance."""
    call_records_durable: str = Field(default="config-call-records", pattern=r"^[A-Za-z0-9_\-]+$")
    """Durable consumer name, shared by every config instance (each event handled once)."""
    call_records_ack_wait: float = 30.0
    """Seconds before an unacknowledged event is delivered again (to this or another instance)."""
    call_events_timeout: float = 0.5
    """Seconds GET /v1/calls/{id}/events waits for the stream to answer."""
    webhooks: bool = True
    """Run the webhook delivery worker in this instance."""
    webhook_timeout: float = 10.0
    """Seconds an endpoint has to answer one delivery."""
    webhook_backoff_base: float = 10.0
    """Seconds before the first retry; doubled each time (10 s, 20 s, 40 s...)."""
    webhook_backoff_cap: float = 3600.0
    webhook_retry_window: float = 24 * 3600.0
    """A delivery is retried until this many seconds after it was queued, then marked failed."""
    webhook_poll_interval: float = 1.0
    webhook_concurrency: int = Field(default=4, ge=1, le=64)
    """Calls delivered at once to one endpoint (each call's events stay in order)."""
    webhook_log_retention: float = 30 * 24 * 3600.0
    """Seconds a finished delivery stays in the log (GET /v1/webhooks/{id}/deliveries)."""

    # --- the web console (at /)
    console_session_ttl: float = 8 * 3600.0
    """Seconds a console sign-in lasts."""
    console_signin_attempts: int = Field(default=5, ge=1)
    """Failed console sign-ins allowed per client address within console_signin_window."""
    console_signin_window: float = 60.0
