"""Media relay benchmark: a real worker (`python -m services.media`, uvloop), a plain UDP
forwarder (our floor) and rtpengine, each driven by the same load generator, loopback only.

N calls, 20 ms ptime, both directions: leg A plain RTP (the carrier), leg B SRTP
AES_CM_128_HMAC_SHA1_80 (the client). For each N and each relay it prints packets relayed
per second, the relay's CPU seconds per 1,000 packets (utime+stime of its process, all
threads, from /proc), loss and the added latency (generator send -> kernel receive
timestamp at the generator, p50/p99), and the worker's CPU per packet as a ratio to
rtpengine's (the headline figure).

    .venv/bin/python bench/media/run.py [--calls 100,500,1000] [--seconds 5]
                                        [--targets worker,udp-fwd,rtpengine] [--pin]

The generator (`loadgen.c`) is compiled at run time with the system gcc into a temporary
directory and linked with libsrtp2; it uses one epoll/timerfd loop and sendmmsg/recvmmsg,
pre-protects its SRTP packets before the run and costs a fraction of a core. With --pin the relay under test
is pinned to CPU 0 and the generator to CPU 1 (only sensible on an otherwise idle machine). Needs `gcc`, `libsrtp2-dev` and, for the rtpengine baseline,
`rtpengine-daemon` (Debian); missing Debian packages are installed with apt-get when
running as root (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))

RELAY_CPU = 0
GEN_CPU = 1
WARMUP_MS = 1000
DRAIN_MS = 500
APT_PACKAGES = {"gcc": "gcc", "libsrtp2-dev": "libsrtp2-dev", "rtpengine": "rtpengine-daemon"}


def _sock(bufsize: int = 8 << 20) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def pin(pid: int, cpu: int, enabled: bool) -> None:
    if not enabled or (os.cpu_count() or 1) < 2:
        return
    # every thread of the process (rtpengine has several)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass


# --- tools -----------------------------------------------------------------------------


def _dpkg_installed(pkg: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return "install ok installed" in r.stdout


def ensure_debian(packages: list[str]) -> None:
    """apt-get install what is missing (root only); the bench is not run in CI."""
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"missing Debian packages {missing}: apt-get install -y {' '.join(missing)}")
    print(f"installing {' '.join(missing)} with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def build_generator(tmp: Path) -> Path:
    exe = tmp / "loadgen"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(HERE / "loadgen.c"), "-lsrtp2"], check=True)
    return exe


class Generator:
    """One run of the C generator: bind, tell the ports, take a job, report."""

    def __init__(self, exe: Path, pin_cpu: bool) -> None:
        self.p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        pin(self.p.pid, GEN_CPU, pin_cpu)
        assert self.p.stdout is not None
        _, a, b = self.p.stdout.readline().split()
        self.carrier_port, self.client_port = int(a), int(b)

    def run(self, calls: list[tuple[int, int, bytes, bytes | None]], seconds: float, pid: int, *, b2a: str,
            a2b: str) -> dict:
        lines = [f"{len(calls)} {WARMUP_MS} {int(seconds * 1000)} {DRAIN_MS} {pid} {b2a} {a2b}"]
        for a_port, b_port, ckey, rkey in calls:
            lines.append(f"{a_port} {b_port} {ckey.hex()} {rkey.hex() if rkey else '-'}")
        out, _ = self.p.communicate("\n".join(lines) + "\n", timeout=seconds + 120)
        r: dict = {}
        for kv in out.split():
            k, v = kv.split("=")
            r[k] = float(v) if "." in v else int(v)
        if os.environ.get("BENCH_RAW"):
            print("   raw:", out.strip(), file=sys.stderr)
        return r


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


def bench_echo(ns: list[int], seconds: float, exe: Path, pin_cpu: bool) -> dict[int, dict]:
    results = {}
    ctx = mp.get_context("spawn")
    for n in ns:
        gen = Generator(exe, pin_cpu)
        parent, child = ctx.Pipe()
        p = ctx.Process(target=echo, args=(child,))
        p.start()
        parent.send((gen.carrier_port, gen.client_port, n))
        pid, ports = parent.recv()
        pin(pid, RELAY_CPU, pin_cpu)
        results[n] = gen.run([(a, b, secrets.token_bytes(30), None) for a, b in ports], seconds, pid,
                             b2a="seq", a2b="plain")
        parent.send("stop")
        p.join(5)
        if p.is_alive():
            p.terminate()
    return results


# --- our worker -------------------------------------------------------------------------


async def bench_worker(ns: list[int], seconds: float, exe: Path, pin_cpu: bool, tree: Path = REPO) -> dict[int, dict]:
    """`tree`: the source tree the worker runs from (another checkout for a before/after)."""
    from proto import subjects
    from proto.messages import Ack, MediaAllocate, MediaAllocation, MediaRelease, MediaStats, MediaUpdate
    from services.common.bus import Bus
    from services.common.natsserver import NatsServer
    from services.media.srtp import crypto_line, generate_key, key_from_crypto

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        nats = NatsServer(store_dir=Path(tmp) / "nats")
        nats.start()
        env = dict(os.environ, SWITCHBOARD_NATS_URL=nats.url, SWITCHBOARD_REGION="bench",
                   SWITCHBOARD_NODE_ID="bench-worker", SWITCHBOARD_PORT_MIN="30000", SWITCHBOARD_PORT_MAX="34999",
                   SWITCHBOARD_DATA_DIR=tmp, SWITCHBOARD_LOG_LEVEL="WARNING", SWITCHBOARD_QUARANTINE="0",
                   SWITCHBOARD_NO_MEDIA_TIMEOUT="0", SWITCHBOARD_SOCKET_BUFFER=str(1 << 20))
        env["PYTHONPATH"] = str(tree)
        worker = subprocess.Popen([sys.executable, "-m", "services.media"], cwd=tree, env=env)
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
            pin(worker.pid, RELAY_CPU, pin_cpu)
            for n in ns:
                gen = Generator(exe, pin_cpu)
                calls: list = []

                async def setup(i: int, n: int = n, calls: list = calls, gen: Generator = gen) -> None:
                    cid = f"bench-{n}-{i}"
                    alloc = await bus.request(subjects.media_allocate("bench"),
                                              MediaAllocate(call_id=cid, region="bench", b_secure=True),
                                              MediaAllocation, timeout=5)
                    ckey = generate_key()
                    upd = subjects.media_worker(alloc.worker_id, "update")
                    await bus.request(upd, MediaUpdate(call_id=cid, leg="a", remote_address="127.0.0.1",
                                                       remote_port=gen.carrier_port), Ack, timeout=5)
                    await bus.request(upd, MediaUpdate(call_id=cid, leg="b", remote_address="127.0.0.1",
                                                       remote_port=gen.client_port, remote_crypto=crypto_line(ckey)),
                                      Ack, timeout=5)
                    assert alloc.b.crypto is not None
                    calls.append((cid, alloc.a.port, alloc.b.port, ckey, key_from_crypto(alloc.b.crypto)))

                for chunk in range(0, n, 100):
                    await asyncio.gather(*(setup(i) for i in range(chunk, min(n, chunk + 100))))
                results[n] = await asyncio.get_running_loop().run_in_executor(
                    None, lambda gen=gen, calls=calls: gen.run([c[1:] for c in calls], seconds, worker.pid,
                                                               b2a="payload", a2b="srtp"))
                for chunk in range(0, n, 100):
                    await asyncio.gather(*(bus.request(subjects.media_worker("bench-worker", "release"),
                                                       MediaRelease(call_id=c[0]), MediaStats, timeout=30)
                                           for c in calls[chunk : chunk + 100]))
        finally:
            await bus.close()
            worker.terminate()
            worker.wait(10)
            nats.stop()
    return results


# --- rtpengine over its ng control protocol ---------------------------------------------


def bencode(x: object) -> bytes:
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(x.items())) + b"e"
    raise TypeError(type(x))


def bdecode(b: bytes, i: int = 0) -> tuple[object, int]:
    c = b[i : i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1 : j]), j + 1
    if c == b"l":
        out, i = [], i + 1
        while b[i : i + 1] != b"e":
            v, i = bdecode(b, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        d, i = {}, i + 1
        while b[i : i + 1] != b"e":
            k, i = bdecode(b, i)
            v, i = bdecode(b, i)
            d[str(k)] = v
        return d, i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1 : j + 1 + n].decode(), j + 1 + n


OTHER_SUITES = ["AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32", "AES_192_CM_HMAC_SHA1_80",
                "AES_192_CM_HMAC_SHA1_32", "AES_CM_128_HMAC_SHA1_32", "F8_128_HMAC_SHA1_80", "F8_128_HMAC_SHA1_32",
                "NULL_HMAC_SHA1_80", "NULL_HMAC_SHA1_32", "AEAD_AES_256_GCM", "AEAD_AES_128_GCM"]


class Ng:
    def __init__(self, port: int) -> None:
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.settimeout(5)
        self.s.connect(("127.0.0.1", port))

    def __call__(self, cmd: dict) -> dict:
        cookie = secrets.token_hex(6)
        self.s.send(cookie.encode() + b" " + bencode(cmd))
        while True:
            data = self.s.recv(65535)
            c, _, body = data.partition(b" ")
            if c.decode() == cookie:
                r, _ = bdecode(body)
                assert isinstance(r, dict)
                if r.get("result") not in ("ok", "pong"):
                    raise RuntimeError(f"rtpengine {cmd['command']}: {r}")
                return r


def _sdp(port: int, proto: str, crypto: str | None = None) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             f"m=audio {port} {proto} 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
             "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv"]
    if crypto:
        lines.append(crypto)
    return "\r\n".join(lines) + "\r\n"


def rtpengine_call(ng: Ng, cid: str, carrier_port: int, client_port: int) -> tuple[int, int, bytes, bytes]:
    """Offer from the carrier (RTP/AVP) bridged to RTP/SAVP towards the client, answer with
    the client's key. Returns (rtpengine A port, rtpengine B port, client key, rtpengine's B key)."""
    offer = ng({"command": "offer", "call-id": cid, "from-tag": "carrier", "sdp": _sdp(carrier_port, "RTP/AVP"),
                "transport-protocol": "RTP/SAVP", "ICE": "remove", "replace": ["origin", "session-connection"],
                "SDES": [f"no-{s}" for s in OTHER_SUITES]})
    sdp = str(offer["sdp"])
    cryptos = re.findall(r"a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)", sdp)
    if [c[1] for c in cryptos] != ["AES_CM_128_HMAC_SHA1_80"]:
        raise RuntimeError(f"rtpengine offered {[c[1] for c in cryptos]}")
    tag, suite, key_b64 = cryptos[0]
    b_port = int(re.search(r"m=audio (\d+) RTP/SAVP", sdp).group(1))  # type: ignore[union-attr]
    ckey = secrets.token_bytes(30)
    answer = ng({"command": "answer", "call-id": cid, "from-tag": "carrier", "to-tag": "client",
                 "sdp": _sdp(client_port, "RTP/SAVP", f"a=crypto:{tag} {suite} inline:{base64.b64encode(ckey).decode()}"),
                 "ICE": "remove", "replace": ["origin", "session-connection"]})
    a_port = int(re.search(r"m=audio (\d+) RTP/AVP", str(answer["sdp"])).group(1))  # type: ignore[union-attr]
    return a_port, b_port, ckey, base64.b64decode(key_b64)[:30]


def bench_rtpengine(ns: list[int], seconds: float, exe: Path, pin_cpu: bool) -> tuple[dict[int, dict], str]:
    rtpengine = shutil.which("rtpengine") or "/usr/bin/rtpengine"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    ng_port = probe.getsockname()[1]
    probe.close()
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "rtpengine.log", "w+")
        # Userspace forwarding only (no kernel table), one worker thread, no config file.
        proc = subprocess.Popen([rtpengine, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
                                 "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{ng_port}", "--port-min=40000",
                                 "--port-max=49999", "--num-threads=1", "--log-level=4", "--timeout=60",
                                 "--delete-delay=0", f"--pidfile={tmp}/rtpengine.pid"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            ng = Ng(ng_port)
            for _ in range(50):
                try:
                    ng({"command": "ping"})
                    break
                except (OSError, TimeoutError):
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            if proc.poll() is not None:
                log.seek(0)
                return {}, f"rtpengine exited ({proc.returncode}): {log.read()[-500:]}"
            pin(proc.pid, RELAY_CPU, pin_cpu)
            version = subprocess.run([rtpengine, "--version"], capture_output=True, text=True).stdout.strip()
            for n in ns:
                gen = Generator(exe, pin_cpu)
                calls = [rtpengine_call(ng, f"bench-{n}-{i}", gen.carrier_port, gen.client_port) for i in range(n)]
                pin(proc.pid, RELAY_CPU, pin_cpu)  # threads it may have started since
                results[n] = gen.run(calls, seconds, proc.pid, b2a="payload", a2b="srtp")
                for i in range(n):
                    ng({"command": "delete", "call-id": f"bench-{n}-{i}", "from-tag": "carrier"})
            return results, version
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- report ---------------------------------------------------------------------------


def figures(r: dict, seconds: float) -> dict:
    sent = r["sent_ab"] + r["sent_ba"]
    got = r["recv_ab"] + r["recv_ba"]
    wall = r.get("wall") or seconds
    return {"relayed": got / wall, "cpu_per_k": r["cpu"] / got * 1e6 if got else float("nan"),
            "core": r["cpu"] / wall * 100, "loss": (1 - got / sent) * 100 if sent else float("nan"),
            "p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000, "gen": r["gen_cpu"] / wall * 100}


def line(name: str, r: dict | None, seconds: float) -> str:
    if r is None:
        return f"  {name:<9} not measured"
    f = figures(r, seconds)
    extra = ""
    if r.get("mixed") or r.get("auth_fail"):
        extra = f"   MIXED {r['mixed']} AUTH-FAIL {r['auth_fail']}"
    return (f"  {name:<9} relayed {f['relayed']:>9,.0f} pkt/s   cpu {f['cpu_per_k']:6.2f} ms/1k pkt "
            f"({f['core']:5.1f}% of a core)   loss {f['loss']:6.3f}%   "
            f"latency p50 {f['p50']:6.3f} ms  p99 {f['p99']:7.3f} ms   [generator {f['gen']:4.1f}% of a core]{extra}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="100,500,1000")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--targets", default="worker,udp-fwd,rtpengine")
    ap.add_argument("--before", type=Path, metavar="TREE",
                    help="also measure the worker from another source tree, e.g. "
                         "`git archive <rev> services proto | tar -x -C TREE` (row 'before')")
    ap.add_argument("--pin", action="store_true",
                    help="pin the relay to CPU 0 and the generator to CPU 1 (only on an otherwise idle machine: "
                         "pinned next to another busy process, the relay is starved)")
    args = ap.parse_args()
    ns = [int(x) for x in args.calls.split(",")]
    targets = args.targets.split(",")
    pin_cpu = args.pin
    need = ["gcc", "libsrtp2-dev"] + (["rtpengine-daemon"] if "rtpengine" in targets else [])
    ensure_debian(need)
    res: dict[str, dict[int, dict]] = {}
    rtp_note = ""
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_generator(Path(tmp))
        print(f"media relay benchmark: {os.cpu_count()} CPUs, {args.seconds:g} s per point after "
              f"{WARMUP_MS / 1000:g} s warm-up, 20 ms ptime both ways, leg A RTP <-> leg B SRTP "
              f"(AES_CM_128_HMAC_SHA1_80)" + (f"; relay on CPU {RELAY_CPU}, generator (C, sendmmsg/recvmmsg) on "
              f"CPU {GEN_CPU}" if pin_cpu else "; relay and generator (C, sendmmsg/recvmmsg) not pinned"), flush=True)
        try:
            from uvloop import run as arun
        except ImportError:
            arun = asyncio.run
        if args.before:
            targets.insert(0, "before")
            res["before"] = arun(bench_worker(ns, args.seconds, exe, pin_cpu, args.before.resolve()))
        if "worker" in targets:
            res["worker"] = arun(bench_worker(ns, args.seconds, exe, pin_cpu))
        if "udp-fwd" in targets:
            res["udp-fwd"] = bench_echo(ns, args.seconds, exe, pin_cpu)
        if "rtpengine" in targets:
            try:
                res["rtpengine"], rtp_note = bench_rtpengine(ns, args.seconds, exe, pin_cpu)
            except Exception as e:  # report the others all the same
                res["rtpengine"], rtp_note = {}, f"failed: {e!r}"

    if rtp_note:
        print(f"rtpengine: {rtp_note} (userspace forwarding, --table=-1, --num-threads=1)")
    for n in ns:
        print(f"N={n} calls ({n * 100:,} pkt/s offered)")
        for name in ("before", "worker", "udp-fwd", "rtpengine"):
            if name in targets:
                print(line(name, res.get(name, {}).get(n), args.seconds))
        w, e, r, b = (res.get(k, {}).get(n) for k in ("worker", "udp-fwd", "rtpengine", "before"))
        ratios = []
        if w and b and b["cpu"] > 0:
            ratios.append(f"worker/before {figures(w, args.seconds)['cpu_per_k'] / figures(b, args.seconds)['cpu_per_k']:.2f}x")
        for other, name in ((r, "rtpengine"), (e, "udp-fwd")):
            if w and other and other["cpu"] > 0:
                fw, fo = figures(w, args.seconds), figures(other, args.seconds)
                ratios.append(f"worker/{name} {fw['cpu_per_k'] / fo['cpu_per_k']:.2f}x")
        if ratios:
            print(f"  CPU per packet: {'   '.join(ratios)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
