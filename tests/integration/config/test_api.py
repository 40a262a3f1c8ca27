"""The provisioning API over httpx's ASGI transport, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from proto.messages import RoutingRequest
from services.config.db.models import SipTargetRow
from tests.helpers.config_env import Env

TARGET = {"uri": "sip:100@pbx.example.com;transport=tcp", "username": "100", "password": "s3cret"}


def rn_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Front desk", "dial_sip_client": True, "sip_targets": [dict(TARGET)]}
    body.update(kw)
    return body


def assert_problem(r: Any, status: int, field: str | None = None, says: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert p["status"] == status and p["title"] and p["detail"]
    if field is not None:
        fields = {e["field"]: e["message"] for e in p.get("errors", [])}
        assert field in fields, p
        assert says.lower() in fields[field].lower(), fields[field]
    return p  # type: ignore[no-any-return]


# --- the core contract --------------------------------------------------------------


async def test_contract(env: Env) -> None:
    c = env.client
    r = await c.post("/v1/accounts", json={"name": "Acme"}, headers=env.admin())
    assert r.status_code == 201 and r.json()["id"]
    acc = r.json()["id"]
    r = await c.post(f"/v1/accounts/{acc}/api-keys", headers=env.admin())
    assert r.status_code == 201
    key = r.json()
    assert set(key) >= {"id", "key"}
    h = {"Authorization": f"Bearer {key['key']}"}

    body = {"name": "Front desk", "dial_sip_client": True,
            "sip_targets": [{"uri": "sips:100@pbx.example.com", "username": "100", "password": "pw1",
                             "priority": 10, "weight": 10, "enabled": True,
                             "tls": {"verify": False, "ca_pem": None}}],
            "ring_timeout": 25, "send_digits": "ww123#", "region": "ie1"}
    r = await c.post("/v1/receiving-numbers", json=body, headers=h)
    assert r.status_code == 201, r.text
    rn = r.json()
    assert rn["id"] and rn["account_id"] == acc and rn["region"] == "ie1" and rn["ring_timeout"] == 25
    t = rn["sip_targets"][0]
    assert t["has_password"] is True and "password" not in t
    assert t["transport"] == "tls" and t["secure_media"] is True and t["tls"]["verify"] is False
    assert "pw1" not in r.text
    assert r.headers["etag"]

    r = await c.post("/v1/tracking-numbers", json={"number": "+15551234567", "receiving_number_id": rn["id"]},
                     headers=h)
    assert r.status_code == 201, r.text
    tn = r.json()
    assert tn["id"] and tn["number"] == "+15551234567"

    for coll, obj in (("receiving-numbers", rn), ("tracking-numbers", tn)):
        r = await c.get(f"/v1/{coll}/{obj['id']}", headers=h)
        assert r.status_code == 200 and r.json()["id"] == obj["id"]
        r = await c.get(f"/v1/{coll}", headers=h)
        assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [obj["id"]]
        assert r.json()["next_cursor"] is None
    r = await c.patch(f"/v1/receiving-numbers/{rn['id']}", json={"name": "Reception"}, headers=h)
    assert r.status_code == 200 and r.json()["name"] == "Reception"
    assert r.json()["sip_targets"][0]["has_password"] is True  # untouched targets keep secrets
    r = await c.patch(f"/v1/tracking-numbers/{tn['id']}", json={"name": "Google ads"}, headers=h)
    assert r.status_code == 200 and r.json()["name"] == "Google ads"
    r = await c.get(f"/v1/accounts/{acc}", headers=h)
    assert r.status_code == 200 and r.json()["name"] == "Acme"

    assert (await c.delete(f"/v1/tracking-numbers/{tn['id']}", headers=h)).status_code == 204
    assert (await c.delete(f"/v1/receiving-numbers/{rn['id']}", headers=h)).status_code == 204
    assert_problem(await c.get(f"/v1/tracking-numbers/{tn['id']}", headers=h), 404)
    assert (await c.delete(f"/v1/accounts/{acc}", headers=env.admin())).status_code == 204
    # The account's keys went with it.
    assert_problem(await c.get("/v1/receiving-numbers", headers=h), 401)


async def test_admin_names_the_account(env: Env) -> None:
    acc, _ = await env.account()
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(), headers=env.admin())
    assert_problem(r, 422, "account_id", "required")
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(account_id="acc_00ff"), headers=env.admin())
    assert_problem(r, 422, "account_id", "unknown account")
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(account_id=acc), headers=env.admin())
    assert r.status_code == 201 and r.json()["account_id"] == acc
    r = await env.client.get(f"/v1/receiving-numbers?account_id={acc}", headers=env.admin())
    assert len(r.json()["items"]) == 1


# --- authentication and isolation ---------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"},
                                     {"Authorization": "Bearer " + "x" * 500}])
async def test_401_without_a_valid_key(env: Env, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/v1/receiving-numbers"), ("POST", "/v1/receiving-numbers"),
                         ("GET", "/v1/tracking-numbers"), ("POST", "/v1/accounts"), ("GET", "/v1/regions")):
        r = await env.client.request(method, path, headers=headers, json=rn_body())
        p = assert_problem(r, 401)
        assert "api key" in p["detail"].lower() or "authorization" in p["detail"].lower()
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_another_accounts_objects_are_404(env: Env) -> None:
    acc_a, ha = await env.account("A")
    acc_b, hb = await env.account("B")
    rn = await env.receiving(ha)
    tn = await env.tracking(ha, "+15551230001", rn["id"])
    key_a = (await env.client.get("/v1/api-keys", headers=ha)).json()["items"][0]["id"]
    for path in (f"/v1/receiving-numbers/{rn['id']}", f"/v1/tracking-numbers/{tn['id']}", f"/v1/accounts/{acc_a}",
                 f"/v1/api-keys/{key_a}"):
        assert_problem(await env.client.get(path, headers=hb), 404)
        assert_problem(await env.client.delete(path, headers=hb), 404)
    assert_problem(await env.client.patch(f"/v1/receiving-numbers/{rn['id']}", json={"name": "x"}, headers=hb), 404)
    assert_problem(await env.client.patch(f"/v1/tracking-numbers/{tn['id']}", json={"name": "x"}, headers=hb), 404)
    assert_problem(await env.client.post(f"/v1/accounts/{acc_a}/api-keys", headers=hb), 404)
    # Not in B's lists either, and B cannot point a number at A's receiving number.
    assert (await env.client.get("/v1/receiving-numbers", headers=hb)).json()["items"] == []
    assert (await env.client.get("/v1/tracking-numbers?number=%2B15551230001", headers=hb)).json()["items"] == []
    # Issue 14 item 9: a reference to another account's object is 404, as the object is.
    r = await env.client.post("/v1/tracking-numbers", json={"number": "+15551230002", "receiving_number_id": rn["id"]},
                              headers=hb)
    assert_problem(r, 404, "receiving_number_id", "no such receiving number")
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(account_id=acc_a), headers=hb)
    assert_problem(r, 404)
    # Admin-only routes look absent to an account key.
    assert_problem(await env.client.post("/v1/accounts", json={"name": "x"}, headers=hb), 404)
    assert_problem(await env.client.get("/v1/trunks", headers=hb), 404)
    assert_problem(await env.client.delete(f"/v1/accounts/{acc_b}", headers=hb), 404)
    # The account key sees only its own account.
    assert [a["id"] for a in (await env.client.get("/v1/accounts", headers=hb)).json()["items"]] == [acc_b]


async def test_account_key_cannot_suspend_itself(env: Env) -> None:
    acc, h = await env.account()
    assert_problem(await env.client.patch(f"/v1/accounts/{acc}", json={"status": "suspended"}, headers=h), 403)
    r = await env.client.patch(f"/v1/accounts/{acc}", json={"status": "suspended"}, headers=env.admin())
    assert r.status_code == 200 and r.json()["status"] == "suspended"


# --- duplicates ---------------------------------------------------------------------


async def test_duplicate_number_is_409_in_its_account_and_404_elsewhere(env: Env) -> None:
    _, ha = await env.account("A")
    _, hb = await env.account("B")
    rn_a = await env.receiving(ha)
    rn_b = await env.receiving(hb)
    await env.tracking(ha, "+15551234567", rn_a["id"])
    # The same number, formatted differently: the account that holds it is told so...
    r = await env.client.post("/v1/tracking-numbers", json={"number": "+1 (555) 123-4567",
                                                             "receiving_number_id": rn_a["id"]}, headers=ha)
    assert_problem(r, 409, "number", "already")
    # ...another account is not told that it is provisioned (issue 14 item 9): 404.
    r = await env.client.post("/v1/tracking-numbers", json={"number": "+1 (555) 123-4567",
                                                             "receiving_number_id": rn_b["id"]}, headers=hb)
    p = assert_problem(r, 404, "number", "not available")
    assert "already" not in r.text and "provisioned" not in p["errors"][0]["message"]
    other = await env.tracking(hb, "+15551234568", rn_b["id"])
    r = await env.client.patch(f"/v1/tracking-numbers/{other['id']}", json={"number": "+15551234567"}, headers=hb)
    assert_problem(r, 404)


async def test_concurrent_duplicates_create_one(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    rs = await asyncio.gather(*[
        env.client.post("/v1/tracking-numbers", json={"number": "+15557654321", "receiving_number_id": rn["id"]},
                        headers=h) for _ in range(4)])
    codes = sorted(r.status_code for r in rs)
    assert codes.count(201) == 1 and set(codes) <= {201, 409, 503}, [r.text for r in rs]


# --- bad input: 422 with the field ---------------------------------------------------

BAD_TRACKING = [
    ({"number": "5551234567"}, "number", "starting with +"),
    ({"number": "+1555"}, "number", "too short"),
    ({"number": "+1555123456789012"}, "number", "too long"),
    ({"number": "+999123456"}, "number", "not a phone number"),
    ({"number": "+1555abc4567"}, "number", "only digits"),
    ({"number": ""}, "number", ""),
    ({"number": 15551234567}, "number", ""),
    ({"receiving_number_id": "not an id"}, "receiving_number_id", "pattern"),
    ({"extra": 1}, "extra", "unknown field"),
]


@pytest.mark.parametrize(("patch", "field", "says"), BAD_TRACKING)
async def test_tracking_number_bad_input(env: Env, patch: dict[str, Any], field: str, says: str) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    body = {"number": "+15551234567", "receiving_number_id": rn["id"], **patch}
    assert_problem(await env.client.post("/v1/tracking-numbers", json=body, headers=h), 422, field, says)


BAD_RECEIVING = [
    # SIP URI grammar: the message names the wrong part.
    ({"uri": "http://pbx.example.com"}, "sip_targets[0].uri", "scheme"),
    ({"uri": "sip:100@"}, "sip_targets[0].uri", "host"),
    ({"uri": "sip:100@pbx..example.com"}, "sip_targets[0].uri", "host"),
    ({"uri": "sip:100@300.1.1.1"}, "sip_targets[0].uri", "host"),
    ({"uri": "sip:100@pbx.example.com:0"}, "sip_targets[0].uri", "port"),
    ({"uri": "sip:100@pbx.example.com:70000"}, "sip_targets[0].uri", "port"),
    ({"uri": "sip:100@pbx.example.com:50a"}, "sip_targets[0].uri", "port"),
    ({"uri": "sip:100@pbx.example.com;transport=sctp"}, "sip_targets[0].uri", "transport"),
    ({"uri": "sips:100@pbx.example.com;transport=udp"}, "sip_targets[0].uri", "transport"),
    ({"uri": "sip:100:pw@pbx.example.com"}, "sip_targets[0].uri", "password"),
    ({"uri": "sip:10 0@pbx.example.com"}, "sip_targets[0].uri", "spaces"),
    ({"uri": "sip:100@pbx.example.com?subject=x"}, "sip_targets[0].uri", "headers"),
    ({"uri": "sip:100@pbx.example.com;=x"}, "sip_targets[0].uri", "parameter"),
    ({"uri": "sip:<100>@pbx.example.com"}, "sip_targets[0].uri", "user"),
    # Ranges.
    ({"priority": -1}, "sip_targets[0].priority", "greater than or equal"),
    ({"priority": 70000}, "sip_targets[0].priority", "less than or equal"),
    ({"weight": 0}, "sip_targets[0].weight", "greater than or equal"),
    ({"weight": 65536}, "sip_targets[0].weight", "less than or equal"),
    ({"enabled": "maybe"}, "sip_targets[0].enabled", "boolean"),
    # Credentials and TLS.
    ({"username": None, "password": "pw"}, "sip_targets[0].username", "needs a sip user"),
    ({"password": "a\x00b"}, "sip_targets[0].password", "control"),
    ({"tls": {"ca_pem": "not a pem"}}, "sip_targets[0].tls.ca_pem", "PEM"),
    ({"tls": {"verify": "sometimes"}}, "sip_targets[0].tls.verify", "boolean"),
    ({"tls": {"client_cert_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}},
     "sip_targets[0].tls.client_key_pem", "go together"),
    ({"tls": {"client_key_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}},
     "sip_targets[0].tls.client_key_pem", "PRIVATE KEY"),
    ({"colour": "blue"}, "sip_targets[0].colour", "unknown field"),
]


@pytest.mark.parametrize(("target_patch", "field", "says"), BAD_RECEIVING)
async def test_receiving_number_bad_target(env: Env, target_patch: dict[str, Any], field: str, says: str) -> None:
    _, h = await env.account()
    body = rn_body(sip_targets=[{**TARGET, **target_patch}])
    assert_problem(await env.client.post("/v1/receiving-numbers", json=body, headers=h), 422, field, says)


BAD_RECEIVING_FIELDS = [
    ({"ring_timeout": 0}, "ring_timeout", "greater than or equal"),
    ({"ring_timeout": 601}, "ring_timeout", "less than or equal"),
    ({"ring_timeout": "long"}, "ring_timeout", "integer"),
    ({"send_digits": "12x"}, "send_digits", "digits 0-9"),
    ({"send_digits": "1" * 65}, "send_digits", "at most 64"),
    ({"region": "mars1"}, "region", "known regions: us1 (Virginia), us2 (Oregon), ie1 (Ireland)"),
    ({"name": ""}, "name", "at least 1"),
    ({"name": "a\nb"}, "name", "single line"),
    ({"sip_targets": []}, "sip_targets", "at least 1"),
    ({"sip_targets": [TARGET] * 17}, "sip_targets", "at most 16"),
    ({"dial_sip_client": False}, "dial_sip_client", "must be true"),
    ({"unknown": 1}, "unknown", "unknown field"),
]


@pytest.mark.parametrize(("patch", "field", "says"), BAD_RECEIVING_FIELDS)
async def test_receiving_number_bad_fields(env: Env, patch: dict[str, Any], field: str, says: str) -> None:
    _, h = await env.account()
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(**patch), headers=h)
    p = assert_problem(r, 422)
    messages = {e["field"]: e["message"] for e in p["errors"]}
    assert any(k == field and says.lower() in v.lower() for k, v in messages.items()), messages


async def test_every_region_listed_in_the_error(env: Env) -> None:
    _, h = await env.account()
    p = assert_problem(await env.client.post("/v1/receiving-numbers", json=rn_body(region="xx9"), headers=h), 422)
    for code in ("us1", "us2", "ie1", "de1", "jp1", "sg1", "au1", "br1"):
        assert code in p["errors"][0]["message"]


async def test_patch_bad_input(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    tn = await env.tracking(h, "+15551234567", rn["id"])
    c = env.client
    url = f"/v1/receiving-numbers/{rn['id']}"
    assert_problem(await c.patch(url, json={"name": None}, headers=h), 422, "name", "cannot be null")
    assert_problem(await c.patch(url, json={"region": "zz1"}, headers=h), 422, "region", "known regions")
    assert_problem(await c.patch(url, json={"sip_targets": [{"uri": "sip:x@"}]}, headers=h), 422,
                   "sip_targets[0].uri", "host")
    assert_problem(await c.patch(url, json={"sip_targets": [{**TARGET, "id": "tgt_ffff"}]}, headers=h), 422,
                   "sip_targets[0].id", "not a target")
    assert_problem(await c.patch(f"/v1/tracking-numbers/{tn['id']}", json={"number": "12"}, headers=h), 422,
                   "number", "")
    assert_problem(await c.patch(f"/v1/tracking-numbers/{tn['id']}", json={"receiving_number_id": "rn_00"},
                                 headers=h), 404, "receiving_number_id", "")  # as another account's (issue 14)
    assert_problem(await c.post("/v1/receiving-numbers", content=b"{not json", headers={
        **h, "content-type": "application/json"}), 422)
    assert_problem(await c.get("/v1/tracking-numbers?limit=0", headers=h), 422, "limit", "")
    assert_problem(await c.get("/v1/tracking-numbers?limit=201", headers=h), 422, "limit", "")
    assert_problem(await c.get("/v1/tracking-numbers?cursor=@@@", headers=h), 422, "cursor", "cursor")
    assert_problem(await c.get("/v1/tracking-numbers?number=abc", headers=h), 422, "number", "")


async def test_referenced_receiving_number_cannot_be_deleted(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    tn = await env.tracking(h, "+15551234567", rn["id"])
    assert_problem(await env.client.delete(f"/v1/receiving-numbers/{rn['id']}", headers=h), 409)
    assert (await env.client.delete(f"/v1/tracking-numbers/{tn['id']}", headers=h)).status_code == 204
    assert (await env.client.delete(f"/v1/receiving-numbers/{rn['id']}", headers=h)).status_code == 204


# --- ETag / If-Match ----------------------------------------------------------------


async def test_if_match(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    url = f"/v1/receiving-numbers/{rn['id']}"
    tag = (await env.client.get(url, headers=h)).headers["etag"]
    r1 = await env.client.patch(url, json={"name": "one"}, headers={**h, "If-Match": tag})
    assert r1.status_code == 200 and r1.headers["etag"] != tag
    # A second writer holding the old ETag loses instead of overwriting.
    r2 = await env.client.patch(url, json={"name": "two"}, headers={**h, "If-Match": tag})
    assert_problem(r2, 412)
    assert r2.headers["etag"] == r1.headers["etag"]
    assert (await env.client.get(url, headers=h)).json()["name"] == "one"
    assert_problem(await env.client.delete(url, headers={**h, "If-Match": tag}), 412)
    r3 = await env.client.patch(url, json={"name": "three"}, headers={**h, "If-Match": "*"})
    assert r3.status_code == 200
    # Changing only the targets changes the ETag too.
    r4 = await env.client.patch(url, json={"sip_targets": [TARGET]}, headers={**h, "If-Match": r3.headers["etag"]})
    assert r4.status_code == 200 and r4.headers["etag"] != r3.headers["etag"]


async def test_concurrent_updates_do_not_lose_a_write(env: Env) -> None:
    _, h = await env.account()
    tn_rn = await env.receiving(h)
    tn = await env.tracking(h, "+15551234567", tn_rn["id"])
    url = f"/v1/tracking-numbers/{tn['id']}"
    tag = (await env.client.get(url, headers=h)).headers["etag"]
    rs = await asyncio.gather(*[env.client.patch(url, json={"name": f"w{i}"}, headers={**h, "If-Match": tag})
                                for i in range(5)])
    ok = [r for r in rs if r.status_code == 200]
    assert len(ok) == 1, [r.status_code for r in rs]
    assert all(r.status_code in (412, 503) for r in rs if r.status_code != 200)
    assert (await env.client.get(url, headers=h)).json()["name"] == ok[0].json()["name"]


# --- Idempotency-Key ----------------------------------------------------------------


async def test_idempotency_key(env: Env) -> None:
    _, h = await env.account()
    hk = {**h, "Idempotency-Key": "req-1"}
    r1 = await env.client.post("/v1/receiving-numbers", json=rn_body(), headers=hk)
    r2 = await env.client.post("/v1/receiving-numbers", json=rn_body(), headers=hk)
    assert r1.status_code == r2.status_code == 201
    assert r1.json()["id"] == r2.json()["id"] and r2.headers["idempotent-replayed"] == "true"
    assert len((await env.client.get("/v1/receiving-numbers", headers=h)).json()["items"]) == 1
    r3 = await env.client.post("/v1/receiving-numbers", json=rn_body(name="other"), headers=hk)
    assert_problem(r3, 422, "Idempotency-Key", "different request")
    # Another account may use the same key string independently.
    _, h2 = await env.account("B")
    r4 = await env.client.post("/v1/receiving-numbers", json=rn_body(), headers={**h2, "Idempotency-Key": "req-1"})
    assert r4.status_code == 201 and r4.json()["id"] != r1.json()["id"]
    assert_problem(await env.client.post("/v1/receiving-numbers", json=rn_body(),
                                         headers={**h, "Idempotency-Key": "bad key"}), 422, "Idempotency-Key", "")


async def test_idempotent_api_key_never_shown_twice(env: Env) -> None:
    acc, _ = await env.account()
    hk = {**env.admin(), "Idempotency-Key": "k1"}
    r1 = await env.client.post(f"/v1/accounts/{acc}/api-keys", headers=hk)
    assert r1.status_code == 201
    r2 = await env.client.post(f"/v1/accounts/{acc}/api-keys", headers=hk)
    p = assert_problem(r2, 409)
    assert p["key_id"] == r1.json()["id"] and r1.json()["key"] not in r2.text


# --- pagination and filters ---------------------------------------------------------


async def test_pagination_and_number_filter(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h)
    made = [(await env.tracking(h, f"+1555123000{i}", rn["id"]))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await env.client.get("/v1/tracking-numbers", params=params, headers=h)).json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made and pages == 3
    r = await env.client.get("/v1/tracking-numbers", params={"number": "+1 555 123 0003"}, headers=h)
    assert [i["number"] for i in r.json()["items"]] == ["+15551230003"]
    r = await env.client.get("/v1/tracking-numbers", params={"receiving_number_id": rn["id"], "limit": 200},
                             headers=h)
    assert len(r.json()["items"]) == 5


# --- secrets ------------------------------------------------------------------------


async def test_password_is_write_only_and_sealed(env: Env) -> None:
    _, h = await env.account()
    rn = await env.receiving(h, sip_targets=[{**TARGET, "password": "hunter2"},
                                             {"uri": "sip:pbx2.example.com", "priority": 20}])
    url = f"/v1/receiving-numbers/{rn['id']}"
    text = (await env.client.get(url, headers=h)).text
    assert "hunter2" not in text
    assert [t["has_password"] for t in rn["sip_targets"]] == [True, False]
    async with env.ctx.sessionmaker() as s:
        rows = (await s.execute(select(SipTargetRow.password_sealed))).scalars().all()
    sealed = [x for x in rows if x]
    assert len(sealed) == 1 and "hunter2" not in sealed[0] and sealed[0].startswith("v1:t1:")
    # Re-sending the target with its id but no password keeps it; a new password replaces it.
    t0 = rn["sip_targets"][0]
    keep = {"id": t0["id"], "uri": t0["uri"], "username": "100", "priority": 5}
    r = await env.client.patch(url, json={"sip_targets": [keep]}, headers=h)
    assert r.status_code == 200 and r.json()["sip_targets"][0]["has_password"] is True
    tn = await env.tracking(h, "+15551234567", rn["id"])
    await env.resolver.settled()
    d = env.resolver.decide(RoutingRequest(call_id="c", tracking_number=tn["number"]))
    assert d.ok and d.targets[0].password == "hunter2" and len(d.targets) == 1
    r = await env.client.patch(url, json={"sip_targets": [{**keep, "password": None}]}, headers=h)
    assert r.json()["sip_targets"][0]["has_password"] is False


# --- health and the registry's routes ------------------------------------------------


async def test_health(env: Env) -> None:
    assert (await env.client.get("/healthz")).json()["status"] == "ok"
    r = await env.client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"] is True
    env.ctx.ready_checks["resolver"] = lambda: False
    assert_problem(await env.client.get("/readyz"), 503)


async def test_openapi_served(env: Env) -> None:
    doc = (await env.client.get("/openapi.json")).json()
    assert "/v1/receiving-numbers" in doc["paths"] and "/v1/tracking-numbers/{tn_id}" in doc["paths"]
    assert "password" not in doc["components"]["schemas"]["SipTargetPublic"]["properties"]


async def test_registry_routes_forward(env: Env) -> None:
    _, h = await env.account()
    r = await env.client.get("/v1/regions", headers=h)
    assert r.status_code == 200 and r.json()["verb"] == "regions"
    r = await env.client.get("/v1/allowlist", params={"format": "csv"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv") and "203.0.113.1" in r.text
    assert_problem(await env.client.get("/v1/allowlist", params={"format": "xml"}, headers=h), 422, "format", "")
    r = await env.client.post("/v1/trunks", json={"name": "carrier", "networks": ["198.51.100.0/24", "2001:db8::1"]},
                              headers=env.admin())
    assert r.status_code == 201
    assert env.registry_calls[-1] == ("trunks_add", {"name": "carrier",
                                                     "networks": ["198.51.100.0/24", "2001:db8::1/128"]})
    assert_problem(await env.client.post("/v1/trunks", json={"name": "c", "networks": ["300.1.1.1/8"]},
                                         headers=env.admin()), 422, "networks[0]", "not an IP")
    assert (await env.client.delete("/v1/trunks/t1", headers=env.admin())).status_code == 200
    assert env.registry_calls[-1] == ("trunks_delete", {"id": "t1"})


async def test_idempotency_records_expire(env: Env) -> None:
    from services.config.api.common import purge_idempotency

    _, h = await env.account()
    hk = {**h, "Idempotency-Key": "old"}
    r1 = await env.client.post("/v1/receiving-numbers", json=rn_body(), headers=hk)
    async with env.ctx.sessionmaker() as s:
        assert await purge_idempotency(s, 3600) == 0
        assert await purge_idempotency(s, -1) == 1
    r2 = await env.client.post("/v1/receiving-numbers", json=rn_body(), headers=hk)
    assert r2.status_code == 201 and r2.json()["id"] != r1.json()["id"]


# --- media encryption per target, NAT detection per receiving number ----------------


async def test_media_encryption_per_target_and_nat(env: Env) -> None:
    _, h = await env.account()
    targets = [{"uri": "sips:100@pbx.example.com"},  # default: SRTP on TLS
               {"uri": "sip:100@pbx.example.com;transport=tls", "media_encryption": "none"},  # TLS, plain RTP
               {"uri": "sip:100@pbx.example.com"}]  # default: plain on UDP
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(sip_targets=targets), headers=h)
    assert r.status_code == 201, r.text
    rn = r.json()
    assert rn["nat"] == "auto"
    assert [(t["transport"], t["media_encryption"], t["secure_media"]) for t in rn["sip_targets"]] == [
        ("tls", "srtp", True), ("tls", "none", False), ("udp", "none", False)]
    tn = await env.tracking(h, "+15551230077", rn["id"])
    await env.resolver.settled()
    d = env.resolver.decide(RoutingRequest(call_id="c", tracking_number=tn["number"]))
    assert d.ok and d.nat == "auto"
    assert sorted((t.uri, t.secure_media) for t in d.targets) == sorted(
        [(t["uri"], t["secure_media"]) for t in rn["sip_targets"]])

    # SDES keys over UDP or TCP would cross the network in clear: refused, naming the field.
    url = f"/v1/receiving-numbers/{rn['id']}"
    for uri in ("sip:100@pbx.example.com", "sip:100@pbx.example.com;transport=tcp"):
        r = await env.client.patch(url, json={"sip_targets": [{"uri": uri, "media_encryption": "srtp"}]}, headers=h)
        assert_problem(r, 422, "sip_targets[0].media_encryption", "TLS")
    r = await env.client.post("/v1/receiving-numbers", json=rn_body(
        sip_targets=[{"uri": "sip:100@pbx.example.com", "media_encryption": "srtp"}]), headers=h)
    assert_problem(r, 422, "sip_targets[0].media_encryption", "TLS")
    r = await env.client.patch(url, json={"sip_targets": [{"uri": "sip:1@pbx.example.com", "media_encryption": "aes"}]},
                               headers=h)
    assert r.status_code == 422

    # NAT detection can be turned off for a receiving number (and back on).
    r = await env.client.patch(url, json={"nat": "off"}, headers=h)
    assert r.status_code == 200 and r.json()["nat"] == "off"
    await env.resolver.settled()
    assert env.resolver.decide(RoutingRequest(call_id="c", tracking_number=tn["number"])).nat == "off"
    assert (await env.client.patch(url, json={"nat": "sometimes"}, headers=h)).status_code == 422
    assert (await env.client.patch(url, json={"nat": None}, headers=h)).status_code == 422
