"""Status webhooks end to end: events in the CALLS stream -> call-record consumer ->
queued deliveries -> a real HTTP receiver on loopback, signed, in order, retried."""

from __future__ import annotations

import asyncio
import time
import uuid

from services.config.webhooks import SIGNATURE_HEADER, sign, verify

from .conftest import TRACKING, CallEnv, Receiver, full_call

SECRET = "whsec_test_secret_0123456789"
STATUSES = ["initiated", "ringing", "answered", "completed"]


async def _provision(calls: CallEnv, url: str, events: list[str] | None = None,
                     name: str = "Acme", number: str = TRACKING) -> tuple[str, dict[str, str], str]:
    acc, headers = await calls.env.account(name)
    rn = await calls.env.receiving(headers)
    await calls.env.tracking(headers, number, rn["id"])
    body: dict[str, object] = {"url": url, "secret": SECRET}
    if events is not None:
        body["events"] = events
    r = await calls.client.post("/v1/webhooks", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return acc, headers, r.json()["id"]


def _check_signed(item: dict[str, object]) -> None:
    headers = item["headers"]
    assert isinstance(headers, dict)
    raw = item["raw"]
    assert isinstance(raw, bytes)
    assert verify(SECRET, raw, headers[SIGNATURE_HEADER.lower()])
    t = int(headers[SIGNATURE_HEADER.lower()].split(",")[0][2:])
    assert headers[SIGNATURE_HEADER.lower()] == sign(SECRET, raw, t)
    assert not verify("another-secret-entirely", raw, headers[SIGNATURE_HEADER.lower()])


async def test_webhook_gets_each_status_signed_and_in_order(calls: CallEnv) -> None:
    async with Receiver() as rx:
        acc, headers, wh = await _provision(calls, rx.url)
        r = await calls.client.get(f"/v1/webhooks/{wh}", headers=headers)
        assert r.status_code == 200 and "secret" not in r.json() and r.json()["has_secret"] is True
        assert r.json()["events"] == STATUSES
        await calls.dispatcher()
        await calls.recorder()
        cid = uuid.uuid4().hex
        await calls.publish(full_call(cid, acc))
        got = await rx.wait(4)
        await asyncio.sleep(0.3)  # nothing more comes
        assert [g["json"]["event"] for g in rx.got] == STATUSES
        for g in got:
            _check_signed(g)
            assert g["json"]["call_id"] == cid and g["json"]["tracking_number"] == TRACKING
            assert g["json"]["account_id"] == acc and g["headers"]["content-type"] == "application/json"
        done = got[3]["json"]
        assert done["result"] == "completed" and done["duration"] == 42.5 and done["sip_status"] == 200
        assert got[2]["json"]["pdd_ms"] == 2970

        r = await calls.client.get(f"/v1/webhooks/{wh}/deliveries", headers=headers)
        assert r.status_code == 200, r.text
        log = r.json()["items"]
        assert [(d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
            (e, "succeeded", 1, 200) for e in STATUSES]


async def test_receiver_failing_twice_gets_each_event_once_in_order(calls: CallEnv) -> None:
    async with Receiver(fail_first=2) as rx:
        acc, headers, wh = await _provision(calls, rx.url, events=[*STATUSES, "dtmf"])
        await calls.dispatcher(backoff_base=0.1)
        await calls.recorder()
        cid = uuid.uuid4().hex
        await calls.publish(full_call(cid, acc, digits="12"))
        await rx.wait(6)
        await asyncio.sleep(0.5)
        events = [g["json"]["event"] for g in rx.ok]
        assert events == ["initiated", "ringing", "answered", "dtmf", "dtmf", "completed"]
        assert [g["json"].get("digit") for g in rx.ok if g["json"]["event"] == "dtmf"] == ["1", "2"]
        # The two failures were both the first event: nothing overtook it.
        assert [g["json"]["event"] for g in rx.got[:3]] == ["initiated"] * 3
        assert len(rx.got) == 8
        for g in rx.got:
            _check_signed(g)
        log = (await calls.client.get(f"/v1/webhooks/{wh}/deliveries", headers=headers)).json()["items"]
        first = next(d for d in log if d["event"] == "initiated")
        assert first["attempts"] == 3 and first["status"] == "succeeded"
        assert all(d["status"] == "succeeded" for d in log) and len(log) == 6


async def test_dead_endpoint_does_not_hold_up_another_account(calls: CallEnv) -> None:
    async with Receiver(delay=30) as dead, Receiver() as alive:
        acc_dead, _h, _ = await _provision(calls, dead.url, name="Dead", number="+15551230003")
        acc_alive, _h2, _ = await _provision(calls, alive.url, name="Alive", number="+15551230004")
        await calls.dispatcher(timeout=1.0, backoff_base=5.0)
        await calls.recorder()
        await calls.publish(full_call(uuid.uuid4().hex, acc_dead, number="+15551230003"))
        await calls.publish(full_call(uuid.uuid4().hex, acc_alive, number="+15551230004"))
        await alive.wait(4, timeout=10)
        # Every status reached the live endpoint while the dead one was still on its first
        # attempt (30 s to answer, 1 s timeout, 5 s backoff): it did not wait behind it.
        assert len(dead.got) == 1  # the dead one's head, waiting to time out; the rest queued behind it


async def test_redeliver_on_demand(calls: CallEnv) -> None:
    async with Receiver() as rx:
        acc, headers, wh = await _provision(calls, rx.url, events=["completed"])
        _other, other_headers = await calls.env.account("Other")
        await calls.dispatcher()
        await calls.recorder()
        await calls.publish(full_call(uuid.uuid4().hex, acc))
        await rx.wait(1)
        log = (await calls.client.get(f"/v1/webhooks/{wh}/deliveries", headers=headers)).json()["items"]
        did = log[0]["id"]
        path = f"/v1/webhooks/{wh}/deliveries/{did}/redeliver"
        assert (await calls.client.post(path, headers=other_headers)).status_code == 404
        r = await calls.client.post(path, headers=headers)
        assert r.status_code == 202, r.text
        assert r.json()["redelivery_of"] == did
        await rx.wait(2)
        assert rx.ok[0]["raw"] == rx.ok[1]["raw"]
        assert rx.ok[0]["headers"]["x-switchboard-delivery"] != rx.ok[1]["headers"]["x-switchboard-delivery"]
        log = (await calls.client.get(f"/v1/webhooks/{wh}/deliveries", headers=headers)).json()["items"]
        assert len(log) == 2 and all(d["status"] == "succeeded" for d in log)


async def test_pending_deliveries_survive_a_restart(calls: CallEnv) -> None:
    """The receiver is down while the call happens and the first worker stops; a new worker
    (a restarted process) sends everything once the receiver is back."""
    rx = Receiver()
    acc, headers, wh = await _provision(calls, rx.url)
    d1 = await calls.dispatcher(timeout=0.5, backoff_base=0.1)
    await calls.recorder()
    await calls.publish(full_call(uuid.uuid4().hex, acc))
    deadline = time.monotonic() + 10
    while True:
        log = (await calls.client.get(f"/v1/webhooks/{wh}/deliveries", headers=headers)).json()["items"]
        if len(log) == 4 and log[0]["attempts"] >= 1:
            break
        assert time.monotonic() < deadline, log
        await asyncio.sleep(0.05)
    assert log[0]["last_error"] and log[0]["status"] == "pending"
    await d1.stop()
    calls.dispatchers.remove(d1)
    async with rx:
        await calls.dispatcher(backoff_base=0.1)
        await rx.wait(4)
        assert [g["json"]["event"] for g in rx.ok] == STATUSES


async def test_webhook_api(calls: CallEnv) -> None:
    acc, headers = await calls.env.account()
    _other, other_headers = await calls.env.account("Other")
    r = await calls.client.post("/v1/webhooks", json={"url": "ftp://x.example", "secret": SECRET}, headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url"
    r = await calls.client.post("/v1/webhooks", json={"url": "https://x.example/h", "secret": "short"},
                                headers=headers)
    assert r.status_code == 422
    r = await calls.client.post("/v1/webhooks", json={"url": "https://x.example/h", "secret": SECRET,
                                                      "events": ["hangup"]}, headers=headers)
    assert r.status_code == 422
    r = await calls.client.post("/v1/webhooks", json={"url": "https://x.example/h", "secret": SECRET,
                                                      "events": ["completed", "initiated", "completed"]},
                                headers=headers)
    assert r.status_code == 201 and r.json()["events"] == ["initiated", "completed"]
    wh = r.json()["id"]
    assert r.json()["account_id"] == acc and "secret" not in r.json()
    assert (await calls.client.get(f"/v1/webhooks/{wh}", headers=other_headers)).status_code == 404
    assert (await calls.client.get(f"/v1/webhooks/{wh}/deliveries", headers=other_headers)).status_code == 404
    assert (await calls.client.delete(f"/v1/webhooks/{wh}", headers=other_headers)).status_code == 404
    assert (await calls.client.get("/v1/webhooks", headers=other_headers)).json()["items"] == []
    assert len((await calls.client.get("/v1/webhooks", headers=calls.env.admin())).json()["items"]) == 1
    assert (await calls.client.get("/v1/webhooks")).status_code == 401
    assert (await calls.client.delete(f"/v1/webhooks/{wh}", headers=headers)).status_code == 204
    assert (await calls.client.get(f"/v1/webhooks/{wh}", headers=headers)).status_code == 404


async def test_metrics_endpoint(calls: CallEnv) -> None:
    async with Receiver() as rx:
        acc, headers, _wh = await _provision(calls, rx.url)
        await calls.dispatcher()
        await calls.recorder()
        await calls.publish(full_call(uuid.uuid4().hex, acc))
        await rx.wait(4)
        await calls.client.get("/v1/calls", headers=headers)
        r = await calls.client.get("/metrics")
        assert r.status_code == 200
        text = r.text
        assert 'switchboard_webhook_deliveries_total{outcome="success"}' in text
        assert 'switchboard_call_records_total{result="completed"}' in text
        assert 'switchboard_api_requests_total{method="GET",route="/v1/calls",status="200"}' in text
        assert "switchboard_call_events_consumed_total" in text
