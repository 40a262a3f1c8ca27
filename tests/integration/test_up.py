"""`switchboard up` brings the whole stack up and Ctrl-C brings every process down."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.errors
import pytest

from proto import subjects
from services.common.natsserver import free_port

SWITCHBOARD = [sys.executable, "-c", "from services.cli.main import main; main()"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not seen; output:\n{''.join(lines)}")


@pytest.mark.timeout(120)
async def test_up_starts_every_service_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    env = dict(os.environ, SWITCHBOARD_ADMIN_TOKEN="test-admin-token")
    args = [
        "up", "--data-dir", str(tmp_path / "var"), "--nats-port", str(free_port()),
        "--sip-port", str(free_port()), "--sip-tls-port", str(free_port()), "--http-port", str(free_port()),
    ]
    proc = subprocess.Popen(SWITCHBOARD + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out = wait_for_line(proc, "Ctrl-C stops everything")
        assert any("admin token test-admin-token" in line for line in out)
        run = json.loads((tmp_path / "var" / "run.json").read_text())
        # The embedded NATS is not open (issue 14 item 7): anonymous clients are refused...
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(run["nats_url"], max_reconnect_attempts=0, allow_reconnect=False)
        creds = Path(run["nats_credentials"])
        assert creds.parent == tmp_path / "var" and stat.S_IMODE(creds.stat().st_mode) == 0o600
        # ...and the CLI finds the credentials of the stack it runs beside.
        regions = subprocess.run(SWITCHBOARD + ["regions", "--data-dir", str(tmp_path / "var"), "--json"],
                                 capture_output=True, text=True, timeout=30)
        assert regions.returncode == 0, regions.stderr
        auth = json.loads(creds.read_text())
        nc = await nats.connect(run["nats_url"], user=auth["user"], password=auth["password"])
        for name in ("signaling", "media", "config", "registry"):
            reply = await nc.request(subjects.micro_ping(name), b"", timeout=2)
            assert json.loads(reply.data)["name"] == subjects.micro_name(name)
        await nc.close()
        assert (tmp_path / "var" / "tls" / "sip.crt").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "nats-server stopped" in rest
    for name, pid in run["pids"].items():
        assert not alive(pid), f"{name} (pid {pid}) still running after Ctrl-C"
    assert not (tmp_path / "var" / "run.json").exists()


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_up_says_which_port_is_taken(tmp_path: Path, proto: str) -> None:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        if proto == "tcp":
            s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            SWITCHBOARD + ["up", "--data-dir", str(tmp_path), "--sip-port", str(port),
                           "--http-port", str(free_port()), "--sip-tls-port", str(free_port())],
            capture_output=True, text=True, timeout=30,
        )
    assert r.returncode == 2
    assert f"port {port}/{proto}" in r.stderr and "--sip-port" in r.stderr
    assert "Traceback" not in r.stderr


def test_http_port_taken_names_the_flag(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            SWITCHBOARD + ["up", "--data-dir", str(tmp_path), "--http-port", str(port),
                           "--sip-port", str(free_port()), "--sip-tls-port", str(free_port())],
            capture_output=True, text=True, timeout=30,
        )
    assert r.returncode == 2 and "--http-port" in r.stderr and "SWITCHBOARD_HTTP_PORT" in r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--sip-port", "99999"], "99999 is not a port"),
    (["--http-port", "http"], "'http' is not a port number"),
    (["--region", "us1.>"], "is not a region code"),
])
def test_bad_flags_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    r = subprocess.run(SWITCHBOARD + ["up", "--data-dir", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.timeout(120)
def test_up_killed_outright_leaves_no_orphan(tmp_path: Path) -> None:
    """SIGKILL gives `up` no chance to stop its children: the kernel does it for it
    (PR_SET_PDEATHSIG), so nats-server, config, registry, media and signaling go too."""
    args = [
        "up", "--data-dir", str(tmp_path / "var"), "--nats-port", str(free_port()),
        "--sip-port", str(free_port()), "--sip-tls-port", str(free_port()), "--http-port", str(free_port()),
    ]
    proc = subprocess.Popen(SWITCHBOARD + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(proc, "Ctrl-C stops everything")
        run = json.loads((tmp_path / "var" / "run.json").read_text())
        assert set(run["pids"]) == {"signaling", "media", "config", "registry", "nats"}
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    deadline = time.monotonic() + 30  # a service drains (shutdown_grace) on its way out
    while (left := [n for n, pid in run["pids"].items() if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"orphans after SIGKILL of up: {left}"


@pytest.mark.timeout(120)
@pytest.mark.skipif(__import__("shutil").which("sipp") is None, reason="sipp is not installed")
async def test_ctrl_c_with_a_call_up_ends_it_with_bye_and_stops_everything(tmp_path: Path) -> None:
    """Under load: a call in progress when Ctrl-C comes is ended with a BYE (after the
    drain grace), and every process is gone within `up`'s stop budget."""
    import asyncio

    import httpx

    from services.cli.up import STOP_BUDGET
    from tests.helpers.sipp import NUMBER, SCENARIOS, finish, sipp
    from tests.helpers.stack import udp_free_port

    sip_port, http_port = free_port(), free_port()
    env = dict(os.environ, SWITCHBOARD_ADMIN_TOKEN="test-admin-token")
    args = ["up", "--data-dir", str(tmp_path / "var"), "--nats-port", str(free_port()), "--sip-port", str(sip_port),
            "--sip-tls-port", str(free_port()), "--http-port", str(http_port)]
    proc = subprocess.Popen(SWITCHBOARD + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        await asyncio.to_thread(wait_for_line, proc, "Ctrl-C stops everything")
        run = json.loads((tmp_path / "var" / "run.json").read_text())
        pbx_port = udp_free_port()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                     headers={"Authorization": "Bearer test-admin-token"}) as api:
            acc = (await api.post("/v1/accounts", json={"name": "a"})).json()["id"]
            rn = (await api.post("/v1/receiving-numbers", json={
                "name": "rn", "dial_sip_client": True, "account_id": acc,
                "sip_targets": [{"uri": f"sip:100@127.0.0.1:{pbx_port}"}]})).json()["id"]
            r = await api.post("/v1/tracking-numbers", json={"number": NUMBER, "receiving_number_id": rn,
                                                              "account_id": acc})
            assert r.status_code == 201, r.text
            pbx = await sipp(tmp_path, "pbx", "-sf", str(SCENARIOS / "client_answer.xml"), "-p", str(pbx_port),
                             "-mp", str(udp_free_port()), "-m", "1")
            c = await sipp(tmp_path, "carrier", "-sf", str(SCENARIOS / "carrier_call_until_bye.xml"),
                           "-set", "caller", "15550001111", "-set", "rtp_ip", "127.0.0.1",
                           "-set", "rtp_port", str(udp_free_port()), "-s", NUMBER.lstrip("+"),
                           "-p", str(udp_free_port()), "-m", "1", f"127.0.0.1:{sip_port}")
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # the call is up
                items = (await api.get("/v1/calls")).json()["items"]
                if items and items[0].get("answered_at"):
                    break
                assert asyncio.get_running_loop().time() < deadline, items
                await asyncio.sleep(0.2)
    except BaseException:
        proc.kill()
        raise
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    took = time.monotonic() - started
    print(f"Ctrl-C with a call up: every process stopped {took:.1f} s later (budget {STOP_BUDGET:g} s)")
    assert proc.returncode == 0, rest[-3000:]
    assert await finish(c, tmp_path, "carrier") == 0  # it got our BYE
    assert await finish(pbx, tmp_path, "pbx") == 0
    for name, pid in run["pids"].items():
        assert not alive(pid), f"{name} (pid {pid}) still running after Ctrl-C"
    assert "killing it" not in rest, rest[-3000:]
