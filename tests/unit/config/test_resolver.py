"""Routing decisions and target ordering from an in-memory view (no database, no NATS)."""

from __future__ import annotations

import random
from collections import Counter

from proto.messages import RoutingRequest, SipTarget
from services.config.resolver import Resolver, Route, weighted_order
from services.config.secrets import SecretBox, generate_key_spec


def target(uri: str, priority: int = 10, weight: int = 10) -> SipTarget:
    return SipTarget(uri=uri, priority=priority, weight=weight)


def resolver_with(**route_kw: object) -> Resolver:
    r = Resolver(None, SecretBox.from_spec(generate_key_spec()), rng=random.Random(7))  # type: ignore[arg-type]
    base = dict(number="+15551234567", account_id="acc_1", account_active=True, receiving_number_id="rn_1",
                tracking_enabled=True, receiving_enabled=True, targets=[target("sip:a@h.com")], ring_timeout=30.0,
                send_digits=None, region="us2")
    base.update(route_kw)
    r.routes["+15551234567"] = Route(**base)  # type: ignore[arg-type]
    return r


def req(number: str = "+15551234567") -> RoutingRequest:
    return RoutingRequest(call_id="c1", tracking_number=number)


def test_priority_first_then_weight() -> None:
    rng = random.Random(1)
    ts = [target("sip:low@h.com", 20), target("sip:a@h.com", 10, 90), target("sip:b@h.com", 10, 10),
          target("sip:top@h.com", 0)]
    firsts: Counter[str] = Counter()
    for _ in range(5000):
        order = weighted_order(ts, rng)
        assert order[0].uri == "sip:top@h.com" and order[-1].uri == "sip:low@h.com"
        firsts[order[1].uri] += 1
    assert 0.87 < firsts["sip:a@h.com"] / 5000 < 0.93


def test_equal_weights_share_evenly() -> None:
    rng = random.Random(2)
    ts = [target(f"sip:{c}@h.com") for c in "abcd"]
    firsts = Counter(weighted_order(ts, rng)[0].uri for _ in range(8000))
    assert all(1700 < n < 2300 for n in firsts.values()), firsts


def test_decisions() -> None:
    d = resolver_with().decide(req())
    assert d.ok and d.status == 200 and d.region_preference == "us2" and d.targets[0].uri == "sip:a@h.com"
    assert resolver_with().decide(req("+15550000000")).status == 404
    assert resolver_with().decide(req("garbage")).status == 404
    assert resolver_with().decide(req("15551234567")).ok  # a missing + is tolerated
    cases = [
        ({"account_active": False}, 403, "account suspended"),
        ({"receiving_enabled": False}, 480, "receiving number disabled"),
        ({"tracking_enabled": False}, 480, "tracking number disabled"),
        ({"targets": []}, 480, "no enabled SIP target"),
        ({"targets": [], "broken": "stored credentials cannot be decrypted"}, 503, "decrypted"),
    ]
    for kw, status, reason in cases:
        d = resolver_with(**kw).decide(req())
        assert (d.ok, d.status) == (False, status) and reason in d.reason
        assert d.account_id == "acc_1" and not d.targets


def test_secure_media_follows_the_first_target() -> None:
    t = SipTarget(uri="sips:a@h.com", transport="tls", secure_media=True)
    d = resolver_with(targets=[t]).decide(req())
    assert d.secure_media is True and d.targets[0].transport == "tls"
