from __future__ import annotations

from pathlib import Path

from pydantic import Field

from proto import subjects
from services.common.settings import CommonSettings


class RegistrySettings(CommonSettings):
    region: str = Field(default="us1", pattern=r"^[A-Za-z0-9_\-]+$")
    regions_file: Path | None = None
    """SWITCHBOARD_REGIONS_FILE: the operator's topology; the shipped regions.yaml if unset."""
    local_mode: bool = False
    """SWITCHBOARD_LOCAL_MODE=1 (set by `switchboard up`): loopback counts as a carrier trunk."""
    expiry_factor: float = Field(default=3.0, ge=1.5)
    """A node is gone after this many of its heartbeat intervals without a heartbeat."""
    warmup: float | None = None
    """Seconds after start before a region may be declared down; default one expiry period
    (expiry_factor × heartbeat_interval)."""
    trunks_bucket: str = Field(default=subjects.TRUNKS_BUCKET, pattern=r"^[A-Za-z0-9_\-]+$")
    kv_replicas: int = Field(default=1, ge=1, le=5)
    trunk_refresh: float = Field(default=1.0, gt=0)
    """Seconds between re-reads of the trunks KV (other instances' writes)."""

    @property
    def warmup_seconds(self) -> float:
        return self.warmup if self.warmup is not None else self.expiry_factor * self.heartbeat_interval
