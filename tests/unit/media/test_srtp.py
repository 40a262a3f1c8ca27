"""SRTP with pylibsrtp against the RFC 3711 / libsrtp vectors (srtp_vectors.md)."""

from __future__ import annotations

import base64
import re

import pytest

from proto.messages import SrtpCrypto
from services.media import srtp
from services.media.errors import BadKey, SrtpError
from tests.helpers.testdata import SHARED_TESTDATA

TESTDATA = SHARED_TESTDATA


def vectors() -> dict[str, bytes]:
    """Section 4 of srtp_vectors.md: the AES_CM_128_HMAC_SHA1_80 full-packet vectors."""
    text = (TESTDATA / "srtp_vectors.md").read_text()
    sec = text[text.index("## 4."):]

    def grab(label: str, lines: int) -> bytes:
        i = sec.index(label)
        block = sec[i:].split("\n")[:lines]
        hexes = []
        for n, line in enumerate(block):
            body = line.split(":", 1)[1] if n == 0 else line
            body = body.split("<-")[0].split("(")[0]
            hexes.append(re.sub(r"[^0-9a-f]", "", body))
        return bytes.fromhex("".join(hexes))

    return {
        "key": grab("master key  (16)", 1), "salt": grab("master salt (14)", 1),
        "rtp": grab("RTP plaintext  (28)", 1),
        "srtp": grab("SRTP protected (38)", 3), "rtcp": grab("RTCP plaintext  (24)", 1),
        "srtcp": grab("SRTCP protected (38)", 4),
    }


def test_vectors_parsed() -> None:
    v = vectors()
    assert v["key"].hex() == "e1f97a0d3e018be0d64fa32c06de4139"  # RFC 3711 B.3 master key
    assert v["salt"].hex() == "0ec675ad498afeebb6960b3aabe6"
    assert len(v["rtp"]) == 28 and len(v["srtp"]) == 38 and len(v["rtcp"]) == 24 and len(v["srtcp"]) == 38


def test_protect_matches_libsrtp_vector() -> None:
    """The same master key as RFC 3711 B.3, so this also exercises its key derivation."""
    v = vectors()
    leg = srtp.SrtpLeg(local_key=v["key"] + v["salt"], remote_key=v["key"] + v["salt"])
    assert leg.protect(v["rtp"]) == v["srtp"]
    assert leg.unprotect(v["srtp"]) == v["rtp"]


def test_srtcp_matches_libsrtp_vector() -> None:
    v = vectors()
    leg = srtp.SrtpLeg(local_key=v["key"] + v["salt"], remote_key=v["key"] + v["salt"])
    assert leg.protect_rtcp(v["rtcp"]) == v["srtcp"]  # SRTCP index 1, E bit set
    assert leg.unprotect_rtcp(v["srtcp"]) == v["rtcp"]


def test_replay_tamper_and_wrong_key_are_rejected() -> None:
    v = vectors()
    key = v["key"] + v["salt"]
    rx = srtp.SrtpLeg(local_key=srtp.generate_key(), remote_key=key)
    assert rx.unprotect(v["srtp"]) == v["rtp"]
    with pytest.raises(SrtpError):
        rx.unprotect(v["srtp"])  # replayed (RFC 3711 §3.3.2)
    tampered = bytearray(v["srtcp"])
    tampered[10] ^= 1
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp(bytes(tampered))
    assert rx.unprotect_rtcp(v["srtcp"]) == v["rtcp"]
    with pytest.raises(SrtpError):
        rx.unprotect_rtcp(v["srtcp"])
    other = srtp.SrtpLeg(local_key=srtp.generate_key(), remote_key=srtp.generate_key())
    with pytest.raises(SrtpError):
        other.unprotect(v["srtp"])


def test_no_inbound_key_rejects() -> None:
    leg = srtp.SrtpLeg(srtp.generate_key())
    assert not leg.ready
    with pytest.raises(SrtpError):
        leg.unprotect(b"\x80" + b"\x00" * 30)


def test_separate_directions() -> None:
    """Our outbound key protects, the peer's key unprotects: a two-party exchange."""
    k_us, k_peer = srtp.generate_key(), srtp.generate_key()
    us = srtp.SrtpLeg(k_us, k_peer)
    peer = srtp.SrtpLeg(k_peer, k_us)
    rtp = bytes.fromhex("80000001000000a0cafebabe") + b"\xff" * 160
    assert peer.unprotect(us.protect(rtp)) == rtp
    assert us.unprotect(peer.protect(rtp)) == rtp


def test_keys_and_crypto_lines() -> None:
    k = srtp.generate_key()
    assert len(k) == 30 and k != srtp.generate_key()
    c = srtp.crypto_line(k)
    assert c.suite == "AES_CM_128_HMAC_SHA1_80" and srtp.key_from_crypto(c) == k
    with pytest.raises(BadKey):
        srtp.key_from_crypto(SrtpCrypto(key_salt_b64=base64.b64encode(b"short").decode()))
    with pytest.raises(BadKey):
        srtp.key_from_crypto(SrtpCrypto(key_salt_b64="!!notbase64!!"))


def test_pylibsrtp_has_no_mki_so_mki_answers_are_refused() -> None:
    """Why an a=crypto line with an MKI gets 488 (sdp.Crypto.unusable_because): pylibsrtp's
    Policy has no MKI setting, so MKI-tagged packets could never be authenticated. When a
    pylibsrtp release adds it, this fails: then accept MKIs instead."""
    import pylibsrtp

    policy = pylibsrtp.Policy()
    assert not any("mki" in name.lower() for name in dir(policy))
