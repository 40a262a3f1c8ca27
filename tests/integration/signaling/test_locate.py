"""RFC 3263 server location against a DNS server on loopback started by the test."""

from __future__ import annotations

import random
from collections import Counter

from services.signaling.transport import Addr, locate
from tests.helpers.dns_server import FakeDns

# ------------------------------------------------------------------ no DNS at all


async def test_numeric_ipv4_skips_dns() -> None:
    async with FakeDns({}) as d:
        assert await locate("sip:alice@192.0.2.10", resolver=d.resolver) == [Addr("udp", "192.0.2.10", 5060)]
        assert d.queries == []


async def test_numeric_ipv6_with_port_and_transport() -> None:
    async with FakeDns({}) as d:
        got = await locate("sip:[2001:DB8::1]:5070;transport=TCP", resolver=d.resolver)
        assert got == [Addr("tcp", "2001:db8::1", 5070)]
        assert d.queries == []


async def test_numeric_sips_is_tls_on_5061() -> None:
    async with FakeDns({}) as d:
        assert await locate("sips:bob@192.0.2.10", resolver=d.resolver) == [Addr("tls", "192.0.2.10", 5061)]


async def test_numeric_host_default_transport() -> None:
    async with FakeDns({}) as d:
        got = await locate("sip:192.0.2.10", resolver=d.resolver, default_transport="tcp")
        assert got == [Addr("tcp", "192.0.2.10", 5060)]


async def test_maddr_is_the_target() -> None:
    async with FakeDns({}) as d:
        got = await locate("sip:bob@example.com;maddr=192.0.2.99", resolver=d.resolver)
        assert got == [Addr("udp", "192.0.2.99", 5060)]


async def test_unsupported_transport_param_gives_nothing() -> None:
    async with FakeDns({}) as d:
        assert await locate("sip:192.0.2.1;transport=sctp", resolver=d.resolver) == []


# ------------------------------------------------------------------ explicit port


async def test_explicit_port_skips_naptr_and_srv() -> None:
    records = {
        ("example.com", "NAPTR"): ['10 50 "s" "SIP+D2T" "" _sip._tcp.example.com.'],
        ("_sip._tcp.example.com", "SRV"): ["10 10 5090 other.example.com."],
        ("example.com", "A"): ["192.0.2.1"],
        ("example.com", "AAAA"): ["2001:db8::1"],
    }
    async with FakeDns(records) as d:
        got = await locate("sip:example.com:5080", resolver=d.resolver)
        assert got == [Addr("udp", "192.0.2.1", 5080), Addr("udp", "2001:db8::1", 5080)]  # A, then AAAA
        assert not d.asked("NAPTR") and not d.asked("SRV")


# ------------------------------------------------------------------ SRV


async def test_srv_ordered_by_priority_then_addresses() -> None:
    records = {
        ("_sip._udp.example.com", "SRV"): ["20 0 5062 b.example.com.", "10 0 5061 a.example.com."],
        ("a.example.com", "A"): ["192.0.2.1", "192.0.2.2"],
        ("b.example.com", "A"): ["192.0.2.3"],
    }
    async with FakeDns(records) as d:
        got = await locate("sip:example.com", resolver=d.resolver)
        # every candidate, in failover order (RFC 3263 §4.3): a's addresses, then b's
        # (the A records of one name come in the DNS answer's order)
        assert {a.host for a in got[:2]} == {"192.0.2.1", "192.0.2.2"} and got[2].host == "192.0.2.3"
        assert [a.port for a in got] == [5061, 5061, 5062]
        assert d.asked("NAPTR") == ["example.com"]


async def test_srv_weights_bias_the_first_pick() -> None:
    records = {
        ("_sip._udp.example.com", "SRV"): ["10 90 5060 heavy.example.com.", "10 10 5060 light.example.com."],
        ("heavy.example.com", "A"): ["192.0.2.1"],
        ("light.example.com", "A"): ["192.0.2.2"],
    }
    rng = random.Random(7)
    firsts: Counter[str] = Counter()
    async with FakeDns(records) as d:
        for _ in range(40):
            got = await locate("sip:example.com", resolver=d.resolver, rng=rng)
            assert sorted(a.host for a in got) == ["192.0.2.1", "192.0.2.2"]  # both, always
            firsts[got[0].host] += 1
    assert firsts["192.0.2.1"] > firsts["192.0.2.2"]


async def test_srv_dot_target_means_no_service() -> None:
    records = {
        ("_sip._udp.example.com", "SRV"): ["0 0 0 ."],
        ("_sip._tcp.example.com", "SRV"): ["10 0 5060 a.example.com."],
        ("a.example.com", "A"): ["192.0.2.1"],
    }
    async with FakeDns(records) as d:
        assert await locate("sip:example.com", resolver=d.resolver) == [Addr("tcp", "192.0.2.1", 5060)]


async def test_no_naptr_queries_srv_for_each_transport() -> None:
    records = {
        ("_sip._udp.example.com", "SRV"): ["10 0 5060 u.example.com."],
        ("_sip._tcp.example.com", "SRV"): ["10 0 5060 t.example.com."],
        ("u.example.com", "A"): ["192.0.2.1"],
        ("t.example.com", "A"): ["192.0.2.2"],
    }
    async with FakeDns(records) as d:
        got = await locate("sip:example.com", resolver=d.resolver)
        assert got == [Addr("udp", "192.0.2.1", 5060), Addr("tcp", "192.0.2.2", 5060)]
        got = await locate("sip:example.com", resolver=d.resolver, default_transport="tcp")
        assert got == [Addr("tcp", "192.0.2.2", 5060), Addr("udp", "192.0.2.1", 5060)]


async def test_transport_param_uses_that_srv_only() -> None:
    records = {
        ("example.com", "NAPTR"): ['10 50 "s" "SIP+D2U" "" _sip._udp.example.com.'],
        ("_sip._udp.example.com", "SRV"): ["10 0 5060 u.example.com."],
        ("_sip._tcp.example.com", "SRV"): ["10 0 5070 t.example.com."],
        ("u.example.com", "A"): ["192.0.2.1"],
        ("t.example.com", "A"): ["192.0.2.2"],
    }
    async with FakeDns(records) as d:
        got = await locate("sip:example.com;transport=tcp", resolver=d.resolver)
        assert got == [Addr("tcp", "192.0.2.2", 5070)]
        assert not d.asked("NAPTR")
        assert d.asked("SRV") == ["_sip._tcp.example.com"]


async def test_transport_param_without_srv_falls_back_to_a() -> None:
    async with FakeDns({("example.com", "A"): ["192.0.2.5"]}) as d:
        assert await locate("sip:example.com;transport=tls", resolver=d.resolver) == [
            Addr("tls", "192.0.2.5", 5061)
        ]
        assert d.asked("SRV") == ["_sips._tcp.example.com"]


# ------------------------------------------------------------------ NAPTR


NAPTR_ZONE = {
    ("example.com", "NAPTR"): [
        '20 10 "s" "SIP+D2U" "" _sip._udp.example.com.',
        '10 20 "s" "SIP+D2T" "" _sip._tcp.example.com.',
        '10 10 "s" "SIPS+D2T" "" _sips._tcp.example.com.',
        '5 10 "s" "SIP+D2S" "" _sip._sctp.example.com.',  # unsupported: skipped
        '5 10 "u" "E2U+sip" "!^.*$!sip:x@y!" .',  # not an "s" record: skipped
    ],
    ("_sip._udp.example.com", "SRV"): ["10 0 5060 u.example.com."],
    ("_sip._tcp.example.com", "SRV"): ["10 0 5060 t.example.com."],
    ("_sips._tcp.example.com", "SRV"): ["10 0 5061 s.example.com."],
    ("_sip._sctp.example.com", "SRV"): ["10 0 5060 sctp.example.com."],
    ("u.example.com", "A"): ["192.0.2.1"],
    ("t.example.com", "A"): ["192.0.2.2"],
    ("s.example.com", "A"): ["192.0.2.3"],
    ("sctp.example.com", "A"): ["192.0.2.4"],
}


async def test_naptr_order_then_preference() -> None:
    async with FakeDns(NAPTR_ZONE) as d:
        got = await locate("sip:example.com", resolver=d.resolver)
        assert got == [
            Addr("tls", "192.0.2.3", 5061),
            Addr("tcp", "192.0.2.2", 5060),
            Addr("udp", "192.0.2.1", 5060),
        ]
        assert "_sip._sctp.example.com" not in d.asked("SRV")


async def test_sips_uses_only_sips_naptr() -> None:
    async with FakeDns(NAPTR_ZONE) as d:
        assert await locate("sips:bob@example.com", resolver=d.resolver) == [Addr("tls", "192.0.2.3", 5061)]


async def test_sips_without_naptr_queries_sips_tcp() -> None:
    records = {
        ("_sip._udp.example.com", "SRV"): ["10 0 5060 u.example.com."],
        ("_sips._tcp.example.com", "SRV"): ["10 0 5061 s.example.com."],
        ("u.example.com", "A"): ["192.0.2.1"],
        ("s.example.com", "A"): ["192.0.2.3"],
    }
    async with FakeDns(records) as d:
        assert await locate("sips:bob@example.com", resolver=d.resolver) == [Addr("tls", "192.0.2.3", 5061)]
        assert d.asked("SRV") == ["_sips._tcp.example.com"]


async def test_naptr_pointing_at_empty_srv_falls_back() -> None:
    records = {
        ("example.com", "NAPTR"): ['10 10 "s" "SIP+D2T" "" _sip._tcp.nowhere.example.com.'],
        ("example.com", "A"): ["192.0.2.9"],
    }
    async with FakeDns(records) as d:
        assert await locate("sip:example.com", resolver=d.resolver) == [Addr("udp", "192.0.2.9", 5060)]


# ------------------------------------------------------------------ A/AAAA and failures


async def test_no_srv_uses_a_and_aaaa_default_port() -> None:
    records = {("example.com", "A"): ["192.0.2.1"], ("example.com", "AAAA"): ["2001:db8::5"]}
    async with FakeDns(records) as d:
        assert await locate("sip:example.com", resolver=d.resolver) == [
            Addr("udp", "192.0.2.1", 5060),
            Addr("udp", "2001:db8::5", 5060),
        ]
        assert await locate("sips:example.com", resolver=d.resolver) == [
            Addr("tls", "192.0.2.1", 5061),
            Addr("tls", "2001:db8::5", 5061),
        ]


async def test_unknown_domain_gives_empty_list() -> None:
    async with FakeDns({}) as d:
        assert await locate("sip:bob@nowhere.example", resolver=d.resolver) == []


async def test_duplicates_removed() -> None:
    records = {
        ("_sip._udp.example.com", "SRV"): ["10 0 5060 a.example.com.", "20 0 5060 b.example.com."],
        ("a.example.com", "A"): ["192.0.2.1"],
        ("b.example.com", "A"): ["192.0.2.1"],
    }
    async with FakeDns(records) as d:
        assert await locate("sip:example.com", resolver=d.resolver) == [Addr("udp", "192.0.2.1", 5060)]


async def test_localhost_never_asks_dns() -> None:
    async with FakeDns({}) as d:
        assert await locate("sip:localhost:5070", resolver=d.resolver) == [Addr("udp", "127.0.0.1", 5070)]
        assert d.queries == []
