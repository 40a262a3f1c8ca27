"""Fuzz a running stack's SIP listener with mutated valid messages, over UDP and TCP, and
report how many were sent and whether the node still answers (and its processes still run).

Seeds: RFC 4475's torture messages (testdata/rfc4475) and the captured traces of
tests/unit/sip/fixtures. Mutations: flipped bits, bytes inserted, deleted or duplicated,
truncation, a header line repeated or dropped, a number made huge or negative, CRLF turned
into LF or CR, two messages spliced. Deterministic for a given --seed.

    .venv/bin/python bench/fuzz.py --target 127.0.0.1:5060 --count 1000000
    .venv/bin/python bench/fuzz.py --data-dir var --count 100000   # pids from var/run.json

The note quotes a run; a short run is in CI (tests/faults/test_fuzz.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "unit" / "sip" / "fixtures"
# shared/testdata beside the repository (or beside one of its parents, for a worktree).
TESTDATA = next((p / "shared" / "testdata" / "rfc4475" for p in REPO.parents
                 if (p / "shared" / "testdata").is_dir()), REPO.parent / "shared" / "testdata" / "rfc4475")


def seeds() -> list[bytes]:
    out = [p.read_bytes() for p in sorted(TESTDATA.glob("*.dat"))] if TESTDATA.exists() else []
    out += [p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for p in sorted(FIXTURES.glob("*.sip"))]
    out.append(options(0))
    return out


def options(n: int) -> bytes:
    return (f"OPTIONS sip:fuzz@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfz{n};rport\r\n"
            f"From: <sip:fuzz@127.0.0.1>;tag=f{n}\r\nTo: <sip:fuzz@127.0.0.1>\r\nCall-ID: fuzz-{n}@probe\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


_NUMBER = re.compile(rb"\d+")


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        if not b:
            b = bytearray(rng.choice(corpus))
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            del b[i:i + rng.randint(1, 16)]
        elif op == 3:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 64)]
        elif op == 4:
            del b[i:]
        elif op == 5:
            lines = bytes(b).split(b"\r\n")
            k = rng.randrange(len(lines))
            if rng.random() < 0.5:
                lines.insert(k, lines[rng.randrange(len(lines))])
            else:
                del lines[k]
            b = bytearray(b"\r\n".join(lines))
        elif op == 6:
            nums = list(_NUMBER.finditer(b))
            if nums:
                m = rng.choice(nums)
                b[m.start():m.end()] = rng.choice([b"99999999999999999999999", b"-1", b"0", b"4294967296", b""])
        elif op == 7:
            b = bytearray(bytes(b).replace(b"\r\n", rng.choice([b"\n", b"\r", b"\r\r\n", b"\r\n "])))
        elif op == 8:
            other = rng.choice(corpus)
            b = b[:i] + bytearray(other[rng.randrange(len(other)):])
        else:
            b[i:i] = rng.choice([b"\x00", b"%00", b"\xff\xfe", b";;;;", b",,,", b"<<>>", b'"', b"\r\n\r\n"])
    return bytes(b[:65000])


@dataclass
class Report:
    sent_udp: int = 0
    sent_tcp: int = 0
    tcp_refused: int = 0
    seconds: float = 0.0
    answers_after: bool = False
    dead: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.sent_udp + self.sent_tcp

    def line(self) -> str:
        alive = "every process alive" if not self.dead else f"DEAD: {', '.join(self.dead)}"
        return (f"sent {self.sent} mutated messages ({self.sent_udp} UDP, {self.sent_tcp} over TCP) in "
                f"{self.seconds:.1f} s; OPTIONS answered afterwards: {'yes' if self.answers_after else 'NO'}; "
                f"{alive}")


async def answers_options(host: str, port: int, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.setblocking(False)
        deadline = loop.time() + timeout
        n = 10**9
        while loop.time() < deadline:
            n += 1
            await loop.sock_sendto(s, options(n), (host, port))
            try:
                reply = await asyncio.wait_for(loop.sock_recv(s, 65535), 1.0)
            except TimeoutError:
                continue
            if reply.startswith(b"SIP/2.0 200"):
                return True
    return False


async def fuzz(host: str, port: int, count: int, *, seed: int = 1, tcp_share: float = 0.01,
               rate: float = 0.0, pids: dict[str, int] | None = None) -> Report:
    """Send ``count`` mutated messages (a ``tcp_share`` of them over TCP, several per
    connection), at most ``rate`` per second (0: as fast as the socket takes them)."""
    rng = random.Random(seed)
    corpus = seeds()
    report = Report()
    loop = asyncio.get_running_loop()
    started = loop.time()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, 0))
    udp.setblocking(False)
    try:
        while report.sent < count:
            if rng.random() < tcp_share:
                batch = [mutate(rng, rng.choice(corpus), corpus) for _ in range(min(20, count - report.sent))]
                try:
                    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                    writer.write(b"".join(batch))  # one write: the node may close on the first bad frame
                    await writer.drain()
                    writer.close()
                    report.sent_tcp += len(batch)
                except (OSError, TimeoutError):
                    report.tcp_refused += 1
                    report.sent_tcp += len(batch)  # sent as far as we could
            else:
                try:
                    udp.sendto(mutate(rng, rng.choice(corpus), corpus), (host, port))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                except OSError:
                    pass
                report.sent_udp += 1
                try:  # answers are not read: drop them so the socket never fills
                    while udp.recv(65535):
                        pass
                except (BlockingIOError, OSError):
                    pass
            if rate:
                ahead = report.sent / rate - (loop.time() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            elif report.sent % 200 == 0:
                await asyncio.sleep(0)  # let the stack (in this loop, in tests) breathe
    finally:
        udp.close()
    report.seconds = loop.time() - started
    report.answers_after = await answers_options(host, port)
    for name, pid in (pids or {}).items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            report.dead.append(name)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="127.0.0.1:5060", help="host:port of the SIP listener")
    p.add_argument("--data-dir", help="a `switchboard up` data dir: its run.json gives the pids to watch")
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tcp-share", type=float, default=0.01, help="share of choices that open a TCP connection (20 messages each)")
    p.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)")
    a = p.parse_args()
    host, _, port = a.target.rpartition(":")
    pids = None
    if a.data_dir:
        run = json.loads((Path(a.data_dir) / "run.json").read_text())
        pids = {k: int(v) for k, v in run.get("pids", {}).items()}
    t0 = time.time()
    report = asyncio.run(fuzz(host, int(port), a.count, seed=a.seed, tcp_share=a.tcp_share, rate=a.rate, pids=pids))
    print(report.line(), f"(seed {a.seed}, {time.time() - t0:.0f} s in all)")
    sys.exit(0 if report.answers_after and not report.dead else 1)


if __name__ == "__main__":
    main()
