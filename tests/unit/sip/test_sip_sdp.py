"""SDP parse/build and offer/answer (RFC 4566, 3264, 4568)."""

from __future__ import annotations

import base64
from pathlib import Path

from services.signaling.sip.message import parse_message
from services.signaling.sip.sdp import (
    Crypto,
    NegotiatedMedia,
    SdpAnswer,
    SdpRejection,
    answer_offer,
    build_offer,
    hold_offer,
    parse_sdp,
    validate_answer,
)

FIXTURES = Path(__file__).parent / "fixtures"
KEY = bytes(range(30))
PEER_KEY_B64 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"


def _sdp(text: str) -> bytes:
    return ("\r\n".join(text.strip().splitlines()) + "\r\n").encode()


CARRIER_OFFER = _sdp(
    """
v=0
o=- 111 1 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 16000 RTP/AVP 8 0 18 96
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-15
a=ptime:20
a=x-unknown-thing:42
"""
)


def test_round_trip_fixture_bodies() -> None:
    for name in ("cisco_invite.sip", "freeswitch_200_sdp.sip", "compact_invite.sip"):
        body = parse_message((FIXTURES / name).read_bytes()).body
        assert bytes(parse_sdp(body)) == body


def test_typed_accessors() -> None:
    body = parse_message((FIXTURES / "freeswitch_200_sdp.sip").read_bytes()).body
    sdp = parse_sdp(body)
    audio = sdp.media[0]
    assert audio.proto == "RTP/SAVP" and audio.port == 23456
    assert audio.rtpmaps[101].encoding == "telephone-event"
    assert audio.fmtps[101] == "0-16"
    assert audio.ptime == 20 and audio.direction == "sendrecv"
    assert audio.rtcp is not None and audio.rtcp[0] == 23457
    (crypto,) = audio.cryptos
    assert crypto.tag == 1 and crypto.usable and len(crypto.key_salt) == 30
    assert sdp.origin is not None and sdp.origin.session_version == 1709550001


def test_crypto_padding_lifetime_mki() -> None:
    key = base64.b64encode(bytes(30)).decode()
    assert not key.endswith("=")
    c = Crypto.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4")
    assert c.lifetime == "2^20" and c.mki == "1:4" and not c.usable  # MKI: not usable by us
    c = Crypto.parse(f"2 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31")
    assert c.usable and c.lifetime == "2^31"
    # A 31-octet value only has padding in base64; accepted with or without '='.
    padded = base64.b64encode(bytes(31)).decode()
    assert padded.endswith("=")
    assert Crypto.parse(f"3 X inline:{padded}").key_salt == bytes(31)
    assert Crypto.parse(f"3 X inline:{padded.rstrip('=')}").key_salt == bytes(31)
    # What we send: 30 octets are 40 base64 characters, never padded (no switch needed).
    assert Crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(30)).format() == f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}"


def test_crypto_as_phones_send_it() -> None:
    """Lifetimes (Grandstream always sends one), MKIs (refused: pylibsrtp has none), session
    parameters (unknown ones ignored, RFC 4568 §6.3; ones changing the protection refused)."""
    key = base64.b64encode(bytes(30)).decode()
    suite = "AES_CM_128_HMAC_SHA1_80"
    assert Crypto.parse(f"1 {suite} inline:{key}|2^31").lifetime_packets == 2**31
    assert Crypto.parse(f"1 {suite} inline:{key}|1048576").lifetime_packets == 1048576
    assert Crypto.parse(f"1 {suite} inline:{key}").lifetime_packets is None
    mki = Crypto.parse(f"1 {suite} inline:{key}|2^20|1:4")
    assert not mki.usable and "MKI" in (mki.unusable_because or "")
    assert Crypto.parse(f"1 {suite} inline:{key} WSH=64 FUTURE_PARAM=1").usable
    assert Crypto.parse(f"1 {suite} inline:{key} KDR=0").usable
    for param in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP", "KDR=24"):
        assert not Crypto.parse(f"1 {suite} inline:{key} {param}").usable, param
    # Lines in any order: the usable one of our suite is taken, whatever its place and tag.
    offer = (b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
             b"m=audio 16000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
             b"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(46)) + b"\r\n"
             b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + key.encode() + b"\r\n"
             b"a=crypto:3 " + suite.encode() + b" inline:" + key.encode() + b"|2^31 WSH=64\r\n")
    result = answer_offer(offer, "198.51.100.20", 12000, srtp_key=KEY)
    assert isinstance(result, SdpAnswer) and result.media.remote_crypto is not None
    assert result.media.remote_crypto.tag == 3
    assert [c.tag for c in result.sdp.media[0].cryptos] == [3]  # one a=crypto line in our answer
    # Only an MKI line of our suite: refused with the reason (the 488's Warning says it).
    only_mki = offer.replace(b"|2^31 WSH=64", b"|2^31|1:4")
    refused = answer_offer(only_mki, "198.51.100.20", 12000, srtp_key=KEY)
    assert isinstance(refused, SdpRejection) and refused.status == 488 and "MKI" in refused.reason


def test_build_offer_plain_and_srtp() -> None:
    plain = build_offer("198.51.100.20", 10000, session_id=7)
    text = str(plain)
    assert "m=audio 10000 RTP/AVP 0 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" in text
    assert "crypto" not in text
    secure = build_offer("198.51.100.20", 10000, srtp_key=KEY, telephone_event_pt=98, session_id=7)
    audio = secure.media[0]
    assert audio.proto == "RTP/SAVP" and audio.formats == ["0", "98"]
    (crypto,) = audio.cryptos
    assert crypto.suite == "AES_CM_128_HMAC_SHA1_80" and crypto.key_salt == KEY
    assert parse_sdp(bytes(secure)) == secure
    v6 = build_offer("2001:db8::1", 10002, session_id=1)
    assert v6.connection is not None and v6.connection.addrtype == "IP6"


def test_answer_keeps_peer_te_pt_and_rejects_other_streams() -> None:
    offer = CARRIER_OFFER + b"m=video 3227 RTP/AVP 31\r\n"
    result = answer_offer(offer, "198.51.100.20", 12000, session_id=9)
    assert isinstance(result, SdpAnswer)
    audio, video = result.sdp.media
    assert audio.formats == ["0", "96"] and audio.fmtps[96] == "0-15"
    assert video.port == 0
    m = result.media
    assert (m.remote_address, m.remote_port, m.remote_rtcp_port) == ("203.0.113.5", 16000, 16001)
    assert m.telephone_event_pt == 96 and m.direction == "sendrecv" and not m.on_hold and not m.secure


def test_answer_without_pcmu_is_488() -> None:
    offer = CARRIER_OFFER.replace(b"RTP/AVP 8 0 18 96", b"RTP/AVP 8 18 96")
    result = answer_offer(offer, "198.51.100.20", 12000)
    assert isinstance(result, SdpRejection) and result.status == 488


def test_answer_srtp_offer_picks_our_suite() -> None:
    offer = _sdp(
        f"""
v=0
o=- 1 1 IN IP4 192.0.2.44
s=-
c=IN IP4 192.0.2.44
t=0 0
m=audio 23456 RTP/SAVP 0 101
a=rtpmap:101 telephone-event/8000
a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{base64.b64encode(bytes(46)).decode()}
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{PEER_KEY_B64}
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY_B64}|2^20
a=rtcp:23460
"""
    )
    result = answer_offer(offer, "198.51.100.20", 12000, srtp_key=KEY)
    assert isinstance(result, SdpAnswer)
    (ours,) = result.sdp.media[0].cryptos
    assert ours.tag == 3 and ours.key_salt == KEY
    assert result.media.remote_crypto is not None and result.media.remote_crypto.tag == 3
    assert result.media.remote_rtcp_port == 23460
    no_key = answer_offer(offer, "198.51.100.20", 12000)
    assert isinstance(no_key, SdpRejection)
    bad = answer_offer(offer.replace(b"crypto:3 AES_CM_128_HMAC_SHA1_80", b"crypto:3 F8_128_HMAC_SHA1_80"), "h", 1, srtp_key=KEY)
    assert isinstance(bad, SdpRejection) and bad.status == 488
    assert isinstance(answer_offer(CARRIER_OFFER, "h", 1, require_srtp=True), SdpRejection)


def test_hold_detection() -> None:
    old_style = CARRIER_OFFER.replace(b"c=IN IP4 203.0.113.5", b"c=IN IP4 0.0.0.0")
    result = answer_offer(old_style, "198.51.100.20", 12000)
    assert isinstance(result, SdpAnswer) and result.media.on_hold and result.media.direction == "recvonly"
    inactive = answer_offer(CARRIER_OFFER + b"a=inactive\r\n", "198.51.100.20", 12000)
    assert isinstance(inactive, SdpAnswer) and inactive.media.direction == "inactive"
    sendonly = answer_offer(CARRIER_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"), "h", 1)
    assert isinstance(sendonly, SdpAnswer) and sendonly.media.direction == "recvonly"


def test_hold_offer_increments_version() -> None:
    offer = build_offer("198.51.100.20", 10000, session_id=7, session_version=3)
    held = hold_offer(offer)
    assert held.origin is not None and held.origin.session_version == 4
    assert held.media[0].direction == "sendonly"
    assert offer.media[0].direction == "sendrecv"  # original untouched
    resumed = hold_offer(held, "sendrecv")
    assert resumed.media[0].direction == "sendrecv"


def test_validate_answer() -> None:
    offer = build_offer("198.51.100.20", 10000, srtp_key=KEY, session_id=7)
    good = _sdp(
        f"""
v=0
o=pbx 5 5 IN IP4 192.0.2.44
s=-
c=IN IP4 192.0.2.44
t=0 0
m=audio 40000 RTP/SAVP 0 101
a=rtpmap:101 telephone-event/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{PEER_KEY_B64}
"""
    )
    media = validate_answer(offer, good)
    assert isinstance(media, NegotiatedMedia)
    assert media.remote_port == 40000 and media.telephone_event_pt == 101
    assert media.local_crypto is not None and media.local_crypto.key_salt == KEY
    assert isinstance(validate_answer(offer, good.replace(b"RTP/SAVP 0 101", b"RTP/SAVP 8 101")), SdpRejection)
    assert isinstance(validate_answer(offer, good.replace(b"RTP/SAVP", b"RTP/AVP")), SdpRejection)
    assert isinstance(validate_answer(offer, good.replace(b"crypto:1", b"crypto:9")), SdpRejection)
    no_crypto = b"".join(line + b"\r\n" for line in good.split(b"\r\n") if line and not line.startswith(b"a=crypto"))
    assert isinstance(validate_answer(offer, no_crypto), SdpRejection)


def test_unknown_lines_kept_and_garbage_rejected() -> None:
    sdp = parse_sdp(CARRIER_OFFER + b"z=whatever\r\n")
    assert ("a", "x-unknown-thing:42") in sdp.media[0].lines
    assert bytes(sdp).endswith(b"z=whatever\r\n")
    result = answer_offer(b"this is not sdp", "h", 1)
    assert isinstance(result, SdpRejection) and result.status == 400
