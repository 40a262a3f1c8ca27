"""Settings shared by every service; each service subclasses `CommonSettings`.

All come from `SWITCHBOARD_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError, model_validator
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
    advertise_address: str | None = None
    """The one address of this host that carriers and SIP clients reach: unless set on their
    own, `public_address` (SIP Via/Contact, SDP), the SIP listeners and the media sockets
    take it. Behind 1:1 NAT, set this to the public IP and `SWITCHBOARD_SIP_HOST` /
    `SWITCHBOARD_MEDIA_HOST` to the local one (or 0.0.0.0)."""
    metrics_port: int = 0
    """Prometheus /metrics port; 0 disables it."""
    metrics_host: str = "127.0.0.1"
    """Address /metrics binds to (0.0.0.0 in a container, so Prometheus can scrape it)."""
    shutdown_grace: float = 10.0
    """Seconds a draining service keeps its work in progress on SIGTERM."""
    hep_address: str | None = None
    """host:port of a HEP v3 capture server (Homer, heplify-server) to copy SIP messages and
    RTCP reports to over UDP; unset, nothing is sent."""
    hep_capture_id: int = 2001
    """The HEP capture agent id this node sends with (Homer shows it per node)."""

    @model_validator(mode="after")
    def _advertised(self) -> CommonSettings:
        if self.advertise_address and "public_address" not in self.model_fields_set:
            self.public_address = self.advertise_address
        return self

    def bind_default(self, field: str) -> None:
        """A listener address left at its default follows `advertise_address` (for the
        services' own host settings: sip_host, media_host)."""
        if self.advertise_address and field not in self.model_fields_set:
            setattr(self, field, self.advertise_address)


S = TypeVar("S", bound=CommonSettings)


def load(cls: type[S]) -> S:
    """The settings of a service from its environment; a bad value ends the process with the
    variable named (`SWITCHBOARD_MAX_CALLS: Input should be a valid integer`), not a traceback."""
    try:
        return cls()
    except ValidationError as e:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = [f"{prefix}{'_'.join(str(p) for p in err['loc']).upper() or '(settings)'}: {err['msg']}"
                    for err in e.errors()]
        raise SystemExit("bad setting: " + "; ".join(problems)) from None
