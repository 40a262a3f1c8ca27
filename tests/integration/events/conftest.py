"""Fixtures for call records and webhooks: a real NATS with the CALLS stream, a real
database (SQLite and PostgreSQL, as the config tests), the config API over ASGI, a
call-record consumer and a webhook dispatcher, and realistic call event sequences."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proto import events as pe
from proto import subjects
from proto.messages import CallEvent, LegStats, MediaStats
from services.common.bus import Bus
from services.config.db.models import CallRecord
from services.config.records import CallRecorder
from services.config.webhooks import WebhookDispatcher
from tests.helpers.config_env import Env, make_env

TRACKING = "+15551230001"
INVITE = ("INVITE sip:+15551230001@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK1\r\n"
          "Call-ID: c1@10.0.0.9\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


@dataclass
class CallEnv:
    env: Env
    bus: Bus
    tmp: Path
    recorders: list[CallRecorder] = field(default_factory=list)
    dispatchers: list[WebhookDispatcher] = field(default_factory=list)

    @property
    def client(self) -> Any:
        return self.env.client

    async def recorder(self, *, ack_wait: float = 1.0, start: bool = True) -> CallRecorder:
        d = self.dispatchers[-1] if self.dispatchers else None
        r = CallRecorder(self.bus, self.env.ctx.sessionmaker, ack_wait=ack_wait,
                         on_commit=d.wake if d else None)
        self.recorders.append(r)
        if start:
            await r.start()
        return r

    async def dispatcher(self, **kw: Any) -> WebhookDispatcher:
        opts: dict[str, Any] = {"timeout": 2.0, "backoff_base": 0.05, "backoff_cap": 0.2, "poll_interval": 0.05,
                                "allow_private": True}
        opts.update(kw)
        d = WebhookDispatcher(self.env.ctx.sessionmaker, self.env.ctx.secrets, **opts)
        self.dispatchers.append(d)
        self.env.ctx.on_webhooks_queued = d.wake
        for r in self.recorders:
            r.on_commit = d.wake
        await d.start()
        return d

    async def publish(self, events: list[CallEvent]) -> None:
        js = self.bus.nc.jetstream()
        for ev in events:
            await js.publish(subjects.call_event(ev.call_id, ev.kind), ev.model_dump_json().encode())

    async def record(self, call_id: str) -> CallRecord | None:
        async with self.env.ctx.sessionmaker() as s:
            return await s.get(CallRecord, call_id)

    async def count_records(self, call_id: str) -> int:
        async with self.env.ctx.sessionmaker() as s:
            return int((await s.execute(select(func.count()).select_from(CallRecord)
                                         .where(CallRecord.id == call_id))).scalar_one())

    async def wait_record(self, call_id: str, pred: Callable[[CallRecord], bool], timeout: float = 10.0) -> CallRecord:
        deadline = time.monotonic() + timeout
        while True:
            rec = await self.record(call_id)
            if rec is not None and pred(rec):
                return rec
            if time.monotonic() > deadline:
                raise AssertionError(f"record of {call_id} not as expected in time: {rec and vars(rec)}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def calls(tmp_path: Path, db_url: str, bus: Bus) -> AsyncIterator[CallEnv]:  # noqa: F811
    await bus.ensure_calls_stream(max_age=3600, max_bytes=64 << 20, replicas=1)
    env, close = await make_env(tmp_path, db_url, bus)
    ce = CallEnv(env=env, bus=bus, tmp=tmp_path)
    yield ce
    for r in ce.recorders:
        await r.stop()
    for d in ce.dispatchers:
        await d.stop()
    await close()


def full_call(call_id: str, account_id: str | None, *, number: str = TRACKING, t0: float | None = None,
              digits: str = "12", talk: float = 42.5) -> list[CallEvent]:
    """A call through challenge, ringing, answer, DTMF and BYE, as the B2BUA and the media
    worker publish it (each node numbers its own events from 1), built with the event models
    the publishers use."""
    t = t0 if t0 is not None else time.time() - 120
    sig: list[CallEvent] = []
    media: list[CallEvent] = []

    def s(dt: float, body: pe.EventBody) -> None:
        # SIP traces are not numbered (seq 0), every other event is, from 1.
        seq = 1 + sum(1 for e in sig if e.seq) if body.NUMBERED else 0
        sig.append(pe.envelope(call_id, body, ts=t + dt, region="us1", node="sig-1", service="signaling", seq=seq))

    def m(dt: float, body: pe.EventBody) -> None:
        media.append(pe.envelope(call_id, body, ts=t + dt, region="us1", node="media-1", service="media",
                                 seq=len(media) + 1))

    target = "sip:100@pbx.example.com;transport=tcp"
    s(0.000, pe.SipIn(transport="udp", first_line=INVITE.split("\r\n")[0], src="10.0.0.9:5060", dst="10.0.0.1:5060",
                      message=INVITE))
    s(0.001, pe.Received(tracking_number=number, caller="+15550001111", caller_name="Alice", source="10.0.0.9:5060",
                         transport="udp", sip_call_id="c1@10.0.0.9"))
    s(0.002, pe.SipOut(transport="udp", first_line="SIP/2.0 100 Trying", src="10.0.0.1:5060", dst="10.0.0.9:5060",
                       message="SIP/2.0 100 Trying\r\n\r\n"))
    s(0.010, pe.Resolved(ok=True, account_id=account_id, receiving_number_id="rn_0001",
                         targets=[pe.TargetSummary(uri=target, transport="tcp", priority=10, weight=10,
                                                   secure_media=False, has_credentials=True)],
                         ring_timeout=20, region="us1", secure_media=False))
    s(0.020, pe.MediaAllocated(worker_id="media-1", region="us1", failed_over=False, a_port=10000, b_port=10002,
                               secure=False))
    s(0.030, pe.Dialing(target=target, transport="tcp", dest="192.0.2.5:5060", candidates=1))
    s(0.031, pe.SipOut(transport="tcp", first_line=f"INVITE {target} SIP/2.0", src="10.0.0.1:5060",
                       dst="192.0.2.5:5060", message=f"INVITE {target} SIP/2.0\r\n\r\n"))
    s(0.050, pe.Challenged(target=target, status=407, realm="pbx", algorithm="MD5", stale=False))
    s(0.060, pe.SipOut(transport="tcp", first_line=f"INVITE {target} SIP/2.0", src="10.0.0.1:5060",
                       dst="192.0.2.5:5060",
                       message=f"INVITE {target} SIP/2.0\r\nProxy-Authorization: [redacted]\r\n\r\n"))
    s(0.500, pe.Ringing(status=180, early_media=False))
    s(0.600, pe.Ringing(status=180, early_media=False))
    s(3.000, pe.Answered(target=target, secure=False, pdd_ms=2970))
    for i, d in enumerate(digits):
        m(5.0 + i, pe.Dtmf(digit=d, leg="a", duration_ms=120))
    s(3.0 + talk - 0.01, pe.SipIn(transport="udp", first_line="BYE sip:a@10.0.0.1 SIP/2.0", src="10.0.0.9:5060",
                                  dst="10.0.0.1:5060", message="BYE sip:a@10.0.0.1 SIP/2.0\r\n\r\n"))
    leg = LegStats(packets_in=2000, packets_out=1990, bytes_in=344000, bytes_out=342280, lost=7, jitter_ms=3.5,
                   srtp_failures=0, dropped=0, latched="10.0.0.9:20000")
    s(3.0 + talk, pe.Ended(by="caller", reason="normal clearing", duration=talk, result="completed",
                           media=MediaStats(call_id=call_id, worker_id="media-1", a=leg,
                                            b=leg.model_copy(update={"lost": 2, "jitter_ms": 9.0}),
                                            mos=4.3, duration=talk + 3)))
    # Interleave as the stream would see them: by time.
    return sorted(sig + media, key=lambda e: e.ts)


def refused_call(call_id: str, *, t0: float | None = None) -> list[CallEvent]:
    """403: the source is not a carrier trunk (no account ever known)."""
    t = t0 if t0 is not None else time.time() - 60
    return [
        pe.envelope(call_id, pe.Received(tracking_number=TRACKING, caller="+15550009999", caller_name=None,
                                         source="198.51.100.7:5060", transport="udp", sip_call_id="r1@198.51.100.7"),
                    ts=t, node="sig-1", service="signaling", seq=1),
        pe.envelope(call_id, pe.Failed(sip_status=403, reason="198.51.100.7 is not a carrier trunk", result="failed"),
                    ts=t + 0.01, node="sig-1", service="signaling", seq=2),
    ]


# --- a webhook receiver on loopback ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """A real HTTP server (uvicorn + Starlette, in this loop) that records what it gets."""

    fail_first: int = 0
    """Answer 500 to this many requests before answering 200."""
    delay: float = 0.0
    got: list[dict[str, Any]] = field(default_factory=list)
    ok: list[dict[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _server: Any = None
    _task: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        item = {"headers": dict(request.headers), "raw": body, "json": json.loads(body)}
        self.got.append(item)
        if self.delay:
            await asyncio.sleep(self.delay)
        if len(self.got) <= self.fail_first:
            return Response("try later", status_code=500)
        self.ok.append(item)
        return Response("ok")

    async def __aenter__(self) -> Receiver:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="off",
                                                     log_level="warning", access_log=False))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
        try:
            await asyncio.wait_for(self._task, 5)
        except Exception:
            self._task.cancel()

    async def wait(self, n: int, timeout: float = 10.0, ok: bool = True) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        items = self.ok if ok else self.got
        while len(items) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {len(items)} of {n}: {[i['json']['event'] for i in items]}")
            await asyncio.sleep(0.02)
        return items
