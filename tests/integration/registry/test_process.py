"""The real `python -m services.registry` process: refuses a malformed regions file, and
serves the bus when started normally."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from proto import subjects
from proto.messages import RegistryQuery, RegistryReply
from services.registry import topology


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(extra)
    return env


def test_malformed_regions_file_fails_start_up(tmp_path) -> None:
    bad = tmp_path / "regions.yaml"
    bad.write_text(topology.SHIPPED_FILE.read_text().replace("192.0.2.21", "192.0.2.999"))
    proc = subprocess.run(
        [sys.executable, "-m", "services.registry"], capture_output=True, text=True, timeout=60,
        env=_env(SWITCHBOARD_REGIONS_FILE=str(bad), SWITCHBOARD_NATS_URL="nats://127.0.0.1:1"),
    )
    assert proc.returncode == 2
    line = next(i for i, s in enumerate(bad.read_text().splitlines(), 1) if "192.0.2.999" in s)
    assert f"{bad}:{line}: signaling_regions[1].gateways[1]" in proc.stderr


async def test_registry_process_serves_and_stops_on_sigterm(rig, tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.registry"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=_env(SWITCHBOARD_NATS_URL=rig.server.url, SWITCHBOARD_HEARTBEAT_INTERVAL="0.2",
                 SWITCHBOARD_NODE_ID="reg-proc", SWITCHBOARD_REGION="us1"),
    )
    try:
        bus = await rig.connect("client")

        async def answers():
            try:
                r = await bus.request(subjects.registry_query("regions"), RegistryQuery(), RegistryReply,
                                      timeout=1.0)
            except Exception:
                return None
            return r

        reply = await rig.eventually(answers, "registry process answers regions", patience=30)
        assert {r["code"] for r in reply.data} >= {"us1", "us2", "iad1"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"Traceback" not in out, out.decode()[-2000:]
