"""Membership, health and failover selection, with a fake clock (no I/O)."""

from __future__ import annotations

import pytest

from proto.messages import Heartbeat, RegionSelect
from services.registry import selection, topology
from services.registry.errors import BadHeartbeat
from services.registry.membership import MAX_LAG, Membership

TOPO = topology.load()
INTERVAL = 1.0


def hb(service: str, region: str, node: str, **kw) -> Heartbeat:
    return Heartbeat(service=service, region=region, node_id=node, interval=INTERVAL, **kw)


def whole(m: Membership, region: str, now: float, suffix: str = "") -> None:
    m.observe(hb("signaling", region, f"sig-{region}{suffix}"), now)
    m.observe(hb("media", region, f"media-{region}{suffix}"), now)


def fresh(now: float = 0.0, warmup: float = 0.0) -> Membership:
    return Membership(TOPO, now=now, expiry_factor=3.0, warmup=warmup)


# --- membership ---------------------------------------------------------------------


def test_region_needs_signaling_and_media() -> None:
    m = fresh()
    m.observe(hb("signaling", "us1", "s1"), 0)
    assert not m.view("us1", 0).healthy
    assert "media worker" in m.view("us1", 0).reason()
    m.observe(hb("media", "us1", "m1"), 0)
    assert m.view("us1", 0).healthy
    m.observe(hb("registry", "us1", "r1"), 0)  # listed, never counted
    assert len(m.view("us1", 0).nodes()) == 2


def test_node_expires_after_missed_heartbeats() -> None:
    m = fresh()
    whole(m, "us1", 0)
    assert m.expire(2.9) == []
    gone = m.expire(3.0)
    assert {n.node_id for n in gone} == {"sig-us1", "media-us1"}
    assert not m.view("us1", 3.0).healthy


def test_heartbeats_keep_a_node_alive() -> None:
    m = fresh()
    for t in range(10):
        whole(m, "us1", t)
        assert m.expire(t + 0.5) == []


def test_a_busy_nodes_late_heartbeats_do_not_make_it_dead() -> None:
    """A media worker under load says its loop runs 2 s late: its heartbeats are expected
    2 s later each, so 4 s of silence is a busy node, not a dead one; a node that is not
    busy is judged on its interval alone."""
    m = fresh()
    m.observe(hb("signaling", "us1", "sig"), 0)
    m.observe(hb("media", "us1", "busy", lag=2.0), 0)
    m.observe(hb("media", "us1", "idle"), 0)
    assert {n.node_id for n in m.expire(4.0)} == {"sig", "idle"}
    assert [n.node_id for n in m.expire(8.9)] == []
    assert [n.node_id for n in m.expire(9.0)] == ["busy"]  # 3 × (1 s + 2 s lag)


def test_a_reported_lag_cannot_postpone_expiry_for_ever() -> None:
    m = fresh()
    m.observe(hb("media", "us1", "m", lag=3600.0), 0)
    assert [n.node_id for n in m.expire(3 * (INTERVAL + MAX_LAG))] == ["m"]


def test_the_registrys_own_stall_is_not_the_nodes_silence() -> None:
    m = fresh()
    whole(m, "us1", 0)
    m.stalled(5.0)  # our loop ran 5 s late: their heartbeats may be waiting unread
    assert m.expire(7.9) == []
    assert len(m.expire(8.0)) == 2


def test_changes_announce_each_transition_once() -> None:
    m = fresh()
    assert [s for s in m.changes(0) if s.code == "us1"][0].healthy is False
    assert m.changes(0) == []
    whole(m, "us1", 1)
    (up,) = m.changes(1)
    assert up.code == "us1" and up.healthy and up.signaling_nodes == 1 and up.media_nodes == 1
    assert m.changes(1.5) == []
    m.expire(10)
    (down,) = m.changes(10)
    assert down.code == "us1" and not down.healthy and down.reason


def test_warmup_never_declares_down_but_announces_up() -> None:
    m = fresh(now=0, warmup=3.0)
    assert m.changes(1) == []
    view = m.view("us1", 1)
    assert view.health == "unknown" and view.usable()
    whole(m, "us2", 1)
    assert [s.code for s in m.changes(1)] == ["us2"]
    down_later = {s.code for s in m.changes(3.0) if not s.healthy}
    assert "us1" in down_later and "us2" not in down_later
    assert not m.view("us1", 3.0).usable()


def test_disconnect_pauses_expiry_and_reconnect_grants_grace() -> None:
    m = fresh()
    whole(m, "us1", 0)
    m.pause()
    assert m.expire(100) == []
    m.resume(100)
    assert m.expire(102.9) == []  # a full expiry period after the reconnect
    assert len(m.expire(103)) == 2


@pytest.mark.parametrize(
    ("beat", "tokens", "words"),
    [
        (hb("signaling", "zz9", "n1"), None, "not a signaling region"),
        (hb("signaling", "us1", "n1"), ("signaling", "us1", "n2"), "subject says"),
        (hb("signaling", "us1", "n1").model_copy(update={"interval": 0}), None, "interval"),
        (hb("signaling", "us1", "n1", load=-1), None, "negative"),
        (hb("signaling", "us1", "n1", addresses=["1.2.3.4", "bad address!"]), None, "address"),
        (hb("signaling", "us1", "n.1"), None, "node_id"),
    ],
)
def test_bad_heartbeats_are_rejected(beat, tokens, words) -> None:
    with pytest.raises(BadHeartbeat, match=words):
        fresh().validate(beat, tokens)


def test_good_heartbeat_validates() -> None:
    fresh().validate(hb("media", "us1", "w1", addresses=["198.51.100.20", "media-1.example.net"]),
                     ("media", "us1", "w1"))


def test_media_region_nodes_by_address() -> None:
    m = fresh()
    m.observe(hb("media", "us1", "w1", addresses=["198.51.100.20"]), 0)
    m.observe(hb("media", "us1", "w2", addresses=["127.0.0.1"]), 0)
    assert [n.node_id for n in m.media_region_nodes("iad1")] == ["w1"]


# --- selection ----------------------------------------------------------------------


def pick(m: Membership, now: float = 1.0, **kw):
    return selection.select(TOPO, m.views(now), RegionSelect(**kw))


def test_preferred_when_healthy() -> None:
    m = fresh()
    for r in ("us1", "us2", "br1"):
        whole(m, r, 0)
    sel = pick(m, preferred="us1")
    assert sel.ok and sel.region == "us1" and not sel.failed_over
    assert sel.candidates == ["us2", "br1"]
    assert {n.service for n in sel.nodes} == {"signaling", "media"}


def test_failover_follows_the_order_in_the_file() -> None:
    m = fresh()
    whole(m, "br1", 0)
    whole(m, "ie1", 0)
    sel = pick(m, preferred="us1")  # us2 is down too: next is br1
    assert sel.ok and sel.region == "br1" and sel.failed_over and sel.candidates == ["ie1"]
    assert "us1" in sel.reason


def test_exclude_and_need() -> None:
    m = fresh()
    whole(m, "us1", 0)
    m.observe(hb("media", "us2", "m-us2"), 0)  # us2 has media but no signaling
    sel = pick(m, preferred="us1", exclude=["us1"])
    assert not sel.ok and "no healthy region" in sel.reason
    sel = pick(m, preferred="us1", exclude=["us1"], need=["media"])
    assert sel.ok and sel.region == "us2" and [n.node_id for n in sel.nodes] == ["m-us2"]


def test_nothing_healthy_or_unknown_region() -> None:
    assert not pick(fresh(), preferred="us1").ok
    sel = pick(fresh(), preferred="xx9")
    assert not sel.ok and "unknown region" in sel.reason


def test_no_preference_uses_file_order() -> None:
    m = fresh()
    whole(m, "jp1", 0)
    assert pick(m).region == "jp1"


def test_warming_up_keeps_the_preferred_region() -> None:
    m = fresh(now=0, warmup=5)
    sel = pick(m, now=1, preferred="us1")
    assert sel.ok and sel.region == "us1" and not sel.nodes


def test_nodes_sorted_by_load() -> None:
    m = fresh()
    m.observe(hb("signaling", "us1", "busy", capacity=10, load=9), 0)
    m.observe(hb("signaling", "us1", "idle", capacity=10, load=1), 0)
    m.observe(hb("media", "us1", "m"), 0)
    assert [n.node_id for n in pick(m, preferred="us1", need=["signaling"]).nodes] == ["idle", "busy"]


def test_every_region_fails_over_somewhere_else() -> None:
    for r in TOPO.signaling_regions:
        assert r.code not in r.failover and len(set(r.failover)) == len(r.failover)
