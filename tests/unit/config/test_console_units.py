"""The console's pure parts: the ladder of a call's events, the session cookie, the sign-in limit."""

from __future__ import annotations

import time

from services.common.ladder import build, short
from services.config.console.session import Session, SessionCodec, SignInLimiter, new_session
from services.config.secrets import SecretBox, generate_key_spec

US, CARRIER, CLIENT = "127.0.0.1:5060", "192.0.2.10:5060", "198.51.100.7:5080"


def sip(kind: str, ts: float, first: str, peer: str) -> dict[str, object]:
    src, dst = (peer, US) if kind == "sip_in" else (US, peer)
    return {"kind": kind, "ts": ts, "payload": {"first_line": first, "src": src, "dst": dst, "transport": "udp",
                                                "message": first + "\r\n"}}


def test_ladder_puts_carrier_switchboard_and_client_in_columns_in_time_order() -> None:
    events = [
        sip("sip_in", 100.0, "INVITE sip:+15551234567@127.0.0.1 SIP/2.0", CARRIER),
        {"kind": "resolved", "ts": 100.01, "payload": {"receiving_number_id": "rn_1", "region": "us1"}},
        sip("sip_out", 100.02, "INVITE sip:100@198.51.100.7:5080 SIP/2.0", CLIENT),
        sip("sip_in", 100.5, "SIP/2.0 200 OK", CLIENT),
        sip("sip_out", 100.51, "SIP/2.0 200 OK", CARRIER),
    ]
    lad = build(events)
    assert [(c.label, c.addr) for c in lad.columns] == [("Carrier", CARRIER), ("Switchboard", US),
                                                        ("SIP client", CLIENT)]
    carrier, sb, client = (c.x for c in lad.columns)
    rows = [(r.kind, r.x1, r.x2) for r in lad.rows]
    assert rows == [("sip_in", carrier, sb), ("resolved", sb, sb), ("sip_out", sb, client),
                    ("sip_in", client, sb), ("sip_out", sb, carrier)]
    assert [round(r.t, 2) for r in lad.rows] == [0.0, 0.01, 0.02, 0.5, 0.51]
    assert lad.rows[1].label == "resolved: receiving_number_id=rn_1, region=us1"
    assert lad.sip_count == 4 and lad.rows[0].y < lad.rows[1].y < lad.rows[4].y
    assert lad.width >= client and lad.height > lad.rows[-1].y


def test_ladder_gives_each_failover_client_its_own_column() -> None:
    other = "203.0.113.5:5060"
    lad = build([sip("sip_in", 1, "INVITE sip:x@h SIP/2.0", CARRIER), sip("sip_out", 2, "INVITE sip:a@b SIP/2.0", CLIENT),
                 sip("sip_out", 3, "INVITE sip:c@d SIP/2.0", other)])
    assert [c.label for c in lad.columns] == ["Carrier", "Switchboard", "SIP client 1", "SIP client 2"]
    assert build([]).rows == []


def test_arrow_labels() -> None:
    assert short("INVITE sip:100@pbx.example.com SIP/2.0") == "INVITE sip:100@pbx.example.com"
    assert short("SIP/2.0 486 Busy Here") == "486 Busy Here"
    assert len(short("INVITE sip:" + "x" * 80 + "@h SIP/2.0")) == 38


def test_session_cookie_is_sealed_expires_and_ends_at_sign_out() -> None:
    box = SecretBox.from_spec(generate_key_spec("k1"))
    codec = SessionCodec(box)
    s = new_session(60)
    s.key, s.account_id = "sb_secret-key", "acc_1"
    value = codec.dump(s)
    assert "sb_secret-key" not in value and "acc_1" not in value
    assert codec.load(value) == s
    assert codec.load(value[:-4] + "AAAA") is None and codec.load("") is None and codec.load(None) is None
    # A value sealed with the same key for another purpose is no session.
    assert codec.load(box.seal('{"csrf": "x", "expires": 9e9}')) is None
    old = Session(csrf="c", expires=time.time() - 1, key="k")
    assert codec.load(codec.dump(old)) is None
    codec.end(s)
    assert codec.load(value) is None
    assert s.check_csrf(s.csrf) and not s.check_csrf("") and not s.check_csrf(None) and not s.check_csrf("x")


def test_sign_in_limit_per_address_and_window() -> None:
    lim = SignInLimiter(attempts=2, window=60)
    assert lim.retry_after("10.0.0.1", now=0) == 0
    lim.failed("10.0.0.1", now=0)
    lim.failed("10.0.0.1", now=10)
    assert lim.retry_after("10.0.0.1", now=11) == 49
    assert lim.retry_after("10.0.0.2", now=11) == 0  # another address is not limited
    assert lim.retry_after("10.0.0.1", now=60.5) == 0  # the first failure left the window


LADDER_CALL = [
    sip("sip_in", 100.0, "INVITE sip:+15551234567@127.0.0.1 SIP/2.0", CARRIER),
    sip("sip_out", 100.001, "SIP/2.0 100 Trying", CARRIER),
    {"kind": "resolved", "ts": 100.01, "payload": {"receiving_number_id": "rn_1", "region": "us1"}},
    sip("sip_out", 100.02, "INVITE sip:100@198.51.100.7:5080 SIP/2.0", CLIENT),
    sip("sip_in", 100.03, "SIP/2.0 486 Busy Here", CLIENT),
    sip("sip_out", 100.51, "SIP/2.0 486 Busy Here", CARRIER),
]


def test_text_ladder_has_a_column_per_party_arrows_times_and_decisions_in_the_margin() -> None:
    from services.common.ladder import render_text

    text = render_text(LADDER_CALL, width=100)
    lines = text.splitlines()
    assert "\x1b[" not in text
    assert lines[0].split() == ["Carrier", "Switchboard", "SIP", "client"]
    assert lines[1].split() == [CARRIER, US, CLIENT]
    assert all(len(r) <= 100 for r in lines)
    # A decision longer than the margin continues on the next line, beside the lifelines.
    rows = [r for r in lines[2:] if r.lstrip().startswith("+")]
    assert len(rows) == len(LADDER_CALL)
    note_at = lines.index(rows[2])
    note_text = rows[2].split("  ")[-1].strip() + lines[note_at + 1].split("|")[-1].strip()
    assert rows[0].lstrip().startswith("+0.000s") and rows[5].lstrip().startswith("+0.510s")
    # Arrows point the way the message went, between the right columns.
    carrier_col, sb_col, client_col = (lines[0].index(w) + len(w) // 2 for w in ("Carrier", "Switchboard", "SIP client"))
    invite_in, trying, note, invite_out, busy, busy_out = rows
    assert "INVITE" in invite_in and invite_in.index("->") < sb_col < invite_in.index("INVITE") + 30
    assert "<-" in trying and carrier_col - 3 <= trying.index("<-") <= carrier_col + 3
    assert "INVITE" in invite_out and invite_out.index("INVITE") > sb_col
    assert "486 Busy Here" in busy and busy.index("<-") > sb_col
    assert "486 Busy Here" in busy_out and busy_out.index("<-") < sb_col
    assert note_text.replace(" ", "") == "resolved:receiving_number_id=rn_1,region=us1"
    assert abs(note.index("*") - sb_col) <= 3


def test_text_ladder_fits_a_narrow_terminal_and_colours_only_when_asked() -> None:
    from services.common.ladder import render_text

    narrow = render_text(LADDER_CALL, width=60)
    assert all(len(line) <= 60 for line in narrow.splitlines())
    assert "INVITE" in narrow and "486" in narrow
    coloured = render_text(LADDER_CALL, width=100, color=True)
    assert "\x1b[31m" in coloured and "\x1b[36m" in coloured  # a 4xx red, requests cyan
    assert render_text([], width=80) == ""
