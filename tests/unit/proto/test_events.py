"""The call event models are the one definition of each kind's payload.

GOLDEN holds one payload per kind exactly as the CALLS stream keeps it (the keys the
publishers wrote before the models existed, so events stored then must still read). A key
renamed or dropped in a model fails `test_stored_payloads_still_read`; a kind added to the
models without a golden payload fails `test_every_kind_has_a_golden_payload`."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from proto import events as pe
from proto import subjects
from proto.messages import CallEvent
from services.common.bus import encode
from services.common.events import CallEventPublisher

LEG = {"schema_version": 1, "packets_in": 2000, "packets_out": 1990, "bytes_in": 344000, "bytes_out": 342280,
       "lost": 7, "jitter_ms": 3.5, "srtp_failures": 0, "dropped": 0, "latched": "192.0.2.9:40000"}
TARGET = "sip:100@pbx.example.com;transport=tcp"
INVITE = "INVITE sip:+15551230001@10.0.0.1 SIP/2.0\r\nCall-ID: c1@10.0.0.9\r\n\r\n"

GOLDEN: dict[str, dict[str, Any]] = {
    "received": {"tracking_number": "+15551230001", "caller": "+15550001111", "caller_name": "Alice",
                 "source": "10.0.0.9:5060", "transport": "udp", "sip_call_id": "c1@10.0.0.9"},
    "resolved": {"ok": True, "account_id": "acc_1", "receiving_number_id": "rn_1",
                 "targets": [{"uri": TARGET, "transport": "tcp", "priority": 10, "weight": 20, "secure_media": False,
                              "has_credentials": True}],
                 "ring_timeout": 20.0, "region": "us1", "secure_media": False},
    "originated_remotely": {"region": "us2", "node": "signaling-us2"},
    "media_failover": {"region": "us1", "reason": "no media worker answered"},
    "media_allocated": {"worker_id": "media-1", "region": "us1", "failed_over": True, "a_port": 10000,
                        "b_port": 10002, "secure": True},
    "answered": {"target": TARGET, "secure": True, "pdd_ms": 2970},
    "hold": {"leg": "a", "method": "INVITE"},
    "transferred": {"from_target": TARGET, "target": "sip:200@pbx.example.com", "ok": True, "status": 200,
                    "reason": "", "referred_by": "<sip:100@pbx.example.com>"},
    "media_refresh": {"leg": "b", "method": "UPDATE"},
    "failed": {"sip_status": 486, "reason": "Busy Here", "result": "busy",
               "attempts": [{"target": TARGET, "result": "busy", "status": 486, "reason": "Busy Here"}]},
    "ended": {"by": "callee", "reason": "normal clearing", "duration": 42.5, "result": "completed",
              "media": {"call_id": "c1", "worker_id": "media-1", "a": LEG, "b": {**LEG, "lost": 2}, "mos": 4.3,
                        "duration": 45.5}},
    "dialing": {"target": TARGET, "transport": "tcp", "dest": "192.0.2.5:5060", "candidates": 2},
    "challenged": {"target": TARGET, "status": 407, "realm": "pbx", "algorithm": "SHA-256", "stale": True},
    "auth_failed": {"target": TARGET, "status": 401, "reason": "credentials refused for realm 'pbx'"},
    "ringing": {"status": 183, "early_media": True},
    "ring_timeout": {"target": TARGET, "rang": True},
    "attempt_failed": {"target": TARGET, "sip_status": 503, "reason": "Service Unavailable", "result": "server-error",
                       "attempts": ["tcp:192.0.2.5:5060 503", "tcp:192.0.2.6:5060 timeout"]},
    "send_digits": {"digits": "12w#"},
    "send_digits_failed": {"digits": "12w#", "reason": "worker away"},
    "sip_in": {"transport": "udp", "first_line": "INVITE sip:+15551230001@10.0.0.1 SIP/2.0", "src": "10.0.0.9:5060",
               "dst": "10.0.0.1:5060", "message": INVITE},
    "sip_out": {"transport": "tls", "first_line": "SIP/2.0 100 Trying", "src": "10.0.0.1:5061",
                "dst": "10.0.0.9:5061", "message": "SIP/2.0 100 Trying\r\n\r\n"},
    "dtmf": {"digit": "#", "leg": "b", "duration_ms": 120},
    "nat_detected": {"leg": "b", "sdp_address": "192.168.77.10", "contact": "sip:100@192.168.77.10:5060",
                     "source": "203.0.113.5:5060"},
    "media_timeout": {"seconds": 30.2},
    "lost": {"node": "sig-1", "reason": "signaling node sig-1 lost"},
    "media_stats": {"worker_id": "media-1", "a": LEG, "b": {**LEG, "lost": 2}, "mos": 4.3, "duration": 45.5},
}


def contains(got: Any, want: Any) -> bool:
    """`want` is in `got`: every key of every object with the same value (a newer model may
    write more keys: readers ignore them)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and contains(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(contains, got, want))
    return bool(got == want) and type(got) is type(want)


def reads_and_writes_back(model: type[pe.EventBody], payload: dict[str, Any]) -> bool:
    """The model reads a stored payload and writes every key of it back unchanged."""
    try:
        body = model.model_validate(payload)
    except ValidationError:
        return False
    return contains(json.loads(json.dumps(body.to_payload())), payload)


def test_every_kind_has_a_golden_payload() -> None:
    assert sorted(GOLDEN) == sorted(pe.KINDS)


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_stored_payloads_still_read(kind: str) -> None:
    assert reads_and_writes_back(pe.KINDS[kind], GOLDEN[kind])
    body = pe.parse_body(kind, GOLDEN[kind])
    assert type(body) is pe.KINDS[kind] and body.kind == kind


def test_a_renamed_key_is_caught() -> None:
    """The check above is not vacuous: `pdd_ms` renamed, or dropped, fails it."""

    class RenamedAnswered(pe.EventBody):
        kind: Literal["answered"] = "answered"
        target: str
        secure: bool
        pdd: int | None = None

    class DroppedAnswered(pe.EventBody):
        kind: Literal["answered"] = "answered"
        target: str
        secure: bool

    assert reads_and_writes_back(pe.Answered, GOLDEN["answered"])
    assert not reads_and_writes_back(RenamedAnswered, GOLDEN["answered"])
    assert not reads_and_writes_back(DroppedAnswered, GOLDEN["answered"])


class FakeBus:
    """What the publisher hands the bus: the subject and the bytes NATS would carry."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, msg: Any) -> None:
        self.sent.append((subject, encode(msg)))

    connected = True

    async def calls_stream_exists(self) -> bool:
        return True

    async def publish_acked(self, subject: str, msg: Any, msg_id: str, timeout: float = 2.0) -> bool:
        await self.publish(subject, msg)
        return True


async def test_publisher_round_trip_of_every_kind() -> None:
    bus = FakeBus()
    pub = CallEventPublisher(bus, "signaling", "us1", "sig-1")  # type: ignore[arg-type]
    bodies = [pe.parse_body(kind, payload) for kind, payload in sorted(GOLDEN.items())]
    for body in bodies:
        await pub.emit("c1", body)
    assert len(bus.sent) == len(bodies)
    numbered = 0
    for body, (subject, data) in zip(bodies, bus.sent, strict=True):
        ev = CallEvent.model_validate_json(data)
        assert subject == subjects.call_event("c1", body.kind)
        assert (ev.call_id, ev.kind, ev.region, ev.node, ev.service) == ("c1", body.kind, "us1", "sig-1", "signaling")
        assert pe.parse(ev) == body
        if body.NUMBERED:
            numbered += 1
            assert ev.seq == numbered
        else:
            assert ev.seq == 0 and subject.startswith(subjects.call_event("c1", "sip_in").rsplit(".", 1)[0])
    assert numbered == len(GOLDEN) - 2  # all but sip_in and sip_out


def test_unknown_kind_is_kept_not_dropped() -> None:
    """A newer node's kind: kept with its payload, and passed on unchanged (replay)."""
    ev = CallEvent(call_id="c1", kind="parked", seq=9, payload={"to": "sip:200@pbx", "by": {"who": "callee"}})
    body = pe.parse(ev)
    assert isinstance(body, pe.GenericEvent)
    assert (body.kind, body.payload) == ("parked", {"to": "sip:200@pbx", "by": {"who": "callee"}})
    again = pe.envelope("c1", body, seq=9, ts=ev.ts)
    assert again == ev


def test_unknown_keys_are_ignored() -> None:
    body = pe.parse_body("ringing", {"status": 180, "early_media": False, "from_the_future": {"x": 1}})
    assert body == pe.Ringing(status=180, early_media=False)


def test_a_known_kind_with_a_malformed_payload_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError):
        pe.parse_body("answered", {"secure": "perhaps"})
    # A viewer of the stream still shows it, as it came.
    ev = CallEvent(call_id="c1", kind="answered", payload={"secure": "perhaps"})
    shown = pe.parse_or_generic(ev)
    assert isinstance(shown, pe.GenericEvent) and shown.payload == {"secure": "perhaps"}


def test_the_payload_has_no_envelope_fields() -> None:
    stats = pe.parse_body("media_stats", GOLDEN["media_stats"])
    assert not {"kind", "schema_version", "call_id"} & set(stats.to_payload())
    assert "kind" not in pe.Answered(target=TARGET, secure=False, pdd_ms=1).to_payload()
