"""The routing resolver: answers `routing.resolve` from an in-memory view of the data.

No database access per call. The view is rebuilt per account when a `ConfigChanged` event
names it (every config instance subscribes without a queue group, so each one sees every
write), fully at start and every `full_reload` seconds as a safety net for an event lost
while NATS was away, and fully after a reconnect. Passwords are decrypted when the view is
built and leave the process only inside a RoutingDecision."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import selectinload

from proto import subjects
from proto.messages import (
    ConfigChanged,
    ConfigEntity,
    PbxOptions,
    PingTarget,
    RoutingDecision,
    RoutingRequest,
    SipTarget,
    TlsOptions,
)
from services.common.bus import Bus
from services.common.tasks import cancel_and_wait

from .db.models import Account, ReceivingNumber, TrackingNumber
from .errors import SecretError
from .secrets import SecretBox
from .validation import media_encryption, normalize_e164, parse_sip_uri

log = logging.getLogger("switchboard.config.resolver")

# Entities whose changes can alter a routing decision.
ROUTING_ENTITIES = {ConfigEntity.ACCOUNTS, ConfigEntity.RECEIVING_NUMBERS, ConfigEntity.TRACKING_NUMBERS}


@dataclass
class Route:
    """Everything a decision for one tracking number needs, precomputed."""

    number: str
    account_id: str
    account_active: bool
    receiving_number_id: str
    tracking_enabled: bool
    receiving_enabled: bool
    targets: list[SipTarget]
    ring_timeout: float
    send_digits: str | None
    region: str | None
    nat: str = "auto"
    pbx: PbxOptions = field(default_factory=PbxOptions)
    broken: str = ""
    """Why the route cannot be used (e.g. a password sealed with a key not configured)."""


@dataclass
class _Pending:
    full: bool = False
    accounts: set[str] = field(default_factory=set)


def weighted_order(targets: Iterable[SipTarget], rng: random.Random | random.SystemRandom) -> list[SipTarget]:
    """Order by priority (lowest first); within one priority, a weighted random order
    (Efraimidis-Spirakis: key u^(1/w)), so each target leads in proportion to its weight."""
    keyed = [(t.priority, -(rng.random() ** (1.0 / max(t.weight, 1))), i, t) for i, t in enumerate(targets)]
    keyed.sort()
    return [k[3] for k in keyed]


class Resolver:
    def __init__(self, sessionmaker: async_sessionmaker, secrets: SecretBox,  # type: ignore[type-arg]
                 bus: Bus | None = None, *, full_reload: float = 60.0, rng: random.Random | None = None) -> None:
        self.sessionmaker = sessionmaker
        self.secrets = secrets
        self.bus = bus
        self.full_reload = full_reload
        self.rng = rng or random.Random()
        self.routes: dict[str, Route] = {}
        self.health: dict[str, str] = {}
        """Target id -> up/down/unknown, from TargetHealthChanged (target_health.py)."""
        self.by_account: dict[str, set[str]] = {}
        self.loaded = False
        self.reloads = 0
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._requested = 0
        self._applied = 0
        self._applied_cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, *, serve: bool = True) -> None:
        """Subscribe to changes first (so none is missed while loading), load everything,
        then answer routing requests."""
        if self.bus is not None:
            await self.bus.subscribe(subjects.config_changed_any(), self.on_change, ConfigChanged, concurrent=False)
        await self._reload(_Pending(full=True))
        self.loaded = True
        self._tasks.append(asyncio.create_task(self._worker()))
        self._tasks.append(asyncio.create_task(self._periodic()))
        if self.bus is not None and serve:
            await self.bus.subscribe(subjects.routing_resolve(), self.handle, RoutingRequest,
                                     queue=subjects.CONFIG_QUEUE)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    # --- invalidation -------------------------------------------------------------

    async def on_change(self, ev: ConfigChanged) -> None:
        if ev.entity not in ROUTING_ENTITIES:
            return None
        if ev.account_id:
            self._pending.accounts.add(ev.account_id)
        else:
            self._pending.full = True
        self._requested += 1
        self._wake.set()
        return None

    def invalidate_all(self) -> None:
        """After a reconnect: events may have been missed."""
        self._pending.full = True
        self._requested += 1
        self._wake.set()

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until every invalidation received so far is applied (tests, tools)."""
        target = self._requested
        async with asyncio.timeout(timeout), self._applied_cond:
            await self._applied_cond.wait_for(lambda: self._applied >= target)

    async def _worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, _Pending()
            requested = self._requested
            try:
                await self._reload(pending)
            except Exception as e:
                log.warning("resolver reload failed (%s); retrying", e)
                # Keep serving the old view; put the work back and retry shortly.
                self._pending.full |= pending.full
                self._pending.accounts |= pending.accounts
                await asyncio.sleep(0.5)
                self._wake.set()
                continue
            async with self._applied_cond:
                self._applied = requested
                self._applied_cond.notify_all()

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.full_reload)
            self.invalidate_all()

    async def _reload(self, pending: _Pending) -> None:
        stmt = (select(TrackingNumber, ReceivingNumber, Account)
                .join(ReceivingNumber, TrackingNumber.receiving_number_id == ReceivingNumber.id)
                .join(Account, TrackingNumber.account_id == Account.id)
                .options(selectinload(ReceivingNumber.targets)))
        if not pending.full:
            if not pending.accounts:
                return
            stmt = stmt.where(TrackingNumber.account_id.in_(sorted(pending.accounts)))
        async with self.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        fresh = [self._route(tn, rn, acc) for tn, rn, acc in rows]
        # Swap in one step (no await below): a request sees the old or the new view.
        if pending.full:
            self.routes = {}
            self.by_account = {}
        else:
            for acc_id in pending.accounts:
                for number in self.by_account.pop(acc_id, set()):
                    self.routes.pop(number, None)
        for r in fresh:
            self.routes[r.number] = r
            self.by_account.setdefault(r.account_id, set()).add(r.number)
        self.reloads += 1
        log.debug("resolver view reloaded (%s): %d routes",
                  "full" if pending.full else f"{len(pending.accounts)} account(s)", len(self.routes))

    def _route(self, tn: TrackingNumber, rn: ReceivingNumber, acc: Account) -> Route:
        targets: list[SipTarget] = []
        broken = ""
        for t in rn.targets:
            if not t.enabled:
                continue
            try:
                uri = parse_sip_uri(t.uri)
                password = self.secrets.open(t.password_sealed) if t.password_sealed else None
                client_key = self.secrets.open(t.tls_client_key_sealed) if t.tls_client_key_sealed else None
            except (ValueError, SecretError) as e:
                log.error("target %s of receiving number %s is unusable: %s", t.id, rn.id, e)
                broken = "stored credentials cannot be decrypted"
                continue
            targets.append(SipTarget(
                uri=t.uri, transport=uri.transport, priority=t.priority, weight=t.weight, credentials_ref=t.id,
                username=t.username, password=password,
                secure_media=media_encryption(uri, t.media_encryption) == "srtp",
                tls=TlsOptions(verify=t.tls_verify, ca_pem=t.tls_ca_pem, client_cert_pem=t.tls_client_cert_pem,
                               client_key_pem=client_key), options_ping=t.options_ping))
            if t.options_ping and t.health_row is not None:
                self.health.setdefault(t.id, t.health_row.health)
        return Route(number=tn.number, account_id=acc.id, account_active=acc.status == "active",
                     receiving_number_id=rn.id, tracking_enabled=tn.enabled,
                     receiving_enabled=rn.enabled and rn.dial_sip_client, targets=targets,
                     ring_timeout=float(rn.ring_timeout), send_digits=rn.send_digits, region=rn.region,
                     nat=rn.nat or "auto",
                     pbx=PbxOptions(diversion=rn.diversion, request_uri_user=rn.request_uri_user,
                                    forward_pai=rn.forward_pai, forward_identity=rn.forward_identity,
                                    forward_headers=list(rn.forward_headers or []),
                                    sip_headers=dict(rn.sip_headers or {}), transfer=rn.transfer,
                                    follow_redirects=rn.follow_redirects),
                     broken=broken if not targets else "")

    # --- answering ----------------------------------------------------------------

    def lookup(self, number: str) -> Route | None:
        route = self.routes.get(number)
        if route is None:
            # Slow path only on a miss: accept national formatting or a missing +.
            raw = number.strip()
            if raw and not raw.startswith("+"):
                raw = "+" + raw
            try:
                route = self.routes.get(normalize_e164(raw))
            except ValueError:
                return None
        return route

    def decide(self, req: RoutingRequest) -> RoutingDecision:
        route = self.lookup(req.tracking_number)
        if route is None:
            return RoutingDecision(ok=False, status=404, reason="unknown tracking number",
                                   tracking_number=req.tracking_number)
        base = dict(account_id=route.account_id, receiving_number_id=route.receiving_number_id,
                    tracking_number=route.number)
        if not route.account_active:
            return RoutingDecision(ok=False, status=403, reason="account suspended", **base)
        if not route.tracking_enabled:
            return RoutingDecision(ok=False, status=480, reason="tracking number disabled", **base)
        if not route.receiving_enabled:
            return RoutingDecision(ok=False, status=480, reason="receiving number disabled", **base)
        if route.broken:
            return RoutingDecision(ok=False, status=503, reason=route.broken, **base)
        if not route.targets:
            return RoutingDecision(ok=False, status=480, reason="no enabled SIP target", **base)
        targets = [t.model_copy(update={"health": self.health.get(t.credentials_ref or "", "unknown")})
                   if t.options_ping else t for t in route.targets]
        # A target OPTIONS found down is skipped (no ring timeout spent on it); when every
        # one is down, they are all tried anyway: the pings may be wrong, the call is not lost.
        alive = [t for t in targets if t.health != "down"]
        targets = weighted_order(alive or targets, self.rng)
        return RoutingDecision(
            ok=True, targets=targets, secure_media=targets[0].secure_media, ring_timeout=route.ring_timeout,
            send_digits=route.send_digits, region_preference=route.region,
            nat="off" if route.nat == "off" else "auto", pbx=route.pbx, **base)

    async def handle(self, req: RoutingRequest) -> RoutingDecision:
        return self.decide(req)

    def pinged_targets(self) -> list[PingTarget]:
        """Every routed target with options_ping on, once."""
        out: dict[str, PingTarget] = {}
        for route in self.routes.values():
            for t in route.targets:
                if t.options_ping and t.credentials_ref and t.credentials_ref not in out:
                    out[t.credentials_ref] = PingTarget(target_id=t.credentials_ref, uri=t.uri, transport=t.transport,
                                                        tls=t.tls, health=self.health.get(t.credentials_ref, "unknown"))
        return list(out.values())
