"""What a media worker needs of the regions file (the registry's topology): the RTP range
the allow-list publishes for the worker's media region, so the worker uses that range and
not one of its own (customers' firewalls open exactly what the allow-list says).

The registry validates the file in full (`services/registry/topology.py`); this reads only
the few fields a worker needs, so services do not import each other."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The file the registry ships (data, not code: read, never imported).
SHIPPED_FILE = Path(__file__).resolve().parents[1] / "registry" / "regions.yaml"
DEFAULT_RTP = (10000, 20000)


@dataclass(frozen=True)
class RtpRange:
    start: int
    end: int
    media_region: str | None
    """The media region whose range this is (None: the file's default range)."""
    by_address: bool
    """The worker's public address is in that media region's ranges: the allow-list
    publishes it, so its range must be this one."""
    source: Path

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    def holds(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end


def _range(value: Any, fallback: tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, dict) and isinstance(value.get("start"), int) and isinstance(value.get("end"), int):
        return int(value["start"]), int(value["end"])
    return fallback


def rtp_range(region: str, address: str, path: Path | None = None) -> RtpRange:
    """The range for a worker at `address` serving signaling region `region`: its media
    region's by address, else the first media region of its signaling region, else the
    file's default."""
    source = path or SHIPPED_FILE
    doc = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    default = _range((doc.get("defaults") or {}).get("rtp_ports"), DEFAULT_RTP)
    media = {str(m.get("code")): m for m in doc.get("media_regions") or [] if isinstance(m, dict)}
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None:
        for code, m in media.items():
            for net in m.get("ranges") or []:
                try:
                    if ip in ipaddress.ip_network(str(net), strict=False):
                        return RtpRange(*_range(m.get("rtp_ports"), default), code, True, source)
                except ValueError:
                    continue
    for sr in doc.get("signaling_regions") or []:
        if isinstance(sr, dict) and sr.get("code") == region:
            for code in sr.get("media_regions") or []:
                if code in media:
                    return RtpRange(*_range(media[code].get("rtp_ports"), default), code, False, source)
    return RtpRange(*default, None, False, source)
