"""Real SIP peers on loopback: SIPp 3.6 (``sipp -sn uac`` / ``-sn uas``) against SipEndpoint,
over UDP and TCP."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import pytest

from services.signaling.endpoint import IncomingRequest, SipEndpoint
from services.signaling.transport import Addr

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

SIPP_TRANSPORT = {"udp": "u1", "tcp": "t1"}


def free_port(kind: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def listening(kind: str, port: int) -> bool:
    """Whether something is bound to 127.0.0.1:port (from /proc, without touching it)."""
    table = Path(f"/proc/net/{kind}").read_text().splitlines()[1:]
    want = f"0100007F:{port:04X}"
    for line in table:
        fields = line.split()
        if fields[1] == want and (kind == "udp" or fields[3] == "0A"):  # 0A = LISTEN
            return True
    return False


async def run_sipp(args: list[str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "sipp", *args, "-m", "1", "-timeout", "20s", "-trace_err", "-nostdin",
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    errors = "".join(p.read_text() for p in cwd.glob("*_errors.log"))
    return proc.returncode or 0, out.decode(errors="replace") + errors


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_uac_against_our_uas(transport: str, tmp_path: Path) -> None:
    seen: list[str] = []

    def on_request(incoming: IncomingRequest) -> None:
        seen.append(incoming.method)
        if incoming.method in ("INVITE", "OPTIONS", "BYE"):
            incoming.respond(200)

    ep = SipEndpoint(on_request=on_request)
    local = await ep.listen(transport, "127.0.0.1", 0)
    try:
        rc, out = await run_sipp(
            ["-sn", "uac", "-t", SIPP_TRANSPORT[transport], "-i", "127.0.0.1",
             "-p", str(free_port(transport)), local.hostport],
            tmp_path,
        )  # fmt: skip
        assert rc == 0, out
        assert seen == ["INVITE", "ACK", "BYE"]
        assert len(ep.dialogs) == 0  # the BYE ended the dialog
    finally:
        await ep.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_our_uac_against_sipp_uas(transport: str, tmp_path: Path) -> None:
    port = free_port(transport)
    sipp = asyncio.ensure_future(
        run_sipp(
            ["-sn", "uas", "-t", SIPP_TRANSPORT[transport], "-i", "127.0.0.1", "-p", str(port)], tmp_path
        )
    )
    for _ in range(200):
        if listening(transport, port) or sipp.done():
            break
        await asyncio.sleep(0.05)
    out_msgs: list[str] = []
    ep = SipEndpoint(
        on_message_out=lambda m, a: out_msgs.append(getattr(m, "method", "") or str(getattr(m, "status", "")))
    )
    await ep.listen(transport, "127.0.0.1", 0)
    try:
        target = Addr(transport, "127.0.0.1", port)
        invite = ep.create_request(
            "INVITE",
            f"sip:service@127.0.0.1:{port};transport={transport}",
            from_="<sip:switchboard@127.0.0.1>",
            to=f"<sip:service@127.0.0.1:{port}>",
            transport=transport,
            body=b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            content_type="application/sdp",
        )
        call = await ep.request(invite, target)
        statuses = [r.status async for r in call]
        assert statuses[-1] == 200 and 180 in statuses, statuses
        assert call.dialog is not None and call.dialog.remote_tag
        await call.ack()
        bye = await ep.request(call.dialog.create_request("BYE"), target)
        assert (await bye.final()).status == 200
        rc, out = await sipp
        assert rc == 0, out
        assert out_msgs[:3] == ["INVITE", "ACK", "BYE"]
    finally:
        if not sipp.done():
            sipp.cancel()
        await ep.close()
