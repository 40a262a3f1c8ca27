"""Issue 14 item 9: every route of the API, asked by account B about account A's objects
(in the path or inside a body), answers 404, exactly as for an object that does not exist;
request bodies over the limit are refused with 413 before they are parsed; the SQLite file
that holds the sealed secrets is readable by its owner only."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

from services.config.records import new_record
from tests.helpers.config_env import Env


async def test_every_route_answers_404_for_another_accounts_objects(env: Env) -> None:
    acc_a, ha = await env.account("A")
    acc_b, hb = await env.account("B")
    rn = await env.receiving(ha)
    tn = await env.tracking(ha, "+15551230001", rn["id"])
    rn_b = await env.receiving(hb)
    r = await env.client.post("/v1/webhooks", json={"url": "https://hooks.example.com/a", "secret": "x" * 24},
                              headers=ha)
    assert r.status_code == 201, r.text
    wh = r.json()["id"]
    key_a = (await env.client.get("/v1/api-keys", headers=ha)).json()["items"][0]["id"]
    async with env.ctx.sessionmaker() as session:
        rec = new_record("c0ffee00a", time.time())
        rec.account_id = acc_a
        session.add(rec)
        await session.commit()

    probes: list[tuple[str, str, dict[str, Any] | None]] = []
    for path in (f"/v1/accounts/{acc_a}", f"/v1/receiving-numbers/{rn['id']}", f"/v1/tracking-numbers/{tn['id']}",
                 f"/v1/api-keys/{key_a}", f"/v1/webhooks/{wh}"):
        probes += [("GET", path, None), ("DELETE", path, None)]
    probes += [
        ("PATCH", f"/v1/accounts/{acc_a}", {"name": "x"}),
        ("PATCH", f"/v1/receiving-numbers/{rn['id']}", {"name": "x"}),
        ("PATCH", f"/v1/tracking-numbers/{tn['id']}", {"name": "x"}),
        ("GET", f"/v1/accounts/{acc_a}/api-keys", None),
        ("POST", f"/v1/accounts/{acc_a}/api-keys", None),
        ("GET", "/v1/calls/c0ffee00a", None),
        ("GET", "/v1/calls/c0ffee00a/events", None),
        ("GET", f"/v1/webhooks/{wh}/deliveries", None),
        ("POST", f"/v1/webhooks/{wh}/deliveries/whd_00ff/redeliver", None),
        # References to A's objects inside B's bodies.
        ("POST", "/v1/tracking-numbers", {"number": "+15551230002", "receiving_number_id": rn["id"]}),
        ("POST", "/v1/tracking-numbers", {"number": "+15551230001", "receiving_number_id": rn_b["id"]}),
        ("POST", "/v1/receiving-numbers", {"name": "x", "dial_sip_client": True, "account_id": acc_a,
                                           "sip_targets": [{"uri": "sip:1@pbx.example.com"}]}),
        ("POST", "/v1/webhooks", {"url": "https://hooks.example.com/b", "secret": "y" * 24, "account_id": acc_a}),
    ]
    answers = [(m, p, (await env.client.request(m, p, json=body, headers=hb)).status_code) for m, p, body in probes]
    wrong = [a for a in answers if a[2] != 404]
    print(f"{len(answers)} cross-account probes, {len(wrong)} not 404")
    assert not wrong, wrong
    # A's receiving number and one that never existed get the same answer.
    answers_for = []
    for rn_id in (rn["id"], "rn_0000"):
        r = await env.client.post("/v1/tracking-numbers", json={"number": "+15551230002", "receiving_number_id": rn_id},
                                  headers=hb)
        answers_for.append((r.status_code, r.json()["errors"]))
    assert answers_for[0] == answers_for[1]
    # B's own number elsewhere may point at B's receiving number as before.
    r = await env.client.post("/v1/tracking-numbers", json={"number": "+15551230003", "receiving_number_id": rn_b["id"]},
                              headers=hb)
    assert r.status_code == 201, r.text
    # And A's objects are untouched.
    assert (await env.client.get(f"/v1/tracking-numbers/{tn['id']}", headers=ha)).json()["name"] == tn["name"]
    assert (await env.client.get(f"/v1/accounts/{acc_b}", headers=hb)).status_code == 200


async def test_a_body_over_the_limit_is_413_before_parsing(env: Env) -> None:
    _, h = await env.account()
    limit = env.ctx.settings.max_body_bytes
    big = b'{"name": "' + b"x" * (limit + 10) + b'"}'
    r = await env.client.post("/v1/receiving-numbers", content=big,
                              headers=h | {"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["status"] == 413 and "SWITCHBOARD_MAX_BODY_BYTES" in r.json()["detail"]

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = await env.client.post("/v1/receiving-numbers", content=chunks(),
                              headers=h | {"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    # A body under the limit is parsed as usual (here: invalid, 422).
    r = await env.client.post("/v1/receiving-numbers", json={"name": 5}, headers=h)
    assert r.status_code == 422


async def test_sqlite_database_is_0600(tmp_path: Path) -> None:
    from services.config.db.engine import make_engine

    path = tmp_path / "data" / "switchboard.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    await engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # an existing file from an older version is tightened too
    await make_engine(f"sqlite+aiosqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600




async def test_webhooks_to_our_own_network_are_refused(tmp_path: Path, db_url: str) -> None:
    """SSRF: a customer must not make us POST to loopback, a private service or the cloud
    metadata address, neither when registering the URL nor through a name resolving there."""
    from services.config.netguard import delivery_refusal
    from tests.helpers.config_env import make_env

    env, close = await make_env(tmp_path, db_url, webhook_allow_private=False)
    try:
        _, h = await env.account()
        for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "https://10.1.2.3/x",
                    "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://[fd00::1]/x",
                    "http://192.168.1.10/x", "http://[::ffff:127.0.0.1]/x", "http://100.64.0.1/x"):
            r = await env.client.post("/v1/webhooks", json={"url": url, "secret": "s" * 24}, headers=h)
            assert r.status_code == 422, (url, r.text)
            [err] = r.json()["errors"]
            assert err["field"] == "url" and "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE=true" in err["message"], err
        r = await env.client.post("/v1/webhooks", json={"url": "https://hooks.example.com/x", "secret": "s" * 24},
                                  headers=h)
        assert r.status_code == 201, r.text
    finally:
        await close()
    # A name that resolves inside (DNS the customer controls) is refused when delivering.
    import asyncio
    import socket

    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def fake(host, port, *args, **kw):  # type: ignore[no-untyped-def]
        if host == "inside.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]
        return await real(host, port, *args, **kw)

    loop.getaddrinfo = fake  # type: ignore[method-assign]
    try:
        why = await delivery_refusal("https://inside.example.com/hook")
    finally:
        loop.getaddrinfo = real  # type: ignore[method-assign]
    assert why is not None and "10.0.0.5" in why and "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE" in why
