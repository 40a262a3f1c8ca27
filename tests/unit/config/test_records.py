"""The pure parts of call records and webhooks: folding events in any order, once each;
the webhook statuses a record implies; signatures; backoff."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

import pytest

from proto import events as pe
from proto.messages import AttemptRecord, CallEvent, LegStats, MediaStats
from services.common.bus import encode
from services.common.events import CallEventPublisher
from services.config.records import apply_event, attempts, gaps, new_record
from services.config.webhooks import backoff, implied_events, sign, verify

T0 = 1_700_000_000.0


def ev(seq: int, body: pe.EventBody, dt: float, node: str = "sig-1", service: str = "signaling") -> CallEvent:
    """An event as the stream holds it: built by the publishers' models, then through JSON."""
    wire = pe.envelope("c1", body, ts=T0 + dt, node=node, service=service, seq=seq).model_dump_json()
    return CallEvent.model_validate_json(wire)


def received(**kw: Any) -> pe.Received:
    return pe.Received(**({"tracking_number": "+15551230001", "caller": "+15550001111", "caller_name": None,
                           "source": "192.0.2.1:5060", "transport": "udp", "sip_call_id": "x@192.0.2.1"} | kw))


def failed(**kw: Any) -> pe.Failed:
    return pe.Failed(**({"sip_status": 404, "reason": "no route", "result": "failed"} | kw))


def ended(**kw: Any) -> pe.Ended:
    return pe.Ended(**({"by": "caller", "reason": "caller cancelled", "duration": 0, "result": "canceled"} | kw))


CALL = [
    ev(1, received(), 0.0),
    ev(2, pe.Resolved(ok=True, account_id="acc_1", receiving_number_id="rn_1", targets=[], ring_timeout=30,
                      region="us1", secure_media=False), 0.01),
    ev(3, pe.Dialing(target="sip:a@x", transport="udp", dest="192.0.2.7:5060", candidates=1), 0.02),
    ev(4, pe.AttemptFailed(target="sip:a@x", sip_status=503, reason="Service Unavailable", result="server-error"),
       0.5),
    ev(5, pe.Dialing(target="sip:b@y", transport="udp", dest="192.0.2.8:5060", candidates=1), 0.6),
    ev(6, pe.Ringing(status=180, early_media=False), 1.0),
    ev(7, pe.Answered(target="sip:b@y", secure=False, pdd_ms=1400), 2.0),
    ev(1, pe.Dtmf(digit="9", leg="a", duration_ms=100), 3.0, node="m-1", service="media"),
    ev(2, pe.Dtmf(digit="#", leg="b", duration_ms=100), 4.0, node="m-1", service="media"),
    ev(8, pe.Ended(by="client", reason="normal clearing", duration=10.0, result="completed",
                   media=MediaStats(call_id="c1", worker_id="m-1", a=LegStats(lost=1, jitter_ms=2.0, srtp_failures=0),
                                    b=LegStats(lost=2, jitter_ms=5.0, srtp_failures=1), mos=4.1)), 12.0),
]


def fold(events: list[CallEvent]) -> Any:
    rec = new_record("c1", events[0].ts)
    for e in events:
        apply_event(rec, e)
    return rec


def summary(rec: Any) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in (
        "account_id", "tracking_number", "caller", "region", "node", "started_at", "ringing_at", "answered_at",
        "ended_at", "duration", "result", "sip_status", "reason", "pdd_ms", "targets", "mos", "packets_lost",
        "jitter_ms", "srtp_failures", "dtmf", "event_count")} | {"attempts": attempts(rec)}


def test_a_call_in_order() -> None:
    rec = fold(CALL)
    assert rec.result == "completed" and rec.sip_status == 200 and rec.duration == 10.0
    assert rec.account_id == "acc_1" and rec.tracking_number == "+15551230001" and rec.node == "sig-1"
    assert [(t["target"], t["result"], t["status"]) for t in attempts(rec)] == [
        ("sip:a@x", "server-error", 503), ("sip:b@y", "answered", 200)]
    assert (rec.packets_lost, rec.jitter_ms, rec.srtp_failures, rec.mos) == (3, 5.0, 1, 4.1)
    assert "".join(d["digit"] for d in rec.dtmf) == "9#"
    assert gaps(rec.applied) == {}


def test_any_order_and_any_duplicates_give_the_same_record() -> None:
    expected = summary(fold(CALL))
    rnd = random.Random(7)
    for _ in range(200):
        events = CALL + rnd.sample(CALL, k=rnd.randint(0, len(CALL)))
        rnd.shuffle(events)
        assert summary(fold(events)) == expected


def test_duplicates_do_not_change_anything() -> None:
    rec = fold(CALL)
    before = summary(rec)
    assert not any(apply_event(rec, e) for e in CALL)
    assert summary(rec) == before


def test_gaps_per_node() -> None:
    rec = fold([e for e in CALL if not (e.service == "signaling" and e.seq in (3, 4))])
    assert gaps(rec.applied) == {"signaling:sig-1": [3, 4]}
    # The media node numbering on its own: its 1, 2 are not a gap of the signaling node.
    assert rec.applied["media:m-1"] == [1, 2]


def test_failed_without_routing_and_ended_wins_over_failed() -> None:
    rec = fold([ev(1, failed(), 0.0)])
    assert (rec.result, rec.sip_status, rec.duration, rec.account_id) == ("failed", 404, 0.0, None)
    rec = fold([ev(1, received(), 0.0), ev(3, ended(), 2.0),
                ev(2, failed(sip_status=487, reason="x", result="canceled"), 1.0)])
    assert rec.final_kind == "ended" and rec.result == "canceled" and rec.sip_status == 487


def test_unknown_result_is_failed() -> None:
    rec = fold([ev(1, failed(sip_status=500, result="exploded"), 0.0)])
    assert rec.result == "failed"


def test_implied_webhook_events() -> None:
    rec = fold(CALL)
    implied = implied_events(rec)
    assert [e for e, *_ in sorted(implied, key=lambda i: i[2])] == [
        "initiated", "ringing", "answered", "dtmf", "dtmf", "completed"]
    body = {e: b for e, _k, _o, b in implied}
    assert body["completed"]["result"] == "completed" and body["completed"]["duration"] == 10.0
    assert body["initiated"]["tracking_number"] == "+15551230001"
    # No account yet: nothing to send anyone.
    assert implied_events(fold(CALL[:1])) == []


def test_completed_goes_after_dtmf_whatever_the_clocks() -> None:
    late = [e if e.kind != "dtmf" else e.model_copy(update={"ts": T0 + 50}) for e in CALL]
    order = [e for e, *_ in sorted(implied_events(fold(late)), key=lambda i: i[2])]
    assert order[-1] == "completed"


def test_signature() -> None:
    body = b'{"event":"completed"}'
    t = int(time.time())
    header = sign("s3cret-s3cret-s3cret", body, t)
    assert header.startswith(f"t={t},v1=") and len(header.split("v1=")[1]) == 64
    assert verify("s3cret-s3cret-s3cret", body, header)
    assert not verify("s3cret-s3cret-s3cret", body + b" ", header)
    assert not verify("other", body, header)
    assert not verify("s3cret-s3cret-s3cret", body, sign("s3cret-s3cret-s3cret", body, t - 3600))
    assert not verify("s3cret-s3cret-s3cret", body, "garbage")


def test_backoff() -> None:
    assert [backoff(n, 10, 3600) for n in range(1, 12)] == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    # Retried for a day: about 30 attempts at these defaults.
    total = list(itertools.accumulate(backoff(n, 10, 3600) for n in range(1, 40)))
    assert sum(1 for t in total if t <= 24 * 3600) == 31


# --- publisher -> JSON -> records -> webhooks: every field a consumer reads ---------------


class FakeBus:
    """Keeps what the publishers would put on NATS, as bytes."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def publish(self, subject: str, msg: Any) -> None:
        self.sent.append(encode(msg))

    connected = True

    async def calls_stream_exists(self) -> bool:
        return True

    async def publish_acked(self, subject: str, msg: Any, msg_id: str, timeout: float = 2.0) -> bool:
        await self.publish(subject, msg)
        return True


async def test_round_trip_from_the_publishers_models_to_the_record_and_its_webhooks() -> None:
    """Each field a consumer reads comes from the model the publisher filled: a field renamed
    on either side (or a key renamed on the wire) changes an assertion below."""
    bus = FakeBus()
    sig = CallEventPublisher(bus, "signaling", "us1", "sig-1")  # type: ignore[arg-type]
    med = CallEventPublisher(bus, "media", "us2", "media-9")  # type: ignore[arg-type]
    a, b, c = "sip:a@pbx", "sip:b@pbx", "sips:c@pbx"
    await sig.emit("c1", pe.SipIn(transport="udp", first_line="INVITE sip:x SIP/2.0", src="192.0.2.1:5060",
                                  dst="192.0.2.2:5060", message="INVITE sip:x SIP/2.0\r\n\r\n"))
    await sig.emit("c1", pe.Received(tracking_number="+15551230001", caller="+15550001111", caller_name="Alice",
                                     source="192.0.2.1:5060", transport="udp", sip_call_id="x@192.0.2.1"))
    await sig.emit("c1", pe.Resolved(ok=True, account_id="acc_1", receiving_number_id="rn_1",
                                     targets=[pe.TargetSummary(uri=a)], ring_timeout=20, region="us1",
                                     secure_media=False))
    await sig.emit("c1", pe.MediaFailover(region="us1", reason="no worker"))
    await sig.emit("c1", pe.MediaAllocated(worker_id="media-9", region="us2", failed_over=True, a_port=10000,
                                           b_port=10002, secure=True))
    await sig.emit("c1", pe.OriginatedRemotely(region="us2", node="sig-us2"))
    await sig.emit("c1", pe.Dialing(target=a, transport="udp", dest="192.0.2.5:5060", candidates=1))
    await sig.emit("c1", pe.AttemptFailed(target=a, sip_status=503, reason="Service Unavailable",
                                          result="server-error", attempts=["udp:192.0.2.5:5060 503"]))
    await sig.emit("c1", pe.Dialing(target=b, transport="tcp", dest="192.0.2.6:5060", candidates=1))
    await sig.emit("c1", pe.Challenged(target=b, status=401, realm="pbx", algorithm="MD5", stale=False))
    await sig.emit("c1", pe.AuthFailed(target=b, status=401, reason="credentials refused"))
    await sig.emit("c1", pe.Dialing(target=c, transport="tls", dest="192.0.2.7:5061", candidates=1))
    await sig.emit("c1", pe.Ringing(status=180, early_media=False))
    await sig.emit("c1", pe.RingTimeout(target=c, rang=True))
    await sig.emit("c1", pe.Dialing(target=a, transport="udp", dest="192.0.2.5:5060", candidates=1))
    await sig.emit("c1", pe.NatDetected(leg="b", sdp_address="192.168.77.10", source="192.0.2.5:5060"))
    await sig.emit("c1", pe.Answered(target=a, secure=True, pdd_ms=1234))
    await sig.emit("c1", pe.SendDigits(digits="1"))
    await sig.emit("c1", pe.SendDigitsFailed(digits="2", reason="no"))
    await med.emit("c1", pe.Dtmf(digit="7", leg="b", duration_ms=140))
    await sig.emit("c1", pe.Hold(leg="a", method="INVITE"))
    await sig.emit("c1", pe.MediaRefresh(leg="a", method="UPDATE"))
    await med.emit("c1", pe.MediaTimeout(seconds=30.0))
    await sig.emit("c1", pe.GenericEvent(kind="parked", payload={"to": "sip:d@pbx"}))
    await sig.emit("c1", pe.Transferred(from_target=a, target="sip:d@pbx", ok=False, status=486, reason="Busy"))
    stats = MediaStats(call_id="c1", worker_id="media-9", a=LegStats(lost=3, jitter_ms=4.0, srtp_failures=1),
                       b=LegStats(lost=4, jitter_ms=6.5, packets_in=99, nat=True, latched="192.0.2.5:40000"),
                       mos=4.2, duration=12.0)
    await med.emit("c1", pe.MediaStatsReport.of(stats))
    await sig.emit("c1", pe.Ended(by="callee", reason="normal clearing", duration=9.5, result="completed",
                                  media=stats))
    # A worker that thought the node lost, after the node said how the call ended: ignored.
    await med.emit("c1", pe.Lost(node="sig-1", reason="signaling node sig-1 lost"))
    await sig.emit("c1", pe.SipOut(transport="udp", first_line="SIP/2.0 200 OK", src="192.0.2.2:5060",
                                   dst="192.0.2.1:5060", message="SIP/2.0 200 OK\r\n\r\n"))
    evs = [CallEvent.model_validate_json(raw) for raw in bus.sent]
    assert {e.kind for e in evs} == set(pe.KINDS) - {"failed"} | {"parked"}

    rec = fold(evs)
    assert rec.event_count == len(evs)  # none dropped, the unknown kind included
    assert (rec.tracking_number, rec.caller, rec.caller_name, rec.sip_call_id) == (
        "+15551230001", "+15550001111", "Alice", "x@192.0.2.1")
    assert (rec.account_id, rec.receiving_number_id, rec.region, rec.secure_media, rec.node) == (
        "acc_1", "rn_1", "us2", True, "sig-1")
    by_kind = {e.kind: e for e in evs}
    assert rec.ringing_at.timestamp() == pytest.approx(by_kind["ringing"].ts, abs=1e-5)
    assert rec.answered_at.timestamp() == pytest.approx(by_kind["answered"].ts, abs=1e-5) and rec.pdd_ms == 1234
    assert [(t["target"], t["result"], t["status"], t["reason"]) for t in attempts(rec)] == [
        (a, "server-error", 503, "Service Unavailable"), (b, "auth-failed", 401, "credentials refused"),
        (c, "no-answer", None, None), (a, "answered", 200, None),
        ("sip:d@pbx", "failed", 486, "Busy")]  # a transfer to it failed: the call stayed on a
    assert [(d["digit"], d["leg"], d["duration_ms"]) for d in rec.dtmf] == [("7", "b", 140)]
    assert (rec.result, rec.ended_by, rec.reason, rec.duration, rec.sip_status) == (
        "completed", "callee", "normal clearing", 9.5, 200)
    assert (rec.mos, rec.packets_lost, rec.jitter_ms, rec.srtp_failures) == (4.2, 7, 6.5, 1)
    assert rec.media["worker_id"] == "media-9" and rec.media["b"]["packets_in"] == 99
    # The record says the client was behind a NAT and where its media latched.
    assert (rec.media["b"]["nat"], rec.media["b"]["latched"]) == (True, "192.0.2.5:40000")

    body = {e: b for e, _k, _o, b in implied_events(rec)}
    assert (body["initiated"]["tracking_number"], body["initiated"]["caller"], body["initiated"]["caller_name"],
            body["initiated"]["receiving_number_id"], body["initiated"]["account_id"]) == (
        "+15551230001", "+15550001111", "Alice", "rn_1", "acc_1")
    assert body["ringing"]["ts"] == pytest.approx(by_kind["ringing"].ts, abs=1e-5) and body["answered"]["pdd_ms"] == 1234
    assert (body["dtmf"]["digit"], body["dtmf"]["leg"], body["dtmf"]["duration_ms"]) == ("7", "b", 140)
    assert (body["completed"]["result"], body["completed"]["duration"], body["completed"]["sip_status"],
            body["completed"]["reason"]) == ("completed", 9.5, 200, "normal clearing")

    # A call refused before any answer: `failed`, with its summary of attempts.
    bus.sent.clear()
    await sig.emit("c2", pe.Received(tracking_number="+15551230001", caller=None, caller_name=None,
                                     source="192.0.2.1:5060", transport="udp", sip_call_id="y@192.0.2.1"))
    await sig.emit("c2", pe.Failed(sip_status=486, reason="Busy Here", result="busy",
                                   attempts=[AttemptRecord(target=a, result="busy", status=486, reason="Busy Here")]))
    rec = fold([CallEvent.model_validate_json(raw) for raw in bus.sent])
    assert (rec.result, rec.sip_status, rec.reason, rec.duration) == ("busy", 486, "Busy Here", 0.0)
    assert [(t["target"], t["result"], t["status"], t["reason"]) for t in attempts(rec)] == [
        (a, "busy", 486, "Busy Here")]


def test_media_stats_without_ended_fill_the_media_summary() -> None:
    stats = MediaStats(call_id="c1", worker_id="m-1", a=LegStats(lost=1, jitter_ms=1.5), b=LegStats(lost=2), mos=3.9)
    rec = fold([ev(1, received(), 0.0), ev(1, pe.MediaStatsReport.of(stats), 1.0, node="m-1", service="media")])
    assert (rec.mos, rec.packets_lost, rec.jitter_ms, rec.media["worker_id"]) == (3.9, 3, 1.5, "m-1")
    assert "call_id" not in rec.media  # as the media_stats payload carries it


def test_an_event_with_a_malformed_payload_is_not_applied() -> None:
    rec = fold([ev(1, received(), 0.0)])
    bad = CallEvent(call_id="c1", kind="answered", ts=T0 + 1, node="sig-1", service="signaling", seq=2,
                    payload={"target": "sip:a@x", "secure": "perhaps", "pdd_ms": 1})
    with pytest.raises(ValueError):
        apply_event(rec, bad)
    assert rec.answered_at is None and rec.event_count == 1 and rec.applied == {"signaling:sig-1": [1]}


def test_a_call_whose_signaling_node_died_is_closed_as_lost_by_the_media_workers_event() -> None:
    answered = [e for e in CALL if e.kind != "ended"]
    lost = ev(3, pe.Lost(node="sig-1", reason="signaling node sig-1 lost"), 60.0, node="m-1", service="media")
    rec = fold([*answered, lost])
    assert (rec.result, rec.reason, rec.ended_by, rec.node) == ("lost", "signaling node sig-1 lost", "switchboard",
                                                                "sig-1")
    assert rec.ended_at is not None


def test_a_transfer_is_in_the_record_and_its_webhooks() -> None:
    """REFER (issue 15): the first target is `transferred`, the new one answered; a
    `transferred` webhook, and the completed one lists the targets."""
    call = [*CALL[:-1],
            ev(20, pe.Dialing(target="sip:d@x", transport="udp", dest="192.0.2.9:5060", candidates=1), 3.0),
            ev(21, pe.Transferred(from_target="sip:b@y", target="sip:d@x", referred_by="<sip:b@y>"), 3.5),
            CALL[-1]]
    rec = fold(call)
    assert [(t["target"], t["result"]) for t in attempts(rec)][-2:] == [("sip:b@y", "transferred"),
                                                                        ("sip:d@x", "answered")]
    implied = {e: body for e, _, _, body in implied_events(rec)}
    assert implied["transferred"]["from_target"] == "sip:b@y" and implied["transferred"]["target"] == "sip:d@x"
    assert implied["completed"]["targets"][-1] == {"target": "sip:d@x", "result": "answered", "status": 200}
