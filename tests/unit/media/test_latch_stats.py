"""Latching rules and receive statistics."""

from __future__ import annotations

from services.media.relay import may_latch
from services.media.stats import StreamStats, mos


def test_plain_leg_latches_only_on_signalled_host() -> None:
    assert may_latch(secure=False, authenticated=True, source=("192.0.2.10", 4000), signalled_host="192.0.2.10")
    # Another port on the signalled host: a NAT rewrote it (RFC 4961 symmetric RTP).
    assert may_latch(secure=False, authenticated=True, source=("192.0.2.10", 61000), signalled_host="192.0.2.10")
    assert not may_latch(secure=False, authenticated=True, source=("198.51.100.7", 4000),
                         signalled_host="192.0.2.10")
    assert not may_latch(secure=False, authenticated=True, source=("192.0.2.10", 4000), signalled_host=None)


def test_secure_leg_latches_only_on_authenticated_source() -> None:
    assert may_latch(secure=True, authenticated=True, source=("198.51.100.7", 4000), signalled_host="192.0.2.10")
    assert not may_latch(secure=True, authenticated=False, source=("192.0.2.10", 4000),
                         signalled_host="192.0.2.10")


def test_a_natted_peer_latches_only_from_its_signaling_source_ip() -> None:
    """The SDP said 192.168.77.10; its SIP came from 203.0.113.5: any port of that IP may
    latch, nothing from another IP, not even the (unreachable) signalled one."""
    nat = "203.0.113.5"
    assert may_latch(secure=False, authenticated=True, source=(nat, 40000), signalled_host=nat, nat_host=nat)
    assert not may_latch(secure=False, authenticated=True, source=("198.51.100.7", 40000), signalled_host=nat,
                         nat_host=nat)
    assert not may_latch(secure=False, authenticated=True, source=("192.168.77.10", 4000), signalled_host=nat,
                         nat_host=nat)
    # An SRTP leg behind a NAT: authenticated and from that IP.
    assert may_latch(secure=True, authenticated=True, source=(nat, 40000), signalled_host=nat, nat_host=nat)
    assert not may_latch(secure=True, authenticated=False, source=(nat, 40000), signalled_host=nat, nat_host=nat)
    assert not may_latch(secure=True, authenticated=True, source=("198.51.100.7", 1), signalled_host=nat,
                         nat_host=nat)


def test_a_public_sdp_address_other_than_the_signaling_one_latches_from_either() -> None:
    """An SBC signals from 203.0.113.5 and offers media at 198.51.100.7: both may latch
    (a separate media interface, or a NAT), nothing else."""
    for ip in ("203.0.113.5", "198.51.100.7"):
        assert may_latch(secure=False, authenticated=True, source=(ip, 4000), signalled_host="198.51.100.7",
                         nat_host="203.0.113.5")
    assert not may_latch(secure=False, authenticated=True, source=("192.0.2.66", 4000),
                         signalled_host="198.51.100.7", nat_host="203.0.113.5")


def test_loss_and_wrap() -> None:
    s = StreamStats()
    seqs = [65530 + i for i in range(6)] + [0, 1, 3, 4, 5]  # 2 lost across the wrap
    for i, q in enumerate(seqs):
        s.update(7, q & 0xFFFF, i * 160, i * 160)
    assert s.received == 11 and s.expected == 12 and s.lost == 1
    assert s.jitter == 0.0


def test_duplicates_and_reordering_are_not_loss() -> None:
    s = StreamStats()
    for q in (10, 12, 11, 12, 13):
        s.update(1, q, q * 160, q * 160)
    assert s.lost == 0 and s.expected == 4


def test_ssrc_change_starts_a_new_run() -> None:
    s = StreamStats()
    for q in range(100, 110):
        s.update(1, q, q * 160, q * 160)
    for q in (5000, 5001, 5003):
        s.update(2, q, q * 160, q * 160)
    assert s.lost == 1 and s.expected == 14


def test_jitter() -> None:
    s = StreamStats()
    for i in range(200):
        s.update(1, i, i * 160, i * 160 + (80 if i % 2 else 0))  # +-10 ms alternating
    assert 60 < s.jitter < 90 and 7 < s.jitter_ms() < 12


def test_mos_decreases_with_loss_and_jitter() -> None:
    assert 4.3 < mos(0.0, 0.0) <= 4.5
    assert mos(0.01, 0) > mos(0.05, 0) > mos(0.2, 0)
    assert mos(0.0, 5) > mos(0.0, 100)
    assert mos(1.0, 500) >= 1.0
