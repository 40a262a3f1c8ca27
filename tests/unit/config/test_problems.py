"""Problem details: field paths and pointers from validation locations."""

from __future__ import annotations

from services.config.api.problems import _field
from services.config.errors import InvalidInput, field_error


def test_field_paths() -> None:
    assert _field(("body", "sip_targets", 0, "uri")) == "sip_targets[0].uri"
    assert _field(("body", "sip_targets", 2, "tls", "ca_pem")) == "sip_targets[2].tls.ca_pem"
    assert _field(("query", "limit")) == "limit"
    assert _field(("header", "idempotency-key")) == "Idempotency-Key"
    assert _field(("body",)) == "body"
    assert _field(("body", "name", "function-after[_no_control()]")) == "name"


def test_pointer() -> None:
    assert field_error("sip_targets[0].uri", "bad")["pointer"] == "#/sip_targets/0/uri"
    e = InvalidInput.field("region", "unknown")
    assert e.status == 422 and e.errors[0]["field"] == "region"
