"""Messages parsed + serialized per second by the sans-IO SIP parser, on one core.

Run: ``python bench/sip_parse.py [seconds-per-case]``. Target: >= 20,000 INVITE/s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.signaling.sip.message import parse_message  # noqa: E402

SDP = (
    b"v=0\r\n"
    b"o=- 1722334455 1722334455 IN IP4 198.51.100.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 16384 RTP/AVP 0 8 18 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+14155550123@198.51.100.20:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK2d4790a1b2c3;rport\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Carrier Caller" <sip:+12125550199@203.0.113.5>;tag=as5f2e9c1a\r\n'
    b"To: <sip:+14155550123@198.51.100.20>\r\n"
    b"Contact: <sip:+12125550199@203.0.113.5:5060>\r\n"
    b"Call-ID: 5a7c3e0b1f2d4c6e8a9b@203.0.113.5\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"User-Agent: Carrier SBC 4.2\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO\r\n"
    b"Supported: replaces, timer\r\n"
    b"Session-Expires: 1800\r\n"
    b"P-Asserted-Identity: <sip:+12125550199@203.0.113.5>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

OK_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK77ef0a;received=198.51.100.20;rport=5060\r\n"
    b'From: "Switchboard" <sip:+12125550199@198.51.100.20>;tag=8c1f2a\r\n'
    b"To: <sip:1001@pbx.example.com>;tag=a93b55e1\r\n"
    b"Call-ID: 0c4e1b2a9d8f7e6a@198.51.100.20\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:1001@192.0.2.44:5060>\r\n"
    b"Server: FreeSWITCH\r\n"
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REFER, NOTIFY\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def rate(data: bytes, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            bytes(parse_message(data))
        n += 200
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    assert bytes(parse_message(INVITE)) == INVITE
    for name, data in (("INVITE with SDP", INVITE), ("200 OK with SDP", OK_200)):
        rate(data, 0.2)  # warm-up
        print(f"{name:16} {len(data):5d} bytes  {rate(data, seconds):10,.0f} parse+serialize/s")


if __name__ == "__main__":
    main()
