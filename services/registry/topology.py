"""The static topology: regions, gateways, media ranges, carrier trunks.

Loaded from `regions.yaml` (shipped beside this module) or the file named by
SWITCHBOARD_REGIONS_FILE. A malformed file raises TopologyError naming the file, the line
and the field, so the service refuses to start instead of routing on a half-read file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator

from .errors import TopologyError

SHIPPED_FILE = Path(__file__).with_name("regions.yaml")

CODE_PATTERN = r"^[a-z][a-z0-9]{1,15}$"



def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _net(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        # strict: host bits set (203.0.113.5/24) is a typo worth reporting, not guessing.
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a network in CIDR form ({e})") from None


# One message for both families instead of pydantic's per-union-member noise.
IPAddress = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, PlainValidator(_ip)]
IPNetwork = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, PlainValidator(_net)]


class _Strict(BaseModel):
    # A typo in the file (e.g. `failvoer`) must fail, not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SipPort(_Strict):
    port: int = Field(ge=1, le=65535)
    protocol: Literal["udp", "tcp", "tls"]

    @property
    def transport(self) -> Literal["udp", "tcp"]:
        """The IP protocol a firewall sees: TLS runs over TCP."""
        return "udp" if self.protocol == "udp" else "tcp"


class PortRange(_Strict):
    start: int = Field(ge=1024, le=65535)
    end: int = Field(ge=1024, le=65535)

    @model_validator(mode="after")
    def _ordered(self) -> PortRange:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


DEFAULT_SIP_PORTS = (
    SipPort(port=5060, protocol="udp"),
    SipPort(port=5060, protocol="tcp"),
    SipPort(port=5061, protocol="tls"),
)
DEFAULT_RTP_PORTS = PortRange(start=10000, end=20000)


class Defaults(_Strict):
    sip_ports: tuple[SipPort, ...] = DEFAULT_SIP_PORTS
    rtp_ports: PortRange = DEFAULT_RTP_PORTS


class SignalingRegion(_Strict):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    failover: tuple[str, ...] = ()
    """Regions to try, in order, when this one is down."""
    gateways: tuple[IPAddress, ...] = Field(min_length=1)
    media_regions: tuple[str, ...] = ()
    sip_ports: tuple[SipPort, ...] | None = None
    """Overrides `defaults.sip_ports` for this region."""


class MediaRegion(_Strict):
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1)
    ranges: tuple[IPNetwork, ...] = Field(min_length=1)
    rtp_ports: PortRange | None = None
    """Overrides `defaults.rtp_ports` for this region."""


class CarrierTrunk(_Strict):
    name: str = Field(min_length=1, max_length=100)
    networks: tuple[IPNetwork, ...] = Field(min_length=1)


class Topology(_Strict):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    signaling_regions: tuple[SignalingRegion, ...] = Field(min_length=1)
    media_regions: tuple[MediaRegion, ...] = ()
    carrier_trunks: tuple[CarrierTrunk, ...] = ()

    @cached_property
    def signaling(self) -> dict[str, SignalingRegion]:
        return {r.code: r for r in self.signaling_regions}

    @cached_property
    def media(self) -> dict[str, MediaRegion]:
        return {r.code: r for r in self.media_regions}

    def sip_ports(self, region: SignalingRegion) -> tuple[SipPort, ...]:
        return region.sip_ports if region.sip_ports is not None else self.defaults.sip_ports

    def rtp_ports(self, region: MediaRegion) -> PortRange:
        return region.rtp_ports if region.rtp_ports is not None else self.defaults.rtp_ports

    def media_region_of(self, address: str) -> MediaRegion | None:
        """The media region whose ranges hold `address` (a worker's public address)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for region in self.media_regions:
            if any(ip in net for net in region.ranges):
                return region
        return None


def semantic_problems(topo: Topology) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-references pydantic cannot check field by field: (location, problem)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, tuple[str | int, ...]] = {}
    for i, sr in enumerate(topo.signaling_regions):
        loc: tuple[str | int, ...] = ("signaling_regions", i, "code")
        if sr.code in seen:
            out.append((loc, f"duplicate region code {sr.code!r}"))
        seen[sr.code] = loc
    for i, mr in enumerate(topo.media_regions):
        loc = ("media_regions", i, "code")
        if mr.code in seen:
            out.append((loc, f"duplicate region code {mr.code!r}"))
        seen[mr.code] = loc
    signaling = {r.code for r in topo.signaling_regions}
    media = {r.code for r in topo.media_regions}
    for i, sr in enumerate(topo.signaling_regions):
        for j, code in enumerate(sr.failover):
            loc = ("signaling_regions", i, "failover", j)
            if code == sr.code:
                out.append((loc, "a region cannot fail over to itself"))
            elif code not in signaling:
                out.append((loc, f"unknown signaling region {code!r}"))
            elif code in sr.failover[:j]:
                out.append((loc, f"{code!r} is listed twice"))
        for j, code in enumerate(sr.media_regions):
            if code not in media:
                out.append((("signaling_regions", i, "media_regions", j), f"unknown media region {code!r}"))
    names: set[str] = set()
    for i, t in enumerate(topo.carrier_trunks):
        if t.name in names:
            out.append((("carrier_trunks", i, "name"), f"duplicate trunk name {t.name!r}"))
        names.add(t.name)
    return out


# --- loading with line numbers -------------------------------------------------------


def _node_at(root: yaml.Node | None, loc: Sequence[str | int]) -> tuple[yaml.Node | None, bool]:
    """The deepest YAML node along `loc`; the flag says whether the whole path exists
    (a missing field points at its parent mapping)."""
    node = root
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == part:
                    child = v
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            return node, False
        node = child
    return node, True


def _line(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    node, _ = _node_at(root, loc)
    return node.start_mark.line + 1 if node is not None else None


def _field(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _clean_loc(loc: Sequence[Any]) -> tuple[str | int, ...]:
    # pydantic adds union member names (`IPv4Address`) and validator tags to the location.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            out.append(part)
        elif isinstance(part, str) and not part[:1].isupper() and not part.startswith("function-"):
            out.append(part)
    return tuple(out)


def parse(text: str, path: Path | str = "<string>") -> Topology:
    """Parse and validate a topology document; raise TopologyError on the first problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise TopologyError(path, mark.line + 1 if mark else None, "", f"not valid YAML: {e.problem}") from None
    except yaml.YAMLError as e:
        raise TopologyError(path, None, "", f"not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise TopologyError(path, _line(root, ()), "", "the document must be a mapping")
    try:
        topo = Topology.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # A misspelt key also makes the real one "missing": name the typo, it is the cause.
        err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        loc = _clean_loc(err["loc"])
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise TopologyError(path, _line(root, loc), _field(loc), f"{msg}{more}") from None
    problems = semantic_problems(topo)
    if problems:
        loc, msg = problems[0]
        raise TopologyError(path, _line(root, loc), _field(loc), msg)
    return topo


def load(path: Path | str | None = None) -> Topology:
    """Load the operator's file, or the one shipped with the package."""
    p = Path(path) if path else SHIPPED_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TopologyError(p, None, "", f"cannot read the regions file: {e.strerror or e}") from None
    return parse(text, p)
