"""OPTIONS pinging, sans-IO (services/signaling/health_fsm.py) and who pings what (health.owner)."""

from __future__ import annotations

from collections import Counter

from services.signaling.health import owner
from services.signaling.health_fsm import HealthTable


def test_three_misses_mark_down_one_answer_marks_up() -> None:
    t = HealthTable(interval=30)
    t.sync([("tgt_1", "sip:100@pbx", "unknown")], now=0)
    changes = []
    for i in range(3):
        assert [p.target_id for p in t.due(i * 30.0)] == ["tgt_1"]
        assert t.due(i * 30.0) == []  # in flight: not sent twice
        changes.append(t.missed("tgt_1", "timeout"))
        assert t.next_timer() == (i + 1) * 30.0
    assert changes[:2] == [None, None]
    assert changes[2] is not None and (changes[2].previous, changes[2].health) == ("unknown", "down")
    t.due(90)
    up = t.answered("tgt_1", 404)  # any answer: a live SIP stack
    assert up is not None and (up.previous, up.health) == ("down", "up") and "404" in up.reason
    t.due(120)
    assert t.answered("tgt_1", 200) is None  # no change, no event


def test_a_miss_between_answers_does_not_count_towards_down() -> None:
    t = HealthTable(interval=1)
    t.sync([("a", "sip:a@h", "up")], now=0)
    for now, alive in enumerate([False, False, True, False, False]):
        t.due(float(now))
        change = t.answered("a", 200) if alive else t.missed("a", "timeout")
        assert change is None
    assert t.probes["a"].health == "up"


def test_sync_keeps_state_drops_gone_targets_and_starts_from_configs_view() -> None:
    t = HealthTable(interval=5)
    t.sync([("a", "sip:a@h", "unknown"), ("b", "sip:b@h", "down")], now=0)
    t.due(0)
    t.missed("a", "x")
    t.sync([("a", "sip:a@h", "unknown"), ("c", "sip:c@h", "unknown")], now=1)
    assert set(t.probes) == {"a", "c"} and t.probes["a"].misses == 1
    t.sync([("a", "sip:a2@h", "unknown")], now=2)  # the URI changed: start over
    assert t.probes["a"].misses == 0 and t.probes["a"].uri == "sip:a2@h"
    t2 = HealthTable(interval=5)
    t2.sync([("b", "sip:b@h", "down")], now=0)
    assert t2.probes["b"].health == "down"


def test_one_node_per_target_spread_and_stable() -> None:
    nodes = ["sig-a", "sig-b", "sig-c"]
    ids = [f"tgt_{i:04x}" for i in range(300)]
    owners = {i: owner(i, nodes) for i in ids}
    share = Counter(owners.values())
    assert set(share) == set(nodes) and min(share.values()) > 60
    # A node leaving moves only its own targets.
    after = {i: owner(i, ["sig-a", "sig-b"]) for i in ids}
    assert all(after[i] == owners[i] for i in ids if owners[i] != "sig-c")
    assert owner("x", []) is None
