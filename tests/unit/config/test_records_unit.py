"""The pure parts of call records and webhooks: folding events in any order, once each;
the webhook statuses a record implies; signatures; backoff."""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

from proto.messages import CallEvent
from services.config.records import apply_event, attempts, gaps, new_record
from services.config.webhooks import backoff, implied_events, sign, verify

T0 = 1_700_000_000.0


def ev(seq: int, kind: str, dt: float, node: str = "sig-1", service: str = "signaling", **p: Any) -> CallEvent:
    return CallEvent(call_id="c1", kind=kind, ts=T0 + dt, node=node, service=service, seq=seq, payload=p)


CALL = [
    ev(1, "received", 0.0, tracking_number="+15551230001", caller="+15550001111"),
    ev(2, "resolved", 0.01, account_id="acc_1", receiving_number_id="rn_1", region="us1"),
    ev(3, "dialing", 0.02, target="sip:a@x"),
    ev(4, "attempt_failed", 0.5, target="sip:a@x", sip_status=503, reason="Service Unavailable",
       result="server-error"),
    ev(5, "dialing", 0.6, target="sip:b@y"),
    ev(6, "ringing", 1.0, status=180),
    ev(7, "answered", 2.0, target="sip:b@y", pdd_ms=1400),
    ev(1, "dtmf", 3.0, node="m-1", service="media", digit="9", leg="a", duration_ms=100),
    ev(2, "dtmf", 4.0, node="m-1", service="media", digit="#", leg="b", duration_ms=100),
    ev(8, "ended", 12.0, by="client", reason="normal clearing", duration=10.0, result="completed",
       media={"a": {"lost": 1, "jitter_ms": 2.0, "srtp_failures": 0}, "b": {"lost": 2, "jitter_ms": 5.0,
                                                                          "srtp_failures": 1}, "mos": 4.1}),
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
    rec = fold([ev(1, "failed", 0.0, sip_status=404, reason="no route", result="failed")])
    assert (rec.result, rec.sip_status, rec.duration, rec.account_id) == ("failed", 404, 0.0, None)
    rec = fold([ev(1, "received", 0.0), ev(3, "ended", 2.0, result="canceled", by="caller", duration=0),
                ev(2, "failed", 1.0, sip_status=487, reason="x", result="canceled")])
    assert rec.final_kind == "ended" and rec.result == "canceled" and rec.sip_status == 487


def test_unknown_result_is_failed() -> None:
    rec = fold([ev(1, "failed", 0.0, sip_status=500, result="exploded")])
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
