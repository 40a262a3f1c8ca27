"""Restarts lose nothing and judge no one wrongly: the registry's and the NATS server's."""

from __future__ import annotations

import asyncio

from proto import subjects
from proto.messages import RegistryQuery, RegistryReply, TrunkCheck, TrunkCheckResult

REGIONS = ("us1", "us2")


async def _query(bus, verb: str, **params) -> RegistryReply:
    return await bus.request(subjects.registry_query(verb), RegistryQuery(params=params), RegistryReply,
                             timeout=3.0)


async def _all_up(rig, bus) -> bool:
    try:
        r = await _query(bus, "regions", kind="signaling")
    except Exception:
        return False
    rows = {row["code"]: row["health"] for row in r.data}
    return all(rows[c] == "up" for c in REGIONS)


async def _start_nodes(rig) -> None:
    for region in REGIONS:
        await rig.node("signaling", region, f"sig-{region}")
        await rig.node("media", region, f"media-{region}")


async def _trunk_names(bus) -> set[str]:
    r = await _query(bus, "trunks_list")
    return {t["name"] for t in r.data}


async def test_registry_restart_keeps_trunks_and_regions_up(rig) -> None:
    reg = await rig.registry("reg-1")
    admin = await rig.connect("admin")
    await _start_nodes(rig)
    await rig.eventually(lambda: _all_up(rig, admin), "regions up")

    added = await _query(admin, "trunks_add", name="carrier-x", networks=["198.18.0.0/15", "2001:db8:300::/48"])
    assert added.status == 201, added.data
    trunk_id = added.data["id"]

    await rig.stop_registry(reg)
    statuses = await rig.statuses()
    reg2 = await rig.registry("reg-2")
    assert "carrier-x" in await _trunk_names(admin)
    check = await admin.request(subjects.registry_trunk_check(), TrunkCheck(address="198.19.1.1:5060"),
                                TrunkCheckResult)
    assert check.allowed and check.trunk == "carrier-x"

    # Past the warm-up, with the nodes still beating: nothing was ever declared down.
    await rig.eventually(lambda: _all_up(rig, admin), "regions up after restart")
    await asyncio.sleep(reg2.settings.warmup_seconds + 0.3)
    assert await _all_up(rig, admin)
    assert not [s for s in statuses if s.code in REGIONS and not s.healthy]
    assert not [s for s in reg2.history if s.code in REGIONS and not s.healthy]

    deleted = await _query(admin, "trunks_delete", id=trunk_id)
    assert deleted.status == 200
    assert "carrier-x" not in await _trunk_names(admin)
    assert (await _query(admin, "trunks_delete", id=trunk_id)).status == 404


async def test_nats_restart_keeps_trunks_and_does_not_mark_regions_down(rig, nats_server) -> None:
    a = await rig.registry("reg-a")
    b = await rig.registry("reg-b")
    admin = await rig.connect("admin")
    await _start_nodes(rig)
    await rig.eventually(lambda: _all_up(rig, admin), "regions up")
    added = await _query(admin, "trunks_add", name="carrier-y", networks=["198.51.100.128/25"])
    assert added.status == 201

    # Down for several expiry periods: longer than any node's timeout.
    nats_server.stop()
    await asyncio.sleep(a.settings.expiry_factor * 0.2 * 4)
    nats_server.start()

    await rig.eventually(lambda: _all_up(rig, admin), "regions up after NATS restart")
    await asyncio.sleep(a.settings.warmup_seconds + 0.3)
    for reg in (a, b):
        assert not [s for s in reg.history if s.code in REGIONS and not s.healthy], reg.history
    assert "carrier-y" in await _trunk_names(admin)
    # Both instances' trunk-check caches have the trunk again.
    for reg in (a, b):
        await rig.eventually(lambda reg=reg: _has(reg, "carrier-y"), f"{reg.settings.node_id} trunk cache")


async def _has(reg, name: str) -> bool:
    return any(t.name == name for t in reg.api.all_trunks())


async def test_trunks_added_on_one_instance_are_seen_by_the_other(rig) -> None:
    a = await rig.registry("reg-a")
    b = await rig.registry("reg-b")
    admin = await rig.connect("admin")
    r = await _query(admin, "trunks_add", name="carrier-z", networks=["192.0.2.128/25"])
    assert r.status == 201
    for reg in (a, b):
        await rig.eventually(lambda reg=reg: _has(reg, "carrier-z"), "trunk seen by every instance")
