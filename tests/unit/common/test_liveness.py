"""When a peer node counts as lost (sans-IO: time is passed in)."""

from services.common.liveness import Liveness


def test_a_node_is_lost_after_its_silence_and_not_before() -> None:
    alive = Liveness(after=3.0)
    alive.reset(100.0)
    alive.seen("w1", 100.0, interval=0.2)
    assert not alive.lost("w1", 103.0)
    assert alive.lost("w1", 103.1)


def test_a_slow_heartbeater_gets_three_of_its_intervals() -> None:
    alive = Liveness(after=3.0)
    alive.seen("w1", 0.0, interval=5.0)
    assert not alive.lost("w1", 14.9)
    assert alive.lost("w1", 15.1)


def test_never_seen_is_judged_from_the_last_reset_and_a_reset_forgives() -> None:
    alive = Liveness(after=3.0)
    alive.reset(10.0)
    assert not alive.lost("w2", 12.0)
    assert alive.lost("w2", 13.5)
    alive.seen("w1", 10.0, interval=0.2)
    alive.reset(20.0)  # our own bus was down: nobody's silence counts
    assert not alive.lost("w1", 22.0)
