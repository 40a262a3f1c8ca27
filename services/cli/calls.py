"""`switchboard calls ...`: read a call's events back from the CALLS stream.

show     the timeline of one call (SIP messages one line each, or whole with --sip)
tail     follow live calls
replay   republish a call's events to another subject, for a consumer under test
export   write the call's SIP messages as a pcap (Wireshark, tshark, sngrep)
reroute  what routing would decide for this call now, without placing a call
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from proto import events, subjects
from proto.messages import CallEvent, RoutingDecision, RoutingRequest
from services.common.bus import Bus
from services.common.callstream import follow_events, read_call_events
from services.common.errors import BusError
from services.common.pcap import SipPacket, split_hostport, write_pcap

from .common import add_nats_arguments, bus_auth, nats_url

# The fields worth a glance in a timeline, per event kind.
KEY_FIELDS = ("tracking_number", "caller", "account_id", "receiving_number_id", "status", "sip_status", "reason",
              "target", "dest", "region",
              "worker_id", "digit", "leg", "by", "duration", "result")


def summary(ev: CallEvent) -> str:
    body = events.parse_or_generic(ev)
    if isinstance(body, events.SipIn):
        return f"<- {body.src} {body.transport} {body.first_line}"
    if isinstance(body, events.SipOut):
        return f"-> {body.dst} {body.transport} {body.first_line}"
    p = body.to_payload()
    return " ".join(f"{k}={p[k]}" for k in KEY_FIELDS if p.get(k) not in (None, ""))


def timeline(evs: list[CallEvent], *, whole_sip: bool = False) -> str:
    if not evs:
        return ""
    t0 = evs[0].ts
    lines = []
    for ev in evs:
        lines.append(f"{ev.ts - t0:+9.3f}s  {ev.service:<9} {ev.node:<16} {ev.kind:<16} {summary(ev)}")
        body = events.parse_or_generic(ev) if whole_sip else None
        if isinstance(body, events.SipTrace):
            lines.extend("           | " + line for line in body.message.splitlines())
    return "\n".join(lines)


def sip_packets(evs: list[CallEvent]) -> list[SipPacket]:
    out = []
    for ev in evs:
        body = events.parse_or_generic(ev)
        if not isinstance(body, events.SipTrace):
            continue
        try:
            out.append(SipPacket(ev.ts, split_hostport(body.src), split_hostport(body.dst), body.message.encode()))
        except ValueError:
            continue
    return out


async def _with_bus(args: argparse.Namespace, fn: Callable[[Bus], Awaitable[int]]) -> int:
    try:
        bus = await Bus.connect(nats_url(args), "switchboard-cli", max_reconnect_attempts=1,
                                auth=bus_auth(getattr(args, "data_dir", None)))
    except Exception as e:
        print(f"cannot reach NATS at {nats_url(args)}: {e}", file=sys.stderr)
        return 2
    try:
        return await fn(bus)
    except BusError as e:
        print(str(e), file=sys.stderr)
        return 1
    except subjects.SubjectError:
        print("a call id is letters, digits, '-' and '_' only", file=sys.stderr)
        return 2
    finally:
        await bus.close()


async def _events_or_complain(bus: Bus, call_id: str) -> list[CallEvent]:
    evs = await read_call_events(bus, subjects.token(call_id))
    if not evs:
        print(f"no events for call {call_id} (unknown id, or older than the stream keeps)", file=sys.stderr)
    return evs


def cmd_show(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        evs = await _events_or_complain(bus, args.call_id)
        if not evs:
            return 1
        if args.json:
            print(json.dumps([e.model_dump() for e in evs], indent=2))
        else:
            print(timeline(evs, whole_sip=args.sip))
        return 0

    return asyncio.run(_with_bus(args, go))


def cmd_tail(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        try:
            async for ev in follow_events(bus):
                print(f"{ev.call_id:<36} {ev.kind:<16} {summary(ev)}", flush=True)
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass
        return 0

    try:
        return asyncio.run(_with_bus(args, go))
    except KeyboardInterrupt:
        return 0


def cmd_replay(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        evs = await _events_or_complain(bus, args.call_id)
        for ev in evs:
            await bus.publish(args.to, ev)
        await bus.nc.flush()
        print(f"republished {len(evs)} events to {args.to}")
        return 0 if evs else 1

    return asyncio.run(_with_bus(args, go))


def cmd_export(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        evs = await _events_or_complain(bus, args.call_id)
        packets = sip_packets(evs)
        n = write_pcap(Path(args.pcap), packets)
        print(f"wrote {n} SIP messages to {args.pcap}")
        return 0 if n else 1

    return asyncio.run(_with_bus(args, go))


def reroute_request(evs: list[CallEvent]) -> RoutingRequest | None:
    for ev in evs:
        body = events.parse_or_generic(ev)
        if isinstance(body, events.Received) and body.tracking_number:
            return RoutingRequest(call_id=ev.call_id, tracking_number=body.tracking_number, caller=body.caller,
                                  caller_name=body.caller_name, source=body.source, region=ev.region or None)
    return None


def _resolved(evs: list[CallEvent]) -> events.Resolved | None:
    for ev in evs:
        body = events.parse_or_generic(ev)
        if isinstance(body, events.Resolved):
            return body
    return None


def cmd_reroute(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        evs = await _events_or_complain(bus, args.call_id)
        req = reroute_request(evs)
        if req is None:
            print("the call's `received` event is missing: nothing to re-run", file=sys.stderr)
            return 1
        decision = await bus.request(subjects.routing_resolve(), req, RoutingDecision, timeout=2.0)
        then = _resolved(evs)
        now = decision.model_dump(exclude={"schema_version"})
        for t in now["targets"]:
            t.pop("password", None)
        if args.json:
            print(json.dumps({"then": then.to_payload() if then else None, "now": now}, indent=2))
            return 0
        print(f"tracking number {req.tracking_number}, caller {req.caller}")
        if not decision.ok:
            print(f"now: rejected with {decision.status} {decision.reason}")
        else:
            print(f"now: ring timeout {decision.ring_timeout}s, region {decision.region_preference or '-'}, "
                  f"send digits {decision.send_digits or '-'}")
            for i, t in enumerate(decision.targets, 1):
                print(f"  {i}. {t.uri} ({t.transport}, priority {t.priority}, weight {t.weight}"
                      f"{', SRTP' if t.secure_media else ''})")
        if then is not None:
            before = [t.uri for t in then.targets]
            after = [t.uri for t in decision.targets]
            print("unchanged since the call" if before == after and then.ok == decision.ok
                  else f"then: {'ok' if then.ok else 'rejected'} {before}")
        return 0

    return asyncio.run(_with_bus(args, go))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calls = sub.add_parser("calls", help="read calls back from the event stream")
    csub = calls.add_subparsers(dest="calls_command", required=True)

    show = csub.add_parser("show", help="a call's timeline")
    show.add_argument("call_id")
    show.add_argument("--sip", action="store_true", help="print SIP messages whole")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)

    tail = csub.add_parser("tail", help="follow live calls")
    tail.set_defaults(handler=cmd_tail)

    replay = csub.add_parser("replay", help="republish a call's events to a subject")
    replay.add_argument("call_id")
    replay.add_argument("--to", required=True, help="subject to publish to")
    replay.set_defaults(handler=cmd_replay)

    export = csub.add_parser("export", help="write the call's SIP messages as pcap")
    export.add_argument("call_id")
    export.add_argument("--pcap", required=True, help="output file")
    export.set_defaults(handler=cmd_export)

    reroute = csub.add_parser("reroute", help="what routing decides for this call today")
    reroute.add_argument("call_id")
    reroute.add_argument("--json", action="store_true")
    reroute.set_defaults(handler=cmd_reroute)

    for p in (show, tail, replay, export, reroute):
        add_nats_arguments(p)
