"""Call detail records as CSV (`GET /v1/calls?format=csv`, `switchboard calls export-csv`):
one row per call record, for billing and spreadsheets.

Columns, in order (times are ISO 8601 UTC; empty means unknown or not applicable):

call_id, account_id, tracking_number, caller, caller_name, receiving_number_id, region,
node, status (in-progress, ended), result (completed, busy, no-answer, failed, canceled),
sip_status (final SIP status to the carrier), reason, ended_by, started_at, ringing_at,
answered_at, ended_at, duration (seconds from answer to end), pdd_ms (dialing to answer),
secure_media (true/false), answered_target (the SIP URI that answered), attempts (the
targets tried, in order, as `uri status` joined by ` | `), mos, packets_lost, jitter_ms,
srtp_failures, dtmf_digits.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

COLUMNS = (
    "call_id", "account_id", "tracking_number", "caller", "caller_name", "receiving_number_id", "region", "node",
    "status", "result", "sip_status", "reason", "ended_by", "started_at", "ringing_at", "answered_at", "ended_at",
    "duration", "pdd_ms", "secure_media", "answered_target", "attempts", "mos", "packets_lost", "jitter_ms",
    "srtp_failures", "dtmf_digits",
)

_NUMBER = re.compile(r"^\+?\d+$")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat()).replace("+00:00", "Z")
    text = str(value)
    # A caller name or reason comes from the carrier: a leading = + - @ would be a formula to
    # a spreadsheet (CSV injection), so it is quoted with ' — but an E.164 number stays as is.
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(text):
        return "'" + text
    return text


def row(call: dict[str, Any]) -> list[str]:
    """A CSV row from a call as the JSON listing shows it (`CallPublic`)."""
    media = call.get("media") or {}
    tried = call.get("targets") or []
    answered = next((t.get("target") for t in tried if t.get("status") == 200 or t.get("result") == "answered"), None)
    values = dict(call, call_id=call.get("id"), answered_target=answered,
                  attempts=" | ".join(f"{t.get('target')} {t.get('status') or t.get('result') or ''}".strip()
                                      for t in tried),
                  mos=media.get("mos"), packets_lost=media.get("packets_lost"), jitter_ms=media.get("jitter_ms"),
                  srtp_failures=media.get("srtp_failures"))
    return [_cell(values.get(c)) for c in COLUMNS]


def lines(rows: Iterable[list[str]], *, header: bool = True) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180 line ends
    if header:
        w.writerow(COLUMNS)
    w.writerows(rows)
    return buf.getvalue()
