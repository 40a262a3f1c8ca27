"""Live membership from heartbeats, and region health. Sans-IO: the caller passes `now`
(monotonic seconds) and publishes what `changes()` returns, so the timing rules are tested
without a clock or a bus.

Rules:
- a node is gone after `expiry_factor` × its own heartbeat interval without a heartbeat; a
  busy node says how late its event loop runs (`lag`), and its heartbeats are expected that
  much later: a late heartbeat from a loaded node is not a dead node (capped at MAX_LAG);
- when the registry itself ran late, it could not hear anyone meanwhile: `stalled()` gives
  every node that time back before judging;
- a signaling region is healthy iff it has ≥1 live signaling node and ≥1 live media worker
  (media workers heartbeat with the code of the signaling region they serve);
- right after start the registry has not heard everyone yet: for `warmup` seconds it
  reports regions coming up but never declares one down;
- while the bus is disconnected nothing expires (silence is ours, not the nodes'); on
  reconnect every node gets one more full expiry period.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from proto.messages import Heartbeat, NodeInfo, RegionStatus, ServiceName

from .errors import BadHeartbeat
from .topology import Topology

MAX_INTERVAL = 300.0
MAX_LAG = 10.0
"""Seconds: the most a node's reported lag can postpone its expiry (a dead node says nothing)."""
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$")
COUNTED: tuple[ServiceName, ...] = ("signaling", "media")


@dataclass
class Node:
    info: NodeInfo
    interval: float
    expires_at: float


@dataclass
class RegionView:
    """What the registry knows now about one signaling region."""

    code: str
    signaling: list[NodeInfo] = field(default_factory=list)
    media: list[NodeInfo] = field(default_factory=list)
    judged: bool = True
    """False during warm-up: a region without nodes is unknown, not down."""

    @property
    def healthy(self) -> bool:
        return bool(self.signaling) and bool(self.media)

    @property
    def health(self) -> str:
        if self.healthy:
            return "up"
        return "down" if self.judged else "unknown"

    def nodes(self, need: Iterable[str] = COUNTED) -> list[NodeInfo]:
        out: list[NodeInfo] = []
        for service in need:
            out += self.signaling if service == "signaling" else self.media if service == "media" else []
        return out

    def usable(self, need: Iterable[str] = COUNTED) -> bool:
        """Can calls needing these services go here? Unknown (not judged) counts as usable:
        a registry that just started must not fail every region over."""
        need = list(need)
        have = all(self.nodes([s]) for s in need if s in COUNTED)
        return have or not self.judged

    def reason(self) -> str:
        if self.healthy:
            return ""
        missing = [s for s in COUNTED if not self.nodes([s])]
        what = " and ".join(f"no live {'media worker' if s == 'media' else 'signaling node'}" for s in missing)
        return what if self.judged else f"{what} yet (registry warming up)"


def _load(nodes: list[NodeInfo]) -> dict[str, float | int | None]:
    cap = sum(n.capacity for n in nodes)
    load = sum(n.load for n in nodes)
    return {"nodes": len(nodes), "load": load, "capacity": cap, "ratio": round(load / cap, 3) if cap else None}


def load_summary(view: RegionView) -> dict[str, dict[str, float | int | None]]:
    return {"signaling": _load(view.signaling), "media": _load(view.media)}


class Membership:
    def __init__(self, topo: Topology, *, now: float, expiry_factor: float = 3.0, warmup: float = 3.0) -> None:
        self.topo = topo
        self.expiry_factor = expiry_factor
        self.judge_from = now + warmup
        self.nodes: dict[tuple[str, str], Node] = {}
        self.paused = False
        self._published: dict[str, tuple[bool, int, int]] = {}

    # --- input ---------------------------------------------------------------------

    def validate(self, hb: Heartbeat, subject_tokens: tuple[str, str, str] | None = None) -> None:
        """Raise BadHeartbeat when the heartbeat cannot be counted as it is."""
        if subject_tokens is not None and subject_tokens != (hb.service, hb.region, hb.node_id):
            raise BadHeartbeat(
                f"subject says {'/'.join(subject_tokens)} but body says {hb.service}/{hb.region}/{hb.node_id}"
            )
        if not _TOKEN.match(hb.node_id):
            raise BadHeartbeat(f"node_id {hb.node_id!r} is not a simple token")
        if hb.region not in self.topo.signaling:
            raise BadHeartbeat(
                f"region {hb.region!r} is not a signaling region code ({', '.join(self.topo.signaling)})"
            )
        if not 0 < hb.interval <= MAX_INTERVAL:
            raise BadHeartbeat(f"interval {hb.interval} is not in (0, {MAX_INTERVAL}]")
        if hb.capacity < 0 or hb.load < 0:
            raise BadHeartbeat(f"negative capacity/load ({hb.capacity}/{hb.load})")
        if len(hb.addresses) > 64 or len(hb.version) > 64:
            raise BadHeartbeat("too many addresses or version too long")
        for a in hb.addresses:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                if not _HOSTNAME.match(a):
                    raise BadHeartbeat(f"address {a!r} is neither an IP address nor a host name") from None

    def observe(self, hb: Heartbeat, now: float, *, wall: float | None = None) -> bool:
        """Record a heartbeat (validate first). True if the node is new."""
        key = (hb.service, hb.node_id)
        info = NodeInfo(
            service=hb.service, node_id=hb.node_id, region=hb.region, addresses=list(hb.addresses),
            capacity=hb.capacity, load=hb.load, version=hb.version,
            last_seen=wall if wall is not None else time.time(),
        )
        new = key not in self.nodes
        period = hb.interval + min(hb.lag, MAX_LAG)
        self.nodes[key] = Node(info, period, now + self.expiry_factor * period)
        return new

    def forget(self, service: str, node_id: str) -> bool:
        """A node said goodbye (or an operator removed it). True if it was known."""
        return self.nodes.pop((service, node_id), None) is not None

    def expire(self, now: float) -> list[NodeInfo]:
        """Drop the nodes whose heartbeats stopped. Nothing expires while paused."""
        if self.paused:
            return []
        gone = [k for k, n in self.nodes.items() if n.expires_at <= now]
        return [self.nodes.pop(k).info for k in gone]

    def stalled(self, seconds: float) -> None:
        """The registry's own loop ran `seconds` late: heartbeats may be waiting unread."""
        for n in self.nodes.values():
            n.expires_at += seconds

    def pause(self) -> None:
        """The bus is down: we cannot hear anyone, so we judge no one."""
        self.paused = True

    def resume(self, now: float) -> None:
        """The bus is back: every node gets one more full expiry period to be heard."""
        self.paused = False
        for n in self.nodes.values():
            n.expires_at = max(n.expires_at, now + self.expiry_factor * n.interval)

    # --- output --------------------------------------------------------------------

    def judged(self, now: float) -> bool:
        return now >= self.judge_from

    def view(self, code: str, now: float) -> RegionView:
        v = RegionView(code, judged=self.judged(now))
        for n in self.nodes.values():
            if n.info.region != code:
                continue
            if n.info.service == "signaling":
                v.signaling.append(n.info)
            elif n.info.service == "media":
                v.media.append(n.info)
        for lst in (v.signaling, v.media):
            lst.sort(key=lambda i: (i.load / i.capacity if i.capacity else 0.0, i.node_id))
        return v

    def views(self, now: float) -> dict[str, RegionView]:
        return {code: self.view(code, now) for code in self.topo.signaling}

    def media_region_nodes(self, media_code: str) -> list[NodeInfo]:
        """Media workers whose public address lies in a media region's ranges."""
        out = []
        for n in self.nodes.values():
            if n.info.service != "media":
                continue
            for a in n.info.addresses:
                mr = self.topo.media_region_of(a)
                if mr is not None and mr.code == media_code:
                    out.append(n.info)
                    break
        return out

    def changes(self, now: float) -> list[RegionStatus]:
        """The RegionStatus of every region whose state changed since the last call.

        Before the warm-up ends a region may be announced up, never down."""
        out = []
        for code, v in self.views(now).items():
            state = (v.healthy, len(v.signaling), len(v.media))
            if not v.judged and not v.healthy and code not in self._published:
                continue
            if self._published.get(code) == state:
                continue
            self._published[code] = state
            out.append(RegionStatus(
                code=code, healthy=v.healthy, signaling_nodes=len(v.signaling), media_nodes=len(v.media),
                reason=v.reason(),
            ))
        return out
