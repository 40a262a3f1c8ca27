"""What-if for a past call: today's routing, region selection and media selection for it,
without placing it, beside what happened (`switchboard calls reroute`, `GET
/v1/calls/{id}/reroute`).

Nothing is allocated or dialled: routing is asked with the call's own `received` facts
(`routing.resolve`), the registry is asked which region and which media workers would serve
it (`registry.select`, a read), and the answers are compared, item by item, with the call's
`resolved`, `media_allocated` and `media_failover` events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proto import events, subjects
from proto.messages import CallEvent, RegionSelect, RegionSelection, RoutingDecision, RoutingRequest

from .bus import Bus
from .errors import BusError


class NothingToRerun(Exception):
    """The call's `received` event is missing (too old, or not a call)."""


@dataclass
class Item:
    name: str
    then: Any
    now: Any

    @property
    def differs(self) -> bool:
        return bool(self.then != self.now)


@dataclass
class Reroute:
    call_id: str
    tracking_number: str
    caller: str | None
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[str]:
        return [i.name for i in self.items if i.differs]

    def to_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "tracking_number": self.tracking_number, "caller": self.caller,
                "items": [{"name": i.name, "then": i.then, "now": i.now, "differs": i.differs} for i in self.items],
                "differences": self.differences, "notes": self.notes}


def request_of(evs: list[CallEvent]) -> RoutingRequest | None:
    for ev in evs:
        body = events.parse_or_generic(ev)
        if isinstance(body, events.Received) and body.tracking_number:
            return RoutingRequest(call_id=ev.call_id, tracking_number=body.tracking_number, caller=body.caller,
                                  caller_name=body.caller_name, source=body.source, region=ev.region or None)
    return None


def _first(evs: list[CallEvent], kind: type[events.EventBody]) -> Any:
    for ev in evs:
        body = events.parse_or_generic(ev)
        if isinstance(body, kind):
            return body
    return None


def _targets(targets: list[Any]) -> list[str]:
    return [f"{t.uri} ({t.transport}, p{t.priority} w{t.weight}{', SRTP' if t.secure_media else ''})"
            for t in targets]


def then_of(evs: list[CallEvent]) -> dict[str, Any]:
    """What happened, as the items compare it."""
    resolved: events.Resolved | None = _first(evs, events.Resolved)
    failed: events.Failed | None = _first(evs, events.Failed)
    allocated: events.MediaAllocated | None = _first(evs, events.MediaAllocated)
    failovers = [b.region for b in (events.parse_or_generic(e) for e in evs) if isinstance(b, events.MediaFailover)]
    if resolved is not None:
        routing = "ok"
    elif failed is not None:
        routing = f"rejected {failed.sip_status} {failed.reason}"
    else:
        routing = None
    secure = resolved is not None and (resolved.secure_media or any(t.secure_media for t in resolved.targets))
    return {
        "routing": routing,
        "receiving number": resolved.receiving_number_id if resolved else None,
        "targets": _targets(resolved.targets) if resolved else [],
        "ring timeout": resolved.ring_timeout if resolved else None,
        "region preference": resolved.region if resolved else None,
        "SRTP on the client leg": secure if resolved else None,
        "media region": allocated.region if allocated else None,
        "media regions skipped": failovers,
        "media worker": allocated.worker_id if allocated else None,
    }


def now_of(decision: RoutingDecision, selection: RegionSelection | None, call_region: str | None) -> dict[str, Any]:
    secure = decision.secure_media or any(t.secure_media for t in decision.targets)
    workers = sorted(n.node_id for n in (selection.nodes if selection else []) if n.service == "media")
    skipped: list[str] = []
    if selection is not None and selection.ok and selection.failed_over and selection.preferred:
        skipped = [selection.preferred]
    return {
        "routing": "ok" if decision.ok else f"rejected {decision.status} {decision.reason}",
        "receiving number": decision.receiving_number_id if decision.ok else None,
        "targets": _targets(decision.targets) if decision.ok else [],
        "ring timeout": decision.ring_timeout if decision.ok else None,
        "region preference": decision.region_preference if decision.ok else None,
        "SRTP on the client leg": secure if decision.ok else None,
        "media region": selection.region if selection and selection.ok else None,
        "media regions skipped": skipped,
        "media worker": workers,
    }


async def reroute(bus: Bus, evs: list[CallEvent], *, timeout: float = 2.0) -> Reroute:
    req = request_of(evs)
    if req is None:
        raise NothingToRerun("the call's `received` event is missing: nothing to re-run")
    decision = await bus.request(subjects.routing_resolve(), req, RoutingDecision, timeout=timeout)
    out = Reroute(call_id=req.call_id, tracking_number=req.tracking_number, caller=req.caller)
    selection: RegionSelection | None = None
    if decision.ok:
        # The B2BUA's choice: the number's region preference, else the region the call came in.
        preferred = decision.region_preference or req.region
        try:
            selection = await bus.request(subjects.registry_select(), RegionSelect(preferred=preferred, need=["media"]),
                                          RegionSelection, timeout=timeout)
        except BusError as e:
            out.notes.append(f"the registry did not answer ({e}): region and media not re-run")
        if selection is not None and not selection.ok:
            out.notes.append(f"no region would take the call now: {selection.reason}")
    then, now = then_of(evs), now_of(decision, selection, req.region)
    for name in then:
        t, n = then[name], now[name]
        if name == "media worker" and isinstance(n, list):
            # Any worker of the region may take it (a queue group): same if the one used is among them.
            n = t if t in n else (n or None)
        out.items.append(Item(name, t, n))
    return out


def render(r: Reroute, *, width: int = 100) -> str:
    """A table: what | then | now, a `*` in front of each difference."""
    def text(v: Any) -> list[str]:
        if v is None or v == []:
            return ["-"]
        if isinstance(v, list):
            return [str(x) for x in v]
        if isinstance(v, bool):
            return ["yes" if v else "no"]
        return [str(v)]

    name_w = max(len(i.name) for i in r.items) + 2 if r.items else 10
    col = max(20, (width - name_w - 4) // 2)
    lines = [f"call {r.call_id}: tracking number {r.tracking_number}, caller {r.caller or '-'}",
             f"  {'':<{name_w}}{'then (what happened)':<{col}} now (today's routing, regions, media)"]
    for i in r.items:
        t, n = text(i.then), text(i.now)
        for k in range(max(len(t), len(n))):
            mark = "*" if i.differs and k == 0 else " "
            left = (t[k] if k < len(t) else "")[: col - 1]
            right = n[k] if k < len(n) else ""
            lines.append(f"{mark} {i.name if k == 0 else '':<{name_w}}{left:<{col}} {right}".rstrip())
    for note in r.notes:
        lines.append(f"  note: {note}")
    lines.append(f"{len(r.differences)} difference(s)" + (f": {', '.join(r.differences)}" if r.differences
                                                          else ": today's choices match the call"))
    return "\n".join(lines)
