"""What a customer's PBX gets from us (issue 15): the tracking number, the caller's identity,
the headers a receiving number passes or adds.

Asterisk, FreeSWITCH and 3CX are not packaged here: the PBXs are SIPp scenarios that behave
as they do where it matters (Asterisk/3CX route an inbound call on the Request-URI user, the
DID; a PBX reads Diversion and X- headers for reporting) and check every header with
regular expressions (`<ereg check_it="true">`; a failed check fails the scenario)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.sipp import NUMBER, SCENARIOS, carrier, finish, sipp
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
