"""Call records: one row per call, built from the CALLS stream.

`apply_event` folds one CallEvent into a CallRecord (pure: no I/O). Events may come twice
(JetStream redelivers what was not acknowledged) or out of order between nodes (signaling
and media number their events independently), so:

- each event applies once: the record keeps, per emitting node, the seqs it has applied;
  a (node, seq) seen before is skipped. The same per-node lists tell a gap (seq 1..max
  not all there).
- each effect is order-independent: times are set by their own kind, the start is the
  earliest event, `ended` wins over `failed`, DTMF digits and attempts are kept in time
  order rather than arrival order.

`CallRecorder` is the durable JetStream consumer (pull, explicit ack, one durable name shared
by every config instance so each event is handled by one of them): it groups a fetched
batch by call, applies the whole batch in one transaction (or, when another instance wrote
one of its calls meanwhile, each call's events in a transaction of their own, retried), queues the status webhooks the new state implies in the same transaction, and
acknowledges only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import singledispatch
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from proto import events, subjects
from proto.messages import CallEvent, MediaStats
from services.common.bus import Bus

from .db.models import CallRecord, TrackingNumber
from .webhooks import enqueue_for_record

log = logging.getLogger("switchboard.config.records")

RESULTS = ("completed", "busy", "no-answer", "failed", "canceled", "lost")

CALL_RECORDS = Counter("switchboard_call_records_total", "Calls recorded as ended, by result", ["result"])
CALL_FAILURES = Counter("switchboard_call_failures_total",
                        "Calls that did not complete, by result and the SIP status the carrier got", ["result", "status"])
CALL_EVENTS = Counter("switchboard_call_events_consumed_total",
                      "Call events taken from the CALLS stream by the record consumer, by outcome", ["outcome"])


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive (they were stored in UTC)."""
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def new_record(call_id: str, ts: float) -> CallRecord:
    return CallRecord(id=call_id, started_at=to_dt(ts), targets=[], dtmf=[], applied={}, event_count=0)


def _earliest(current: datetime | None, ts: float) -> datetime:
    new = to_dt(ts)
    cur = aware(current)
    return new if cur is None or new < cur else cur


def _str(v: Any, limit: int) -> str | None:
    return None if v is None else str(v)[:limit]


def gaps(applied: dict[str, list[int]]) -> dict[str, list[int]]:
    """Per node, the seqs missing between 1 and the highest seen."""
    out: dict[str, list[int]] = {}
    for node, seqs in applied.items():
        have = set(seqs)
        missing = [s for s in range(1, max(have, default=0) + 1) if s not in have]
        if missing:
            out[node] = missing[:50]
    return out


_MEDIA_KEYS = {"worker_id", "a", "b", "mos", "duration"}


def _media_summary(rec: CallRecord, stats: MediaStats, *, with_call_id: bool) -> None:
    rec.media = stats.model_dump(mode="json", include=_MEDIA_KEYS | ({"call_id"} if with_call_id else set()))
    legs = (stats.a, stats.b)
    rec.mos = stats.mos
    rec.packets_lost = sum(leg.lost for leg in legs)
    rec.jitter_ms = max(leg.jitter_ms for leg in legs)
    rec.srtp_failures = sum(leg.srtp_failures for leg in legs)


def apply_event(rec: CallRecord, ev: CallEvent) -> bool:
    """Fold `ev` into `rec`. False when this (node, seq) was applied before (no change).
    Raises ValueError (pydantic's ValidationError) when a known kind's payload is malformed."""
    node_key = f"{ev.service}:{ev.node}"
    applied: dict[str, list[int]] = dict(rec.applied or {})
    seqs = list(applied.get(node_key, []))
    if ev.seq and ev.seq in seqs:
        return False
    body = events.parse(ev)  # before any change: a malformed event leaves the record as it was
    if ev.seq:
        seqs.append(ev.seq)
        seqs.sort()
        applied[node_key] = seqs
        rec.applied = applied  # a new object, so the JSON column is seen as changed
    rec.event_count = (rec.event_count or 0) + 1
    rec.started_at = _earliest(rec.started_at, ev.ts)
    if ev.service == "signaling" and ev.node and (rec.node is None or isinstance(body, events.Received)):
        rec.node = ev.node[:64]
    _fold(body, rec, ev)
    return True


# One folding function per event type; a kind without one (SIP traces, hold, a newer
# node's GenericEvent, ...) changes nothing but the counts above.


@singledispatch
def _fold(body: events.EventBody, rec: CallRecord, ev: CallEvent) -> None:
    return None


@_fold.register
def _received(body: events.Received, rec: CallRecord, ev: CallEvent) -> None:
    rec.tracking_number = _str(body.tracking_number, 40) or rec.tracking_number
    rec.caller = _str(body.caller, 200)
    rec.caller_name = _str(body.caller_name, 200)
    rec.sip_call_id = _str(body.sip_call_id, 255)
    rec.region = rec.region or (ev.region[:16] if ev.region else None)


@_fold.register
def _resolved(body: events.Resolved, rec: CallRecord, ev: CallEvent) -> None:
    if body.account_id:
        rec.account_id = body.account_id[:40]
    rec.receiving_number_id = _str(body.receiving_number_id, 40)
    if body.region or ev.region:
        rec.region = str(body.region or ev.region)[:16]
    rec.secure_media = body.secure_media


@_fold.register
def _media_allocated(body: events.MediaAllocated, rec: CallRecord, ev: CallEvent) -> None:
    if body.region:
        rec.region = body.region[:16]
    rec.secure_media = body.secure


@_fold.register
def _dialing(body: events.Dialing, rec: CallRecord, ev: CallEvent) -> None:
    _attempt(rec, body.target, ev.ts, dial=True)


@_fold.register
def _attempt_failed(body: events.AttemptFailed, rec: CallRecord, ev: CallEvent) -> None:
    _attempt(rec, body.target, ev.ts, result=body.result or "failed", status=body.sip_status, reason=body.reason)


@_fold.register
def _ring_timeout(body: events.RingTimeout, rec: CallRecord, ev: CallEvent) -> None:
    _attempt(rec, body.target, ev.ts, result="no-answer")


@_fold.register
def _auth_failed(body: events.AuthFailed, rec: CallRecord, ev: CallEvent) -> None:
    _attempt(rec, body.target, ev.ts, result="auth-failed", status=body.status, reason=body.reason)


@_fold.register
def _ringing(body: events.Ringing, rec: CallRecord, ev: CallEvent) -> None:
    if rec.ringing_at is None or to_dt(ev.ts) < aware(rec.ringing_at):  # type: ignore[operator]
        rec.ringing_at = to_dt(ev.ts)


@_fold.register
def _answered(body: events.Answered, rec: CallRecord, ev: CallEvent) -> None:
    rec.answered_at = to_dt(ev.ts)
    rec.pdd_ms = body.pdd_ms
    _attempt(rec, body.target, ev.ts, result="answered", status=200)


@_fold.register
def _transferred(body: events.Transferred, rec: CallRecord, ev: CallEvent) -> None:
    # The client REFERred the call (RFC 3515): the old target is `transferred`, the new one
    # answered; a failed transfer leaves the call where it was.
    if body.ok:
        _attempt(rec, body.from_target, ev.ts, result="transferred", status=202, reason=f"to {body.target}")
        _attempt(rec, body.target, ev.ts, result="answered", status=200)
    else:
        _attempt(rec, body.target, ev.ts, result="failed", status=body.status, reason=body.reason)


@_fold.register
def _dtmf(body: events.Dtmf, rec: CallRecord, ev: CallEvent) -> None:
    key = f"{ev.service}:{ev.node}:{ev.seq}"
    entries = [d for d in (rec.dtmf or []) if d.get("key") != key]
    entries.append({"digit": body.digit[:1], "leg": body.leg, "duration_ms": body.duration_ms, "ts": ev.ts,
                    "key": key})
    entries.sort(key=lambda d: (d["ts"], d["key"]))
    rec.dtmf = entries


@_fold.register
def _media_stats(body: events.MediaStatsReport, rec: CallRecord, ev: CallEvent) -> None:
    if not rec.media:  # the `ended` event's copy, when there is one, is the same
        _media_summary(rec, body, with_call_id=False)


@_fold.register
def _failed(body: events.Failed, rec: CallRecord, ev: CallEvent) -> None:
    if rec.final_kind == "ended":
        return
    _final(rec, ev, "failed", result=body.result, reason=body.reason, sip_status=body.sip_status, duration=None)
    for i, a in enumerate(body.attempts):
        _attempt(rec, a.target, None, result=a.result, status=a.status, reason=a.reason, index=i)


@_fold.register
def _ended(body: events.Ended, rec: CallRecord, ev: CallEvent) -> None:
    _final(rec, ev, "ended", result=body.result, reason=body.reason, by=body.by, duration=body.duration)
    if body.media is not None:
        _media_summary(rec, body.media, with_call_id=True)


@_fold.register
def _lost(body: events.Lost, rec: CallRecord, ev: CallEvent) -> None:
    """The media worker freed a call whose signaling node died: nobody else will end it."""
    if rec.final_kind is not None:
        return  # the node said how the call ended before it died
    _final(rec, ev, "ended", result="lost", reason=body.reason, by="switchboard", duration=None)


def _final(rec: CallRecord, ev: CallEvent, kind: str, *, result: str, reason: str, duration: float | None,
           sip_status: int | None = None, by: str | None = None) -> None:
    rec.final_kind = kind
    rec.ended_at = to_dt(ev.ts)
    result = result or ("completed" if kind == "ended" and rec.answered_at else "failed")
    rec.result = result if result in RESULTS else "failed"
    rec.reason = _str(reason, 255)
    if kind == "ended":
        rec.ended_by = _str(by, 32)
        rec.sip_status = 200 if rec.result == "completed" else (487 if rec.result == "canceled" else rec.sip_status)
    elif sip_status is not None:
        rec.sip_status = sip_status
    if duration is not None and rec.result == "completed":
        rec.duration = float(duration)
    elif rec.answered_at is not None and rec.result == "completed":
        rec.duration = round((to_dt(ev.ts) - aware(rec.answered_at)).total_seconds(), 3)  # type: ignore[operator]
    else:
        rec.duration = 0.0


def _attempt(rec: CallRecord, target: str, ts: float | None, *, dial: bool = False, result: Any = None,
             status: Any = None, reason: Any = None, index: int = 0) -> None:
    """Keep what was said about a target (a dial, an outcome, or a line of the final
    summary) as it came; `attempts()` pairs them up whatever order they arrived in."""
    if not target:
        return
    entry = {"k": "dial" if dial else ("outcome" if ts is not None else "summary"), "target": target[:512],
             "ts": ts, "result": None if result is None else str(result),
             "status": None if status is None else int(status),
             "reason": None if reason is None else str(reason)[:255], "i": index}
    items = [*(rec.targets or []), entry]
    items.sort(key=lambda t: (t.get("k", ""), t.get("ts") is None, t.get("ts") or 0.0, t.get("i", 0),
                              t.get("target", ""), str(t.get("result"))))
    rec.targets = items


def attempts(rec: CallRecord) -> list[dict[str, Any]]:
    """The targets tried, in dialing order: {target, ts, result, status, reason}."""
    raw = rec.targets or []
    dials = sorted((t for t in raw if t.get("k") == "dial"), key=lambda t: t.get("ts") or 0.0)
    out = [{"target": d["target"], "ts": d["ts"], "result": None, "status": None, "reason": None} for d in dials]
    for o in sorted((t for t in raw if t.get("k") == "outcome"), key=lambda t: t.get("ts") or 0.0):
        mine = [a for a in out if a["target"] == o["target"] and (a["ts"] is None or a["ts"] <= o["ts"])]
        if mine:
            a = mine[-1]
        else:
            a = {"target": o["target"], "ts": o["ts"], "result": None, "status": None, "reason": None}
            out.append(a)
        for f in ("result", "status", "reason"):
            if o.get(f) is not None:
                a[f] = o[f]
    for sm in sorted((t for t in raw if t.get("k") == "summary"), key=lambda t: t.get("i", 0)):
        open_ = [a for a in out if a["target"] == sm["target"] and a["result"] is None]
        if open_:
            a = open_[0]
        elif any(a["target"] == sm["target"] for a in out):
            continue  # already known from its own events
        else:
            a = {"target": sm["target"], "ts": None, "result": None, "status": None, "reason": None}
            out.append(a)
        for f in ("result", "status", "reason"):
            if sm.get(f) is not None and a[f] is None:
                a[f] = sm[f]
    out.sort(key=lambda a: (a["ts"] is None, a["ts"] or 0.0))
    return out


# --- the consumer ----------------------------------------------------------------------


async def _owner_of_number(session: AsyncSession, rec: CallRecord) -> None:
    """A call refused before routing for want of capacity (503: rate limit, overload, NATS
    away) never learnt its account: the tracking number dialled tells it, so the customer
    sees the refusal. (A stranger's INVITE, 403, stays nobody's.)"""
    row = (await session.execute(select(TrackingNumber.account_id, TrackingNumber.receiving_number_id)
                                 .where(TrackingNumber.number == rec.tracking_number))).first()
    if row is not None:
        rec.account_id, rec.receiving_number_id = row.account_id, row.receiving_number_id


async def apply_call_events(session: AsyncSession, call_id: str, events: list[CallEvent]) -> tuple[CallRecord, int]:
    """Apply events of one call in the session (not committed). Returns the record and how
    many events changed it."""
    rec = await session.get(CallRecord, call_id, populate_existing=True)
    created = rec is None
    if rec is None:
        rec = new_record(call_id, min(e.ts for e in events))
    was_final = rec.result
    changed = 0
    for ev in events:
        try:
            changed += apply_event(rec, ev)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            # A malformed payload must not hold the call's other events back forever.
            log.warning("call %s: event %s seq %d not applied: %s", call_id, ev.kind, ev.seq, e,
                        extra={"call_id": call_id})
    if rec.account_id is None and rec.tracking_number and rec.result and rec.sip_status == 503:
        await _owner_of_number(session, rec)
    if created:
        session.add(rec)
    if changed:
        await session.flush()
        await enqueue_for_record(session, rec)
        if rec.result and not was_final:
            session.info.setdefault("ended", []).append((rec.result, rec.sip_status))
    return rec, changed


class CallRecorder:
    """The durable consumer that keeps `call_records` (and queues status webhooks)."""

    def __init__(self, bus: Bus, sm: async_sessionmaker, *, durable: str = "config-call-records",  # type: ignore[type-arg]
                 batch: int = 256, ack_wait: float = 30.0, linger: float = 0.1, on_commit: Callable[[], Awaitable[None] | None] | None = None
                 ) -> None:
        self.bus = bus
        self.sm = sm
        self.durable = durable
        self.batch = batch
        self.linger = linger
        self.ack_wait = ack_wait
        self.on_commit = on_commit
        """Called after a commit that queued webhooks (wakes the delivery worker)."""
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self.processed = 0
        """Events acknowledged by this instance (tests, logs)."""
        self.before_ack: Callable[[list[Msg]], Awaitable[None]] | None = None
        """Test hook: runs between the commit and the acks (a crash there must lose nothing)."""

    async def start(self) -> None:
        js = self.bus.nc.jetstream()
        # The SIP traces (most of the stream's bytes) never reach this consumer.
        self._sub = await js.pull_subscribe(
            subjects.call_state_events(), durable=self.durable, stream=subjects.CALLS_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                  ack_wait=self.ack_wait, max_ack_pending=20_000, max_deliver=-1),
        )
        self._task = asyncio.create_task(self._run(), name="call-records")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._sub is not None:
            # Leave the durable consumer in place: the next instance carries on from it.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()  # the inbox only: the durable consumer stays
            self._sub = None

    async def _run(self) -> None:
        while True:
            try:
                msgs = await self._sub.fetch(self.batch, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError, nats.js.errors.FetchTimeoutError):
                continue  # nothing new (nats-py raises either kind of timeout here)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS away: try again shortly
                log.warning("call-record fetch failed: %r", e)
                await asyncio.sleep(1.0)
                continue
            try:
                await self.handle(msgs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call-record batch failed")
                await asyncio.sleep(0.5)
                continue
            if len(msgs) < self.batch and self.linger:
                # Under load, let events gather so that one transaction takes many calls
                # (a record a fraction of a second later costs nobody anything).
                await asyncio.sleep(self.linger)

    async def handle(self, msgs: list[Msg]) -> None:
        by_call: dict[str, list[tuple[Msg, CallEvent]]] = defaultdict(list)
        for m in msgs:
            try:
                ev = CallEvent.model_validate_json(m.data)
            except ValidationError:
                log.warning("unreadable call event on %s: dropped", m.subject)
                CALL_EVENTS.labels("unreadable").inc()
                await _ack(m, term=True)
                continue
            by_call[ev.call_id].append((m, ev))
        # The whole batch in one transaction (one commit for many calls); on a conflict with
        # another instance, call by call with retries.
        if len(by_call) > 1 and self.before_ack is None:
            done, queued = await self._apply_all({cid: [ev for _, ev in items] for cid, items in by_call.items()})
            if done:
                for items in by_call.values():
                    for m, _ in items:
                        await _ack(m)
                    self.processed += len(items)
                if queued and self.on_commit is not None:
                    r = self.on_commit()
                    if r is not None:
                        await r
                return
        queued = False
        for call_id, items in by_call.items():
            try:
                q = await self._apply(call_id, [ev for _, ev in items])
            except Exception as e:
                log.warning("call record %s not updated (%s): will retry", call_id, e, extra={"call_id": call_id})
                CALL_EVENTS.labels("retry").inc(len(items))
                for m, _ in items:
                    await _nak(m, delay=2.0)
                continue
            queued = queued or q
            if self.before_ack is not None:
                await self.before_ack([m for m, _ in items])
            for m, _ in items:
                await _ack(m)
            self.processed += len(items)
        if queued and self.on_commit is not None:
            r = self.on_commit()
            if r is not None:
                await r

    async def _apply_all(self, groups: dict[str, list[CallEvent]]) -> tuple[bool, bool]:
        """(applied, webhooks queued); not applied when another instance wrote one of these
        calls meanwhile (the caller then goes call by call)."""
        total = changed = 0
        async with self.sm() as session:
            try:
                for call_id, events in groups.items():
                    events.sort(key=lambda e: (e.ts, e.seq))
                    _rec, n = await apply_call_events(session, call_id, events)
                    changed += n
                    total += len(events)
                ended = list(session.info.get("ended", []))
                queued = bool(session.info.get("deliveries"))
                await session.commit()
            except (IntegrityError, StaleDataError):
                await session.rollback()
                return False, False
        _count(changed, total, ended)
        return True, queued

    async def _apply(self, call_id: str, events: list[CallEvent], attempts: int = 5) -> bool:
        events.sort(key=lambda e: (e.ts, e.seq))
        for attempt in range(attempts):
            async with self.sm() as session:
                try:
                    _rec, changed = await apply_call_events(session, call_id, events)
                    ended = list(session.info.get("ended", []))
                    queued = bool(session.info.get("deliveries"))
                    await session.commit()
                except (IntegrityError, StaleDataError):
                    # Another instance wrote this call meanwhile: read it again and re-apply.
                    await session.rollback()
                    if attempt == attempts - 1:
                        raise
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
            _count(changed, len(events), ended)
            return queued
        return False


def _count(changed: int, total: int, ended: list[tuple[str, int | None]]) -> None:
    CALL_EVENTS.labels("applied").inc(changed)
    CALL_EVENTS.labels("duplicate").inc(total - changed)
    for result, status in ended:
        CALL_RECORDS.labels(result).inc()
        if result != "completed":
            CALL_FAILURES.labels(result, str(status or 0)).inc()


async def _ack(m: Msg, term: bool = False) -> None:
    try:
        await (m.term() if term else m.ack())
    except Exception as e:  # redelivered later and skipped as a duplicate
        log.debug("ack failed: %s", e)


async def _nak(m: Msg, delay: float) -> None:
    try:
        await m.nak(delay=delay)
    except Exception as e:
        log.debug("nak failed: %s", e)
