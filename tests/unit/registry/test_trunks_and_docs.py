"""Trunk input validation and address matching; the generated allow-list example doc."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry import allowlist, topology
from services.registry.errors import TrunkInputError
from services.registry.trunks import LOOPBACK, Trunk, file_trunks, match, parse_source, validate_new

REPO = Path(__file__).resolve().parents[3]
TOPO = topology.load()


def test_validate_new_trunk() -> None:
    name, nets = validate_new({"name": " carrier ", "networks": ["198.51.100.0/24", "2001:db8:9::/48"]})
    assert name == "carrier" and [str(n) for n in nets] == ["198.51.100.0/24", "2001:db8:9::/48"]
    assert validate_new({"name": "c", "networks": "192.0.2.1/32"})[1][0].prefixlen == 32


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"networks": ["192.0.2.0/24"]}, "name"),
        ({"name": "x" * 101, "networks": ["192.0.2.0/24"]}, "name"),
        ({"name": "c"}, "networks"),
        ({"name": "c", "networks": []}, "networks"),
        ({"name": "c", "networks": ["192.0.2.0/24", "192.0.2.5/24"]}, "networks[1]"),
        ({"name": "c", "networks": ["banana"]}, "networks[0]"),
    ],
)
def test_invalid_trunk_names_the_field(params, field) -> None:
    with pytest.raises(TrunkInputError) as e:
        validate_new(params)
    assert e.value.field == field


def test_parse_source_forms() -> None:
    assert str(parse_source("203.0.113.5")) == "203.0.113.5"
    assert str(parse_source("203.0.113.5:5060")) == "203.0.113.5"
    assert str(parse_source("[2001:db8::1]:5061")) == "2001:db8::1"
    assert str(parse_source("2001:db8::1")) == "2001:db8::1"
    assert str(parse_source("::ffff:203.0.113.5")) == "203.0.113.5"
    with pytest.raises(ValueError):
        parse_source("carrier.example.com:5060")


def test_match_file_trunks_and_loopback() -> None:
    trunks = file_trunks(TOPO)
    assert match(trunks, "203.0.113.40:5060").name == "example-carrier-west"
    assert match(trunks, "192.0.2.10") is None
    assert match(trunks, "127.0.0.1") is None
    assert match([*trunks, LOOPBACK], "127.0.0.1:5060") is LOOPBACK
    assert match([*trunks, LOOPBACK], "[::1]:5060") is LOOPBACK


def test_trunk_round_trips_through_kv_json() -> None:
    _, nets = validate_new({"name": "c", "networks": ["198.51.100.0/24"]})
    t = Trunk(id="abc", name="c", networks=nets, source="api", created=12.5)
    assert Trunk.from_json(t.to_json()) == t


def test_allowlist_example_doc_is_current() -> None:
    doc = (REPO / "docs" / "allowlist-example.md").read_text()
    assert doc == allowlist.example_markdown(TOPO), (
        "docs/allowlist-example.md is stale: python -m services.registry.allowlist > docs/allowlist-example.md"
    )
