"""Three `nats-server`s from the wheel on loopback, routed into one cluster with JetStream
(RAFT needs three for a replicated stream to survive one loss). `url` lists all three, as
SWITCHBOARD_NATS_URL does in production."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import nats

from services.common.natsserver import free_port, nats_server_binary


class NatsCluster:
    def __init__(self, store: Path, size: int = 3) -> None:
        self.store = store
        self.ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        self.monitor_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def server_url(self, i: int) -> str:
        return f"nats://127.0.0.1:{self.ports[i]}"

    def start(self, i: int | None = None) -> None:
        for n in range(len(self.ports)) if i is None else [i]:
            routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(self.cluster_ports) if j != n)
            d = self.store / f"n{n}"
            d.mkdir(parents=True, exist_ok=True)
            self.procs[n] = subprocess.Popen(
                [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.ports[n]), "-js", "-sd", str(d),
                 "-m", str(self.monitor_ports[n]), "-n", f"sb-{n}", "--cluster_name", "switchboard", "--cluster",
                 f"nats://127.0.0.1:{self.cluster_ports[n]}", "--routes", routes],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def clients(self, i: int) -> list[str]:
        """The names of the clients connected to server ``i`` (its /connz)."""
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_ports[i]}/connz", timeout=2) as r:
            return [str(c.get("name", "")) for c in json.load(r).get("connections", [])]

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
            self.procs[i] = None

    def stop(self) -> None:
        for i in range(len(self.procs)):
            proc = self.procs[i]
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.procs[i] = None

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream has a meta leader (a stream can be created)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(self.url.split(","), connect_timeout=1, max_reconnect_attempts=1)
                try:
                    # A replicated stream can be placed: the meta leader is elected and
                    # the three servers take part (account_info answers before that).
                    from nats.js.api import StreamConfig

                    js = nc.jetstream()
                    await js.add_stream(StreamConfig(name="PROBE", subjects=["probe.cluster"], num_replicas=3))
                    await js.publish("probe.cluster", b"x", timeout=5)
                    await js.delete_stream("PROBE")
                    return
                finally:
                    await nc.close()
            except Exception as e:
                last = e
            await asyncio.sleep(0.2)
        raise AssertionError(f"the NATS cluster did not form: {last}")
