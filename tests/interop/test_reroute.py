"""What-if for a real call: `switchboard calls reroute` and GET /v1/calls/{id}/reroute re-run
routing, region selection and media selection for it (nothing placed) and mark each
difference from what happened."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proto import subjects
from proto.messages import RegionSelect, RegionSelection, RoutingDecision, RoutingRequest
from tests.helpers.sipp import NUMBER, SCENARIOS, finish, sipp
from tests.helpers.sipp import media_carrier as carrier
from tests.helpers.stack import Stack, running_stack, udp_free_port

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(120),
]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from services.cli.main import main; main()", "calls", *args,
                           "--nats-url", url], capture_output=True, text=True, timeout=60)


async def until(check: Any, what: str, timeout: float = 15.0) -> None:
    """Wait for the stack to reach a state (config and health are applied asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.1)


def items(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in body["items"]}


async def a_call(stack: Stack, tmp_path: Path) -> str:
    client_port = udp_free_port()
    client_proc = await sipp(tmp_path, "client", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(client_port),
                             "-mp", str(udp_free_port()), "-m", "1")
    await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{client_port}"}], region="us1")
    carrier_proc = await carrier(stack, tmp_path, udp_free_port(), hold_ms=300)
    assert await finish(carrier_proc, tmp_path, "carrier") == 0
    assert await finish(client_proc, tmp_path, "client") == 0
    return (await stack.wait_event("ended")).call_id


async def test_reroute_marks_what_today_decides_differently(tmp_path: Path) -> None:
    async with running_stack(tmp_path, media_regions=("us1", "us2")) as stack:
        call_id = await a_call(stack, tmp_path)
        allocated = await stack.wait_event("media_allocated")

        # Nothing changed: every item the same, nothing placed (no new call's events).
        before = len(stack.events)
        r = await asyncio.to_thread(cli, stack.nats.url, "reroute", call_id, "--json")
        assert r.returncode == 0, r.stderr
        body = json.loads(r.stdout)
        assert body["differences"] == [], body
        same = items(body)
        assert same["routing"]["now"] == "ok" and same["media region"]["now"] == "us1"
        assert same["media worker"]["then"] == allocated.payload["worker_id"] == same["media worker"]["now"]
        assert not [e for e in stack.events[before:] if e.call_id != call_id]

        # Today: the receiving number dials another SIP client, and Virginia's media is down.
        async with stack.http() as c:
            rn = (await c.get("/v1/receiving-numbers")).json()["items"][0]
            r2 = await c.patch(f"/v1/receiving-numbers/{rn['id']}",
                               json={"sip_targets": [{"uri": "sip:200@192.0.2.55:5080;transport=tcp"}]})
            assert r2.status_code == 200, r2.text

        async def routed_to_new_target() -> bool:
            d = await stack.bus.request(subjects.routing_resolve(), RoutingRequest(call_id="probe",
                                        tracking_number=NUMBER), RoutingDecision, timeout=2)
            return bool(d.targets) and d.targets[0].uri.startswith("sip:200@")

        await until(routed_to_new_target, "the resolver sees the new target")
        await stack.stop_service("media_us1")

        async def us1_media_down() -> bool:
            sel = await stack.bus.request(subjects.registry_select(), RegionSelect(preferred="us1", need=["media"]),
                                          RegionSelection, timeout=2)
            return sel.region == "us2"

        await until(us1_media_down, "the registry sends us1's media to us2")

        async with stack.http() as c:
            resp = await c.get(f"/v1/calls/{call_id}/reroute")
            assert resp.status_code == 200, resp.text
            api = resp.json()
            assert (await c.get("/v1/calls/nope/reroute")).status_code == 404
            acc = (await c.post("/v1/accounts", json={"name": "Other"})).json()["id"]
            key = (await c.post(f"/v1/accounts/{acc}/api-keys")).json()["key"]
        async with stack.http(key) as other:
            assert (await other.get(f"/v1/calls/{call_id}/reroute")).status_code == 404

        assert api["differences"] == ["targets", "media region", "media regions skipped", "media worker"], api
        got = items(api)
        assert got["targets"]["then"][0].startswith("sip:100@127.0.0.1")
        assert got["targets"]["now"] == ["sip:200@192.0.2.55:5080;transport=tcp (tcp, p10 w10)"]
        assert (got["media region"]["then"], got["media region"]["now"]) == ("us1", "us2")
        assert got["media regions skipped"]["now"] == ["us1"]
        assert got["media worker"]["now"] == ["media-us2"]
        assert not got["routing"]["differs"] and not got["receiving number"]["differs"]
        assert "s3cret" not in resp.text and "password" not in resp.text

        r = await asyncio.to_thread(cli, stack.nats.url, "reroute", call_id)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        marked = [ln.split()[1] for ln in lines if ln.startswith("* ")]
        assert marked == ["targets", "media", "media", "media"]
        assert any(ln.startswith("* media region") and "us1" in ln and "us2" in ln for ln in lines)
        assert lines[-1].startswith("4 difference(s): targets, media region")
