"""Settings shared by every service; each service subclasses `CommonSettings`.

All come from `SWITCHBOARD_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_node_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:24]
    return f"{host}-{uuid.uuid4().hex[:6]}"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    region: str = Field(default="us1", pattern=r"^[A-Za-z0-9_\-]+$")
    """The region this node runs in (a code from the registry's topology)."""
    node_id: str = Field(default_factory=default_node_id, pattern=r"^[A-Za-z0-9_\-]+$")
    data_dir: Path = Path("var")
    log_json: bool = False
    log_level: str = "INFO"
    heartbeat_interval: float = 1.0
    public_address: str = "127.0.0.1"
    """The address peers use to reach this node (SDP, Via, allow-list)."""
    metrics_port: int = 0
    """Prometheus /metrics port; 0 disables it."""
    shutdown_grace: float = 10.0
    """Seconds a draining service keeps its work in progress on SIGTERM."""
    hep_address: str | None = None
    """host:port of a HEP v3 capture server (Homer, heplify-server) to copy SIP messages and
    RTCP reports to over UDP; unset, nothing is sent."""
    hep_capture_id: int = 2001
    """The HEP capture agent id this node sends with (Homer shows it per node)."""
