from __future__ import annotations

from pathlib import Path

from proto import messages as m
from proto.asyncapi import CHANNELS, document, render

REPO = Path(__file__).resolve().parents[3]


def test_messages_are_open_world() -> None:
    """A newer peer's extra fields are ignored, so services upgrade one at a time."""
    raw = '{"call_id": "c1", "tracking_number": "+15551234567", "from_the_future": 1}'
    req = m.RoutingRequest.model_validate_json(raw)
    assert req.tracking_number == "+15551234567"
    assert req.schema_version == 1


def test_every_message_has_a_schema_version() -> None:
    for model in m.ALL_MESSAGES:
        assert "schema_version" in model.model_fields, model.__name__


def test_password_not_in_repr() -> None:
    t = m.SipTarget(uri="sip:100@pbx.example.com", username="u", password="s3cret")
    assert "s3cret" not in repr(t)


def test_round_trip_allocation() -> None:
    alloc = m.MediaAllocation(
        call_id="c1", worker_id="w1", region="us1",
        a=m.MediaLeg(address="127.0.0.1", port=10000, rtcp_port=10001),
        b=m.MediaLeg(address="127.0.0.1", port=10002, rtcp_port=10003, secure=True,
                     crypto=m.SrtpCrypto(key_salt_b64="A" * 40)),
    )
    assert m.MediaAllocation.model_validate_json(alloc.model_dump_json()) == alloc


def test_asyncapi_lists_every_channel() -> None:
    doc = document()
    assert doc["asyncapi"].startswith("3.")
    for ch in CHANNELS:
        assert doc["channels"][ch.name]["address"] == ch.address
        assert ch.message.__name__ in doc["components"]["schemas"]


def test_committed_asyncapi_is_current() -> None:
    committed = (REPO / "proto" / "asyncapi.yaml").read_text()
    assert committed == render(), "proto/asyncapi.yaml is stale: run `switchboard asyncapi > proto/asyncapi.yaml`"
