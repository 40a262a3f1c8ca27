"""Which region serves a call now: pure function of the topology and the live views."""

from __future__ import annotations

from collections.abc import Mapping

from proto.messages import RegionSelect, RegionSelection

from .membership import RegionView
from .topology import Topology


def order(topo: Topology, preferred: str) -> list[str]:
    """The preferred region, then its failover order (as written in the file)."""
    return [preferred, *topo.signaling[preferred].failover]


def select(topo: Topology, views: Mapping[str, RegionView], req: RegionSelect) -> RegionSelection:
    """The preferred region if it is usable, else the first usable one in its failover
    order; regions in `req.exclude` (already tried for this call) are skipped."""
    preferred = req.preferred
    if preferred is None:
        # No preference (e.g. a tool asking): file order is the operator's priority.
        preferred = next(
            (c for c in topo.signaling if c not in req.exclude and views[c].usable(req.need)),
            topo.signaling_regions[0].code,
        )
    if preferred not in topo.signaling:
        return RegionSelection(ok=False, preferred=preferred, reason=f"unknown region {preferred!r}")
    need = req.need or ["signaling", "media"]
    usable = [c for c in order(topo, preferred) if c not in req.exclude and views[c].usable(need)]
    if not usable:
        tried = ", ".join(f"{c} ({views[c].reason() or 'excluded'})" for c in order(topo, preferred))
        return RegionSelection(ok=False, preferred=preferred, reason=f"no healthy region: {tried}")
    region, rest = usable[0], usable[1:]
    return RegionSelection(
        ok=True, region=region, preferred=preferred, failed_over=region != preferred,
        nodes=views[region].nodes(need), candidates=rest,
        reason="" if region == preferred else f"{preferred}: {views[preferred].reason() or 'excluded'}",
    )
