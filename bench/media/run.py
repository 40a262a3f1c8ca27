"""Media relay benchmark: a real worker (`python -m services.media`, uvloop) and a load
generator in another process, loopback only.

N calls, 20 ms ptime, both directions: leg A plain RTP (the carrier), leg B SRTP (the
client). For each N it prints packets relayed per second, the relay's CPU seconds per
1,000 packets (utime+stime of its process from /proc), loss, and the latency through the
relay (generator send -> generator receive, p50/p99); then the same for a plain UDP
forwarder (the same socket layout and event loop, no SRTP, no checks: our floor), driven
by the same generator.

    .venv/bin/python bench/media/run.py [--calls 100,500,1000] [--seconds 5]

The generator sends from one socket per side (a plain leg latches any port of the
signalled host; a secure leg latches what authenticates) and pre-encrypts the client's
SRTP packets, so it spends its core on send/receive, not on crypto. Calls are spread
evenly over the 20 ms period, as real calls are.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PTIME = 0.020
PAYLOAD = 160
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def _sock(bufsize: int = 8 << 20) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


# --- load generator (child process) ---------------------------------------------------


def generator(conn) -> None:  # type: ignore[no-untyped-def]
    """Protocol over `conn`: -> (carrier_port, client_port); <- job dict; -> result dict."""
    from services.media.srtp import SrtpLeg

    carrier, client = _sock(), _sock()
    conn.send((carrier.getsockname()[1], client.getsockname()[1]))
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(_run_load(job, carrier, client, SrtpLeg))


def _run_load(job: dict, carrier: socket.socket, client: socket.socket, SrtpLeg) -> dict:  # type: ignore[no-untyped-def]
    calls = job["calls"]  # [(a_port, b_port, client_key or None, worker_b_key or None)]
    n = len(calls)
    warmup, seconds = job["warmup"], job["seconds"]
    total = int((warmup + seconds) / PTIME) + 2
    pid = job["pid"]
    # Pre-build every packet: carrier->A plain, client->B SRTP (or plain for the echo).
    hdr = struct.Struct("!BBHII")
    a_pkts: list[list[bytes]] = []
    b_pkts: list[list[bytes]] = []
    rx_srtp: list[object | None] = []
    for i, (_a, _b, ckey, wkey) in enumerate(calls):
        tx = SrtpLeg(ckey) if ckey else None
        rx_srtp.append(SrtpLeg(os.urandom(30), wkey) if wkey else None)
        a_list, b_list = [], []
        for k in range(total):
            body = struct.pack("!II", k, i) + b"\xff" * (PAYLOAD - 8)
            a_list.append(hdr.pack(0x80, 0, k & 0xFFFF, k * 160, 0x10000 + i) + body)
            p = hdr.pack(0x80, 0, k & 0xFFFF, k * 160, 0x20000 + i) + body
            b_list.append(tx.protect(p) if tx else p)
        a_pkts.append(a_list)
        b_pkts.append(b_list)
    a_dst = [("127.0.0.1", c[0]) for c in calls]
    b_dst = [("127.0.0.1", c[1]) for c in calls]
    sent_at = [[0.0] * total for _ in range(2 * n)]  # [call*2 + dir][k]; dir 0: A->B, 1: B->A
    by_port_client = {c[1]: i for i, c in enumerate(calls)}  # relay's B port -> call (client receives A->B)
    by_port_carrier = {c[0]: i for i, c in enumerate(calls)}
    offsets: list[int | None] = [None] * n
    client_plain = job["client_plain"]
    lat: list[float] = []
    recv_count = [0, 0]
    sent_count = [0, 0]

    ep = select.epoll()
    ep.register(carrier.fileno(), select.EPOLLIN)
    ep.register(client.fileno(), select.EPOLLIN)
    c_recv, k_recv = carrier.recvfrom, client.recvfrom
    c_send, k_send = carrier.sendto, client.sendto
    perf = time.perf_counter
    start = perf() + 0.05
    measure_from = start + warmup
    end = measure_from + seconds
    phase = [start + PTIME * i / n for i in range(n)]
    nxt = [0] * n
    order = list(range(n))
    cpu0 = cpu_end = None
    pos = 0  # round-robin over calls in phase order
    measuring = False
    while True:
        now = perf()
        if not measuring and now >= measure_from:
            measuring = True
            cpu0 = cpu_seconds(pid)
            recv_count = [0, 0]
            sent_count = [0, 0]
            lat = []
        if now >= end:
            break
        # Send every packet that is due.
        for _ in range(n):
            i = order[pos]
            k = nxt[i]
            due = phase[i] + k * PTIME
            if due > now or k >= total:
                break
            try:
                c_send(a_pkts[i][k], a_dst[i])
                sent_at[2 * i][k] = now
                k_send(b_pkts[i][k], b_dst[i])
                sent_at[2 * i + 1][k] = now
                if measuring:
                    sent_count[0] += 1
                    sent_count[1] += 1
            except BlockingIOError:
                pass
            nxt[i] = k + 1
            pos = (pos + 1) % n
        i = order[pos]
        wait = max(0.0, phase[i] + nxt[i] * PTIME - perf())
        for fd, _ev in ep.poll(min(wait, 0.002)):
            is_carrier = fd == carrier.fileno()
            recv = c_recv if is_carrier else k_recv
            while True:
                try:
                    data, addr = recv(2048)
                except BlockingIOError:
                    break
                t = perf()
                if is_carrier:  # B->A: the relay decrypted; the echo forwarded SRTP as is
                    ci = by_port_carrier.get(addr[1])
                    if ci is None:
                        continue
                    if client_plain:  # echo: header untouched
                        k = struct.unpack_from("!H", data, 2)[0]
                    else:
                        k = struct.unpack_from("!I", data, 12)[0]
                    d = 2 * ci + 1
                    direction = 1
                else:  # A->B: the relay encrypted and renumbered; the echo left it plain
                    ci = by_port_client.get(addr[1])
                    if ci is None:
                        continue
                    if client_plain:
                        k = struct.unpack_from("!I", data, 12)[0]
                    else:
                        seq = struct.unpack_from("!H", data, 2)[0]
                        off = offsets[ci]
                        if off is None:
                            try:
                                first = rx_srtp[ci].unprotect(data)  # type: ignore[union-attr]
                            except Exception:
                                continue
                            off = offsets[ci] = (seq - struct.unpack_from("!I", first, 12)[0]) & 0xFFFF
                        k = (seq - off) & 0xFFFF
                    d = 2 * ci
                    direction = 0
                if measuring and k < total and sent_at[d][k] >= measure_from:
                    recv_count[direction] += 1
                    lat.append(t - sent_at[d][k])
    cpu_end = cpu_seconds(pid)
    # Drain what is still in flight so it is not counted as lost.
    deadline = perf() + 0.2
    while perf() < deadline:
        for fd, _ev in ep.poll(0.01):
            sock = carrier if fd == carrier.fileno() else client
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    break
    lat.sort()
    sent = sum(sent_count)
    got = sum(recv_count)
    return {
        "sent": sent, "received": got, "seconds": seconds, "cpu": (cpu_end or 0) - (cpu0 or 0),
        "p50": lat[len(lat) // 2] if lat else float("nan"),
        "p99": lat[int(len(lat) * 0.99)] if lat else float("nan"),
    }


# --- plain UDP forwarder baseline (child process) -------------------------------------


def echo(conn) -> None:  # type: ignore[no-untyped-def]
    """Per call two sockets like the worker; A's packets go out of B to the client and
    back. uvloop, read until empty, sendto: the same loop with none of the work."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        carrier_port, client_port, n = conn.recv()
        socks = []
        ports = []
        for _ in range(n):
            a, b = _sock(1 << 18), _sock(1 << 18)
            socks.append((a, b))
            ports.append((a.getsockname()[1], b.getsockname()[1]))
        conn.send((os.getpid(), ports))

        def forward(src: socket.socket, out: socket.socket, dest: tuple[str, int]) -> None:
            recv, send = src.recvfrom, out.sendto
            for _ in range(64):
                try:
                    data, _addr = recv(2048)
                except BlockingIOError:
                    return
                try:
                    send(data, dest)
                except OSError:
                    pass

        for a, b in socks:
            loop.add_reader(a.fileno(), forward, a, b, ("127.0.0.1", client_port))
            loop.add_reader(b.fileno(), forward, b, a, ("127.0.0.1", carrier_port))
        await loop.run_in_executor(None, conn.recv)  # until told to stop

    uvloop.run(main())


# --- orchestration ---------------------------------------------------------------------


async def bench_worker(ns: list[int], seconds: float, gen, carrier_port: int, client_port: int) -> list[dict]:  # type: ignore[no-untyped-def]
    from proto import subjects
    from proto.messages import Ack, MediaAllocate, MediaAllocation, MediaRelease, MediaStats, MediaUpdate
    from services.common.bus import Bus
    from services.common.natsserver import NatsServer
    from services.media.srtp import crypto_line, generate_key, key_from_crypto

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        nats = NatsServer(store_dir=Path(tmp) / "nats")
        nats.start()
        env = dict(os.environ, SWITCHBOARD_NATS_URL=nats.url, SWITCHBOARD_REGION="bench",
                   SWITCHBOARD_NODE_ID="bench-worker", SWITCHBOARD_PORT_MIN="30000", SWITCHBOARD_PORT_MAX="34999",
                   SWITCHBOARD_DATA_DIR=tmp, SWITCHBOARD_LOG_LEVEL="WARNING", SWITCHBOARD_QUARANTINE="0",
                   SWITCHBOARD_NO_MEDIA_TIMEOUT="0", SWITCHBOARD_SOCKET_BUFFER=str(1 << 20))
        worker = subprocess.Popen([sys.executable, "-m", "services.media"], cwd=REPO, env=env)
        bus = await Bus.connect(nats.url, "bench")
        try:
            for _ in range(100):
                try:
                    await bus.request(subjects.media_allocate("bench"), MediaAllocate(call_id="probe", region="bench"),
                                      MediaAllocation, timeout=0.5)
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            await bus.request(subjects.media_worker("bench-worker", "release"), MediaRelease(call_id="probe"),
                              MediaStats)
            for n in ns:
                calls = []

                async def setup(i: int, n: int = n, calls: list = calls) -> None:
                    cid = f"bench-{n}-{i}"
                    alloc = await bus.request(subjects.media_allocate("bench"),
                                              MediaAllocate(call_id=cid, region="bench", b_secure=True),
                                              MediaAllocation, timeout=5)
                    ckey = generate_key()
                    upd = subjects.media_worker(alloc.worker_id, "update")
                    await bus.request(upd, MediaUpdate(call_id=cid, leg="a", remote_address="127.0.0.1",
                                                       remote_port=carrier_port), Ack, timeout=5)
                    await bus.request(upd, MediaUpdate(call_id=cid, leg="b", remote_address="127.0.0.1",
                                                       remote_port=client_port, remote_crypto=crypto_line(ckey)),
                                      Ack, timeout=5)
                    assert alloc.b.crypto is not None
                    calls.append((cid, alloc.a.port, alloc.b.port, ckey, key_from_crypto(alloc.b.crypto)))

                for chunk in range(0, n, 100):
                    await asyncio.gather(*(setup(i) for i in range(chunk, min(n, chunk + 100))))
                gen.send({"calls": [c[1:] for c in calls], "warmup": 1.0, "seconds": seconds, "pid": worker.pid,
                          "client_plain": False})
                r = await asyncio.get_running_loop().run_in_executor(None, gen.recv)
                r["n"] = n
                results.append(r)
                await asyncio.gather(*(bus.request(subjects.media_worker("bench-worker", "release"),
                                                   MediaRelease(call_id=c[0]), MediaStats, timeout=5) for c in calls))
        finally:
            await bus.close()
            worker.terminate()
            worker.wait(10)
            nats.stop()
    return results


def bench_echo(ns: list[int], seconds: float, gen, carrier_port: int, client_port: int) -> list[dict]:  # type: ignore[no-untyped-def]
    results = []
    for n in ns:
        parent, child = mp.Pipe()
        p = mp.get_context("spawn").Process(target=echo, args=(child,))
        p.start()
        parent.send((carrier_port, client_port, n))
        pid, ports = parent.recv()
        gen.send({"calls": [(a, b, None, None) for a, b in ports], "warmup": 1.0, "seconds": seconds,
                  "pid": pid, "client_plain": True})
        r = gen.recv()
        r["n"] = n
        results.append(r)
        parent.send("stop")
        p.join(5)
        if p.is_alive():
            p.terminate()
    return results


def line(name: str, r: dict) -> str:
    relayed = r["received"] / r["seconds"]
    cpu_per_k = r["cpu"] / r["received"] * 1000 * 1000 if r["received"] else float("nan")
    loss = 1 - r["received"] / r["sent"] if r["sent"] else float("nan")
    return (f"  {name:<7} relayed {relayed:>9,.0f} pkt/s   cpu {cpu_per_k:6.2f} ms/1k pkt "
            f"({r['cpu'] / r['seconds'] * 100:5.1f}% of a core)   loss {loss * 100:6.3f}%   "
            f"latency p50 {r['p50'] * 1000:6.3f} ms  p99 {r['p99'] * 1000:6.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="100,500,1000")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    ns = [int(x) for x in args.calls.split(",")]
    ctx = mp.get_context("spawn")
    gen, child = ctx.Pipe()
    gp = ctx.Process(target=generator, args=(child,))
    gp.start()
    carrier_port, client_port = gen.recv()
    print(f"media relay benchmark: {os.cpu_count()} CPUs, {args.seconds:.0f} s per run after 1 s warm-up, "
          f"20 ms ptime both ways, leg A RTP <-> leg B SRTP (AES_CM_128_HMAC_SHA1_80)", flush=True)
    try:
        import uvloop

        worker_results = uvloop.run(bench_worker(ns, args.seconds, gen, carrier_port, client_port))
    except ImportError:
        worker_results = asyncio.run(bench_worker(ns, args.seconds, gen, carrier_port, client_port))
    echo_results = bench_echo(ns, args.seconds, gen, carrier_port, client_port)
    gen.send(None)
    gp.join(5)
    for w, e in zip(worker_results, echo_results, strict=True):
        print(f"N={w['n']} calls ({w['n'] * 100:,} pkt/s offered)")
        print(line("worker", w))
        print(line("udp-fwd", e))
        if e["cpu"] and e["received"] and w["received"]:
            ratio = (w["cpu"] / w["received"]) / (e["cpu"] / e["received"])
            print(f"  worker/udp-fwd CPU per packet: {ratio:.2f}x")


if __name__ == "__main__":
    main()
