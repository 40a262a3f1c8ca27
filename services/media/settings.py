"""Media worker settings, from SWITCHBOARD_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from services.common.regions import rtp_range
from services.common.settings import CommonSettings


class MediaSettings(CommonSettings):
    media_host: str = "127.0.0.1"
    """Address the RTP/RTCP sockets bind to; `public_address` is what goes into SDP."""
    regions_file: Path | None = None
    """The registry's regions file (SWITCHBOARD_REGIONS_FILE): the RTP range comes from it."""
    port_min: int = Field(default=10000, ge=1024, le=65534)
    port_max: int = Field(default=20000, ge=1025, le=65535)
    no_media_timeout: float = 30.0
    """Seconds without a packet on an answered, not-on-hold call before `media_timeout`; 0 disables."""
    quarantine: float = 10.0
    """Seconds a released port pair stays unused, so late packets of the old call die there."""
    signaling_lost_after: float = 20.0
    """Seconds without a heartbeat from a call's signaling node before it counts as lost."""
    orphan_idle: float = 10.0
    """A lost node's call is freed once no RTP came for this long, or at the latest
    `signaling_lost_after` later (nobody is left to send the release)."""
    socket_buffer: int = 1 << 18
    """SO_RCVBUF/SO_SNDBUF per socket, so a burst is not dropped by the kernel."""

    @model_validator(mode="after")
    def _hosts(self) -> MediaSettings:
        self.bind_default("media_host")
        return self

    @model_validator(mode="after")
    def _range(self) -> MediaSettings:
        if self.port_max - self.port_min < 3:
            raise ValueError("port range must hold at least two even/odd pairs")
        return self

    def apply_region_range(self) -> str | None:
        """Take the RTP range the allow-list publishes for this worker's media region unless
        SWITCHBOARD_PORT_MIN/_PORT_MAX say otherwise; a range outside it, for a worker the
        allow-list covers, is a problem (returned, the worker refuses to start)."""
        published = rtp_range(self.region, self.public_address, self.regions_file)
        explicit = {"port_min", "port_max"} & self.model_fields_set
        if not explicit:
            self.port_min, self.port_max = published.start, published.end
            return None
        if published.by_address and not published.holds(self.port_min, self.port_max):
            return (f"media: ports {self.port_min}-{self.port_max} (SWITCHBOARD_PORT_MIN/_PORT_MAX) are outside "
                    f"{published}, the RTP range the allow-list publishes for media region {published.media_region} "
                    f"({self.public_address} is in it; {published.source}). Customers' firewalls would drop this "
                    "worker's RTP: set the ports inside that range, or change rtp_ports in the regions file.")
        return None
