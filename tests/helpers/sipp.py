"""SIPp as the carrier and as the customer's SIP client, for the tests that run the whole
stack (tests/interop, tests/faults, tests/integration/events): the scenarios in
tests/interop/scenarios, on loopback only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.helpers.stack import Stack, udp_free_port

SCENARIOS = Path(__file__).resolve().parents[1] / "interop" / "scenarios"
NUMBER = "+15551234567"


async def sipp(tmp: Path, name: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "sipp", *args, "-i", "127.0.0.1", "-nostdin", "-trace_err", "-error_file", str(tmp / f"{name}.err"),
        "-timeout", "40s", "-timeout_error", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        cwd=tmp,
    )


async def finish(proc: asyncio.subprocess.Process, tmp: Path, name: str, timeout: float = 45) -> int:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    code = proc.returncode
    assert code is not None
    if code != 0:
        log = (tmp / f"{name}.err").read_text()[-3000:] if (tmp / f"{name}.err").exists() else ""
        print(f"--- {name} exited {code}\n{err.decode()[-2000:]}\n{log}")
    return code


async def client(tmp: Path, scenario: str = "client_auth_answer.xml", *extra: str) -> tuple[asyncio.subprocess.Process, int]:
    port = udp_free_port()
    proc = await sipp(tmp, "client", "-sf", str(SCENARIOS / scenario), "-set", "user", "alice", "-set", "pass",
                      "s3cret", "-p", str(port), "-mp", str(udp_free_port()), "-rtp_echo", "-m", "1", *extra)
    return proc, port


async def media_carrier(stack: Stack, tmp: Path, rtp_port: int, hold_ms: int = 2500) -> asyncio.subprocess.Process:
    """The carrier calling NUMBER with carrier_call.xml, its RTP going to ``rtp_port``."""
    return await sipp(tmp, "carrier", "-sf", str(SCENARIOS / "carrier_call.xml"), "-set", "caller", "15550001111",
                      "-set", "rtp_ip", "127.0.0.1", "-set", "rtp_port", str(rtp_port), "-d", str(hold_ms),
                      "-s", NUMBER.lstrip("+"), "-p", str(udp_free_port()), "-m", "1",
                      f"127.0.0.1:{stack.sip_port}")


async def carrier(stack: Stack, tmp: Path, scenario: str | Path, *extra: str,
                  name: str = "carrier") -> asyncio.subprocess.Process:
    """The carrier: a scenario of tests/interop/scenarios by name, or a scenario file."""
    return await sipp(tmp, name, "-sf", str(SCENARIOS / scenario), "-set", "caller", "15550001111",
                      "-set", "rtp_ip", "127.0.0.1", "-set", "rtp_port", str(udp_free_port()),
                      "-s", NUMBER.lstrip("+"), "-p", str(udp_free_port()), "-m", "1", *extra,
                      f"127.0.0.1:{stack.sip_port}")
