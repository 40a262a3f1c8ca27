"""Issue 14 item 9: a call refused before routing (here: the node is at its call limit)
still appears in the call records of the account whose tracking number was dialled, with
the reason, so the customer sees the calls they lost."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, carrier, finish
from tests.helpers.stack import running_stack

pytestmark = [
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(90),
]


async def test_a_refused_call_is_in_the_accounts_records(tmp_path: Path) -> None:
    async with running_stack(tmp_path, signaling={"max_calls": 0}) as stack:
        ids = await stack.provision(NUMBER, [{"uri": "sip:100@127.0.0.1:9", "priority": 1}])
        async with stack.http() as admin:
            r = await admin.post(f"/v1/accounts/{ids['account_id']}/api-keys")
            assert r.status_code == 201, r.text
            key = r.json()["key"]
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        failed = await stack.wait_event("failed")
        async with stack.http(key) as api:  # what the customer reads with their own key
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                items = (await api.get("/v1/calls")).json()["items"]
                if items and items[0]["result"]:
                    break
                assert asyncio.get_running_loop().time() < deadline, items
                await asyncio.sleep(0.1)
    [call] = items
    assert call["id"] == failed.call_id and call["tracking_number"] == NUMBER
    assert (call["result"], call["sip_status"], call["reason"]) == ("failed", 503, "Too many calls on this node")
    assert call["receiving_number_id"] == ids["receiving_number_id"]
