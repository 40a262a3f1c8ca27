"""Failover rules and the status the carrier gets."""

from __future__ import annotations

import pytest

from services.signaling.b2bua.policy import (
    Result,
    attempt,
    carrier_status,
    classify,
    record_result,
    should_move_on,
)


@pytest.mark.parametrize(
    ("status", "rang", "result"),
    [(200, False, Result.ANSWERED), (486, True, Result.BUSY), (600, False, Result.BUSY),
     (603, True, Result.DECLINED), (480, True, Result.NO_ANSWER), (408, True, Result.NO_ANSWER),
     (408, False, Result.UNREACHABLE), (503, False, Result.SERVER_ERROR), (500, False, Result.SERVER_ERROR),
     (404, False, Result.REJECTED), (487, True, Result.CANCELED)],
)
def test_classify(status: int, rang: bool, result: Result) -> None:
    assert classify(status, rang=rang) is result


def test_busy_and_decline_are_answers_not_failovers() -> None:
    assert not should_move_on(attempt("sip:a", Result.BUSY, 486))
    assert not should_move_on(attempt("sip:a", Result.DECLINED, 603))
    assert not should_move_on(attempt("sip:a", Result.CANCELED, 487))


def test_errors_move_on_unless_early_media_flowed() -> None:
    for r in (Result.UNREACHABLE, Result.SERVER_ERROR, Result.NO_ANSWER):
        assert should_move_on(attempt("sip:a", r))
        assert not should_move_on(attempt("sip:a", r, early_media=True))


def test_carrier_status_mapping() -> None:
    assert carrier_status([attempt("a", Result.UNREACHABLE), attempt("b", Result.BUSY, 486)]) == (486, "Busy Here")
    assert carrier_status([attempt("a", Result.NO_ANSWER)])[0] == 480
    assert carrier_status([attempt("a", Result.UNREACHABLE)])[0] == 502
    assert carrier_status([attempt("a", Result.SERVER_ERROR, 503)])[0] == 503
    assert carrier_status([attempt("a", Result.DECLINED, 603)])[0] == 603
    assert carrier_status([attempt("a", Result.AUTH_FAILED, 401)])[0] == 403
    assert carrier_status([])[0] == 480


def test_record_result() -> None:
    assert record_result([], answered=True) == "completed"
    assert record_result([attempt("a", Result.BUSY)], answered=False) == "busy"
    assert record_result([attempt("a", Result.NO_ANSWER)], answered=False) == "no-answer"
    assert record_result([attempt("a", Result.CANCELED)], answered=False) == "canceled"
    assert record_result([attempt("a", Result.UNREACHABLE)], answered=False) == "failed"
