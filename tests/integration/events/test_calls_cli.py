"""`switchboard calls show/export/replay` read a call back from the CALLS stream."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proto import events as pe
from proto import subjects
from proto.messages import CallEvent
from services.common.bus import Bus
from services.common.callstream import read_call_events
from services.common.natsserver import NatsServer

INVITE = (
    "INVITE sip:+15551234567@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    "From: <sip:+15550001111@127.0.0.1>;tag=a\r\nTo: <sip:+15551234567@127.0.0.1>\r\n"
    "Call-ID: abc@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
TRYING = (
    "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    "From: <sip:+15550001111@127.0.0.1>;tag=a\r\nTo: <sip:+15551234567@127.0.0.1>\r\n"
    "Call-ID: abc@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from services.cli.main import main; main()", "calls", *args, "--nats-url", url],
        capture_output=True, text=True, timeout=30,
    )


async def publish_call(bus: Bus, call_id: str) -> None:
    await bus.ensure_calls_stream()
    js = bus.nc.jetstream()
    def sig(seq: int, body: pe.EventBody) -> CallEvent:
        return pe.envelope(call_id, body, service="signaling", node="n1", seq=seq)

    evs = [
        sig(1, pe.Received(tracking_number="+15551234567", caller="+15550001111", caller_name=None,
                           source="127.0.0.1:5070", transport="udp", sip_call_id="a@127.0.0.1")),
        sig(2, pe.SipIn(src="127.0.0.1:5070", dst="127.0.0.1:5060", transport="udp",
                        first_line=INVITE.split("\r\n")[0], message=INVITE)),
        sig(3, pe.SipOut(src="127.0.0.1:5060", dst="127.0.0.1:5070", transport="udp",
                         first_line="SIP/2.0 100 Trying", message=TRYING)),
        sig(4, pe.Failed(sip_status=404, reason="no route", result="failed")),
    ]
    for ev in evs:
        await js.publish(subjects.call_event(call_id, ev.kind), ev.model_dump_json().encode())
    # Another call's event must not leak into this one's timeline.
    await js.publish(subjects.call_event("other", "received"),
                     CallEvent(call_id="other", kind="received").model_dump_json().encode())


async def test_show_prints_the_timeline_in_order(bus: Bus, nats_server: NatsServer) -> None:
    await publish_call(bus, "call-1")
    events = await read_call_events(bus, "call-1")
    assert [e.kind for e in events] == ["received", "sip_in", "sip_out", "failed"]

    r = await asyncio.to_thread(cli, nats_server.url, "show", "call-1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split()[3] for ln in lines] == ["received", "sip_in", "sip_out", "failed"]
    assert "INVITE sip:+15551234567@127.0.0.1 SIP/2.0" in lines[1]
    assert "sip_status=404" in lines[3]

    r = await asyncio.to_thread(cli, nats_server.url, "show", "nope")
    assert r.returncode == 1 and "no events for call nope" in r.stderr
    r = await asyncio.to_thread(cli, nats_server.url, "show", "bad id!")
    assert r.returncode == 2 and "call id is letters" in r.stderr and "Traceback" not in r.stderr


async def test_replay_republishes_every_event(bus: Bus, nats_server: NatsServer) -> None:
    await publish_call(bus, "call-2")
    got: list[CallEvent] = []

    async def h(ev: CallEvent) -> None:
        got.append(ev)

    await bus.subscribe("replay.test", h, CallEvent, concurrent=False)
    await bus.nc.flush()
    r = await asyncio.to_thread(cli, nats_server.url, "replay", "call-2", "--to", "replay.test")
    assert r.returncode == 0, r.stderr
    for _ in range(50):
        if len(got) == 4:
            break
        await asyncio.sleep(0.05)
    assert [e.seq for e in got] == [1, 2, 3, 4]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (.ci/run installs it)")
async def test_export_pcap_opens_in_tshark(bus: Bus, nats_server: NatsServer, tmp_path: Path) -> None:
    await publish_call(bus, "call-3")
    pcap = tmp_path / "capture.pcap"
    r = await asyncio.to_thread(cli, nats_server.url, "export", "call-3", "--pcap", str(pcap))
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "sip", "-T", "fields", "-e", "sip.Method",
                          "-e", "sip.Status-Code"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert rows == [["INVITE", ""], ["", "100"]]


async def test_no_nats_is_a_clear_error() -> None:
    r = await asyncio.to_thread(cli, "nats://127.0.0.1:1", "show", "x")
    assert r.returncode == 2 and "cannot reach NATS" in r.stderr


def cli_env(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return subprocess.run([sys.executable, "-c", "from services.cli.main import main; main()", "calls", *args],
                          capture_output=True, text=True, timeout=30, cwd=cwd, env=base | (env or {}))


async def test_a_nats_without_the_calls_stream_is_named_with_how_to_point_at_the_stack(tmp_path: Path) -> None:
    other = NatsServer(store_dir=tmp_path / "other")  # JetStream on, but not a Switchboard's bus
    other.start()
    try:
        r = await asyncio.to_thread(cli, other.url, "show", "some-call")
    finally:
        other.stop()
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"the NATS at {other.url} (from --nats-url) has no CALLS stream" in r.stderr
    assert "--data-dir" in r.stderr and "--nats-url" in r.stderr


async def test_the_stack_is_found_from_data_dir_or_switchboard_data_dir(bus: Bus, nats_server: NatsServer,
                                                                       tmp_path: Path) -> None:
    import json

    await publish_call(bus, "call-dd")
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    (stack_dir / "run.json").write_text(json.dumps({"nats_url": nats_server.url}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = await asyncio.to_thread(cli_env, "show", "call-dd", "--data-dir", str(stack_dir), cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "received" in r.stdout
    r = await asyncio.to_thread(cli_env, "show", "call-dd", cwd=elsewhere,
                                env={"SWITCHBOARD_DATA_DIR": str(stack_dir)})
    assert r.returncode == 0, r.stderr
    # Without either, the default it tried is said, with the run.json it looked for.
    r = await asyncio.to_thread(cli_env, "show", "call-dd", "--nats-url", "nats://127.0.0.1:1", cwd=elsewhere)
    assert r.returncode == 2 and "cannot reach NATS at nats://127.0.0.1:1 (from --nats-url)" in r.stderr


async def test_ladder_draws_the_call_in_columns(bus: Bus, nats_server: NatsServer) -> None:
    await publish_call(bus, "call-lad")
    r = await asyncio.to_thread(cli, nats_server.url, "ladder", "call-lad", "--width", "90")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["Carrier", "Switchboard"]
    assert lines[1].split() == ["127.0.0.1:5070", "127.0.0.1:5060"]
    assert "\x1b[" not in r.stdout  # not a terminal: no colour
    arrows = [ln for ln in lines if "INVITE" in ln or "100 Trying" in ln]
    assert "->" in arrows[0] and "INVITE" in arrows[0]
    assert "<-" in arrows[1] and "100 Trying" in arrows[1]
    assert any("failed: sip_status=404" in ln for ln in lines)
    assert all(len(ln) <= 90 for ln in lines)
    r = await asyncio.to_thread(cli, nats_server.url, "ladder", "nope")
    assert r.returncode == 1 and "no events for call nope" in r.stderr


async def test_tail_prints_live_events_as_they_arrive(bus: Bus, nats_server: NatsServer) -> None:
    await bus.ensure_calls_stream()
    js = bus.nc.jetstream()
    consumers_before = (await js.stream_info(subjects.CALLS_STREAM)).state.consumer_count
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from services.cli.main import main; main()", "calls", "tail",
        "--nats-url", nats_server.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        # Tail shows new events only: publish once its consumer exists on the stream.
        while (await js.stream_info(subjects.CALLS_STREAM)).state.consumer_count <= consumers_before:
            assert proc.returncode is None, await proc.stderr.read()  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        await publish_call(bus, "call-tail")
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 10)).decode() for _ in range(5)]
    finally:
        proc.terminate()
        await proc.wait()
    mine = [ln.split() for ln in lines if ln.startswith("call-tail")]
    assert [ln[1] for ln in mine] == ["received", "sip_in", "sip_out", "failed"]
    assert "sip_status=404" in lines[3] and "INVITE" in lines[1]
    assert lines[4].split()[:2] == ["other", "received"]
