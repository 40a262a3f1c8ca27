"""RTCP reports as HEP (type 5, the JSON captagent and heplify send and Homer charts as
QoS), so Homer shows a call's loss and jitter next to its SIP ladder. Pure: bytes out."""

from __future__ import annotations

import json
from typing import Any

from . import packets as pk


def _blocks(reports: list[pk.ReportBlock]) -> list[dict[str, int]]:
    return [{"source_ssrc": r.ssrc, "fraction_lost": r.fraction_lost, "packets_lost": r.packets_lost,
             "highest_seq_no": r.highest_sequence, "ia_jitter": r.jitter, "lsr": r.lsr, "dlsr": r.dlsr}
            for r in reports]


def rtcp_json(report: list[pk.RtcpPacket]) -> bytes | None:
    """The first sender or receiver report of an RTCP compound packet (RFC 3550 §6.4) as
    JSON; None when there is none (an SDES or BYE alone)."""
    for p in report:
        if isinstance(p, pk.RtcpSenderReport):
            out: dict[str, Any] = {
                "type": 200, "ssrc": p.ssrc, "report_count": len(p.reports), "report_blocks": _blocks(p.reports),
                "sender_information": {"ntp_timestamp_sec": p.ntp_timestamp >> 32,
                                       "ntp_timestamp_usec": ((p.ntp_timestamp & 0xFFFFFFFF) * 1_000_000) >> 32,
                                       "rtp_timestamp": p.rtp_timestamp, "packets": p.packet_count,
                                       "octets": p.octet_count}}
            return json.dumps(out, separators=(",", ":")).encode()
        if isinstance(p, pk.RtcpReceiverReport):
            out = {"type": 201, "ssrc": p.ssrc, "report_count": len(p.reports), "report_blocks": _blocks(p.reports)}
            return json.dumps(out, separators=(",", ":")).encode()
    return None
