"""`switchboard calls ...`: read a call's events back from the CALLS stream.

show     the timeline of one call (SIP messages one line each, or whole with --sip)
ladder   the call as a ladder diagram, sngrep-style (one column per party)
tail     follow live calls
replay   republish a call's events to another subject, for a consumer under test
export   write the call's SIP messages as a pcap (Wireshark, tshark, sngrep)
reroute  today's routing, region and media choice for this call beside what happened (nothing placed)
export-csv  call detail records as CSV, over the HTTP API (the filters of GET /v1/calls)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats.errors
import nats.js.errors

from proto import events, subjects
from proto.messages import CallEvent
from services.common.bus import Bus
from services.common.callstream import follow_events, read_call_events
from services.common.errors import BusError
from services.common.ladder import render_text
from services.common.pcap import SipPacket, split_hostport, write_pcap
from services.common.reroute import NothingToRerun, reroute
from services.common.reroute import render as render_reroute

from .common import HOW_TO_POINT, add_nats_arguments, bus_auth, nats_source

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


async def _has_calls_stream(bus: Bus) -> bool:
    try:
        await bus.nc.jetstream().stream_info(subjects.CALLS_STREAM)
        return True
    except (nats.js.errors.NotFoundError, nats.errors.NoRespondersError, nats.errors.TimeoutError,
            nats.js.errors.ServiceUnavailableError):
        # No such stream, or no JetStream at all on this server: not a Switchboard stack's NATS.
        return False


async def _with_bus(args: argparse.Namespace, fn: Callable[[Bus], Awaitable[int]]) -> int:
    url, source = nats_source(args)
    try:
        bus = await Bus.connect(url, "switchboard-cli", max_reconnect_attempts=1,
                                auth=bus_auth(getattr(args, "data_dir", None)))
    except Exception as e:
        print(f"cannot reach NATS at {url} (from {source}): {e}\n{HOW_TO_POINT}", file=sys.stderr)
        return 2
    try:
        if not await _has_calls_stream(bus):
            print(f"the NATS at {url} (from {source}) has no {subjects.CALLS_STREAM} stream, so it is not a "
                  f"running Switchboard's bus\n{HOW_TO_POINT}", file=sys.stderr)
            return 2
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


def cmd_ladder(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        evs = await _events_or_complain(bus, args.call_id)
        if not evs:
            return 1
        width = args.width or shutil.get_terminal_size((100, 24)).columns
        color = not args.no_color and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(render_text([e.model_dump() for e in evs], width=width, color=color))
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


def cmd_reroute(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        evs = await _events_or_complain(bus, args.call_id)
        if not evs:
            return 1
        try:
            result = await reroute(bus, evs)
        except NothingToRerun as e:
            print(str(e), file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            print(render_reroute(result, width=shutil.get_terminal_size((100, 24)).columns))
        return 0

    return asyncio.run(_with_bus(args, go))


def cmd_export_csv(args: argparse.Namespace) -> int:
    import httpx

    from .provision import Api, CliError

    params = {k: v for k, v in (("number", args.number), ("from", args.from_), ("to", args.to),
                                ("result", args.result), ("account_id", args.account_id)) if v}
    params["format"] = "csv"
    try:
        api = Api(args)
        out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
        rows = -1  # the header line
        try:
            with api.client.stream("GET", "/v1/calls", params=params, timeout=None) as r:
                if r.status_code >= 400:
                    r.read()
                    from .provision import problem_text

                    raise CliError(problem_text(r))
                for chunk in r.iter_text():
                    out.write(chunk)
                    rows += chunk.count("\r\n")
        finally:
            if out is not sys.stdout:
                out.close()
    except httpx.HTTPError as e:
        print(f"cannot reach the API: {e}", file=sys.stderr)
        return 2
    except CliError as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.output:
        print(f"wrote {max(rows, 0)} calls to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calls = sub.add_parser("calls", help="read calls back from the event stream")
    csub = calls.add_subparsers(dest="calls_command", required=True)

    show = csub.add_parser("show", help="a call's timeline")
    show.add_argument("call_id")
    show.add_argument("--sip", action="store_true", help="print SIP messages whole")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)

    ladder = csub.add_parser("ladder", help="a call's ladder diagram in the terminal (sngrep-style)")
    ladder.add_argument("call_id")
    ladder.add_argument("--no-color", action="store_true", help="no ANSI colours (also when not a terminal, or NO_COLOR)")
    ladder.add_argument("--width", type=int, default=0, help="columns to fit in (default: the terminal's)")
    ladder.set_defaults(handler=cmd_ladder)

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

    reroute = csub.add_parser("reroute", help="today's routing, region and media for this call, beside what happened")
    reroute.add_argument("call_id")
    reroute.add_argument("--json", action="store_true")
    reroute.set_defaults(handler=cmd_reroute)

    csv_ = csub.add_parser("export-csv", help="call detail records as CSV (over the HTTP API)")
    csv_.add_argument("--number", help="tracking number (E.164)")
    csv_.add_argument("--from", dest="from_", help="started at or after (ISO 8601)")
    csv_.add_argument("--to", help="started before (ISO 8601)")
    csv_.add_argument("--result", choices=("completed", "busy", "no-answer", "failed", "canceled"))
    csv_.add_argument("--account-id", help="admin only: one account's calls")
    csv_.add_argument("-o", "--output", help="file to write (default: standard output)")
    csv_.add_argument("--api-url", default=None, help="API base URL (default: from var/run.json)")
    csv_.add_argument("--token", default=None, help="API key (default: $SWITCHBOARD_API_TOKEN)")
    csv_.set_defaults(handler=cmd_export_csv)

    for p in (show, ladder, tail, replay, export, reroute):
        add_nats_arguments(p)
