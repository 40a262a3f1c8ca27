"""Issue 14 item 1: NATS as a cluster. Three nats-servers with routes, the CALLS stream with
3 replicas, every service given the three URLs. A call in progress while one server is
killed continues, ends cleanly on BYE, and its record is complete; new calls keep
connecting."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.helpers.natscluster import NatsCluster
from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(150),
]


async def test_a_call_survives_losing_one_of_three_nats_servers(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CALLS_STREAM_REPLICAS", "3")  # every process creating the stream agrees
    cluster = NatsCluster(tmp_path / "cluster")
    cluster.start()
    try:
        await cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    async with running_stack(tmp_path, nats=cluster) as stack:
        info = await stack.bus.nc.jetstream().stream_info("CALLS")
        assert info.config.num_replicas == 3 and info.cluster is not None and len(info.cluster.replicas or []) == 2
        pbx_port = udp_free_port()
        ids = await stack.provision(NUMBER, [{"uri": f"sip:100@127.0.0.1:{pbx_port}", "priority": 1}])
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                         "-mp", str(udp_free_port()), "-m", "1")
        # The carrier hangs up 4 s after the answer; the server goes down in between.
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "4000")
        answered = await stack.wait_event("answered", timeout=30)
        # The server the signaling node is connected to (clients spread over the three).
        on = {i: await asyncio.to_thread(cluster.clients, i) for i in range(3)}
        victim = next(i for i, names in on.items() if any(n.startswith("signaling-") for n in names))
        print(f"killing nats server {victim}, which served {on[victim]}")
        cluster.kill(victim)
        assert await finish(c, tmp_path, "carrier") == 0  # its BYE was answered
        assert await finish(pbx, tmp_path, "pbx") == 0  # and relayed
        ended = await stack.wait_event("ended", timeout=30)
        assert ended.call_id == answered.call_id and ended.payload["result"] == "completed"
        assert ended.payload["media"] is not None  # the worker answered the release

        async with stack.http() as api:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                r = await api.get(f"/v1/calls/{ended.call_id}")
                rec = r.json() if r.status_code == 200 else {}
                if rec.get("result") and not rec.get("missing_events"):
                    break
                if asyncio.get_running_loop().time() > deadline:
                    ci = await stack.bus.nc.jetstream().consumer_info("CALLS", "config-call-records")
                    raise AssertionError(f"record {r.status_code} {rec}; consumer leader "
                                         f"{ci.cluster.leader if ci.cluster else None}, pending {ci.num_pending}, "
                                         f"ack pending {ci.num_ack_pending}, delivered {ci.delivered}")
                await asyncio.sleep(0.2)
        assert rec["result"] == "completed" and rec["media"] is not None and rec["account_id"] == ids["account_id"]
        # Every event the call published reaches the replicated stream (those published while
        # a stream leader was being elected are sent again until acknowledged).
        wanted = {"received", "resolved", "media_allocated", "answered", "ended", "media_stats"}
        deadline = asyncio.get_running_loop().time() + 30
        kinds: set[str] = set()
        while not wanted <= kinds:
            assert asyncio.get_running_loop().time() < deadline, wanted - kinds
            try:  # the reading consumer may land on a server still electing its leader
                kinds = {e.kind for e in await stack.call_events(ended.call_id)}
            except Exception:
                await asyncio.sleep(0.5)

        # New calls keep connecting with one server down.
        pbx = await sipp(tmp_path, "pbx2", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                         "-mp", str(udp_free_port()), "-m", "1")
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "200", name="next")
        assert await finish(c, tmp_path, "next") == 0
        assert await finish(pbx, tmp_path, "pbx2") == 0
