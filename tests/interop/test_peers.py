"""The interop harness works peer-to-peer, without Switchboard: SIPp against SIPp (the
scenarios in ./scenarios pair up), baresip against baresip over TLS with SRTP, DTMF."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.helpers.peers import (
    LOOPBACK,
    dominant_frequency,
    free_sip_port,
    needs_baresip,
    needs_sipp,
    rms,
    tone_level,
    write_tone_wav,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

CARRIER_VARS = {"caller": "15550001111", "rtp_ip": LOOPBACK, "rtp_port": 0}


def test_audio_helpers(tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "t.wav", 1000, 2)
    assert dominant_frequency(tone) == 1000
    assert rms(tone) == pytest.approx(0.3 * 32767 / 2**0.5, rel=0.02)
    assert tone_level(tone, 1000) > 100 * tone_level(tone, 600)
    silent = write_tone_wav(tmp_path / "s.wav", 1000, 1, amplitude=0)
    assert rms(silent) == 0 and dominant_frequency(silent) == 0.0


@needs_sipp
@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_uac_calls_sipp_uas(sipp, transport: str) -> None:
    uas = await sipp("uas", transport=transport, timeout=10).start()
    uac = sipp("uac", remote=uas.address, transport=transport, call_length_ms=200, timeout=10)
    result = (await uac.run()).assert_ok()
    assert result.sent("INVITE") == 1 and result.received("200") == 2  # INVITE and BYE
    server = await uas.wait()
    assert server.received("INVITE") == 1 and server.received("BYE") == 1, server.describe()
    if transport == "u1":
        server.assert_ok()
    # Over TCP SIPp's embedded uas ends with a 4 s pause, and the uac closing the connection
    # during it counts as a failed call (FailedTcpClosed) on the server's side.


@needs_sipp
@pytest.mark.parametrize(
    ("carrier", "client", "client_vars", "expect"),
    [
        ("carrier_call", "client_answer", {}, {"received": ["180", "200"], "sent": ["ACK", "BYE"]}),
        ("carrier_delayed_offer", "client_answer", {}, {"received": ["200"], "sent": ["ACK", "BYE"]}),
        ("carrier_cancel", "client_no_answer", {}, {"received": ["180", "487"], "sent": ["CANCEL", "ACK"]}),
        ("carrier_rejected", "client_busy", {}, {"received": ["486"], "sent": ["ACK"]}),
        (
            "carrier_rejected",
            "client_unavailable",
            {"retry_after": 5},
            {"received": ["503"], "sent": ["ACK"]},
        ),
    ],
)
async def test_sipp_scenarios_pair_up(sipp, carrier, client, client_vars, expect) -> None:
    server = await sipp(client, variables=client_vars, timeout=10).start()
    rtp_port = free_sip_port(even=True)
    result = await sipp(
        carrier,
        remote=server.address,
        service="15557654321",
        variables=CARRIER_VARS | {"rtp_port": rtp_port},
        call_length_ms=300,
        timeout=10,
    ).run()
    result.assert_ok()
    for label in expect["received"]:
        assert result.received(label) >= 1, result.describe()
    for label in expect["sent"]:
        assert result.sent(label) >= 1, result.describe()
    (await server.wait()).assert_ok()


@needs_sipp
@pytest.mark.parametrize("password", ["s3cret", "wrong"])
async def test_sipp_challenging_client_checks_digest(sipp, password: str) -> None:
    """client_auth_answer challenges with 401 and verifies the digest (verifyauth)."""
    client = await sipp(
        "client_auth_answer", variables={"user": "alice", "pass": "s3cret"}, rtp_echo=True, timeout=10
    ).start()
    uac = sipp(
        "uac_digest",
        remote=client.address,
        service="100",
        auth=("alice", password),
        call_length_ms=200,
        timeout=10,
    )
    result, server = await uac.run(), await client.wait()
    if password == "s3cret":
        result.assert_ok()
        server.assert_ok()
        assert server.sent("401") == 1 and server.received("BYE") == 1
    else:
        result.assert_failed()  # the 403 is unexpected for uac_digest
        server.assert_failed()
        assert server.sent("403") == 1


@needs_sipp
async def test_sipp_failure_is_reported_with_logs(sipp) -> None:
    """A carrier call to a busy client fails; the result says so and shows the error log."""
    server = await sipp("client_busy", timeout=5).start()
    result = await sipp(
        "carrier_call",
        remote=server.address,
        service="15557654321",
        variables=CARRIER_VARS | {"rtp_port": free_sip_port(even=True)},
        timeout=5,
    ).run()
    with pytest.raises(AssertionError, match="expected 1 successful call"):
        result.assert_ok()
    result.assert_failed()
    assert "486" in result.describe()
    await server.wait()


@needs_baresip
async def test_baresip_tls_srtp_call_carries_audio_both_ways(baresip, tls_files) -> None:
    alice = await baresip("alice", tls=tls_files, mediaenc="srtp-mand", tone_hz=1000).start()
    bob = await baresip("bob", tls=tls_files, mediaenc="srtp-mand", auto_answer=True, tone_hz=600).start()

    await alice.dial(bob.uri("tls"))
    incoming = await bob.wait_for_event("CALL_ESTABLISHED")
    assert incoming["direction"] == "incoming"
    await alice.wait_for_event("CALL_ESTABLISHED")
    for ua in (alice, bob):
        menc = await ua.wait_for_event("CALL_MENC")
        assert "AES_CM_128_HMAC_SHA1_80" in menc["param"], menc
        await ua.wait_for_event("CALL_RTPESTAB")
    await asyncio.sleep(2)
    await alice.hangup()
    await bob.wait_for_event("CALL_CLOSED")
    await alice.wait_for_event("CALL_CLOSED")

    sip_log = bob.log_path.read_text(errors="replace")
    assert "RTP/SAVP" in sip_log and "TLS" in sip_log, bob.log_tail()
    heard_by_bob, heard_by_alice = bob.recorded_wav("dec"), alice.recorded_wav("dec")
    assert dominant_frequency(heard_by_bob) == 1000, bob.log_tail()
    assert dominant_frequency(heard_by_alice) == 600, alice.log_tail()
    assert rms(heard_by_bob, skip=0.5) > 1000


@needs_baresip
async def test_baresip_dtmf_arrives(baresip, tls_files) -> None:
    alice = await baresip("alice", tls=tls_files, mediaenc="srtp-mand").start()
    bob = await baresip("bob", tls=tls_files, mediaenc="srtp-mand", auto_answer=True).start()
    await alice.dial(bob.uri("tls"))
    await bob.wait_for_event("CALL_RTPESTAB")
    await alice.wait_for_event("CALL_RTPESTAB")

    await alice.send_dtmf("5#")
    assert await bob.wait_for_dtmf(2) == "5#"
    await bob.hangup()
    await alice.wait_for_event("CALL_CLOSED")


@needs_baresip
async def test_baresip_plain_udp_manual_answer(baresip) -> None:
    """Without TLS/SRTP and without auto-answer: bob sees CALL_INCOMING and accepts."""
    alice = await baresip("alice").start()
    bob = await baresip("bob").start()
    await alice.dial(bob.uri("udp"))
    await bob.wait_for_event("CALL_INCOMING")
    await bob.accept()
    await alice.wait_for_event("CALL_ESTABLISHED")
    await asyncio.sleep(1)
    await alice.hangup()
    await bob.wait_for_event("CALL_CLOSED")
    assert dominant_frequency(bob.recorded_wav("dec"), skip=0.3, seconds=0.5) == 1000
