"""OPTIONS pinging of the targets that ask for it (`options_ping`), the asyncio side of
`health_fsm.HealthTable`.

Every `options_interval` seconds the node asks config for the pinged targets and keeps
those it owns: one node pings a target, not every node — the target goes to the live
signaling node of this region with the highest hash of (node, target) (rendezvous hashing:
a node joining or leaving moves only its own share). A health change is published on
`signaling.targets.health` (config routes around a down target) and counted."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence

from proto import subjects
from proto.messages import (
    PingTarget,
    PingTargets,
    PingTargetsRequest,
    RegionSelect,
    RegionSelection,
    TargetHealthChanged,
)
from services.common.bus import Bus

from . import metrics
from .endpoint import SipEndpoint
from .health_fsm import Change, HealthTable
from .settings import SignalingSettings
from .sip.uri import SipUri, parse_uri
from .transport import ClientTlsOptions

log = logging.getLogger("switchboard.signaling.health")


def owner(target_id: str, nodes: Sequence[str]) -> str | None:
    """The node that pings this target (rendezvous hashing)."""
    if not nodes:
        return None
    return max(nodes, key=lambda n: hashlib.sha256(f"{n}\0{target_id}".encode()).digest())


class HealthPinger:
    def __init__(self, bus: Bus, endpoint: SipEndpoint, settings: SignalingSettings) -> None:
        self.bus = bus
        self.ep = endpoint
        self.settings = settings
        self.interval = settings.options_interval
        self.table = HealthTable(self.interval)
        self.targets: dict[str, PingTarget] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._main = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        tasks = [t for t in (self._main, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- which targets are ours

    async def _nodes(self) -> list[str]:
        me = self.settings.node_id
        try:
            sel = await self.bus.request(subjects.registry_select(), RegionSelect(
                preferred=self.settings.region, need=["signaling"]), RegionSelection, timeout=self.settings.bus_timeout)
        except Exception as e:
            log.debug("registry not answering (%s): pinging as the only node", e)
            return [me]
        nodes = {n.node_id for n in sel.nodes if n.service == "signaling" and n.region == self.settings.region}
        return sorted(nodes | {me})

    async def refresh(self) -> None:
        try:
            listed = await self.bus.request(subjects.routing_pinged_targets(), PingTargetsRequest(
                region=self.settings.region), PingTargets, timeout=self.settings.bus_timeout)
        except Exception as e:
            log.info("pinged targets not listed (%s); keeping the last list", e)
            return
        nodes = await self._nodes()
        me = self.settings.node_id
        mine = [t for t in listed.targets if owner(t.target_id, nodes) == me]
        self.targets = {t.target_id: t for t in mine}
        self.table.sync([(t.target_id, t.uri, t.health) for t in mine], self._now())

    # -- the loop

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _run(self) -> None:
        next_refresh = 0.0
        while True:
            now = self._now()
            if now >= next_refresh:
                await self.refresh()
                next_refresh = self._now() + self.interval
            for probe in self.table.due(self._now()):
                target = self.targets.get(probe.target_id)
                if target is not None:
                    task = asyncio.get_running_loop().create_task(self._ping(target))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            wake_at = min(t for t in (self.table.next_timer(), next_refresh) if t is not None)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - self._now()))
            except TimeoutError:
                pass

    async def _ping(self, target: PingTarget) -> None:
        change: Change | None
        try:
            status = await self.options(target)
        except Exception as e:
            change = self.table.missed(target.target_id, str(e) or type(e).__name__)
        else:
            change = self.table.answered(target.target_id, status)
        self._wake.set()  # the probe is due again
        if change is not None:
            await self._publish(change)

    async def options(self, target: PingTarget) -> int:
        """One OPTIONS (RFC 3261 §11) out of dialog; the status of the target's answer.
        Raises when none came (timeout, transport error: the endpoint's local 408/503)."""
        host = self.settings.public_address
        uri = parse_uri(target.uri)
        request = self.ep.create_request("OPTIONS", target.uri, from_=f"<sip:ping@{host}>", to=f"<{target.uri}>",
                                         transport=target.transport, headers=[("Max-Forwards", "70")])
        tls = ClientTlsOptions(verify=target.tls.verify, ca_pem=target.tls.ca_pem,
                               client_cert_pem=target.tls.client_cert_pem, client_key_pem=target.tls.client_key_pem)
        server_name = uri.host if isinstance(uri, SipUri) else None
        sent = await self.ep.request(request, tls=tls, server_name=server_name)
        # No answer within the interval is a miss, whatever Timer F says (§17.1.2.2).
        final = await asyncio.wait_for(sent.final(), min(self.interval, 32 * self.settings.t1) or self.interval)
        if sent.error:
            raise ConnectionError(sent.error)
        return final.status

    async def _publish(self, change: Change) -> None:
        log.info("target %s (%s) is %s: %s", change.target_id, change.uri, change.health, change.reason)
        metrics.TARGET_HEALTH_CHANGES.labels(change.health).inc()
        try:
            await self.bus.publish(subjects.target_health(), TargetHealthChanged(
                target_id=change.target_id, uri=change.uri, health=change.health, previous=change.previous,
                node=self.settings.node_id, region=self.settings.region, reason=change.reason))
        except Exception as e:
            log.warning("target health not published: %s", e)
