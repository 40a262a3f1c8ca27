"""Status webhooks: what to send (from a call record's state), signing, and delivery.

Queueing: `enqueue_for_record` runs in the call-record consumer's transaction. From the
record's state it derives the status events the call has reached (initiated once the
account is known, ringing, answered, completed, one per DTMF digit) and inserts a
`webhook_deliveries` row for each subscribed endpoint that lacks it; the unique
(endpoint, call, event key) makes this idempotent and fills in anything an out-of-order
event delayed. Pending rows are the queue, so a restart loses nothing.

Delivery: `WebhookDispatcher` runs one task per endpoint that has due rows, so a slow or
dead endpoint only ever holds up itself: never a call (the B2BUA does not wait for any of
this) and never another endpoint. Within an endpoint, only the head of each call is sent
(the earliest pending row of that call): a call's later event waits for its earlier one;
different calls go out concurrently (bounded). Several config instances share the queue:
a row is taken with a lease (a conditional UPDATE), so it is sent by one of them at a time.
Failures retry with exponential backoff until the retry window (24 h) has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets as pysecrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from services.common.tasks import cancel_and_wait

from .db.models import CallRecord, Webhook, WebhookDelivery
from .netguard import delivery_refusal
from .secrets import SecretBox

log = logging.getLogger("switchboard.config.webhooks")

EVENTS = ("initiated", "ringing", "answered", "completed", "dtmf", "transferred")
SIGNATURE_HEADER = "X-Switchboard-Signature"
USER_AGENT = "Switchboard-Webhooks/1"

DELIVERIES = Counter("switchboard_webhook_deliveries_total",
                     "Webhook delivery attempts by outcome (success, http_error, timeout, error, gave_up)",
                     ["outcome"])
DELIVERY_SECONDS = Histogram("switchboard_webhook_delivery_seconds", "Time an endpoint took to answer a delivery",
                             buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
QUEUED = Counter("switchboard_webhook_queued_total", "Webhook deliveries queued, by event", ["event"])
BACKLOG = Gauge("switchboard_webhook_backlog", "Webhook deliveries pending (due or waiting for a retry)")


_last_id = [0]


def delivery_id() -> str:
    """Strictly increasing in this process (microseconds), so the delivery log, paged by id,
    lists a call's deliveries in the order they were queued even within one millisecond."""
    v = max(time.time_ns() // 1000, _last_id[0] + 1)
    _last_id[0] = v
    return f"whd_{v:014x}{pysecrets.token_hex(3)}"


def sign(secret: str, body: str | bytes, t: int | None = None) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the value of X-Switchboard-Signature."""
    t = int(time.time()) if t is None else t
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: str | bytes, header: str, tolerance: float = 300.0) -> bool:
    """How a receiver checks a delivery (documented, and used by the tests)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, t), header.strip())


def _ts(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def implied_events(rec: CallRecord) -> list[tuple[str, str, float, dict[str, Any]]]:
    """(event, key, order, body) of every status the call has reached."""
    from .records import attempts  # records imports this module
    if not rec.account_id:
        return []
    base = {"call_id": rec.id, "account_id": rec.account_id, "tracking_number": rec.tracking_number,
            "receiving_number_id": rec.receiving_number_id, "caller": rec.caller, "caller_name": rec.caller_name,
            "started_at": _iso(rec.started_at)}
    started = _ts(rec.started_at) or 0.0
    out: list[tuple[str, str, float, dict[str, Any]]] = [("initiated", "initiated", started, {"ts": started})]
    if rec.ringing_at is not None:
        t = _ts(rec.ringing_at) or started
        out.append(("ringing", "ringing", t, {"ts": t}))
    if rec.answered_at is not None:
        t = _ts(rec.answered_at) or started
        out.append(("answered", "answered", t, {"ts": t, "answered_at": _iso(rec.answered_at), "pdd_ms": rec.pdd_ms}))
    for d in rec.dtmf or []:
        out.append(("dtmf", f"dtmf:{d.get('key')}"[:160], float(d.get("ts") or started),
                    {"ts": d.get("ts"), "digit": d.get("digit"), "leg": d.get("leg"),
                     "duration_ms": d.get("duration_ms")}))
    for tr in rec.targets or []:
        # A REFER from the SIP client moved the call (records._transferred): one delivery each.
        if tr.get("k") == "outcome" and tr.get("result") == "transferred":
            ts = float(tr.get("ts") or started)
            out.append(("transferred", f"transferred:{ts}"[:160], ts,
                        {"ts": ts, "from_target": tr.get("target"), "target": str(tr.get("reason") or "")[3:]}))
    if rec.result is not None:
        t = _ts(rec.ended_at) or started
        # After every DTMF of the call, whatever the clocks of the nodes said.
        order = max([t] + [o for e, _, o, _ in out if e == "dtmf"]) + 1e-6 if rec.dtmf else t
        out.append(("completed", "completed", order,
                    {"ts": t, "result": rec.result, "duration": rec.duration, "sip_status": rec.sip_status,
                     "reason": rec.reason, "answered_at": _iso(rec.answered_at), "ended_at": _iso(rec.ended_at),
                     "targets": [{k: a[k] for k in ("target", "result", "status")} for a in attempts(rec)]}))
    return [(ev, key, order, {"event": ev, **base, **extra}) for ev, key, order, extra in out]


async def enqueue_for_record(session: AsyncSession, rec: CallRecord) -> int:
    """Queue the deliveries `rec`'s state implies that are not queued yet (in the session)."""
    if not rec.account_id:
        return 0
    hooks = list((await session.execute(select(Webhook).where(
        Webhook.account_id == rec.account_id, Webhook.enabled.is_(True)))).scalars())
    if not hooks:
        return 0
    implied = implied_events(rec)
    have = {(r.webhook_id, r.event_key) for r in (await session.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.event_key).where(
            WebhookDelivery.call_id == rec.id, WebhookDelivery.webhook_id.in_([h.id for h in hooks])))).all()}
    n = 0
    for h in hooks:
        wanted = set(h.events or [])
        for ev, key, order, body in sorted(implied, key=lambda i: i[2]):
            if ev not in wanted or (h.id, key) in have:
                continue
            session.add(WebhookDelivery(id=delivery_id(), webhook_id=h.id, account_id=h.account_id, call_id=rec.id, event=ev,
                                        event_key=key, order_ts=order, body=json.dumps(body, separators=(",", ":")),
                                        status="pending", attempts=0, next_attempt_at=datetime.now(UTC)))
            QUEUED.labels(ev).inc()
            n += 1
    if n:
        await session.flush()
        session.info["deliveries"] = session.info.get("deliveries", 0) + n
    return n


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt `attempts + 1`: base, 2·base, 4·base... at most cap."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class WebhookDispatcher:
    def __init__(self, sm: async_sessionmaker, box: SecretBox, *, node: str = "config",  # type: ignore[type-arg]
                 timeout: float = 10.0, backoff_base: float = 10.0, backoff_cap: float = 3600.0,
                 retry_window: float = 24 * 3600.0, poll_interval: float = 1.0, per_endpoint: int = 4,
                 transport: httpx.AsyncBaseTransport | None = None, allow_private: bool = False) -> None:
        self.sm = sm
        self.allow_private = allow_private
        self.box = box
        self.node = node
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_window = retry_window
        self.poll_interval = poll_interval
        self.per_endpoint = per_endpoint
        self._wake = asyncio.Event()
        self._endpoints: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
            headers={"User-Agent": USER_AGENT})

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        await cancel_and_wait([self._task, *self._endpoints.values()])
        self._endpoints.clear()
        self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the database may be away: try next round
                log.warning("webhook dispatch round failed: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    async def _dispatch(self) -> None:
        now = datetime.now(UTC)
        async with self.sm() as session:
            BACKLOG.set((await session.execute(select(func.count()).select_from(WebhookDelivery).where(
                WebhookDelivery.status == "pending"))).scalar_one())
            ids = list((await session.execute(
                select(WebhookDelivery.webhook_id).where(
                    WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
                .distinct().limit(5000))).scalars())
        for wid in ids:
            t = self._endpoints.get(wid)
            if t is None or t.done():
                self._endpoints[wid] = asyncio.create_task(self._endpoint(wid), name=f"webhook-{wid}")

    async def _heads(self, wid: str) -> list[WebhookDelivery]:
        """Due rows of one endpoint that are the earliest pending row of their call."""
        now = datetime.now(UTC)
        earlier = aliased(WebhookDelivery)
        blocked = exists().where(
            earlier.webhook_id == WebhookDelivery.webhook_id, earlier.call_id == WebhookDelivery.call_id,
            earlier.status == "pending",
            or_(earlier.order_ts < WebhookDelivery.order_ts,
                and_(earlier.order_ts == WebhookDelivery.order_ts, earlier.id < WebhookDelivery.id)))
        async with self.sm() as session:
            return list((await session.execute(
                select(WebhookDelivery).where(
                    WebhookDelivery.webhook_id == wid, WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                    ~blocked)
                .order_by(WebhookDelivery.order_ts).limit(self.per_endpoint * 8))).scalars())

    async def _endpoint(self, wid: str) -> None:
        sem = asyncio.Semaphore(self.per_endpoint)

        async def one(d: WebhookDelivery, hook: Webhook, secret: str) -> None:
            async with sem:
                await self._deliver(d, hook, secret)

        while True:
            heads = await self._heads(wid)
            if not heads:
                return
            async with self.sm() as session:
                hook = await session.get(Webhook, wid)
            if hook is None or not hook.enabled:
                return
            try:
                secret = self.box.open(hook.secret_sealed)
            except Exception as e:
                log.error("webhook %s: secret cannot be opened: %s", wid, e)
                return
            await asyncio.gather(*(one(d, hook, secret) for d in heads))

    async def _claim(self, d: WebhookDelivery) -> bool:
        now = datetime.now(UTC)
        async with self.sm() as session:
            res = await session.execute(
                update(WebhookDelivery).where(
                    WebhookDelivery.id == d.id, WebhookDelivery.status == "pending",
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now))
                .values(lease_until=now + timedelta(seconds=self.timeout + 30)))
            await session.commit()
            return bool(res.rowcount)  # type: ignore[attr-defined]

    async def _deliver(self, d: WebhookDelivery, hook: Webhook, secret: str) -> None:
        if not hook.enabled or not await self._claim(d):
            return
        body = d.body.encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   "X-Switchboard-Event": d.event, "X-Switchboard-Delivery": d.id}
        started = time.perf_counter()
        code: int | None = None
        error: str | None = None
        try:
            refused = None if self.allow_private else await delivery_refusal(hook.url)
            if refused is not None:
                raise httpx.ConnectError(f"refused: {refused}")
            r = await self._client.post(hook.url, content=body, headers=headers)
            code = r.status_code
            outcome = "success" if 200 <= code < 300 else "http_error"
            if outcome != "success":
                error = f"HTTP {code}"
        except httpx.TimeoutException:
            outcome, error = "timeout", f"no answer within {self.timeout:g} s"
        except httpx.HTTPError as e:
            outcome, error = "error", f"{type(e).__name__}: {e}"[:500]
        DELIVERY_SECONDS.observe(time.perf_counter() - started)
        now = datetime.now(UTC)
        attempts = d.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_status_code": code, "last_error": error,
                                  "lease_until": None}
        if outcome == "success":
            values.update(status="succeeded", delivered_at=now)
        else:
            created = d.created_at if d.created_at.tzinfo else d.created_at.replace(tzinfo=UTC)
            delay = backoff(attempts, self.backoff_base, self.backoff_cap)
            if now + timedelta(seconds=delay) > created + timedelta(seconds=self.retry_window):
                values["status"] = "failed"
                DELIVERIES.labels("gave_up").inc()
                log.warning("webhook %s: gave up on %s of call %s after %d attempts (%s)", hook.id, d.event,
                            d.call_id, attempts, error, extra={"call_id": d.call_id})
            else:
                values["next_attempt_at"] = now + timedelta(seconds=delay)
        DELIVERIES.labels(outcome).inc()
        async with self.sm() as session:
            await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == d.id).values(**values))
            await session.commit()


async def purge_deliveries(session: AsyncSession, keep: float) -> int:
    """Forget finished deliveries older than `keep` seconds (the log is not kept forever)."""
    from sqlalchemy import delete

    cutoff = datetime.now(UTC) - timedelta(seconds=keep)
    res = await session.execute(delete(WebhookDelivery).where(
        WebhookDelivery.status != "pending", WebhookDelivery.created_at < cutoff))
    await session.commit()
    return res.rowcount or 0  # type: ignore[attr-defined,no-any-return]


async def redeliver(session: AsyncSession, d: WebhookDelivery) -> WebhookDelivery:
    """A new delivery of the same body, sent as soon as possible and not held behind the call's order."""
    nid = delivery_id()
    copy = WebhookDelivery(id=nid, webhook_id=d.webhook_id, account_id=d.account_id, call_id=d.call_id,
                           event=d.event, event_key=f"redeliver:{nid}", order_ts=time.time(), body=d.body,
                           status="pending", attempts=0, next_attempt_at=datetime.now(UTC), redelivery_of=d.id)
    session.add(copy)
    await session.flush()
    QUEUED.labels(d.event).inc()
    return copy
