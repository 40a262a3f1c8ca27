"""Issue 14 item 7: the bus is not open. The embedded NATS refuses a client without the
credentials `switchboard up` generates (mode 0600); with them a service connects. An
external NATS is reached with a token, or over TLS with a CA and a client certificate."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import subprocess
from pathlib import Path

import nats
import nats.errors
import pytest

from proto import subjects
from services.common.bus import Bus, BusAuth
from services.common.natsserver import NatsServer, free_port, nats_server_binary
from tests.helpers.tls import TestCA


async def test_embedded_nats_refuses_anonymous_clients(tmp_path: Path) -> None:
    creds = tmp_path / "var" / "nats-auth.json"
    server = NatsServer(credentials=creds)
    server.start()
    try:
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        conf = creds.with_name("nats-server.conf")
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        password = json.loads(creds.read_text())["password"]
        assert len(password) >= 32
        # Not on the command line, where `ps` shows it to every user.
        assert server.proc is not None
        assert password not in Path(f"/proc/{server.proc.pid}/cmdline").read_text()

        with socket.create_connection((server.host, server.port), timeout=2) as s:  # what any client sees first
            info = json.loads(s.recv(4096).decode().removeprefix("INFO ").strip())
        assert info["auth_required"] is True
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, max_reconnect_attempts=0, allow_reconnect=False)
        with pytest.raises(nats.errors.NoServersError):
            await Bus.connect(server.url, "anonymous", max_reconnect_attempts=0, auth=BusAuth())
        with pytest.raises(nats.errors.Error):
            await nats.connect(server.url, user="switchboard", password="guess", max_reconnect_attempts=0,
                               allow_reconnect=False)

        bus = await Bus.connect(server.url, "service", auth=BusAuth.from_file(creds))
        try:
            await bus.ensure_calls_stream()
            sub = await bus.nc.subscribe(subjects.heartbeat_all())
            await bus.nc.publish(subjects.heartbeat("media", "us1", "w1"), b"{}")
            assert (await sub.next_msg(timeout=2)).data == b"{}"
        finally:
            await bus.close()
        # The same credentials survive a restart (the services keep theirs).
        server.stop()
        server.start()
        bus = await Bus.connect(server.url, "service", auth=BusAuth.from_file(creds))
        await bus.close()
    finally:
        server.stop()


async def test_external_nats_with_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    proc = subprocess.Popen([nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "--auth", "t0ken-of-ours"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"nats://127.0.0.1:{port}"
        bus = None
        for _ in range(100):  # until it listens
            try:
                monkeypatch.setenv("SWITCHBOARD_NATS_TOKEN", "t0ken-of-ours")
                bus = await Bus.connect(url, "svc", max_reconnect_attempts=0)  # from the environment
                break
            except nats.errors.NoServersError:
                await asyncio.sleep(0.05)
        assert bus is not None
        await bus.close()
        monkeypatch.delenv("SWITCHBOARD_NATS_TOKEN")
        with pytest.raises(nats.errors.Error):
            await Bus.connect(url, "anonymous", max_reconnect_attempts=0)
    finally:
        proc.terminate()
        proc.wait()


async def test_external_nats_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    server_cert = ca.issue("127.0.0.1", "localhost")
    client_cert = ca.issue(client=True)
    port = free_port()
    proc = subprocess.Popen([nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "--tlsverify",
                             "--tlscert", server_cert.cert_file, "--tlskey", server_cert.key_file,
                             "--tlscacert", ca.cert_file], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"tls://127.0.0.1:{port}"
        auth = BusAuth(tls_ca=ca.cert_file, tls_cert=client_cert.cert_file, tls_key=client_cert.key_file)
        bus = None
        for _ in range(100):
            try:
                bus = await Bus.connect(url, "svc", max_reconnect_attempts=0, auth=auth)
                break
            except nats.errors.NoServersError:
                await asyncio.sleep(0.05)
        assert bus is not None and bus.connected
        await bus.close()
        with pytest.raises((nats.errors.Error, OSError)):  # no client certificate: refused
            await Bus.connect(url, "anonymous", max_reconnect_attempts=0, auth=BusAuth(tls_ca=ca.cert_file))
    finally:
        proc.terminate()
        proc.wait()
