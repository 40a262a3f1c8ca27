"""Benchmark of the routing resolver over NATS: resolves per second and p50/p99 latency.

Starts a nats-server and ONE config process (`python -m services.config`, SQLite in a temp
dir), provisions tracking numbers through the HTTP API, then sends `routing.resolve`
requests from this process: first one at a time (latency), then with several in flight
(throughput). Targets (issue 5): >= 5,000 resolves/s and p99 <= 2 ms with one instance.

    .venv/bin/python bench/resolve.py [--requests 20000] [--concurrency 16] [--numbers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proto import subjects  # noqa: E402
from proto.messages import RoutingDecision, RoutingRequest  # noqa: E402
from services.common.bus import Bus  # noqa: E402
from services.common.natsserver import NatsServer, free_port  # noqa: E402

ADMIN = "bench-admin"


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def provision(api: str, count: int) -> list[str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=api, timeout=10) as c:
        acc = (await c.post("/v1/accounts", json={"name": "bench"}, headers=admin)).json()["id"]
        key = (await c.post(f"/v1/accounts/{acc}/api-keys", headers=admin)).json()["key"]
        h = {"Authorization": f"Bearer {key}"}
        rn = (await c.post("/v1/receiving-numbers", headers=h, json={
            "name": "bench", "dial_sip_client": True, "ring_timeout": 20, "send_digits": "ww1#", "region": "us1",
            "sip_targets": [
                {"uri": "sips:100@pbx1.example.com", "username": "100", "password": "pw1", "priority": 10},
                {"uri": "sip:100@pbx2.example.com;transport=tcp", "username": "100", "password": "pw2",
                 "priority": 10, "weight": 5},
                {"uri": "sip:100@backup.example.com", "priority": 20}]})).json()
        numbers = [f"+1555{2000000 + i:07d}" for i in range(count)]
        sem = asyncio.Semaphore(16)

        async def add(n: str) -> None:
            async with sem:
                r = await c.post("/v1/tracking-numbers", json={"number": n, "receiving_number_id": rn["id"]},
                                 headers=h)
                r.raise_for_status()

        await asyncio.gather(*(add(n) for n in numbers))
    return numbers


async def measure(bus: Bus, numbers: list[str], total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    subject = subjects.routing_resolve()
    per_worker = total // concurrency

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(per_worker):
            req = RoutingRequest(call_id=f"b{seed}-{i}", tracking_number=rng.choice(numbers))
            t0 = time.perf_counter()
            d = await bus.request(subject, req, RoutingDecision, timeout=2)
            latencies.append(time.perf_counter() - t0)
            if not d.ok:
                raise SystemExit(f"unexpected decision: {d.status} {d.reason}")

    start = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in range(concurrency)))
    return time.perf_counter() - start, latencies


def report(label: str, elapsed: float, lat: list[float]) -> None:
    lat.sort()
    print(f"{label:<28} {len(lat) / elapsed:>9,.0f} resolves/s   p50 {pct(lat, 50) * 1e3:6.3f} ms   "
          f"p99 {pct(lat, 99) * 1e3:6.3f} ms   max {lat[-1] * 1e3:7.3f} ms   (n={len(lat)})")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--numbers", type=int, default=1000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        nats = NatsServer(store_dir=Path(tmp) / "nats")
        nats.start()
        port = free_port()
        env = dict(os.environ, SWITCHBOARD_NATS_URL=nats.url, SWITCHBOARD_HTTP_PORT=str(port),
                   SWITCHBOARD_HTTP_HOST="127.0.0.1", SWITCHBOARD_ADMIN_TOKEN=ADMIN, SWITCHBOARD_DATA_DIR=tmp,
                   SWITCHBOARD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/bench.db", SWITCHBOARD_LOG_LEVEL="WARNING",
                   SWITCHBOARD_REGION="us1")
        proc = subprocess.Popen([sys.executable, "-m", "services.config"], env=env,
                                cwd=Path(__file__).resolve().parents[1])
        bus = None
        try:
            api = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{api}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    print("config service did not become ready", file=sys.stderr)
                    return 1
                await asyncio.sleep(0.1)
            numbers = await provision(api, args.numbers)
            bus = await Bus.connect(nats.url, "bench")
            await asyncio.sleep(0.3)  # let the resolver apply the last change events
            await measure(bus, numbers, 2000, 8)  # warm-up
            print(f"resolver benchmark: 1 config instance, {len(numbers)} tracking numbers, 3 targets each, "
                  f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
            report("sequential (1 in flight)", *await measure(bus, numbers, min(5000, args.requests), 1))
            for c in sorted({4, 8, args.concurrency}):
                report(f"concurrent ({c} in flight)", *await measure(bus, numbers, args.requests, c))
            print("targets: >= 5,000 resolves/s and p99 <= 2 ms (one instance)")
        finally:
            if bus is not None:
                await bus.close()
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            nats.stop()
    return 0


if __name__ == "__main__":
    try:
        import uvloop

        sys.exit(uvloop.run(main()))
    except ImportError:
        sys.exit(asyncio.run(main()))
