"""End to end on the real stack (nats + registry, config, media, signaling): SIPp carrier ->
Switchboard -> SIPp client with a digest challenge. The config service's own consumer
records the call and sends its status webhooks to a receiver on loopback."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import pytest

from services.config.webhooks import SIGNATURE_HEADER, verify
from tests.helpers.sipp import NUMBER, client, finish
from tests.helpers.sipp import media_carrier as carrier
from tests.helpers.stack import running_stack

from .conftest import Receiver

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(120),
]

SECRET = "whsec_e2e_secret_0123456789"


async def test_real_call_is_recorded_and_reported(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack, Receiver() as rx:
        client_proc, client_port = await client(tmp_path)
        ids = await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}", "username": "alice",
                                              "password": "s3cret"}], ring_timeout=15)
        async with stack.http() as admin:
            r = await admin.post(f"/v1/accounts/{ids['account_id']}/api-keys")
            assert r.status_code == 201, r.text
            key = r.json()["key"]
        async with stack.http(key) as api:
            r = await api.post("/v1/webhooks", json={"url": rx.url, "secret": SECRET})
            assert r.status_code == 201, r.text
            started = time.monotonic()
            carrier_proc = await carrier(stack, tmp_path, 9, hold_ms=1500)
            assert await finish(carrier_proc, tmp_path, "carrier") == 0
            assert await finish(client_proc, tmp_path, "client") == 0
            ended = await stack.wait_event("ended")

            deadline = time.monotonic() + 15
            while True:
                r = await api.get("/v1/calls", params={"number": NUMBER})
                assert r.status_code == 200, r.text
                items = r.json()["items"]
                if items and items[0]["result"]:
                    break
                assert time.monotonic() < deadline, items
                await asyncio.sleep(0.1)
            recorded = time.monotonic() - started
            call = items[0]
            assert len(items) == 1 and call["id"] == ended.call_id
            assert call["result"] == "completed" and call["sip_status"] == 200
            assert 1.0 <= call["duration"] <= 5.0, call["duration"]
            assert call["answered_at"] and call["ended_at"] and call["ringing_at"]
            assert call["targets"][-1]["result"] == "answered"
            assert call["media"] is not None and call["missing_events"] == {}

            r = await api.get(f"/v1/calls/{call['id']}/events")
            kinds = [e["kind"] for e in r.json()["items"]]
            for kind in ("received", "resolved", "media_allocated", "dialing", "challenged", "ringing", "answered",
                         "ended", "sip_in", "sip_out"):
                assert kind in kinds, (kind, kinds)

            got = await rx.wait(4, timeout=15)
            assert [g["json"]["event"] for g in got] == ["initiated", "ringing", "answered", "completed"]
            for g in got:
                assert verify(SECRET, g["raw"], g["headers"][SIGNATURE_HEADER.lower()])
            assert got[3]["json"]["result"] == "completed" and got[3]["json"]["duration"] == call["duration"]
        async with httpx.AsyncClient(base_url=stack.api) as anon:
            metrics = (await anon.get("/metrics")).text
        assert 'switchboard_call_records_total{result="completed"}' in metrics
        print(f"call recorded {recorded:.2f} s after the carrier started (1.5 s of talk)")
