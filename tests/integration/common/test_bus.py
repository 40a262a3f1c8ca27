"""The typed bus client against a real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from proto.messages import RegionSelect, RegionSelection, TrunkCheck, TrunkCheckResult
from services.common.bus import Bus
from services.common.errors import BusTimeout, HandlerError, NoResponders, RemoteError
from services.common.natsserver import NatsServer

SUBJECT = "test.echo"  # a test-only subject, outside proto's families


async def test_request_reply(bus: Bus) -> None:
    async def handler(q: TrunkCheck) -> TrunkCheckResult:
        return TrunkCheckResult(allowed=q.address.startswith("127."), trunk="lo")

    await bus.subscribe(SUBJECT, handler, TrunkCheck, queue="q")
    r = await bus.request(SUBJECT, TrunkCheck(address="127.0.0.1"), TrunkCheckResult)
    assert r.allowed and r.trunk == "lo"
    r = await bus.request(SUBJECT, TrunkCheck(address="192.0.2.1"), TrunkCheckResult)
    assert not r.allowed


async def test_no_responders(bus: Bus) -> None:
    with pytest.raises(NoResponders):
        await bus.request(SUBJECT, TrunkCheck(address="x"), TrunkCheckResult, timeout=0.5)


async def test_timeout(bus: Bus) -> None:
    async def slow(q: TrunkCheck) -> TrunkCheckResult:
        await asyncio.sleep(2)
        return TrunkCheckResult(allowed=True)

    await bus.subscribe(SUBJECT, slow, TrunkCheck)
    with pytest.raises(BusTimeout):
        await bus.request(SUBJECT, TrunkCheck(address="x"), TrunkCheckResult, timeout=0.2)


async def test_malformed_message_gets_an_error_not_a_crash(bus: Bus) -> None:
    calls = 0

    async def handler(q: TrunkCheck) -> TrunkCheckResult:
        nonlocal calls
        calls += 1
        return TrunkCheckResult(allowed=True)

    await bus.subscribe(SUBJECT, handler, TrunkCheck)
    reply = await bus.nc.request(SUBJECT, b"{not json", timeout=1)
    assert reply.headers and reply.headers["Nats-Service-Error-Code"] == "400"
    reply = await bus.nc.request(SUBJECT, b'{"wrong": 1}', timeout=1)
    assert reply.headers and reply.headers["Nats-Service-Error-Code"] == "400"
    # The subscriber is still alive and answers well-formed requests.
    assert (await bus.request(SUBJECT, TrunkCheck(address="a"), TrunkCheckResult)).allowed
    assert calls == 1


async def test_handler_error_is_structured(bus: Bus) -> None:
    async def handler(q: RegionSelect) -> RegionSelection:
        raise HandlerError(404, "unknown region", {"region": q.preferred})

    async def crashing(q: TrunkCheck) -> TrunkCheckResult:
        raise RuntimeError("bug")

    await bus.subscribe(SUBJECT, handler, RegionSelect)
    with pytest.raises(RemoteError) as e:
        await bus.request(SUBJECT, RegionSelect(preferred="mars"), RegionSelection)
    assert e.value.code == 404 and e.value.detail == {"region": "mars"}

    await bus.subscribe("test.crash", crashing, TrunkCheck)
    with pytest.raises(RemoteError) as e2:
        await bus.request("test.crash", TrunkCheck(address="a"), TrunkCheckResult)
    assert e2.value.code == 500


async def test_queue_group_shares_requests(nats_server: NatsServer) -> None:
    """Two instances in one queue group split the requests between them."""
    served = {"one": 0, "two": 0}
    buses = [await Bus.connect(nats_server.url, n) for n in ("one", "two", "client")]

    def make(name: str):
        async def h(q: TrunkCheck) -> TrunkCheckResult:
            served[name] += 1
            return TrunkCheckResult(allowed=True, trunk=name)
        return h

    await buses[0].subscribe(SUBJECT, make("one"), TrunkCheck, queue="workers")
    await buses[1].subscribe(SUBJECT, make("two"), TrunkCheck, queue="workers")
    await buses[0].nc.flush()
    await buses[1].nc.flush()
    for _ in range(200):
        await buses[2].request(SUBJECT, TrunkCheck(address="a"), TrunkCheckResult)
    assert served["one"] + served["two"] == 200
    assert served["one"] > 20 and served["two"] > 20
    for b in buses:
        await b.close()


async def test_calls_stream_keeps_events(bus: Bus) -> None:
    from proto import subjects
    from proto.messages import CallEvent

    await bus.ensure_calls_stream(max_age=3600)
    await bus.ensure_calls_stream(max_age=7200)  # idempotent, updates
    js = bus.nc.jetstream()
    await js.publish(subjects.call_event("c1", "received"), CallEvent(call_id="c1", kind="received").model_dump_json().encode())
    info = await js.stream_info(subjects.CALLS_STREAM)
    assert info.state.messages == 1
    assert info.config.max_age == 7200


async def test_request_survives_server_restart(nats_server: NatsServer) -> None:
    """The client reconnects after the server comes back; requests work again."""
    b = await Bus.connect(nats_server.url, "r")

    async def h(q: TrunkCheck) -> TrunkCheckResult:
        return TrunkCheckResult(allowed=True)

    await b.subscribe(SUBJECT, h, TrunkCheck)
    nats_server.stop()
    await asyncio.sleep(0.3)
    nats_server.start()
    for _ in range(50):
        try:
            assert (await b.request(SUBJECT, TrunkCheck(address="a"), TrunkCheckResult, timeout=0.3)).allowed
            break
        except Exception:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("no answer after the server restarted")
    await b.close()


async def test_one_shot_connect_to_nothing_is_an_error_not_a_hang() -> None:
    """A CLI asks for no reconnection: an unreachable NATS must raise (nats-py would retry
    the first connect for ever)."""
    from services.common.natsserver import free_port

    with pytest.raises(Exception, match="no servers"):
        await asyncio.wait_for(
            Bus.connect(f"nats://127.0.0.1:{free_port()}", "cli", connect_timeout=0.5, max_reconnect_attempts=0), 15)
