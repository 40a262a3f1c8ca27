"""The registry service process: topology, live membership, health, selection, trunks."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque

from nats.aio.msg import Msg
from pydantic import ValidationError

from proto import subjects
from proto.messages import Heartbeat, RegionSelect, RegionStatus, RegistryQuery, TrunkCheck
from services.common.bus import Bus
from services.common.service import Component, run
from services.common.settings import load
from services.common.tasks import cancel_and_wait

from . import topology
from .api import RegistryApi
from .errors import BadHeartbeat, TopologyError
from .membership import Membership
from .settings import RegistrySettings
from .trunks import TrunkStore

log = logging.getLogger("switchboard.registry")

VERBS = ("regions", "allowlist", "trunks_list", "trunks_add", "trunks_delete")
BAD_LOG_EVERY = 60.0


class Registry(Component[RegistrySettings]):
    service = "registry"

    def __init__(self, bus: Bus, settings: RegistrySettings, topo: topology.Topology | None = None) -> None:
        super().__init__(bus, settings)
        self.topo = topo or topology.load(settings.regions_file)
        self.membership = Membership(
            self.topo, now=time.monotonic(), expiry_factor=settings.expiry_factor,
            warmup=settings.warmup_seconds,
        )
        self.store = TrunkStore(bus.nc.jetstream(), settings.trunks_bucket, replicas=settings.kv_replicas)
        self.api = RegistryApi(self.topo, self.membership, self.store, local_mode=settings.local_mode)
        self._tasks: list[asyncio.Task[None]] = []
        self._bad_logged: dict[str, float] = {}
        self._reconnects = 0
        # One at a time, so statuses go out in the order they were decided.
        self._publish_lock = asyncio.Lock()
        self.history: deque[RegionStatus] = deque(maxlen=1000)
        """The statuses this instance announced, newest last (for tests and debugging)."""
        # Tick often enough to notice an expiry within a fraction of the shortest interval.
        self.tick = max(0.02, min(0.5, settings.heartbeat_interval / 4))

    async def start(self) -> None:
        try:
            await self.store.open()
            await self.api.refresh_trunks()
        except Exception as e:
            raise RuntimeError(f"registry: cannot open the trunks KV bucket (is JetStream on?): {e}") from e
        self._reconnects = self._reconnect_count()
        # No queue group: every registry instance hears every heartbeat, so they agree.
        await self.bus.nc.subscribe(subjects.heartbeat_all(), cb=self._on_heartbeat)
        queue = subjects.REGISTRY_QUEUE
        await self.bus.subscribe(subjects.registry_select(), self.api.select, RegionSelect, queue=queue)
        await self.bus.subscribe(subjects.registry_trunk_check(), self.api.trunk_check, TrunkCheck, queue=queue)
        for verb in VERBS:
            await self.bus.subscribe(subjects.registry_query(verb), self._verb(verb), RegistryQuery, queue=queue)
        self._tasks = [asyncio.create_task(self._judge()), asyncio.create_task(self._refresh_trunks())]
        log.info(
            "registry: %d signaling and %d media regions, %d file trunks%s",
            len(self.topo.signaling_regions), len(self.topo.media_regions), len(self.topo.carrier_trunks),
            " (local mode: loopback is a trunk)" if self.settings.local_mode else "",
        )

    def _verb(self, verb: str):  # type: ignore[no-untyped-def]
        async def handle(q: RegistryQuery):  # type: ignore[no-untyped-def]
            return await self.api.query(verb, q)

        return handle

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []

    # --- heartbeats -------------------------------------------------------------------

    async def _on_heartbeat(self, m: Msg) -> None:
        parts = m.subject.split(".")
        tokens = (parts[1], parts[2], parts[3]) if len(parts) == 4 else None
        try:
            hb = Heartbeat.model_validate_json(m.data)
            if tokens is None:
                raise BadHeartbeat("subject does not name service, region and node")
            self.membership.validate(hb, tokens)
        except (ValidationError, BadHeartbeat) as e:
            self._log_bad(m.subject, e)
            return
        if hb.leaving:
            if self.membership.forget(hb.service, hb.node_id):
                log.info("node %s/%s of %s left", hb.service, hb.node_id, hb.region)
        elif self.membership.observe(hb, time.monotonic()):
            log.info("node %s/%s joined %s", hb.service, hb.node_id, hb.region)
        await self._publish_changes()

    def _log_bad(self, subject: str, e: Exception) -> None:
        # A misconfigured node beats every second: say each problem once a minute, not every time.
        now = time.monotonic()
        detail = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        key = f"{subject} {detail}"
        if now - self._bad_logged.get(key, -BAD_LOG_EVERY) >= BAD_LOG_EVERY:
            if len(self._bad_logged) > 10_000:  # bounded: a flood of distinct junk must not grow it
                self._bad_logged.clear()
            self._bad_logged[key] = now
            log.warning("rejected heartbeat on %s: %s", subject, detail)
        else:
            log.debug("rejected heartbeat on %s: %s", subject, detail)

    # --- judging ----------------------------------------------------------------------

    def _reconnect_count(self) -> int:
        return int(self.bus.nc.stats.get("reconnects", 0))

    async def _judge(self) -> None:
        while True:
            asked = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            try:
                late = time.monotonic() - asked
                if late > self.tick:  # our own stall: what arrived meanwhile is still unread
                    self.membership.stalled(late)
                self._watch_connection()
                for n in self.membership.expire(time.monotonic()):
                    log.info("node %s/%s of %s is gone (missed heartbeats)", n.service, n.node_id, n.region)
                await self._publish_changes()
            except Exception:
                log.exception("registry judge loop")

    def _watch_connection(self) -> None:
        now = time.monotonic()
        if not self.bus.connected:
            if not self.membership.paused:
                log.warning("bus disconnected: not judging node liveness until it is back")
            self.membership.pause()
            return
        reconnects = self._reconnect_count()
        # A blip shorter than one tick still cost heartbeats: grant the grace period too.
        if self.membership.paused or reconnects != self._reconnects:
            self._reconnects = reconnects
            self.membership.resume(now)
            log.info("bus connected again: every node gets one more expiry period")

    async def _publish_changes(self) -> None:
        async with self._publish_lock:
            for st in self.membership.changes(time.monotonic()):
                await self._announce(st)

    async def _announce(self, st: RegionStatus) -> None:
        self.history.append(st)
        log.info(
            "region %s is %s (signaling %d, media %d)%s", st.code, "up" if st.healthy else "DOWN",
            st.signaling_nodes, st.media_nodes, f": {st.reason}" if st.reason else "",
        )
        try:
            await self.bus.publish(subjects.region_status(st.code), st)
        except Exception as e:
            log.warning("region %s status not published: %s", st.code, e)

    async def _refresh_trunks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.trunk_refresh)
            if not self.bus.connected:
                continue
            try:
                await self.api.refresh_trunks()
            except Exception as e:  # KV briefly unavailable: keep the last known trunks
                log.debug("trunks not refreshed: %s", e)


def main() -> None:
    settings = load(RegistrySettings)
    try:
        topo = topology.load(settings.regions_file)
    except TopologyError as e:
        print(f"registry: invalid regions file: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    run("registry", settings, lambda bus, s: Registry(bus, s, topo))
