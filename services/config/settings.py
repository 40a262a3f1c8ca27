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
    migrate_on_start: bool = True
