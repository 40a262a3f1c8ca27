"""Admission of new carrier INVITEs (sans-IO): which refusals, in which order, with hysteresis."""

from __future__ import annotations

from services.signaling.b2bua.admission import Admission, Limits, Load

LIMITS = Limits(max_calls=10, max_in_setup=30, lag_high=0.25, lag_low=0.05, lag_min_in_setup=2, retry_after=30,
                overload_retry_after=5)


def decide(a: Admission, **load: object) -> tuple[str, str, int] | None:
    base: dict[str, object] = {"calls": 0, "in_setup": 0, "lag": 0.0}
    r = a.decide(Load(**{**base, **load}))  # type: ignore[arg-type]
    return None if r is None else (r.reason, r.kind, r.retry_after)


def test_an_idle_node_takes_the_call() -> None:
    assert decide(Admission(LIMITS)) is None


def test_policy_refusals_have_the_long_retry_after_and_come_first() -> None:
    a = Admission(LIMITS)
    assert decide(a, draining=True, lag=1.0) == ("Node draining", "policy", 30)
    assert decide(a, calls=10, in_setup=5) == ("Too many calls on this node", "policy", 30)
    assert decide(a, rate_ok=False) == ("Rate limit", "policy", 30)


def test_too_many_calls_in_setup_is_overload() -> None:
    a = Admission(LIMITS)
    assert decide(a, in_setup=29) is None
    assert decide(a, in_setup=30) == ("Overloaded", "overload", 5)
    assert decide(a, in_setup=29) is None  # a setup finished: the next call is taken at once


def test_loop_lag_overload_has_hysteresis() -> None:
    a = Admission(LIMITS)
    assert decide(a, lag=0.2, in_setup=5) is None
    assert decide(a, lag=0.25, in_setup=5) == ("Overloaded", "overload", 5)
    assert decide(a, lag=0.1, in_setup=5) == ("Overloaded", "overload", 5)  # better, not yet caught up
    assert decide(a, lag=0.049, in_setup=5) is None
    assert decide(a, lag=0.2, in_setup=5) is None  # under the high mark again: no flapping back


def test_a_late_loop_with_hardly_any_calls_is_not_overload() -> None:
    """A stall (start-up, a neighbour on the core) makes the loop late with no calls to shed."""
    a = Admission(LIMITS)
    assert decide(a, lag=2.0, in_setup=1) is None
    assert decide(a, lag=2.0, in_setup=2) == ("Overloaded", "overload", 5)


def test_lag_check_switched_off() -> None:
    a = Admission(Limits(**{**LIMITS.__dict__, "lag_high": 0.0, "lag_low": 0.0}))
    assert decide(a, lag=5.0, in_setup=5) is None
