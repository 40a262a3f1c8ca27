"""What a customer's PBX gets from us (issue 15): the tracking number, the caller's identity,
the headers a receiving number passes or adds.

Asterisk, FreeSWITCH and 3CX are not packaged here: the PBXs are SIPp scenarios that behave
as they do where it matters (Asterisk/3CX route an inbound call on the Request-URI user, the
DID; a PBX reads Diversion and X- headers for reporting) and check every header with
regular expressions (`<ereg check_it="true">`; a failed check fails the scenario)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, media_carrier, sipp
from tests.helpers.stack import running_stack, udp_free_port

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(90),
]


async def pbx(tmp: Path, name: str, scenario: str, *extra: str):  # type: ignore[no-untyped-def]
    port = udp_free_port()
    proc = await sipp(tmp, name, "-sf", str(SCENARIOS / scenario), "-p", str(port), "-mp", str(udp_free_port()),
                      "-m", "1", *extra)
    return proc, f"sip:100@127.0.0.1:{port}"


def client_invite(stack, call_id: str) -> str:  # type: ignore[no-untyped-def]
    """The INVITE we sent the PBX, as the sip_out event has it."""
    sent = [e.payload["message"] for e in stack.events if e.call_id == call_id and e.kind == "sip_out"
            and e.payload["first_line"].startswith("INVITE")]
    assert sent, "no client INVITE published"
    return str(sent[0])


async def test_pbx_gets_the_did_the_diversion_and_the_carriers_headers(tmp_path: Path) -> None:
    """request_uri_user=tracking_number, Diversion, X-Switchboard-*, PAI/Privacy/Identity as the
    carrier sent them, forward_headers by prefix and by name, sip_headers added; a carrier
    header not asked for stays out."""
    async with running_stack(tmp_path) as stack:
        proc, uri = await pbx(tmp_path, "pbx", "pbx_did_headers.xml")
        await stack.provision(NUMBER, [{"uri": uri}], request_uri_user="tracking_number",
                              forward_headers=["X-Carrier-*", "User-to-User"], sip_headers={"X-Account": "acme-7"})
        c = await carrier(stack, tmp_path, "carrier_pbx_headers.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(proc, tmp_path, "pbx") == 0, "the PBX's header checks failed (see pbx.err)"
        answered = await stack.wait_event("answered")
        # X-Switchboard-Call-Id is the id of /v1/calls and of the events.
        assert f"X-Switchboard-Call-Id: {answered.call_id}\r\n" in client_invite(stack, answered.call_id)


async def test_pbx_options_off_send_only_the_tracking_headers(tmp_path: Path) -> None:
    """diversion, forward_pai and forward_identity off, request_uri_user=target: the PBX sees
    its own user in the Request-URI and only X-Switchboard-* say which number rang."""
    async with running_stack(tmp_path) as stack:
        proc, uri = await pbx(tmp_path, "pbx", "pbx_no_passthrough.xml")
        await stack.provision(NUMBER, [{"uri": uri}], diversion=False, forward_pai=False, forward_identity=False)
        c = await carrier(stack, tmp_path, "carrier_pbx_headers.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(proc, tmp_path, "pbx") == 0, "the PBX's header checks failed (see pbx.err)"
        await stack.wait_event("answered")


async def call_record(stack, call_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """GET /v1/calls/{id} once the record has its result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    async with stack.http() as api:
        while True:
            r = await api.get(f"/v1/calls/{call_id}")
            if r.status_code == 200 and r.json()["result"]:
                return r.json()  # type: ignore[no-any-return]
            assert loop.time() < deadline, r.text
            await asyncio.sleep(0.1)


async def test_302_to_a_second_pbx_is_followed(tmp_path: Path) -> None:
    """A 302 from the first PBX (two Contacts: the second PBX at q=0.9, itself at q=0.1, a loop):
    the second PBX answers with its audio, the Contact back to the first is never dialled, and
    /v1/calls records the first target as `redirected`."""
    async with running_stack(tmp_path) as stack:
        second, second_uri = await pbx(tmp_path, "second", "client_answer.xml", "-rtp_echo")
        second_port = second_uri.rsplit(":", 1)[1]
        first, first_uri = await pbx(tmp_path, "first", "pbx_redirect.xml", "-set", "to_port", second_port)
        await stack.provision(NUMBER, [{"uri": first_uri}], ring_timeout=10)
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(first, tmp_path, "first") == 0
        assert await finish(second, tmp_path, "second") == 0
        redirected_to = f"sip:200@127.0.0.1:{second_port}"
        assert [e.payload["target"] for e in stack.kinds("dialing")] == [first_uri, redirected_to]
        answered = await stack.wait_event("answered")
        assert answered.payload["target"] == redirected_to
        record = await call_record(stack, answered.call_id)
        assert record["result"] == "completed"
        assert [(t["target"], t["result"], t["status"]) for t in record["targets"]] == [
            (first_uri, "redirected", 302), (redirected_to, "answered", 200)]


async def test_302_not_followed_when_the_receiving_number_says_none(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        first, first_uri = await pbx(tmp_path, "first", "pbx_redirect.xml", "-set", "to_port", "9")
        await stack.provision(NUMBER, [{"uri": first_uri}], follow_redirects="none")
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(first, tmp_path, "first") == 0
        assert [e.payload["target"] for e in stack.kinds("dialing")] == [first_uri]
        failed = await stack.wait_event("attempt_failed")
        assert failed.payload["sip_status"] == 302 and failed.payload["result"] == "rejected"


async def receiving_number(stack, rn_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    async with stack.http() as api:
        r = await api.get(f"/v1/receiving-numbers/{rn_id}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def wait_health(stack, rn_id: str, index: int, health: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        target = (await receiving_number(stack, rn_id))["sip_targets"][index]
        if target["health"] == health:
            return target  # type: ignore[no-any-return]
        assert loop.time() < deadline, target
        await asyncio.sleep(0.1)


async def test_a_pinged_dead_target_is_skipped_and_the_call_reaches_the_second_at_once(tmp_path: Path) -> None:
    """The first target (priority 1, options_ping) has nothing listening: after 3 unanswered
    OPTIONS it is `down` on GET, and a call goes straight to the second target — within 2 s of
    the carrier's INVITE, not after the 10 s ring timeout."""
    async with running_stack(tmp_path, signaling={"options_interval": 0.3}) as stack:
        dead = f"sip:100@127.0.0.1:{udp_free_port()}"
        live, live_uri = await pbx(tmp_path, "live", "client_answer.xml", "-rtp_echo")
        ids = await stack.provision(NUMBER, [{"uri": dead, "priority": 1, "options_ping": True},
                                             {"uri": live_uri, "priority": 2}], ring_timeout=10)
        down = await wait_health(stack, ids["receiving_number_id"], 0, "down")
        assert down["health_changed_at"]
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        answered = await stack.wait_event("answered")
        received = next(e for e in stack.kinds("received") if e.call_id == answered.call_id)
        assert answered.ts - received.ts < 2.0
        assert [e.payload["target"] for e in stack.kinds("dialing")] == [live_uri]
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(live, tmp_path, "live") == 0


async def test_a_target_answering_options_is_up(tmp_path: Path) -> None:
    async with running_stack(tmp_path, signaling={"options_interval": 0.3}) as stack:
        proc, uri = await pbx(tmp_path, "pbx", "pbx_options.xml")
        ids = await stack.provision(NUMBER, [{"uri": uri, "options_ping": True}])
        up = await wait_health(stack, ids["receiving_number_id"], 0, "up")
        assert up["options_ping"] is True and up["health_changed_at"]
        assert await finish(proc, tmp_path, "pbx") == 0


# --- session timers on the client leg (RFC 4028) ---------------------------------------


@pytest.mark.parametrize("scenario", ["pbx_timer_uac.xml", "pbx_timer_reinvite.xml"])
async def test_we_refresh_before_the_interval_when_the_pbx_makes_us_refresher(tmp_path: Path,
                                                                              scenario: str) -> None:
    """refresher=uac in the PBX's 200 (interval 6 s): the refresh (UPDATE, or a re-INVITE when
    the PBX does not allow UPDATE) arrives within the interval and the call lives on until the
    carrier hangs up."""
    async with running_stack(tmp_path) as stack:
        proc, uri = await pbx(tmp_path, "pbx", scenario)
        await stack.provision(NUMBER, [{"uri": uri}])
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "4500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(proc, tmp_path, "pbx") == 0, "no refresh in time (see pbx.err)"
        ended = await stack.wait_event("ended")
        assert ended.payload["by"] == "caller"
        if scenario == "pbx_timer_reinvite.xml":  # the answer to our re-INVITE moved its media: followed
            assert stack.kinds("media_refresh")[0].payload == {"leg": "b", "method": "INVITE"}


async def test_422_is_retried_once_with_the_pbxs_min_se(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        proc, uri = await pbx(tmp_path, "pbx", "pbx_422.xml")
        await stack.provision(NUMBER, [{"uri": uri}])
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(proc, tmp_path, "pbx") == 0
        answered = await stack.wait_event("answered")
        invites = [e.payload["message"] for e in stack.events if e.call_id == answered.call_id
                   and e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE")]
        assert len(invites) == 2 and "Session-Expires: 1200\r\n" in invites[1]
        assert not stack.kinds("attempt_failed")


async def test_no_refresh_from_the_pbx_ends_both_legs_with_a_reason(tmp_path: Path) -> None:
    """refresher=uas (6 s) and the PBX never refreshes: BYE to the PBX with Reason 408
    before the interval ends, and the carrier gets its BYE too."""
    async with running_stack(tmp_path) as stack:
        proc, uri = await pbx(tmp_path, "pbx", "pbx_timer_uas_silent.xml")
        await stack.provision(NUMBER, [{"uri": uri}])
        c = await carrier(stack, tmp_path, "carrier_call_until_bye.xml")
        assert await finish(proc, tmp_path, "pbx") == 0, "no BYE with a Reason in time (see pbx.err)"
        assert await finish(c, tmp_path, "carrier") == 0
        ended = await stack.wait_event("ended")
        assert "session expired" in ended.payload["reason"]


# --- transfers (REFER, RFC 3515) ---------------------------------------------------------


def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234ABCD) + payload


async def echoes(media: socket.socket, port: int, count: int = 25) -> list[bytes]:
    """Send `count` RTP packets to the worker's carrier side; what comes back."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    for i in range(count):
        media.sendto(rtp(i + 1, bytes([i + 1]) * 160), ("127.0.0.1", port))
        await asyncio.sleep(0.02)
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(media.recv(2048)[12:])
    deadline = loop.time() + 1.5
    while loop.time() < deadline and len(got) < count // 2:
        with contextlib.suppress(BlockingIOError):
            got.append(media.recv(2048)[12:])
        await asyncio.sleep(0.02)
    return got


async def test_refer_transfers_the_call_to_a_second_pbx_with_its_audio(tmp_path: Path) -> None:
    """The first PBX answers, then REFERs to the second (same host: allowed by default): 202,
    NOTIFY 100 Trying, the second PBX rings and answers, NOTIFY 200 OK, BYE to the first; the
    carrier's audio now reaches the second PBX (it echoes it back; the first never echoes) and
    the record shows the first target `transferred`, the second answered."""
    async with running_stack(tmp_path) as stack:
        second, second_uri = await pbx(tmp_path, "second", "client_answer.xml", "-rtp_echo")
        second_port = second_uri.rsplit(":", 1)[1]
        first, first_uri = await pbx(tmp_path, "first", "pbx_refer.xml", "-set", "to_port", second_port)
        await stack.provision(NUMBER, [{"uri": first_uri}], ring_timeout=10)
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        media.setblocking(False)
        c = await media_carrier(stack, tmp_path, media.getsockname()[1], hold_ms=4000)
        allocated = await stack.wait_event("media_allocated")
        transferred = await stack.wait_event("transferred")
        assert transferred.payload["ok"] is True and transferred.payload["target"] == f"sip:200@127.0.0.1:{second_port}"
        assert transferred.payload["from_target"] == first_uri
        invites = [e.payload["message"] for e in stack.events if e.kind == "sip_out"
                   and e.payload["first_line"].startswith("INVITE sip:200@")]
        assert invites and f"Referred-By: <sip:100@127.0.0.1:{first_uri.rsplit(':', 1)[1]}>\r\n" in invites[0]
        got = await echoes(media, allocated.payload["a_port"])
        media.close()
        assert await finish(first, tmp_path, "first") == 0, "REFER/NOTIFY checks failed (see first.err)"
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(second, tmp_path, "second") == 0
        assert len(got) >= 5, "no audio came back from the second PBX"
        record = await call_record(stack, transferred.call_id)
        assert record["result"] == "completed"
        assert [(t["target"], t["result"]) for t in record["targets"]] == [
            (first_uri, "transferred"), (transferred.payload["target"], "answered")]
        # The console's ladder has both client legs, each its own column.
        from services.common import ladder

        async with stack.http() as api:
            items = (await api.get(f"/v1/calls/{transferred.call_id}/events")).json()["items"]
        columns = [c.label for c in ladder.build(items).columns]
        assert columns == ["Carrier", "Switchboard", "SIP client 1", "SIP client 2"], columns


async def test_refer_refused_when_transfers_are_off(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        first, first_uri = await pbx(tmp_path, "first", "pbx_refer.xml", "-set", "to_port", "9")
        await stack.provision(NUMBER, [{"uri": first_uri}], transfer="reject")
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "1500")
        await finish(c, tmp_path, "carrier")
        await finish(first, tmp_path, "first")  # it expected a 202: it fails, that is the point
        statuses = [e.payload["first_line"] for e in stack.events if e.kind == "sip_out"
                    and "REFER" in e.payload["message"].split("CSeq:")[1][:20]]
        assert statuses and statuses[0].startswith("SIP/2.0 403"), statuses
        assert not stack.kinds("transferred")


async def test_pbx_hold_stops_rtp_toward_it(tmp_path: Path) -> None:
    """The PBX holds (re-INVITE a=sendonly, answered a=recvonly): the carrier's RTP sent once
    the hold is in place is not relayed to the PBX; the worker's stats count it as held."""
    async with running_stack(tmp_path) as stack:
        proc, uri = await pbx(tmp_path, "pbx", "pbx_hold.xml")
        await stack.provision(NUMBER, [{"uri": uri}])
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind(("127.0.0.1", 0))
        c = await media_carrier(stack, tmp_path, media.getsockname()[1], hold_ms=3000)
        allocated = await stack.wait_event("media_allocated")
        hold = await stack.wait_event("hold")  # the worker has the new direction before this event
        assert hold.payload == {"leg": "b", "method": "INVITE"}
        for i in range(10):
            media.sendto(rtp(i + 1, b"\x55" * 160), ("127.0.0.1", allocated.payload["a_port"]))
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(proc, tmp_path, "pbx") == 0
        media.close()
        ended = await stack.wait_event("ended")
        a = ended.payload["media"]["a"]
        assert a["packets_in"] >= 10 and a["held"] == a["packets_in"] and ended.payload["media"]["b"]["direction"] == "sendonly"
