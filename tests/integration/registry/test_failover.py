"""Failover with real NATS: Virginia (us1) goes dark, calls go to Oregon (us2), and back."""

from __future__ import annotations

from proto import subjects
from proto.messages import RegionSelect, RegionSelection, RegistryQuery, RegistryReply


async def test_us1_down_selects_us2_and_back(rig) -> None:
    statuses = await rig.statuses()
    await rig.registry()
    asker = await rig.connect("signaling-asker")
    us1 = [await rig.node("signaling", "us1", "sig-us1-a"), await rig.node("signaling", "us1", "sig-us1-b"),
           await rig.node("media", "us1", "media-us1-a")]
    for n in (("signaling", "us2", "sig-us2-a"), ("media", "us2", "media-us2-a")):
        await rig.node(*n)

    async def answers(region: str):
        sel = await rig.select(asker, "us1")
        return sel if sel.ok and sel.region == region else None

    sel = await rig.eventually(lambda: answers("us1"), "us1 selected while healthy")
    assert not sel.failed_over
    assert {n.node_id for n in sel.nodes} == {"sig-us1-a", "sig-us1-b", "media-us1-a"}
    assert sel.candidates[0] == "us2"

    for b in us1:
        await b.stop()
    sel = await rig.eventually(lambda: answers("us2"), "us1 down -> us2")
    assert sel.failed_over and sel.preferred == "us1"
    assert {n.node_id for n in sel.nodes} == {"sig-us2-a", "media-us2-a"}
    assert "us1" in sel.reason

    # One signaling node and one media worker come back: Virginia is whole again.
    await rig.node("signaling", "us1", "sig-us1-a")
    await rig.node("media", "us1", "media-us1-a")
    sel = await rig.eventually(lambda: answers("us1"), "us1 back -> us1")
    assert {n.node_id for n in sel.nodes} == {"sig-us1-a", "media-us1-a"}

    async def seen_down_then_up():
        us1_health = [s.healthy for s in statuses if s.code == "us1"]
        return True in us1_health and False in us1_health and us1_health[-1] is True
    await rig.eventually(seen_down_then_up, "us1 down and up announced on the status subject")
    us1_health = [s.healthy for s in statuses if s.code == "us1"]
    first_down = us1_health.index(False)
    assert True in us1_health[first_down:], us1_health
    assert any(s.code == "us2" and s.healthy for s in statuses)


async def test_no_healthy_region_answers_not_ok(rig) -> None:
    await rig.registry(warmup=0.0)
    asker = await rig.connect("asker")
    sel = await asker.request(subjects.registry_select(), RegionSelect(preferred="us1"), RegionSelection)
    assert not sel.ok and sel.region is None and "us1" in sel.reason
    sel = await asker.request(subjects.registry_select(), RegionSelect(preferred="zz9"), RegionSelection)
    assert not sel.ok and "unknown region" in sel.reason


async def test_exclude_skips_regions_already_tried(rig) -> None:
    await rig.registry()
    asker = await rig.connect("asker")
    for region in ("us1", "us2"):
        await rig.node("signaling", region, f"sig-{region}")
        await rig.node("media", region, f"media-{region}")

    async def both_up():
        r = await asker.request(subjects.registry_query("regions"), RegistryQuery(), RegistryReply)
        rows = {row["code"]: row for row in r.data}
        return rows["us1"]["health"] == "up" and rows["us2"]["health"] == "up"

    await rig.eventually(both_up, "us1 and us2 up")
    sel = await rig.select(asker, "us1", exclude=["us1"])
    assert sel.ok and sel.region == "us2" and sel.failed_over


async def test_two_registries_agree(rig) -> None:
    a = await rig.registry("reg-a")
    b = await rig.registry("reg-b")
    nodes = {("signaling", "us1", "s1"): None, ("media", "us1", "m1"): None,
             ("signaling", "us2", "s2"): None, ("media", "us2", "m2"): None}
    for key in nodes:
        nodes[key] = await rig.node(*key)

    def health(reg):
        return {r["code"]: (r["health"], len(r["live_nodes"])) for r in reg.api.region_rows()
                if r["kind"] == "signaling"}

    async def agree_on(expected_us1: str):
        ha, hb = health(a), health(b)
        return ha == hb and ha["us1"][0] == expected_us1 and ha["us2"][0] == "up"

    await rig.eventually(lambda: agree_on("up"), "both registries see us1 and us2 up")
    await nodes[("media", "us1", "m1")].stop()
    await rig.eventually(lambda: agree_on("down"), "both registries see us1 down")

    def transitions(reg):
        out: list[bool] = []
        for s in reg.history:
            if s.code == "us1" and (not out or out[-1] != s.healthy):
                out.append(s.healthy)
        return out

    assert transitions(a) == transitions(b) == [True, False]
