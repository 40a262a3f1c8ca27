"""RFC 4028 on the client leg, the pure part (services/signaling/b2bua/session_timer.py)."""

from __future__ import annotations

from services.signaling.b2bua import session_timer
from services.signaling.sip.message import Headers, Response


def response(status: int, *headers: tuple[str, str]) -> Response:
    return Response(status, "x", Headers(headers))


def test_the_pbxs_2xx_decides_interval_refresher_and_method() -> None:
    t = session_timer.from_answer(response(200, ("Session-Expires", "1800;refresher=uac"),
                                           ("Allow", "INVITE, ACK, BYE"), ("Allow", "UPDATE")))
    assert t is not None and (t.interval, t.we_refresh, t.update) == (1800, True, True)
    assert t.refresh_after == 900 and t.expire_after == 1800 - 32
    t = session_timer.from_answer(response(200, ("x", "90; Refresher=UAS"), ("Allow", "INVITE, BYE")))
    assert t is not None and (t.interval, t.we_refresh, t.update) == (90, False, False)
    assert t.expire_after == 60
    # §7.2: no refresher parameter: the UAC (we) refreshes; no Session-Expires: no timer.
    t = session_timer.from_answer(response(200, ("Session-Expires", "600")))
    assert t is not None and t.we_refresh
    assert session_timer.from_answer(response(200)) is None
    assert session_timer.from_answer(response(200, ("Session-Expires", "soon"))) is None


def test_422_min_se_and_what_we_ask() -> None:
    assert session_timer.min_se(response(422, ("Min-SE", "1200"))) == 1200
    assert session_timer.min_se(response(422)) is None
    assert session_timer.request_headers(1800) == [("Session-Expires", "1800"), ("Min-SE", "90")]
    assert session_timer.request_headers(1200, 1200) == [("Session-Expires", "1200"), ("Min-SE", "1200")]
