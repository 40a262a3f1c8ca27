"""NAT detection rules (proto.nat): which signalled addresses cannot be used as they stand."""

from __future__ import annotations

import pytest

from proto import nat


@pytest.mark.parametrize("host", ["10.1.2.3", "172.16.0.9", "172.31.255.1", "192.168.77.10",  # RFC 1918
                                  "100.64.0.1", "100.127.255.254",  # RFC 6598 carrier-grade NAT
                                  "169.254.10.20",  # RFC 3927 link-local
                                  "fd00::1", "fe80::1"])  # RFC 4193, link-local
def test_private_addresses(host: str) -> None:
    assert nat.is_private(host)


@pytest.mark.parametrize("host", ["203.0.113.5", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:4860::8888",
                                  "127.0.0.1", "0.0.0.0", "pbx.example.com"])
def test_not_private(host: str) -> None:
    assert not nat.is_private(host)


def test_behind_nat_private_or_not_where_signaling_comes_from() -> None:
    assert nat.behind_nat("192.168.77.10", "203.0.113.5")
    assert nat.behind_nat("198.51.100.7", "203.0.113.5")  # a public address, but not the source
    assert not nat.behind_nat("203.0.113.5", "203.0.113.5")
    assert not nat.behind_nat("0.0.0.0", "203.0.113.5")  # hold (RFC 3264 §8.4) says nothing
    assert not nat.behind_nat("pbx.example.com", "203.0.113.5")
    # A carrier's media gateway on another public IP than its proxy: not NAT (mismatch=False).
    assert not nat.behind_nat("198.51.100.7", "203.0.113.5", mismatch=False)
    assert nat.behind_nat("10.0.0.7", "203.0.113.5", mismatch=False)


def test_latch_host_is_the_signaling_source_ip_or_nothing() -> None:
    assert nat.latch_host("auto", "192.168.77.10", "127.0.0.1") == "127.0.0.1"
    assert nat.latch_host("off", "192.168.77.10", "127.0.0.1") is None
    assert nat.latch_host("auto", "127.0.0.1", "127.0.0.1") is None
    assert nat.latch_host("auto", "192.168.77.10", "[2001:db8::5]") == "2001:db8::5"
    assert nat.latch_host("auto", "192.168.77.10", "sbc.example.com") is None  # needs a numeric IP
    assert nat.latch_host("auto", "192.168.77.10", None) is None


def test_contact_fix_only_for_a_private_contact() -> None:
    assert nat.contact_is_nated("auto", "192.168.77.10", "203.0.113.5")
    assert not nat.contact_is_nated("auto", "203.0.113.9", "203.0.113.5")  # public: may be a proxy's
    assert not nat.contact_is_nated("off", "192.168.77.10", "203.0.113.5")
    assert not nat.contact_is_nated("auto", None, "203.0.113.5")
