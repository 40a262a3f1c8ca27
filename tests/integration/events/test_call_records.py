"""Call records from the CALLS stream: one record per call whatever the consumer goes
through, /v1/calls with filters and scoping, /v1/calls/{id}/events from the stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import func, select

from proto import events as pe
from proto.messages import AttemptRecord, CallEvent
from services.config.db.models import CallRecord
from services.config.records import attempts

from .conftest import TRACKING, CallEnv, full_call, refused_call

KINDS_IN_ORDER = ["sip_in", "received", "sip_out", "resolved", "media_allocated", "dialing", "sip_out", "challenged",
                  "sip_out", "ringing", "ringing", "answered", "dtmf", "dtmf", "sip_in", "ended"]


def state(events: list[CallEvent]) -> list[CallEvent]:
    """The events the records consumer receives: all but the SIP traces (call.<id>.sip.*)."""
    return [e for e in events if e.kind not in ("sip_in", "sip_out")]


async def _provision(calls: CallEnv, number: str = TRACKING) -> tuple[str, dict[str, str]]:
    acc, headers = await calls.env.account()
    rn = await calls.env.receiving(headers)
    await calls.env.tracking(headers, number, rn["id"])
    return acc, headers


def _cid() -> str:
    return uuid.uuid4().hex


async def test_full_call_makes_one_complete_record(calls: CallEnv) -> None:
    acc, headers = await _provision(calls)
    cid = _cid()
    events = full_call(cid, acc)
    await calls.recorder()
    await calls.publish(events)
    rec = await calls.wait_record(cid, lambda r: r.result is not None and r.event_count == len(state(events)))

    r = await calls.client.get("/v1/calls", params={"number": TRACKING}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None and len(body["items"]) == 1
    c = body["items"][0]
    assert c["id"] == cid and c["account_id"] == acc and c["tracking_number"] == TRACKING
    assert c["result"] == "completed" and c["sip_status"] == 200 and c["status"] == "ended"
    assert c["duration"] == 42.5
    assert c["caller"] == "+15550001111" and c["caller_name"] == "Alice"
    assert c["region"] == "us1" and c["node"] == "sig-1" and c["receiving_number_id"] == "rn_0001"
    assert c["pdd_ms"] == 2970 and c["ended_by"] == "caller"
    t0 = events[0].ts
    started = c["started_at"]
    assert abs(_parse(started) - state(events)[0].ts) < 0.001  # `received`: SIP traces are not read
    assert abs(_parse(c["ringing_at"]) - (t0 + 0.5)) < 0.001  # the first 180, not the second
    assert abs(_parse(c["answered_at"]) - (t0 + 3.0)) < 0.001
    assert abs(_parse(c["ended_at"]) - (t0 + 45.5)) < 0.001
    assert [(t["target"], t["result"], t["status"]) for t in c["targets"]] == [
        ("sip:100@pbx.example.com;transport=tcp", "answered", 200)]
    assert c["media"]["mos"] == 4.3 and c["media"]["packets_lost"] == 9 and c["media"]["jitter_ms"] == 9.0
    assert c["media"]["srtp_failures"] == 0 and c["media"]["a"]["packets_in"] == 2000
    assert c["dtmf_digits"] == "12" and [d["leg"] for d in c["dtmf"]] == ["a", "a"]
    assert c["missing_events"] == {}
    signaling = [e for e in state(events) if e.service == "signaling"]
    assert rec.applied == {"signaling:sig-1": list(range(1, len(signaling) + 1)), "media:media-1": [1, 2]}

    r = await calls.client.get(f"/v1/calls/{cid}", headers=headers)
    assert r.status_code == 200 and r.json()["id"] == cid

    r = await calls.client.get(f"/v1/calls/{cid}/events", headers=headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [e["kind"] for e in items] == KINDS_IN_ORDER
    # Complete and in order: no gap on the signaling node (the SIP traces are seq 0).
    sig = [e["seq"] for e in items if e["service"] == "signaling" and not e["kind"].startswith("sip_")]
    assert sig == list(range(1, len(sig) + 1)) and len(sig) == len(signaling)
    assert {e["seq"] for e in items if e["kind"].startswith("sip_")} == {0}
    assert [e["seq"] for e in items if e["service"] == "media"] == [1, 2]
    assert items[0]["payload"]["message"].startswith("INVITE ") and set(items[0]) >= {"seq", "kind", "ts",
                                                                                        "service", "node", "payload"}
    # No credentials in the trace.
    assert "[redacted]" in items[8]["payload"]["message"]


def _parse(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


async def test_scoping(calls: CallEnv) -> None:
    acc, headers = await _provision(calls)
    _other, other_headers = await calls.env.account("Other")
    cid = _cid()
    await calls.recorder()
    await calls.publish(full_call(cid, acc))
    await calls.wait_record(cid, lambda r: r.result is not None)

    for path in (f"/v1/calls/{cid}", f"/v1/calls/{cid}/events", "/v1/calls/nope", "/v1/calls/nope/events",
                 "/v1/calls/a.b/events"):
        r = await calls.client.get(path, headers=other_headers)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await calls.client.get("/v1/calls", headers=other_headers)
    assert r.status_code == 200 and r.json()["items"] == []
    for path in ("/v1/calls", f"/v1/calls/{cid}", f"/v1/calls/{cid}/events"):
        assert (await calls.client.get(path)).status_code == 401
    # The admin sees every call.
    r = await calls.client.get(f"/v1/calls/{cid}/events", headers=calls.env.admin())
    assert r.status_code == 200 and len(r.json()["items"]) == len(KINDS_IN_ORDER)


async def test_call_refused_before_routing_has_no_account(calls: CallEnv) -> None:
    _acc, headers = await _provision(calls)
    cid = _cid()
    await calls.recorder()
    await calls.publish(refused_call(cid))
    rec = await calls.wait_record(cid, lambda r: r.result is not None)
    assert rec.account_id is None and rec.result == "failed" and rec.sip_status == 403 and rec.duration == 0.0
    assert (await calls.client.get(f"/v1/calls/{cid}", headers=headers)).status_code == 404
    assert (await calls.client.get("/v1/calls", headers=headers)).json()["items"] == []
    r = await calls.client.get(f"/v1/calls/{cid}", headers=calls.env.admin())
    assert r.status_code == 200 and r.json()["reason"] == "198.51.100.7 is not a carrier trunk"


async def test_duplicate_events_make_one_record(calls: CallEnv) -> None:
    acc, _ = await _provision(calls)
    cid = _cid()
    events = full_call(cid, acc, digits="123")
    await calls.recorder()
    # Every event twice, and the whole call once more afterwards.
    await calls.publish([e for ev in events for e in (ev, ev)])
    await calls.publish(events)
    await asyncio.sleep(0.3)
    rec = await calls.wait_record(cid, lambda r: r.result is not None and r.event_count == len(state(events)))
    await asyncio.sleep(0.5)  # let the consumer go through every copy
    rec = await calls.record(cid)
    assert rec is not None
    assert await calls.count_records(cid) == 1
    assert rec.event_count == len(state(events))
    assert "".join(d["digit"] for d in rec.dtmf) == "123"
    assert len(attempts(rec)) == 1


async def test_consumer_killed_mid_stream_still_one_record(calls: CallEnv) -> None:
    """The first consumer commits a batch and dies before acknowledging it (the worst
    moment); a second one on the same durable carries on: one record, nothing twice."""
    acc, headers = await _provision(calls)
    cid = _cid()
    events = full_call(cid, acc, digits="4567")
    half = len(events) // 2
    await calls.publish(events[:half])
    first = await calls.recorder(ack_wait=1.0, start=False)
    died = asyncio.Event()

    async def crash(_msgs: list[Msg]) -> None:
        died.set()
        raise RuntimeError("killed between commit and ack")

    first.before_ack = crash
    await first.start()
    await asyncio.wait_for(died.wait(), 10)
    await first.stop()  # killed: nothing acknowledged
    rec = await calls.record(cid)
    assert rec is not None and rec.result is None and rec.event_count == len(state(events[:half]))

    await calls.publish(events[half:])
    second = await calls.recorder(ack_wait=1.0)
    rec = await calls.wait_record(cid, lambda r: r.result is not None, timeout=15)
    # The first half comes again after ack_wait: skipped as already applied.
    deadline = time.monotonic() + 10
    while second.processed < len(state(events)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert second.processed == len(state(events))
    rec = await calls.record(cid)
    assert rec is not None
    assert await calls.count_records(cid) == 1
    assert rec.event_count == len(state(events))
    assert "".join(d["digit"] for d in rec.dtmf) == "4567"
    r = await calls.client.get("/v1/calls", params={"number": TRACKING}, headers=headers)
    assert [c["result"] for c in r.json()["items"]] == ["completed"]


async def test_many_calls_two_consumers_filters_and_pages(calls: CallEnv) -> None:
    """Two instances on one durable share the work; each call still has one record."""
    acc, headers = await _provision(calls)
    rn = (await calls.client.get("/v1/receiving-numbers", headers=headers)).json()["items"][0]
    await calls.env.tracking(headers, "+15551230002", rn["id"])
    await calls.recorder()
    await calls.recorder()
    base = time.time() - 3600
    ids = []
    evs: list[Any] = []
    for i in range(30):
        cid = f"{i:04d}" + _cid()[:28]
        ids.append(cid)
        number = TRACKING if i % 3 else "+15551230002"
        if i % 5 == 0:
            evs += [e.model_copy(update={"payload": {**e.payload, "tracking_number": number}})
                    if e.kind == "received" else e for e in refused_call(cid, t0=base + i * 10)]
            # a refused call is account-less: it must not show up in the account's list
        else:
            evs += full_call(cid, acc, number=number, t0=base + i * 10)
    await calls.publish(evs)
    deadline = time.monotonic() + 20
    async with calls.env.ctx.sessionmaker() as s:
        while True:
            done = (await s.execute(select(func.count()).select_from(CallRecord)
                                    .where(CallRecord.result.is_not(None)))).scalar_one()
            if done == 30 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
            s.expire_all()
    assert done == 30
    assert sum(r.processed for r in calls.recorders) == len(state(evs))
    async with calls.env.ctx.sessionmaker() as s:
        assert (await s.execute(select(func.count()).select_from(CallRecord))).scalar_one() == 30

    # Newest first, pages of 7, no duplicate, no gap.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        r = await calls.client.get("/v1/calls", params=params, headers=headers)
        assert r.status_code == 200, r.text
        seen += [c["id"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    expected = [c for i, c in enumerate(ids) if i % 5][::-1]
    assert seen == expected

    r = await calls.client.get("/v1/calls", params={"number": "+15551230002", "limit": 200}, headers=headers)
    assert {c["id"] for c in r.json()["items"]} == {c for i, c in enumerate(ids) if i % 3 == 0 and i % 5}
    from datetime import UTC, datetime

    frm = datetime.fromtimestamp(base + 100, UTC).isoformat()
    to = datetime.fromtimestamp(base + 200, UTC).isoformat()
    r = await calls.client.get("/v1/calls", params={"from": frm, "to": to}, headers=headers)
    assert [c["id"] for c in r.json()["items"]] == [ids[i] for i in range(19, 9, -1) if i % 5]
    r = await calls.client.get("/v1/calls", params={"result": "failed"}, headers=calls.env.admin())
    assert len(r.json()["items"]) == 6
    r = await calls.client.get("/v1/calls", params={"result": "busy"}, headers=headers)
    assert r.json()["items"] == []
    r = await calls.client.get("/v1/calls", params={"result": "bogus"}, headers=headers)
    assert r.status_code == 422
    r = await calls.client.get("/v1/calls", params={"cursor": "garbage"}, headers=headers)
    assert r.status_code == 422


async def test_busy_and_canceled_calls(calls: CallEnv) -> None:
    acc, headers = await _provision(calls)
    await calls.recorder()
    busy, canceled = _cid(), _cid()
    t = time.time() - 30
    target = "sip:100@pbx.example.com"
    def ev(cid: str, seq: int, body: pe.EventBody) -> CallEvent:
        return pe.envelope(cid, body, ts=t + seq * 0.01, node="sig-1", service="signaling", seq=seq)

    def received() -> pe.Received:
        return pe.Received(tracking_number=TRACKING, caller="+15550001111", caller_name=None,
                           source="10.0.0.9:5060", transport="udp", sip_call_id="x@10.0.0.9")

    def resolved() -> pe.Resolved:
        return pe.Resolved(ok=True, account_id=acc, receiving_number_id="rn_1", targets=[], ring_timeout=20,
                           region=None, secure_media=False)

    dialing = pe.Dialing(target=target, transport="udp", dest="192.0.2.5:5060", candidates=1)
    await calls.publish([
        ev(busy, 1, received()),
        ev(busy, 2, resolved()),
        ev(busy, 3, dialing),
        ev(busy, 4, pe.AttemptFailed(target=target, sip_status=486, reason="Busy Here", result="busy")),
        ev(busy, 5, pe.Failed(sip_status=486, reason="Busy Here", result="busy",
                              attempts=[AttemptRecord(target=target, result="busy", status=486, reason="Busy Here")])),
        ev(canceled, 1, received()),
        ev(canceled, 2, resolved()),
        ev(canceled, 3, dialing),
        ev(canceled, 4, pe.Ringing(status=180, early_media=False)),
        ev(canceled, 6, pe.Ended(by="caller", reason="caller cancelled", duration=0, result="canceled")),
    ])
    b = await calls.wait_record(busy, lambda r: r.result is not None)
    c = await calls.wait_record(canceled, lambda r: r.result is not None)
    assert (b.result, b.sip_status, b.duration) == ("busy", 486, 0.0)
    assert attempts(b) == [{"target": target, "ts": t + 0.03, "result": "busy", "status": 486, "reason": "Busy Here"}]
    assert (c.result, c.sip_status, c.duration, c.answered_at) == ("canceled", 487, 0.0, None)
    r = await calls.client.get(f"/v1/calls/{canceled}", headers=headers)
    assert r.json()["missing_events"] == {"signaling:sig-1": [5]}  # seq 5 never arrived: a gap
