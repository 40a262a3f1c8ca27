"""The compose file's NATS, for real: three nats-servers started with the compose file's own
flags (hosts and ports mapped to loopback), the services' comma-separated NATS URL, the
CALLS stream with 3 replicas, and a call's events still read back with one server down.
(No Docker here; this runs the same nats-server flags outside containers.)"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import yaml

from proto import events as pe
from proto import subjects
from services.common.bus import Bus
from services.common.callstream import read_call_events
from services.common.natsserver import free_port, nats_server_binary

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(90)


def compose_nats() -> dict[str, list[str]]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return {name: svc["command"] for name, svc in doc["services"].items() if name.startswith("nats-")}


async def test_the_compose_nats_cluster_keeps_calls_with_a_server_down(tmp_path: Path) -> None:
    commands = compose_nats()
    client = {name: free_port() for name in commands}
    cluster = {name: free_port() for name in commands}
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def mapped(name: str, cmd: list[str]) -> list[str]:
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(client[name])]
        for i, arg in enumerate(cmd):
            prev = cmd[i - 1] if i else ""
            if prev == "-sd":
                arg = str(tmp_path / name)
            elif prev == "--cluster":
                arg = f"nats://127.0.0.1:{cluster[name]}"
            elif prev == "--routes":
                arg = ",".join(f"nats://127.0.0.1:{cluster[r.split('//')[1].split(':')[0]]}" for r in arg.split(","))
            elif prev == "-m":
                arg = str(free_port())
            args.append(arg)
        return args

    for name, cmd in commands.items():
        procs[name] = subprocess.Popen(mapped(name, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = ",".join(f"nats://127.0.0.1:{p}" for p in client.values())
    bus: Bus | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:  # until the cluster has formed and elected a JetStream leader
            try:
                bus = bus or await Bus.connect(url, "cluster-test")
                await bus.ensure_calls_stream(max_age=3600, max_bytes=1 << 26, replicas=3)
                break
            except Exception:
                assert loop.time() < deadline, "the three servers formed no JetStream cluster"
                await asyncio.sleep(0.5)
        info = await bus.nc.jetstream().stream_info(subjects.CALLS_STREAM)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # a leader and two replicas
        js = bus.nc.jetstream()
        ev = pe.envelope("cl-1", pe.Failed(sip_status=404, reason="no route", result="failed"),
                         service="signaling", node="n1", seq=1)
        await js.publish(subjects.call_event("cl-1", ev.kind), ev.model_dump_json().encode())

        # One server down (the stream's leader, the hardest case): the other two keep the call.
        leader = info.cluster.leader
        assert leader in procs
        procs[leader].terminate()
        procs[leader].wait(10)
        deadline = loop.time() + 30
        while True:
            try:
                got = await read_call_events(bus, "cl-1")
                if got:
                    break
            except Exception:
                pass
            assert loop.time() < deadline, "the call's events were not readable with one server down"
            await asyncio.sleep(0.5)
        assert [e.kind for e in got] == ["failed"]
    finally:
        if bus is not None:
            await bus.close()
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)
