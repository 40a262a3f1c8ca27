"""The routing resolver over real NATS, and two whole config instances that stay coherent."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from proto import subjects
from proto.messages import ConfigChanged, RoutingDecision, RoutingRequest
from services.common.bus import Bus
from services.common.natsserver import NatsServer, free_port
from services.config.main import Config
from services.config.secrets import generate_key_spec
from services.config.settings import ConfigSettings
from tests.helpers.config_env import ADMIN, eventually, make_env


async def resolve(bus: Bus, number: str) -> RoutingDecision:
    return await bus.request(subjects.routing_resolve(), RoutingRequest(call_id="c1", tracking_number=number),
                             RoutingDecision, timeout=2)


async def test_resolve_over_nats(tmp_path: Path, db_url: str, bus: Bus) -> None:
    env, close = await make_env(tmp_path, db_url, bus, resolver=True)
    try:
        acc, h = await env.account()
        rn = await env.receiving(h, sip_targets=[
            {"uri": "sips:100@pbx.example.com", "username": "100", "password": "pw-a", "priority": 10},
            {"uri": "sip:100@backup.example.com;transport=tcp", "username": "u2", "password": "pw-b", "priority": 20},
            {"uri": "sip:100@off.example.com", "priority": 1, "enabled": False},
        ], ring_timeout=25, send_digits="ww123#", region="de1")
        await env.tracking(h, "+15551234567", rn["id"])
        await env.resolver.settled()

        d = await resolve(bus, "+15551234567")
        assert d.ok and d.status == 200 and d.account_id == acc and d.receiving_number_id == rn["id"]
        assert [t.uri for t in d.targets] == ["sips:100@pbx.example.com", "sip:100@backup.example.com;transport=tcp"]
        first, second = d.targets
        assert (first.transport, first.secure_media, first.username, first.password) == ("tls", True, "100", "pw-a")
        assert (second.transport, second.secure_media, second.password) == ("tcp", False, "pw-b")
        assert d.secure_media is True and d.ring_timeout == 25 and d.send_digits == "ww123#"
        assert d.region_preference == "de1"
        # The secret never shows in a repr (logs).
        assert "pw-a" not in repr(d)

        d = await resolve(bus, "+15550000000")
        assert (d.ok, d.status) == (False, 404)
        assert (await resolve(bus, "1 (555) 123-4567")).ok  # national formatting still finds it

        await env.client.patch(f"/v1/receiving-numbers/{rn['id']}", json={"enabled": False}, headers=h)
        await env.resolver.settled()
        d = await resolve(bus, "+15551234567")
        assert (d.ok, d.status, d.reason) == (False, 480, "receiving number disabled")

        await env.client.patch(f"/v1/receiving-numbers/{rn['id']}", json={"enabled": True}, headers=h)
        await env.client.patch(f"/v1/accounts/{acc}", json={"status": "suspended"}, headers=env.admin())
        await env.resolver.settled()
        d = await resolve(bus, "+15551234567")
        assert (d.ok, d.status, d.reason) == (False, 403, "account suspended")

        await env.client.delete(f"/v1/accounts/{acc}", headers=env.admin())
        await env.resolver.settled()
        assert (await resolve(bus, "+15551234567")).status == 404
    finally:
        await close()


async def test_weighted_shuffle_over_nats(tmp_path: Path, db_url: str, bus: Bus) -> None:
    env, close = await make_env(tmp_path, db_url, bus, resolver=True)
    try:
        _, h = await env.account()
        rn = await env.receiving(h, sip_targets=[
            {"uri": "sip:a@pbx.example.com", "weight": 30}, {"uri": "sip:b@pbx.example.com", "weight": 10},
            {"uri": "sip:c@pbx.example.com", "priority": 5}])
        await env.tracking(h, "+15551234567", rn["id"])
        await env.resolver.settled()
        firsts: Counter[str] = Counter()
        for _ in range(400):
            d = await resolve(bus, "+15551234567")
            assert d.targets[0].uri == "sip:c@pbx.example.com"  # lower priority value goes first
            firsts[d.targets[1].uri] += 1
        share = firsts["sip:a@pbx.example.com"] / 400
        assert 0.6 < share < 0.9, firsts  # weight 30:10 -> 75 %
    finally:
        await close()


async def test_change_event_from_another_process_invalidates(tmp_path: Path, db_url: str, bus: Bus) -> None:
    """A resolver not told directly (no local listener) learns of a write from the bus."""
    key = generate_key_spec("shared")
    env, close = await make_env(tmp_path, db_url, None, resolver=False, secret_key=key)
    watcher, close2 = await make_env(tmp_path, db_url, bus, resolver=True, secret_key=key)
    try:
        _, h = await env.account()
        rn = await env.receiving(h)
        tn = await env.tracking(h, "+15551234567", rn["id"])
        assert watcher.resolver.decide(RoutingRequest(call_id="c", tracking_number=tn["number"])).status == 404
        await bus.publish(subjects.config_changed("tracking_numbers"),
                          ConfigChanged(entity="tracking_numbers", id=tn["id"], account_id=tn["account_id"],
                                        op="created"))
        await eventually(lambda: watcher.resolver.decide(
            RoutingRequest(call_id="c", tracking_number=tn["number"])).ok)
    finally:
        await close()
        await close2()


@pytest.fixture
async def two_instances(tmp_path: Path, db_url: str, nats_server: NatsServer):
    key = generate_key_spec("k1")
    instances = []
    for i in range(2):
        s = ConfigSettings(nats_url=nats_server.url, database_url=db_url, admin_token=ADMIN, secret_key=key,
                           http_host="127.0.0.1", http_port=free_port(), data_dir=tmp_path / f"d{i}",
                           node_id=f"cfg{i}", region="us1")
        b = await Bus.connect(nats_server.url, f"config-{i}")
        comp = Config(b, s)
        await comp.start()  # one after the other: the second finds the schema migrated
        instances.append((comp, b))
    yield [c for c, _ in instances]
    for comp, b in instances:
        await comp.stop()
        await b.close()


async def test_two_instances_agree(two_instances: list[Config], bus: Bus) -> None:
    """Done-when: provision over HTTP through instance A, resolve over NATS; a change made
    through A is seen by B's resolver (and the reverse). How fast is the benchmark's business
    (bench/resolve.py); here a generous bound only keeps a broken propagation from hanging."""
    a, b = two_instances
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.http_port}") as ca, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.http_port}") as cb:
        assert (await ca.get("/readyz")).status_code == 200 and (await cb.get("/readyz")).status_code == 200
        acc = (await ca.post("/v1/accounts", json={"name": "Acme"}, headers=admin)).json()["id"]
        key = (await ca.post(f"/v1/accounts/{acc}/api-keys", headers=admin)).json()["key"]
        h = {"Authorization": f"Bearer {key}"}
        r = await ca.post("/v1/receiving-numbers", headers=h, json={
            "name": "Front desk", "dial_sip_client": True,
            "sip_targets": [{"uri": "sip:100@pbx.example.com;transport=tcp", "username": "100", "password": "pw"}],
            "ring_timeout": 20, "send_digits": "ww123#", "region": "us1"})
        assert r.status_code == 201, r.text
        rn = r.json()
        assert (await ca.post("/v1/tracking-numbers", headers=h,
                              json={"number": "+15551234567", "receiving_number_id": rn["id"]})).status_code == 201
        req = RoutingRequest(call_id="c1", tracking_number="+15551234567")

        await eventually(lambda: b.resolver.decide(req).ok, timeout=10.0)
        # Both instances answer the queue group: every answer is the same decision.
        decisions = await asyncio.gather(*[resolve(bus, "+15551234567") for _ in range(20)])
        assert all(d.ok and d.targets[0].password == "pw" and d.send_digits == "ww123#" for d in decisions)

        # A change through A is seen by B ...
        r = await ca.patch(f"/v1/receiving-numbers/{rn['id']}", json={"enabled": False}, headers=h)
        assert r.status_code == 200
        await eventually(lambda: b.resolver.decide(req).status == 480, timeout=10.0)
        # ... and one through B by A.
        r = await cb.patch(f"/v1/receiving-numbers/{rn['id']}", json={"enabled": True, "ring_timeout": 45},
                           headers=h)
        assert r.status_code == 200
        await eventually(lambda: a.resolver.decide(req).ring_timeout == 45, timeout=10.0)
        await b.resolver.settled()  # B applies its own change in the background too: both must answer 45
        decisions = await asyncio.gather(*[resolve(bus, "+15551234567") for _ in range(20)])
        assert all(d.ok and d.ring_timeout == 45 for d in decisions)
        # Both answered some of those (queue group spreads the load).
        assert a.resolver.loaded and b.resolver.loaded


async def test_registry_forwarding_over_the_bus(tmp_path: Path, bus: Bus) -> None:
    """A fake registry responder on the bus; then none at all -> 503 problem."""
    from proto.messages import RegistryQuery, RegistryReply

    db = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    env, close = await make_env(tmp_path, db, bus, registry_timeout=0.5)
    seen: list[tuple[str, dict]] = []

    def responder(verb: str):
        async def answer(q: RegistryQuery) -> RegistryReply:
            seen.append((verb, q.params))
            if verb == "allowlist" and q.params.get("format") == "nftables":
                return RegistryReply(text="table inet switchboard {}\n", content_type="text/plain")
            if verb == "trunks_delete":
                return RegistryReply(status=404, data={"error": "no such trunk"})
            return RegistryReply(data=[{"code": "us1", "healthy": True}])
        return answer

    try:
        _, h = await env.account()
        r = await env.client.get("/v1/regions", headers=h)
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
        assert "registry" in r.json()["detail"]
        for verb in ("regions", "allowlist", "trunks_list", "trunks_add", "trunks_delete"):
            await bus.subscribe(subjects.registry_query(verb), responder(verb), RegistryQuery)
        await bus.nc.flush()
        r = await env.client.get("/v1/regions", headers=h)
        assert r.status_code == 200 and r.json() == [{"code": "us1", "healthy": True}]
        r = await env.client.get("/v1/allowlist?format=nftables", headers=h)
        assert r.status_code == 200 and r.text.startswith("table inet") and r.headers["content-type"].startswith(
            "text/plain")
        assert seen[-1] == ("allowlist", {"format": "nftables"})
        r = await env.client.post("/v1/trunks", json={"name": "c1", "networks": ["192.0.2.0/24"]},
                                  headers=env.admin())
        assert r.status_code == 200 and seen[-1] == ("trunks_add", {"name": "c1", "networks": ["192.0.2.0/24"]})
        r = await env.client.delete("/v1/trunks/tr_1", headers=env.admin())
        assert r.status_code == 404 and seen[-1] == ("trunks_delete", {"id": "tr_1"})
    finally:
        await close()


async def test_key_rotation_reseals(tmp_path: Path, db_url: str) -> None:
    from services.config.secrets import SecretBox, reseal

    old = generate_key_spec("old")
    env, close = await make_env(tmp_path, db_url, None, resolver=False, secret_key=old)
    try:
        _, h = await env.account()
        await env.receiving(h)
        rotated = SecretBox.from_spec(f"{generate_key_spec('new')},{old}")
        assert await reseal(env.ctx.sessionmaker, rotated) == 1
        assert await reseal(env.ctx.sessionmaker, rotated) == 0
        from sqlalchemy import select

        from services.config.db.models import SipTargetRow

        async with env.ctx.sessionmaker() as s:
            sealed = (await s.execute(select(SipTargetRow.password_sealed))).scalar_one()
        assert sealed.startswith("v1:new:") and rotated.open(sealed) == "s3cret"
    finally:
        await close()
