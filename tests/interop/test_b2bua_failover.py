"""Failover and failure statuses, with SIPp as the carrier and as the SIP clients.

Which final status the carrier got is read from the SIP messages Switchboard published
(`sip_out` events), which is also what an operator reads in `switchboard calls show`."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
from tests.helpers.stack import Stack, running_stack, sip_free_port, udp_free_port

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed (.ci/run installs sip-tester)"),
    pytest.mark.timeout(90),
]


async def sip_client(tmp: Path, name: str, scenario: str, *extra: str) -> tuple[asyncio.subprocess.Process, str]:
    port = udp_free_port()
    proc = await sipp(tmp, name, "-sf", str(SCENARIOS / scenario), "-p", str(port), "-mp", str(udp_free_port()),
                      "-m", "1", *extra)
    return proc, f"sip:100@127.0.0.1:{port}"


def final_to_carrier(stack: Stack) -> int:
    """The status of the final response Switchboard sent the carrier for its INVITE."""
    invite = next(e for e in stack.events if e.kind == "sip_in" and e.payload["first_line"].startswith("INVITE"))
    statuses = [int(e.payload["first_line"].split()[1]) for e in stack.events
                if e.call_id == invite.call_id and e.kind == "sip_out"
                and e.payload["first_line"].startswith("SIP/2.0") and "INVITE" in e.payload["message"].split("CSeq:")[1][:20]]
    finals = [s for s in statuses if s >= 200]
    assert finals, statuses
    return finals[-1]


def dialed(stack: Stack) -> list[str]:
    return [e.payload["target"] for e in stack.events if e.kind == "dialing"]


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await proc.wait()


def targets(*uris: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"uri": u, "priority": i + 1, **extra} for i, u in enumerate(uris)]


async def test_first_target_503_second_answers(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        down, down_uri = await sip_client(tmp_path, "down", "client_unavailable.xml", "-set", "retry_after", "60")
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml", "-rtp_echo")
        await stack.provision(NUMBER, targets(down_uri, up_uri), ring_timeout=10)
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(down, tmp_path, "down") == 0
        assert await finish(up, tmp_path, "up") == 0
        assert dialed(stack) == [down_uri, up_uri]
        assert (await stack.wait_event("answered")).payload["target"] == up_uri
        failed = await stack.wait_event("attempt_failed")
        assert failed.payload["sip_status"] == 503


async def test_busy_is_an_answer_no_failover(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        busy, busy_uri = await sip_client(tmp_path, "busy", "client_busy.xml")
        spare, spare_uri = await sip_client(tmp_path, "spare", "client_answer.xml")
        await stack.provision(NUMBER, targets(busy_uri, spare_uri), ring_timeout=10)
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(busy, tmp_path, "busy") == 0
        failed = await stack.wait_event("failed")
        assert failed.payload["sip_status"] == 486 and failed.payload["result"] == "busy"
        assert final_to_carrier(stack) == 486
        assert dialed(stack) == [busy_uri]  # the second target never rang
        await stop(spare)


async def test_silent_target_then_second_rings(tmp_path: Path) -> None:
    """The first target does not answer at all: after the ring timeout, the next one."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent_uri = f"sip:100@127.0.0.1:{silent.getsockname()[1]}"
    async with running_stack(tmp_path) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(silent_uri, up_uri), ring_timeout=5)
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(up, tmp_path, "up") == 0
        assert dialed(stack) == [silent_uri, up_uri]
        assert (await stack.wait_event("ring_timeout")).payload["target"] == silent_uri
        assert (await stack.wait_event("answered")).payload["target"] == up_uri
    silent.close()


async def test_ring_timeout_cancels_and_carrier_gets_480(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ringing, uri = await sip_client(tmp_path, "ringing", "client_no_answer.xml")
        await stack.provision(NUMBER, targets(uri), ring_timeout=5)
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        # The client's scenario only succeeds when our CANCEL arrived.
        assert await finish(ringing, tmp_path, "ringing") == 0
        assert final_to_carrier(stack) == 480
        failed = await stack.wait_event("failed")
        assert failed.payload["result"] == "no-answer"


async def test_carrier_cancel_cancels_the_client_leg(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        ringing, uri = await sip_client(tmp_path, "ringing", "client_no_answer.xml")
        await stack.provision(NUMBER, targets(uri), ring_timeout=20)
        c = await carrier(stack, tmp_path, "carrier_cancel.xml", "-d", "500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(ringing, tmp_path, "ringing") == 0
        ended = await stack.wait_event("ended")
        assert ended.payload["result"] == "canceled"
        assert not stack.kinds("answered")


async def test_unknown_number_gets_404(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert final_to_carrier(stack) == 404
        assert (await stack.wait_event("failed")).payload["sip_status"] == 404
        assert not stack.kinds("media_allocated")  # nothing was reserved for it


async def test_stranger_gets_403(tmp_path: Path) -> None:
    """Outside local mode, only carrier trunks may send calls: loopback is a stranger."""
    async with running_stack(tmp_path, local_mode=False) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri))
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert final_to_carrier(stack) == 403
        assert not dialed(stack)
        await stop(up)


async def test_region_failover_when_virginia_media_is_down(tmp_path: Path) -> None:
    """us1's media workers stopped: the call is set up with us2's (Virginia -> Oregon)."""
    async with running_stack(tmp_path, media_regions=("us1", "us2")) as stack:
        await stack.stop_service("media_us1")
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri), region="us1")
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(up, tmp_path, "up") == 0
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["region"] == "us2"


async def test_delayed_offer_carrier(tmp_path: Path) -> None:
    """An INVITE without SDP: we offer in the 200 OK, the carrier answers in its ACK."""
    async with running_stack(tmp_path) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri))
        c = await carrier(stack, tmp_path, "carrier_delayed_offer.xml", "-d", "500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(up, tmp_path, "up") == 0
        ended = await stack.wait_event("ended")
        assert ended.payload["result"] == "completed"
        ok = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("SIP/2.0 200")
              and "INVITE" in e.payload["message"] and "m=audio" in e.payload["message"]]
        assert ok, "our 200 OK to the carrier carried no offer"
        assert not [e for e in stack.events if e.kind == "failed"]


async def test_offer_without_pcmu_gets_488(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri))
        scenario = (SCENARIOS / "carrier_rejected.xml").read_text()
        g729 = scenario.replace("RTP/AVP 0 101", "RTP/AVP 18 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000")
        assert g729 != scenario
        (tmp_path / "carrier_g729.xml").write_text(g729)
        c = await carrier(stack, tmp_path, tmp_path / "carrier_g729.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert final_to_carrier(stack) == 488
        assert not dialed(stack)
        await stop(up)


async def test_client_holds_resumes_and_hangs_up(tmp_path: Path) -> None:
    """Mid-call: the client's re-INVITEs (hold with a=sendonly, then resume) are answered
    with the matching direction; its BYE ends the carrier's leg too."""
    async with running_stack(tmp_path) as stack:
        pbx, uri = await sip_client(tmp_path, "pbx", "client_hold_then_hangup.xml")
        await stack.provision(NUMBER, targets(uri))
        # The carrier waits far longer than the call lasts: the BYE must come from our side.
        c = await carrier(stack, tmp_path, "carrier_call_until_bye.xml")
        assert await finish(pbx, tmp_path, "pbx") == 0
        assert await finish(c, tmp_path, "carrier") == 0
        ended = await stack.wait_event("ended")
        assert ended.payload["by"] == "callee"
        assert [e.payload["leg"] for e in stack.kinds("hold")] == ["b"]
        assert [e.payload["leg"] for e in stack.kinds("media_refresh")] == ["b"]


async def test_early_media_is_relayed_with_our_sdp(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        pbx, uri = await sip_client(tmp_path, "pbx", "client_early_media.xml")
        await stack.provision(NUMBER, targets(uri))
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0
        ringing = await stack.wait_event("ringing")
        assert ringing.payload == {"status": 183, "early_media": True}
        allocated = await stack.wait_event("media_allocated")
        early = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("SIP/2.0 183")]
        # The carrier's 183 carries the worker's A side, never the client's own address.
        assert early and f"m=audio {allocated.payload['a_port']} RTP/AVP" in early[0].payload["message"]


async def test_node_at_its_call_limit_answers_503_with_retry_after(tmp_path: Path) -> None:
    async with running_stack(tmp_path, signaling={"max_calls": 0}) as stack:
        c = await carrier(stack, tmp_path, "carrier_rejected.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert final_to_carrier(stack) == 503
        refusal = next(e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("SIP/2.0 503"))
        assert "Retry-After:" in refusal.payload["message"]


async def test_reliable_provisional_is_pracked(tmp_path: Path) -> None:
    """A client that requires 100rel (RFC 3262) gets our PRACK and then answers."""
    async with running_stack(tmp_path) as stack:
        pbx, uri = await sip_client(tmp_path, "pbx", "client_100rel.xml")
        await stack.provision(NUMBER, targets(uri))
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0
        prack = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("PRACK")]
        assert len(prack) == 1 and "RAck: 1 1 INVITE" in prack[0].payload["message"]
        assert (await stack.wait_event("ended")).payload["result"] == "completed"


async def test_session_timer_too_small_gets_422(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri))
        scenario = (SCENARIOS / "carrier_rejected.xml").read_text()
        small = scenario.replace("      Max-Forwards: 70\n", "      Max-Forwards: 70\n      Session-Expires: 30\n", 1)
        assert small != scenario
        (tmp_path / "carrier_se30.xml").write_text(small.replace('<recv response="403"', '<recv response="422" optional="true" next="ack" />\n  <recv response="403"', 1))
        c = await carrier(stack, tmp_path, tmp_path / "carrier_se30.xml")
        assert await finish(c, tmp_path, "carrier") == 0
        assert final_to_carrier(stack) == 422
        refusal = next(e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("SIP/2.0 422"))
        assert "Min-SE: 90" in refusal.payload["message"]
        await stop(up)


async def test_session_timer_accepted_with_carrier_refreshing(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri))
        scenario = (SCENARIOS / "carrier_call.xml").read_text()
        timed = scenario.replace("      Max-Forwards: 70\n", "      Max-Forwards: 70\n      Supported: timer\n      Session-Expires: 1800\n", 1)
        (tmp_path / "carrier_se.xml").write_text(timed)
        c = await carrier(stack, tmp_path, tmp_path / "carrier_se.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(up, tmp_path, "up") == 0
        # Our 200 OK to the carrier (the only 200 with SDP that we send).
        ok = next(e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("SIP/2.0 200")
                  and "m=audio" in e.payload["message"])
        assert "Session-Expires: 1800;refresher=uac" in ok.payload["message"]
        assert "Require: timer" in ok.payload["message"]


async def test_draining_node_refuses_new_calls_and_keeps_calls_in_progress(tmp_path: Path) -> None:
    async with running_stack(tmp_path, signaling={"shutdown_grace": 20}) as stack:
        up, up_uri = await sip_client(tmp_path, "up", "client_answer.xml")
        await stack.provision(NUMBER, targets(up_uri))
        first = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "2500")
        await stack.wait_event("answered")
        stack.stops["signaling"].set()  # SIGTERM: the node drains
        await asyncio.sleep(0.3)
        second = await carrier(stack, tmp_path, "carrier_rejected.xml", name="second")
        assert await finish(second, tmp_path, "second") == 0
        refusal = [e for e in stack.events if e.kind == "failed" and e.payload.get("reason") == "Node draining"]
        assert refusal and refusal[0].payload["sip_status"] == 503
        # The call in progress was not cut: it ends when the caller hangs up.
        assert await finish(first, tmp_path, "carrier") == 0
        assert await finish(up, tmp_path, "up") == 0
        assert (await stack.wait_event("ended")).payload["by"] == "caller"


async def test_cross_region_client_leg_is_originated_in_the_media_region(tmp_path: Path) -> None:
    """Virginia's media is down and Oregon has a signaling node: the client leg is placed
    by Oregon's node (signaling.us2.originate); the carrier's leg stays in Virginia, and
    the call behaves as a local one: ringing, answer, audio path, BYE both ways."""
    async with running_stack(tmp_path, media_regions=("us1", "us2"), other_signaling_regions=("us2",)) as stack:
        await stack.stop_service("media_us1")
        pbx, uri = await sip_client(tmp_path, "pbx", "client_answer.xml", "-rtp_echo")
        await stack.provision(NUMBER, targets(uri), region="us1")
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(pbx, tmp_path, "pbx") == 0
        allocated = await stack.wait_event("media_allocated")
        assert allocated.payload["region"] == "us2"
        remote = await stack.wait_event("originated_remotely")
        assert remote.payload == {"region": "us2", "node": "signaling-us2"}
        dialing = await stack.wait_event("dialing")
        assert dialing.node == "signaling-us2" and dialing.region == "us2"
        answered = await stack.wait_event("answered")
        assert answered.node == "signaling"  # the carrier's leg answered from Virginia
        ended = await stack.wait_event("ended")
        assert ended.payload["by"] == "caller" and ended.payload["result"] == "completed"
        # The client's INVITE and BYE came from Oregon's node, the carrier's 200 from Virginia's.
        invites = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("INVITE sip:100@")]
        byes = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("BYE")]
        assert {e.node for e in invites} == {"signaling-us2"} and {e.node for e in byes} == {"signaling-us2"}


async def test_cross_region_carrier_cancel_reaches_the_remote_leg(tmp_path: Path) -> None:
    async with running_stack(tmp_path, media_regions=("us1", "us2"), other_signaling_regions=("us2",)) as stack:
        await stack.stop_service("media_us1")
        ringing, uri = await sip_client(tmp_path, "ringing", "client_no_answer.xml")
        await stack.provision(NUMBER, targets(uri), region="us1", ring_timeout=20)
        c = await carrier(stack, tmp_path, "carrier_cancel.xml", "-d", "500")
        assert await finish(c, tmp_path, "carrier") == 0
        assert await finish(ringing, tmp_path, "ringing") == 0  # it got the CANCEL from Oregon
        assert (await stack.wait_event("ended")).payload["result"] == "canceled"


async def test_cross_region_client_holds_and_hangs_up(tmp_path: Path) -> None:
    """The client's re-INVITEs are answered by Oregon's node, its BYE ends the carrier's
    leg in Virginia."""
    async with running_stack(tmp_path, media_regions=("us1", "us2"), other_signaling_regions=("us2",)) as stack:
        await stack.stop_service("media_us1")
        pbx, uri = await sip_client(tmp_path, "pbx", "client_hold_then_hangup.xml")
        await stack.provision(NUMBER, targets(uri), region="us1")
        c = await carrier(stack, tmp_path, "carrier_call_until_bye.xml")
        assert await finish(pbx, tmp_path, "pbx") == 0
        assert await finish(c, tmp_path, "carrier") == 0
        assert (await stack.wait_event("ended")).payload["by"] == "callee"
        assert [e.node for e in stack.kinds("hold")] == ["signaling-us2"]


async def test_info_from_the_client_reaches_the_carrier(tmp_path: Path) -> None:
    """SIP INFO (e.g. application/dtmf-relay) is relayed to the other leg and its answer
    comes back (RFC 6086)."""
    async with running_stack(tmp_path) as stack:
        pbx, uri = await sip_client(tmp_path, "pbx", "client_sends_info.xml")
        await stack.provision(NUMBER, targets(uri))
        c = await carrier(stack, tmp_path, "carrier_call_info.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0  # it got the INFO with Signal=5
        assert await finish(pbx, tmp_path, "pbx") == 0  # it got the carrier's 200 back
        relayed = [e for e in stack.events if e.kind == "sip_out" and e.payload["first_line"].startswith("INFO")]
        assert len(relayed) == 1 and "application/dtmf-relay" in relayed[0].payload["message"]


async def test_client_over_tcp(tmp_path: Path) -> None:
    """A `;transport=tcp` target: the client leg runs over TCP (SIPp in t1 mode), the
    carrier's over UDP; the call connects and ends normally."""
    async with running_stack(tmp_path) as stack:
        port = sip_free_port()
        pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-t", "t1",
                         "-p", str(port), "-mp", str(udp_free_port()), "-m", "1")
        await asyncio.sleep(0.3)  # SIPp's TCP listener
        uri = f"sip:100@127.0.0.1:{port};transport=tcp"
        await stack.provision(NUMBER, targets(uri))
        c = await carrier(stack, tmp_path, "carrier_call.xml", "-d", "300")
        assert await finish(c, tmp_path, "carrier") == 0
        assert (await stack.wait_event("dialing")).payload["transport"] == "tcp"
        assert (await stack.wait_event("ended")).payload["result"] == "completed"
        tcp_out = [e for e in stack.events if e.kind == "sip_out" and e.payload["transport"] == "tcp"]
        assert {e.payload["first_line"].split()[0] for e in tcp_out} >= {"INVITE", "ACK", "BYE"}
        await stop(pbx)
