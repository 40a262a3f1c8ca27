"""The registry's answers: region selection, trunk check and the API verbs the config
service forwards from `/v1/regions`, `/v1/allowlist` and `/v1/trunks`.

Bus-free: `RegistryApi` reads the state it is given and returns messages; `main.py` wires
it to subjects."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from proto.messages import (
    NodeInfo,
    RegionSelect,
    RegionSelection,
    RegistryQuery,
    RegistryReply,
    TrunkCheck,
    TrunkCheckResult,
)
from services.common.errors import HandlerError

from . import allowlist, selection
from .errors import TrunkInputError
from .membership import Membership, RegionView, load_summary
from .topology import Topology
from .trunks import LOOPBACK, Trunk, TrunkStore, file_trunks, match, validate_new

log = logging.getLogger("switchboard.registry.api")

_TRUNK_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _node(n: NodeInfo) -> dict[str, Any]:
    return n.model_dump(exclude={"schema_version"})


def _error(status: int, message: str, **extra: Any) -> RegistryReply:
    return RegistryReply(status=status, data={"error": message, **extra})


class RegistryApi:
    def __init__(
        self, topo: Topology, membership: Membership, store: TrunkStore | None, *,
        local_mode: bool = False, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topo = topo
        self.membership = membership
        self.store = store
        self.local_mode = local_mode
        self.clock = clock
        self.api_trunks: list[Trunk] = []
        """Operator trunks as last read from KV (refreshed by the service loop)."""

    # --- trunks cache -----------------------------------------------------------------

    async def refresh_trunks(self) -> list[Trunk]:
        if self.store is not None:
            self.api_trunks = await self.store.list()
        return self.api_trunks

    def all_trunks(self) -> list[Trunk]:
        out = file_trunks(self.topo) + list(self.api_trunks)
        if self.local_mode:
            out.append(LOOPBACK)
        return out

    # --- bus endpoints ----------------------------------------------------------------

    async def select(self, req: RegionSelect) -> RegionSelection:
        return selection.select(self.topo, self.membership.views(self.clock()), req)

    async def trunk_check(self, req: TrunkCheck) -> TrunkCheckResult:
        try:
            t = match(self.all_trunks(), req.address)
        except ValueError:
            raise HandlerError(400, "not an IP address", {"field": "address", "value": req.address}) from None
        return TrunkCheckResult(allowed=t is not None, trunk=t.name if t else None)

    async def query(self, verb: str, q: RegistryQuery) -> RegistryReply:
        handler = {
            "regions": self.regions,
            "allowlist": self.allowlist,
            "trunks_list": self.trunks_list,
            "trunks_add": self.trunks_add,
            "trunks_delete": self.trunks_delete,
        }.get(verb)
        if handler is None:
            return _error(404, f"unknown verb {verb!r}")
        return await handler(q.params)

    # --- verbs ------------------------------------------------------------------------

    def region_rows(self) -> list[dict[str, Any]]:
        now = self.clock()
        views = self.membership.views(now)
        judged = self.membership.judged(now)
        rows: list[dict[str, Any]] = []
        for sr in self.topo.signaling_regions:
            v: RegionView = views[sr.code]
            rows.append({
                "code": sr.code, "name": sr.name, "kind": "signaling",
                "failover": list(sr.failover), "media_regions": list(sr.media_regions),
                "health": v.health, "healthy": v.healthy if v.judged or v.healthy else None,
                "reason": v.reason(),
                "live_nodes": [_node(n) for n in v.signaling + v.media],
                "load": load_summary(v),
            })
        for mr in self.topo.media_regions:
            nodes = self.membership.media_region_nodes(mr.code)
            health = "up" if nodes else ("down" if judged else "unknown")
            rows.append({
                "code": mr.code, "name": mr.name, "kind": "media",
                "failover": [], "serves": [s.code for s in self.topo.signaling_regions
                                          if mr.code in s.media_regions],
                "health": health, "healthy": bool(nodes) if judged or nodes else None,
                "reason": "" if nodes else "no live media worker with an address in its ranges",
                "live_nodes": [_node(n) for n in nodes],
                "load": {"media": load_summary(RegionView(mr.code, media=nodes))["media"]},
            })
        return rows

    async def regions(self, params: dict[str, Any]) -> RegistryReply:
        kind = params.get("kind")
        rows = self.region_rows()
        if kind is not None:
            if kind not in ("signaling", "media"):
                return _error(422, "kind must be signaling or media", field="kind")
            rows = [r for r in rows if r["kind"] == kind]
        return RegistryReply(data=rows)

    async def allowlist(self, params: dict[str, Any]) -> RegistryReply:
        fmt = str(params.get("format") or "json").lower()
        try:
            content_type, body = allowlist.render(self.topo, fmt)
        except ValueError as e:
            return _error(422, str(e), field="format", allowed=list(allowlist.FORMATS))
        if isinstance(body, str):
            return RegistryReply(content_type=content_type, text=body)
        return RegistryReply(content_type=content_type, data=body)

    async def trunks_list(self, params: dict[str, Any]) -> RegistryReply:
        if self.store is not None:
            await self.refresh_trunks()  # the API answers from KV, never a stale cache
        return RegistryReply(data=[t.public() for t in self.all_trunks()])

    async def trunks_add(self, params: dict[str, Any]) -> RegistryReply:
        try:
            name, networks = validate_new(params)
        except TrunkInputError as e:
            return _error(422, e.problem, field=e.field)
        if self.store is None:
            return _error(503, "trunk storage is not available")
        await self.refresh_trunks()
        if any(t.name == name for t in self.all_trunks()):
            return _error(409, f"a trunk named {name!r} exists", field="name")
        t = await self.store.add(name, networks)
        await self.refresh_trunks()
        log.info("trunk %s (%s) added: %s", t.id, t.name, ", ".join(map(str, t.networks)))
        return RegistryReply(status=201, data=t.public())

    async def trunks_delete(self, params: dict[str, Any]) -> RegistryReply:
        trunk_id = params.get("id")
        if not isinstance(trunk_id, str) or not trunk_id:
            return _error(422, "id is required", field="id")
        if any(t.id == trunk_id for t in file_trunks(self.topo)) or trunk_id == LOOPBACK.id:
            return _error(409, "this trunk comes from the regions file; change the file instead", field="id")
        if self.store is None:
            return _error(503, "trunk storage is not available")
        if not _TRUNK_ID.match(trunk_id) or not await self.store.delete(trunk_id):
            return _error(404, f"no trunk {trunk_id!r}", field="id")
        await self.refresh_trunks()
        log.info("trunk %s deleted", trunk_id)
        return RegistryReply(status=200, data={"id": trunk_id, "deleted": True})
